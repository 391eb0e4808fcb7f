"""Tests for PakatProcessor and the structlog-to-logging bridge."""

from __future__ import annotations

import io
import logging

import pytest
import structlog

from pakat_logging import PakatHandler, PakatProcessor, TrackPage, bind_email

from .conftest import KEY


@pytest.fixture(autouse=True)
def _reset_structlog():
    """Leave structlog's configuration and context as they were."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def captured(sender):
    """A structlog chain ending in a capture, with PakatProcessor in it."""
    capture = structlog.testing.LogCapture()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            PakatProcessor(sender=sender),
            capture,
        ]
    )
    return capture


class _Hostile:
    """A key that claims to be "event" by its hash and raises on compare."""

    def __hash__(self):
        return hash("event")

    def __eq__(self, other):
        raise RuntimeError("no comparing me")


class TestProcessor:
    def test_marker_is_sent_and_removed(self, server, sender, captured):
        """A marked event is sent and passed on without its marker."""
        structlog.get_logger().info(
            "order placed", pakat={"event": "order"}, email="a@b.io", total=3
        )

        assert sender.flush(5.0)
        assert [{"email": "a@b.io", "event": "order"}] == [
            c.body for c in server.calls
        ]
        [entry] = captured.entries
        assert "pakat" not in entry
        assert 3 == entry["total"]

    def test_email_from_contextvars(self, server, sender, captured):
        """An e-mail bound with bind_contextvars is used."""
        structlog.contextvars.bind_contextvars(email="ctx@b.io")
        structlog.get_logger().info("viewed", pakat=TrackPage("home"))

        assert sender.flush(5.0)
        assert "ctx@b.io" == server.calls[0].body["email"]

    def test_unmarked_event_passes(self, server, sender, captured):
        """An unmarked event is passed on untouched and sends nothing."""
        structlog.get_logger().info("hello", email="a@b.io")

        assert sender.flush(5.0)
        assert [] == server.requests
        assert 1 == len(captured.entries)

    def test_invalid_marker_never_raises(
        self, server, sender, captured, caplog
    ):
        """An invalid marker is reported and counted, and logging goes on."""
        structlog.get_logger().info("bad", pakat={"event": ""}, email="a@b.io")

        assert sender.flush(5.0)
        assert 1 == sender.stats()["dropped"]
        assert any(
            "event: must not be empty" in r.message for r in caplog.records
        )
        assert 1 == len(captured.entries)

    @pytest.mark.parametrize(
        ("marker", "reason"),
        [
            ({"event": "x", "oops": 1}, "has no field 'oops'"),
            ({"event": "x", "page": "y"}, "has both"),
            ({"event": "x", "properties": {"event": 1}}, "reserved"),
            ({"event": "x", "properties": {"v": object()}}, "as JSON"),
        ],
    )
    def test_invalid_markers_reported_once(
        self, server, sender, captured, caplog, marker, reason
    ):
        """Each invalid marker is counted; its reason is logged once."""
        log = structlog.get_logger()
        log.info("bad", pakat=marker, email="a@b.io")
        log.info("bad", pakat=marker, email="a@b.io")

        assert sender.flush(5.0)
        reports = [r for r in caplog.records if reason in r.getMessage()]
        assert 1 == len(reports)
        assert 2 == sender.stats()["dropped"]
        assert [] == server.requests
        assert 2 == len(captured.entries)

    def test_a_key_that_raises_never_raises(self, server, sender, captured):
        """A marker key whose comparison raises is dropped and counted."""
        log = structlog.get_logger()
        # The first call makes the e-mail known, so that the second takes
        # the fast path and meets the hostile key there.
        log.info("ok", pakat={"event": "x"}, email="a@b.io")

        log.info("bad", pakat={_Hostile(): 1}, email="a@b.io")

        assert sender.flush(5.0)
        assert 1 == sender.stats()["dropped"]
        assert 1 == len(server.requests)
        assert 2 == len(captured.entries)

    def test_email_from_bind_email(self, server, sender, captured):
        """Without an email key, the e-mail bound with bind_email is used."""
        with bind_email("bound@b.io"):
            structlog.get_logger().info("signup", pakat={"event": "signup"})

        assert sender.flush(5.0)
        assert [{"email": "bound@b.io", "event": "signup"}] == [
            c.body for c in server.calls
        ]

    def test_event_dict_email_wins_over_bind_email(
        self, server, sender, captured
    ):
        """The event dict's email comes before the one bound."""
        with bind_email("bound@b.io"):
            structlog.get_logger().info(
                "signup", pakat={"event": "signup"}, email="own@b.io"
            )

        assert sender.flush(5.0)
        assert "own@b.io" == server.calls[0].body["email"]

    def test_options_reach_the_shared_sender(self, server):
        """Key, URL and options go to get_sender, shared with a handler."""
        processor = PakatProcessor(
            KEY, url=server.url, timeout=3.0, max_queue_size=77
        )
        handler = PakatHandler(
            KEY, url=server.url, timeout=3.0, max_queue_size=77
        )

        assert handler.sender is processor.sender
        assert 3.0 == processor.sender.options.timeout
        assert 77 == processor.sender.options.max_queue_size
        processor.sender.close(1.0)


def _bridge(sender, *, processor: bool):
    """Configure structlog through stdlib logging with a PakatHandler."""
    processors = [structlog.contextvars.merge_contextvars]
    if processor:
        processors.append(PakatProcessor(sender=sender))
    processors.append(structlog.stdlib.ProcessorFormatter.wrap_for_formatter)
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    logger = logging.getLogger("tests.bridge")
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [PakatHandler(sender=sender)]
    return logger


class TestBridge:
    def test_processor_and_handler_send_once(self, server, sender):
        """With both installed, one event makes one request."""
        logger = _bridge(sender, processor=True)
        structlog.get_logger("tests.bridge").info(
            "signup", pakat={"event": "signup"}, email="a@b.io"
        )

        assert sender.flush(5.0)
        assert 1 == len(server.requests)
        logger.handlers.clear()

    def test_handler_alone_reads_structlog_records(self, server, sender):
        """The handler alone understands records structlog produced."""
        logger = _bridge(sender, processor=False)
        structlog.get_logger("tests.bridge").info(
            "signup", pakat={"event": "signup"}, email="a@b.io"
        )

        assert sender.flush(5.0)
        assert [{"email": "a@b.io", "event": "signup"}] == [
            c.body for c in server.calls
        ]
        logger.handlers.clear()

    def test_render_to_log_kwargs(self, server, sender):
        """Events rendered as logging keyword arguments are sent too."""
        structlog.configure(
            processors=[structlog.stdlib.render_to_log_kwargs],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        logger = logging.getLogger("tests.kwargs")
        logger.setLevel(logging.INFO)
        logger.handlers[:] = [PakatHandler(sender=sender)]
        structlog.get_logger("tests.kwargs").info(
            "seen", pakat={"page": "home"}, email="a@b.io"
        )

        assert sender.flush(5.0)
        assert [{"email": "a@b.io", "page": "home"}] == [
            c.body for c in server.calls
        ]
        logger.handlers.clear()


def _formatted(sender, *, structlog_records: bool) -> logging.Handler:
    """A handler whose ProcessorFormatter runs a PakatProcessor."""
    tail = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.JSONRenderer(),
    ]
    if structlog_records:
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=[PakatProcessor(sender=sender), *tail]
        )
    else:
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=tail,
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                PakatProcessor(sender=sender),
            ],
        )
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    return handler


def _log_signup(logger: logging.Logger, *, structlog_records: bool) -> None:
    """Log one marked signup, through structlog or straight to logging."""
    if structlog_records:
        structlog.get_logger(logger.name).info(
            "signup", pakat={"event": "signup"}, email="a@b.io"
        )
    else:
        logger.info(
            "signup", extra={"pakat": {"event": "signup"}, "email": "a@b.io"}
        )


class TestProcessorInFormatter:
    @pytest.mark.parametrize("handler_first", [True, False])
    @pytest.mark.parametrize("structlog_records", [True, False])
    def test_sent_once_beside_a_handler(
        self, server, sender, structlog_records, handler_first
    ):
        """The processor leaves a record that a PakatHandler takes to it."""
        formatted = _formatted(sender, structlog_records=structlog_records)
        handlers = [PakatHandler(sender=sender), formatted]
        logger = _bridge(sender, processor=False)
        logger.handlers[:] = handlers if handler_first else handlers[::-1]

        _log_signup(logger, structlog_records=structlog_records)

        assert sender.flush(5.0)
        assert [{"email": "a@b.io", "event": "signup"}] == [
            c.body for c in server.calls
        ]
        assert "pakat" not in formatted.stream.getvalue()
        logger.handlers.clear()

    @pytest.mark.parametrize("structlog_records", [True, False])
    def test_sent_alone(self, server, sender, structlog_records):
        """Without a PakatHandler on the record's way, the processor sends."""
        logger = _bridge(sender, processor=False)
        logger.handlers[:] = [
            _formatted(sender, structlog_records=structlog_records)
        ]
        # A PakatHandler the record does not reach, or whose level it
        # does not meet, changes nothing.
        logging.getLogger("tests.elsewhere").addHandler(
            PakatHandler(sender=sender)
        )
        logger.addHandler(PakatHandler(sender=sender, level=logging.ERROR))

        _log_signup(logger, structlog_records=structlog_records)

        assert sender.flush(5.0)
        assert 1 == len(server.calls)
        logger.handlers.clear()
        logging.getLogger("tests.elsewhere").handlers.clear()

    def test_marker_added_in_the_chain_is_sent(self, server, sender):
        """A marker that only the event dict carries is the processor's."""

        def mark(logger, method_name, event_dict):
            event_dict["pakat"] = {"event": "seen", "email": "a@b.io"}
            return event_dict

        formatted = logging.StreamHandler(io.StringIO())
        formatted.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=[mark, PakatProcessor(sender=sender)],
            )
        )
        logger = _bridge(sender, processor=False)
        logger.handlers[:] = [formatted, PakatHandler(sender=sender)]

        logger.info("plain record")

        assert sender.flush(5.0)
        assert [{"email": "a@b.io", "event": "seen"}] == [
            c.body for c in server.calls
        ]
        logger.handlers.clear()
