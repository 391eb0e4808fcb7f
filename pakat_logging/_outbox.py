"""The in-memory outbox: per-contact lanes, retry delays and the counters.

Calls for one e-mail form a lane and leave it strictly in order: the head
of a lane is either ready, waiting out a retry delay, or in flight, and the
calls behind it wait. Different lanes go out in parallel, round robin.
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable

from ._calls import Call

__all__ = ["COUNTERS", "Item", "Outbox"]

COUNTERS = (
    "submitted",
    "delivered",
    "retried",
    "failed",
    "dropped",
    "possible_duplicates",
)


class Item:
    """One accepted call and its delivery state."""

    __slots__ = ("ambiguous", "attempts", "born", "call", "seq", "size")

    def __init__(self, call: Call, seq: int, born: float) -> None:
        self.call = call
        self.seq = seq
        self.born = born
        self.size = call.size
        self.attempts = 0
        self.ambiguous = False

    @property
    def lane(self) -> str:
        """The lane's key: the call's e-mail."""
        return self.call.email or ""


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
        self.lock = threading.Lock()
        self._work = threading.Condition(self.lock)
        self._settled = threading.Condition(self.lock)
        self._clock = clock
        self._max_size = max_size
        self._max_bytes = max_bytes
        self._max_workers = max_workers
        self._lanes: dict[str, collections.deque[Item]] = {}
        self._ready: collections.deque[str] = collections.deque()
        self._delayed: list[tuple[float, int, str]] = []
        self._unsettled: collections.OrderedDict[int, None] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._seq = 0
        self._idle = 0
        self._paused_until = 0.0
        self._stopping = False
        self.workers = 0
        self.counts = dict.fromkeys(COUNTERS, 0)

    @property
    def pending(self) -> int:
        """Calls accepted and not yet settled (queued or in flight)."""
        return len(self._unsettled)

    @property
    def last_seq(self) -> int:
        """The sequence number of the latest accepted call."""
        return self._seq

    def put(self, call: Call) -> tuple[bool, bool]:
        """Accept ``call`` unless the outbox is full or stopping.

        Returns:
            ``(accepted, start_worker)``: whether the call was taken, and
            whether the caller must start the first worker (already
            counted in ``workers``).
        """
        with self.lock:
            self.counts["submitted"] += 1
            size = call.size
            if (
                self._stopping
                or len(self._unsettled) >= self._max_size
                or self._bytes + size > self._max_bytes
            ):
                self.counts["dropped"] += 1
                return False, False

            self._seq += 1
            self._enqueue(Item(call, self._seq, self._clock()))
            start = self.workers == 0
            if start:
                self.workers = 1

            return True, start

    def _enqueue(self, item: Item) -> None:
        self._unsettled[item.seq] = None
        self._bytes += item.size
        lane = self._lanes.get(item.lane)
        if lane is None:
            self._lanes[item.lane] = collections.deque((item,))
            self._ready.append(item.lane)
            self._work.notify()
        else:
            lane.append(item)

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
        while not self._stopping:
            now = self._clock()
            self._release_due(now)
            if self._ready and now >= self._paused_until:
                return self._take_ready()

            if now >= idle_deadline and (self.workers > 1 or not self._lanes):
                break

            self._work.wait(self._next_wake(now, idle_deadline))

        self.workers -= 1
        return None, False

    def _next_wake(self, now: float, idle_deadline: float) -> float:
        wake = idle_deadline
        if self._delayed:
            wake = min(wake, self._delayed[0][0])
        if self._ready:
            wake = min(wake, self._paused_until)

        return max(wake - now, 0.001)

    def _take_ready(self) -> tuple[Item, bool]:
        item = self._lanes[self._ready.popleft()][0]
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
        with self.lock:
            self.counts[outcome] += 1
            if item.seq not in self._unsettled:
                return

            del self._unsettled[item.seq]
            self._bytes -= item.size
            lane = self._lanes[item.lane]
            lane.popleft()
            if lane:
                self._ready.append(item.lane)
                self._work.notify()
            else:
                del self._lanes[item.lane]
            self._settled.notify_all()

    def retry(self, item: Item, due: float) -> None:
        """Keep ``item`` at the head of its lane until ``due``.

        Args:
            item: A call returned by :meth:`take`.
            due: Monotonic time of the next attempt.
        """
        with self.lock:
            self.counts["retried"] += 1
            if item.seq not in self._unsettled:
                return

            heapq.heappush(self._delayed, (due, item.seq, item.lane))
            self._work.notify()

    def release_worker(self) -> None:
        """Uncount a worker that was counted but could not start."""
        with self.lock:
            self.workers -= 1

    def pause(self, until: float) -> None:
        """Hold every call back until the monotonic time ``until``."""
        with self.lock:
            self._paused_until = max(self._paused_until, until)

    def count(self, counter: str, amount: int = 1) -> None:
        """Add ``amount`` to one counter."""
        with self.lock:
            self.counts[counter] += amount

    def wait_settled(self, seq: int, timeout: float | None) -> bool:
        """Wait until every call up to ``seq`` is settled.

        Args:
            seq: A value of :attr:`last_seq`.
            timeout: Seconds to wait at most, or ``None`` for no limit.

        Returns:
            ``True`` when they are all settled.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self.lock:
            while self._unsettled and next(iter(self._unsettled)) <= seq:
                remaining = (
                    None if deadline is None else deadline - self._clock()
                )
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(remaining)

            return True

    def stop(self) -> list[Item]:
        """Refuse new calls, release the workers, and hand back the rest.

        Returns:
            The calls that were queued and not in flight, oldest first;
            they are settled here without being counted.
        """
        with self.lock:
            self._stopping = True
            self._work.notify_all()
            in_flight = set(self._lanes) - set(self._ready)
            in_flight.difference_update(lane for _, _, lane in self._delayed)
            left = [
                item
                for lane, items in self._lanes.items()
                for item in (
                    items if lane not in in_flight else list(items)[1:]
                )
            ]
            for item in left:
                self._unsettled.pop(item.seq, None)
            self._settled.notify_all()

            return sorted(left, key=lambda item: item.seq)

    def snapshot(self) -> dict[str, int]:
        """Return the counters and the number of pending calls."""
        with self.lock:
            return {**self.counts, "pending": len(self._unsettled)}
