"""Rate-limited reports about the library's own trouble."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["DEFAULT_REPORT_INTERVAL", "Reporter"]

DEFAULT_REPORT_INTERVAL = 10.0
"""Seconds between two reports of the same kind of trouble."""

_DEFERRED_MAX = 256


class Reporter:
    """Logs each kind of trouble at most once per interval, with counts.

    The first occurrence is logged at once; later ones within the interval
    are counted, and the next report says how many there were, so a burst
    of a thousand refusals costs one or two lines instead of a thousand.

    Args:
        logger: Where the reports go.
        interval: Seconds between reports of one kind (default:
            ``DEFAULT_REPORT_INTERVAL``).
        clock: Monotonic clock (default: ``time.monotonic``).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_REPORT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self._once: set[str] = set()
        self._deferred: collections.deque[tuple[str, int, str]] = (
            collections.deque(maxlen=_DEFERRED_MAX)
        )

    def report(self, kind: str, level: int, message: str) -> None:
        """Log ``message`` unless ``kind`` was reported too recently.

        Args:
            kind: What went wrong, as a short key such as ``"queue_full"``.
            level: The logging level.
            message: One sentence, without the key.
        """
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._quiet[kind] = self._quiet.get(kind, 0) + 1
                return

            self._last[kind] = now
            quiet = self._quiet.pop(kind, 0)

        if quiet:
            message += f" ({quiet} more like this since the last report)"
        self._logger.log(level, message)

    def defer(self, kind: str, level: int, message: str) -> None:
        """Keep a report for :meth:`drain` to log from another thread.

        Python 3.14's logging drops records logged while a handler runs on
        the same thread, so a handler's own trouble is reported later, by
        the sender's thread or the next flush.
        """
        self._deferred.append((kind, level, message))

    def drain(self) -> None:
        """Log the reports kept by :meth:`defer`, oldest first."""
        while self._deferred:
            try:
                kind, level, message = self._deferred.popleft()
            except IndexError:  # another thread drained it first
                return
            self.report(kind, level, message)

    def once(self, kind: str, level: int, message: str) -> bool:
        """Log ``message`` the first time ``kind`` happens, until reset.

        Returns:
            Whether it was logged now.
        """
        with self._lock:
            if kind in self._once:
                return False
            self._once.add(kind)

        self._logger.log(level, message)
        return True

    def reset(self, kind: str) -> None:
        """Let :meth:`once` log ``kind`` again."""
        with self._lock:
            self._once.discard(kind)
