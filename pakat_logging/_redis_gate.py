"""The fleet's rate limit and pause, shared by every process through Redis."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from ._redis_spool import RedisSpool
from ._report import Reporter
from ._spool import SpoolError

__all__ = ["GATE_RETRY", "FleetGate", "Pacing"]

GATE_RETRY = 1.0
"""Seconds the fleet's pacing is skipped after Redis failed to answer."""


class Pacing(Protocol):
    """This process's own pacer."""

    def delay(self) -> float:
        """Reserve the next slot and return the seconds to wait for it."""
        ...  # pragma: no cover


class FleetGate:
    """Paces and pauses this process's sends together with the fleet's.

    Each send waits for the fleet's next free slot and for the end of any
    pause that a process of the fleet was asked for. While Redis does not
    answer, the process paces itself alone, at the full rate.

    Args:
        spool: The shared stream's keys.
        rate: Calls per second for the whole fleet, or ``None``.
        fallback: This process's own pacer.
        stopped: Set when the sender stops; ends any wait.
        reporter: Where trouble is reported.
    """

    def __init__(
        self,
        spool: RedisSpool,
        rate: float | None,
        fallback: Pacing,
        stopped: threading.Event,
        reporter: Reporter,
    ) -> None:
        self._spool = spool
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._fallback = fallback
        self._stopped = stopped
        self._reporter = reporter
        self._skip_until = 0.0

    def delay(self) -> float:
        """Wait for this send's slot in the fleet; return what is left.

        Returns:
            0, once the slot has come; or this process's own delay while
            Redis does not answer.
        """
        if time.monotonic() < self._skip_until:
            return self._fallback.delay()

        try:
            wait = self._spool.gate(self._interval, recheck=False)
            # A pause may begin while this send waits for its slot.
            while wait > 0 and not self._stopped.wait(wait):
                wait = self._spool.gate(self._interval, recheck=True)
        except SpoolError as error:
            self._skip(error)
            return self._fallback.delay()

        return 0.0

    def pause(self, seconds: float) -> None:
        """Hold every process of the fleet back for ``seconds``."""
        try:
            self._spool.pause(seconds)
        except SpoolError as error:
            self._skip(error)

    def _skip(self, error: SpoolError) -> None:
        self._skip_until = time.monotonic() + GATE_RETRY
        self._reporter.report(
            "redis_gate",
            logging.WARNING,
            f"Cannot reach the Redis spool {self._spool.target.display} "
            f"({error}): this process paces and pauses alone",
        )
