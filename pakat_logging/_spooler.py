"""The spool's thread: accepted calls go to disk in group commits, then out.

The caller's thread only appends to a buffer. Every ``GROUP_COMMIT``
seconds the spool thread writes the buffer to the spool in one
transaction and hands the calls to the in-memory outbox for delivery.
When the outbox is full, calls wait on disk and are loaded, oldest first,
as room frees up. Delivered and refused calls are settled on disk in
batches too.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from . import _guard
from ._calls import Call, from_payload
from ._errors import InvalidCall
from ._outbox import Outbox
from ._report import Reporter
from ._spool import Row, Spool, SpoolError

__all__ = ["GROUP_COMMIT", "Spooler"]

logger = logging.getLogger(__name__)

GROUP_COMMIT = 0.01
"""Seconds the spool thread gathers calls before it writes them: the most
that a killed process can lose of what it had accepted."""

CLOSE_GRACE = 0.25
"""Seconds the spool thread gets at close to finish, past any deadline."""

HOUSEKEEPING = 1.0
"""Seconds between claim renewals and looks for rows to take over."""


class Spooler:
    """Moves accepted calls through a spool file into an outbox.

    Args:
        path: The spool file.
        outbox: Where calls go for delivery.
        max_rows: Calls the spool holds at most.
        reporter: Where trouble is reported.
        start_worker: Starts the outbox's first worker when it asks.
    """

    def __init__(
        self,
        path: str,
        outbox: Outbox,
        *,
        max_rows: int,
        reporter: Reporter,
        start_worker: Callable[[], None],
    ) -> None:
        self._spool = Spool(path)
        self._outbox = outbox
        self._max_rows = max_rows
        self._reporter = reporter
        self._start_worker = start_worker
        self._cond = threading.Condition()
        self._buffer: collections.deque[tuple[Call, float]] = (
            collections.deque()
        )
        self._delivered: list[int] = []
        self._refused: list[tuple[int, str]] = []
        self._loaded: set[int] = set()
        self._foreign: set[int] = set()
        self._rows = 0
        self._watermark = 0
        self._overflow = 0
        self._unadopted = 0
        self._in_write = 0
        # Calls on their way to the outbox, the spool having failed.
        self._handing = 0
        self._writing = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._opened = False
        self.broken = False

    @property
    def path(self) -> str:
        """The spool file's path."""
        return self._spool.path

    @property
    def outside(self) -> int:
        """Calls to deliver that are not in the outbox.

        Those buffered or being written, this process's own that wait on
        disk for room, and those that nobody holds on disk, left by a
        process that closed or died: this process takes them over as room
        frees up.
        """
        return (
            len(self._buffer)
            + self._in_write
            + self._handing
            + self._overflow
            + self._unadopted
        )

    def accept(self, call: Call) -> bool:
        """Buffer ``call`` for the next group commit; never waits on disk.

        Returns:
            ``False`` when the spool is full or closing.
        """
        with self._cond:
            if (
                self._stopping
                or self._rows + len(self._buffer) >= self._max_rows
            ):
                return False

            self._buffer.append((call, time.time()))
            if len(self._buffer) == 1:
                self._cond.notify_all()

        self.start()
        return True

    @property
    def started(self) -> bool:
        """Whether a call or a flush has opened the spool."""
        return self._thread is not None

    def start(self) -> None:
        """Open the spool on the spool thread, unless already done.

        Opening takes over the calls that earlier processes left, so a
        process that only flushes still delivers them.
        """
        with self._cond:
            if self._thread is not None or self._stopping or self.broken:
                return
            thread = self._thread = threading.Thread(
                target=self._run, name="pakat-logging-spool", daemon=True
            )

        try:
            thread.start()
        except RuntimeError:
            # No new threads during interpreter shutdown (Python 3.12+):
            # close() writes the buffer on the closing thread instead.
            self._thread = None

    def settled(self, row_id: int, reason: str | None = None) -> None:
        """Record that a call left the outbox: delivered, or refused.

        Args:
            row_id: Its spool row.
            reason: Why it was refused for good, or ``None`` if delivered.
        """
        with self._cond:
            self._loaded.discard(row_id)
            self._foreign.discard(row_id)
            if reason is None:
                self._delivered.append(row_id)
            else:
                self._refused.append((row_id, reason))
            self._cond.notify_all()

    def is_foreign(self, row_id: int) -> bool:
        """Whether the row was taken over from a process that went away."""
        return row_id in self._foreign

    def wait_written(self, timeout: float | None) -> bool:
        """Wait until every buffered call is on disk and handed over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start()
        with self._cond:
            while (
                self._thread is not None
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
        """Wait for the next write cycle, which loads waiting calls.

        Returns:
            ``False`` when ``timeout`` ran out first.
        """
        limit = HOUSEKEEPING if timeout is None else min(timeout, HOUSEKEEPING)
        with self._cond:
            self._cond.wait(limit)

        return timeout is None or timeout > limit

    def _run(self) -> None:
        with _guard.sending():
            try:
                self._serve()
            except Exception:
                logger.exception("The spool thread failed; using memory only")
                self._fall_back()

    def _serve(self) -> None:
        if not self._open():
            return

        self._take_over()
        with self._cond:
            self._opened = True
            self._cond.notify_all()
        next_chores = time.monotonic() + HOUSEKEEPING
        while self._cycle(next_chores):
            if time.monotonic() >= next_chores:
                self._chores()
                next_chores = time.monotonic() + HOUSEKEEPING

    def _open(self) -> bool:
        try:
            self._spool.open()
            self._rows = self._spool.count()
        except SpoolError as error:
            self._reporter.once(
                "spool_broken",
                logging.ERROR,
                f"Cannot use the spool {self.path}: {error}; calls are kept "
                "in memory only",
            )
            self._fall_back()
            return False

        logger.debug("Spool %s open with %d calls", self.path, self._rows)
        return True

    def _fall_back(self) -> None:
        # The buffered calls reach the outbox before the spool says it is
        # broken: until then a flush waits for them, and a call accepted
        # meanwhile is buffered and handed over on the next turn.
        while True:
            with self._cond:
                calls = [call for call, _ in self._buffer]
                self._buffer.clear()
                if not calls:
                    self.broken = True
                    self._cond.notify_all()
                    return
                self._handing = len(calls)
            for call in calls:
                self._give(call, None, 0.0)
                with self._cond:
                    self._handing -= 1

    def _cycle(self, next_chores: float) -> bool:
        with self._cond:
            while not (self._buffer or self._delivered or self._refused):
                if self._stopping:
                    return False
                remaining = next_chores - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)

            if self._buffer and not self._stopping:
                # Let a burst gather: one transaction for all of it.
                self._cond.wait(GROUP_COMMIT)
            batch = list(self._buffer)
            self._buffer.clear()
            delivered, self._delivered = self._delivered, []
            refused, self._refused = self._refused, []
            self._writing = True
            self._in_write = len(batch)

        try:
            self._write(batch, delivered, refused)
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

        return True

    def _write(
        self,
        batch: list[tuple[Call, float]],
        delivered: list[int],
        refused: list[tuple[int, str]],
    ) -> None:
        try:
            if delivered or refused:
                self._spool.settle(delivered, refused)
                self._rows -= len(delivered) + len(refused)
            ids = self._spool.insert(
                [
                    (call.endpoint, call.email or "", call.payload(), created)
                    for call, created in batch
                ]
            )
        except SpoolError as error:
            self._reporter.report(
                "spool_write",
                logging.ERROR,
                f"Cannot write to the spool {self.path}: {error}; "
                f"{len(batch)} calls are kept in memory only",
            )
            for call, _ in batch:
                self._give(call, None, 0.0)
                self._in_write -= 1
            return

        self._rows += len(ids)
        for (call, created), row_id in zip(batch, ids, strict=True):
            if self._overflow or not self._give(call, row_id, created):
                self._overflow += 1
            else:
                self._watermark = row_id
            self._in_write -= 1
        self._load_waiting()

    def _load_waiting(self) -> None:
        # Calls on disk come into the outbox as room frees up.
        try:
            if self._overflow:
                self._refill()
            if self._unadopted:
                self._take_over()
        except SpoolError as error:
            self._reporter.report(
                "spool_write", logging.ERROR, f"Spool {self.path}: {error}"
            )

    def _give(self, call: Call, row_id: int | None, created: float) -> bool:
        age = max(time.time() - created, 0.0) if created else 0.0
        accepted, start = self._outbox.put(
            call._parts, spool_id=row_id, age=age
        )
        if start:
            self._start_worker()
        if accepted and row_id is not None:
            self._loaded.add(row_id)

        return accepted

    def _chores(self) -> None:
        try:
            self._spool.renew()
            self._rows = self._spool.count()
            self._refill()
            self._take_over()
        except SpoolError as error:
            self._reporter.report(
                "spool_write", logging.ERROR, f"Spool {self.path}: {error}"
            )

    def _refill(self) -> None:
        # This process's own calls that found the outbox full, in order.
        room = self._outbox.room
        if not self._overflow or not room or self._stopping:
            return

        rows = self._spool.own(self._watermark, room)
        for row in rows:
            self._watermark = row.id
            if row.id not in self._loaded:
                self._load(row)
        if len(rows) < room:
            self._overflow = 0
        else:
            self._overflow = max(self._overflow - len(rows), 0)

    def _take_over(self) -> None:
        # Calls left by processes that closed, or whose claims ran out.
        room = self._outbox.room
        if self._overflow or not room or self._stopping:
            return

        rows = self._spool.adopt(room)
        for row in rows:
            if row.foreign:
                self._foreign.add(row.id)
            self._load(row)
        # Counted after the loads: flush() reads outside before the outbox,
        # so it never misses a row that is on its way between the two. A
        # count of a large spool reads every row, so it is made again only
        # when the last one is used up.
        if len(rows) < room:
            self._unadopted = 0
        elif self._unadopted > len(rows):
            self._unadopted -= len(rows)
        else:
            self._unadopted = self._unheld()

    def _unheld(self) -> int:
        summary = self._spool.summary()
        return max(int(summary["waiting"] - summary["claimed"]), 0)

    def _load(self, row: Row) -> None:
        try:
            call = from_payload(row.endpoint, row.body)
        except InvalidCall as error:
            self.settled(row.id, f"unreadable: {error}")
            return

        if not self._give(call, row.id, row.created):
            self._overflow += 1

    def close(self, timeout: float) -> int:
        """Write what is buffered, give up this process's claims, stop.

        Returns:
            How many calls stay in the spool for the next process; they
            no longer count in :attr:`outside`. When the spool thread does
            not finish in time, none: its calls are still on their way.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # The spool thread only has local disk work left: a short grace
            # past the deadline beats leaving claims for a lease to expire.
            thread.join(max(timeout, CLOSE_GRACE))
            if thread.is_alive():
                # Still waiting on the file (another process holds its
                # write lock) and moving calls between the counts: they
                # all stay pending rather than be counted twice.
                return 0

        if self.broken or (thread is None and not self._buffer):
            return 0

        return self._write_last()

    def _write_last(self) -> int:
        batch = list(self._buffer)
        self._buffer.clear()
        # Already on disk: the next process takes them over.
        left = self._overflow + self._unadopted
        self._overflow = self._unadopted = 0
        try:
            if self._thread is None:
                self._spool.open()
            self._spool.settle(self._delivered, self._refused)
            self._spool.insert(
                [(c.endpoint, c.email or "", c.payload(), t) for c, t in batch]
            )
            left += len(batch)
            batch = []
            self._spool.release()
        except SpoolError as error:
            lost = f"; {len(batch)} calls are lost" if batch else ""
            self._reporter.report(
                "spool_write",
                logging.ERROR,
                f"Spool {self.path}: {error}{lost}",
            )
            self._outbox.count("dropped", len(batch))
        finally:
            self._spool.close()

        return left

    def abandon(self) -> None:
        """Forget the spool without touching it: for a forked child.

        SQLite connections must not be used, nor closed, across fork: the
        parent's stays referenced here and is simply never touched.
        """
        _orphans.append(self._spool)


_orphans: list[Spool] = []
