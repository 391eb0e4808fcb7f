"""Helpers shared by the benchmarks: interleaved timing and a report."""

from __future__ import annotations

import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def interleave(
    cases: dict[str, Callable[[], float]], rounds: int
) -> dict[str, float]:
    """Run each case once per round, as :func:`sample`; keep the medians.

    Each case returns its own measurement (seconds per unit). Running the
    cases side by side, round after round, spreads the machine's noise
    over all of them alike, so the ratios hold even when the times drift.
    """
    return medians(sample(cases, rounds))


def sample(
    cases: dict[str, Callable[[], float]], rounds: int
) -> dict[str, list[float]]:
    """Run each case once per round and keep every measurement.

    The order of the cases changes from round to round (the same orders
    on every run): work that a case leaves behind, such as calls for the
    sender's thread to deliver, then weighs on a different case each
    round instead of always on the one after it.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        for name in order:
            samples[name].append(cases[name]())
        shuffle(order)

    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Return the median of each case's measurements."""
    return {
        name: statistics.median(values) for name, values in samples.items()
    }


def paired_ratio(
    samples: dict[str, list[float]], case: str, base: str
) -> float:
    """Return the median over rounds of ``case`` against ``base``.

    Each round's ratio divides two measurements taken one after the
    other, so a burst of load on the machine moves both; the ratio of two
    medians, taken from different rounds, moves with the burst.
    """
    return statistics.median(
        value / baseline
        for value, baseline in zip(samples[case], samples[base], strict=True)
    )


def timed(
    function: Callable[[], object],
    repeat: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Return the seconds per call of ``function``, over ``repeat`` calls.

    ``clock`` may be ``time.thread_time`` to count only the CPU that the
    calling thread spent, leaving out the time other threads (the sender's)
    held the GIL.
    """
    started = clock()
    for _ in range(repeat):
        function()

    return (clock() - started) / repeat


def report(
    title: str,
    results: dict[str, float],
    base: str,
    unit: str,
    samples: dict[str, list[float]] | None = None,
) -> None:
    """Print each result and its ratio to ``base``.

    With the ``samples`` that ``results`` are the medians of, the ratios
    are paired (:func:`paired_ratio`); without, each result is divided by
    ``base``'s.
    """
    print(f"\n{title}")
    width = max(len(name) for name in results)
    for name, value in results.items():
        ratio = (
            value / results[base]
            if samples is None
            else paired_ratio(samples, name, base)
        )
        print(f"  {name:<{width}}  {value:>12.2f} {unit}  {ratio:6.2f}x")


def start_fake_server(latency: float = 0.0) -> tuple[object, str]:
    """Start ``pakat-logging fake-server`` in its own process.

    A separate process keeps the server's work off the benchmark's GIL,
    as a real tracker would be.

    Returns:
        The process and the base URL.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pakat_logging",
            "fake-server",
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    url = line.split(" at ")[1].split(" ")[0]

    return process, url


# A collector that takes any POST and answers 200 "{}": the peers' SDKs
# post batches to paths of their own, which the fake tracker refuses.
_SINK = """
import http.server, sys

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_sink() -> tuple[subprocess.Popen[str], str]:
    """Start a collector that answers 200 to any POST, in its own process.

    Returns:
        The process and its base URL, ``http://127.0.0.1:PORT``.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()

    return process, f"http://127.0.0.1:{port}"
