"""One delivery attempt, and what the tracker's answer means for the call.

A worker takes a call from the outbox and hands it here: :meth:`pace`
waits for the rate limit, :meth:`deliver` sends it, and the answer
settles it (delivered, failed) or schedules its retry.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import requests

from ._config import Options, mask
from ._outbox import Item, Outbox
from ._report import Reporter
from ._retry import Verdict, backoff, classify, parse_retry_after
from ._transport import Answer, Transport, never_sent

__all__ = ["AUTH_PROBE_INTERVAL", "Delivery", "Pacer", "Spooling"]

logger = logging.getLogger(__name__)

AUTH_PROBE_INTERVAL = 30.0
"""Seconds between tries while the tracker refuses the ma-key."""


class Spooling(Protocol):
    """What delivery needs of a spool: settling rows, spotting take-overs."""

    def settled(self, row_id: int, reason: str | None = None) -> None:
        """Record that a spooled call was delivered, or refused."""

    def is_foreign(self, row_id: int) -> bool:
        """Whether the call was taken over from a process that went away."""


class PacerLike(Protocol):
    """Paces sends: this process's :class:`Pacer`, or a fleet's gate."""

    def delay(self) -> float:
        """Reserve the next slot and return the seconds to wait for it."""

    def pause(self, seconds: float) -> None:
        """Hold sending back for ``seconds``."""


class Pacer:
    """Spaces sends evenly to honour a calls-per-second limit."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Reserve the next slot and return the seconds to wait for it."""
        if not self._interval:
            return 0.0

        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval

        return slot - now

    def pause(self, seconds: float) -> None:
        """Do nothing: the outbox holds this process back by itself.

        A pacer shared by a fleet tells the other processes too.
        """


class Delivery:
    """Sends calls and turns each answer into a settlement or a retry.

    Args:
        options: The sender's options.
        outbox: Where calls are settled or scheduled again.
        transport: What posts them.
        pacer: What spaces them out.
        reporter: Where trouble is reported.
        spooler: The spool the calls came through, or ``None``.
        stopped: Set when the sender stops: calls that come back for a
            retry after that are left to the spool, or lost.
    """

    def __init__(
        self,
        options: Options,
        *,
        outbox: Outbox,
        transport: Transport,
        pacer: PacerLike,
        reporter: Reporter,
        spooler: Spooling | None,
        stopped: threading.Event,
    ) -> None:
        self._options = options
        self._outbox = outbox
        self._transport = transport
        self._pacer = pacer
        self._reporter = reporter
        self._spooler = spooler
        self._stopped = stopped

    def leave(self, item: Item) -> None:
        """Settle a call that close() did not deliver: spooled, or lost."""
        # Its spool row, if any, stays for the next process; a call that
        # never reached the spool (its write failed) is lost with memory.
        spooled = (
            item.spool_id is not None
            and self._spooler is not None
            and not getattr(self._spooler, "broken", False)
        )
        self._outbox.settle(item, "spooled" if spooled else "dropped")

    def pace(self) -> None:
        """Wait for this call's slot under the rate limit."""
        delay = self._pacer.delay()
        if delay > 0:
            self._stopped.wait(delay)

    def deliver(self, item: Item) -> None:
        """Send ``item`` once, then settle it or schedule its retry."""
        item.attempts += 1
        call = item.call
        try:
            answer = self._transport.send(call.endpoint, call.payload())
        except requests.RequestException as error:
            self._on_error(item, error)
        except Exception:
            logger.exception("Unexpected error while sending a call")
            self.settle(item, "failed", "unexpected error")
        else:
            self._on_answer(item, answer)

    def _on_answer(self, item: Item, answer: Answer) -> None:
        verdict = classify(answer.status)
        if verdict is Verdict.DELIVERED:
            self._reporter.reset("unauthorized")
            if item.ambiguous or self._is_foreign(item):
                self._outbox.count("possible_duplicates")
            self.settle(item, "delivered")
        elif verdict is Verdict.RETRY:
            self._on_transient(item, answer)
        elif verdict is Verdict.UNAUTHORIZED:
            self._on_unauthorized(item, answer)
        else:
            reason = f"{answer.status}: {answer.text}"
            self._reporter.report(
                f"refused: {reason}",
                logging.WARNING,
                f"The tracker refused a {item.call.endpoint} call: {reason}",
            )
            self.settle(item, "failed", f"HTTP {reason}")

    def _on_transient(self, item: Item, answer: Answer) -> None:
        wait = parse_retry_after(answer.retry_after)
        if wait is not None and answer.status in (429, 503):
            self._outbox.pause(time.monotonic() + wait)
            self._pacer.pause(wait)
            logger.debug(
                "Tracker asked to wait %.1f s (%s)", wait, answer.status
            )

        delay = backoff(item.attempts) if wait is None else wait
        self._retry_later(item, delay, f"HTTP {answer.status}")

    def _on_unauthorized(self, item: Item, answer: Answer) -> None:
        self._reporter.once(
            "unauthorized",
            logging.ERROR,
            f"The tracker refused the ma-key {mask(self._options.ma_key)} "
            f"with {answer.status}: check ma_key or PAKAT_MA_KEY. Calls are "
            f"held and tried again every {AUTH_PROBE_INTERVAL:.0f} s",
        )
        self._outbox.pause(time.monotonic() + AUTH_PROBE_INTERVAL)
        self._retry_later(item, AUTH_PROBE_INTERVAL, f"HTTP {answer.status}")

    def _on_error(self, item: Item, error: requests.RequestException) -> None:
        if not never_sent(error):
            item.ambiguous = True

        # A pooled connection the server closed while idle fails at once;
        # the first retry of a connection error therefore goes right away.
        immediate = item.attempts == 1 and isinstance(
            error, requests.ConnectionError
        )
        delay = 0.0 if immediate else backoff(item.attempts)
        self._reporter.report(
            "unreachable",
            logging.WARNING,
            f"Cannot reach the tracker at {self._options.url}: "
            f"{type(error).__name__}; retrying",
        )
        self._retry_later(item, delay, type(error).__name__)

    def _retry_later(self, item: Item, delay: float, reason: str) -> None:
        if self._stopped.is_set():
            self.leave(item)
            return

        options = self._options
        age = time.monotonic() + delay - item.born
        out_of_attempts = (
            self._spooler is None and item.attempts >= options.max_attempts
        )
        if out_of_attempts or age > options.max_age:
            why = (
                ""
                if out_of_attempts
                else f": the next, in {delay:.0f} s, would be past max_age "
                f"({options.max_age:.0f} s)"
            )
            self._reporter.report(
                "gave_up",
                logging.WARNING,
                f"Gave up on a {item.call.endpoint} call after "
                f"{item.attempts} attempts{why} ({reason})",
            )
            self.settle(item, "failed", f"gave up: {reason}")
            return

        logger.debug(
            "Retrying a %s call in %.2f s (%s)",
            item.call.endpoint,
            delay,
            reason,
        )
        self._outbox.retry(item, time.monotonic() + delay)

    def settle(self, item: Item, outcome: str, reason: str = "") -> None:
        """Settle ``item`` in the outbox, and its row in the spool."""
        self._outbox.settle(item, outcome)
        if self._spooler is not None and item.spool_id is not None:
            self._spooler.settled(
                item.spool_id, None if outcome == "delivered" else reason
            )

    def _is_foreign(self, item: Item) -> bool:
        return (
            self._spooler is not None
            and item.spool_id is not None
            and self._spooler.is_foreign(item.spool_id)
        )
