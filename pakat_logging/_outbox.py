"""The in-memory outbox: per-contact lanes, retry delays and the counters.

Calls for one e-mail form a lane and leave it strictly in order: the head
of a lane is either ready, waiting out a retry delay, or in flight, and the
calls behind it wait. Different lanes go out in parallel, round robin.

A call from the application's thread usually takes no lock: it is appended
to an intake, and whoever next holds the lock moves the intake into the
lanes. That is a worker about to take a call, a flush, or the caller itself
when the intake is out of room or a new contact's call needs a worker.
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable

from ._calls import FRAME_SIZE, Parts, from_parts, size_of
from ._quick import DEFERRED_TEXT_MAX, Deferred, finish
from ._reentry import Section

__all__ = [
    "COUNTERS",
    "LINGER",
    "POLL_INTERVAL",
    "SLOW_START_GRACE",
    "Item",
    "Outbox",
    "ReentryError",
]

SLOW_START_GRACE = 0.5
"""Seconds one call may be in flight alone, at the start and after a pause,
before the calls of other contacts go out beside it without waiting for
its answer."""

_FAST_SIZE = 2048
"""Bytes at most of a call that may go into the intake without the lock."""

# The same, less what size_of adds to the fields and the e-mail, and less
# what a deferred call's properties add to them once encoded.
_FAST_TEXT = _FAST_SIZE - FRAME_SIZE - DEFERRED_TEXT_MAX

_MARGIN = 64
"""Room, in calls, kept free below both bounds while the lock is skipped.

The bounds are checked before the lock-free append, so each thread that
passes the check at the same instant may add one call: the margin covers
that many threads.
"""

LINGER = 1.0
"""Seconds after a worker last took a call during which one idle worker
looks at the intake every POLL_INTERVAL, so that a call needs no wake."""

POLL_INTERVAL = 0.02
"""Seconds between those looks: how long such a call may wait to start."""

_POLLED = 8
"""New contacts' calls at most left in the intake for that worker to find.

One more takes the lock, so that a burst still wakes or starts workers
from the caller's thread: at exit, Python 3.12+ starts no thread, and a
burst must not then go out one worker at a time.
"""

COUNTERS = (
    "delivered",
    "retried",
    "failed",
    "dropped",
    "spooled",
    "possible_duplicates",
)


# What a lane holds: (sequence number, call's parts, monotonic time
# accepted, spool row id or None). A tuple of plain values costs the
# caller's thread far less than an object, and the garbage collector stops
# tracking it; the Item with the call and its delivery state is made by
# the worker.
_Entry = tuple[int, Parts, float, "int | None"]

# What the intake holds: (call's parts, monotonic time accepted, spool row
# id or None); the sequence number is given when it reaches its lane. A new
# call that is not from a spool goes in as its parts alone, and takes the
# time it reaches its lane as the time accepted (see put).
_Intake = tuple[Parts, float, "int | None"]

_TAKEN = (True, False)


def _entry(waiting: _Intake | Parts | Deferred, now: float) -> _Intake:
    """Return what the intake held as an entry, stamped ``now`` if new."""
    if len(waiting) == 4:
        return (waiting, now, None)
    if len(waiting) == 5:
        return (finish(waiting), now, None)

    return waiting


class ReentryError(RuntimeError):
    """The outbox was entered again by the thread that is inside it.

    A signal handler, or a finalizer that the garbage collector runs,
    interrupted this thread while it held the outbox, and called the
    sender. Going on would change the outbox half-way through a change,
    and waiting for the lock would never end.
    """


class Item:
    """One accepted call and its delivery state, owned by a worker."""

    __slots__ = (
        "ambiguous",
        "attempts",
        "born",
        "call",
        "lane",
        "seq",
        "spool_id",
    )

    def __init__(self, entry: _Entry) -> None:
        self.seq, parts, self.born, self.spool_id = entry
        self.call = from_parts(parts)
        self.lane = parts[1] or ""
        self.attempts = 0
        self.ambiguous = False


class Outbox:
    """A bounded queue of calls with ordered lanes and timed retries.

    Args:
        max_size: Calls held at most, in flight included.
        max_bytes: Encoded bytes held at most.
        max_workers: Workers that may take calls at once.
        clock: Monotonic clock (default: ``time.monotonic``).
    """

    def __init__(
        self,
        max_size: int,
        max_bytes: int,
        max_workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Reentrant, with inside set for each change that an application's
        # thread makes (see _reentry); the workers' own waits leave it
        # clear. A call that finds it set is refused with ReentryError.
        self.lock = threading.RLock()
        self.inside = False
        # Counts added by a refused entry, while inside forbade touching
        # the counters: folded in by the next snapshot.
        self._late: collections.deque[tuple[str, int]] = collections.deque()
        self._work = threading.Condition(self.lock)
        self._settled = threading.Condition(self.lock)
        self._clock = clock
        self._max_size = max_size
        self._max_bytes = max_bytes
        self._max_workers = max_workers
        # Appended to by any thread without the lock; emptied under it.
        self._intake: collections.deque[_Intake | Parts | Deferred] = (
            collections.deque()
        )
        # How long the intake may grow without the lock: what both bounds
        # leave, less _MARGIN; 0 once stopping. Set again under the lock
        # by every change to what the lanes hold (see _refresh).
        self._room = 0
        self._lanes: dict[str, collections.deque[_Entry]] = {}
        self._held: dict[str, Item] = {}
        # Lanes whose head a worker is sending, and since when.
        self._flying: dict[str, float] = {}
        # Whether the tracker has answered since the start or the last
        # pause; until then, one call probes it alone (see _opens_at).
        self._answered = False
        self._ready: collections.deque[str] = collections.deque()
        self._delayed: list[tuple[float, int, str]] = []
        # The sequence numbers of the calls accepted and not yet settled.
        # A set is the cheapest to add to on the caller's thread; the
        # oldest of them is found upwards from _floor (see _oldest).
        self._unsettled: set[int] = set()
        self._floor = 1
        self._bytes = 0
        self._seq = 0
        self._idle = 0
        # Whether an idle worker looks at the intake every POLL_INTERVAL,
        # as one does for LINGER seconds after it last took a call: a new
        # contact's call then needs no worker woken, and takes no lock.
        self._polling = False
        self._linger_until = 0.0
        self._paused_until = 0.0
        self._stopping = False
        self.workers = 0
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._refresh()

    @property
    def pending(self) -> int:
        """Calls accepted and not yet settled (queued or in flight)."""
        return len(self._unsettled) + len(self._intake)

    @property
    def room(self) -> int:
        """How many more calls the outbox would take now."""
        return max(self._max_size - self.pending, 0)

    def put(
        self,
        parts: Parts | Deferred,
        spool_id: int | None = None,
        age: float = 0.0,
    ) -> tuple[bool, bool]:
        """Accept a call unless the outbox is full or stopping.

        Args:
            parts: The call to deliver, as its ``_parts``, or as the
                :data:`~pakat_logging._quick.Deferred` form that the fast
                path of a marker makes, encoded as it leaves the intake.
            spool_id: Its row in the spool; a spooled call that finds the
                outbox full stays on disk instead of counting as dropped
                (default: ``None``, not spooled).
            age: Seconds since the call was first accepted (default: 0).

        Returns:
            ``(accepted, start_worker)``: whether the call was taken, and
            whether the caller must start a worker (already counted in
            ``workers``): the first one, or one more when a new contact's
            call finds every worker busy.

        Raises:
            ReentryError: This thread is inside the outbox already, and the
                call could not go into the intake; it is neither taken nor
                counted.
        """
        # This runs on the application's thread for every call, so the
        # common case takes no lock: with room to spare, a small call is
        # appended to the intake, which deque does atomically.
        email = parts[1]
        intake = self._intake
        if (
            len(intake) < self._room
            and type(email) is str
            and len(parts[2]) + len(email) <= _FAST_TEXT
        ):
            # A new call as its parts alone, the commonest case: no clock
            # read and no tuple on the caller's thread. It is stamped when it
            # reaches its lane, which is as late as the intake waits for a
            # holder of the lock; the age that max_age is checked against
            # can only read younger for it, never older.
            if spool_id is None and not age:
                intake.append(parts)
            else:
                intake.append((finish(parts), self._clock() - age, spool_id))
            # Looked at after the append. A call whose contact has a lane
            # waits behind the lane's head, and whoever settles that head
            # takes the intake with it. A new contact's call may need a
            # worker woken or started. A worker counts itself idle under
            # the lock before it empties the intake, so either it finds
            # this call there or this finds it idle and wakes it.
            if (
                not self._room
                or not self.workers
                or (
                    email not in self._lanes
                    and (not self._polling or len(intake) > _POLLED)
                    and (self._idle or self.workers < self._max_workers)
                )
            ):
                # A worker to wake or start, or stop() has begun.
                return self._admit(None)

            return _TAKEN

        return self._admit((finish(parts), self._clock() - age, spool_id))

    def _admit(self, entry: _Intake | None) -> tuple[bool, bool]:
        """Move the intake into the lanes, then ``entry`` unless refused.

        ``entry`` is ``None`` when the call is in the intake already.
        """
        # acquire and release, not "with" (nor Section, whose test this
        # spells out): on CPython 3.11 the with statement makes taking and
        # leaving the lock cost 1.6 to 2.2 times as much.
        self.lock.acquire()
        if self.inside:
            self.lock.release()
            if entry is None:
                # The change that this interrupted, or the next one, moves
                # the call on.
                return _TAKEN
            raise ReentryError
        self.inside = True
        try:
            new = self._drain()
            if entry is not None:
                parts, _, spool_id = entry
                if (
                    self._stopping
                    or len(self._unsettled) >= self._max_size
                    or self._bytes + size_of(parts) > self._max_bytes
                ):
                    if spool_id is None:
                        self.counts["dropped"] += 1
                    return False, False
                if self._enqueue(entry):
                    new += 1
                    if self._idle:
                        self._work.notify()
                self._refresh()
            elif self._stopping:
                # The call came after stop() had emptied the intake: _drain
                # counted it as dropped.
                return False, False

            # More contacts wait than workers are free, perhaps because
            # every worker is stuck on a slow answer: a new contact's call
            # must not wait for them. Starting here, and not only from a
            # worker that finds a backlog, matters at exit too: Python
            # 3.12+ starts no thread then, and a burst logged just before
            # must not go out one worker at a time.
            if self.workers and not (
                new
                and self._idle < len(self._ready)
                and self.workers < self._max_workers
            ):
                return _TAKEN
            if not self._lanes:
                return _TAKEN

            self.workers += 1
            return True, True
        finally:
            self.inside = False
            self.lock.release()

    def _drain(self) -> int:
        """Move the intake into the lanes; return how many lanes it opened.

        Called under the lock with ``inside`` set. Once the outbox is
        stopping, what the intake holds is refused and counted instead.
        """
        intake = self._intake
        if self._stopping:
            while intake:
                if _entry(intake.popleft(), 0.0)[2] is None:
                    self.counts["dropped"] += 1
            return 0

        # _enqueue for each call, spelled out: this runs once for every
        # call that the application makes.
        lanes, ready, unsettled = self._lanes, self._ready, self._unsettled
        new = 0
        # Read even when the intake looks empty: a call may land before the
        # loop below looks again.
        now = self._clock()
        # Until empty, not a loop over the deque: other threads may append
        # meanwhile. Each call leaves the intake only once it is counted
        # as unsettled, so pending, read without the lock, never misses it.
        while intake:
            # _entry(intake[0], now)
            waiting = intake[0]
            if len(waiting) == 4:
                parts, born, spool_id = waiting, now, None
            elif len(waiting) == 5:
                parts, born, spool_id = finish(waiting), now, None
            else:
                parts, born, spool_id = waiting
            self._seq = seq = self._seq + 1
            unsettled.add(seq)
            email = parts[1] or ""
            # size_of(parts)
            self._bytes += len(parts[2]) + len(email) + FRAME_SIZE
            queued = (seq, parts, born, spool_id)
            lane = lanes.get(email)
            if lane is not None:
                lane.append(queued)
            else:
                lanes[email] = collections.deque((queued,))
                ready.append(email)
                new += 1
            # The room was reckoned with this call outside the lanes: as it
            # moves in, the room shrinks with it, or other threads could
            # fill the intake again while it empties.
            if self._room:
                self._room -= 1
            intake.popleft()
        if new and self._idle:
            self._work.notify(new)
        self._refresh()
        return new

    def _enqueue(self, entry: _Intake) -> int:
        """Put ``entry`` at the end of its lane; return 1 if it opened one."""
        parts, born, spool_id = entry
        self._seq = seq = self._seq + 1
        self._unsettled.add(seq)
        self._bytes += size_of(parts)
        email = parts[1] or ""
        queued = (seq, parts, born, spool_id)
        lane = self._lanes.get(email)
        if lane is not None:
            lane.append(queued)
            return 0

        self._lanes[email] = collections.deque((queued,))
        self._ready.append(email)
        return 1

    def _refresh(self) -> None:
        # Under the lock, after a change to the bounds' use or to stopping.
        if self._stopping:
            self._room = 0
        else:
            calls = self._max_size - len(self._unsettled)
            size = (self._max_bytes - self._bytes) // _FAST_SIZE
            self._room = max(min(calls, size) - _MARGIN, 0)

    def take(self, idle_timeout: float) -> tuple[Item | None, bool]:
        """Wait for the next call that may be sent now.

        Args:
            idle_timeout: Seconds without work after which a worker that
                is not the last one needed may stop.

        Returns:
            ``(item, grow)``: the call to send, or ``None`` when this
            worker should stop (it is already uncounted); and whether
            a backlog asks for one more worker (already counted).
        """
        with self.lock:
            self._idle += 1
            try:
                return self._wait_for_item(self._clock() + idle_timeout)
            finally:
                self._idle -= 1

    def _wait_for_item(self, idle_deadline: float) -> tuple[Item | None, bool]:
        polling = False
        while not self._stopping:
            now = self._clock()
            self._release_due(now)
            self._move_intake()
            ready = bool(self._ready) and (
                now >= self._paused_until and now >= self._opens_at()
            )
            leaving = ready or (
                now >= idle_deadline and (self.workers > 1 or not self._lanes)
            )
            if polling and (leaving or now >= self._linger_until):
                # Callers count on this worker to look at the intake until
                # the flag drops: one more look, for a call that came in
                # just before it did.
                self._polling = polling = False
                continue
            if ready:
                return self._take_ready(now)
            if leaving:
                break

            wait = self._next_wake(now, idle_deadline)
            if not self._polling and now < self._linger_until:
                self._polling = polling = True
            self._work.wait(min(wait, POLL_INTERVAL) if polling else wait)

        if polling:
            self._polling = False
        self.workers -= 1
        return None, False

    def _move_intake(self) -> None:
        # _drain for a holder of the lock that is in no change of its own:
        # a worker between waits, or a flush. inside is set meanwhile, so
        # that a signal handler's call on this thread leaves it alone.
        self.inside = True
        try:
            self._drain()
        finally:
            self.inside = False

    def _next_wake(self, now: float, idle_deadline: float) -> float:
        wake = idle_deadline
        if self._delayed:
            wake = min(wake, self._delayed[0][0])
        if self._ready:
            wake = min(wake, max(self._paused_until, self._opens_at()))

        return max(wake - now, 0.001)

    def _opens_at(self) -> float:
        """Return when the next call may join those in flight.

        At the start and after a pause (a 429, a wrong key), one call goes
        alone: if the tracker still refuses, only that one is refused, not
        one per worker. Once it has answered, or has been silent for
        SLOW_START_GRACE, the others follow; so a call that hangs until
        its timeout never holds back other contacts for long.
        """
        if self._answered or not self._flying:
            return 0.0

        return min(self._flying.values()) + SLOW_START_GRACE

    def _take_ready(self, now: float) -> tuple[Item, bool]:
        self._linger_until = now + LINGER
        key = self._ready.popleft()
        item = self._held.get(key)
        if item is None:
            item = self._held[key] = Item(self._lanes[key][0])
        self._flying[key] = now
        grow = (
            bool(self._ready)
            and self._idle <= 1
            and self.workers < self._max_workers
        )
        if grow:
            self.workers += 1

        return item, grow

    def _release_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, lane = heapq.heappop(self._delayed)
            self._ready.append(lane)

    def settle(self, item: Item, outcome: str) -> None:
        """Finish ``item`` as ``outcome`` and let its lane move on.

        Args:
            item: A call returned by :meth:`take`.
            outcome: The counter to increase: ``"delivered"``,
                ``"failed"`` or ``"dropped"``.
        """
        with Section(self):
            self.counts[outcome] += 1
            if not self._answered and outcome in ("delivered", "failed"):
                self._answered = True
                self._work.notify_all()
            if item.seq not in self._unsettled:
                return

            self._unsettled.remove(item.seq)
            del self._held[item.lane]
            self._flying.pop(item.lane, None)
            self._bytes -= item.call.size
            lane = self._lanes[item.lane]
            lane.popleft()
            if lane:
                self._ready.append(item.lane)
                self._work.notify()
            else:
                del self._lanes[item.lane]
            self._refresh()
            self._settled.notify_all()

    def retry(self, item: Item, due: float) -> None:
        """Keep ``item`` at the head of its lane until ``due``.

        Args:
            item: A call returned by :meth:`take`.
            due: Monotonic time of the next attempt.
        """
        with Section(self):
            self.counts["retried"] += 1
            if item.seq not in self._unsettled:
                return

            self._flying.pop(item.lane, None)
            heapq.heappush(self._delayed, (due, item.seq, item.lane))
            self._work.notify()

    def adopt_worker(self) -> bool:
        """Count the caller as the only worker, if calls wait and none runs.

        Returns:
            Whether the caller is now counted as a worker.
        """
        with Section(self) as entered:
            if not entered:
                return False
            self._drain()
            if self.workers or not self._lanes:
                return False

            self.workers = 1
            return True

    def release_worker(self) -> None:
        """Uncount a worker that was counted but could not start."""
        with self.lock:
            self.workers -= 1

    def pause(self, until: float) -> None:
        """Hold every call back until the monotonic time ``until``."""
        with self.lock:
            self._paused_until = max(self._paused_until, until)
            self._answered = False

    def count(self, counter: str, amount: int = 1) -> None:
        """Add ``amount`` to one counter."""
        with Section(self) as entered:
            if entered:
                self.counts[counter] += amount
            else:
                self._late.append((counter, amount))

    def wait_settled(self, timeout: float | None) -> bool:
        """Wait until every call accepted so far is settled.

        Args:
            timeout: Seconds to wait at most, or ``None`` for no limit.

        Returns:
            ``True`` when they are all settled. ``False`` at once when this
            thread is inside the outbox already: waiting there would let
            the workers change it under the interrupted change.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self.lock:
            if self.inside:
                return False
            self._move_intake()
            seq = self._seq
            while (oldest := self._oldest()) is not None and oldest <= seq:
                remaining = (
                    None if deadline is None else deadline - self._clock()
                )
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(remaining)

            return True

    def _oldest(self) -> int | None:
        # Every unsettled number is at least _floor, so the walk ends; each
        # number is walked past once in the outbox's life.
        unsettled = self._unsettled
        if not unsettled:
            return None

        floor = self._floor
        while floor not in unsettled:
            floor += 1
        self._floor = floor
        return floor

    def stop(self) -> list[Item]:
        """Refuse new calls, release the workers, and hand back the rest.

        Returns:
            The calls that were queued and not in flight, oldest first;
            they are settled here without being counted. A retried call
            keeps its attempts, so the caller can tell it may have arrived.
            Empty when this thread is inside the outbox already: the calls
            then stay queued, and pending.
        """
        with Section(self) as entered:
            # First: a signal handler's call from here on finds no room.
            self._room = 0
            self._stopping = True
            self._work.notify_all()
            if not entered:
                return []
            # What came in before: handed back with the rest. A call that
            # comes in from now on finds no room, and is refused.
            intake = self._intake
            now = self._clock()
            while intake:
                self._enqueue(_entry(intake.popleft(), now))
            left: list[Item] = []
            for key, lane in self._lanes.items():
                entries = list(lane)
                if key in self._flying:
                    # A worker has the head: it settles it when done.
                    entries = entries[1:]
                elif key in self._held:
                    # The head waits for a retry, its delay over or not.
                    left.append(self._held[key])
                    entries = entries[1:]
                left.extend(map(Item, entries))
            for item in left:
                self._unsettled.discard(item.seq)
            self._settled.notify_all()

            left.sort(key=_by_seq)
            return left

    def snapshot(self, outside: int = 0) -> dict[str, int]:
        """Return the counters, the pending calls and their sum.

        Args:
            outside: Calls pending outside the outbox (on their way to it,
                or waiting on disk for room).
        """
        with Section(self) as entered:
            if entered:
                while self._late:
                    counter, amount = self._late.popleft()
                    self.counts[counter] += amount
            counts = {**self.counts, "pending": self.pending + outside}
        for counter, amount in list(self._late):
            counts[counter] += amount

        # Every call given to submit ends in exactly one of these, so the
        # total needs no counter of its own on the caller's path.
        settled = ("delivered", "failed", "dropped", "spooled", "pending")
        return {"submitted": sum(counts[name] for name in settled), **counts}


def _by_seq(item: Item) -> int:
    return item.seq
