"""Tests for FakePakatServer, spoken to over real loopback HTTP."""

# STYLE.md puts the expected value on the left of ==, which is what
# ruff's SIM300 (Yoda conditions) flags.

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests

import pakat_logging.testing
from pakat_logging.testing import FakePakatServer, RecordedRequest

KEY = "fake-server-key-0123456789"

JSON = "application/json"

BODIES = {
    "identify": {"email": "a@example.com", "attributes": {"FIRSTNAME": "A"}},
    "trackEvent": {
        "email": "a@example.com",
        "event": "order_completed",
        "properties": {"FIRSTNAME": "A"},
        "eventdata": {"id": "cart:1", "data": {"total": 2**40}},
    },
    "trackLink": {"email": "a@example.com", "link": "example.com/x"},
    "trackPage": {
        "email": "a@example.com",
        "page": "Checkout",
        "properties": {"ma_path": "/checkout"},
    },
}


class Answer:
    """The parts of an HTTP answer that the tests look at."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def json(self) -> Any:
        """Parse the body."""
        return json.loads(self.body)


@pytest.fixture
def fake() -> Iterator[FakePakatServer]:
    """A started fake server that accepts KEY."""
    with FakePakatServer(KEY) as server:
        yield server


Connect = Callable[[FakePakatServer], http.client.HTTPConnection]


def open_connection(server: FakePakatServer) -> http.client.HTTPConnection:
    """Open an HTTP connection to the server's host and port."""
    parts = urllib.parse.urlsplit(server.url)

    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open connections to a server, closed after the test."""
    opened: list[http.client.HTTPConnection] = []

    def connect(server: FakePakatServer) -> http.client.HTTPConnection:
        opened.append(open_connection(server))
        return opened[-1]

    yield connect

    for connection in opened:
        connection.close()


def send(
    server: FakePakatServer,
    endpoint: str = "trackEvent",
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    connection: http.client.HTTPConnection | None = None,
) -> Answer:
    """Send one request; the body is BODIES[endpoint] unless given."""
    if raw is None:
        raw = json.dumps(BODIES[endpoint] if body is None else body).encode()

    sent = {"ma-key": KEY, "Content-Type": JSON} if headers is None else {}
    sent.update(headers or {})
    conn = connection or open_connection(server)
    path = urllib.parse.urlsplit(server.url).path + "/" + endpoint
    try:
        conn.request(method, path, body=raw, headers=sent)
        return Answer(conn.getresponse())
    finally:
        if connection is None:
            conn.close()


def server_threads(port: int) -> list[str]:
    """Name the live threads of the server on this port."""
    prefix = f"pakat-fake-server:{port}"

    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def port_of(server: FakePakatServer) -> int:
    """Return the port the server listens on."""
    port = urllib.parse.urlsplit(server.url).port
    assert port is not None

    return port


def read_after_stop(conn: http.client.HTTPConnection) -> bytes:
    """Read from a connection's socket, an error counting as end of file."""
    assert conn.sock is not None
    conn.sock.settimeout(5)
    try:
        return conn.sock.recv(1)
    except ConnectionError:
        return b""


class TestPackage:
    def test_all(self) -> None:
        """The testing package exports exactly its two public names."""
        exported = pakat_logging.testing.__all__

        assert ["FakePakatServer", "RecordedRequest"] == exported


class TestAccepted:
    @pytest.mark.parametrize("endpoint", sorted(BODIES))
    def test_endpoint_accepted(
        self, fake: FakePakatServer, endpoint: str
    ) -> None:
        """A valid call to each endpoint is answered 204 and recorded."""
        answer = send(fake, endpoint)
        (call,) = fake.calls

        assert 204 == answer.status
        assert b"" == answer.body
        assert "0" == answer.headers["content-length"]
        assert endpoint == call.endpoint
        assert f"/api/v2/{endpoint}" == call.path
        assert "POST" == call.method
        assert BODIES[endpoint] == call.body
        assert KEY == call.headers["ma-key"]
        assert JSON == call.headers["content-type"]
        assert 204 == call.status

    def test_recorded_headers_in_any_case(self, fake: FakePakatServer) -> None:
        """Recorded headers are found in any case; the repr hides values."""
        send(fake, "identify")
        (call,) = fake.calls

        assert JSON == call.headers["Content-Type"]
        assert "MA-KEY" in call.headers
        assert "content-type" in list(call.headers)
        assert KEY not in repr(call.headers)

    def test_success_status_200(self) -> None:
        """With success_status=200 an accepted call gets the JSON body {}."""
        with FakePakatServer(KEY, success_status=200) as server:
            answer = send(server)

        assert 200 == answer.status
        assert {} == answer.json()
        assert JSON == answer.headers["content-type"]
        assert 200 == server.calls[0].status

    def test_success_status_settable(self, fake: FakePakatServer) -> None:
        """Changing success_status on a running server takes effect."""
        fake.success_status = 200
        answer = send(fake)

        assert 200 == answer.status

    def test_charset_parameter(self, fake: FakePakatServer) -> None:
        """A charset parameter on the Content-Type is accepted."""
        ctype = "Application/JSON; charset=utf-8"
        answer = send(fake, headers={"ma-key": KEY, "Content-Type": ctype})

        assert 204 == answer.status

    @pytest.mark.parametrize(
        ("endpoint", "field", "value"),
        [
            ("identify", "attributes", None),
            ("identify", "attributes", {}),
            ("trackEvent", "properties", None),
            ("trackEvent", "properties", {}),
            ("trackEvent", "eventdata", None),
            ("trackEvent", "eventdata", {}),
            ("trackEvent", "eventdata", {"id": None, "data": None}),
            ("trackLink", "properties", None),
            ("trackPage", "properties", {}),
        ],
    )
    def test_empty_optional_fields(
        self, fake: FakePakatServer, endpoint: str, field: str, value: Any
    ) -> None:
        """An optional field that is null or {} is accepted."""
        body = {**BODIES[endpoint], field: value}
        answer = send(fake, endpoint, body)

        assert 204 == answer.status
        assert body == fake.calls[0].body

    def test_non_ascii(self, fake: FakePakatServer) -> None:
        """Non-ASCII text is accepted both raw and JSON-escaped."""
        body = {**BODIES["trackPage"], "page": "سبد خرید"}
        raw = json.dumps(body, ensure_ascii=False).encode()
        escaped = json.dumps(body).encode()
        send(fake, "trackPage", raw=raw)
        send(fake, "trackPage", raw=escaped)

        assert 2 == len(fake.calls)
        assert [body, body] == [call.body for call in fake.calls]

    def test_attribute_values(self, fake: FakePakatServer) -> None:
        """Attribute values of any JSON type are accepted unchanged."""
        attributes = {"AGE": 41, "SMS": None, "VIP": False, "TAGS": []}
        body = {"email": "a@example.com", "attributes": attributes}
        answer = send(fake, "identify", body)

        assert 204 == answer.status
        assert attributes == fake.calls[0].body["attributes"]

    def test_header_names_any_case(self, fake: FakePakatServer) -> None:
        """Header names are matched in any case and recorded lower-cased."""
        headers = {"MA-KEY": KEY, "CONTENT-TYPE": JSON}
        answer = send(fake, headers=headers)

        assert 204 == answer.status
        assert KEY == fake.calls[0].headers["ma-key"]

    def test_requests_session(self, fake: FakePakatServer) -> None:
        """A requests session, pooling its connection, gets every answer."""
        with requests.Session() as session:
            statuses = [
                session.post(
                    f"{fake.url}/identify",
                    json={"email": f"u{n}@example.com"},
                    headers={"ma-key": KEY},
                    timeout=5,
                ).status_code
                for n in range(3)
            ]

        assert [204, 204, 204] == statuses
        assert 3 == len(fake.calls)


class TestKey:
    def test_wrong_key(self, fake: FakePakatServer) -> None:
        """A wrong key is answered 401 and not recorded as a call."""
        answer = send(fake, headers={"ma-key": "nope", "Content-Type": JSON})

        assert 401 == answer.status
        assert {"code": "unauthorized", "message": "Key not found"} == (
            answer.json()
        )
        assert [] == fake.calls
        assert 401 == fake.requests[0].status

    def test_missing_key(self, fake: FakePakatServer) -> None:
        """A request without ma-key is answered 401."""
        answer = send(fake, headers={"Content-Type": JSON})

        assert 401 == answer.status

    def test_any_key(self) -> None:
        """With ma_key=None any non-empty key is accepted."""
        with FakePakatServer() as server:
            answer = send(
                server, headers={"ma-key": "x", "Content-Type": JSON}
            )

        assert 204 == answer.status

    def test_any_key_still_required(self) -> None:
        """With ma_key=None an empty key is still refused."""
        with FakePakatServer() as server:
            answer = send(server, headers={"ma-key": "", "Content-Type": JSON})

        assert 401 == answer.status


class TestRoutes:
    def test_get(self, fake: FakePakatServer) -> None:
        """A GET is answered 405 with Allow: POST and recorded."""
        answer = send(fake, method="GET")

        assert 405 == answer.status
        assert "POST" == answer.headers["allow"]
        assert "method_not_allowed" == answer.json()["code"]
        assert "GET" == fake.requests[0].method

    def test_head(self, fake: FakePakatServer) -> None:
        """A HEAD is answered 405 without a body."""
        answer = send(fake, method="HEAD")

        assert 405 == answer.status
        assert b"" == answer.body

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
    def test_other_methods(self, fake: FakePakatServer, method: str) -> None:
        """Any method but POST is answered 405 and records no call."""
        answer = send(fake, "trackEvent", BODIES["trackEvent"], method=method)

        assert 405 == answer.status
        assert "POST" == answer.headers["allow"]
        assert [] == fake.calls
        assert method == fake.requests[0].method

    @pytest.mark.parametrize(
        "endpoint", ["track", "trackevent", "trackEvent/", ""]
    )
    def test_unknown_path(self, fake: FakePakatServer, endpoint: str) -> None:
        """A path that is not an endpoint is answered 404."""
        answer = send(fake, endpoint, BODIES["trackEvent"])

        assert 404 == answer.status
        assert "not_found" == answer.json()["code"]
        assert None is fake.requests[0].endpoint

    def test_query_string(self, fake: FakePakatServer) -> None:
        """A query string does not hide the endpoint."""
        answer = send(fake, "trackEvent?source=test", BODIES["trackEvent"])

        assert 204 == answer.status
        assert "trackEvent" == fake.calls[0].endpoint


class TestBodyRules:
    @pytest.mark.parametrize(
        ("endpoint", "changes", "code", "message"),
        [
            ("identify", {"email": None}, "missing", "email: is required"),
            ("trackEvent", {"event": ""}, "missing", "event: is required"),
            ("trackLink", {"link": None}, "missing", "link: is required"),
            ("trackPage", {"page": None}, "missing", "page: is required"),
            ("trackEvent", {"event": 5}, "invalid", "event: must be a"),
            ("identify", {"email": "nobody"}, "invalid", "email: must"),
            ("identify", {"email": "a b@x.io"}, "invalid", "email: must"),
            ("identify", {"email": "a\x00@x.io"}, "invalid", "email: must"),
            ("identify", {"attributes": []}, "invalid", "attributes: must"),
            ("identify", {"extra": 1}, "invalid", "extra: is not a param"),
            ("trackPage", {"event": "x"}, "invalid", "event: is not a param"),
            (
                "trackEvent",
                {"properties": {"email": "b@x.io"}},
                "invalid",
                "properties: the key 'email' is reserved",
            ),
            (
                "trackEvent",
                {"properties": {"event": "x"}},
                "invalid",
                "properties: the key 'event' is reserved",
            ),
            (
                "trackLink",
                {"properties": {"link": "x"}},
                "invalid",
                "properties: the key 'link' is reserved",
            ),
            (
                "trackPage",
                {"properties": {"page": "x"}},
                "invalid",
                "properties: the key 'page' is reserved",
            ),
            (
                "trackEvent",
                {"eventdata": {"id": "1", "extra": {}}},
                "invalid",
                "eventdata: the key 'extra'",
            ),
            (
                "trackEvent",
                {"eventdata": {"id": 1234}},
                "invalid",
                "eventdata.id: must be a string",
            ),
            (
                "trackEvent",
                {"eventdata": {"data": [1]}},
                "invalid",
                "eventdata.data: must be an object",
            ),
            ("trackEvent", {"eventdata": "x"}, "invalid", "eventdata: must"),
        ],
    )
    def test_rule(
        self,
        fake: FakePakatServer,
        endpoint: str,
        changes: dict[str, Any],
        code: str,
        message: str,
    ) -> None:
        """A body that breaks a rule is answered 400 naming field and rule."""
        body = {**BODIES[endpoint], **changes}
        answer = send(fake, endpoint, body)

        assert 400 == answer.status
        assert f"{code}_parameter" == answer.json()["code"]
        assert answer.json()["message"].startswith(message)
        assert [] == fake.calls
        assert body == fake.requests[0].body

    def test_missing_field(self, fake: FakePakatServer) -> None:
        """A required field left out is a missing_parameter."""
        answer = send(fake, "trackEvent", {"email": "a@example.com"})

        assert 400 == answer.status
        assert {
            "code": "missing_parameter",
            "message": "event: is required",
        } == answer.json()

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b'{"email": "a@x.io", "event": NaN}', "body: must be valid"),
            (b'{"email": "a@x.io", "event": Infinity}', "body: must be val"),
            (b'["a@x.io"]', "body: must be a JSON object"),
            (b"null", "body: must be a JSON object"),
            (b'{"email": ', "body: must be valid"),
            (b'{"email": "\xff@x.io", "event": "x"}', "body: must be valid"),
            (b"", "body: is required"),
        ],
    )
    def test_bad_json(
        self, fake: FakePakatServer, raw: bytes, message: str
    ) -> None:
        """A body that is not a UTF-8 JSON object is answered 400."""
        answer = send(fake, raw=raw)

        assert 400 == answer.status
        assert answer.json()["message"].startswith(message)
        assert raw == fake.requests[0].raw_body

    def test_unparseable_body_recorded_as_none(
        self, fake: FakePakatServer
    ) -> None:
        """A body with NaN is recorded with body None."""
        send(fake, raw=b'{"email": "a@x.io", "event": NaN}')

        assert None is fake.requests[0].body

    @pytest.mark.parametrize("ctype", ["text/plain", "application/jsonx", ""])
    def test_content_type(self, fake: FakePakatServer, ctype: str) -> None:
        """A body not announced as application/json is answered 400."""
        answer = send(fake, headers={"ma-key": KEY, "Content-Type": ctype})

        assert 400 == answer.status
        assert (
            "Content-Type: must be application/json"
            == (answer.json()["message"])
        )

    def test_chunked_body(
        self, fake: FakePakatServer, connect: Connect
    ) -> None:
        """A chunked body is answered 400 and the connection is closed."""
        conn = connect(fake)
        conn.putrequest("POST", "/api/v2/identify")
        conn.putheader("ma-key", KEY)
        conn.putheader("Content-Type", JSON)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders(b"2\r\n{}\r\n0\r\n\r\n")
        answer = Answer(conn.getresponse())

        assert 400 == answer.status
        assert "close" == answer.headers["connection"]
        assert b"" == fake.requests[0].raw_body


class TestKeepAlive:
    def test_two_requests_one_connection(
        self, fake: FakePakatServer, connect: Connect
    ) -> None:
        """Two requests travel on one connection, answered in turn."""
        conn = connect(fake)
        first = send(fake, "identify", connection=conn)
        sock = conn.sock
        second = send(fake, "trackPage", connection=conn)

        assert 204 == first.status
        assert 204 == second.status
        assert sock is conn.sock
        assert ["identify", "trackPage"] == [c.endpoint for c in fake.calls]

    def test_error_keeps_connection(
        self, fake: FakePakatServer, connect: Connect
    ) -> None:
        """A 400 answer leaves the connection usable."""
        conn = connect(fake)
        first = send(fake, "identify", {"email": "x"}, connection=conn)
        sock = conn.sock
        second = send(fake, "identify", connection=conn)

        assert 400 == first.status
        assert 204 == second.status
        assert sock is conn.sock


class TestFailNext:
    def test_order_and_retry_after(self, fake: FakePakatServer) -> None:
        """Scripts queue up and are answered in order, then normal answers."""
        fake.fail_next(2, status=503)
        fake.fail_next(1, status=429, retry_after=1)
        answers = [send(fake) for _ in range(4)]

        assert [503, 503, 429, 204] == [a.status for a in answers]
        assert "retry-after" not in answers[0].headers
        assert "1" == answers[2].headers["retry-after"]
        assert "too_many_requests" == answers[2].json()["code"]
        assert [503, 503, 429, 204] == [r.status for r in fake.requests]
        assert 1 == len(fake.calls)

    @pytest.mark.parametrize(
        ("retry_after", "header"),
        [
            (2.0, "2"),
            (1.5, "1.5"),
            ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ],
    )
    def test_retry_after_format(
        self, fake: FakePakatServer, retry_after: float | str, header: str
    ) -> None:
        """Retry-After is whole seconds for whole numbers, strings as given."""
        fake.fail_next(status=503, retry_after=retry_after)
        answer = send(fake)

        assert header == answer.headers["retry-after"]

    def test_message(self, fake: FakePakatServer) -> None:
        """The scripted message is the error body's message."""
        fake.fail_next(status=500, message="boom")
        answer = send(fake)

        assert {"code": "internal_server_error", "message": "boom"} == (
            answer.json()
        )

    def test_before_validation(self, fake: FakePakatServer) -> None:
        """A script answers even a request the checks would refuse."""
        fake.fail_next(status=503)
        answer = send(fake, method="GET", headers={})

        assert 503 == answer.status

    def test_scripted_success(self, fake: FakePakatServer) -> None:
        """A scripted 2xx is answered as a success and recorded as a call."""
        fake.fail_next(status=200)
        answer = send(fake, "identify", {"email": "not valid"})

        assert 200 == answer.status
        assert {} == answer.json()
        assert 200 == fake.calls[0].status

    def test_delay(self, fake: FakePakatServer) -> None:
        """A scripted delay holds the answer back at least that long."""
        fake.fail_next(status=503, delay=0.2)
        started = time.monotonic()
        answer = send(fake)
        elapsed = time.monotonic() - started

        assert 503 == answer.status
        assert 0.2 <= elapsed < 5

    def test_latency(self) -> None:
        """Latency holds back every answer at least that long."""
        with FakePakatServer(KEY, latency=0.1) as server:
            started = time.monotonic()
            answers = [send(server).status for _ in range(2)]
            elapsed = time.monotonic() - started

        assert [204, 204] == answers
        assert 0.2 <= elapsed < 5

    def test_drop(self, fake: FakePakatServer) -> None:
        """A dropped request gets no answer and is recorded with None."""
        fake.fail_next(drop=True)

        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"{fake.url}/identify",
                json=BODIES["identify"],
                headers={"ma-key": KEY},
                timeout=5,
            )
        assert None is fake.requests[0].status
        assert BODIES["identify"] == fake.requests[0].body
        assert [] == fake.calls
        assert 204 == send(fake, "identify").status

    def test_drop_http_client(self, fake: FakePakatServer) -> None:
        """An http.client connection sees the dropped request as closed."""
        fake.fail_next(drop=True)

        with pytest.raises(http.client.RemoteDisconnected):
            send(fake)

    def test_clear(self, fake: FakePakatServer) -> None:
        """clear() forgets recorded requests and pending scripts."""
        send(fake)
        fake.fail_next(3)
        fake.clear()
        answer = send(fake)

        assert 204 == answer.status
        assert 1 == len(fake.requests)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"count": -1},
            {"status": 199},
            {"status": 600},
            {"delay": -1},
            {"retry_after": "1\r\nX-Evil: 1"},
            {"retry_after": float("nan")},
        ],
    )
    def test_bad_arguments(
        self, fake: FakePakatServer, kwargs: dict[str, Any]
    ) -> None:
        """Scripts that cannot be answered are refused with ValueError."""
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            fake.fail_next(**kwargs)


class TestWaiting:
    def test_wait_for_calls(self, fake: FakePakatServer) -> None:
        """wait_for_calls returns True once calls from a thread arrive."""
        client = threading.Thread(
            target=lambda: [send(fake) for _ in range(3)],
            name="test-fake-server-client",
        )
        client.start()
        reached = fake.wait_for_calls(3)
        client.join(5)

        assert reached is True
        assert 3 == len(fake.calls)

    def test_wait_for_calls_timeout(self, fake: FakePakatServer) -> None:
        """wait_for_calls returns False when the count is not reached."""
        send(fake, "identify", {"email": "x"})

        assert fake.wait_for_calls(1, timeout=0.05) is False
        assert fake.wait_for_requests(1, timeout=0.05) is True

    def test_many_clients(self, fake: FakePakatServer) -> None:
        """Concurrent clients are all answered and recorded in order."""
        clients = [
            threading.Thread(
                target=send, args=(fake,), name=f"test-fake-client-{n}"
            )
            for n in range(20)
        ]
        for client in clients:
            client.start()
        reached = fake.wait_for_calls(20)
        for client in clients:
            client.join(5)
        times = [call.time for call in fake.calls]

        assert reached is True
        assert sorted(times) == times


class TestLifecycle:
    def test_url_before_start(self) -> None:
        """Reading the URL before start() raises RuntimeError."""
        server = FakePakatServer(KEY)

        with pytest.raises(RuntimeError, match="not started"):
            server.url  # noqa: B018

    def test_url(self, fake: FakePakatServer) -> None:
        """The URL is the loopback base URL, without a trailing slash."""
        port = port_of(fake)

        assert f"http://127.0.0.1:{port}/api/v2" == fake.url

    def test_no_socket_before_start(self) -> None:
        """Construction opens no socket: a busy port only fails start()."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            server = FakePakatServer(port=busy.getsockname()[1])

            with pytest.raises(OSError):
                server.start()

    def test_start_twice(self, fake: FakePakatServer) -> None:
        """Starting a running server raises RuntimeError."""
        with pytest.raises(RuntimeError, match="already started"):
            fake.start()

    def test_stop_twice(self) -> None:
        """stop() can be called again, and before start()."""
        server = FakePakatServer(KEY)
        server.stop()
        server.start()
        server.stop()
        server.stop()

        with pytest.raises(RuntimeError):
            server.url  # noqa: B018

    def test_restart(self) -> None:
        """A stopped server can be started again and keeps its records."""
        server = FakePakatServer(KEY)
        with server:
            send(server)
        with server:
            answer = send(server)

        assert 204 == answer.status
        assert 2 == len(server.calls)

    def test_stop_closes_idle_connections(self, connect: Connect) -> None:
        """stop() closes keep-alive connections and ends every thread."""
        server = FakePakatServer(KEY).start()
        port = port_of(server)
        conns = [connect(server) for _ in range(2)]
        statuses = [send(server, connection=c).status for c in conns]
        threads_before = server_threads(port)
        server.stop()

        assert [204, 204] == statuses
        assert 3 == len(threads_before)
        assert [b"", b""] == [read_after_stop(c) for c in conns]
        assert [] == server_threads(port)

    def test_stop_drops_delayed_answer(self, connect: Connect) -> None:
        """stop() does not wait out a scripted delay, nor answer after it."""
        server = FakePakatServer(KEY).start()
        conn = connect(server)
        send(server, connection=conn)
        server.fail_next(status=503, delay=60)
        path = urllib.parse.urlsplit(server.url).path + "/identify"
        conn.request("POST", path, body=b"{}", headers={"ma-key": KEY})
        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started

        assert elapsed < 10
        assert [204] == [r.status for r in server.requests][:1]
        assert {None} >= {r.status for r in server.requests[1:]}
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.getresponse()

    def test_repr_hides_key(self) -> None:
        """The repr shows the URL and only the key's last four characters."""
        server = FakePakatServer(KEY)
        before = repr(server)
        with server:
            running, url = repr(server), server.url

        assert "<FakePakatServer not started ma_key='...6789'>" == before
        assert f"<FakePakatServer {url} ma_key='...6789'>" == running

    def test_repr_short_key(self) -> None:
        """A short key shows none of its characters."""
        server = FakePakatServer("abcdef")

        assert "<FakePakatServer not started ma_key='***'>" == repr(server)

    def test_recorded_repr_hides_key(self, fake: FakePakatServer) -> None:
        """A recorded request's repr leaves out the headers with the key."""
        send(fake)

        assert KEY not in repr(fake.calls)
        assert isinstance(fake.calls[0], RecordedRequest)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"ma_key": ""},
            {"latency": -0.1},
            {"success_status": 404},
        ],
    )
    def test_bad_construction(self, kwargs: dict[str, Any]) -> None:
        """Arguments that cannot work are refused with ValueError."""
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            FakePakatServer(**kwargs)
