"""Tests for the rate-limited reports of the library's own trouble."""

from __future__ import annotations

import logging

from pakat_logging._report import _KINDS_MAX, Reporter


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _reporter() -> tuple[Reporter, Clock, Lines]:
    logger = logging.getLogger("tests.report")
    logger.propagate = False
    lines = Lines()
    logger.handlers = [lines]
    clock = Clock()
    return Reporter(logger, interval=10.0, clock=clock), clock, lines


class TestReporter:
    def test_different_reasons_are_each_logged(self):
        """Two reasons back to back are both logged."""
        reporter, _, lines = _reporter()

        reporter.report("invalid: a", logging.WARNING, "reason a")
        reporter.report("invalid: b", logging.WARNING, "reason b")

        assert ["reason a", "reason b"] == lines.messages

    def test_repeats_are_held_then_counted_at_drain(self):
        """A repeat is held back, and drain says how many, once."""
        reporter, _, lines = _reporter()
        for _ in range(3):
            reporter.report("invalid: a", logging.WARNING, "reason a")

        reporter.drain(everything=True)
        reporter.drain(everything=True)

        assert [
            "reason a",
            "Held back 2 repeat(s) of an earlier 'invalid' report",
        ] == lines.messages

    def test_drain_waits_for_the_burst_to_end(self):
        """Without everything, a count is written once the interval ends."""
        reporter, clock, lines = _reporter()
        reporter.report("queue_full", logging.WARNING, "full")
        reporter.report("queue_full", logging.WARNING, "full")

        reporter.drain()
        during = list(lines.messages)
        clock.now = 10.0
        reporter.drain()

        assert ["full"] == during
        assert 2 == len(lines.messages)
        assert "Held back 1 repeat(s)" in lines.messages[1]

    def test_next_report_carries_the_count(self):
        """After the interval, the next report says how many were held."""
        reporter, clock, lines = _reporter()
        reporter.report("queue_full", logging.WARNING, "full")
        reporter.report("queue_full", logging.WARNING, "full")

        clock.now = 11.0
        reporter.report("queue_full", logging.WARNING, "full")

        assert [
            "full",
            "full (1 more like this since the last report)",
        ] == lines.messages

    def test_kinds_remembered_are_capped(self):
        """Endless distinct reasons keep memory bounded and lose no count."""
        reporter, _, lines = _reporter()
        reporter.report("invalid: first", logging.WARNING, "first")
        reporter.report("invalid: first", logging.WARNING, "first")

        for n in range(_KINDS_MAX + 10):
            reporter.report(f"invalid: {n}", logging.WARNING, f"r{n}")

        assert _KINDS_MAX >= len(reporter._last)
        assert any("Held back 1 repeat(s)" in m for m in lines.messages)
