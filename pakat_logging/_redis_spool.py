"""The Redis outbox: accepted calls in one stream, shared by a fleet.

Every accepted call is an entry of the stream ``{prefix}:calls``. The
processes that deliver read it through one consumer group, so each entry
goes to one consumer; a consumer renews the entries it holds, and those of
a consumer that stopped renewing (it died, or froze) are claimed by another
after the claim timeout. Delivered entries are acknowledged and deleted;
refused ones move to the dead-letter stream ``{prefix}:refused``.

Every key carries the hash tag ``{prefix}``, so Redis Cluster keeps them
in one slot and one script may touch them all. Each group commit is one
script: its adds, acknowledgements and dead letters happen together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from ._redis_scripts import SCRIPTS
from ._redis_url import RedisTarget, connect, parse_redis_url
from ._spool import SpoolError, new_owner

__all__ = ["GROUP", "Entry", "RedisSpool"]

_T = TypeVar("_T")

GROUP = "delivery"
"""The consumer group that every delivering process reads through."""

COMMIT_MARK_TTL = 24 * 3600.0
"""Seconds Redis remembers a process's last group commit, so that a commit
retried after a lost answer is not added twice."""


class Entry(NamedTuple):
    """One call read from the stream."""

    id: str
    endpoint: str
    email: str
    body: bytes
    created: float


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: object, fields: dict[Any, Any] | None) -> Entry:
    found = {_text(key): value for key, value in (fields or {}).items()}
    body = found.get("body", b"")
    try:
        created = float(_text(found.get("created", 0)))
    except ValueError:
        created = 0.0

    return Entry(
        _text(entry_id),
        _text(found.get("endpoint", "")),
        _text(found.get("email", "")),
        body if isinstance(body, bytes) else str(body).encode(),
        created,
    )


class RedisSpool:
    """A Redis stream of calls waiting for delivery, and its side keys.

    One instance is shared by the threads of one sender: redis-py's
    clients are safe to use from several threads.

    Args:
        url: The spool URL (see :func:`parse_redis_url`).
        consumer: This process's name in the group (default: a new one
            naming the host and the pid).
        clock: Wall clock, for the times stored with calls (default:
            ``time.time``).
    """

    def __init__(
        self,
        url: str,
        *,
        consumer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Imported now, on the thread that makes the sender. The spool's
        # thread may first need redis-py at interpreter exit, in a script
        # that submits and ends: an import there fails half-way (it can no
        # longer register its exit hooks), and the calls would be lost.
        import redis  # noqa: F401, PLC0415 - loaded only for a Redis spool

        self.target: RedisTarget = parse_redis_url(url)
        self.consumer = consumer or new_owner()
        self._clock = clock
        prefix = "{" + self.target.prefix + "}"
        self.calls = f"{prefix}:calls"
        self.refused = f"{prefix}:refused"
        self._pause_key = f"{prefix}:pause"
        self._pace_key = f"{prefix}:pace"
        self._mark_key = f"{prefix}:commit:{self.consumer}"
        self._client: Any = None
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self._cursor = "0-0"

    @property
    def claim_timeout(self) -> float:
        """Seconds before another consumer claims a silent one's calls."""
        return self.target.claim_timeout

    def open(self) -> None:
        """Connect and make sure the consumer group exists.

        Raises:
            SpoolError: Redis cannot be reached or refuses; the message
                says why, without the password.
        """
        self._run(self._create_group)

    def _run(self, work: Callable[[], _T]) -> _T:
        import redis  # noqa: PLC0415 - loaded only for a Redis spool
        from redis.exceptions import RedisClusterException  # noqa: PLC0415

        try:
            self._connect()
            try:
                return work()
            except redis.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise

            # Redis lost the group (restarted without persistence): make
            # it again, then try once more.
            self._create_group()
            return work()
        except (redis.RedisError, RedisClusterException) as error:
            raise SpoolError(f"{type(error).__name__}: {error}") from error

    def _connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return

            client = connect(self.target)
            self._scripts = {
                name: client.register_script(source)
                for name, source in SCRIPTS.items()
            }
            self._client = client

    def _create_group(self) -> None:
        import redis  # noqa: PLC0415

        try:
            # From the stream's start: calls added before any process
            # delivered are read too.
            self._client.xgroup_create(self.calls, GROUP, "0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _script(self, name: str, keys: Sequence[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=list(keys), args=args)

    def commit(
        self,
        seq: int,
        calls: Sequence[tuple[str, str, bytes, float]],
        delivered: Sequence[str],
        refused: Sequence[tuple[str, str]],
        refused_max: int,
    ) -> tuple[list[str], int]:
        """Add calls and settle others, all in one script.

        Args:
            seq: This commit's number; a number not above the last one
                applied adds nothing (its answer was lost, not its work).
            calls: ``(endpoint, email, body, created)`` to add, in order.
            delivered: Entry ids to acknowledge and delete.
            refused: ``(entry id, reason)`` to move to the dead letters.
            refused_max: About how many dead letters to keep.

        Returns:
            The new entries' ids (empty when the commit was applied
            before) and the stream's length.
        """
        args: list[Any] = [
            GROUP,
            seq,
            int(COMMIT_MARK_TTL * 1000),
            refused_max,
            repr(self._clock()),
            len(calls),
            len(delivered),
            len(refused),
        ]
        for endpoint, email, body, created in calls:
            args.extend((endpoint, email, body, repr(created)))
        args.extend(delivered)
        for entry_id, reason in refused:
            args.extend((entry_id, reason))
        keys = (self.calls, self.refused, self._mark_key)

        ids, length = self._run(lambda: self._script("commit", keys, args))
        return [_text(entry_id) for entry_id in ids], int(length)

    def read(self, count: int, block: float) -> list[Entry]:
        """Take up to ``count`` calls no consumer has read yet.

        Args:
            count: Entries to read at most.
            block: Seconds to wait for one when there is none.
        """

        def work() -> Any:
            return self._client.xreadgroup(
                GROUP,
                self.consumer,
                {self.calls: ">"},
                count=count,
                block=max(int(block * 1000), 1),
            )

        answer = self._run(work)
        if isinstance(answer, dict):  # RESP3
            answer = list(answer.items())
        return [
            _entry(entry_id, fields)
            for _, entries in answer or []
            for entry_id, fields in entries
        ]

    def claim(self, count: int) -> tuple[list[Entry], list[str]]:
        """Claim calls that their consumers left unrenewed too long.

        Args:
            count: Entries to claim at most.

        Returns:
            The claimed entries, and the ids of claimed entries whose data
            is gone (deleted or trimmed), for acknowledgement.
        """
        idle = int(self.claim_timeout * 1000)
        answer = self._run(
            lambda: self._client.xautoclaim(
                self.calls,
                GROUP,
                self.consumer,
                idle,
                start_id=self._cursor,
                count=count,
            )
        )
        self._cursor = _text(answer[0])
        entries, missing = [], []
        for entry_id, fields in answer[1]:
            if fields is None:
                missing.append(_text(entry_id))
            else:
                entries.append(_entry(entry_id, fields))

        return entries, missing

    def renew(self, ids: Sequence[str]) -> int:
        """Reset the idle time of the calls this consumer holds.

        Entries that another consumer claimed meanwhile stay with it, and
        entries this consumer owns without holding them (a read whose
        answer was lost) are left to run out, so that a claim frees them.

        Args:
            ids: The entries this process holds.

        Returns:
            How many were renewed.
        """
        if not ids:
            return 0

        args = [GROUP, self.consumer, *ids]
        return int(
            self._run(lambda: self._script("renew", [self.calls], args))
        )

    def release(self, limit: int) -> int:
        """Put this consumer's calls back in the stream for anyone.

        Returns:
            How many calls were put back.
        """
        args = [GROUP, self.consumer, max(limit, 1)]
        return int(
            self._run(lambda: self._script("release", [self.calls], args))
        )

    def gone(self, ids: Sequence[str]) -> list[str]:
        """Return which of ``ids`` are no longer in the stream (settled)."""
        if not ids:
            return []

        found = self._run(lambda: self._script("gone", [self.calls], [*ids]))
        return [_text(entry_id) for entry_id in found]

    def gate(self, interval: float, *, recheck: bool) -> float:
        """Take the fleet's next send slot; return the seconds until it.

        Args:
            interval: Seconds between two sends of the fleet (0: no rate
                limit; only a pause delays).
            recheck: Take no slot unless a pause began since the last one.
        """
        args = [int(interval * 1e6), "1" if recheck else "0"]
        keys = [self._pause_key, self._pace_key]
        wait = self._run(lambda: self._script("gate", keys, args))
        return max(int(wait), 0) / 1e6

    def pause(self, seconds: float) -> None:
        """Hold every process of the fleet back for ``seconds``."""
        args = [max(int(seconds * 1000), 1)]
        self._run(lambda: self._script("pause", [self._pause_key], args))

    def sweep(self, idle: float) -> int:
        """Delete consumers that hold nothing and were idle for ``idle`` s.

        Returns:
            How many were deleted.
        """
        args = [GROUP, int(idle * 1000)]
        return int(
            self._run(lambda: self._script("sweep", [self.calls], args))
        )

    def close(self) -> None:
        """Close the connections; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
