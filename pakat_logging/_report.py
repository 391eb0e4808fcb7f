"""Rate-limited reports about the library's own trouble."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from . import _guard
from ._reentry import Section

__all__ = ["DEFAULT_REPORT_INTERVAL", "Reporter"]

DEFAULT_REPORT_INTERVAL = 10.0
"""Seconds between two reports of the same kind of trouble."""

_DEFERRED_MAX = 256

# Kinds remembered at once: a kind names one reason, and reasons may carry
# an app's field names or a server's message, so their number is capped.
_KINDS_MAX = 1024


class Reporter:
    """Logs each kind of trouble at most once per interval, with counts.

    The first occurrence is logged at once; later ones within the interval
    are held back and counted. The next report of that kind says how many
    there were, and :meth:`drain` writes the count of a burst that has
    ended, so a thousand refusals cost one or two lines, and none goes
    unmentioned.

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
        # Reentrant, see _reentry: a signal handler that reports while
        # this thread is inside the reporter has its report kept for drain.
        self.lock = threading.RLock()
        self.inside = False
        self._last: dict[str, float] = {}
        # kind -> (level, how many held back since its last report)
        self._held: dict[str, tuple[int, int]] = {}
        self._once: set[str] = set()
        # (kind, level, message, whether it came through once())
        self._deferred: collections.deque[tuple[str, int, str, bool]] = (
            collections.deque(maxlen=_DEFERRED_MAX)
        )

    def report(self, kind: str, level: int, message: str) -> None:
        """Log ``message`` unless ``kind`` was reported too recently.

        Args:
            kind: What went wrong, as a short key such as ``"queue_full"``;
                reports of one kind are held back together.
            level: The logging level.
            message: One sentence, without the key.
        """
        if _guard.LOGGING_DROPS_NESTED_RECORDS and _guard.in_handler():
            self.defer(kind, level, message)
            return

        now = self._clock()
        with Section(self) as entered:
            if not entered:
                self.defer(kind, level, message)
                return

            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                count = self._held[kind][1] if kind in self._held else 0
                self._held[kind] = (level, count + 1)
                return

            forgotten = self._make_room(now) if last is None else []
            self._last[kind] = now
            held = self._held.pop(kind, None)

        self._log_held(forgotten)
        if held is not None:
            message += f" ({held[1]} more like this since the last report)"
        self._logger.log(level, message)

    def _make_room(self, now: float) -> list[tuple[str, int, int]]:
        # Called with the lock held, before a new kind is remembered.
        if len(self._last) < _KINDS_MAX:
            return []

        for kind, last in list(self._last.items()):
            if now - last >= self._interval and kind not in self._held:
                del self._last[kind]
        forgotten = []
        while len(self._last) >= _KINDS_MAX:
            kind = next(iter(self._last))
            del self._last[kind]
            if kind in self._held:
                forgotten.append((kind, *self._held.pop(kind)))

        return forgotten

    def _log_held(self, held: list[tuple[str, int, int]]) -> None:
        # Without the message itself: a reason is logged once per interval,
        # and a repeat only needs its count.
        for kind, level, count in held:
            self._logger.log(
                level,
                "Held back %d repeat(s) of an earlier %r report",
                count,
                kind.split(":", 1)[0],
            )

    def defer(self, kind: str, level: int, message: str) -> None:
        """Keep a report for :meth:`drain` to log from another thread.

        Python 3.14's logging drops records logged while a handler runs on
        the same thread, so there :meth:`report` and :meth:`once` keep a
        handler's own trouble for later: the sender's thread, the next
        flush, or close.
        """
        self._deferred.append((kind, level, message, False))

    def drain(self, *, everything: bool = False) -> None:
        """Log the reports kept by :meth:`defer`, and the held-back counts.

        Args:
            everything: Also write the counts of kinds whose interval is
                not over yet, as at a flush or at close (default:
                ``False``, only those of bursts that have ended).
        """
        # Only those kept so far: one that report() keeps again, as it
        # does inside a signal handler that interrupted this thread in
        # the reporter, waits for the next drain.
        for _ in range(len(self._deferred)):
            try:
                kind, level, message, once = self._deferred.popleft()
            except IndexError:  # another thread drained it first
                break
            if once:
                self._logger.log(level, message)
            else:
                self.report(kind, level, message)

        if not self._held:
            return

        now = self._clock()
        with Section(self) as entered:
            if not entered:
                return

            due = [
                kind
                for kind in self._held
                if everything or now - self._last[kind] >= self._interval
            ]
            held = [(kind, *self._held.pop(kind)) for kind in due]
            self._last.update(dict.fromkeys(due, now))
        self._log_held(held)

    def once(self, kind: str, level: int, message: str) -> bool:
        """Log ``message`` the first time ``kind`` happens, until reset.

        Returns:
            Whether it was logged now (or kept for :meth:`drain`, inside a
            handler where logging would drop it).
        """
        with Section(self) as entered:
            if kind in self._once:
                return False
            if not entered:
                self._deferred.append((kind, level, message, True))
                return True
            self._once.add(kind)

        if _guard.LOGGING_DROPS_NESTED_RECORDS and _guard.in_handler():
            self._deferred.append((kind, level, message, True))
        else:
            self._logger.log(level, message)
        return True

    def reset(self, kind: str) -> None:
        """Let :meth:`once` log ``kind`` again."""
        with Section(self):
            self._once.discard(kind)
