"""Caller cost of one log call in instructions: the measure noise can't move.

Run by hand: ``python bench/instructions.py`` (needs valgrind). Timings on
a shared two-core machine drift by a factor of two within an hour, and a
ratio of them by a tenth or more from run to run. Callgrind counts the
instructions that the calling thread executes instead, which come out the
same on every run of the same code. Each case runs twice in its own
process under callgrind, with and without the timed calls, and the
difference is divided by the number of calls.

The sender posts to a port that accepts connections and never answers, so
its thread waits on the first call and every other call stays in the
queue's intake: the count is the application's thread alone, doing just
what it does in the tight loops of ``caller_cost.py``.

Instructions are not time: a marked call's extra work is mostly bytecode,
which runs fewer instructions per cycle than the C inside ``logging``. So
these ratios read lower than the timed ones; they say which of two
versions of the code makes the caller do less.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from caller_cost import MARKED, UNMARKED, FloorHandler

from pakat_logging import PakatHandler, Sender

CALLS = 2_000
WARM_UP = 200

# Each case: (handler, record, the case it is measured against), named
# as in caller_cost.py.
CASES = {
    "NullHandler, unmarked": ("null", UNMARKED, "NullHandler, unmarked"),
    "PakatHandler, unmarked": ("pakat", UNMARKED, "NullHandler, unmarked"),
    "NullHandler, marked": ("null", MARKED, "NullHandler, marked"),
    "PakatHandler, marked": ("pakat", MARKED, "NullHandler, marked"),
    "Floor handler, marked": ("floor", MARKED, "NullHandler, marked"),
}


def _handler(kind: str, silent: socket.socket) -> logging.Handler:
    if kind == "null":
        return logging.NullHandler()
    if kind == "floor":
        return FloorHandler()

    url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v2"
    sender = Sender(
        "bench-key-0000000000",
        url=url,
        max_queue_size=10**6,
        # Longer than the run, so the thread neither gives up nor retries.
        timeout=3600,
    )
    return PakatHandler(sender=sender)


def child(case: str, calls: int) -> None:
    """Make the case's calls; run under callgrind by :func:`count`."""
    kind, extra, _ = CASES[case]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        logger = logging.getLogger("bench.instructions")
        logger.addHandler(_handler(kind, silent))
        logger.setLevel(logging.INFO)
        logger.propagate = False
        # The first calls check the name and the e-mail, start the
        # sender's thread and fill the caches: not what is measured.
        for _ in range(WARM_UP):
            logger.info("Order placed", extra=extra)
        for _ in range(calls):
            logger.info("Order placed", extra=extra)
        # At once: a normal exit would wait for the silent tracker.
        os._exit(0)


def _main_thread_total(out: Path) -> int:
    # With --separate-threads, callgrind writes one file per thread; the
    # first is the main thread's.
    for line in Path(f"{out}-01").read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])

    raise SystemExit(f"{out}-01: no instruction total")


def count(case: str, calls: int, out: Path) -> int:
    """Return the instructions the main thread ran for ``calls`` calls.

    Callgrind writes its counts to ``out``, one file per thread.
    """
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            case,
            "--calls",
            str(calls),
        ],
        check=True,
        capture_output=True,
        # The same dict layouts on every run.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )

    return _main_thread_total(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: skipped")
        return 0

    per_call = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, case in enumerate(CASES):
            out = Path(folder) / f"case{number}"
            idle = count(case, 0, out.with_suffix(".idle"))
            busy = count(case, args.calls, out.with_suffix(".busy"))
            per_call[case] = (busy - idle) // args.calls

    print(
        "Instructions per logging call on the calling thread "
        f"(callgrind, {args.calls} calls)"
    )
    width = max(map(len, per_call))
    for case, value in per_call.items():
        base = CASES[case][2]
        ratio = value / per_call[base]
        print(f"  {case:<{width}}  {value:>8}  {ratio:5.2f}x of {base}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
