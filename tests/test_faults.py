"""Tests for the fake server's injected faults, seen from a raw client."""

from __future__ import annotations

import collections
import http.client
import json
import urllib.parse
from collections.abc import Iterator

import pytest

from pakat_logging.testing import FakePakatServer

KEY = "faults-key-0123456789"

BODY = json.dumps({"email": "a@example.com", "event": "x"}).encode()


@pytest.fixture
def fake() -> Iterator[FakePakatServer]:
    """A started fake server that accepts KEY."""
    with FakePakatServer(KEY) as server:
        yield server


def post(
    server: FakePakatServer, endpoint: str = "trackEvent", timeout: float = 2
) -> tuple[int, str | None] | str:
    """Post BODY on a new connection; return the status and Retry-After.

    Returns:
        ``(status, retry_after)``, or the name of the error raised.
    """
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=timeout
    )
    headers = {"ma-key": KEY, "Content-Type": "application/json"}
    try:
        connection.request(
            "POST", f"{parts.path}/{endpoint}", body=BODY, headers=headers
        )
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    except OSError as error:
        return type(error).__name__
    finally:
        connection.close()


class TestKinds:
    def test_status_5xx(self, fake):
        """A 5xx fault answers 500, 502, 503 or 504."""
        fake.inject_faults(1.0, ["status_5xx"], seed=1)

        statuses = {post(fake)[0] for _ in range(20)}

        assert statuses <= {500, 502, 503, 504}
        assert 20 == fake.injected["status_5xx"]

    def test_retry_after_429(self, fake):
        """A 429 fault carries the Retry-After asked for."""
        fake.inject_faults(1.0, ["retry_after_429"], retry_after=3)

        assert (429, "3") == post(fake)

    def test_slow_answer_times_the_client_out(self, fake):
        """A slow answer outlasts the client, yet the call is recorded."""
        fake.inject_faults(1.0, "slow", slow_seconds=0.5)

        outcome = post(fake, timeout=0.1)
        recorded = fake.wait_for_calls(1)

        assert "TimeoutError" == outcome
        assert recorded
        assert BODY == fake.calls[0].raw_body

    def test_reset_before_read(self, fake):
        """The connection is reset before the body is read."""
        fake.inject_faults(1.0, ["reset_before_read"])

        outcome = post(fake)
        [request] = fake.requests

        assert "ConnectionResetError" == outcome
        assert (None, b"") == (request.status, request.raw_body)
        assert "/api/v2/trackEvent" == request.path

    def test_reset_after_read(self, fake):
        """The whole request is read, then reset without an answer."""
        fake.inject_faults(1.0, ["reset_after_read"])

        outcome = post(fake)
        [request] = fake.requests

        assert "ConnectionResetError" == outcome
        assert (None, BODY) == (request.status, request.raw_body)
        assert [] == fake.calls


class TestMix:
    def test_ratio_and_counts(self, fake):
        """About ratio of requests fail, each kind counted as dealt."""
        fake.inject_faults(0.3, seed=7, slow_seconds=2.0)

        # The client waits long enough for any usual answer on a busy
        # machine, and not for a slow one.
        outcomes = collections.Counter(
            str(post(fake, timeout=0.3)) for _ in range(200)
        )
        injected = fake.injected

        assert 40 < sum(injected.values()) < 80
        assert 200 - sum(injected.values()) == outcomes["(204, None)"]
        assert all(injected[kind] for kind in ("status_5xx", "slow"))
        assert 0 == injected["outage"]

    def test_weights(self, fake):
        """Weights share the ratio between kinds; zero leaves one out."""
        fake.inject_faults(
            1.0, {"status_5xx": 1.0, "retry_after_429": 0.0}, seed=3
        )

        statuses = {post(fake)[0] for _ in range(30)}

        assert statuses <= {500, 502, 503, 504}

    def test_seed_repeats_the_mix(self, fake):
        """The same seed deals the same faults in the same order."""
        runs = []
        for _ in range(2):
            fake.inject_faults(0.5, ["status_5xx"], seed=11)
            runs.append([post(fake) != (204, None) for _ in range(30)])

        assert runs[0] == runs[1]

    def test_other_paths_never_fail(self, fake):
        """A path that is not an endpoint keeps its usual answer."""
        fake.inject_faults(1.0, ["reset_before_read"])

        assert (404, None) == post(fake, "nowhere")

    def test_clear_faults(self, fake):
        """After clear_faults, requests are answered as usual."""
        fake.inject_faults(1.0)
        fake.outage(60)
        fake.clear_faults()

        assert (204, None) == post(fake)
        assert 0 == sum(fake.injected.values())


class TestOutage:
    def test_every_request_is_reset(self, fake):
        """During an outage each request is reset, on new connections too."""
        fake.outage(60)

        outcomes = {post(fake) for _ in range(5)}

        assert {"ConnectionResetError"} == outcomes
        assert 5 == fake.injected["outage"]

    def test_kept_alive_connection_is_reset(self, fake):
        """A connection opened before the outage is reset within it."""
        parts = urllib.parse.urlsplit(fake.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port)
        headers = {"ma-key": KEY, "Content-Type": "application/json"}
        path = f"{parts.path}/trackEvent"
        connection.request("POST", path, body=BODY, headers=headers)
        first = connection.getresponse()
        first.read()
        fake.outage(60)
        try:
            # The reset may come while the request is still being written.
            with pytest.raises((ConnectionResetError, BrokenPipeError)):  # noqa: PT012
                connection.request("POST", path, body=BODY, headers=headers)
                connection.getresponse()
        finally:
            connection.close()

        assert 204 == first.status

    def test_zero_seconds_is_no_outage(self, fake):
        """An outage of no length fails nothing."""
        fake.outage(0)

        assert (204, None) == post(fake)


class TestValidation:
    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"ratio": 1.5}, "ratio"),
            ({"ratio": -0.1}, "ratio"),
            ({"kinds": ["timeout"]}, "'timeout' is not one of"),
            ({"kinds": []}, "at least one kind"),
            ({"kinds": {"slow": -1.0}}, "weights >= 0"),
            ({"kinds": {"slow": 0.0}}, "must not all be zero"),
            ({"slow_seconds": -1}, "slow_seconds"),
            ({"retry_after": "1\r\nX: y"}, "retry_after"),
            ({"retry_after": -2}, "retry_after"),
        ],
    )
    def test_bad_arguments(self, fake, arguments, message):
        """A malformed mix is refused with a message naming the argument."""
        with pytest.raises(ValueError, match=message):
            fake.inject_faults(**arguments)

    def test_negative_outage(self, fake):
        """An outage of negative length is refused."""
        with pytest.raises(ValueError, match="seconds"):
            fake.outage(-1)
