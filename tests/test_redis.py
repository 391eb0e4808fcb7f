"""Tests for the Redis spool: a fleet of processes sharing one outbox.

They run against a real redis-server of their own, started on a free
loopback port in a temporary folder, and skip only when the binary is
missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pakat_logging import Sender, TrackEvent
from pakat_logging._cli import main
from pakat_logging._redis_url import masked, parse_redis_url

from .conftest import KEY

redis = pytest.importorskip(
    "redis", reason="needs redis-py: pip install 'pakat-logging[redis]'"
)

REDIS_SERVER = shutil.which("redis-server")

needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="needs the redis-server binary (apt-get install redis-server)",
)

CALLS = "{pakat}:calls"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server process of the tests' own, on a loopback port.

    ``durable`` writes every change to an append-only file before it
    answers, so a killed server restarts with all it acknowledged.
    """

    ready = "Ready to accept connections"

    def __init__(
        self, folder: Path, *options: str, durable: bool = False
    ) -> None:
        self.folder = folder
        self.port = _free_port()
        self.options = options
        self.durable = durable
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        process = self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *self.options,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--logfile",
                "",
                *persistence,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if self.ready in line:
                break
        else:
            raise RuntimeError(f"redis-server on {self.port} did not start")
        # Keep reading its log, so that a full pipe never blocks it.
        threading.Thread(
            target=process.stdout.read, name="redis-log", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One redis-server for the module, emptied before each test."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The module's Redis URL, on an empty database."""
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


_spawned: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Kill the app and relay processes a failed test left running."""
    yield
    while _spawned:
        process = _spawned.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _dead_url() -> str:
    return f"http://127.0.0.1:{_free_port()}/api/v2"


def _events(server) -> list[str]:
    return [call.body["event"] for call in server.calls]


def _wait_for_events(server, expected: set[str], timeout: float) -> bool:
    """Wait until every expected event reached the server at least once."""
    deadline = time.monotonic() + timeout
    while not expected <= set(_events(server)):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        server.wait_for_calls(len(server.calls) + 1, timeout=left)
    return True


def _submit(sender: Sender, prefix: str, count: int) -> bool:
    """Submit one call per contact; return whether all were accepted."""
    accepted = [
        sender.submit(TrackEvent(f"{prefix}{n}", email=f"u{n}@b.io"))
        for n in range(count)
    ]
    return all(accepted)


def _enqueue(server, spool: str, count: int) -> None:
    """Add calls e0, e1, ... to the spool from a process that only adds."""
    with Sender(KEY, url=server.url, spool=spool, deliver=False) as app:
        _submit(app, "e", count)
        assert app.flush(10.0)


def _leftovers(redis_server) -> tuple[int, int]:
    """Return the calls still in the stream, and those still claimed."""
    with redis_server.client() as client:
        length = client.xlen(CALLS)
        pending = client.xpending(CALLS, "delivery")["pending"]
    return length, pending


def _possible_duplicates(relayed: str) -> int:
    """Read the count of possible duplicates from a relay's last line."""
    found = re.search(r"\((\d+) possible duplicates\)", relayed)
    assert found is not None, relayed
    return int(found.group(1))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.getcwd()}


APP_SCRIPT = """
    import sys
    from pakat_logging import Sender, TrackEvent

    key, url, spool, name, count, rate, hold = sys.argv[1:8]
    options = {} if rate == "-" else {"rate_limit": float(rate)}
    if hold != "-":
        options["max_queue_size"] = int(hold)
    with Sender(key, url=url, spool=spool, **options) as sender:
        print("ready", flush=True)
        sys.stdin.readline()
        for n in range(int(count)):
            sender.submit(TrackEvent(f"{name}-{n}", email=f"{name}{n}@b.io"))
        if hold != "-":
            sys.stdin.readline()
        done = sender.flush(60)
        stats = sender.stats()
    print(done, stats["delivered"], stats["spooled"])
"""


def _apps(
    server,
    spool: str,
    names: str,
    count: int,
    rate: float | None = None,
    hold: int | None = None,
) -> list[subprocess.Popen[str]]:
    """Start one app process per name, and let them submit together.

    ``hold`` is each app's ``max_queue_size``: it caps the calls a process
    takes from the stream at once, so that every process of the fleet has
    some to deliver (it must not be below ``count``, the burst each app
    submits at once). Such apps keep delivering until :func:`_finish`
    lets them go.
    """
    apps = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(APP_SCRIPT),
                KEY,
                server.url,
                spool,
                name,
                str(count),
                "-" if rate is None else str(rate),
                "-" if hold is None else str(hold),
            ],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    _spawned.extend(apps)
    for app in apps:
        assert "ready" == app.stdout.readline().strip()
    for app in apps:
        app.stdin.write("\n")
        app.stdin.flush()
    return apps


def _finish(apps: list[subprocess.Popen[str]]) -> list[str]:
    outputs = [app.communicate("\n", timeout=90) for app in apps]
    assert [0] * len(apps) == [app.returncode for app in apps], outputs
    return [out for out, _ in outputs]


def _delivered(outputs: list[str]) -> list[int]:
    """Return how many calls each app process delivered itself."""
    return [int(out.split()[1]) for out in outputs]


def _relay(server, spool: str, *more: str) -> subprocess.Popen[str]:
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pakat_logging",
            "relay",
            "--spool",
            spool,
            "--url",
            server.url,
            "--ma-key",
            KEY,
            *more,
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _spawned.append(relay)
    assert relay.stdout.readline().startswith("Relaying")
    return relay


def _stop(relay: subprocess.Popen[str]) -> str:
    relay.send_signal(signal.SIGTERM)
    out, err = relay.communicate(timeout=30)
    assert 0 == relay.returncode, err
    assert KEY not in out + err
    return out


class TestUrls:
    def test_forms(self):
        """Single servers, Sentinel and Cluster are told apart by scheme."""
        single = parse_redis_url("rediss://u:pw@cache:6380/2?prefix=shop")
        sentinel = parse_redis_url("redis+sentinel://s1,s2:26380/main/1")
        cluster = parse_redis_url("redis+cluster://n1:7000,n2:7001")
        unix = parse_redis_url("unix:///run/redis.sock?prefix=p")
        bare = parse_redis_url("redis://cache?claim_timeout=5")

        assert ("single", True, "shop") == (
            single.kind,
            single.tls,
            single.prefix,
        )
        assert (("s1", 26379), ("s2", 26380)) == sentinel.hosts
        assert "sentinel" == sentinel.kind
        assert "cluster" == cluster.kind
        assert ((), "/run/redis.sock", "p") == (
            unix.hosts,
            unix.path,
            unix.prefix,
        )
        assert ((("cache", 6379),), 5.0) == (bare.hosts, bare.claim_timeout)

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            ("redis://", "host"),
            ("redis://h:6379/x", "database number"),
            ("redis://h,g/0", "several hosts"),
            ("redis+sentinel://h", "name the service"),
            ("redis://h/0?prefix={x}", "prefix"),
            ("redis://h/0?claim_timeout=-1", "claim_timeout"),
            ("redis://h/0?colour=red", "unknown parameter"),
        ],
    )
    def test_malformed(self, url, rule):
        """A malformed Redis URL is a ValueError naming the rule."""
        with pytest.raises(ValueError, match=rule):
            Sender(KEY, spool=url)

    def test_password_never_shown(self):
        """The URL's password stays out of errors, reprs and paths."""
        with pytest.raises(ValueError) as caught:
            Sender(KEY, spool="redis://:hunter22@h/0?colour=red")
        sender = Sender(KEY, spool="redis://:hunter22@h/0")

        assert "hunter22" not in str(caught.value)
        assert "hunter22" not in repr(sender.options)
        assert "redis://:****@h/0" == masked("redis://:hunter22@h/0")

    def test_deliver_false_needs_redis(self, tmp_path):
        """Only a Redis spool has someone else to deliver the calls."""
        with pytest.raises(ValueError, match="deliver=False needs a Redis"):
            Sender(KEY, spool=tmp_path / "s.db", deliver=False)

    def test_redis_is_loaded_with_a_redis_spool_only(self):
        """Importing loads no redis; a sender with a Redis spool loads it.

        At once, not on first use: that may come at interpreter exit, when
        an import fails.
        """
        script = (
            "import sys, pakat_logging\n"
            "print('redis' in sys.modules)\n"
            "pakat_logging.Sender('k' * 20, spool='redis://h:1/0')\n"
            "print('redis' in sys.modules)"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

        assert ["False", "True"] == done.stdout.split()

    def test_unused_sender_exits_without_reaching_redis(self):
        """A process that tracked nothing does not wait on Redis at exit."""
        # Nothing listens on the port: opening the spool would wait out
        # the 30 s shutdown timeout, beyond the 20 s this run may take.
        script = (
            "import sys, pakat_logging\n"
            "pakat_logging.Sender(sys.argv[1], spool=sys.argv[2],\n"
            "                     shutdown_timeout=30)\n"
        )
        url = f"redis://127.0.0.1:{_free_port()}/0"
        done = subprocess.run(
            [sys.executable, "-c", script, KEY, url],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )

        assert (0, "") == (done.returncode, done.stderr)


@needs_redis
class TestOneProcess:
    def test_delivered_once_and_removed(self, server, redis_server, redis_url):
        """Calls go through Redis, out once each, and leave the stream."""
        with Sender(KEY, url=server.url, spool=redis_url) as sender:
            accepted = _submit(sender, "e", 20)

            assert accepted
            assert sender.flush(10.0)
            assert 20 == sender.stats()["delivered"]
        assert sorted(f"e{n}" for n in range(20)) == sorted(_events(server))
        assert (0, 0) == _leftovers(redis_server)

    def test_flush_waits_for_every_batch(self, server, redis_url):
        """A flush returns only when calls read in later batches are done."""
        with Sender(KEY, url=server.url, spool=redis_url) as sender:
            for n in range(1500):
                sender.submit(TrackEvent("e", email=f"u{n}@b.io"))

            assert sender.flush(60.0)
            stats = sender.stats()
        assert (1500, 0) == (stats["delivered"], stats["pending"])

    def test_refused_calls_are_dead_letters(
        self, server, redis_server, redis_url
    ):
        """A call the tracker refuses moves to the dead-letter stream."""
        server.fail_next(status=400, message="event: invalid")
        with Sender(KEY, url=server.url, spool=redis_url) as sender:
            sender.submit(TrackEvent("bad", email="a@b.io"))

            assert sender.flush(10.0)
            assert 1 == sender.stats()["failed"]
        with redis_server.client() as client:
            ((_, fields),) = client.xrange("{pakat}:refused")

        assert b"trackEvent" == fields[b"endpoint"]
        assert b"HTTP 400" in fields[b"reason"]
        assert (0, 0) == _leftovers(redis_server)

    def test_size_cap(self, redis_url, caplog):
        """A full stream refuses new calls like a full queue, and says so."""
        with Sender(
            KEY, url=_dead_url(), spool=redis_url, spool_max_size=3
        ) as sender:
            results = [
                sender.submit(TrackEvent("e", email="a@b.io"))
                for _ in range(5)
            ]

            assert [True, True, True, False, False] == results
            assert 2 == sender.stats()["dropped"]
            sender.close(0.2)
        assert any("spool holds 3" in r.getMessage() for r in caplog.records)

    def test_enqueue_only(self, server, redis_server, redis_url):
        """With deliver=False, calls wait in Redis and nothing is sent."""
        with Sender(
            KEY, url=server.url, spool=redis_url, deliver=False
        ) as sender:
            for n in range(5):
                sender.submit(TrackEvent(f"e{n}", email="a@b.io"))

            assert sender.flush(10.0)
            stats = sender.stats()
        assert (5, 0) == (stats["spooled"], stats["pending"])
        assert [] == server.requests
        assert (5, 0) == _leftovers(redis_server)


EXIT_SCRIPT = """
import sys
from pakat_logging import Sender, TrackEvent

sender = Sender(sys.argv[1], url=sys.argv[2], spool=sys.argv[3], deliver=False)
for n in range(10):
    sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))
"""


@needs_redis
class TestExit:
    def test_calls_submitted_just_before_exit_reach_redis(
        self, redis_server, redis_url
    ):
        """A script that submits and ends, with no flush, loses nothing."""
        done = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, KEY, _dead_url(), redis_url],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 0 == done.returncode
        assert "" == done.stderr
        assert (10, 0) == _leftovers(redis_server)


@needs_redis
class TestFleet:
    def test_three_apps_and_a_relay_deliver_once(
        self, server, redis_server, redis_url
    ):
        """Three delivering apps and a relay send every call exactly once."""
        relay = _relay(server, redis_url)
        apps = _apps(server, redis_url, "abc", 100)

        outputs = _finish(apps)
        relayed = _stop(relay)

        expected = {f"{name}-{n}" for name in "abc" for n in range(100)}
        assert ["True"] * 3 == [out.split()[0] for out in outputs]
        assert Counter(expected) == Counter(_events(server))
        assert "stopped: delivered" in relayed
        assert (0, 0) == _leftovers(redis_server)

    def test_enqueue_only_apps_and_a_relay(
        self, server, redis_server, redis_url
    ):
        """Apps that only enqueue send nothing; the relay delivers all."""
        _enqueue(server, redis_url, 30)
        relay = _relay(server, redis_url)

        arrived = _wait_for_events(server, {f"e{n}" for n in range(30)}, 30)
        _stop(relay)

        assert arrived
        assert 30 == len(server.calls)
        assert (0, 0) == _leftovers(redis_server)

    def test_killed_consumer_is_taken_over(
        self, server, redis_server, redis_url
    ):
        """A killed relay's calls are claimed by another after a while."""
        spool = f"{redis_url}?claim_timeout=1"
        server.latency = 0.2
        _enqueue(server, spool, 60)
        victim = _relay(
            server, spool, "--max-queue-size", "20", "--max-workers", "2"
        )
        delivering = server.wait_for_requests(3, timeout=30.0)

        victim.kill()
        victim.communicate(timeout=30)
        claimed = _leftovers(redis_server)[1]
        heir = _relay(server, spool)
        arrived = _wait_for_events(server, {f"e{n}" for n in range(60)}, 60)
        relayed = _stop(heir)

        assert delivering
        assert 0 < claimed
        assert arrived
        assert 0 < _possible_duplicates(relayed)
        assert 60 <= len(server.calls)
        assert (0, 0) == _leftovers(redis_server)


@needs_redis
class TestFleetLimits:
    def test_shared_rate_limit(self, server, redis_url):
        """Three processes together keep to one rate limit, within 10 %."""
        apps = _apps(server, redis_url, "abc", 30, rate=20.0, hold=30)

        arrived = server.wait_for_requests(90, timeout=30.0)
        delivered = _delivered(_finish(apps))
        times = sorted(request.time for request in server.requests)
        rate = (len(times) - 1) / (times[-1] - times[0])
        busiest = max(
            sum(1 for t in times if start <= t < start + 1.0)
            for start in times
        )

        assert arrived
        assert 90 == len(times)
        assert 3 == len([n for n in delivered if n > 0]), delivered
        assert 18.0 <= rate <= 22.0
        assert 22 >= busiest

    def test_shared_pause(self, server, redis_url):
        """A 429 with Retry-After holds back every process of the fleet."""
        apps = _apps(server, redis_url, "abc", 40, rate=30.0, hold=40)
        sending = server.wait_for_requests(15, timeout=30.0)

        server.fail_next(status=429, retry_after=2)
        arrived = server.wait_for_requests(121, timeout=30.0)
        delivered = _delivered(_finish(apps))
        requests = server.requests
        refused = next(r.time for r in requests if r.status == 429)
        during = [
            r.time - refused
            for r in requests
            if refused + 0.2 < r.time < refused + 1.9
        ]

        assert sending
        assert arrived
        assert 3 == len([n for n in delivered if n > 0]), delivered
        assert [] == during
        assert any(r.time < refused for r in requests)
        assert any(r.time >= refused + 2.0 for r in requests)
        assert 120 == len({call.body["event"] for call in server.calls})


@needs_redis
class TestOutage:
    def test_redis_restart_loses_nothing(self, server, tmp_path, caplog):
        """Calls accepted while Redis is down wait, then all go out."""
        redis_server = RedisServer(tmp_path, durable=True).start()
        spool = f"{redis_server.url}?claim_timeout=2"
        try:
            with Sender(KEY, url=server.url, spool=spool) as sender:
                before = _submit(sender, "a", 10) and sender.flush(10.0)
                _submit(sender, "b", 10)
                # Killed right after: some of "b" may not be in Redis yet.
                redis_server.stop()
                during = _submit(sender, "c", 10)
                stuck = not sender.flush(5.0)
                redis_server.start()
                after = sender.flush(30.0)
                dropped = sender.stats()["dropped"]
        finally:
            redis_server.stop()
        expected = {f"{kind}{n}" for kind in "abc" for n in range(10)}
        warnings = [
            r
            for r in caplog.records
            if "Cannot reach the Redis spool" in r.getMessage()
        ]

        assert (True, True, True, True) == (before, during, stuck, after)
        assert 0 == dropped
        assert expected == set(_events(server))
        assert 1 <= len(warnings) <= 2


class Sentinel(RedisServer):
    """A Redis Sentinel that watches one server as the service "main"."""

    ready = "+monitor master"

    def __init__(self, folder: Path, watched: RedisServer) -> None:
        config = folder / "sentinel.conf"
        config.write_text(
            f"sentinel monitor main 127.0.0.1 {watched.port} 1\n"
        )
        super().__init__(folder, str(config), "--sentinel")


@needs_redis
class TestClients:
    def test_sentinel(self, server, redis_server, redis_url, tmp_path):
        """A Sentinel URL finds the service's master and uses it."""
        sentinel = Sentinel(tmp_path, redis_server).start()
        spool = f"redis+sentinel://127.0.0.1:{sentinel.port}/main/0"
        try:
            with Sender(KEY, url=server.url, spool=spool) as sender:
                for n in range(10):
                    sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))

                assert sender.flush(15.0)
        finally:
            sentinel.stop()
        with redis_server.client() as client:
            entries = client.xinfo_stream(CALLS)["entries-added"]

        assert 10 == entries
        assert 10 == len(server.calls)

    def test_cluster(self, server, tmp_path):
        """On a cluster, every script finds its keys in one slot."""
        node = RedisServer(
            tmp_path,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
            # The bus port defaults to the port plus 10000, which may not
            # exist for a high free port.
            "--cluster-port",
            str(_free_port()),
        ).start()
        server.fail_next(status=429, retry_after=0.2)
        spool = f"redis+cluster://127.0.0.1:{node.port}?claim_timeout=3"
        try:
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            with Sender(
                KEY, url=server.url, spool=spool, rate_limit=200
            ) as sender:
                for n in range(10):
                    sender.submit(TrackEvent(f"e{n}", email=f"u{n}@b.io"))

                assert sender.flush(15.0)
                assert 10 == sender.stats()["delivered"]
        finally:
            node.stop()
        assert 429 == server.requests[0].status


class TestRelayCommand:
    def test_help(self, capsys):
        """The relay command explains itself and its options."""
        with pytest.raises(SystemExit) as caught:
            main(["relay", "--help"])
        out = capsys.readouterr().out

        assert 0 == caught.value.code
        assert "--spool" in out
        assert "--rate-limit" in out

    def test_needs_a_redis_url(self, tmp_path, capsys):
        """A relay on a file spool is a one-line error, status 2."""
        status = main(
            ["relay", "--spool", str(tmp_path / "s.db"), "--ma-key", KEY]
        )
        err = capsys.readouterr().err

        assert 2 == status
        assert 1 == len(err.strip().splitlines())
        assert "must be a Redis URL" in err

    def test_needs_a_key(self, monkeypatch, capsys):
        """A relay without a key is a one-line error, status 2."""
        monkeypatch.delenv("PAKAT_MA_KEY", raising=False)

        status = main(["relay", "--spool", "redis://127.0.0.1:1/0"])

        assert 2 == status
        assert "no key" in capsys.readouterr().err
