"""FakePakatServer: a loopback stand-in for the Pakat tracker API."""

from __future__ import annotations

import bisect
import collections
import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import Any

from pakat_logging.testing._failure import Failure
from pakat_logging.testing._faults import (
    DEFAULT_FAULT_RATIO,
    DEFAULT_RETRY_AFTER,
    DEFAULT_SLOW_SECONDS,
    FAULT_KINDS,
    Faults,
    Weights,
)
from pakat_logging.testing._http import (
    API_PREFIX,
    Answer,
    LoopbackServer,
    RecordedRequest,
    error_answer,
    success_answer,
)
from pakat_logging.testing._inspector import INSPECTOR_PREFIX, Inspector
from pakat_logging.testing._judge import (
    check_payload,
    check_route,
    check_seconds,
    check_success,
    scripted,
)

__all__ = ["FakePakatServer"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SUCCESS_STATUS = 204
DEFAULT_FAILURE_STATUS = 503
DEFAULT_WAIT_TIMEOUT = 5.0
DEFAULT_STOP_TIMEOUT = 5.0

# serve_forever() notices shutdown() only between polls; the default half
# second would slow down every test that stops a server.
_POLL_INTERVAL = 0.02


class FakePakatServer:
    """A real HTTP server on loopback that behaves like the tracker API.

    It checks the method, the path, the ``ma-key`` header and each
    endpoint's body rules, answers as the real service does, and records
    every request. It can be told to fail the next requests.

    Args:
        ma_key: The key requests must carry in ``ma-key``; ``None``
            accepts any non-empty key (default: ``None``).
        host: The address to listen on (default: ``"127.0.0.1"``).
        port: The port to listen on, ``0`` for a free one (default: ``0``).
        latency: Seconds to wait before every answer (default: ``0.0``).
        success_status: The status of an accepted call: ``204`` with no
            body, or another 2xx with the body ``{}`` (default: ``204``).
        inspector: Also serve the inspector, a live page of the requests
            with failure switches, and its JSON API, under
            ``/_inspector/`` (default: ``False``).

    Attributes:
        latency: Seconds to wait before every answer, to simulate the
            round trip; may be changed while the server runs.
        success_status: The status of an accepted call; may be changed
            while the server runs.

    Raises:
        ValueError: ``ma_key`` is empty, ``latency`` is negative or
            ``success_status`` is not a 2xx.

    Note:
        No socket is opened before :meth:`start`.
    """

    def __init__(
        self,
        ma_key: str | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        latency: float = 0.0,
        success_status: int = DEFAULT_SUCCESS_STATUS,
        inspector: bool = False,
    ) -> None:
        if ma_key == "":
            raise ValueError("ma_key: must be a non-empty string or None")

        self._ma_key = ma_key
        self._address = (host, port)
        self.latency = check_seconds("latency", latency)
        self.success_status = check_success(success_status)

        self._changed = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._calls: list[RecordedRequest] = []
        self._scripts: collections.deque[Answer] = collections.deque()
        self._httpd: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._failure = Failure()
        self._faults = Faults()
        self._inspector = Inspector(self, ma_key) if inspector else None

    @property
    def url(self) -> str:
        """The base URL, such as ``"http://127.0.0.1:8080/api/v2"``.

        Raises:
            RuntimeError: The server is not started.
        """
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("FakePakatServer: not started")

        return _base_url(httpd)

    @property
    def inspector_url(self) -> str:
        """The URL of the inspector page.

        It reads like ``"http://127.0.0.1:8080/_inspector/"``.

        Raises:
            RuntimeError: The server is not started, or was built without
                ``inspector=True``.
        """
        if self._inspector is None:
            raise RuntimeError("FakePakatServer: built without inspector=True")

        origin = self.url.removesuffix(API_PREFIX.rstrip("/"))

        return origin + INSPECTOR_PREFIX

    @property
    def failure(self) -> Mapping[str, Any]:
        """The failure mode, such as ``{"mode": "429", "retry_after": 1.0}``.

        ``{"mode": "off"}`` when requests are answered as usual.
        """
        return self._failure.as_dict()

    @property
    def calls(self) -> list[RecordedRequest]:
        """The accepted (2xx) calls, oldest first, as a new list."""
        with self._changed:
            return list(self._calls)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, answered or not, oldest first."""
        with self._changed:
            return list(self._requests)

    def start(self) -> FakePakatServer:
        """Bind the socket and serve on a daemon thread.

        Returns:
            The server itself, as in ``server = FakePakatServer().start()``.

        Raises:
            RuntimeError: The server is already started.
            OSError: The address cannot be bound.
        """
        with self._changed:
            if self._httpd is not None:
                raise RuntimeError("FakePakatServer: already started")

            httpd = LoopbackServer(self._address, self._answer, self._record)
            httpd.reset_early = self._faults.reset_early
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=httpd.thread_name,
                daemon=True,
            )
            self._thread.start()

        logger.debug("Fake Pakat server listening at %s", self.url)

        return self

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice.

        Idle keep-alive connections are shut down too, so no handler
        thread outlives the server, and answers still waiting out a
        delay are dropped.
        """
        with self._changed:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None

        if httpd is None or thread is None:
            return

        httpd.close(DEFAULT_STOP_TIMEOUT)
        thread.join(DEFAULT_STOP_TIMEOUT)

    def __enter__(self) -> FakePakatServer:
        """Start the server; see :meth:`start`."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server; see :meth:`stop`."""
        self.stop()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = DEFAULT_FAILURE_STATUS,
        retry_after: str | float | None = None,
        delay: float = 0.0,
        drop: bool = False,
        message: str | None = None,
    ) -> None:
        """Script the answer to the next ``count`` requests.

        Scripted answers go to requests in arrival order, before any
        check, and queue up behind those already scripted. A scripted 2xx
        is answered like a success and recorded in :attr:`calls`.

        Args:
            count: How many requests get this answer (default: ``1``).
            status: The status to answer (default: ``503``).
            retry_after: The ``Retry-After`` header: a string is sent as
                given, a number as seconds (default: ``None``, no header).
            delay: Seconds to wait before answering, on top of
                :attr:`latency` (default: ``0.0``).
            drop: Close the connection after reading the request, without
                an answer (default: ``False``).
            message: The ``message`` of the JSON error body (default: the
                status's reason phrase).

        Raises:
            ValueError: ``count`` or ``delay`` is negative, ``status`` is
                not between 200 and 599, or ``retry_after`` cannot be a
                header value.
        """
        if count < 0:
            raise ValueError(f"count: {count!r} is negative")

        answer = scripted(status, retry_after, delay, drop, message)
        with self._changed:
            self._scripts.extend([answer] * count)

    def set_failure(
        self,
        mode: str,
        *,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> None:
        """Fail every request from now on, until switched off.

        Unlike :meth:`fail_next`, the mode lasts, and the inspector page
        switches it too. Scripted answers still go first.

        Args:
            mode: ``"503"`` or ``"429"`` to answer that status,
                ``"hold"`` to answer as usual after :attr:`latency` plus
                ``delay``, ``"drop"`` to close connections unanswered, and
                ``"off"`` to stop failing.
            retry_after: Seconds sent in ``Retry-After``, for ``"503"``
                and ``"429"`` only (default: no header for ``"503"``,
                ``1.0`` for ``"429"``).
            delay: Seconds to hold each answer, for ``"hold"`` only
                (default: ``15.0``).

        Raises:
            ValueError: The mode is unknown, an option is not one of its
                options, or a number is negative.

        Note:
            Answers already being held finish their delay when the mode
            changes.
        """
        self._failure = Failure.parse(mode, retry_after, delay)
        logger.debug("Fake Pakat server failure mode: %s", mode)

    def inject_faults(
        self,
        ratio: float = DEFAULT_FAULT_RATIO,
        kinds: Weights = FAULT_KINDS,
        *,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        retry_after: float | str = DEFAULT_RETRY_AFTER,
        seed: int | None = None,
    ) -> None:
        """Fail a random share of the tracker requests from now on.

        Each request to a tracker endpoint fails with chance ``ratio``, in
        one of these ways: ``"status_5xx"`` answers 500, 502, 503 or 504;
        ``"retry_after_429"`` answers 429 with ``Retry-After``; ``"slow"``
        answers as usual after ``slow_seconds`` (a valid call is recorded
        as accepted, so a client that timed out and retries sends it
        twice); ``"reset_before_read"`` resets the connection after the
        headers, before the body is read; ``"reset_after_read"`` reads
        the whole request, then resets without an answer. Resets are TCP
        RSTs and are recorded with the status ``None``. Scripted answers
        (:meth:`fail_next`) go first. Calling it again replaces the mix.

        Args:
            ratio: The share of requests that fail, from 0 to 1 (default:
                ``0.3``).
            kinds: The kinds to mix, in equal shares, or a mapping of
                kind to weight (default: all five, equally).
            slow_seconds: Seconds a slow answer waits; set it past the
                client's read timeout (default: ``1.0``).
            retry_after: The ``Retry-After`` of a 429: a number of
                seconds, or a string sent as given (default: ``1``).
            seed: Seeds the draws, for a repeatable mix (default:
                ``None``, a fresh one).

        Raises:
            ValueError: ``ratio`` is not between 0 and 1, a kind is
                unknown, a weight or ``slow_seconds`` is negative, or
                ``retry_after`` cannot be a header value.
        """
        self._faults.inject(
            ratio,
            kinds,
            slow_seconds=slow_seconds,
            retry_after=retry_after,
            seed=seed,
        )

    def outage(self, seconds: float) -> None:
        """Reset every tracker request for the next ``seconds``.

        Requests that arrive during the outage, on new connections or kept
        alive ones, are reset before their body is read, as when the
        service is down; it returns at once, and an outage already on is
        extended.

        Args:
            seconds: How long the outage lasts, from now.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        self._faults.outage(seconds)

    def clear_faults(self) -> None:
        """Stop injecting faults and end the outage; :attr:`injected` stays."""
        self._faults.clear()

    @property
    def injected(self) -> Mapping[str, int]:
        """How many requests met each injected fault so far.

        A new mapping keyed by the kinds of :meth:`inject_faults`, plus
        ``"outage"`` for requests reset by :meth:`outage`.
        """
        return self._faults.counts

    def wait_for_calls(
        self, count: int, timeout: float = DEFAULT_WAIT_TIMEOUT
    ) -> bool:
        """Wait until at least ``count`` calls have been accepted.

        Args:
            count: How many accepted calls to wait for.
            timeout: Seconds to wait at most (default: ``5.0``).

        Returns:
            ``True`` when the count was reached, ``False`` on timeout.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self._calls) >= count, timeout
            )

    def wait_for_requests(
        self, count: int, timeout: float = DEFAULT_WAIT_TIMEOUT
    ) -> bool:
        """Wait until at least ``count`` requests have been recorded.

        Args:
            count: How many requests to wait for.
            timeout: Seconds to wait at most (default: ``5.0``).

        Returns:
            ``True`` when the count was reached, ``False`` on timeout.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self._requests) >= count, timeout
            )

    def clear(self) -> None:
        """Forget the recorded requests and the scripted answers."""
        with self._changed:
            self._requests.clear()
            self._calls.clear()
            self._scripts.clear()
            self._changed.notify_all()

    def __repr__(self) -> str:
        """Show the URL and at most the key's last four characters."""
        httpd = self._httpd
        url = "not started" if httpd is None else _base_url(httpd)

        return f"<FakePakatServer {url} ma_key={_mask(self._ma_key)}>"

    def _answer(self, request: RecordedRequest) -> Answer:
        inspector = self._inspector
        if inspector is not None and inspector.owns(request):
            return inspector.answer(request)

        with self._changed:
            script = self._scripts.popleft() if self._scripts else None

        answer = (
            script
            or self._faults.answer(request, lambda: self._judge(request))
            or self._failure.apply(self._judge(request))
        )

        return dataclasses.replace(answer, delay=answer.delay + self.latency)

    def _judge(self, request: RecordedRequest) -> Answer:
        refusal = (
            check_route(request)
            or self._check_key(request)
            or check_payload(request)
        )

        return refusal or success_answer(self.success_status)

    def _check_key(self, request: RecordedRequest) -> Answer | None:
        key = request.headers.get("ma-key")
        if key and self._ma_key in (None, key):
            return None

        return error_answer(401, "unauthorized", "Key not found")

    def _record(self, request: RecordedRequest) -> None:
        inspector = self._inspector
        if inspector is not None:
            # The inspector's own page and API are not tracker requests.
            if inspector.owns(request):
                return

            inspector.log.note(request)

        # Answers can overtake one another (delays, latency), but both
        # lists promise arrival order.
        with self._changed:
            bisect.insort(self._requests, request, key=_arrival)
            if request.status is not None and 200 <= request.status < 300:
                bisect.insort(self._calls, request, key=_arrival)

            self._changed.notify_all()


def _base_url(httpd: LoopbackServer) -> str:
    host, port = str(httpd.server_address[0]), httpd.server_address[1]
    host = f"[{host}]" if ":" in host else host

    return f"http://{host}:{port}{API_PREFIX.rstrip('/')}"


def _mask(ma_key: str | None) -> str:
    if ma_key is None:
        return "any"

    # The last four characters of a short key would give half of it away.
    if len(ma_key) < 16:
        return "'***'"

    return f"'...{ma_key[-4:]}'"


def _arrival(request: RecordedRequest) -> float:
    return request.time
