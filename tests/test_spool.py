"""Tests for the disk spool: outages, restarts, kills and sharing."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from pakat_logging import Sender, TrackEvent
from pakat_logging._spool import Spool, SpoolError, check_spool_path

from .conftest import KEY


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v2"


def _query(path, sql: str) -> list[tuple]:
    """Run one query on a spool file through a connection of its own."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def _rows(path) -> tuple[int, int]:
    """Return (waiting, refused) rows of a spool file."""
    waiting = _query(path, "SELECT count(*) FROM calls")[0][0]
    refused = _query(path, "SELECT count(*) FROM refused")[0][0]
    return waiting, refused


def _events(server) -> list[str]:
    return [call.body["event"] for call in server.calls]


def _fill(path, count: int, *, created: float | None = None) -> None:
    """Leave ``count`` calls in a spool, unclaimed, as a closed process."""
    spool = Spool(str(path))
    spool.open()
    stamp = time.time() if created is None else created
    spool.insert(
        [
            (call.endpoint, call.email or "", call.payload(), stamp)
            for call in (
                TrackEvent(f"e{n:02}", email=f"u{n}@b.io")
                for n in range(count)
            )
        ]
    )
    spool.release()
    spool.close()


def _wait_for_rows(path, count: int, child, timeout: float) -> bool:
    """Poll another process's spool file until ``count`` rows are on it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Connecting would create a missing file, and a new one has no
        # tables until the child's spool thread makes them.
        try:
            if os.path.exists(path) and _rows(path)[0] >= count:
                return True
        except sqlite3.OperationalError:
            pass
        try:
            child.wait(0.005)
        except subprocess.TimeoutExpired:
            continue
        return False

    return False


_NOBODY = 65534


def _check_unprivileged(path: str) -> str:
    """Return what check_spool_path says of ``path`` to a user not root."""
    if os.geteuid() != 0:
        try:
            check_spool_path(path)
        except ValueError as error:
            return str(error)
        return "accepted"

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(read)
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
            try:
                check_spool_path(path)
                message = "accepted"
            except ValueError as error:
                message = str(error)
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)

    return message


def _run(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def _accepting_child(script: str, spool: str) -> tuple[subprocess.Popen, str]:
    """Start ``script`` on ``spool`` and read the line it says on accepting."""
    child = _spawn(
        script,
        KEY,
        _dead_url(),
        spool,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )

    return child, child.stdout.readline().strip()


def _spawn(script: str, *args: str, **pipes) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        text=True,
        **pipes,
    )


def _kill(child: subprocess.Popen) -> int:
    """SIGKILL a child started with pipes; return its exit status."""
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdin.close()
    child.stdout.close()

    return child.returncode


class TestOutage:
    def test_outage_then_recovery(self, server, tmp_path):
        """Calls accepted during an outage are all delivered after it."""
        server.fail_next(30, status=503, retry_after=0)
        spool = tmp_path / "spool.db"
        with Sender(KEY, url=server.url, spool=spool) as sender:
            for n in range(10):
                sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))

            assert sender.flush(30.0)
            assert 10 == sender.stats()["delivered"]
        assert sorted(f"e{n}" for n in range(10)) == sorted(_events(server))
        assert (0, 0) == _rows(spool)

    def test_refused_calls_are_moved_aside(self, server, tmp_path):
        """A call the tracker refuses for good is kept apart, not retried."""
        server.fail_next(status=400, message="event: invalid")
        spool = tmp_path / "spool.db"
        with Sender(KEY, url=server.url, spool=spool) as sender:
            sender.submit(TrackEvent("bad", email="a@b.io"))

            assert sender.flush(10.0)
            assert 1 == sender.stats()["failed"]
        assert (0, 1) == _rows(spool)

    def test_no_attempt_limit_with_spool(self, server, tmp_path):
        """With a spool, a call outlives max_attempts and is delivered."""
        server.fail_next(5, status=503, retry_after=0)
        with Sender(
            KEY, url=server.url, spool=tmp_path / "s.db", max_attempts=2
        ) as sender:
            sender.submit(TrackEvent("persistent", email="a@b.io"))

            assert sender.flush(10.0)
        assert ["persistent"] == _events(server)

    def test_more_than_fits_in_memory(self, server, tmp_path):
        """Calls beyond max_queue_size wait on disk, then go, in order."""
        server.latency = 0.01
        with Sender(
            KEY, url=server.url, spool=tmp_path / "s.db", max_queue_size=5
        ) as sender:
            accepted = [
                sender.submit(TrackEvent(f"e{n:02}", email="same@b.io"))
                for n in range(40)
            ]

            assert all(accepted)
            assert sender.flush(30.0)
        assert [f"e{n:02}" for n in range(40)] == _events(server)

    def test_spool_size_cap(self, tmp_path, caplog):
        """A full spool refuses new calls like a full queue, and says so."""
        with Sender(
            KEY, url=_dead_url(), spool=tmp_path / "s.db", spool_max_size=3
        ) as sender:
            results = [
                sender.submit(TrackEvent("e", email="a@b.io"))
                for _ in range(5)
            ]

            assert [True, True, True, False, False] == results
            assert 2 == sender.stats()["dropped"]
            sender.close(0.2)
        assert any("spool holds 3" in r.getMessage() for r in caplog.records)

    def test_close_counts_calls_on_disk_once(self, tmp_path, caplog):
        """Calls left waiting on disk at close are spooled, not pending."""
        spool = tmp_path / "s.db"
        sender = Sender(KEY, url=_dead_url(), spool=spool, max_queue_size=5)
        for n in range(20):
            sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))
        closed = sender.close(0.3)
        stats = sender.stats()
        summaries = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("Sender closed")
        ]

        assert not closed
        assert (20, 20, 0) == (
            stats["submitted"],
            stats["spooled"],
            stats["pending"],
        )
        assert 1 == len(summaries)
        assert "20 spooled" in summaries[0]
        assert "0 still in flight" in summaries[0]
        assert (20, 0) == _rows(spool)

    def test_call_past_max_age_is_refused(self, server, tmp_path):
        """A call that still fails transiently past max_age is moved aside."""
        spool = tmp_path / "s.db"
        _fill(spool, 1, created=time.time() - 3600.0)
        server.fail_next(50, status=503)
        with Sender(KEY, url=server.url, spool=spool, max_age=60.0) as sender:
            flushed = sender.flush(10.0)
            failed = sender.stats()["failed"]

        assert flushed
        assert 1 == failed
        assert (0, 1) == _rows(spool)
        assert [("gave up: HTTP 503",)] == _query(
            spool, "SELECT reason FROM refused"
        )

    def test_spool_file_is_in_wal_mode(self, server, tmp_path):
        """An opened spool file uses SQLite's write-ahead log."""
        spool = tmp_path / "s.db"
        with Sender(KEY, url=server.url, spool=spool) as sender:
            sender.submit(TrackEvent("e", email="a@b.io"))
            flushed = sender.flush(10.0)
            mode = _query(spool, "PRAGMA journal_mode")

        assert flushed
        assert [("wal",)] == mode


EXIT_SCRIPT = """
    import logging
    import sys
    from pakat_logging import Sender, TrackEvent

    logging.basicConfig(level=logging.WARNING)
    key, url, spool, count = sys.argv[1:5]
    sender = Sender(key, url=url, spool=spool, shutdown_timeout=0.5)
    for n in range(int(count)):
        sender.submit(TrackEvent(f"e{n}", email=f"u{n}@example.com"))
"""

KILL_SCRIPT = """
    import sys
    from pakat_logging import Sender, TrackEvent

    key, url, spool = sys.argv[1:4]
    sender = Sender(key, url=url, spool=spool)
    for n in range(25):
        sender.submit(TrackEvent(f"e{n}", email=f"u{n}@example.com"))
    # Past the group commit: everything accepted is on disk now.
    sender.flush(0.5)
    print("accepted", flush=True)
    sys.stdin.read()
"""

KILL_UNFLUSHED_SCRIPT = """
    import sys
    from pakat_logging import Sender, TrackEvent

    key, url, spool = sys.argv[1:4]
    sender = Sender(key, url=url, spool=spool)
    for n in range(25):
        sender.submit(TrackEvent(f"e{n}", email=f"u{n}@example.com"))
    print("accepted", flush=True)
    sys.stdin.read()
"""


class TestRestart:
    def test_exit_leaves_calls_for_the_next_process(self, server, tmp_path):
        """Undelivered calls stay in the spool; the next process sends them."""
        spool = str(tmp_path / "spool.db")

        done = _run(EXIT_SCRIPT, KEY, _dead_url(), spool, "25")

        assert 0 == done.returncode, done.stderr
        assert (25, 0) == _rows(spool)
        assert "25 spooled" in done.stderr
        assert KEY not in done.stderr
        with Sender(KEY, url=server.url, spool=spool) as sender:
            assert sender.flush(20.0)
        assert sorted(f"e{n}" for n in range(25)) == sorted(_events(server))
        assert (0, 0) == _rows(spool)

    def test_replay_waits_for_every_row_left(self, server, tmp_path):
        """flush() is True only once every call left on disk has arrived."""
        spool = str(tmp_path / "spool.db")
        done = _run(EXIT_SCRIPT, KEY, _dead_url(), spool, "40")
        with Sender(
            KEY, url=server.url, spool=spool, max_queue_size=5
        ) as sender:
            flushed = sender.flush(30.0)
            received = sorted(_events(server))

        assert 0 == done.returncode, done.stderr
        assert flushed
        assert sorted(f"e{n}" for n in range(40)) == received

    def test_sigkill_loses_nothing_accepted(self, server, tmp_path):
        """A process killed after accepting its calls loses none."""
        spool = str(tmp_path / "spool.db")
        child, accepted = _accepting_child(KILL_SCRIPT, spool)
        status = _kill(child)

        assert "accepted" == accepted
        assert -signal.SIGKILL == status
        with Sender(KEY, url=server.url, spool=spool) as sender:
            assert sender.flush(20.0)
            stats = sender.stats()
        received = _events(server)
        assert sorted(f"e{n}" for n in range(25)) == sorted(set(received))
        # Rows taken over from a dead process may have been sent by it.
        assert stats["possible_duplicates"] >= len(received) - 25

    def test_sigkill_without_flush_keeps_written_calls(self, server, tmp_path):
        """Calls on disk survive a SIGKILL that no flush came before."""
        spool = str(tmp_path / "spool.db")
        child, accepted = _accepting_child(KILL_UNFLUSHED_SCRIPT, spool)
        on_disk = _wait_for_rows(spool, 25, child, timeout=10.0)
        status = _kill(child)

        assert "accepted" == accepted
        assert on_disk
        assert -signal.SIGKILL == status
        with Sender(KEY, url=server.url, spool=spool) as sender:
            assert sender.flush(20.0)
        assert sorted(f"e{n}" for n in range(25)) == sorted(
            set(_events(server))
        )


SHARE_SCRIPT = """
    import sys
    from pakat_logging import Sender, TrackEvent

    key, url, spool, name = sys.argv[1:5]
    with Sender(key, url=url, spool=spool) as sender:
        for n in range(150):
            sender.submit(TrackEvent(f"{name}-{n}", email=f"{name}{n}@b.io"))
        sender.flush(30)
        stats = sender.stats()
    print(stats["delivered"], stats["possible_duplicates"])
"""


class TestSharing:
    def test_two_processes_share_one_spool(self, server, tmp_path):
        """Two processes on one spool deliver every call at least once."""
        spool = str(tmp_path / "shared.db")
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    textwrap.dedent(SHARE_SCRIPT),
                    KEY,
                    server.url,
                    spool,
                    name,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("a", "b")
        ]
        outputs = [child.communicate(timeout=60) for child in children]

        assert [0, 0] == [child.returncode for child in children], outputs
        expected = {f"{name}-{n}" for name in "ab" for n in range(150)}
        received = _events(server)
        assert expected == set(received)
        reported = sum(int(out.split()[1]) for out, _ in outputs)
        duplicates = len(received) - len(set(received))
        assert duplicates <= reported
        assert (0, 0) == _rows(spool)


FLUSH_ONLY_SCRIPT = """
    import sys
    from pakat_logging import Sender

    key, url, spool = sys.argv[1:4]
    with Sender(key, url=url, spool=spool, max_queue_size=5) as sender:
        flushed = sender.flush(30)
        stats = sender.stats()
    print(flushed, stats["delivered"], stats["possible_duplicates"])
"""


class TestTakeOver:
    @pytest.mark.parametrize(
        "holder",
        ["elsewhere.invalid:1:aaaa", f"{socket.gethostname()}:nopid:aaaa"],
        ids=["other-host", "unknown-pid"],
    )
    def test_expired_lease_lets_another_owner_adopt(self, tmp_path, holder):
        """Rows of an owner not known dead are adopted once its lease ends."""
        now = [1000.0]
        path = str(tmp_path / "s.db")
        first = Spool(path, owner=holder, lease=30.0, clock=lambda: now[0])
        second = Spool(
            path, owner="elsewhere.invalid:2:bbbb", clock=lambda: now[0]
        )
        first.open()
        second.open()
        try:
            first.insert([("trackEvent", "a@b.io", b"{}", now[0])] * 3)
            now[0] += 29.0
            early = second.adopt(10)
            now[0] += 2.0
            late = second.adopt(10)
            back = first.adopt(10)
        finally:
            first.close()
            second.close()

        assert [] == early
        assert [True, True, True] == [row.foreign for row in late]
        assert [] == back

    def test_two_flushing_processes_deliver_every_row(self, server, tmp_path):
        """Two processes that only flush a full spool deliver all of it."""
        spool = str(tmp_path / "shared.db")
        _fill(spool, 60)
        server.latency = 0.01
        children = [
            _spawn(
                FLUSH_ONLY_SCRIPT,
                KEY,
                server.url,
                spool,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [child.communicate(timeout=60) for child in children]
        received = _events(server)
        results = [out.split() for out, _ in outputs]

        assert [0, 0] == [child.returncode for child in children], outputs
        assert ["True", "True"] == [flushed for flushed, _, _ in results]
        assert {f"e{n:02}" for n in range(60)} == set(received)
        assert len(received) == sum(int(sent) for _, sent, _ in results)
        reported = sum(int(dups) for _, _, dups in results)
        assert len(received) - len(set(received)) <= reported
        assert (0, 0) == _rows(spool)


class TestPaths:
    def test_missing_folder(self, tmp_path):
        """A spool in a folder that does not exist is a ValueError."""
        with pytest.raises(ValueError, match="folder that does not exist"):
            Sender(KEY, spool=tmp_path / "nowhere" / "spool.db")

        assert not (tmp_path / "nowhere").exists()

    def test_folder_as_path(self, tmp_path):
        """A folder given as the spool is a ValueError."""
        with pytest.raises(ValueError, match="is a folder"):
            Sender(KEY, spool=tmp_path)

    def test_unwritable_folder(self):
        """A spool in a folder that cannot be written is a ValueError."""
        base = tempfile.mkdtemp()
        try:
            # Root may write anywhere, so the check runs as "nobody" there;
            # the folder above must let that user in to find "locked".
            os.chmod(base, 0o755)
            locked = os.path.join(base, "locked")
            os.mkdir(locked, mode=0o555)
            outcome = _check_unprivileged(os.path.join(locked, "spool.db"))
            left = os.listdir(locked)
        finally:
            shutil.rmtree(base)

        assert "not writable" in outcome
        assert [] == left

    def test_construction_creates_nothing(self, tmp_path):
        """Building a sender with a spool creates no file."""
        Sender(KEY, spool=tmp_path / "spool.db")

        assert [] == list(tmp_path.iterdir())

    def test_corrupt_spool(self, server, tmp_path, caplog):
        """A corrupt spool is one ERROR line; calls go on in memory."""
        spool = tmp_path / "spool.db"
        spool.write_bytes(b"this is not a database" * 100)
        with Sender(KEY, url=server.url, spool=spool) as sender:
            for n in range(3):
                assert sender.submit(TrackEvent(f"e{n}", email="a@b.io"))

            assert sender.flush(10.0)
            # The calls buffered for the spool are delivered by the flush,
            # not left for close.
            assert 0 == sender.stats()["pending"]
            assert ["e0", "e1", "e2"] == _events(server)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]

        assert 1 == len(errors)
        assert str(spool) in errors[0].getMessage()
        assert ["e0", "e1", "e2"] == _events(server)


class TestFailedWrite:
    def test_calls_never_written_count_as_lost(self, tmp_path, monkeypatch):
        """Calls whose spool write failed are lost at close, not spooled."""

        def full(self, rows):
            raise SpoolError("database or disk is full")

        monkeypatch.setattr(Spool, "insert", full)
        with Sender(
            KEY, url=_dead_url(), spool=tmp_path / "spool.db"
        ) as sender:
            for n in range(3):
                sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))
            sender.flush(0.3)
            sender.close(0.5)
            stats = sender.stats()

        assert (0, 3) == (stats["spooled"], stats["dropped"])
        assert 0 == stats["pending"]
