"""What one process holds of a Redis spool, and its own calls in it.

Calls read from the stream get small ids for the outbox (its items carry
an int), and wait here in order while the outbox has no room. This
process's own calls that another process may deliver are remembered by
entry id, so that a flush can wait until they are settled.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from ._calls import Call, from_payload
from ._errors import InvalidCall
from ._outbox import Outbox
from ._redis_spool import Entry, RedisSpool
from ._spool import SpoolError

__all__ = ["READ_BATCH", "READ_BLOCK", "Intake"]

READ_BATCH = 500
"""Calls taken from the stream at most per read or claim."""

READ_BLOCK = 0.25
"""Seconds a read waits for new calls before it looks around again."""


class Intake:
    """Hands calls read from the stream to the outbox, each once, in order.

    Every method takes the spooler's condition itself (a re-entrant lock)
    and notifies it of changes that a flush waits for.

    Args:
        spool: The stream.
        outbox: Where calls go for delivery.
        cond: The spooler's condition.
        start_worker: Starts the outbox's first worker when it asks.
        max_mine: This process's own entries remembered at most; beyond,
            they count as handed over at once.
    """

    def __init__(
        self,
        spool: RedisSpool,
        outbox: Outbox,
        cond: threading.Condition,
        start_worker: Callable[[], None],
        max_mine: int,
    ) -> None:
        self._spool = spool
        self._outbox = outbox
        self._cond = cond
        self._start_worker = start_worker
        self._max_mine = max_mine
        self._mine: dict[str, None] = {}
        self._seen: set[str] = set()
        self._committing = False
        self._waiting: collections.deque[tuple[int, Call, float]] = (
            collections.deque()
        )
        self._held: dict[int, str] = {}
        self._local: dict[str, int] = {}
        self._foreign: set[int] = set()
        # The reader and the writer's claims both hand calls over; one at a
        # time keeps the waiting ones in order and each handed once.
        self._handing = threading.Lock()
        # Calls on their way to the outbox count until they are in it, so
        # that a flush never finds them nowhere.
        self._transit = 0
        self._next_id = 0

    @property
    def outside(self) -> int:
        """Accepted calls not in the outbox: own ones in the stream, read."""
        return len(self._mine) + len(self._waiting) + self._transit

    @property
    def waiting(self) -> int:
        """Calls read and waiting for room in the outbox."""
        return len(self._waiting)

    def held(self) -> list[str]:
        """Return the entry ids this process holds."""
        with self._cond:
            return list(self._held.values())

    def committing(self) -> None:
        """Note that a commit is on its way to Redis."""
        with self._cond:
            self._committing = True

    def committed(self, ids: list[str], size: int) -> int:
        """Remember the ids of this process's calls just added.

        Args:
            ids: The new entries' ids; empty when the commit had been
                applied before, its answer lost.
            size: How many calls the commit added.

        Returns:
            How many of them count as handed over to the fleet now.
        """
        if not ids:
            return size

        handed = 0
        with self._cond:
            for entry_id in ids:
                if entry_id in self._seen:
                    continue  # read back already, by this process
                if len(self._mine) < self._max_mine:
                    self._mine[entry_id] = None
                else:
                    handed += 1

        return handed

    def commit_ended(self) -> None:
        """Note that the commit's answer, or its failure, is in."""
        with self._cond:
            self._committing = False
            self._seen.clear()

    def settle(self, row_id: int) -> str | None:
        """Forget a call the outbox settled; return its entry id."""
        with self._cond:
            entry_id = self._held.pop(row_id, None)
            self._foreign.discard(row_id)
            if entry_id is not None:
                del self._local[entry_id]

            return entry_id

    def is_foreign(self, row_id: int) -> bool:
        """Whether the call was claimed from a consumer that went silent."""
        return row_id in self._foreign

    def forget_gone(self) -> int:
        """Forget own entries that another process settled.

        Returns:
            How many left the stream; 0 when Redis does not answer.
        """
        with self._cond:
            own = list(self._mine)[:READ_BATCH]
        try:
            gone = self._spool.gone(own)
        except SpoolError:
            return 0

        with self._cond:
            settled = [entry_id for entry_id in gone if entry_id in self._mine]
            for entry_id in settled:
                del self._mine[entry_id]
            if settled:
                self._cond.notify_all()

        return len(settled)

    def room(self) -> int:
        """Hand over what waits, then return how many more calls fit."""
        with self._handing:
            self._drain_waiting()

        return self._outbox.room - len(self._waiting)

    def read(self, refuse: Callable[[int, str], None]) -> bool:
        """Take new calls from the stream as the outbox has room.

        Args:
            refuse: Settles a call that cannot be read, with the reason.

        Returns:
            ``False`` when there was no room to read into.

        Raises:
            SpoolError: Redis cannot be reached.
        """
        room = self.room()
        if room <= 0:
            return False

        entries = self._spool.read(min(room, READ_BATCH), READ_BLOCK)
        self.take(entries, foreign=False, refuse=refuse)
        return True

    def claim(self, refuse: Callable[[int, str], None]) -> list[str]:
        """Claim calls that silent consumers left, as the outbox has room.

        Args:
            refuse: Settles a call that cannot be read, with the reason.

        Returns:
            Ids of claimed entries whose data is gone, to acknowledge.

        Raises:
            SpoolError: Redis cannot be reached.
        """
        room = self.room()
        if room <= 0:
            return []

        entries, missing = self._spool.claim(min(room, READ_BATCH))
        self.take(entries, foreign=True, refuse=refuse)
        return missing

    def take(
        self,
        entries: list[Entry],
        *,
        foreign: bool,
        refuse: Callable[[int, str], None],
    ) -> None:
        """Hand calls read from the stream to the outbox, in order.

        Args:
            entries: What was read or claimed.
            foreign: Whether they were claimed from a silent consumer.
            refuse: Settles a call that cannot be read, with the reason.
        """
        with self._handing:
            for entry in entries:
                row_id = self._track(entry, foreign=foreign)
                if row_id is None:
                    continue
                try:
                    self._hand(row_id, entry, refuse)
                finally:
                    with self._cond:
                        self._transit -= 1
                        self._mine.pop(entry.id, None)

    def _track(self, entry: Entry, *, foreign: bool) -> int | None:
        with self._cond:
            if entry.id in self._local:
                return None  # claimed back while held: keep the first

            if entry.id not in self._mine and self._committing:
                # Maybe this process's own, added by the commit whose
                # answer the writer has not read yet.
                self._seen.add(entry.id)
            self._next_id += 1
            row_id = self._next_id
            self._held[row_id] = entry.id
            self._local[entry.id] = row_id
            if foreign:
                self._foreign.add(row_id)
            self._transit += 1

            return row_id

    def _hand(
        self, row_id: int, entry: Entry, refuse: Callable[[int, str], None]
    ) -> None:
        try:
            call = from_payload(entry.endpoint, entry.body)
        except InvalidCall as error:
            refuse(row_id, f"unreadable: {error}")
            self._outbox.count("failed")
            return

        age = max(time.time() - entry.created, 0.0) if entry.created else 0.0
        with self._cond:
            if self._waiting:
                self._waiting.append((row_id, call, age))
                return

        if not self._give(row_id, call, age):
            with self._cond:
                self._waiting.append((row_id, call, age))

    def _give(self, row_id: int, call: Call, age: float) -> bool:
        accepted, start = self._outbox.put(
            call._parts, spool_id=row_id, age=age
        )
        if start:
            self._start_worker()

        return accepted

    def _drain_waiting(self) -> None:
        # Calls read while the outbox was full (of bytes), in order.
        while self._waiting:
            row_id, call, age = self._waiting[0]
            if not self._give(row_id, call, age):
                return

            with self._cond:
                self._waiting.popleft()

    def clear(self) -> int:
        """Forget every call; return how many stay in Redis for others."""
        with self._cond:
            left = len(self._mine) + len(self._waiting)
            self._mine.clear()
            self._waiting.clear()

        return left
