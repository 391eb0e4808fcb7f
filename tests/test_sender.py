"""Tests for the sender against a real tracker stand-in on loopback."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
import weakref

import pytest
import requests

from pakat_logging import (
    Identify,
    PakatHandler,
    Sender,
    TrackEvent,
    TrackLink,
    TrackPage,
    __version__,
    _lifecycle,
    get_sender,
)
from pakat_logging import _sender as sender_module
from pakat_logging._calls import size_of
from pakat_logging._report import Reporter
from pakat_logging.testing import FakePakatServer

from .conftest import KEY


def _events(server: FakePakatServer) -> list[str]:
    return [call.body["event"] for call in server.calls]


def _dead_url() -> str:
    """Return a loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v2"


class TestDelivery:
    @pytest.mark.parametrize(
        "call",
        [
            Identify("a@b.io", {"FIRSTNAME": "Sara", "mobile": "+98912"}),
            TrackEvent(
                "order_completed",
                email="a@b.io",
                properties={"LASTNAME": "K"},
                eventdata={"id": "cart:1", "data": {"total": 10**12}},
            ),
            TrackLink("example.com/x", email="a@b.io", properties={"A": 1}),
            TrackPage("home", email="a@b.io", properties={"ma_url": "/"}),
        ],
    )
    def test_each_endpoint(self, server, sender, call):
        """Each call reaches its endpoint with its body and headers."""
        sender.submit(call)

        assert sender.flush(5.0)
        [received] = server.calls
        assert f"/api/v2/{call.endpoint}" == received.path
        assert call.body == received.body
        assert KEY == received.headers["ma-key"]
        assert "application/json" == received.headers["content-type"]
        assert "application/json" == received.headers["accept"]
        assert received.headers["user-agent"].startswith(
            f"pakat-logging/{__version__}"
        )

    @pytest.mark.parametrize("status", [200, 204])
    def test_2xx_is_success(self, server, sender, status):
        """Both 200 and 204 count as delivered."""
        server.success_status = status
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(5.0)
        assert 1 == sender.stats()["delivered"]
        assert 1 == len(server.requests)

    def test_calls_go_out_in_parallel(self, server):
        """Several calls are in flight at once when latency is high."""
        server.latency = 0.2
        with Sender(KEY, url=server.url, max_workers=4) as sender:
            for n in range(8):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))
            started = time.monotonic()

            assert sender.flush(10.0)
            assert 8 == len(server.calls)
            # Eight calls of 0.2 s each one after another take 1.6 s.
            assert time.monotonic() - started < 1.2

    def test_no_thread_before_first_call(self, server):
        """Construction starts no thread; the first submit does."""
        before = threading.active_count()
        sender = Sender(KEY, url=server.url)

        assert before == threading.active_count()
        sender.submit(TrackEvent("x", email="a@b.io"))
        assert sender.flush(5.0)
        sender.close()


class TestRetries:
    def test_400_is_not_retried(self, server, sender, caplog):
        """A 400 fails the call at once and is logged with its message."""
        server.fail_next(status=400, message="event: invalid")
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(5.0)
        assert 1 == len(server.requests)
        assert 1 == sender.stats()["failed"]
        assert 0 == sender.stats()["retried"]
        [refused] = [r for r in caplog.records if "refused" in r.message]
        assert logging.WARNING == refused.levelno
        assert refused.name.startswith("pakat_logging")
        assert "400" in refused.message
        assert "event: invalid" in refused.message

    def test_three_503_then_success(self, server, sender):
        """Three 503 answers then a 204: delivered once, retried thrice."""
        server.fail_next(3, status=503)
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(10.0)
        assert [503, 503, 503, 204] == [r.status for r in server.requests]
        assert 1 == len(server.calls)
        stats = sender.stats()
        assert (1, 3, 0) == (
            stats["delivered"],
            stats["retried"],
            stats["failed"],
        )

    def test_retry_after_is_honoured(self, server, sender):
        """After a 429 with Retry-After: 1, nothing is sent for a second."""
        server.fail_next(status=429, retry_after=1)
        sender.submit(TrackEvent("x", email="a@b.io"))
        sender.submit(TrackEvent("y", email="other@b.io"))

        assert sender.flush(10.0)
        first, *rest = server.requests
        assert 429 == first.status
        assert all(r.time - first.time >= 1.0 for r in rest)
        assert 2 == len(server.calls)

    def test_one_call_probes_after_a_pause(self, server, sender):
        """After a pause, one call goes first; the rest wait for its answer."""
        server.fail_next(2, status=429, retry_after=1)
        for n in range(5):
            sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

        assert sender.flush(10.0)
        first, second, *rest = server.requests
        assert [429, 429] == [first.status, second.status]
        assert second.time - first.time >= 1.0
        assert all(r.time - second.time >= 1.0 for r in rest)
        assert 5 == len(server.calls)

    def test_dropped_connection_is_retried(self, server, sender):
        """A connection dropped without an answer is retried."""
        server.fail_next(status=503, drop=True)
        sender.submit(TrackEvent("x", email="a@b.io"))

        assert sender.flush(10.0)
        assert [None, 204] == [r.status for r in server.requests]
        assert 1 == sender.stats()["possible_duplicates"]

    def test_order_kept_under_retries(self, server, sender):
        """Calls for one e-mail arrive in order, retries included."""
        server.fail_next(2, status=503)
        sender.submit(Identify("a@b.io", {"FIRSTNAME": "Sara"}))
        for name in ("one", "two", "three"):
            sender.submit(TrackEvent(name, email="a@b.io"))

        assert sender.flush(10.0)
        received = [call.endpoint for call in server.calls]
        assert ["identify", "trackEvent", "trackEvent", "trackEvent"] == (
            received
        )
        assert ["one", "two", "three"] == [
            c.body["event"] for c in server.calls[1:]
        ]

    def test_attempts_are_bounded(self, server):
        """A call that keeps failing fails after max_attempts tries."""
        server.fail_next(10, status=500)
        with Sender(KEY, url=server.url, max_attempts=3) as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))

            assert sender.flush(10.0)
            assert 1 == sender.stats()["failed"]
            assert 3 == len(server.requests)

    def test_wrong_key_is_reported_once(self, server, caplog):
        """A 401 is logged once at ERROR and the call is held back."""
        with Sender("wrong-key-000000000", url=server.url) as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))
            sender.submit(TrackEvent("y", email="c@b.io"))
            server.wait_for_requests(1)

            assert not sender.flush(0.5)
            sender.close(0.1)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]

        assert 1 == len(errors)
        assert "ma-key" in errors[0].getMessage()
        assert 1 == len(server.requests)

    def test_rate_limit_spaces_calls(self, server):
        """With rate_limit=20, calls are at least 50 ms apart."""
        with Sender(KEY, url=server.url, rate_limit=20) as sender:
            for n in range(5):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

            assert sender.flush(10.0)
        times = sorted(r.time for r in server.requests)
        gaps = [b - a for a, b in itertools.pairwise(times)]

        assert 4 == len(gaps)
        assert min(gaps) >= 0.045


class TestNeverBlocks:
    def test_dead_server_does_not_block_submit(self):
        """With nothing listening, submit still returns at once."""
        with Sender(KEY, url=_dead_url(), max_attempts=2) as sender:
            started = time.monotonic()
            accepted = [
                sender.submit(TrackEvent("x", email="a@b.io"))
                for _ in range(100)
            ]
            elapsed = time.monotonic() - started

            assert all(accepted)
            assert elapsed < 1.0

    def test_close_with_dead_server_is_bounded(self):
        """close() returns within its timeout while nothing answers."""
        with socket.socket() as listener:
            # A server that accepts connections and never answers.
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            port = listener.getsockname()[1]
            sender = Sender(
                KEY, url=f"http://127.0.0.1:{port}/api/v2", timeout=30.0
            )
            for n in range(20):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

            started = time.monotonic()
            delivered = sender.close(0.5)
            elapsed = time.monotonic() - started

            assert not delivered
            assert elapsed < 1.5
            stats = sender.stats()
            assert stats["submitted"] == (
                stats["delivered"]
                + stats["failed"]
                + stats["dropped"]
                + stats["pending"]
            )
        # The workers, blocked on reads, end when the socket closes.
        for thread in threading.enumerate():
            if thread.name.startswith("pakat-logging"):
                thread.join(35.0)

    def test_full_queue_drops_and_counts(self, server, caplog):
        """Past max_queue_size, new calls are dropped, counted, logged once."""
        server.latency = 0.5
        with Sender(KEY, url=server.url, max_queue_size=5) as sender:
            results = [
                sender.submit(TrackEvent("x", email="a@b.io"))
                for _ in range(50)
            ]

            assert [True] * 5 + [False] * 45 == results
            assert 45 == sender.stats()["dropped"]
            sender.close(0.1)
        warnings = [r for r in caplog.records if "queue is full" in r.message]

        assert 1 == len(warnings)

    def test_queue_bounded_by_bytes(self, server):
        """A call that would pass max_queue_bytes is dropped."""
        server.latency = 0.5
        with Sender(KEY, url=server.url, max_queue_bytes=1000) as sender:
            big = {"blob": "x" * 600}

            assert sender.submit(
                TrackEvent("x", email="a@b.io", properties=big)
            )
            assert not sender.submit(
                TrackEvent("x", email="a@b.io", properties=big)
            )
            sender.close(0.1)

    @pytest.mark.parametrize(
        "bad", [None, "text", {"event": "x"}, TrackEvent("no-email")]
    )
    def test_bad_input_is_refused_not_raised(self, sender, caplog, bad):
        """Anything that is not a sendable call is refused and explained."""
        accepted = sender.submit(bad)

        assert not accepted
        assert 1 == sender.stats()["dropped"]
        assert any("Dropped" in r.message for r in caplog.records)

    def test_missing_key_warns_once(self, server, caplog, monkeypatch):
        """Without a key, calls are dropped and one warning says why."""
        monkeypatch.delenv("PAKAT_MA_KEY", raising=False)
        sender = Sender(url=server.url)
        for _ in range(3):
            sender.submit(TrackEvent("x", email="a@b.io"))
        sender.flush(5)
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]

        assert ["No ma-key"] == [r.message[:9] for r in warned]
        assert 3 == sender.stats()["dropped"]
        assert [] == server.requests

    def test_closed_sender_refuses(self, sender):
        """After close, submit returns False and counts the drop."""
        sender.close()

        assert not sender.submit(TrackEvent("x", email="a@b.io"))
        assert 1 == sender.stats()["dropped"]
        assert sender.close()


@pytest.fixture
def black_hole():
    """Yield a loopback URL that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"
    # The workers, blocked on reads, end now that the socket is closed.
    for thread in threading.enumerate():
        if thread.name.startswith("pakat-logging"):
            thread.join(35.0)


class TestIntake:
    """Calls from the application go into the outbox without its lock."""

    def test_a_waiting_contact_takes_no_lock(self, black_hole):
        """While a worker holds the outbox, a known contact's call is taken."""
        sender = Sender(KEY, url=black_hole, timeout=30.0)
        assert sender.submit(TrackEvent("first", email="a@b.io"))
        held, release = threading.Event(), threading.Event()

        def hold():
            with sender._outbox.lock:
                held.set()
                release.wait(60.0)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert held.wait(10.0)
        answers = []
        caller = threading.Thread(
            target=lambda: answers.append(
                sender.submit(TrackEvent("second", email="a@b.io"))
            ),
            daemon=True,
        )
        caller.start()
        # Far longer than the call takes; far shorter than the hold.
        caller.join(5.0)
        finished = not caller.is_alive()
        release.set()
        holder.join(10.0)

        assert finished, "the call waited for the outbox lock"
        assert [True] == answers
        assert 2 == sender.stats()["pending"]
        sender.close(0.1)

    def test_the_count_bound_is_exact(self, black_hole):
        """Past the calls the intake takes alone, the bound still holds."""
        with Sender(KEY, url=black_hole, max_queue_size=300) as sender:
            results = [
                sender.submit(TrackEvent("x", email="a@b.io"))
                for _ in range(400)
            ]

            assert [True] * 300 + [False] * 100 == results
            assert {"pending": 300, "dropped": 100} == {
                name: sender.stats()[name] for name in ("pending", "dropped")
            }
            sender.close(0.1)

    def test_the_byte_bound_is_exact(self, black_hole):
        """Calls fill max_queue_bytes exactly, intake included."""
        call = TrackEvent("x", email="a@b.io", properties={"p": "x" * 900})
        room = 300
        limit = room * size_of(call._parts) + 10
        with Sender(KEY, url=black_hole, max_queue_bytes=limit) as sender:
            results = [sender.submit(call) for _ in range(room + 50)]

            assert [True] * room + [False] * 50 == results
            sender.close(0.1)

    def test_threads_never_pass_the_bound(self, black_hole):
        """Threads submitting at once take exactly max_queue_size calls."""
        taken = []
        go = threading.Barrier(8)
        with Sender(KEY, url=black_hole, max_queue_size=1000) as sender:

            def submit_many(n):
                go.wait()
                answers = [
                    sender.submit(TrackEvent("x", email=f"u{n}@b.io"))
                    for _ in range(500)
                ]
                taken.append(sum(answers))

            threads = [
                threading.Thread(target=submit_many, args=(n,))
                for n in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30.0)
            stats = sender.stats()
            sender.close(0.1)

        assert 1000 == sum(taken)
        assert {"submitted": 4000, "pending": 1000, "dropped": 3000} == {
            name: stats[name] for name in ("submitted", "pending", "dropped")
        }

    def test_calls_made_while_the_intake_empties_keep_the_bound(
        self, black_hole
    ):
        """Calls that come in while the intake moves to the lanes still fit.

        Each call moved out of the intake leaves room that was already
        given away; the calls made meanwhile, here from inside the move
        as another thread's would be, must not take it twice.
        """
        answers = []
        with Sender(KEY, url=black_hole, max_queue_size=200) as sender:
            call = TrackEvent("x", email="a@b.io")
            answers += [sender.submit(call) for _ in range(100)]
            outbox = sender._outbox
            moves = itertools.count()

            class _Busy(dict):
                def get(self, key, default=None):
                    if next(moves) < 100:
                        answers.extend(sender.submit(call) for _ in range(2))
                    return super().get(key, default)

            outbox._lanes = _Busy(outbox._lanes)
            sender.flush(0)
            stats = sender.stats()
            sender.close(0.1)

        assert 300 == len(answers)
        assert stats["pending"] <= 200
        assert sum(answers) == stats["pending"]
        assert 300 == stats["pending"] + stats["dropped"]

    def test_a_lingering_worker_takes_new_contacts_without_a_wake(
        self, server, monkeypatch
    ):
        """Soon after a delivery, a new contact's call takes no lock.

        An idle worker keeps looking at the intake for a while, so the
        app's next few calls need no worker woken, and still go out.
        """
        with Sender(KEY, url=server.url) as sender:
            outbox = sender._outbox
            assert sender.submit(TrackEvent("first", email="a@b.io"))
            assert sender.flush(5.0)
            looking = threading.Event()
            wait = outbox._work.wait

            def watched_wait(timeout=None):
                if outbox._polling:
                    looking.set()
                return wait(timeout)

            monkeypatch.setattr(outbox._work, "wait", watched_wait)
            assert looking.wait(5.0), "no worker looked at the intake"
            admitted = []
            admit = outbox._admit

            def counted(entry):
                admitted.append(entry)
                return admit(entry)

            monkeypatch.setattr(outbox, "_admit", counted)
            # Held, so that the worker cannot take the first of them and
            # stop looking before the others are in: each must find it
            # looking. A call that takes the lock still gets in: it is
            # reentrant, and counted is what tells.
            with outbox.lock:
                for n in range(3):
                    call = TrackEvent("next", email=f"{n}@b.io")
                    assert sender.submit(call)
            monkeypatch.setattr(outbox, "_admit", admit)

            assert sender.flush(5.0)
        assert [] == admitted
        assert ["first", "next", "next", "next"] == [
            call.body["event"] for call in server.calls
        ]

    def test_calls_that_race_close_are_all_counted(self, server):
        """Calls submitted while close() runs end delivered or dropped."""
        sender = Sender(KEY, url=server.url)
        go, stop = threading.Barrier(5), threading.Event()
        submitted = []

        def submit_until_stopped(n):
            go.wait()
            count = 0
            while not stop.is_set():
                sender.submit(TrackEvent("x", email=f"u{n % 3}@b.io"))
                count += 1
            submitted.append(count)

        threads = [
            threading.Thread(target=submit_until_stopped, args=(n,))
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        go.wait()
        sender.close(5.0)
        stop.set()
        for thread in threads:
            thread.join(30.0)
        stats = sender.stats()

        assert sum(submitted) == stats["submitted"]
        assert 0 == stats["pending"]
        assert stats["submitted"] == stats["delivered"] + stats["dropped"]
        assert len(server.calls) == stats["delivered"]


class _Reentering(str):
    """An e-mail whose hash calls ``hook`` once ``when()`` is true.

    The outbox hashes the e-mail while it holds its lock, so the hook can
    run where a signal handler or a finalizer could interrupt the thread.
    """

    hook: object = None
    when: object = staticmethod(lambda: True)

    def __hash__(self) -> int:
        hook = type(self).hook
        if hook is not None and type(self).when():
            type(self).hook = None
            hook()
        return str.__hash__(self)


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import signal
    import sys

    from pakat_logging import Sender, TrackEvent

    sender = Sender(
        sys.argv[1], url=sys.argv[2], max_queue_size=50000,
        shutdown_timeout=0.5,
    )
    answers = []

    def on_alarm(signum, frame):
        answers.append(sender.submit(TrackEvent("alarm", email="s@b.io")))
        sender.stats()
        sender.flush(0)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    for n in range(20000):
        sender.submit(TrackEvent("e", email="u@b.io"))
    signal.setitimer(signal.ITIMER_REAL, 0)
    stats = sender.stats()
    print(len(answers), answers.count(False), stats["submitted"],
          stats["dropped"])
    """
)


class TestReentry:
    @pytest.mark.parametrize(
        ("size", "kept"),
        [(10, True), (4000, False)],
        ids=["small call kept", "large call refused"],
    )
    def test_call_from_inside_the_outbox(
        self, server, sender, caplog, monkeypatch, size, kept
    ):
        """A call made while this thread holds the outbox never hangs.

        A small one goes into the intake and is delivered; one that needs
        the lock is refused and counted.
        """
        nested = []

        def hook():
            inner = TrackEvent(
                "inner", email="i@b.io", properties={"pad": "x" * size}
            )
            nested.append(sender.submit(inner))
            nested.append(sender.flush(0))
            nested.append(sender.stats()["dropped"])

        monkeypatch.setattr(_Reentering, "hook", hook)
        monkeypatch.setattr(
            _Reentering, "when", staticmethod(lambda: sender._outbox.inside)
        )
        parts = ("trackEvent", _Reentering("o@b.io"), '"event":"outer"', "o")
        outer = threading.Thread(
            target=sender._submit_parts, args=(parts,), daemon=True
        )
        outer.start()
        outer.join(10.0)

        assert not outer.is_alive()
        assert [kept, False, 0 if kept else 1] == nested
        assert sender.flush(5.0)
        delivered = ["outer", "inner"] if kept else ["outer"]
        assert sorted(delivered) == sorted(_events(server))
        assert {
            "submitted": 2,
            "delivered": len(delivered),
            "dropped": 2 - len(delivered),
        } == {
            name: sender.stats()[name]
            for name in ("submitted", "delivered", "dropped")
        }
        warned = any(
            "while this thread was queueing another" in r.getMessage()
            for r in caplog.records
        )
        assert warned is not kept

    def test_report_from_inside_the_reporter_is_kept(self, caplog):
        """A report made inside the reporter on its thread is logged later."""
        reporter = Reporter(logging.getLogger("tests.reentry"))
        kind = _Reentering("outer")
        _Reentering.hook = lambda: reporter.report(
            "inner", logging.WARNING, "inner report"
        )

        reporter.report(kind, logging.WARNING, "outer report")
        reporter.drain()

        assert ["outer report", "inner report"] == [
            r.getMessage() for r in caplog.records
        ]

    def test_get_sender_from_inside_get_sender_returns(
        self, server, monkeypatch
    ):
        """A get_sender nested in one that is making a sender never hangs.

        A signal handler that logs through a new handler can do this.
        """
        nested = []
        track = sender_module._lifecycle.track

        def track_and_reenter(made):
            track(made)
            if not nested:
                nested.append(None)
                nested[0] = get_sender("another-key-0000000", url=server.url)

        monkeypatch.setattr(
            sender_module._lifecycle, "track", track_and_reenter
        )
        made = []
        outer = threading.Thread(
            target=lambda: made.append(get_sender(KEY, url=server.url)),
            daemon=True,
        )
        outer.start()
        outer.join(10.0)

        assert not outer.is_alive(), "get_sender waited for itself"
        assert nested[0] is get_sender("another-key-0000000", url=server.url)
        assert made[0] is get_sender(KEY, url=server.url)
        for sender in (made[0], nested[0]):
            sender.close()

    def test_signal_handler_calls_never_hang(self):
        """Calls from a signal handler, however timed, return."""
        done = subprocess.run(
            [sys.executable, "-c", SIGNAL_SCRIPT, KEY, _dead_url()],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 0 == done.returncode, done.stderr
        alarms, refused, submitted, dropped = map(int, done.stdout.split())
        assert alarms > 0
        assert 20000 + alarms == submitted
        assert refused == dropped


class TestConfiguration:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"ma_key": "abc\r\ndef"}, "ma_key must not contain CR"),
            ({"ma_key": "cl\u00e9-1234"}, "ma_key must be ASCII"),
            ({"url": "https://x.io/api\nHost: y"}, "url must not contain"),
            ({"url": "http://example.com/api/v2"}, "must use https"),
            ({"timeout": -1}, "timeout must be at least"),
            ({"max_workers": 0}, "max_workers must be at least 1"),
            ({"rate_limit": "fast"}, "rate_limit must be a number"),
            ({"timout": 1}, "'timout' is not an option of the sender"),
        ],
    )
    def test_malformed_options_raise(self, options, message):
        """A malformed option raises ValueError naming it."""
        with pytest.raises(ValueError, match=message):
            Sender(**options)

    def test_environment_defaults(self, server, monkeypatch):
        """The key and URL come from PAKAT_MA_KEY and PAKAT_URL."""
        monkeypatch.setenv("PAKAT_MA_KEY", KEY)
        monkeypatch.setenv("PAKAT_URL", server.url)
        with Sender() as sender:
            sender.submit(TrackEvent("x", email="a@b.io"))

            assert sender.flush(5.0)
        assert 1 == len(server.calls)

    def test_plain_http_allowed_when_asked(self):
        """allow_http=True lets an http URL reach a host beyond loopback."""
        sender = Sender(
            KEY, url="http://tracker.internal/api/v2", allow_http=True
        )

        assert "http://tracker.internal/api/v2" == sender.options.url

    def test_get_sender_is_shared(self, server):
        """get_sender returns one sender per URL and key."""
        one = get_sender(KEY, url=server.url)
        two = get_sender(KEY, url=server.url + "/")
        other = get_sender("another-key-0000000", url=server.url)

        assert one is two
        assert one is not other
        one.close()
        assert one is not get_sender(KEY, url=server.url)

    def test_proxy_from_environment(self, server, monkeypatch):
        """An HTTP proxy from the environment carries the calls."""
        with FakePakatServer() as proxy:
            monkeypatch.setenv(
                "HTTP_PROXY", f"http://127.0.0.1:{_port(proxy)}"
            )
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            with Sender(KEY, url=server.url, max_attempts=1) as sender:
                sender.submit(TrackEvent("x", email="a@b.io"))

                assert sender.flush(5.0)
            [through_proxy] = proxy.requests

        assert through_proxy.path.startswith("http://127.0.0.1")
        assert [] == server.requests


def _port(server: FakePakatServer) -> int:
    return int(server.url.split(":")[2].split("/")[0])


class TestTransport:
    def test_tls_verification_is_on(self, monkeypatch):
        """Certificates are verified by default, with no client cert."""
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        sender = Sender(KEY)

        settings = sender._transport._environment()

        assert settings["verify"] is True
        assert settings["cert"] is None

    def test_ca_bundle_from_environment(self, monkeypatch):
        """REQUESTS_CA_BUNDLE names the certificates to verify against."""
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/company/ca.pem")
        sender = Sender(KEY)

        settings = sender._transport._environment()

        assert "/etc/company/ca.pem" == settings["verify"]

    def test_proxies_resolved_once(self, server, monkeypatch):
        """The environment's proxies are looked up once, not per call."""
        lookups = []
        real_lookup = requests.sessions.get_environ_proxies

        def counted(url, no_proxy=None):
            lookups.append(url)
            return real_lookup(url, no_proxy=no_proxy)

        monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
        with Sender(KEY, url=server.url) as sender:
            # One flush per call, so that each is a delivery of its own.
            delivered = [
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))
                and sender.flush(5.0)
                for n in range(5)
            ]

        assert [True] * 5 == delivered
        assert 5 == len(server.calls)
        assert 1 == len(lookups)


class TestSecrecy:
    def test_key_never_shown(self, server, caplog):
        """The key appears in no log, repr or error text."""
        caplog.set_level(logging.DEBUG)
        secret = "very-secret-key-12345"
        texts = []
        with Sender(secret, url=server.url) as sender:
            texts.append(repr(sender))
            texts.append(repr(sender.options))
            sender.submit(TrackEvent("x", email="a@b.io"))
            server.wait_for_requests(1)
            sender.close(0.1)
        for bad in (secret + "\n", secret + " "):
            try:
                Sender(bad, url=server.url)
            except ValueError as error:
                texts.append(str(error))
        texts.append(caplog.text)

        assert len(texts) == 5
        assert not any(secret in text for text in texts)
        assert any("2345" in text for text in texts[:1])


class TestFork:
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_child_sends_its_own_calls(self, server):
        """A forked child delivers its calls and none of its parent's."""
        server.latency = 0.3
        with Sender(KEY, url=server.url) as sender:
            for n in range(3):
                sender.submit(TrackEvent("parent", email=f"p{n}@b.io"))
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                sender.submit(TrackEvent("child", email="c@b.io"))
                ok = sender.flush(10.0) and sender.stats()["delivered"] == 1
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)

            assert 0 == os.waitstatus_to_exitcode(status)
            assert sender.flush(10.0)
        assert ["child", "parent", "parent", "parent"] == sorted(
            _events(server)
        )

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    @pytest.mark.parametrize("flag", ["page", "pid"])
    def test_renewed_without_fork_hooks(self, server, monkeypatch, flag):
        """A child the fork hooks missed (uWSGI) is renewed on submit."""
        if flag == "pid":
            # What a sender uses where the kernel offers no wiped page.
            monkeypatch.setattr(_lifecycle, "home_flag", _lifecycle._PidFlag)
        server.latency = 0.3
        with Sender(KEY, url=server.url) as sender:
            if flag == "pid":
                assert isinstance(sender._home, _lifecycle._PidFlag)
            for n in range(3):
                sender.submit(TrackEvent("parent", email=f"p{n}@b.io"))
            parent_outbox = sender._outbox
            # uWSGI forks without running os.register_at_fork hooks: hide
            # the sender from ours, so that only the check on submit is
            # left.
            monkeypatch.setattr(_lifecycle, "_live", weakref.WeakSet())
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                checks = [
                    not sender._home[0],
                    sender.submit(TrackEvent("child", email="c@b.io")),
                    sender._outbox is not parent_outbox,
                    sender.flush(10.0),
                    (1, 1, 0)
                    == (
                        sender.stats()["submitted"],
                        sender.stats()["delivered"],
                        sender.stats()["pending"],
                    ),
                ]
                failed = [n for n, ok in enumerate(checks, 1) if not ok]
                os._exit(failed[0] if failed else 0)
            _, status = os.waitpid(pid, 0)

            assert 0 == os.waitstatus_to_exitcode(status)
            assert sender.flush(10.0)
            assert 3 == sender.stats()["delivered"]
        assert ["child", "parent", "parent", "parent"] == sorted(
            _events(server)
        )

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    @pytest.mark.parametrize(
        "make", [_lifecycle.home_flag, _lifecycle._PidFlag], ids=["any", "pid"]
    )
    def test_home_flag_tells_a_child_from_its_parent(self, make):
        """The flag is true where it was made and false in every fork."""
        flag = make()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            checks = [not flag[0], make()[0]]
            grandchild = os.fork()
            if grandchild == 0:
                os._exit(0 if not flag[0] else 1)
            _, status = os.waitpid(grandchild, 0)
            checks.append(os.waitstatus_to_exitcode(status) == 0)
            failed = [n for n, ok in enumerate(checks, 1) if not ok]
            os._exit(failed[0] if failed else 0)
        _, status = os.waitpid(pid, 0)

        assert 0 == os.waitstatus_to_exitcode(status)
        assert flag[0]

    @pytest.mark.skipif(
        sys.platform != "linux", reason="the wiped page is Linux's"
    )
    def test_home_flag_costs_no_system_call_on_linux(self):
        """On Linux the flag is a page the kernel wipes, not a pid."""
        assert not isinstance(_lifecycle.home_flag(), _lifecycle._PidFlag)


BURST_SCRIPT = textwrap.dedent(
    """
    import sys
    from pakat_logging import Sender, TrackEvent

    sender = Sender(sys.argv[1], url=sys.argv[2])
    for n in range(1000):
        sender.submit(TrackEvent("burst", email=f"user{n}@example.com"))
    """
)

# Python 3.12+ starts no thread once the interpreter is exiting. Run before
# the sender's own exit hook (atexit runs the last registered first), this
# makes any Python behave so.
NO_THREADS_AT_EXIT = textwrap.dedent(
    """
    import atexit
    import threading

    def _refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    def _no_threads():
        threading.Thread.start = _refuse

    atexit.register(_no_threads)
    """
)


class TestExit:
    @pytest.mark.parametrize(
        "tail", ["", NO_THREADS_AT_EXIT], ids=["threads", "no threads"]
    )
    def test_burst_then_exit_delivers_everything(self, server, tail):
        """1,000 calls submitted right before exit all arrive first."""
        server.latency = 0.02
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        script = BURST_SCRIPT + tail

        done = subprocess.run(
            [sys.executable, "-c", script, KEY, server.url],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )

        assert 0 == done.returncode, done.stderr
        assert 1000 == len(server.calls)
        assert KEY.encode() not in done.stderr + done.stdout


class RefusedThread(threading.Thread):
    """A thread whose start fails as at interpreter shutdown (3.12+)."""

    def start(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")


class TestNoThreads:
    def test_close_delivers_on_the_closing_thread(self, server, monkeypatch):
        """When no worker may start, close() delivers the calls itself."""
        # Only the sender's module sees the refusing Thread; the fake
        # tracker still starts its own threads.
        shutting_down = types.SimpleNamespace(**vars(threading))
        shutting_down.Thread = RefusedThread
        monkeypatch.setattr("pakat_logging._sender.threading", shutting_down)
        sender = Sender(KEY, url=server.url)
        for n in range(3):
            assert sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

        assert 3 == sender.stats()["pending"]
        assert sender.close(5.0)
        assert 3 == len(server.calls)


class TestWorkers:
    def test_pool_shrinks_when_idle(self, server, monkeypatch):
        """Workers grown for a backlog stop once idle; a call restarts one."""
        monkeypatch.setattr(sender_module, "IDLE_TIMEOUT", 0.5)
        server.latency = 0.05
        with Sender(KEY, url=server.url, max_workers=4) as sender:
            for n in range(20):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))

            assert sender.flush(10.0)
            workers = list(sender._threads)
            assert 4 == sum(thread.is_alive() for thread in workers)
            for thread in workers:
                thread.join(5.0)
            assert [] == [t.name for t in workers if t.is_alive()]
            assert 0 == sender._outbox.workers
            assert sender.submit(TrackEvent("x", email="late@b.io"))
            assert sender.flush(5.0)
        assert 21 == len(server.calls)


class TestPakatHandlerFlush:
    def test_flush_does_not_wait_for_the_network(self, server):
        """handler.flush() returns at once while the tracker is slow."""
        server.latency = 5.0
        sender = Sender(KEY, url=server.url, timeout=1.0)
        handler = PakatHandler(sender=sender)
        for n in range(3):
            handler.handle(
                logging.makeLogRecord(
                    {
                        "name": "shop",
                        "msg": "Order placed",
                        "pakat": {"event": "order_placed"},
                        "email": f"u{n}@b.io",
                    }
                )
            )
        started = time.monotonic()
        # logging.shutdown() flushes with the handler's lock held.
        with handler.lock:
            handler.flush()
        elapsed = time.monotonic() - started
        pending = sender.stats()["pending"]
        sender.close(0.1)

        assert 3 == pending
        assert elapsed < 0.5
