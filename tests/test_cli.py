"""Tests for the pakat-logging command."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from pakat_logging import Sender, TrackEvent
from pakat_logging._cli import main

from .conftest import KEY


class TestDemo:
    def test_demo_shows_what_arrived(self, capsys):
        """The demo delivers its calls and prints them in a table."""
        status = main(["demo"])
        out = capsys.readouterr().out

        assert 0 == status
        for name in ("order_completed", "cart_updated", "payment_succeeded"):
            assert name in out
        assert "dropped 1" in out
        assert "delivered 6" in out


class TestSend:
    def test_event_delivered(self, server, capsys):
        """The send event command prints the answer and exits 0 on a 2xx."""
        status = main(
            [
                "send",
                "event",
                "signup",
                "--email",
                "a@b.io",
                "--property",
                "AGE=30",
                "--property",
                "CITY=Tehran",
                "--url",
                server.url,
                "--ma-key",
                KEY,
            ]
        )
        out = capsys.readouterr().out

        assert 0 == status
        assert "204" in out
        assert {
            "email": "a@b.io",
            "event": "signup",
            "properties": {"AGE": 30, "CITY": "Tehran"},
        } == server.calls[0].body
        assert KEY not in out

    def test_identify_with_key_from_environment(
        self, server, monkeypatch, capsys
    ):
        """The send identify command reads the key from PAKAT_MA_KEY."""
        monkeypatch.setenv("PAKAT_MA_KEY", KEY)

        status = main(
            [
                "send",
                "identify",
                "--email",
                "a@b.io",
                "--attribute",
                "FIRSTNAME=Sara",
                "--url",
                server.url,
            ]
        )

        assert 0 == status
        assert {"FIRSTNAME": "Sara"} == server.calls[0].body["attributes"]

    def test_link_delivered(self, server, capsys):
        """The send link command delivers the link and its properties."""
        status = main(
            [
                *("send", "link", "https://shop.example/sale"),
                *("--email", "a@b.io", "--property", "CAMPAIGN=spring"),
                *("--url", server.url, "--ma-key", KEY),
            ]
        )
        out = capsys.readouterr().out

        assert 0 == status
        assert "204" in out
        assert {
            "email": "a@b.io",
            "link": "https://shop.example/sale",
            "properties": {"CAMPAIGN": "spring"},
        } == server.calls[0].body

    def test_wrong_key_exits_non_zero(self, server, capsys):
        """A 401 answer is printed and the exit status is 1."""
        secret = "wrong-secret-key-9876"

        status = main(
            [
                *("send", "page", "home", "--email", "a@b.io"),
                *("--url", server.url, "--ma-key", secret),
            ]
        )
        captured = capsys.readouterr()

        assert 1 == status
        assert "401" in captured.out
        assert secret not in captured.out + captured.err
        assert "9876" in captured.out

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["send", "event", "--email", "a@b.io"], "needs a name"),
            (["send", "event", "x", "--email", "nope"], "email: must be"),
            (["send", "identify", "x", "--email", "a@b.io"], "takes no name"),
            (
                [
                    *("send", "event", "x", "--email", "a@b.io"),
                    "--attribute=A=1",
                ],
                "--attribute is for identify",
            ),
            (
                [*("send", "identify", "--email", "a@b.io"), "--property=P=1"],
                "--property is not for identify",
            ),
        ],
    )
    def test_usage_errors_are_one_line(
        self, argv, message, capsys, monkeypatch
    ):
        """A user mistake is one line on stderr and exit status 2."""
        monkeypatch.setenv("PAKAT_MA_KEY", KEY)

        status = main(argv)
        err = capsys.readouterr().err

        assert 2 == status
        assert message in err
        assert 1 == len(err.strip().splitlines())
        assert "Traceback" not in err

    def test_missing_key(self, capsys, monkeypatch):
        """Without a key, send says so and exits 2."""
        monkeypatch.delenv("PAKAT_MA_KEY", raising=False)

        status = main(["send", "event", "x", "--email", "a@b.io"])

        assert 2 == status
        assert "no key" in capsys.readouterr().err


class TestArguments:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["send", "event", "x", "--email", "a@b.io", "--property", "X"],
                "pakat-logging send: error: argument --property: expected "
                "NAME=VALUE, not 'X' (see --help)",
            ),
            (
                ["send", "event", "x"],
                "pakat-logging send: error: the following arguments are "
                "required: --email (see --help)",
            ),
            (["bogus"], "pakat-logging: error: argument command: invalid"),
            ([], "pakat-logging: error: the following arguments are"),
            (["spool", "s.db"], "pakat-logging spool: error: the following"),
            (
                ["spool", "s.db", "list", "--limit", "z"],
                "pakat-logging spool PATH list: error: argument --limit",
            ),
            (["relay"], "pakat-logging relay: error: the following"),
            (["fake-server", "--port", "z"], "pakat-logging fake-server:"),
            (
                ["fake-server", "--port", "99999"],
                "pakat-logging fake-server: error: argument --port: expected "
                "a port from 0 to 65535, not '99999'",
            ),
            (
                ["spool", "s.db", "replay", "--timeout", "-1"],
                "pakat-logging spool PATH replay: error: argument --timeout: "
                "expected seconds of 0 or more, not '-1'",
            ),
            (
                ["spool", "s.db", "list", "--limit", "-3"],
                "pakat-logging spool PATH list: error: argument --limit: "
                "expected a whole number of 0 or more, not '-3'",
            ),
            (
                ["send", "page", "x", "--email", "a@b.io", "--timeout", "nan"],
                "pakat-logging send: error: argument --timeout: expected "
                "seconds of 0 or more, not 'nan'",
            ),
        ],
    )
    def test_parser_errors_are_one_line(self, argv, message, capsys):
        """A line argparse rejects is one line on stderr and status 2."""
        status = main(argv)
        captured = capsys.readouterr()

        assert 2 == status
        assert [] == captured.err.strip().splitlines()[1:]
        assert captured.err.startswith(message)
        assert captured.err.rstrip().endswith("(see --help)")
        assert "" == captured.out

    def test_port_in_use_is_one_line(self, capsys):
        """A fake server that cannot listen says so in one line, status 2."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            status = main(["fake-server", "--port", str(port)])
        captured = capsys.readouterr()

        assert 2 == status
        assert 1 == len(captured.err.splitlines())
        assert captured.err.startswith(
            f"pakat-logging fake-server: cannot listen on 127.0.0.1 port "
            f"{port}: [Errno "
        )

    def test_parser_error_exit_status(self):
        """The installed command exits 2 on a parser error, without usage."""
        done = subprocess.run(
            [sys.executable, "-m", "pakat_logging", "send", "event", "x"],
            capture_output=True,
            text=True,
            check=False,
        )

        assert 2 == done.returncode
        assert 1 == len(done.stderr.strip().splitlines())
        assert "usage:" not in done.stderr

    @pytest.mark.parametrize(
        ("argv", "usage"),
        [
            (["send", "event"], "pakat-logging send"),
            (["send", "page"], "pakat-logging send"),
            (["send", "link"], "pakat-logging send"),
            (["send", "identify"], "pakat-logging send"),
            (["fake-server"], "pakat-logging fake-server"),
            (["spool", "s.db", "stats"], "pakat-logging spool PATH stats"),
            (["spool", "s.db", "list"], "pakat-logging spool PATH list"),
            (["spool", "s.db", "replay"], "pakat-logging spool PATH replay"),
            (["spool", "s.db", "purge"], "pakat-logging spool PATH purge"),
            (["relay"], "pakat-logging relay"),
            (["demo"], "pakat-logging demo"),
        ],
    )
    def test_every_command_has_help(self, argv, usage, capsys):
        """Each command's --help prints its usage and exits 0."""
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--help"])
        out = capsys.readouterr().out

        assert 0 == exited.value.code
        assert out.startswith(f"usage: {usage} [-h]")


class TestModule:
    def test_python_dash_m_help(self):
        """Running the module with --help lists the commands."""
        done = subprocess.run(
            [sys.executable, "-m", "pakat_logging", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )

        assert 0 == done.returncode
        for command in ("demo", "send", "fake-server"):
            assert command in done.stdout


@pytest.fixture
def spooled(tmp_path):
    """A spool file holding three calls that could not be delivered."""
    path = tmp_path / "spool.db"
    _leave_three_calls(path)
    return str(path)


def _leave_three_calls(path) -> None:
    """Leave three calls in the spool at ``path``, none delivered."""
    with Sender(
        KEY, url="http://127.0.0.1:9/api/v2", spool=path, shutdown_timeout=0.2
    ) as sender:
        for n in range(3):
            sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))


@pytest.fixture
def mixed(server, tmp_path):
    """A spool file holding one refused call and three waiting ones."""
    path = tmp_path / "spool.db"
    server.fail_next(status=400, message="event: invalid")
    with Sender(KEY, url=server.url, spool=path) as sender:
        sender.submit(TrackEvent("bad", email="x@b.io"))
        sender.flush(10.0)
    _leave_three_calls(path)
    return str(path)


@pytest.fixture
def foreign(tmp_path):
    """An SQLite file of another application, with no spool tables."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('sara')")
    db.close()
    return path


needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="acting as another user takes root",
)
NOBODY = 65534


def _side_files(path) -> list[str]:
    return [f"{path}-wal", f"{path}-shm"]


class TestSpoolOwner:
    @needs_root
    @pytest.mark.parametrize("action", ["stats", "list"])
    def test_root_leaves_no_file_of_its_own(self, spooled, action, capsys):
        """Root looking at another user's spool leaves no file of root's."""
        for name in (spooled, *_side_files(spooled)):
            if os.path.exists(name):
                os.chown(name, NOBODY, NOBODY)

        assert 0 == main(["spool", spooled, action])
        owners = {
            os.stat(name).st_uid
            for name in _side_files(spooled)
            if os.path.exists(name)
        }

        assert owners <= {NOBODY}

    @needs_root
    def test_another_user_is_refused(self):
        """A user who is not the owner, nor root, is told whom to run as."""
        folder = tempfile.mkdtemp()
        os.chmod(folder, 0o777)
        path = os.path.join(folder, "spool.db")
        try:
            _leave_three_calls(path)
            for name in _side_files(path):
                if os.path.exists(name):
                    os.remove(name)

            status, err = _as_nobody(["spool", path, "stats"])

            assert 2 == status
            assert [
                f"pakat-logging spool: {path} belongs to uid 0: run this as "
                "that user or as root (SQLite would leave files beside it "
                "that the app could not write)"
            ] == err.splitlines()
            assert not any(map(os.path.exists, _side_files(path)))
        finally:
            shutil.rmtree(folder)


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """Run the command line in a child process as the user nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 3
        try:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(argv)
            os.write(write, err.getvalue().encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as output:
        text = output.read()
    _, code = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(code), text


class TestSpoolCommand:
    def test_stats_and_list(self, spooled, capsys):
        """Stats counts the waiting calls; list shows them."""
        assert 0 == main(["spool", spooled, "stats"])
        assert "waiting   3" in capsys.readouterr().out

        assert 0 == main(["spool", spooled, "list"])
        out = capsys.readouterr().out
        assert all(f"e{n}" in out for n in range(3))

    def test_replay_delivers(self, spooled, server, capsys):
        """Replay delivers every waiting call and empties the spool."""
        status = main(
            ["spool", spooled, "replay", "--url", server.url, "--ma-key", KEY]
        )
        out = capsys.readouterr().out

        assert 0 == status
        assert "delivered 3, refused 0, left in the spool 0" in out
        assert ["e0", "e1", "e2"] == sorted(
            c.body["event"] for c in server.calls
        )
        assert 0 == main(["spool", spooled, "stats"])
        assert "waiting   0" in capsys.readouterr().out

    def test_replay_with_wrong_key_fails(self, spooled, server, capsys):
        """Replay exits non-zero when the calls cannot be delivered."""
        status = main(
            [
                *("spool", spooled, "replay", "--url", server.url),
                *("--ma-key", "wrong-key-0000000000", "--timeout", "1"),
            ]
        )

        assert 1 == status
        assert "left in the spool 3" in capsys.readouterr().out

    def test_replay_says_why_it_fails(self, spooled, server):
        """The sender's report of a wrong key reaches the user, masked."""
        wrong = "wrong-key-0000000000"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pakat_logging", "spool", spooled),
                *("replay", "--url", server.url, "--ma-key", wrong),
                # Long enough for the first answer on a busy machine.
                *("--timeout", "3"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 1 == done.returncode
        assert "pakat-logging spool: The tracker refused the ma-key" in (
            done.stderr
        )
        assert wrong not in done.stderr + done.stdout
        assert ["delivered 0, refused 0, left in the spool 3"] == (
            done.stdout.splitlines()
        )

    def test_purge_all_needs_confirmation(self, spooled, monkeypatch, capsys):
        """Purge --all asks first; without a yes it deletes nothing."""
        monkeypatch.setattr("builtins.input", lambda prompt: "n")

        assert 1 == main(["spool", spooled, "purge", "--all"])
        assert "nothing deleted" in capsys.readouterr().out
        assert 0 == main(["spool", spooled, "purge", "--all", "--yes"])
        assert "deleted 3 calls" in capsys.readouterr().out

    def test_missing_spool(self, tmp_path, capsys):
        """A spool that does not exist is one line and exit status 2."""
        status = main(["spool", str(tmp_path / "none.db"), "stats"])

        assert 2 == status
        assert "no spool at" in capsys.readouterr().err

    def test_corrupt_spool(self, tmp_path, capsys):
        """A corrupt spool is one line naming it, and exit status 2."""
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"not sqlite" * 100)

        status = main(["spool", str(bad), "stats"])
        err = capsys.readouterr().err

        assert 2 == status
        assert str(bad) in err
        assert 1 == len(err.strip().splitlines())

    def test_list_refused(self, mixed, capsys):
        """List --refused shows the refused calls and why, not the others."""
        status = main(["spool", mixed, "list", "--refused"])
        out = capsys.readouterr().out

        assert 0 == status
        assert "reason" in out.splitlines()[0]
        assert "bad" in out
        assert "event: invalid" in out
        assert not any(f"e{n}" in out for n in range(3))

    def test_purge_deletes_refused_calls_only(self, mixed, capsys):
        """Purge without --all deletes the refused calls; waiting ones stay."""
        status = main(["spool", mixed, "purge"])

        assert 0 == status
        assert "deleted 1 calls" in capsys.readouterr().out
        assert 0 == main(["spool", mixed, "stats"])
        out = capsys.readouterr().out
        assert "waiting   3" in out
        assert "refused   0" in out

    @pytest.mark.parametrize(
        "action",
        [
            ["stats"],
            ["list"],
            ["list", "--refused"],
            ["replay", "--ma-key", KEY, "--url", "http://127.0.0.1:9/api/v2"],
            ["purge"],
            ["purge", "--all", "--yes"],
        ],
    )
    def test_foreign_sqlite_file_is_left_alone(self, foreign, action, capsys):
        """An SQLite file that is not a spool is refused and left unchanged."""
        before = foreign.read_bytes()

        status = main(["spool", str(foreign), *action])
        err = capsys.readouterr().err

        assert 2 == status
        assert "not a spool" in err
        assert 1 == len(err.strip().splitlines())
        assert before == foreign.read_bytes()
        assert ["app.db"] == [p.name for p in foreign.parent.iterdir()]
