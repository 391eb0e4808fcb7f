"""Zero loss: marked records through faults and outages all arrive."""

from __future__ import annotations

import collections
import time

import pytest

from pakat_logging import PakatHandler, Sender, _retry
from pakat_logging.testing import FakePakatServer

from ._support import (
    FULL,
    KEY,
    RELIABILITY,
    event_ids,
    marked_logger,
    size,
    wait_for_room,
)

pytestmark = RELIABILITY

CALLS = size(2_000, 20_000)
OUTAGE = size(1.0, 3.0)
CONTACTS = 500
QUEUE = 2_000

# Every kind of fault, 30 % of requests in all. A 429's Retry-After holds
# every worker back for a whole second, so it gets a smaller share (0.4 %
# of requests): at an equal one the run would spend nearly all its time
# waiting.
MIX = {
    "status_5xx": 1.0,
    "retry_after_429": 0.05,
    "slow": 0.5,
    "reset_before_read": 1.0,
    "reset_after_read": 1.0,
}

TIMEOUT = 0.5
SLOW = 0.7

# With 30 % failures and two outages, some call will fail ten times in a
# row; zero loss is about what the sender keeps, so it may keep trying.
ATTEMPTS = 1_000


def _produce(sender: Sender, server: FakePakatServer) -> int:
    """Log CALLS marked records, with two outages; return the peak queue."""
    logger = marked_logger(
        "reliability.zero_loss", PakatHandler(sender=sender)
    )
    outages = {CALLS // 3, 2 * CALLS // 3}
    peak = 0
    for n in range(CALLS):
        if n in outages:
            server.outage(OUTAGE)
        if n % 50 == 0:
            peak = max(peak, wait_for_room(sender, server, QUEUE // 2))
        logger.info(
            "Order placed",
            extra={
                "pakat": {"event": "order", "eventdata": {"id": f"z{n}"}},
                "email": f"user{n % CONTACTS}@example.com",
            },
        )

    return peak


@pytest.fixture
def short_backoff(monkeypatch):
    """Cap backoff at 2 s in bounded runs, so a run's tail stays short."""
    if not FULL:
        monkeypatch.setattr(_retry, "BACKOFF_CAP", 2.0)


class TestZeroLoss:
    def test_every_call_arrives(self, short_backoff, figure):
        """Through 30 % faults and two outages, every record arrives."""
        with FakePakatServer(KEY) as server:
            server.inject_faults(
                0.3, MIX, slow_seconds=SLOW, retry_after=1, seed=6
            )
            sender = Sender(
                KEY,
                url=server.url,
                timeout=TIMEOUT,
                max_queue_size=QUEUE,
                max_attempts=ATTEMPTS,
            )
            started = time.monotonic()
            peak = _produce(sender, server)
            flushed = sender.flush(size(120, 900))
            elapsed = time.monotonic() - started
            stats = sender.stats()
            sender.close(1.0)
            server.clear_faults()
            arrived = collections.Counter(event_ids(server))
            statuses = collections.Counter(r.status for r in server.requests)
            injected = dict(server.injected)
        duplicated = sum(1 for copies in arrived.values() if copies > 1)

        assert flushed
        assert {f"z{n}" for n in range(CALLS)} == set(arrived)
        assert (CALLS, 0, 0) == (
            stats["delivered"],
            stats["failed"],
            stats["dropped"],
        )
        assert duplicated <= stats["possible_duplicates"]
        assert peak <= QUEUE
        assert 0 == statuses[400]
        assert all(injected.values()), injected
        figure("calls logged", CALLS)
        figure("delivered (unique ids)", len(arrived))
        figure("calls that arrived twice or more", duplicated)
        figure("extra copies", sum(arrived.values()) - len(arrived))
        figure("possible_duplicates reported", stats["possible_duplicates"])
        figure("retried", stats["retried"])
        figure("dropped / failed", (stats["dropped"], stats["failed"]))
        figure("peak pending (bound)", f"{peak} ({QUEUE})")
        figure("faults injected", injected)
        figure("seconds to deliver all", round(elapsed, 1))
