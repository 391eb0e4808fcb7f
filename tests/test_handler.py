"""Tests for PakatHandler and bind_email against the fake tracker."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import sys
import threading

import pytest
import requests

from pakat_logging import (
    Identify,
    PakatHandler,
    Sender,
    TrackEvent,
    TrackLink,
    TrackPage,
    _guard,
    _handler,
    bind_email,
)
from pakat_logging._context import bound_email

from .conftest import KEY


@pytest.fixture
def log(sender):
    """A logger whose records go to a PakatHandler on the test sender."""
    logger = logging.getLogger("tests.shop")
    handler = PakatHandler(sender=sender)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger
    logger.removeHandler(handler)


class TestMarkers:
    @pytest.mark.parametrize(
        ("marker", "expected"),
        [
            ({"event": "signup"}, {"event": "signup"}),
            ({"page": "home"}, {"page": "home"}),
            ({"link": "example.com/a"}, {"link": "example.com/a"}),
            (
                {"attributes": {"FIRSTNAME": "S"}},
                {"attributes": {"FIRSTNAME": "S"}},
            ),
            (TrackEvent("paid"), {"event": "paid"}),
            (TrackPage("cart"), {"page": "cart"}),
            (TrackLink("x.io"), {"link": "x.io"}),
            (Identify(attributes={"A": 1}), {"attributes": {"A": 1}}),
        ],
    )
    def test_each_marker_form(self, server, sender, log, marker, expected):
        """Mappings and call objects both become calls."""
        log.info("business", extra={"pakat": marker, "email": "a@b.io"})

        assert sender.flush(5.0)
        [call] = server.calls
        assert {"email": "a@b.io", **expected} == call.body

    def test_unmarked_records_send_nothing(self, server, sender, log):
        """Records without the marker are ignored."""
        log.info("hello", extra={"email": "a@b.io"})
        log.warning("no marker here")

        assert sender.flush(5.0)
        assert [] == server.requests
        assert 0 == sender.stats()["submitted"]

    def test_record_made_by_hand(self, server, sender):
        """A record from logging.makeLogRecord, without a name, is sent."""
        handler = PakatHandler(sender=sender)
        record = logging.makeLogRecord(
            {"pakat": {"event": "imported"}, "email": "a@b.io"}
        )

        handler.handle(record)

        assert sender.flush(5.0)
        assert ["imported"] == [c.body["event"] for c in server.calls]

    def test_handler_filters_apply(self, server, sender, log):
        """A filter on the handler can veto a marked record."""
        handler = log.handlers[0]
        handler.addFilter(lambda record: record.levelno >= logging.WARNING)
        log.info("x", extra={"pakat": {"event": "a"}, "email": "a@b.io"})
        log.warning("x", extra={"pakat": {"event": "b"}, "email": "a@b.io"})

        assert sender.flush(5.0)
        assert ["b"] == [c.body["event"] for c in server.calls]


class TestFilters:
    def test_a_filter_can_mark_a_record(self, server, sender, log):
        """A filter that adds the marker turns an existing line into a call."""

        def mark_signups(record: logging.LogRecord) -> bool:
            if record.msg == "User %s signed up":
                record.pakat = {"event": "signup"}
                record.email = record.args[0]
            return True

        log.handlers[0].addFilter(mark_signups)
        log.info("User %s signed up", "new@b.io")
        log.info("User %s logged in", "new@b.io")

        assert sender.flush(5.0)
        assert [{"email": "new@b.io", "event": "signup"}] == [
            call.body for call in server.calls
        ]

    def test_a_filter_can_replace_the_record(self, server, sender, log):
        """A record returned by the filters is the one sent (Python 3.12+)."""
        handler = log.handlers[0]

        def replace(record: logging.LogRecord) -> logging.LogRecord:
            return logging.makeLogRecord(
                {"pakat": {"event": "replaced"}, "email": "r@b.io"}
            )

        def filter_as_in_312(record: logging.LogRecord):
            # Filterer.filter from Python 3.12 on: a filter may return a
            # record to pass on in place of the one it was given.
            for each in handler.filters:
                result = each(record)
                if not result:
                    return False
                if isinstance(result, logging.LogRecord):
                    record = result
            return record

        handler.addFilter(replace)
        if sys.version_info < (3, 12):
            handler.filter = filter_as_in_312
        log.info(
            "x", extra={"pakat": {"event": "original"}, "email": "a@b.io"}
        )

        assert sender.flush(5.0)
        assert ["replaced"] == [call.body["event"] for call in server.calls]

    def test_a_filter_that_raises_never_reaches_the_caller(
        self, server, sender, log, caplog
    ):
        """A broken filter is reported; a marked record it hid is counted."""

        def broken(record: logging.LogRecord) -> bool:
            raise LookupError("no such tenant")

        log.handlers[0].addFilter(broken)
        log.info("x", extra={"pakat": {"event": "e"}, "email": "a@b.io"})
        log.info("not marked")

        assert sender.flush(5.0)
        reports = [
            r.getMessage()
            for r in caplog.records
            if "filter of the handler raised LookupError" in r.getMessage()
        ]
        assert 2 == len(reports)
        assert reports[0].startswith("Dropped a marker")
        assert reports[1].startswith("Skipped a record")
        assert 1 == sender.stats()["dropped"]
        assert [] == server.requests

    def test_a_marking_filter_on_root_sends_no_own_records(self, server):
        """Even a filter that marks every record feeds no loop."""

        def mark_everything(record: logging.LogRecord) -> bool:
            record.pakat = {"event": "seen"}
            record.email = "a@b.io"
            return True

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.DEBUG)
        own = logging.getLogger("pakat_logging")
        own.setLevel(logging.DEBUG)
        with Sender(KEY, url=server.url) as sender:
            handler = PakatHandler(sender=sender)
            handler.addFilter(mark_everything)
            root.addHandler(handler)
            try:
                logging.getLogger("app").info("one line")
                own.warning("a report of the library's own")
                assert sender.flush(5.0)
            finally:
                root.removeHandler(handler)
                root.setLevel(level)
                own.setLevel(logging.NOTSET)

        assert ["seen"] == [call.body["event"] for call in server.calls]
        assert 1 == sender.stats()["submitted"]


class TestEmailResolution:
    def test_marker_email_wins(self, server, sender, log):
        """The marker's own e-mail comes first."""
        with bind_email("bound@b.io"):
            log.info(
                "x",
                extra={
                    "pakat": {"event": "e", "email": "marker@b.io"},
                    "email": "record@b.io",
                },
            )

        assert sender.flush(5.0)
        assert "marker@b.io" == server.calls[0].body["email"]

    def test_record_field_then_binding(self, server, sender, log):
        """The record's email comes before bind_email."""
        with bind_email("bound@b.io"):
            log.info("x", extra={"pakat": {"event": "e"}, "email": "r@b.io"})
            log.info("x", extra={"pakat": {"event": "e"}})

        assert sender.flush(5.0)
        assert ["bound@b.io", "r@b.io"] == sorted(
            c.body["email"] for c in server.calls
        )

    def test_email_field_is_configurable(self, server, sender):
        """email_field names the record attribute to read."""
        logger = logging.getLogger("tests.custom")
        logger.addHandler(PakatHandler(sender=sender, email_field="user"))
        logger.warning("x", extra={"pakat": {"page": "p"}, "user": "u@b.io"})

        assert sender.flush(5.0)
        assert "u@b.io" == server.calls[0].body["email"]

    def test_bind_email_as_setter(self):
        """bind_email works without a with block, and reset restores."""
        binding = bind_email("a@b.io")

        assert "a@b.io" == bound_email()
        binding.reset()
        assert bound_email() is None

    def test_bind_email_isolated_between_threads(self):
        """Each thread sees only its own binding."""
        seen = {}
        barrier = threading.Barrier(2)

        def worker(name):
            with bind_email(f"{name}@b.io"):
                barrier.wait(5)
                seen[name] = bound_email()

        threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)

        assert {"a": "a@b.io", "b": "b@b.io"} == seen

    def test_bind_email_isolated_between_tasks(self, server, sender, log):
        """Concurrent asyncio tasks each send with their own e-mail."""

        async def request(name):
            bind_email(f"{name}@b.io")
            await asyncio.sleep(0)
            log.info("x", extra={"pakat": {"event": name}})

        async def main():
            await asyncio.gather(
                *(request(n) for n in ("one", "two", "three"))
            )

        asyncio.run(main())

        assert sender.flush(5.0)
        assert {
            ("one", "one@b.io"),
            ("two", "two@b.io"),
            ("three", "three@b.io"),
        } == {(c.body["event"], c.body["email"]) for c in server.calls}


class _Hostile:
    """A key that claims to be "event" by its hash and raises on compare."""

    def __hash__(self):
        return hash("event")

    def __eq__(self, other):
        raise RuntimeError("no comparing me")


class TestInvalidMarkers:
    def test_a_key_that_raises_never_raises(self, server, sender, log):
        """A marker key whose comparison raises is dropped and counted."""
        # A first call with the same e-mail lets the next take the fast
        # path, where the hostile key is met first.
        log.info("x", extra={"pakat": {"event": "x"}, "email": "a@b.io"})

        log.info("x", extra={"pakat": {_Hostile(): 1}, "email": "a@b.io"})

        assert sender.flush(5.0)
        assert 1 == sender.stats()["dropped"]
        assert 1 == len(server.requests)

    @pytest.mark.parametrize(
        ("extra", "reason"),
        [
            ({"pakat": {"event": "x", "oops": 1}}, "has no field 'oops'"),
            ({"pakat": {"event": "x", "page": "y"}}, "has both"),
            (
                {"pakat": {"event": "x", "properties": {"event": 1}}},
                "reserved",
            ),
            ({"pakat": {"event": "x"}}, "no e-mail"),
            (
                {"pakat": {"event": "x", "properties": {"v": object()}}},
                "cannot be sent as JSON",
            ),
            ({"pakat": "not a mapping"}, "must be a call or a mapping"),
        ],
    )
    def test_never_raises_and_is_counted(
        self, server, sender, log, caplog, extra, reason
    ):
        """An invalid marker is logged with its reason and counted."""
        log.info("x", extra=extra)
        log.info("x", extra=extra)

        assert sender.flush(5.0)
        reports = [r for r in caplog.records if reason in r.getMessage()]
        assert 1 == len(reports)
        assert 2 == sender.stats()["dropped"]
        assert [] == server.requests

    def test_a_value_that_contains_itself(self, server, sender, log, caplog):
        """A list in the marker that contains itself is refused, not raised."""
        log.info("x", extra={"pakat": {"event": "x"}, "email": "a@b.io"})
        items: list = []
        items.append(items)

        log.info(
            "x",
            extra={
                "pakat": {"event": "x", "properties": {"items": items}},
                "email": "a@b.io",
            },
        )

        assert sender.flush(5.0)
        assert 1 == sender.stats()["dropped"]
        assert any("contains itself" in r.getMessage() for r in caplog.records)

    def test_each_reason_is_reported(self, server, sender, log, caplog):
        """Invalid markers back to back are each reported with its reason."""
        log.info("x", extra={"pakat": {"event": "x", "oops": 1}})
        log.info("x", extra={"pakat": {"event": "x", "page": "y"}})
        log.info("x", extra={"pakat": {"event": "x"}})

        assert sender.flush(5.0)
        messages = [r.getMessage() for r in caplog.records]
        assert 3 == sender.stats()["dropped"]
        for reason in ("has no field 'oops'", "has both", "no e-mail"):
            assert 1 == sum(reason in message for message in messages)


class TestDictConfig:
    def test_end_to_end(self, server):
        """A dictConfig with plain values sets up delivery."""
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "pakat": {
                        "class": "pakat_logging.PakatHandler",
                        "level": "INFO",
                        "ma_key": KEY,
                        "url": server.url,
                        "timeout": 5,
                        "max_workers": 2,
                    }
                },
                "loggers": {
                    "tests.dictconfig": {
                        "handlers": ["pakat"],
                        "level": "INFO",
                    }
                },
            }
        )
        logger = logging.getLogger("tests.dictconfig")
        handler = logger.handlers[0]
        logger.info("x", extra={"pakat": {"event": "e"}, "email": "a@b.io"})

        assert handler.sender.flush(5.0)
        assert 1 == len(server.calls)
        handler.sender.close()
        logger.handlers.clear()

    def test_bad_option_fails_at_start_up(self):
        """A malformed option makes dictConfig fail with a clear error."""
        with pytest.raises(ValueError, match="pakat") as raised:
            logging.config.dictConfig(
                {
                    "version": 1,
                    "handlers": {
                        "pakat": {
                            "class": "pakat_logging.PakatHandler",
                            "timeout": -5,
                        }
                    },
                }
            )

        assert "timeout must be at least" in str(raised.value.__cause__)


class TestNoFeedbackLoop:
    def test_root_debug_handler_sends_once(self, server):
        """With the handler on root at DEBUG, one record is one request."""
        root = logging.getLogger()
        root.setLevel(logging.DEBUG)
        with Sender(KEY, url=server.url) as sender:
            handler = PakatHandler(sender=sender)
            root.addHandler(handler)
            logging.getLogger("pakat_logging").setLevel(logging.DEBUG)
            logging.getLogger("app").info(
                "x", extra={"pakat": {"event": "e"}, "email": "a@b.io"}
            )
            # requests on the app's thread is the app's business, not ours.
            requests.get(server.url, timeout=5)

            assert sender.flush(5.0)
            root.removeHandler(handler)
        tracked = [r for r in server.requests if r.method == "POST"]

        assert 1 == len(tracked)
        assert 1 == sender.stats()["submitted"]

    def test_own_records_are_ignored(self, server, sender, log):
        """A marked record from pakat_logging's logger is not sent."""
        own = logging.getLogger("pakat_logging.tests")
        own.addHandler(log.handlers[0])
        own.warning("x", extra={"pakat": {"event": "e"}, "email": "a@b.io"})
        own.removeHandler(log.handlers[0])

        assert sender.flush(5.0)
        assert [] == server.requests

    def test_own_names_are_never_taken_for_foreign(self, server, sender):
        """Only other loggers' names are remembered as not this library's."""
        handler = PakatHandler(sender=sender)
        marked = {"pakat": {"event": "e"}, "email": "a@b.io"}
        for name in ("pakat_logging", "pakat_logging.x", "pakat_loggingx"):
            record = logging.makeLogRecord({**marked, "name": name})
            handler.handle(record)
            handler.handle(record)

        assert sender.flush(5.0)
        assert 2 == len(server.calls)
        assert "pakat_loggingx" in _guard.foreign_names
        assert not {"pakat_logging", "pakat_logging.x"} & _guard.foreign_names

    def test_an_unhashable_name_is_no_logger_of_ours(self, server, sender):
        """A hand-made record with a list for a name is sent, not raised."""
        handler = PakatHandler(sender=sender)
        record = logging.makeLogRecord(
            {"pakat": {"event": "e"}, "email": "a@b.io", "name": ["x"]}
        )

        assert handler.handle(record)

        assert sender.flush(5.0)
        assert 1 == len(server.calls)

    def test_the_names_remembered_are_bounded(self, monkeypatch):
        """Past its bound, the set of foreign names starts again."""
        monkeypatch.setattr(_guard, "_FOREIGN_NAMES_MAX", 3)
        monkeypatch.setattr(_guard, "foreign_names", set())
        for n in range(4):
            assert not _guard.is_own_name(f"app{n}")

        assert {"app3"} == _guard.foreign_names


def _dropping_nested(dropped: list[logging.LogRecord]):
    """Return a filter that drops records logged inside a handler, as 3.14.

    The records it drops go into ``dropped``, for the test to look at.
    """

    def like_python_314(record: logging.LogRecord) -> bool:
        if _guard.in_handler():
            dropped.append(record)
            return False
        return True

    return like_python_314


class TestNestedLoggingDropped:
    def test_reports_reach_the_user_later(
        self, server, sender, log, caplog, monkeypatch
    ):
        """Where logging drops nested records, reports come out later."""
        monkeypatch.setattr(_guard, "LOGGING_DROPS_NESTED_RECORDS", True)
        monkeypatch.setattr(_handler, "LOGGING_DROPS_NESTED_RECORDS", True)
        dropped_inside = []

        like_python_314 = _dropping_nested(dropped_inside)

        # On the handler that sees every record: a logger's own filters
        # never see the records of its children.
        own = caplog.handler
        own.addFilter(like_python_314)
        try:
            log.info("x", extra={"pakat": {"event": "x", "bogus": 1}})

            assert sender.flush(5.0)
        finally:
            own.removeFilter(like_python_314)
        reports = [r for r in caplog.records if "bogus" in r.getMessage()]

        assert [] == dropped_inside
        assert 1 == len(reports)

    def test_a_broken_filter_is_reported_later(
        self, server, sender, log, caplog, monkeypatch
    ):
        """A filter's error, met inside the handler, is told after it."""
        monkeypatch.setattr(_guard, "LOGGING_DROPS_NESTED_RECORDS", True)
        monkeypatch.setattr(_handler, "LOGGING_DROPS_NESTED_RECORDS", True)
        handler = log.handlers[0]

        def broken(record: logging.LogRecord) -> bool:
            raise LookupError("no such tenant")

        handler.addFilter(broken)
        # As Python 3.14 does: whatever is logged while the handler runs,
        # on its thread, is dropped.
        inside = threading.local()
        handle = handler.handle

        def watched(record: logging.LogRecord) -> bool:
            inside.on = True
            try:
                return handle(record)
            finally:
                inside.on = False

        dropped_inside = []

        def like_python_314(record: logging.LogRecord) -> bool:
            if getattr(inside, "on", False):
                dropped_inside.append(record)
                return False
            return True

        monkeypatch.setattr(handler, "handle", watched)
        own = caplog.handler
        own.addFilter(like_python_314)
        try:
            log.info("x", extra={"pakat": {"event": "e"}, "email": "a@b.io"})
            log.info("not marked")
            assert sender.flush(5.0)
        finally:
            own.removeFilter(like_python_314)
        reports = [
            r.getMessage()
            for r in caplog.records
            if "filter of the handler raised" in r.getMessage()
        ]

        assert [] == dropped_inside
        assert 2 == len(reports)

    @pytest.mark.parametrize(
        ("options", "words"),
        [
            ({"max_queue_size": 1}, "The queue is full"),
            ({"ma_key": None}, "No ma-key is configured"),
        ],
    )
    def test_sender_reports_reach_the_user_later(
        self, server, caplog, monkeypatch, options, words
    ):
        """A full queue or a missing key, met inside a handler, is told."""
        monkeypatch.setattr(_guard, "LOGGING_DROPS_NESTED_RECORDS", True)
        monkeypatch.setattr(_handler, "LOGGING_DROPS_NESTED_RECORDS", True)
        monkeypatch.delenv("PAKAT_MA_KEY", raising=False)
        dropped_inside = []

        like_python_314 = _dropping_nested(dropped_inside)

        settings = {"ma_key": KEY, **options}
        sender = Sender(settings.pop("ma_key"), url=server.url, **settings)
        logger = logging.getLogger("tests.nested")
        logger.addHandler(PakatHandler(sender=sender))
        # On the handler that sees every record: a logger's own filters
        # never see the records of its children.
        own = caplog.handler
        own.addFilter(like_python_314)
        try:
            for n in range(3):
                logger.warning(
                    "x", extra={"pakat": {"event": "x"}, "email": f"{n}@b.io"}
                )
            sender.flush(5.0)
        finally:
            own.removeFilter(like_python_314)
            logger.handlers.clear()
            sender.close(1.0)
        reports = [r for r in caplog.records if words in r.getMessage()]

        assert [] == dropped_inside
        assert 1 == len(reports)
