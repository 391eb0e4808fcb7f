"""Security: the key stays secret, and no data steers the request."""

from __future__ import annotations

import logging
import logging.config
import traceback
from collections.abc import Callable

import pytest
import requests
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pakat_logging import (
    Identify,
    PakatHandler,
    Sender,
    TrackEvent,
    TrackLink,
    TrackPage,
    get_sender,
)
from pakat_logging._cli import main
from pakat_logging._config import Options
from pakat_logging._transport import Transport
from pakat_logging.testing import FakePakatServer

from ._support import (
    RELIABILITY,
    black_hole,
    refusing_url,
    run_script,
    size,
)

pytestmark = RELIABILITY

SECRET = "xkeysib-5ecret-0a1b2c3d4e5f60718293"

# What must never show: the key, and any long part of it. Its last four
# characters may show, to tell keys apart.
FRAGMENTS = {
    "the key": SECRET,
    "all but its last four": SECRET[:-4],
    "its middle": SECRET[8:24],
}

Leaks = Callable[..., list[str]]


@pytest.fixture
def leaks(caplog, capfd) -> Leaks:
    """Name the parts of the key in every log record, output and text."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)

    def check(*texts: str) -> list[str]:
        out, err = capfd.readouterr()
        whole = "\n".join([caplog.text, out, err, *texts])
        return [name for name, part in FRAGMENTS.items() if part in whole]

    return check


def _shown(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


class TestKeyStaysSecret:
    def test_wrong_key(self, leaks):
        """A 401 is reported without the key."""
        with FakePakatServer("the-right-key-000000") as server:
            sender = Sender(SECRET, url=server.url)
            sender.submit(TrackEvent("x", email="a@example.com"))
            sender.submit(TrackEvent("y", email="b@example.com"))
            answered = server.wait_for_requests(1)
            sender.close(0.2)
            texts = [repr(sender), repr(sender.options), str(sender.stats())]

        assert answered
        assert [] == leaks(*texts)

    @pytest.mark.parametrize(
        "failure",
        [
            {"status": 400, "message": "event: invalid"},
            {"status": 503, "retry_after": 1},
            {"status": 500, "drop": True},
            {"status": 204, "delay": 1.0},
        ],
    )
    def test_failed_deliveries(self, failure, leaks):
        """Refusals, outages, resets and timeouts report no key."""
        with FakePakatServer(SECRET) as server:
            server.fail_next(3, **failure)
            sender = Sender(SECRET, url=server.url, timeout=0.3)
            for n in range(3):
                sender.submit(TrackEvent("x", email=f"u{n}@example.com"))
            sender.flush(3.0)
            sender.close(0.2)
            texts = [repr(sender), repr(server), *map(repr, server.requests)]

        assert [] == leaks(*texts)

    @pytest.mark.parametrize("dead", ["refusing", "black hole"])
    def test_close_summary(self, dead, leaks):
        """The summary of undelivered calls at close shows no key."""
        with black_hole() as silent:
            url = refusing_url() if dead == "refusing" else silent
            sender = Sender(SECRET, url=url, timeout=0.3)
            for n in range(20):
                sender.submit(TrackEvent("x", email=f"u{n}@example.com"))
            sender.close(0.3)

        assert [] == leaks(repr(sender))

    def test_reprs(self, leaks):
        """No object that holds the key shows it."""
        with FakePakatServer(SECRET) as server:
            sender = Sender(SECRET, url=server.url)
            handler = PakatHandler(sender=sender)
            options = Options.resolve(SECRET, url=server.url)
            shown = [
                repr(sender),
                repr(handler),
                repr(options),
                str(options),
                repr(Transport(options)),
                repr(server),
                repr(get_sender(SECRET, url=server.url)),
            ]
            get_sender(SECRET, url=server.url).close(0.1)
            sender.close(0.1)

        assert [] == leaks(*shown)

    @pytest.mark.parametrize(
        "options",
        [
            {"url": "http://example.com/api/v2"},
            {"url": "https://x.io/api\r\nHost: evil"},
            {"url": "https://user:pass@x.io/api"},
            {"timeout": -1},
            {"max_workers": "many"},
            {"spool": 42},
        ],
    )
    def test_configuration_errors(self, options, leaks):
        """Errors in the other options never quote the key."""
        errors = []
        for build in (Sender, PakatHandler, get_sender):
            with pytest.raises(ValueError) as caught:
                build(SECRET, **options)
            errors.append(_shown(caught.value))
        config = {
            "version": 1,
            "handlers": {
                "pakat": {
                    "class": "pakat_logging.PakatHandler",
                    "ma_key": SECRET,
                    **options,
                }
            },
        }
        with pytest.raises(ValueError) as caught:
            logging.config.dictConfig(config)
        errors.append(_shown(caught.value))

        assert [] == leaks(*errors)

    @pytest.mark.parametrize(
        "bad", [SECRET + "\n", " " + SECRET, SECRET + "\x00", SECRET + "\t"]
    )
    def test_malformed_key(self, bad, leaks):
        """A malformed key is refused without being quoted."""
        with pytest.raises(ValueError) as caught:
            Sender(bad, url="https://in-automate.pakat.net/api/v2")

        assert [] == leaks(_shown(caught.value))

    def test_cli_send(self, leaks, monkeypatch):
        """pakat-logging send shows at most the key's last four chars."""
        argv = ["send", "event", "signup", "--email", "a@example.com"]
        with (
            FakePakatServer(SECRET) as good,
            FakePakatServer("the-right-key-000000") as wrong,
        ):
            statuses = [
                main([*argv, "--url", url, "--ma-key", SECRET])
                for url in (good.url, wrong.url, refusing_url())
            ]
            statuses.append(
                main([*argv, "--url", "http://x.io/a", "--ma-key", SECRET])
            )
            monkeypatch.setenv("PAKAT_MA_KEY", SECRET)
            statuses.append(main(["send", "event", "x", "--email", "nope"]))
            statuses.append(main([*argv, "--url", good.url]))

        assert [0, 1, 1, 2, 2, 0] == statuses
        assert [] == leaks()

    def test_cli_in_its_own_process(self):
        """The command run as a program prints no key, even when it fails."""
        script = """
            import os, sys
            os.environ["PAKAT_MA_KEY"] = sys.argv[1]
            from pakat_logging._cli import main
            sys.exit(main(["send", "event", "x", "--email", "a@b.io",
                           "--url", sys.argv[2]]))
        """
        done = run_script(script, SECRET, refusing_url(), timeout=60)

        assert 1 == done.returncode
        assert SECRET[-4:] in done.stdout
        assert SECRET[:-4] not in done.stdout + done.stderr

    def test_exit_in_its_own_process(self):
        """An app that exits with calls undelivered logs no key at DEBUG."""
        script = """
            import logging, sys
            from pakat_logging import Sender, TrackEvent
            logging.basicConfig(level=logging.DEBUG)
            sender = Sender(sys.argv[1], url=sys.argv[2], shutdown_timeout=0.5)
            for n in range(50):
                sender.submit(TrackEvent("x", email=f"u{n}@b.io"))
        """
        done = run_script(script, SECRET, refusing_url(), timeout=60)

        assert 0 == done.returncode
        assert "Sender closed" in done.stderr
        assert SECRET[:-4] not in done.stdout + done.stderr

    def test_key_that_cannot_be_a_header_is_refused(self):
        """A key HTTP cannot carry is refused when the sender is built."""
        with pytest.raises(ValueError, match="ma_key"):
            Sender("\u043a\u043b\u044e\u0447-0123456789abcdef")


class TestPlainHttp:
    @pytest.mark.parametrize(
        "url",
        [
            "http://example.com/api/v2",
            "HTTP://EXAMPLE.COM/api/v2",
            "http://10.0.0.1/api/v2",
            "http://0.0.0.0:8080/api/v2",
            "http://localhost.evil.example/api/v2",
            "http://127.0.0.1.nip.io/api/v2",
            "http://127.1/api/v2",
            "http://2130706433/api/v2",
            "http://[::ffff:127.0.0.1]/api/v2",
            "http://evil.example\\127.0.0.1/api/v2",
        ],
    )
    def test_refused_beyond_loopback(self, url):
        """http:// to a host beyond loopback is refused, allowed on demand."""
        for build in (Sender, PakatHandler, get_sender):
            with pytest.raises(ValueError, match="https"):
                build(SECRET, url=url)

        assert url.rstrip("/") == Sender(
            SECRET, url=url, allow_http=True
        ).options.url.rstrip("/")

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1\\@evil.example/api",
            "http://127.0.0.1:80@evil.example/api",
            "http://evil.example#@127.0.0.1/api",
            "http://evil.example?@127.0.0.1/api",
            "http://127.0.0.1%2f@evil.example/api",
            "http://[::1]@evil.example/api",
            "http://127.0.0.1%00.evil.example/api",
            "http://localhost./api",
            "http://LOCALHOST:1/api",
            "http://127.0.0.1:1/api",
            "http://[::1]:1/api",
            "http://127.9.9.9:1/api",
        ],
    )
    def test_accepted_means_loopback_for_requests(self, url):
        """What passes the check, requests also sends to loopback."""
        try:
            options = Options.resolve(SECRET, url=url)
        except ValueError:
            return
        prepared = requests.PreparedRequest()
        prepared.prepare_url(f"{options.url}/trackEvent", None)
        host = urllib3.util.parse_url(prepared.url).host

        assert host in ("127.0.0.1", "127.9.9.9", "[::1]", "localhost")


BREAKS = [
    ("ma_key", "abc\r\nX-Evil: 1"),
    ("ma_key", "abc\n"),
    ("ma_key", "abc\rdef"),
    ("ma_key", "abc\u2028def"),
    ("ma_key", "abc\x85def"),
    ("url", "https://x.io/api\r\nX-Evil: 1"),
    ("url", "https://x.io/api\n"),
    ("url", "https://x.io\r/api"),
]

# The environment cannot hold a NUL, so these are given as arguments only.
NULS = [("ma_key", "abc\x00def"), ("url", "https://x.io/a\x00b")]

VARIABLES = {"ma_key": "PAKAT_MA_KEY", "url": "PAKAT_URL"}


class TestNoInjection:
    @pytest.mark.parametrize(("name", "value"), BREAKS + NULS)
    def test_line_breaks_refused(self, name, value):
        """CR, LF and other breaks in the key or URL fail at construction."""
        options = {"ma_key": SECRET, "url": "https://x.io/api", name: value}

        with pytest.raises(ValueError, match=name):
            Sender(**options)

    @pytest.mark.parametrize(("name", "value"), BREAKS)
    def test_line_breaks_from_environment_refused(
        self, name, value, monkeypatch
    ):
        """The same values fail when they come from the environment."""
        monkeypatch.setenv(VARIABLES[name], value)
        options = {"ma_key": SECRET, "url": "https://x.io/api", name: None}

        with pytest.raises(ValueError, match=name):
            Sender(**options)

    def test_data_never_steers_the_request(self):
        """Event names, e-mails and properties never change path or headers."""
        steering = st.sampled_from(
            ["/../", "?x=1", "#top", "\r\n", "%0d%0a", "Host: evil", "\u2028"]
        )
        text = st.lists(steering | st.text(max_size=8), max_size=4).map(
            "".join
        )
        name = text.filter(lambda value: value.strip())
        local = st.lists(
            st.sampled_from(["/../", "?x=1", "%0d%0a", "\u00e9", "a", "#"]),
            min_size=1,
            max_size=4,
        ).map("".join)
        properties = st.dictionaries(text, text, max_size=3)
        calls = st.one_of(
            st.builds(
                TrackEvent,
                name,
                email=local.map("{}@example.com".format),
                properties=properties,
                eventdata=st.fixed_dictionaries({"id": text}),
            ),
            st.builds(TrackPage, name, email=st.just("a@b.io")),
            st.builds(TrackLink, name, email=st.just("a@b.io")),
            st.builds(Identify, st.just("a@b.io"), properties),
        )
        with FakePakatServer(SECRET) as server:
            sender = Sender(SECRET, url=server.url)
            sent = []

            @settings(
                max_examples=size(100, 1_000),
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(call=calls)
            def send_one(call):
                sender.submit(call)
                sent.append(call)

            send_one()
            flushed = sender.flush(30)
            sender.close(1.0)
            received = server.requests
        baseline = dict(received[0].headers)
        shapes = {
            (
                r.method,
                r.path,
                tuple(sorted(r.headers)),
                r.headers["ma-key"],
                r.headers["content-length"] == str(len(r.raw_body)),
            )
            for r in received
        }
        paths = {f"/api/v2/{call.endpoint}" for call in sent}

        assert flushed
        assert len(sent) == len(received)
        assert {204} == {r.status for r in received}
        assert {
            ("POST", path, tuple(sorted(baseline)), SECRET, True)
            for path in paths
        } == shapes
