"""Load: a flood of marked records costs bounded memory and caller time."""

from __future__ import annotations

import os
import socket
import time

import pytest

from pakat_logging import Sender, TrackEvent
from pakat_logging.testing import FakePakatServer

from ._support import (
    KEY,
    RELIABILITY,
    black_hole,
    event_ids,
    last_json,
    run_script,
    size,
)

pytestmark = RELIABILITY

RECORDS = size(100_000, 1_000_000)
QUEUE = 10_000

# The app logs as fast as one thread can, timing each call on its own;
# then it closes the sender and prints what it measured as one JSON line.
# The latency array is allocated up front, so it is not memory growth.
# The peak is VmHWM: getrusage's ru_maxrss also counts the memory of the
# forked pytest process this one was before it ran Python afresh.
APP = """
    import array, json, logging, resource, sys, time
    from pakat_logging import PakatHandler, Sender

    key, url, count, queue = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
    own = logging.getLogger("pakat_logging")
    own.addHandler(logging.StreamHandler())
    sender = Sender(key, url=url, timeout=1.0, max_queue_size=queue)
    logger = logging.getLogger("app")
    logger.addHandler(PakatHandler(sender=sender))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    emails = [f"user{n}@example.com" for n in range(1000)]
    latencies = array.array("q", bytes(8 * count))

    def rss():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()

    def peak():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    samples = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for n in range(count):
        extra = {
            "pakat": {"event": "order", "eventdata": {"id": f"l{n}"}},
            "email": emails[n % 1000],
        }
        before = clock()
        logger.info("Order placed", extra=extra)
        latencies[n] = clock() - before
        if n % (count // 10) == 0:
            samples.append(rss())
    elapsed = time.perf_counter() - started
    samples.append(rss())
    # Before the latencies are sorted into a list of a million ints.
    flood_peak = peak()
    during = sender.stats()
    sender.close(2.0)
    ordered = sorted(latencies)
    print(json.dumps({
        "seconds": elapsed,
        "rss": samples,
        "peak_rss": flood_peak,
        "p50": ordered[count // 2],
        "p99": ordered[count * 99 // 100],
        "p999": ordered[count * 999 // 1000],
        "max": ordered[-1],
        "during": during,
        "stats": sender.stats(),
    }))
"""

MIB = 1024 * 1024


def _flood(url: str) -> tuple[dict, str]:
    """Run the app against ``url``; return its figures and its stderr."""
    done = run_script(APP, KEY, url, RECORDS, QUEUE, timeout=600)
    assert 0 == done.returncode, done.stderr

    return last_json(done.stdout), done.stderr


class TestLoad:
    @pytest.mark.skipif(
        not os.path.exists("/proc/self/status"), reason="reads /proc"
    )
    @pytest.mark.parametrize("endpoint", ["dead", "slow"])
    def test_flood_is_bounded(self, endpoint, figure):
        """Memory stays flat, log calls stay fast, every drop is counted."""
        with black_hole() as dead, FakePakatServer(KEY, latency=0.05) as slow:
            url = dead if endpoint == "dead" else slow.url
            result, stderr = _flood(url)
            arrived = len(set(event_ids(slow)))
        stats = result["stats"]
        settled = (
            stats["delivered"]
            + stats["failed"]
            + stats["dropped"]
            + stats["spooled"]
            + stats["pending"]
        )
        # From a tenth of the run on, the queue is full and stays so.
        growth = max(result["rss"][1:]) - result["rss"][1]
        full_warnings = stderr.count("The queue is full")
        name = f"{endpoint}, {RECORDS} records"
        figure(f"{name}: peak RSS MiB", round(result["peak_rss"] / MIB, 1))
        figure(f"{name}: RSS growth after 10 % MiB", round(growth / MIB, 1))
        figure(
            f"{name}: caller latency us p50/p99/p99.9/max",
            "/".join(
                f"{result[p] / 1000:.1f}"
                for p in ("p50", "p99", "p999", "max")
            ),
        )
        figure(f"{name}: records per second", int(RECORDS / result["seconds"]))
        figure(f"{name}: counters after close", stats)
        figure(f"{name}: calls that arrived", arrived)
        figure(f"{name}: 'queue is full' warnings", full_warnings)

        assert RECORDS == settled
        assert RECORDS == stats["submitted"]
        assert QUEUE >= result["during"]["pending"]
        # Calls still in flight at exit may or may not have arrived.
        assert stats["delivered"] <= arrived
        assert arrived <= stats["delivered"] + stats["pending"]
        assert growth < 16 * MIB
        assert result["p999"] < 5_000_000
        # No call ever waits on the sender; the bound leaves room for the
        # interpreter's 5 ms thread switch and a scheduler blip of a busy
        # two-core machine, far below any network wait.
        assert result["max"] < 25_000_000
        assert full_warnings <= result["seconds"] / 10 + 2


class TestStall:
    def test_stuck_call_holds_back_no_other_contact(self):
        """While one call hangs, other contacts' calls go out at once."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            listener.settimeout(2.0)
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"
            sender = Sender(KEY, url=url, timeout=5.0, max_workers=4)
            sender.submit(TrackEvent("stuck", email="a@example.com"))
            # Accepting the connection proves the call is in flight.
            first, _ = listener.accept()
            for n in range(3):
                sender.submit(TrackEvent("next", email=f"u{n}@example.com"))
            started = time.monotonic()
            try:
                second, _ = listener.accept()
            except TimeoutError:
                second = None
            waited = time.monotonic() - started
            sender.close(0.1)
            first.close()
            if second is not None:
                second.close()

        assert second is not None, f"no second connection in {waited:.1f} s"
