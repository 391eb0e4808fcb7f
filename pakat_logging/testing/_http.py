"""The HTTP plumbing under FakePakatServer: requests, answers, sockets."""

from __future__ import annotations

import contextlib
import dataclasses
import http
import json
import logging
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pakat_logging.testing import _rules

__all__ = [
    "API_PREFIX",
    "Answer",
    "LoopbackServer",
    "RecordedRequest",
    "error_answer",
    "failure_answer",
    "success_answer",
]

logger = logging.getLogger(__name__)

# The path of the base URL, followed by the endpoint's name.
API_PREFIX = "/api/v2/"

THREAD_NAME_PREFIX = "pakat-fake-server"

_JSON = ("Content-Type", "application/json")

_NO_LINGER = struct.pack("ii", 1, 0)


class Headers(Mapping[str, str]):
    """A request's headers: read-only, names looked up in any case.

    Iterating gives the names in lower case. The ``repr`` names the
    headers without their values, so the ``ma-key`` never shows.
    """

    def __init__(self, pairs: Mapping[str, str]) -> None:
        self._values = {name.lower(): value for name, value in pairs.items()}

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Headers {sorted(self._values)}>"


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake server received and answered it.

    Attributes:
        method: The HTTP method, such as ``"POST"``.
        path: The request target, such as ``"/api/v2/trackEvent"``.
        endpoint: ``"identify"``, ``"trackEvent"``, ``"trackLink"`` or
            ``"trackPage"``; ``None`` when the path is not an endpoint.
        headers: The request headers, looked up by name in any case
            (``headers["Content-Type"]``); iterated, in lower case.
        body: The parsed JSON body; ``None`` when it is absent or does not
            parse.
        raw_body: The body exactly as received.
        status: The status answered; ``None`` when the connection was
            dropped without an answer.
        time: ``time.monotonic()`` when the request arrived.

    Note:
        The ``repr`` leaves out the headers and the raw body, so a failed
        assertion never prints the ``ma-key`` into a test log.
    """

    method: str
    path: str
    endpoint: str | None
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    body: Any
    raw_body: bytes = dataclasses.field(repr=False)
    status: int | None
    time: float


@dataclasses.dataclass(frozen=True)
class Answer:
    """What to send back to one request.

    Attributes:
        status: The status; ``None`` closes the connection unanswered.
        headers: Headers to send besides ``Content-Length``.
        body: The body, sent with its ``Content-Length``.
        delay: Seconds to wait before answering.
        reset: With no status, reset the connection (a TCP RST) instead
            of closing it.
    """

    status: int | None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    reset: bool = False


def success_answer(status: int) -> Answer:
    """Build the answer to an accepted call.

    Args:
        status: A 2xx status.

    Returns:
        No body for ``204``, the JSON body ``{}`` for any other status.
    """
    if status == 204:
        return Answer(status)

    return Answer(status, (_JSON,), b"{}")


def error_answer(
    status: int, code: str, message: str, *headers: tuple[str, str]
) -> Answer:
    """Build an error answer with the API's JSON error body.

    Args:
        status: The status.
        code: The body's ``code``, such as ``"missing_parameter"``.
        message: The body's ``message``.
        *headers: Headers to send besides ``Content-Type``.

    Returns:
        The answer, with no delay.
    """
    body = json.dumps({"code": code, "message": message}).encode()

    return Answer(status, (_JSON, *headers), body)


def failure_answer(status: int, message: str | None = None) -> Answer:
    """Build a scripted failure, coded after the status's reason phrase.

    Args:
        status: The status, such as ``503``.
        message: The body's ``message`` (default: the reason phrase).

    Returns:
        An answer whose body's ``code`` reads like
        ``"service_unavailable"``.
    """
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Scripted failure"

    code = reason.lower().replace(" ", "_").replace("-", "_")

    return error_answer(status, code, message or reason)


# A body of unknown length would be read as the next request, so the
# connection is closed after this answer.
_BAD_FRAMING = error_answer(
    400,
    "invalid_parameter",
    "body: send it with a Content-Length and no Transfer-Encoding",
    ("Connection", "close"),
)


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections can all be closed.

    Each connection is served on a daemon thread named after the port, so
    tests can tell that none is left.

    Args:
        address: The host and port to bind.
        answer: Gives the answer to a request as it arrives.
        record: Receives each request with the status it was answered.

    Attributes:
        reset_early: Asked with each request's line and headers before
            its body is read; ``True`` resets the connection there, and
            the request is recorded unanswered (default: ``None``, never).
    """

    daemon_threads = True
    # Pooled clients open many connections at once; with the default
    # backlog of 5 the kernel drops some and the clients retry late.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        answer: Callable[[RecordedRequest], Answer],
        record: Callable[[RecordedRequest], None],
    ) -> None:
        self.answer = answer
        self.record = record
        self.reset_early: Callable[[RecordedRequest], bool] | None = None
        self.stopping = threading.Event()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6

        super().__init__(address, _Handler)

    @property
    def thread_name(self) -> str:
        """The serving thread's name, and the prefix of the handlers'."""
        return f"{THREAD_NAME_PREFIX}:{self.server_address[1]}"

    def server_bind(self) -> None:
        """Bind the socket, skipping HTTPServer's look-up of the host."""
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS
        # look-up that can stall for seconds without a resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection on a named daemon thread."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.thread_name}:connection",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = thread

        thread.start()

    def shutdown_request(self, request: Any) -> None:
        """Close one connection and forget it."""
        with self._open_lock:
            self._open.pop(request, None)

        super().shutdown_request(request)

    def close(self, timeout: float) -> None:
        """Stop serving, close every connection and wait for its thread.

        Args:
            timeout: Seconds to wait for each connection's thread.
        """
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._open_lock:
            still_open = dict(self._open)

        # Shutting a socket down wakes the handler blocked reading the
        # next keep-alive request on it.
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

        for thread in still_open.values():
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed connection at DEBUG instead of printing it."""
        # socketserver calls this from inside its except block, so the
        # exception is still at hand.
        logger.debug(
            "Connection from %s failed",
            client_address,
            exc_info=True,  # noqa: LOG014
        )


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the server for the answer, sends it."""

    protocol_version = "HTTP/1.1"
    server_version = "FakePakatServer"
    sys_version = ""
    server: LoopbackServer

    def do_POST(self) -> None:
        # Every method comes here; the answer refuses all but POST.
        arrival = time.monotonic()
        reset_early = self.server.reset_early
        if reset_early is not None:
            request = self._recorded(b"", arrival)
            if reset_early(request):
                self._deliver(request, Answer(None, reset=True))
                return

        raw_body = self._read_body()
        if raw_body is None:
            self._deliver(self._recorded(b"", arrival), _BAD_FRAMING)
            return

        request = self._recorded(raw_body, arrival)
        self._deliver(request, self.server.answer(request))

    do_GET = do_HEAD = do_PUT = do_POST  # noqa: N815
    do_PATCH = do_DELETE = do_OPTIONS = do_POST  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr.
        pass

    def _read_body(self) -> bytes | None:
        if "Transfer-Encoding" in self.headers:
            return None

        length = self.headers.get("Content-Length", "0").strip()
        if not (length.isascii() and length.isdigit()):
            return None

        return self.rfile.read(int(length))

    def _recorded(self, raw_body: bytes, arrival: float) -> RecordedRequest:
        path = urllib.parse.urlsplit(self.path).path
        endpoint = path.removeprefix(API_PREFIX)
        headers = Headers(dict(self.headers.items()))

        return RecordedRequest(
            method=self.command,
            path=self.path,
            endpoint=endpoint if endpoint in _rules.ENDPOINTS else None,
            headers=headers,
            body=_rules.parse_json(raw_body),
            raw_body=raw_body,
            status=None,
            time=arrival,
        )

    def _deliver(self, request: RecordedRequest, answer: Answer) -> None:
        if self.server.stopping.wait(answer.delay):
            answer = Answer(None)

        self.server.record(dataclasses.replace(request, status=answer.status))
        if answer.status is None:
            if answer.reset:
                self._reset()
            self.close_connection = True
            return

        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)

        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _reset(self) -> None:
        # A zero linger makes close() send an RST instead of a FIN. The
        # socket closes for real only once its read file is closed too.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER
            )
        self.rfile.close()
        self.connection.close()
