"""The Redis spool's price, side by side with the SQLite spool and memory.

Run by hand: ``python bench/redis_cost.py`` (needs ``redis-server`` and
redis-py). The same marked log call and the same burst of calls go
through three senders, one in memory only, one with an SQLite spool and
one with a Redis spool, against a fake tracker and a redis-server that
run in processes of their own.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import interleave, report, start_fake_server, timed

from pakat_logging import PakatHandler, Sender, TrackEvent

KEY = "bench-key-0000000000"
MARKED = {
    "pakat": {"event": "order_completed", "properties": {"FIRSTNAME": "S"}},
    "email": "sara@example.com",
}
CALLS = 2000

_runs = itertools.count()


def start_redis(folder: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a redis-server without persistence on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "Ready to accept connections" in line:
            break
    threading.Thread(target=process.stdout.read, daemon=True).start()

    return process, f"redis://127.0.0.1:{port}/0"


def _logger(name: str, sender: Sender) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.addHandler(PakatHandler(sender=sender))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _spools(folder: Path, redis_url: str) -> dict[str, str | None]:
    # A fresh file and a fresh key prefix per run: each starts empty.
    run = next(_runs)
    return {
        "memory": None,
        "sqlite": str(folder / f"run{run}.db"),
        "redis": f"{redis_url}?prefix=bench{run}",
    }


def _throughput(url: str, spool: str | None) -> float:
    with Sender(KEY, url=url, spool=spool, max_queue_size=10**6) as sender:
        started = time.perf_counter()
        for n in range(CALLS):
            sender.submit(TrackEvent("e", email=f"user{n}@example.com"))
        assert sender.flush(300)
        return CALLS / (time.perf_counter() - started)


def _caller_costs(url: str, folder: Path, redis_url: str) -> dict[str, float]:
    spools = _spools(folder, redis_url)
    senders = {
        name: Sender(KEY, url=url, spool=spool, max_queue_size=10**6)
        for name, spool in spools.items()
    }
    loggers = {
        name: _logger(f"bench.{name}", sender)
        for name, sender in senders.items()
    }
    try:
        return interleave(
            {
                f"marked call, {name}": lambda logger=logger: (
                    timed(
                        lambda: logger.info("Order placed", extra=MARKED),
                        2000,
                    )
                    * 1e6
                )
                for name, logger in loggers.items()
            },
            rounds=10,
        )
    finally:
        for sender in senders.values():
            sender.flush(300)
            sender.close()


def _rates(url: str, folder: Path, redis_url: str) -> dict[str, float]:
    return interleave(
        {
            f"throughput, {name}": lambda name=name: _throughput(
                url, _spools(folder, redis_url)[name]
            )
            for name in ("memory", "sqlite", "redis")
        },
        rounds=3,
    )


def main() -> int:
    if shutil.which("redis-server") is None:
        print("needs redis-server (apt-get install redis-server)")
        return 1

    folder = Path(tempfile.mkdtemp())
    tracker, url = start_fake_server()
    redis, redis_url = start_redis(folder)
    try:
        costs = _caller_costs(url, folder, redis_url)
        rates = _rates(url, folder, redis_url)
    finally:
        tracker.terminate()
        redis.terminate()
        tracker.wait()
        redis.wait()

    report(
        "caller cost of a marked log call (median of 10)",
        costs,
        "marked call, memory",
        "us",
    )
    report(
        f"delivery throughput, {CALLS} calls (median of 3)",
        rates,
        "throughput, memory",
        "calls/s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
