"""Tests for the inspector's JSON API and the fake server's failure mode."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from pakat_logging import Sender, TrackEvent
from pakat_logging.testing import FakePakatServer, RecordedRequest
from pakat_logging.testing._inspector_log import CallLog

KEY = "inspector-key-0123456789"

EVENT = {"email": "sara@example.com", "event": "order_completed"}
PAGE = {"email": "ali@example.com", "page": "Checkout"}


@pytest.fixture
def fake() -> Iterator[FakePakatServer]:
    """A started fake server with its inspector."""
    with FakePakatServer(KEY, inspector=True) as server:
        yield server


def track(
    server: FakePakatServer, endpoint: str, body: Any
) -> requests.Response:
    """Send one tracker call with the right key."""
    return requests.post(
        f"{server.url}/{endpoint}",
        json=body,
        headers={"ma-key": KEY},
        timeout=5,
    )


def inspect(server: FakePakatServer, path: str, **kwargs: Any) -> Any:
    """GET one of the inspector's paths."""
    url = server.inspector_url + path

    return requests.get(url, timeout=5, allow_redirects=False, **kwargs)


def post(server: FakePakatServer, path: str, body: Any) -> Any:
    """POST JSON to one of the inspector's paths."""
    return requests.post(server.inspector_url + path, json=body, timeout=5)


def recorded(status: int | None, endpoint: str = "trackEvent") -> Any:
    """Build a recorded request as the fake server would."""
    return RecordedRequest(
        method="POST",
        path=f"/api/v2/{endpoint}",
        endpoint=endpoint,
        headers={"ma-key": KEY},
        body=EVENT,
        raw_body=b"{}",
        status=status,
        time=time.monotonic(),
    )


class TestInspectorOff:
    def test_not_served_by_default(self) -> None:
        """Without inspector=True its paths are unknown tracker paths."""
        with FakePakatServer(KEY) as server:
            origin = server.url.removesuffix("/api/v2")
            answer = requests.get(f"{origin}/_inspector/", timeout=5)

            with pytest.raises(RuntimeError, match="inspector=True"):
                _ = server.inspector_url

        assert 405 == answer.status_code
        assert ["/_inspector/"] == [r.path for r in server.requests]


class TestPage:
    def test_page_and_files(self, fake: FakePakatServer) -> None:
        """The page and its script and style come from the package."""
        page = inspect(fake, "")
        script = inspect(fake, "inspector.js")
        style = inspect(fake, "inspector.css")

        assert 200 == page.status_code
        assert page.headers["content-type"].startswith("text/html")
        assert "/_inspector/inspector.js" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert script.headers["content-type"].startswith("text/javascript")
        assert "/_inspector/api/" in script.text
        assert style.headers["content-type"].startswith("text/css")

    def test_bare_prefix_redirects(self, fake: FakePakatServer) -> None:
        """/_inspector without the slash redirects to the page."""
        origin = fake.url.removesuffix("/api/v2")
        answer = requests.get(
            f"{origin}/_inspector", timeout=5, allow_redirects=False
        )

        assert 308 == answer.status_code
        assert "/_inspector/" == answer.headers["location"]

    def test_unknown_path_and_method(self, fake: FakePakatServer) -> None:
        """Unknown paths answer 404 and wrong methods 405 with Allow."""
        missing = inspect(fake, "api/nothing")
        wrong = requests.delete(fake.inspector_url + "api/calls", timeout=5)

        assert 404 == missing.status_code
        assert 405 == wrong.status_code
        assert "GET" == wrong.headers["allow"]

    def test_foreign_host_refused(self, fake: FakePakatServer) -> None:
        """A host name other than localhost is refused, against rebinding."""
        refused = inspect(fake, "api/calls", headers={"Host": "evil.test"})
        local = inspect(fake, "api/calls", headers={"Host": "localhost:1"})

        assert 421 == refused.status_code
        assert 200 == local.status_code

    def test_inspector_requests_not_recorded(
        self, fake: FakePakatServer
    ) -> None:
        """Inspector requests are neither recorded nor use up fail_next."""
        fake.fail_next(1, status=503)

        inspect(fake, "")
        inspect(fake, "api/calls")
        post(fake, "api/failure", {"mode": "off"})
        post(fake, "api/clear", {})
        answer = track(fake, "trackEvent", EVENT)

        assert 503 == answer.status_code
        assert ["/api/v2/trackEvent"] == [r.path for r in fake.requests]
        assert [] == inspect(fake, "api/calls").json()["calls"][1:]


class TestCalls:
    def test_newest_first_with_fields(self, fake: FakePakatServer) -> None:
        """Calls come newest first, described for the page."""
        track(fake, "trackEvent", EVENT)
        track(fake, "trackPage", PAGE)

        answer = inspect(fake, "api/calls").json()
        page, event = answer["calls"]

        assert 2 == answer["cursor"]
        assert 1 == answer["first"]
        assert "trackPage" == page["endpoint"]
        assert "trackEvent" == event["endpoint"]
        assert "ali@example.com" == page["email"]
        assert "Checkout" == page["name"]
        assert 204 == page["status"]
        assert PAGE == page["body"]
        assert '"page": "Checkout"' in page["body_text"]
        assert "order_completed" == event["name"]
        assert abs(time.time() - event["time"]) < 60

    def test_counters(self, fake: FakePakatServer) -> None:
        """Each endpoint counts its requests, accepted and failed."""
        fake.fail_next(1, status=503)
        track(fake, "trackEvent", EVENT)
        track(fake, "trackEvent", EVENT)
        track(fake, "identify", {"email": "a@example.com"})

        counters = inspect(fake, "api/calls").json()["counters"]

        assert {"total": 2, "accepted": 1, "failed": 1} == counters[
            "trackEvent"
        ]
        assert 1 == counters["identify"]["accepted"]
        assert 0 == counters["trackLink"]["total"]

    def test_after_cursor(self, fake: FakePakatServer) -> None:
        """With after=N only the requests numbered above N come back."""
        track(fake, "trackEvent", EVENT)
        cursor = inspect(fake, "api/calls").json()["cursor"]
        track(fake, "trackPage", PAGE)

        answer = inspect(fake, "api/calls", params={"after": cursor}).json()

        assert ["trackPage"] == [c["endpoint"] for c in answer["calls"]]

    def test_filters_and_limit(self, fake: FakePakatServer) -> None:
        """endpoint, email and limit narrow the list."""
        track(fake, "trackEvent", EVENT)
        track(fake, "trackPage", PAGE)
        track(fake, "trackPage", {**PAGE, "email": "sara@example.com"})

        def ids(**params: Any) -> list[str]:
            calls = inspect(fake, "api/calls", params=params).json()["calls"]
            return [c["endpoint"] + ":" + c["email"][:3] for c in calls]

        assert ["trackPage:sar", "trackPage:ali"] == ids(endpoint="trackPage")
        assert ["trackPage:sar", "trackEvent:sar"] == ids(email="SARA")
        assert ["trackPage:sar"] == ids(limit=1)

    def test_bad_query(self, fake: FakePakatServer) -> None:
        """A cursor that is not a whole number is a 400."""
        answer = inspect(fake, "api/calls", params={"after": "-1"})

        assert 400 == answer.status_code
        assert answer.json()["message"].startswith("after:")

    def test_key_never_shown(self, fake: FakePakatServer) -> None:
        """The answers show at most the key's last four characters."""
        track(fake, "trackEvent", EVENT)

        text = inspect(fake, "api/calls").text
        call = inspect(fake, "api/calls").json()["calls"][0]

        assert KEY not in text
        assert "...6789" == call["ma_key"]

    def test_dropped_and_unparsed(self, fake: FakePakatServer) -> None:
        """A dropped answer has no status; a bad body shows as text."""
        fake.fail_next(1, drop=True)
        with pytest.raises(requests.ConnectionError):
            track(fake, "trackEvent", EVENT)
        requests.post(
            f"{fake.url}/trackLink",
            data=b"not json",
            headers={"ma-key": KEY, "Content-Type": "application/json"},
            timeout=5,
        )

        bad, dropped = inspect(fake, "api/calls").json()["calls"]

        assert None is dropped["status"]
        assert 400 == bad["status"]
        assert None is bad["body"]
        assert "not json" == bad["body_text"]

    def test_clear(self, fake: FakePakatServer) -> None:
        """Clear empties the list and counters, not server.requests."""
        track(fake, "trackEvent", EVENT)

        cleared = post(fake, "api/clear", {}).json()
        answer = inspect(fake, "api/calls").json()

        assert {"cleared": 1} == cleared
        assert [] == answer["calls"]
        assert 2 == answer["first"]
        assert 0 == answer["counters"]["trackEvent"]["total"]
        assert 1 == len(fake.requests)

    def test_post_needs_json(self, fake: FakePakatServer) -> None:
        """A form or text POST, as other sites could send, is refused."""
        answer = requests.post(
            fake.inspector_url + "api/clear", data="{}", timeout=5
        )

        assert 415 == answer.status_code


class TestCallLog:
    def test_keeps_the_latest(self) -> None:
        """A full log forgets the oldest; numbers go on."""
        log = CallLog(size=2)
        for status in (204, 503, 204):
            log.note(recorded(status))

        answer = log.query()

        assert [3, 2] == [c["id"] for c in answer["calls"]]
        assert 2 == answer["first"]
        assert 3 == answer["counters"]["trackEvent"]["total"]

    def test_big_body_is_cut(self) -> None:
        """A body past 64 KiB is cut in the text and left out as JSON."""
        big = {"email": "a@b.io", "event": "x" * 70_000}
        request = recorded(204)
        request = dataclasses.replace(
            request, body=big, raw_body=repr(big).encode()
        )
        log = CallLog()

        log.note(request)
        (call,) = log.query()["calls"]

        assert None is call["body"]
        assert call["body_text"].endswith("more characters)")


class TestFailureEndpoint:
    def test_default_off(self, fake: FakePakatServer) -> None:
        """The failure mode starts off."""
        answer = inspect(fake, "api/failure")

        assert {"mode": "off"} == answer.json()

    def test_switch_429_on_and_off(self, fake: FakePakatServer) -> None:
        """Switched on, every call gets 429 with Retry-After, until off."""
        switched = post(fake, "api/failure", {"mode": "429", "retry_after": 2})
        first = track(fake, "trackEvent", EVENT)
        second = track(fake, "trackPage", PAGE)
        post(fake, "api/failure", {"mode": "off"})
        after = track(fake, "trackEvent", EVENT)

        assert {"mode": "429", "retry_after": 2.0} == switched.json()
        assert [429, 429] == [first.status_code, second.status_code]
        assert "2" == first.headers["retry-after"]
        assert 204 == after.status_code

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"mode": "500"}, "mode"),
            ({"mode": "hold", "retry_after": 1}, "retry_after"),
            ({"mode": "hold", "delay": -1}, "delay"),
            ({"mode": "503", "delay": 1}, "delay"),
            ({"mode": "429", "retry_after": True}, "retry_after"),
            ({"mode": "off", "colour": "red"}, "colour"),
        ],
    )
    def test_bad_failure(
        self, fake: FakePakatServer, body: Any, field: str
    ) -> None:
        """A bad mode or option is a 400 naming the field."""
        answer = post(fake, "api/failure", body)

        assert 400 == answer.status_code
        assert answer.json()["message"].startswith(f"{field}:")
        assert {"mode": "off"} == fake.failure


class TestSetFailure:
    def test_503_until_off(self, fake: FakePakatServer) -> None:
        """Every request fails with 503 until the mode is off."""
        fake.set_failure("503")
        statuses = [track(fake, "trackEvent", EVENT) for _ in range(3)]
        fake.set_failure("off")

        assert [503] * 3 == [a.status_code for a in statuses]
        assert "retry-after" not in statuses[0].headers
        assert 204 == track(fake, "trackEvent", EVENT).status_code

    def test_scripts_go_first(self, fake: FakePakatServer) -> None:
        """A scripted answer wins over the failure mode."""
        fake.set_failure("503")
        fake.fail_next(1, status=200)

        assert 200 == track(fake, "trackEvent", EVENT).status_code
        assert 503 == track(fake, "trackEvent", EVENT).status_code

    def test_429_default_retry_after(self, fake: FakePakatServer) -> None:
        """The 429 mode sends Retry-After: 1 unless told otherwise."""
        fake.set_failure("429")

        answer = track(fake, "trackEvent", EVENT)

        assert {"mode": "429", "retry_after": 1.0} == fake.failure
        assert "1" == answer.headers["retry-after"]

    def test_hold(self, fake: FakePakatServer) -> None:
        """The hold mode answers as usual, late."""
        fake.set_failure("hold", delay=0.3)
        started = time.monotonic()

        answer = track(fake, "trackEvent", EVENT)

        assert 204 == answer.status_code
        assert time.monotonic() - started >= 0.3
        assert {"mode": "hold", "delay": 0.3} == fake.failure

    def test_drop(self, fake: FakePakatServer) -> None:
        """The drop mode closes connections without an answer."""
        fake.set_failure("drop")

        with pytest.raises(requests.ConnectionError):
            track(fake, "trackEvent", EVENT)

        assert [None] == [r.status for r in fake.requests]

    @pytest.mark.parametrize(
        ("mode", "options"),
        [
            ("404", {}),
            ("drop", {"delay": 1.0}),
            ("503", {"retry_after": float("nan")}),
        ],
    )
    def test_invalid(
        self, fake: FakePakatServer, mode: str, options: Any
    ) -> None:
        """An unknown mode or a misplaced or bad option is a ValueError."""
        with pytest.raises(ValueError, match=r"^(mode|delay|retry_after):"):
            fake.set_failure(mode, **options)

    def test_sender_retries_and_recovers(self, fake: FakePakatServer) -> None:
        """A sender retries through the failure and delivers after it."""
        fake.set_failure("503")
        sender = Sender(KEY, url=fake.url, timeout=2.0)
        try:
            sender.submit(TrackEvent("signup", email="a@example.com"))
            retried = fake.wait_for_requests(2, timeout=10)
            fake.set_failure("off")
            flushed = sender.flush(15)
        finally:
            sender.close(5)

        assert retried
        assert flushed
        assert 1 == sender.stats()["delivered"]
        assert [503, 503] == [r.status for r in fake.requests[:2]]


class TestCommand:
    def run(self, *options: str) -> tuple[list[str], str]:
        """Start fake-server, read its first lines, then interrupt it."""
        argv = [sys.executable, "-m", "pakat_logging", "fake-server"]
        process = subprocess.Popen(
            [*argv, "--port", "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        process.terminate()
        _, err = process.communicate(timeout=10)

        return lines, err

    def test_prints_inspector_url(self) -> None:
        """The command prints the inspector's URL, on loopback."""
        lines, err = self.run()

        assert lines[0].startswith("Fake Pakat tracker at http://127.0.0.1:")
        assert lines[1].startswith("Inspector at http://127.0.0.1:")
        assert lines[1].rstrip().endswith("/_inspector/")
        assert "warning" not in err

    def test_warns_beyond_loopback(self) -> None:
        """Listening beyond loopback prints a warning."""
        _, err = self.run("--host", "0.0.0.0")

        assert err.startswith("warning: listening on 0.0.0.0")
