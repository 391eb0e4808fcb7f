"""Memory per queued call: what the outbox holds while the tracker is away.

Run by hand: ``python bench/memory.py``. Calls are submitted to a sender
whose tracker accepts connections and never answers, so they stay queued;
tracemalloc counts what they take, the call objects included.

Then the same calls are logged as markers. Their properties are checked
and copied on the caller's thread but encoded only once they leave the
sender's intake, and with the sender's thread waiting on the tracker they
stay there: a copied dict costs more than its text, and this is the most
it costs: the benchmark holds the sender's lock meanwhile, so that none of
its threads moves them on.
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import tracemalloc

from pakat_logging import PakatHandler, Sender, TrackEvent

COUNT = 20_000
# Fewer than the intake holds before a caller takes the lock and encodes
# what waits there: with the default max_queue_bytes, 8,128.
MARKERS = 5_000
CONTACTS = 500


def _call(n: int) -> TrackEvent:
    return TrackEvent(
        "order_completed",
        email=f"user{n % CONTACTS}@example.com",
        properties={"FIRSTNAME": "Sara", "LASTNAME": "Karimi"},
        eventdata={
            "id": f"cart:{n}",
            "data": {"total": 1250000, "items": [1, 2, 3]},
        },
    )


def _marker(n: int) -> dict[str, object]:
    return {
        "pakat": {
            "event": "order_completed",
            "properties": {"FIRSTNAME": "Sara", "LASTNAME": "Karimi"},
        },
        "email": f"user{n % CONTACTS}@example.com",
    }


def main() -> int:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1024)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v2"
        calls(url)
        markers(url)
    return 0


def calls(url: str) -> None:
    """Submit call objects, and print what each one queued holds."""
    sender = Sender(
        "bench-key-0000000000", url=url, max_queue_size=COUNT, timeout=60
    )
    # The first call starts the worker and the connection pool; they are
    # not what a queued call costs.
    sender.submit(TrackEvent("warm-up", email="w@example.com"))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(COUNT - 1):
        sender.submit(_call(n))
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    queued = sender.stats()["pending"]
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    payload = len(_call(0).payload())
    print(f"queued calls: {queued}")
    print(f"body of one call: {payload} bytes")
    print(
        f"memory per queued call: {grown / (COUNT - 1):.0f} bytes "
        f"(target <= 1024)"
    )
    sender.close(0.1)


def markers(url: str) -> None:
    """Log markers whose properties wait unencoded; print what each holds."""
    sender = Sender(
        "bench-key-0000000000", url=url, max_queue_size=COUNT, timeout=60
    )
    logger = logging.getLogger("bench.memory")
    logger.addHandler(PakatHandler(sender=sender))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Each contact once first: the worker starts, and an e-mail seen for
    # the first time takes the general path, which encodes at once.
    for n in range(CONTACTS):
        logger.info("Order placed", extra=_marker(n))
    gc.collect()
    # Held so that no worker moves the intake on meanwhile, as one that
    # waits for work does every few milliseconds.
    with sender._outbox.lock:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for n in range(MARKERS):
            logger.info("Order placed", extra=_marker(n))
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        waiting = len(sender._outbox._intake)
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    marker = _marker(0)
    payload = len(
        TrackEvent(**marker["pakat"], email=marker["email"]).payload()
    )
    print(f"logged markers not yet encoded: {waiting} of {MARKERS}")
    print(f"body of one marker's call: {payload} bytes")
    print(
        f"memory per queued marker: {grown / MARKERS:.0f} bytes "
        f"(target <= 1024)"
    )
    sender.close(0.1)


if __name__ == "__main__":
    sys.exit(main())
