"""Memory per queued call: what the outbox holds while the tracker is away.

Run by hand: ``python bench/memory.py``. Calls are submitted to a sender
whose tracker accepts connections and never answers, so they stay queued;
tracemalloc counts what they take, the call objects included.
"""

from __future__ import annotations

import gc
import socket
import sys
import tracemalloc

from pakat_logging import Sender, TrackEvent

COUNT = 20_000


def _call(n: int) -> TrackEvent:
    return TrackEvent(
        "order_completed",
        email=f"user{n % 500}@example.com",
        properties={"FIRSTNAME": "Sara", "LASTNAME": "Karimi"},
        eventdata={
            "id": f"cart:{n}",
            "data": {"total": 1250000, "items": [1, 2, 3]},
        },
    )


def main() -> int:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1024)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v2"
        sender = Sender(
            "bench-key-0000000000", url=url, max_queue_size=COUNT, timeout=60
        )
        # The first call starts the worker and the connection pool; they
        # are not what a queued call costs.
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
