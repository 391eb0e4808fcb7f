"""Tests for retries: what each answer means, backoff and Retry-After."""

from __future__ import annotations

import email.utils
import logging
import random
import time

import pytest

from pakat_logging import Sender, TrackEvent
from pakat_logging import _delivery as delivery
from pakat_logging._retry import (
    BACKOFF_CAP,
    MAX_RETRY_AFTER,
    Verdict,
    backoff,
    classify,
    parse_retry_after,
)

from .conftest import KEY

TRANSIENT = [408, 425, 429, 500, 502, 503, 504]
REFUSED = [400, 404, 409, 422]


class CeilingRandom:
    """A random source that draws the top of every range it is given."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return high


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR]


class TestClassify:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_2xx_is_delivered(self, status):
        """Every 2xx means the call was delivered."""
        assert Verdict.DELIVERED is classify(status)

    @pytest.mark.parametrize("status", [*TRANSIENT, 501, 599])
    def test_transient_is_retried(self, status):
        """408, 425, 429 and every 5xx are worth another try."""
        assert Verdict.RETRY is classify(status)

    @pytest.mark.parametrize("status", [401, 403])
    def test_wrong_key(self, status):
        """401 and 403 mean the ma-key is wrong."""
        assert Verdict.UNAUTHORIZED is classify(status)

    @pytest.mark.parametrize("status", [*REFUSED, 405, 413, 451, 499])
    def test_other_4xx_is_refused(self, status):
        """Any other 4xx is final: retrying cannot fix the call."""
        assert Verdict.REFUSED is classify(status)


class TestBackoff:
    def test_exponential_and_capped(self):
        """The upper bound starts at 0.5 s, doubles, and stops at the cap."""
        rng = CeilingRandom()

        delays = [backoff(attempt, rng) for attempt in range(1, 11)]

        assert [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60] == delays
        assert BACKOFF_CAP == max(delays)

    def test_full_jitter(self):
        """Every draw ranges from zero to the bound, not around it."""
        rng = CeilingRandom()

        for attempt in range(1, 5):
            backoff(attempt, rng)

        assert [(0, 0.5), (0, 1), (0, 2), (0, 4)] == rng.ranges

    def test_draws_spread_over_the_range(self):
        """Seeded draws for one attempt fill the range from 0 to its bound."""
        rng = random.Random(1234)

        delays = [backoff(3, rng) for _ in range(1000)]

        assert all(0 <= delay <= 2 for delay in delays)
        assert min(delays) < 0.1
        assert max(delays) > 1.9

    def test_huge_attempt_stays_capped(self):
        """A very late retry is capped instead of overflowing."""
        rng = CeilingRandom()

        assert BACKOFF_CAP == backoff(100_000, rng)


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("1", 1.0),
            (" 7 ", 7.0),
            ("0", 0.0),
            ("86400", MAX_RETRY_AFTER),
            ("1.5", 1.5),
            (" 0.25 ", 0.25),
            ("86400.5", MAX_RETRY_AFTER),
        ],
    )
    def test_seconds(self, value, seconds):
        """Delta-seconds, whole or not, are obeyed up to MAX_RETRY_AFTER."""
        assert seconds == parse_retry_after(value)

    def test_http_date(self):
        """An HTTP date gives the seconds left until it."""
        value = email.utils.formatdate(time.time() + 30, usegmt=True)

        seconds = parse_retry_after(value)

        assert seconds is not None
        assert 28 <= seconds <= 30

    def test_past_date_is_now(self):
        """An HTTP date already gone asks for no wait."""
        value = email.utils.formatdate(time.time() - 60, usegmt=True)

        assert 0.0 == parse_retry_after(value)

    @pytest.mark.parametrize(
        "value",
        [None, "", "soon", "-5", "1.5e999x", "-1.5", "1.", ".5", "1e3"],
    )
    def test_absent_or_malformed(self, value):
        """A missing or malformed header asks for nothing."""
        assert parse_retry_after(value) is None


class TestStatusHandling:
    @pytest.mark.parametrize("status", TRANSIENT)
    def test_transient_is_retried_then_delivered(self, server, sender, status):
        """A transient status is retried, and the retry delivers the call."""
        server.fail_next(status=status)
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(5.0)
        assert [status, 204] == [r.status for r in server.requests]
        stats = sender.stats()
        assert (1, 1, 0) == (
            stats["delivered"],
            stats["retried"],
            stats["failed"],
        )

    @pytest.mark.parametrize("status", REFUSED)
    def test_other_4xx_fails_at_once(self, server, sender, caplog, status):
        """Any other 4xx fails the call without a retry and says so."""
        server.fail_next(status=status, message="bad call")
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(5.0)
        assert [status] == [r.status for r in server.requests]
        stats = sender.stats()
        assert (0, 0, 1) == (
            stats["delivered"],
            stats["retried"],
            stats["failed"],
        )
        [refused] = [r for r in caplog.records if "refused" in r.message]
        assert logging.WARNING == refused.levelno
        assert str(status) in refused.message
        assert "bad call" in refused.message

    @pytest.mark.parametrize("status", [401, 403])
    def test_wrong_key_probes_slowly(
        self, server, caplog, monkeypatch, status
    ):
        """A wrong key is reported once; one call probes it per interval."""
        monkeypatch.setattr(delivery, "AUTH_PROBE_INTERVAL", 0.3)
        server.fail_next(2, status=status)
        with Sender(KEY, url=server.url) as sender:
            for n in range(3):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

            assert sender.flush(10.0)
            assert 3 == sender.stats()["delivered"]
        first, second, *rest = server.requests
        errors = _errors(caplog)

        assert [status, status, 204, 204, 204] == [
            r.status for r in server.requests
        ]
        assert second.time - first.time >= 0.3
        assert all(r.time - second.time >= 0.3 for r in rest)
        assert 1 == len(errors)
        assert errors[0].name.startswith("pakat_logging")
        assert "ma-key" in errors[0].getMessage()
        assert KEY not in caplog.text

    def test_wrong_key_holds_calls(self, server, caplog):
        """With the default probe interval, nothing more is sent for now."""
        server.fail_next(status=403)
        with Sender(KEY, url=server.url) as sender:
            for n in range(5):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

            assert not sender.flush(1.0)
            assert 5 == sender.stats()["pending"]
            sender.close(0.1)

        assert [403] == [r.status for r in server.requests]
        assert 1 == len(_errors(caplog))
        assert KEY not in caplog.text


class TestRetryAfter:
    def test_http_date_is_honoured(self, server, sender):
        """A Retry-After HTTP date holds every request back until it."""
        # An HTTP date has whole seconds: two ahead leaves at least one.
        header = email.utils.formatdate(time.time() + 2, usegmt=True)
        until = email.utils.parsedate_to_datetime(header).timestamp()
        # The server records monotonic times.
        until_monotonic = until - (time.time() - time.monotonic())
        server.fail_next(status=503, retry_after=header)
        sender.submit(TrackEvent("x", email="a@b.io"))
        sender.submit(TrackEvent("y", email="other@b.io"))

        assert sender.flush(10.0)
        first, *rest = server.requests
        assert 503 == first.status
        assert 2 == len(rest)
        # 10 ms allows for the two clocks' readings in this test.
        assert all(r.time >= until_monotonic - 0.01 for r in rest)
        assert all(r.time - first.time >= 1.0 for r in rest)
        assert 2 == len(server.calls)

    def test_fraction_of_a_second_is_honoured(self, server, sender):
        """Retry-After: 0.6 holds the retry back for 0.6 s, not the backoff."""
        server.fail_next(status=429, retry_after=0.6)
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(10.0)
        first, second = server.requests
        assert (429, 204) == (first.status, second.status)
        assert second.time - first.time >= 0.6


class TestBounds:
    def test_attempts_are_bounded(self, server, caplog):
        """A call still failing after max_attempts tries fails, logged."""
        server.fail_next(10, status=502)
        with Sender(KEY, url=server.url, max_attempts=2) as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))

            assert sender.flush(10.0)
            assert 1 == sender.stats()["failed"]
        gave_up = [r for r in caplog.records if "Gave up" in r.getMessage()]

        assert 2 == len(server.requests)
        assert 1 == len(gave_up)
        assert "after 2 attempts" in gave_up[0].getMessage()

    def test_age_is_bounded(self, server, caplog):
        """A retry that would fall past max_age fails the call instead."""
        server.fail_next(status=503, retry_after=5)
        with Sender(
            KEY, url=server.url, max_age=1.0, max_attempts=100
        ) as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))

            assert sender.flush(5.0)
            stats = sender.stats()
            assert (0, 1) == (stats["delivered"], stats["failed"])
        gave_up = [r for r in caplog.records if "Gave up" in r.getMessage()]

        assert [503] == [r.status for r in server.requests]
        assert [
            "Gave up on a trackEvent call after 1 attempts: the next, in 5 s, "
            "would be past max_age (1 s) (HTTP 503)"
        ] == [r.getMessage() for r in gave_up]


class TestTimeouts:
    def test_read_timeout_is_retried(self, server):
        """An answer slower than timeout is retried; the duplicate counted."""
        server.fail_next(status=204, delay=1.0)
        with Sender(KEY, url=server.url, timeout=0.2) as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))

            assert sender.flush(5.0)
            stats = sender.stats()
            assert (1, 1, 0) == (
                stats["delivered"],
                stats["retried"],
                stats["failed"],
            )
            assert 1 == stats["possible_duplicates"]
        # The slow answer's call arrived too, after the client gave up.
        assert server.wait_for_calls(2)
        assert 2 == len(server.requests)
