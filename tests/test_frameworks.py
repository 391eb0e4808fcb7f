"""The integrations inside real frameworks, servers and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import django
import httpx
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import AsyncClient as AsyncDjangoClient
from django.test import Client as DjangoClient
from django.urls import path
from django.utils.asyncio import async_unsafe
from flask import Flask, g, request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pakat_logging import PakatHandler
from pakat_logging._platform import UWSGI_ADVICE, uwsgi_threads_disabled
from pakat_logging.asgi import PakatEmailMiddleware as AsgiMiddleware
from pakat_logging.flask import init_app

from .conftest import KEY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONCURRENT = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture
def shop(sender):
    """The "shop" logger, with a PakatHandler on the test sender."""
    logger = logging.getLogger("shop")
    handler = PakatHandler(sender=sender)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger
    logger.removeHandler(handler)


def _track(number: str) -> None:
    logging.getLogger("shop").info(
        "Order placed", extra={"pakat": {"event": f"order-{number}"}}
    )


def _pairs(server) -> set[tuple[str, str]]:
    """Return (event number, e-mail user) of every call received."""
    return {
        (c.body["event"].split("-")[1], c.body["email"].split("@")[0])
        for c in server.calls
    }


# --- Django ---------------------------------------------------------------


class HeaderUser:
    """A signed-in user that, like Django's, must not be read on the loop."""

    def __init__(self, email: str) -> None:
        self._email = email

    @property
    @async_unsafe
    def is_authenticated(self) -> bool:
        return True

    @property
    @async_unsafe
    def email(self) -> str:
        return self._email


class HeaderUserMiddleware:
    """Stands in for AuthenticationMiddleware: the user from a header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, http_request):
        email = http_request.headers.get("X-User")
        http_request.user = HeaderUser(email) if email else None
        return self.get_response(http_request)


_django_gate: list[threading.Barrier] = []


def _django_view(http_request, number):
    for barrier in _django_gate:
        barrier.wait(10)  # every request is in flight at once
    _track(number)
    return HttpResponse("ok")


async def _django_async_view(http_request, number):
    _track(number)
    return HttpResponse("ok")


urlpatterns = [
    path("order/<str:number>", _django_view),
    path("async-order/<str:number>", _django_async_view),
]

if not settings.configured:
    settings.configure(
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            f"{__name__}.HeaderUserMiddleware",
            "pakat_logging.django.PakatEmailMiddleware",
        ],
    )
    django.setup()


def _concurrently(request_one) -> None:
    threads = [
        threading.Thread(target=request_one, args=(str(n),))
        for n in range(CONCURRENT)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)


class TestDjango:
    def test_identity_per_request(self, server, sender, shop):
        """Concurrent requests each send with their own user's e-mail."""
        _django_gate[:] = [threading.Barrier(CONCURRENT)]

        def one(number):
            DjangoClient().get(
                f"/order/{number}", headers={"X-User": f"{number}@b.io"}
            )

        try:
            _concurrently(one)
        finally:
            _django_gate.clear()

        assert sender.flush(10.0)
        assert {(str(n), str(n)) for n in range(CONCURRENT)} == _pairs(server)

    def test_anonymous_binds_nothing(self, server, sender, shop):
        """Without a signed-in user nothing is bound: the call is dropped."""
        DjangoClient().get("/order/x")

        assert sender.flush(5.0)
        assert [] == server.calls
        assert 1 == sender.stats()["dropped"]

    def test_identity_ends_with_request(self, server, sender, shop):
        """An anonymous request after a signed-in one gets no e-mail."""
        client = DjangoClient()
        client.get("/order/1", headers={"X-User": "1@b.io"})
        client.get("/order/2")

        assert sender.flush(5.0)
        assert {("1", "1")} == _pairs(server)
        assert 1 == sender.stats()["dropped"]

    def test_async_view(self, server, sender, shop):
        """Under an async stack each request binds its own user, or none."""

        async def main():
            client = AsyncDjangoClient()
            await client.get("/async-order/1", headers={"X-User": "1@b.io"})
            await client.get("/async-order/2")

        asyncio.run(main())

        assert sender.flush(5.0)
        assert {("1", "1")} == _pairs(server)
        assert 1 == sender.stats()["dropped"]


# --- Flask ----------------------------------------------------------------


def _flask_app(
    concurrent: int = CONCURRENT, *, user_loaded_first: bool = True
) -> Flask:
    app = Flask("tests")
    barrier = threading.Barrier(concurrent)

    def load_user():
        g.user = {"email": request.headers.get("X-User")}

    if user_loaded_first:
        app.before_request(load_user)
        init_app(app)
    else:
        init_app(app)
        app.before_request(load_user)

    @app.get("/order/<number>")
    def order(number):
        barrier.wait(10)
        _track(number)
        return "ok"

    return app


class TestFlask:
    def test_identity_per_request(self, server, sender, shop):
        """Concurrent requests each send with their own user's e-mail."""
        app = _flask_app()

        def one(number):
            app.test_client().get(
                f"/order/{number}", headers={"X-User": f"{number}@b.io"}
            )

        _concurrently(one)

        assert sender.flush(10.0)
        assert {(str(n), str(n)) for n in range(CONCURRENT)} == _pairs(server)

    @pytest.mark.parametrize("user_loaded_first", [True, False])
    def test_identity_ends_with_request(
        self, server, sender, shop, user_loaded_first
    ):
        """An anonymous request after a signed-in one gets no e-mail."""
        app = _flask_app(concurrent=1, user_loaded_first=user_loaded_first)
        client = app.test_client()
        client.get("/order/1", headers={"X-User": "1@b.io"})
        client.get("/order/2")

        assert sender.flush(5.0)
        assert {("1", "1")} == _pairs(server)
        assert 1 == sender.stats()["dropped"]

    def test_failing_lookup_drops_the_call(self, server, sender, shop):
        """A get_email that raises makes the call invalid, not the request."""
        app = Flask("tests")

        def broken():
            raise LookupError("no user store")

        init_app(app, get_email=broken)
        app.get("/order/<number>")(lambda number: _track(number) or "ok")

        answer = app.test_client().get("/order/1")

        assert 200 == answer.status_code
        assert sender.flush(5.0)
        assert [] == server.calls
        assert 1 == sender.stats()["dropped"]


# --- Starlette / FastAPI ----------------------------------------------------


def _asgi_app(concurrent: int = CONCURRENT) -> AsgiMiddleware:
    arrived = 0
    everyone = asyncio.Event()

    async def order(http_request):
        nonlocal arrived
        arrived += 1
        if arrived == concurrent:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 10)
        _track(http_request.path_params["number"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/order/{number}", order)])

    def header_email(scope):
        return dict(scope["headers"]).get(b"x-user", b"").decode() or None

    return AsgiMiddleware(app, get_email=header_email)


class TestAsgi:
    def test_identity_per_request(self, server, sender, shop):
        """Concurrent ASGI requests each send with their own e-mail."""
        app = _asgi_app()

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test"
            ) as client:
                await asyncio.gather(
                    *(
                        client.get(
                            f"/order/{n}", headers={"X-User": f"{n}@b.io"}
                        )
                        for n in range(CONCURRENT)
                    )
                )

        asyncio.run(main())

        assert sender.flush(10.0)
        assert {(str(n), str(n)) for n in range(CONCURRENT)} == _pairs(server)

    def test_starlette_test_client(self, server, sender, shop):
        """The middleware works under Starlette's TestClient too."""
        with TestClient(_asgi_app(concurrent=1)) as client:
            client.get("/order/7", headers={"X-User": "7@b.io"})

        assert sender.flush(5.0)
        assert {("7", "7")} == _pairs(server)

    def test_identity_ends_with_request(self, server, sender, shop):
        """An anonymous request after a signed-in one gets no e-mail."""
        with TestClient(_asgi_app(concurrent=1)) as client:
            client.get("/order/1", headers={"X-User": "1@b.io"})
            client.get("/order/2")

        assert sender.flush(5.0)
        assert {("1", "1")} == _pairs(server)
        assert 1 == sender.stats()["dropped"]


# --- Lazy framework imports -------------------------------------------------


class TestLazyImports:
    def test_helpers_import_no_framework(self):
        """Importing the three helpers imports none of their frameworks."""
        code = (
            "import sys\n"
            "import pakat_logging.asgi, pakat_logging.django\n"
            "import pakat_logging.flask\n"
            "names = {'asgiref', 'django', 'flask', 'starlette'}\n"
            "print(sorted(names & set(sys.modules)))"
        )

        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 0 == done.returncode, done.stderr
        assert "[]" == done.stdout.strip()


# --- gunicorn -------------------------------------------------------------


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise AssertionError("the server exited at start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            # Not listening yet: wait on the process, not on a clock.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)
    raise AssertionError("the server never listened")


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


class TestGunicorn:
    @pytest.mark.parametrize("preload", ["1", "0"])
    def test_every_worker_delivers(self, server, preload):
        """Each of three pre-forked workers delivers its own calls."""
        port = _free_port()
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn"),
                *("-c", str(EXAMPLES / "gunicorn.conf.py")),
                *("--chdir", str(EXAMPLES), "gunicorn_app:app"),
            ],
            env=_env(
                PAKAT_URL=server.url,
                PAKAT_MA_KEY=KEY,
                BIND=f"127.0.0.1:{port}",
                PRELOAD=preload,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_port(port, process)
            pids = set()
            for n in range(300):
                pids.add(_get(f"http://127.0.0.1:{port}/page{n}"))
                if len(pids) == 3:
                    break
            expected = {f"worker{pid}@example.com" for pid in pids}

            assert 3 == len(pids)
            assert server.wait_for_calls(n + 1, timeout=20)
        finally:
            err = _stop(process)
        senders = {
            call.body["email"]
            for call in server.calls
            if call.body["email"].startswith("worker")
        }

        assert expected == senders, err
        assert KEY not in err


# --- Celery ---------------------------------------------------------------


class TestCelery:
    def test_prefork_worker_delivers(self, server, tmp_path):
        """Tasks run in a prefork worker's children are tracked."""
        env = _env(
            PAKAT_URL=server.url,
            PAKAT_MA_KEY=KEY,
            PAKAT_TEST_BROKER=str(tmp_path),
        )
        worker = subprocess.Popen(
            [
                *(
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tests.apps.celery_tasks",
                ),
                *("worker", "--pool=prefork", "--concurrency=2"),
                *(
                    "--without-heartbeat",
                    "--without-mingle",
                    "--without-gossip",
                ),
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            queue = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from tests.apps.celery_tasks import welcome\n"
                    "for n in range(6): welcome.delay(n)",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

            assert 0 == queue.returncode, queue.stderr
            assert server.wait_for_calls(6, timeout=60)
        finally:
            err = _stop(worker)
        numbers = sorted(c.body["event"].split("-")[1] for c in server.calls)
        pids = {c.body["event"].split("-")[2] for c in server.calls}

        assert [str(n) for n in range(6)] == numbers, err
        # Only the pool's two children run tasks, never the main process.
        assert set() == pids & {str(worker.pid), str(os.getpid())}
        assert len(pids) <= 2


# --- uWSGI ----------------------------------------------------------------

UWSGI_APP = """
import logging, os, sys
from pakat_logging import Sender, TrackEvent

logging.basicConfig(
    level=logging.WARNING,
    stream=sys.stderr,
    format="%(levelname)s %(message)s",
)
sender = Sender(os.environ["PAKAT_MA_KEY"], url=os.environ["PAKAT_URL"])

def application(environ, start_response):
    sender.submit(TrackEvent("hit", email="a@b.io"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


UWSGI_REQUESTS = 5


class TestUwsgi:
    @pytest.mark.parametrize(
        ("options", "warned"),
        [
            ([], True),
            (["--enable-threads"], False),
            (["--threads", "2"], False),
        ],
    )
    def test_threads_off_is_detected(self, server, tmp_path, options, warned):
        """Without --enable-threads, one WARNING says so and gives the fix."""
        uwsgi = Path(sys.executable).parent / "uwsgi"
        if not uwsgi.exists():
            pytest.skip("the uwsgi command is not installed (pyuwsgi)")
        app = tmp_path / "app.py"
        app.write_text(UWSGI_APP)
        port = _free_port()
        process = subprocess.Popen(
            [
                str(uwsgi),
                *("--http-socket", f"127.0.0.1:{port}"),
                *("--wsgi-file", str(app), "--master", "--processes", "1"),
                "--die-on-term",
                *options,
            ],
            env=_env(PAKAT_URL=server.url, PAKAT_MA_KEY=KEY),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_port(port, process)
            for _ in range(UWSGI_REQUESTS):
                _get(f"http://127.0.0.1:{port}/")
            assert server.wait_for_calls(UWSGI_REQUESTS, timeout=10) or warned
        finally:
            err = _stop(process)
        advice = [line for line in err.splitlines() if UWSGI_ADVICE in line]

        assert ([f"WARNING {UWSGI_ADVICE}"] if warned else []) == advice, err

    @pytest.mark.parametrize(
        ("options", "disabled"),
        [
            ({}, True),
            ({b"enable-threads": True}, False),
            ({"threads": b"4"}, False),
            ({b"threads": b"0"}, True),
            ({"threads": "junk"}, True),
        ],
    )
    def test_detection_logic(self, options, disabled):
        """UWSGI's option table tells whether threads are switched off."""
        assert disabled == uwsgi_threads_disabled(options)


# --- The examples -----------------------------------------------------------


class TestExamples:
    @pytest.mark.parametrize(
        ("script", "expected"),
        [
            ("logging_dictconfig.py", "order_completed"),
            ("structlog_chain.py", "cart_updated"),
            ("otel_tracing.py", "cart:4"),
            ("django_app.py", "sara@example.com"),
            ("flask_app.py", "sara@example.com"),
            ("fastapi_app.py", "neda@x.io"),
            ("celery_app.py", "welcome_sent"),
        ],
    )
    def test_example_runs(self, script, expected):
        """Each example runs on its own against its embedded fake tracker."""
        env = _env()
        env.pop("PAKAT_URL", None)

        done = subprocess.run(
            [sys.executable, script],
            cwd=EXAMPLES,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert 0 == done.returncode, done.stderr
        assert expected in done.stdout
