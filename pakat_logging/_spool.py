"""The disk outbox: accepted calls in an SQLite file, until delivered.

Rows are claimed by the process that delivers them; a claim is a lease
that its owner renews, so the rows of a process that died are taken over
by another once the lease runs out. Delivered rows are deleted; rows the
tracker refuses for good move to a table of their own, for inspection.
"""

from __future__ import annotations

import os
import pathlib
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "DEFAULT_LEASE",
    "Row",
    "Spool",
    "SpoolError",
    "check_spool_path",
]

_T = TypeVar("_T")

DEFAULT_LEASE = 30.0
"""Seconds a claim lasts unless its owner renews it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    email TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    claimed_by TEXT,
    claimed_until REAL
);
CREATE INDEX IF NOT EXISTS calls_claim ON calls (claimed_by, id);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    email TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    refused REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class SpoolError(Exception):
    """The spool file cannot be used: corrupt, locked, or not a spool."""


class Row(NamedTuple):
    """One spooled call."""

    id: int
    endpoint: str
    email: str
    body: bytes
    created: float
    foreign: bool
    """Whether it was taken over from another process's expired claim."""


def check_spool_path(path: str) -> str:
    """Check that a spool can live at ``path``, without creating anything.

    Args:
        path: The spool file's path.

    Returns:
        The absolute path.

    Raises:
        ValueError: Its folder is missing or not writable, or the path is
            a folder.
    """
    full = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        raise ValueError(f"spool {path!r} is in a folder that does not exist")

    if os.path.isdir(full):
        raise ValueError(f"spool {path!r} is a folder, not a file")

    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"spool {path!r} is in a folder that is not writable")

    if os.path.exists(full) and not os.access(full, os.R_OK | os.W_OK):
        raise ValueError(f"spool {path!r} cannot be read and written")

    return full


def _row(values: Sequence[Any], *, foreign: bool) -> Row:
    row_id, endpoint, email, body, created = values[:5]
    return Row(
        int(row_id),
        str(endpoint),
        str(email),
        bytes(body),
        float(created),
        foreign,
    )


def _alive(owner: str) -> bool:
    """Return whether the process named ``owner`` may still be running.

    Only a process on this machine can be known dead for sure; one that
    is elsewhere, or whose name does not parse, keeps its lease.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True

    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True

    return True


def new_owner() -> str:
    """Return an owner name unique to this process and this moment."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Spool:
    """An SQLite file of calls waiting for delivery.

    Every method runs its statements in one transaction. The connection
    is shared by the threads of one sender under a lock; a forked child
    must open its own.

    Args:
        path: The spool file; created on :meth:`open` if missing.
        owner: This process's name in claims (default: a new one).
        lease: Seconds a claim lasts unless renewed (default:
            ``DEFAULT_LEASE``).
        clock: Wall clock, shared by every process on the machine
            (default: ``time.time``).
    """

    def __init__(
        self,
        path: str,
        *,
        owner: str | None = None,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.owner = owner or new_owner()
        self.lease = lease
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._read_only = False

    def open(self, *, read_only: bool = False) -> None:
        """Open the file, creating the tables if needed.

        Args:
            read_only: Open for inspection only: nothing is created or
                written, and a file without the spool's tables is refused
                (default: ``False``).

        Raises:
            SpoolError: The file is not a usable spool; the message says
                why.
        """
        self._read_only = read_only
        if read_only:
            self._db = self._open_read_only()
            return

        try:
            db = sqlite3.connect(
                self.path,
                timeout=10.0,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a killed process; only
            # a crash of the whole machine can lose the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise SpoolError(f"{type(error).__name__}: {error}") from error

        self._db = db

    def _open_read_only(self) -> sqlite3.Connection:
        uri = f"{pathlib.Path(self.path).absolute().as_uri()}?mode=ro"
        try:
            db = sqlite3.connect(
                uri,
                uri=True,
                timeout=10.0,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise SpoolError(f"{type(error).__name__}: {error}") from error

        try:
            tables = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        except sqlite3.Error as error:
            db.close()
            raise SpoolError(f"{type(error).__name__}: {error}") from error

        if not {"calls", "refused"} <= tables:
            db.close()
            raise SpoolError(
                "not a spool: it lacks the calls or refused table"
            )

        return db

    def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        db = self._db
        if db is None:
            raise SpoolError("the spool is not open")

        with self._lock:
            try:
                # A reader takes no write lock, so a live sender goes on.
                db.execute("BEGIN" if self._read_only else "BEGIN IMMEDIATE")
                result = work(db)
                db.execute("COMMIT")
            except sqlite3.Error as error:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise SpoolError(f"{type(error).__name__}: {error}") from error

        return result

    def insert(
        self, calls: Sequence[tuple[str, str, bytes, float]]
    ) -> list[int]:
        """Store calls claimed by this process; return their row ids.

        Args:
            calls: ``(endpoint, email, body, created)`` for each call.
        """
        until = self._clock() + self.lease

        def work(db: sqlite3.Connection) -> list[int]:
            ids = []
            for endpoint, email, body, created in calls:
                cursor = db.execute(
                    "INSERT INTO calls (endpoint, email, body, created,"
                    " claimed_by, claimed_until) VALUES (?, ?, ?, ?, ?, ?)",
                    (endpoint, email, body, created, self.owner, until),
                )
                ids.append(int(cursor.lastrowid or 0))
            return ids

        return self._run(work)

    def settle(
        self,
        delivered: Iterable[int],
        refused: Iterable[tuple[int, str]],
    ) -> None:
        """Delete delivered rows and move refused ones aside.

        Args:
            delivered: Row ids of delivered calls.
            refused: ``(row id, reason)`` of calls refused for good.
        """
        done = [(row_id,) for row_id in delivered]
        moved = [(self._clock(), reason, row_id) for row_id, reason in refused]

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO refused SELECT id, endpoint, email,"
                " body, created, ?, ? FROM calls WHERE id = ?",
                moved,
            )
            db.executemany("DELETE FROM calls WHERE id = ?", done)
            db.executemany(
                "DELETE FROM calls WHERE id = ?", [(m[2],) for m in moved]
            )

        self._run(work)

    def renew(self) -> None:
        """Extend every claim of this process by one lease."""
        until = self._clock() + self.lease
        self._run(
            lambda db: (
                db.execute(
                    "UPDATE calls SET claimed_until = ? WHERE claimed_by = ?",
                    (until, self.owner),
                ).rowcount
            )
        )

    def own(self, after: int, limit: int) -> list[Row]:
        """Return this process's rows with ids above ``after``, in order."""
        return self._run(
            lambda db: [
                _row(row, foreign=False)
                for row in db.execute(
                    "SELECT id, endpoint, email, body, created FROM calls"
                    " WHERE claimed_by = ? AND id > ? ORDER BY id LIMIT ?",
                    (self.owner, after, limit),
                )
            ]
        )

    def adopt(self, limit: int) -> list[Row]:
        """Claim up to ``limit`` rows nobody holds, oldest first.

        A row nobody holds was released by a process that closed, or
        claimed by one whose lease ran out (it died, or froze): the latter
        may have been delivered already, so it is marked ``foreign``.
        """
        now = self._clock()

        def work(db: sqlite3.Connection) -> list[Row]:
            dead = [
                (owner,)
                for (owner,) in db.execute(
                    "SELECT DISTINCT claimed_by FROM calls"
                    " WHERE claimed_by IS NOT NULL AND claimed_by != ?",
                    (self.owner,),
                )
                if not _alive(owner)
            ]
            db.executemany(
                "UPDATE calls SET claimed_until = 0 WHERE claimed_by = ?", dead
            )
            rows = db.execute(
                "SELECT id, endpoint, email, body, created, claimed_by"
                " FROM calls WHERE claimed_by IS NULL OR claimed_until < ?"
                " ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE calls SET claimed_by = ?, claimed_until = ?"
                " WHERE id = ?",
                [(self.owner, now + self.lease, row[0]) for row in rows],
            )
            return [_row(row, foreign=row[5] is not None) for row in rows]

        return self._run(work)

    def release(self) -> int:
        """Give up this process's claims; return how many rows it held."""

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE calls SET claimed_by = NULL, claimed_until = NULL"
                " WHERE claimed_by = ?",
                (self.owner,),
            )
            return cursor.rowcount

        return self._run(work)

    def count(self) -> int:
        """Return the number of calls waiting in the spool."""
        return self._run(
            lambda db: int(
                db.execute("SELECT count(*) FROM calls").fetchone()[0]
            )
        )

    def summary(self) -> dict[str, float]:
        """Return counts for inspection: waiting, claimed, refused, oldest.

        ``claimed`` counts the rows held under a lease that has not run
        out; ``oldest`` is the creation time of the oldest waiting row, or
        0 when none waits.
        """
        now = self._clock()

        def work(db: sqlite3.Connection) -> dict[str, float]:
            waiting, oldest = db.execute(
                "SELECT count(*), coalesce(min(created), 0) FROM calls"
            ).fetchone()
            claimed = db.execute(
                "SELECT count(*) FROM calls WHERE claimed_until >= ?", (now,)
            ).fetchone()[0]
            refused = db.execute("SELECT count(*) FROM refused").fetchone()[0]
            return {
                "waiting": waiting,
                "claimed": claimed,
                "refused": refused,
                "oldest": oldest,
            }

        return self._run(work)

    def listing(self, *, refused: bool, limit: int) -> list[tuple[Any, ...]]:
        """Return rows for inspection, oldest first.

        Returns:
            ``(id, endpoint, email, body, created, state)``, where state is
            the claim's owner (waiting rows) or the reason (refused rows).
        """
        query = (
            "SELECT id, endpoint, email, body, created, reason FROM refused"
            if refused
            else "SELECT id, endpoint, email, body, created,"
            " coalesce(claimed_by, '') FROM calls"
        )
        return self._run(
            lambda db: db.execute(
                f"{query} ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        )

    def purge(self, *, everything: bool) -> int:
        """Delete refused rows, and the waiting ones too if asked.

        Returns:
            How many rows were deleted.
        """

        def work(db: sqlite3.Connection) -> int:
            deleted = db.execute("DELETE FROM refused").rowcount
            if everything:
                deleted += db.execute("DELETE FROM calls").rowcount
            return deleted

        return self._run(work)

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
