"""Exit: a process with calls queued ends on time and accounts for them."""

from __future__ import annotations

import re
import time

import pytest

from pakat_logging import Sender, TrackEvent, _delivery
from pakat_logging.testing import FakePakatServer

from ._support import (
    KEY,
    RELIABILITY,
    black_hole,
    event_ids,
    refusing_url,
    run_script,
    size,
)

pytestmark = RELIABILITY

# The app logs its calls, prints when it is done, and returns: what
# follows is the interpreter's exit, with the sender's exit hook.
APP = """
    import logging, sys, time
    from pakat_logging import PakatHandler

    key, url, calls, shutdown, spool = sys.argv[1:]
    logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
    handler = PakatHandler(
        key,
        url=url,
        shutdown_timeout=float(shutdown),
        max_queue_size=int(calls),
        spool=spool or None,
    )
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    for n in range(int(calls)):
        logger.warning(
            "Order placed",
            extra={
                "pakat": {"event": "order", "eventdata": {"id": f"x{n}"}},
                "email": f"user{n % 100}@example.com",
            },
        )
    print(time.monotonic(), flush=True)
"""

SUMMARY = re.compile(
    r"Sender closed: (?P<delivered>\d+) delivered, (?P<failed>\d+) failed, "
    r"(?P<spooled>\d+) spooled, (?P<lost>\d+) lost .*, "
    r"(?P<in_flight>\d+) still in flight"
)

CALLS = size(1_000, 10_000)


def _exit(url: str, calls: int, shutdown: float, spool: str = "") -> tuple:
    """Run the app; return its exit seconds, summary lines and process."""
    done = run_script(
        APP, KEY, url, calls, shutdown, spool, timeout=shutdown + 60
    )
    exited = time.monotonic()
    assert 0 == done.returncode, done.stderr
    finished = float(done.stdout.strip().splitlines()[-1])
    summaries = [
        match.groupdict()
        for match in map(SUMMARY.search, done.stderr.splitlines())
        if match
    ]

    return exited - finished, summaries, done


class TestExit:
    @pytest.mark.parametrize("endpoint", ["refusing", "black hole"])
    def test_dead_endpoint_exits_on_time(self, endpoint, figure):
        """With nothing answering, exit takes the shutdown timeout + 0.5 s."""
        shutdown = 1.0
        with black_hole() as silent:
            url = refusing_url() if endpoint == "refusing" else silent
            seconds, summaries, done = _exit(url, CALLS, shutdown)
        [summary] = summaries
        counts = {name: int(value) for name, value in summary.items()}

        assert seconds <= shutdown + 0.5
        assert 0 == counts["delivered"]
        assert CALLS == (
            counts["failed"] + counts["lost"] + counts["in_flight"]
        )
        assert KEY not in done.stderr + done.stdout
        figure(f"exit seconds ({endpoint}, timeout {shutdown})", seconds)
        figure(f"summary ({endpoint})", counts)

    def test_dead_endpoint_with_spool_keeps_calls(self, tmp_path, figure):
        """With a spool, what is not delivered at exit is kept and said."""
        shutdown = 1.0
        spool = str(tmp_path / "outbox.db")
        seconds, [summary], _ = _exit(refusing_url(), CALLS, shutdown, spool)

        assert seconds <= shutdown + 0.5
        assert "0" == summary["delivered"]
        assert CALLS == int(summary["spooled"]) + int(summary["in_flight"])
        figure("exit seconds (spool, timeout 1.0)", seconds)
        figure("summary (spool)", summary)

    def test_live_endpoint_gets_every_call(self, figure):
        """With the tracker up, every queued call arrives before exit."""
        calls = size(2_000, 20_000)
        shutdown = size(10.0, 60.0)
        with FakePakatServer(KEY) as server:
            seconds, summaries, _ = _exit(server.url, calls, shutdown)
            arrived = set(event_ids(server))

        assert {f"x{n}" for n in range(calls)} == arrived
        assert [] == summaries, "the summary warns only of undelivered calls"
        assert seconds <= shutdown + 0.5
        figure(f"exit seconds (live, {calls} calls queued)", seconds)


class TestCloseAccounting:
    def test_ready_retries_are_counted_at_close(self, monkeypatch):
        """At close, retried calls waiting for a worker count as lost."""
        monkeypatch.setattr(_delivery, "backoff", lambda attempt: 0.0)
        with FakePakatServer(KEY) as server:
            server.fail_next(2, status=503)
            # The third call hangs, and the only worker with it.
            server.fail_next(status=204, delay=5.0)
            sender = Sender(KEY, url=server.url, max_workers=1)
            for contact in ("a", "c", "b"):
                sender.submit(TrackEvent("x", email=f"{contact}@example.com"))
            retried = server.wait_for_requests(2)
            sender.close(0.1)
            stats = sender.stats()

        assert retried
        assert 1 >= stats["pending"], "only one call can be in flight"
        assert 2 <= stats["dropped"]
