"""The spool's price: caller cost and delivery throughput, on vs off.

Run by hand: ``python bench/spool_cost.py``. The same marked log call and
the same burst of calls go through a sender without a spool and one with
a spool in a temporary folder, side by side, against a fake tracker in
another process.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from _common import interleave, start_fake_server, timed

from pakat_logging import PakatHandler, Sender, TrackEvent

KEY = "bench-key-0000000000"
MARKED = {
    "pakat": {"event": "order_completed", "properties": {"FIRSTNAME": "S"}},
    "email": "sara@example.com",
}


def _logger(name: str, sender: Sender) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.addHandler(PakatHandler(sender=sender))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _throughput(url: str, spool: Path | None, count: int = 2000) -> float:
    if spool is not None:
        spool.unlink(missing_ok=True)
    with Sender(KEY, url=url, spool=spool, max_queue_size=10**6) as sender:
        started = time.perf_counter()
        for n in range(count):
            sender.submit(TrackEvent("e", email=f"user{n}@example.com"))
        assert sender.flush(300)
        return count / (time.perf_counter() - started)


def main() -> int:
    process, url = start_fake_server()
    folder = Path(tempfile.mkdtemp())
    try:
        with (
            Sender(KEY, url=url, max_queue_size=10**6) as memory,
            Sender(
                KEY, url=url, spool=folder / "caller.db", max_queue_size=10**6
            ) as spooled,
        ):
            plain = _logger("bench.memory", memory)
            disk = _logger("bench.spool", spooled)
            costs = interleave(
                {
                    "marked call, memory only": lambda: (
                        timed(
                            lambda: plain.info("Order placed", extra=MARKED),
                            2000,
                        )
                        * 1e6
                    ),
                    "marked call, with spool": lambda: (
                        timed(
                            lambda: disk.info("Order placed", extra=MARKED),
                            2000,
                        )
                        * 1e6
                    ),
                },
                rounds=10,
            )
            memory.flush(300)
            spooled.flush(300)
        rates = interleave(
            {
                "throughput, memory only": lambda: _throughput(url, None),
                "throughput, with spool": lambda: _throughput(
                    url, folder / "rate.db"
                ),
            },
            rounds=3,
        )
    finally:
        process.terminate()
        process.wait()

    ratio = (
        costs["marked call, with spool"] / costs["marked call, memory only"]
    )
    print("\ncaller cost of a marked log call (us, median of 10)")
    for name, value in costs.items():
        print(f"  {name:<28} {value:8.2f}")
    print(f"  spool / memory: {ratio:.2f}x (target <= 2x)")
    ratio = rates["throughput, with spool"] / rates["throughput, memory only"]
    print("\ndelivery throughput (calls/s, median of 3)")
    for name, value in rates.items():
        print(f"  {name:<28} {value:8.0f}")
    print(f"  spool / memory: {ratio:.2f}x (target >= 0.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
