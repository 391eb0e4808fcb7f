"""The Redis spool's threads: group commits to a shared stream, and reads.

The caller's thread only appends to a buffer. Every ``GROUP_COMMIT``
seconds the writer thread adds the buffer to the stream and settles what
was delivered or refused since, in one script. A process that delivers
also runs a reader thread, which takes calls from the stream through the
consumer group as the outbox has room; the writer renews what this
process holds and claims what silent consumers left.

While Redis cannot be reached, accepted calls wait in this process's
memory (at most ``max_held``; later calls are refused and counted) and
are added, in order, as soon as it answers again.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from . import _guard
from ._calls import Call
from ._outbox import Outbox
from ._redis_gate import FleetGate, Pacing
from ._redis_intake import READ_BLOCK, Intake
from ._redis_spool import RedisSpool
from ._report import Reporter
from ._spool import SpoolError
from ._spooler import CLOSE_GRACE, GROUP_COMMIT, HOUSEKEEPING

__all__ = ["RedisSpooler"]

logger = logging.getLogger(__name__)

COMMIT_BATCH = 1000
"""Calls added at most per group commit."""

FLUSH_POLL = 0.05
"""Seconds between two looks at whether other processes settled this
process's calls, while a flush waits for them."""

RETRY_MIN, RETRY_MAX = 0.1, 2.0
"""Seconds between tries while Redis cannot be reached: doubling from the
first to the second."""

SWEEP_INTERVAL = 60.0
"""Seconds between two clean-ups of consumers that left."""

_Buffered = tuple[Call, float]


class RedisSpooler:
    """Moves accepted calls through a Redis stream shared by a fleet.

    It offers the sender what :class:`~pakat_logging._spooler.Spooler`
    does, so the sender only chooses between them by the spool's form.

    Args:
        url: The Redis spool URL.
        outbox: Where calls go for delivery.
        max_rows: Calls the stream holds at most, for the whole fleet.
        reporter: Where trouble is reported.
        start_worker: Starts the outbox's first worker when it asks.
        deliver: Whether this process delivers calls, or only adds them
            for other processes (default: ``True``).
        max_held: Accepted calls kept in memory at most while Redis cannot
            be reached (default: 10,000).
    """

    def __init__(
        self,
        url: str,
        outbox: Outbox,
        *,
        max_rows: int,
        reporter: Reporter,
        start_worker: Callable[[], None],
        deliver: bool = True,
        max_held: int = 10_000,
    ) -> None:
        self._spool = RedisSpool(url)
        self._outbox = outbox
        self._max_rows = max_rows
        self._max_held = max_held
        self._deliver = deliver
        self._reporter = reporter
        self._start_worker = start_worker
        self._cond = threading.Condition()
        self._intake = Intake(
            self._spool, outbox, self._cond, start_worker, max_held
        )
        self._buffer: collections.deque[_Buffered] = collections.deque()
        self._delivered: list[str] = []
        self._refused: list[tuple[str, str]] = []
        self._seq = 0
        self._retry_size: int | None = None
        self._length = 0
        self._writing = False
        self._opened = False
        self._down = False
        self._retry_delay = RETRY_MIN
        self._retry_at = 0.0
        self._renew_at = 0.0
        self._sweep_at = 0.0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.broken = False

    @property
    def path(self) -> str:
        """The spool URL, its password hidden."""
        return self._spool.target.display

    @property
    def unreachable(self) -> bool:
        """Whether the last try to reach Redis failed."""
        return self._down

    @property
    def buffer_full(self) -> bool:
        """Whether as many calls wait in memory for Redis as may."""
        return len(self._buffer) >= self._max_held

    @property
    def outside(self) -> int:
        """Accepted calls not in the outbox: buffered, or in the stream."""
        return len(self._buffer) + self._intake.outside

    def accept(self, call: Call) -> bool:
        """Buffer ``call`` for the next group commit; never waits on Redis.

        Returns:
            ``False`` when the stream is full, too many calls wait in
            memory for Redis to come back, or the spool is closing.
        """
        with self._cond:
            if (
                self._stopping
                or len(self._buffer) >= self._max_held
                or self._length + len(self._buffer) >= self._max_rows
            ):
                return False

            self._buffer.append((call, time.time()))
            if len(self._buffer) == 1:
                self._cond.notify_all()

        if not self._threads:
            self.start()
        return True

    @property
    def started(self) -> bool:
        """Whether a call or a flush has opened the spool."""
        return bool(self._threads)

    def start(self) -> None:
        """Start the writer (and the reader, when delivering) once."""
        with self._cond:
            if self._threads or self._stopping or self.broken:
                return

            jobs = {"pakat-logging-redis": self._run_writer}
            if self._deliver:
                jobs["pakat-logging-redis-reader"] = self._run_reader
            self._threads = [
                threading.Thread(target=job, name=name, daemon=True)
                for name, job in jobs.items()
            ]

        self._start_threads()

    def _start_threads(self) -> None:
        try:
            for thread in self._threads:
                thread.start()
        except RuntimeError:
            # No new threads during interpreter shutdown (Python 3.12+):
            # close() writes the buffer on the closing thread instead.
            self._threads = [t for t in self._threads if t.is_alive()]

    def settled(self, row_id: int, reason: str | None = None) -> None:
        """Record that a call left the outbox: delivered, or refused.

        Args:
            row_id: The id the call was handed over with.
            reason: Why it was refused for good, or ``None`` if delivered.
        """
        entry_id = self._intake.settle(row_id)
        if entry_id is None:
            return

        with self._cond:
            if reason is None:
                self._delivered.append(entry_id)
            else:
                self._refused.append((entry_id, reason))
            self._cond.notify_all()

    def is_foreign(self, row_id: int) -> bool:
        """Whether the call was claimed from a consumer that went silent."""
        return self._intake.is_foreign(row_id)

    def wait_written(self, timeout: float | None) -> bool:
        """Wait until every buffered call is in Redis."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start()
        with self._cond:
            while (
                self._threads
                and not self.broken
                and (self._buffer or self._writing or not self._opened)
            ):
                remaining = (
                    None if deadline is None else deadline - time.monotonic()
                )
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)

        return not self._buffer

    def wait_refilled(self, timeout: float | None) -> bool:
        """Look once whether others settled this process's calls, and wait.

        Returns:
            ``False`` when ``timeout`` ran out first.
        """
        # Settled by another process of the fleet: handed over.
        self._outbox.count("spooled", self._intake.forget_gone())
        limit = FLUSH_POLL if timeout is None else min(timeout, FLUSH_POLL)
        with self._cond:
            if not self.outside:
                return True

            self._cond.wait(limit)

        return timeout is None or timeout > limit

    def gate(
        self, fallback: Pacing, stopped: threading.Event, rate: float | None
    ) -> FleetGate:
        """Return the pacer that shares ``rate`` and pauses with the fleet.

        Args:
            fallback: This process's own pacer, used while Redis cannot
                be reached.
            stopped: Set when the sender stops; ends any wait.
            rate: Calls per second for the whole fleet, or ``None``.
        """
        return FleetGate(self._spool, rate, fallback, stopped, self._reporter)

    def _run_writer(self) -> None:
        with _guard.sending():
            try:
                self._serve()
            except Exception:
                logger.exception("The Redis spool thread failed")
                self._fall_back()

    def _serve(self) -> None:
        chores = 0.0
        interval = min(HOUSEKEEPING, self._spool.claim_timeout / 3)
        while self._cycle(chores):
            if time.monotonic() >= chores:
                chores = time.monotonic() + interval
                if self._deliver and self._opened:
                    self._chores()

    def _fall_back(self) -> None:
        # Only a bug lands here: deliver from memory rather than stall.
        with self._cond:
            self.broken = True
            calls = [call for call, _ in self._buffer]
            self._buffer.clear()
            self._cond.notify_all()
        for call in calls:
            _, start = self._outbox.put(call._parts)
            if start:
                self._start_worker()

    def _cycle(self, due: float) -> bool:
        with self._cond:
            if not self._await_work(due):
                return False

            if self._buffer and not self._stopping and not self._down:
                # Let a burst gather: one script for all of it.
                self._cond.wait(GROUP_COMMIT)
            batch, delivered, refused = self._take_work()
            if not (batch or delivered or refused or not self._opened):
                return True

            self._writing = True
            self._intake.committing()

        try:
            self._write(batch, delivered, refused)
        finally:
            self._intake.commit_ended()
            with self._cond:
                self._writing = False
                self._cond.notify_all()

        return True

    def _await_work(self, due: float) -> bool:
        while True:
            now = time.monotonic()
            work = self._buffer or self._delivered or self._refused
            if self._down and now < self._retry_at:
                if self._stopping:
                    return False
                self._cond.wait(self._retry_at - now)
            elif work or not self._opened:
                return True
            elif self._stopping:
                return False
            elif now >= due:
                return True
            else:
                self._cond.wait(due - now)

    def _take_work(
        self,
    ) -> tuple[list[_Buffered], list[str], list[tuple[str, str]]]:
        # A retried commit takes the same calls under the same number: if
        # its answer was lost and not its work, Redis adds nothing twice.
        size = self._retry_size or min(len(self._buffer), COMMIT_BATCH)
        batch = [self._buffer[n] for n in range(size)]
        delivered, self._delivered = self._delivered, []
        refused, self._refused = self._refused, []
        if batch and not self._retry_size:
            self._seq += 1

        return batch, delivered, refused

    def _write(
        self,
        batch: list[_Buffered],
        delivered: list[str],
        refused: list[tuple[str, str]],
    ) -> None:
        rows = [
            (call.endpoint, call.email or "", call.payload(), created)
            for call, created in batch
        ]
        try:
            if not self._opened:
                self._spool.open()
            ids, length = self._spool.commit(
                self._seq, rows, delivered, refused, self._max_rows
            )
        except SpoolError as error:
            with self._cond:
                self._delivered[:0] = delivered
                self._refused[:0] = refused
                self._retry_size = len(batch) or None
            self._unreachable(error)
            return

        self._written(len(batch), ids, length)

    def _written(self, size: int, ids: list[str], length: int) -> None:
        handed = self._intake.committed(ids, size) if self._deliver else size
        with self._cond:
            for _ in range(size):
                self._buffer.popleft()
            self._retry_size = None
            self._length = length
            self._opened = True
            back, self._down = self._down, False
            self._retry_delay = RETRY_MIN
            self._cond.notify_all()

        self._outbox.count("spooled", handed)
        if back:
            logger.info("The Redis spool %s answers again", self.path)

    def _unreachable(self, error: SpoolError) -> None:
        with self._cond:
            self._down = True
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
            held = len(self._buffer)
            self._cond.notify_all()

        self._reporter.report(
            "redis_down",
            logging.WARNING,
            f"Cannot reach the Redis spool {self.path} ({error}): {held} "
            f"accepted calls wait in memory (at most {self._max_held}) "
            "and are written when it answers",
        )

    def _chores(self) -> None:
        now = time.monotonic()
        timeout = self._spool.claim_timeout
        try:
            if now >= self._renew_at:
                self._spool.renew(self._intake.held())
                self._renew_at = now + timeout / 3
            missing = self._intake.claim(self.settled)
            with self._cond:
                self._delivered.extend(missing)
            if now >= self._sweep_at:
                self._spool.sweep(max(timeout * 10, 600.0))
                self._sweep_at = now + SWEEP_INTERVAL
        except SpoolError as error:
            self._unreachable(error)

    def _run_reader(self) -> None:
        with _guard.sending():
            while not self._stopping:
                try:
                    self._read()
                except SpoolError as error:
                    self._unreachable(error)
                    self._rest(self._retry_delay)
                except Exception as error:
                    self._reporter.report(
                        "redis_read",
                        logging.ERROR,
                        f"Cannot read the Redis spool {self.path}: "
                        f"{type(error).__name__}: {error}",
                    )
                    self._rest(RETRY_MAX)

    def _rest(self, seconds: float) -> None:
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)

    def _read(self) -> None:
        if not (self._opened and self._intake.read(self.settled)):
            self._rest(READ_BLOCK)

    def close(self, timeout: float) -> int:
        """Write what is buffered, put held calls back, and stop.

        Returns:
            How many accepted calls stay in Redis for other processes.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(timeout, CLOSE_GRACE))

        if self.broken or any(t.is_alive() for t in self._threads):
            return 0

        if not self._threads and not self._buffer:
            return 0  # never opened: nothing to write or to put back

        try:
            return self._finish()
        finally:
            self._spool.close()

    def _finish(self) -> int:
        if self._buffer or self._delivered or self._refused:
            self._down = False  # one last try, on this thread
            self._cycle(0.0)
        lost = len(self._buffer)
        if lost:
            self._outbox.count("dropped", lost)
            logger.warning(
                "Lost %d accepted calls: the Redis spool %s did not answer "
                "before the shutdown timeout",
                lost,
                self.path,
            )
        if self._deliver and self._opened and not self._down:
            # Left alone while Redis is away: claimed after claim_timeout.
            self._release()
        self._buffer.clear()

        return self._intake.clear()

    def _release(self) -> None:
        limit = len(self._intake.held()) + self._intake.waiting + 10_000
        try:
            self._spool.release(limit)
        except SpoolError as error:
            self._reporter.report(
                "redis_down",
                logging.WARNING,
                f"Cannot put calls back in the Redis spool {self.path} "
                f"({error}): other processes claim them after "
                f"{self._spool.claim_timeout:.0f} s",
            )

    def abandon(self) -> None:
        """Forget the spool without touching it: for a forked child.

        redis-py's pools notice the fork themselves; the parent's client
        stays referenced here so that nothing in the child closes it.
        """
        _orphans.append(self._spool)


_orphans: list[RedisSpool] = []
