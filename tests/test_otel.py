"""Tests for PakatSpanExporter and PakatSampler with the real SDK."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

from pakat_logging import (
    PakatHandler,
    PakatSampler,
    PakatSpanExporter,
    TrackEvent,
    TrackPage,
    bind_email,
)

from .conftest import KEY


@pytest.fixture
def provider():
    """A tracer provider of the test's own, shut down afterwards."""
    instance = TracerProvider()
    yield instance
    instance.shutdown()


@pytest.fixture
def tracer(provider, sender):
    """A tracer whose spans reach a PakatSpanExporter synchronously."""
    provider.add_span_processor(
        SimpleSpanProcessor(PakatSpanExporter(sender=sender))
    )
    return provider.get_tracer("tests")


def _bodies(server):
    return [call.body for call in server.calls]


def _finished_span(name):
    """Return one finished span, made by a provider of its own."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("tests").start_as_current_span(name):
        pass
    provider.shutdown()
    return memory.get_finished_spans()[0]


class TestMapping:
    def test_event_span(self, server, sender, tracer):
        """pakat.event, properties and eventdata map to a trackEvent."""
        with tracer.start_as_current_span(
            "checkout",
            attributes={
                "pakat.event": "order_completed",
                "pakat.email": "a@b.io",
                "pakat.properties.FIRSTNAME": "Sara",
                "pakat.eventdata.id": "cart:1",
                "pakat.eventdata.data.total": 1200,
                "pakat.eventdata.data.items": ("x", "y"),
                "http.method": "POST",
            },
        ):
            pass

        assert sender.flush(5.0)
        assert [
            {
                "email": "a@b.io",
                "event": "order_completed",
                "properties": {"FIRSTNAME": "Sara"},
                "eventdata": {
                    "id": "cart:1",
                    "data": {"total": 1200, "items": ["x", "y"]},
                },
            }
        ] == _bodies(server)

    def test_page_link_identify(self, server, sender, tracer):
        """pakat.page, pakat.link and pakat.identify map to their calls."""
        for attributes in (
            {"pakat.page": "home", "pakat.properties.ma_url": "/"},
            {"pakat.link": "x.io/promo"},
            {"pakat.identify": True, "pakat.attributes.LASTNAME": "K"},
        ):
            with tracer.start_as_current_span(
                "s", attributes={**attributes, "pakat.email": "a@b.io"}
            ):
                pass

        assert sender.flush(5.0)
        assert [
            {"email": "a@b.io", "page": "home", "properties": {"ma_url": "/"}},
            {"email": "a@b.io", "link": "x.io/promo"},
            {"email": "a@b.io", "attributes": {"LASTNAME": "K"}},
        ] == _bodies(server)

    @pytest.mark.parametrize(
        ("attributes", "email"),
        [
            ({"pakat.email": "p@b.io", "user.email": "u@b.io"}, "p@b.io"),
            ({"user.email": "u@b.io", "enduser.id": "e@b.io"}, "u@b.io"),
            ({"enduser.id": "e@b.io"}, "e@b.io"),
        ],
    )
    def test_email_precedence(self, server, sender, tracer, attributes, email):
        """The e-mail comes from pakat.email, user.email, then enduser.id."""
        with tracer.start_as_current_span(
            "s", attributes={"pakat.event": "e", **attributes}
        ):
            pass

        assert sender.flush(5.0)
        assert email == server.calls[0].body["email"]

    def test_enduser_id_that_is_not_an_email(self, server, sender, tracer):
        """An enduser.id that is no address gives no e-mail: dropped."""
        with tracer.start_as_current_span(
            "s", attributes={"pakat.event": "e", "enduser.id": "12345"}
        ):
            pass

        assert sender.flush(5.0)
        assert [] == server.requests
        assert 1 == sender.stats()["dropped"]

    def test_bound_email_comes_last(self, server, sender, tracer):
        """Under SimpleSpanProcessor, bind_email fills a span's gap."""
        with bind_email("bound@b.io"):
            with tracer.start_as_current_span(
                "s", attributes={"pakat.event": "a"}
            ):
                pass
            with tracer.start_as_current_span(
                "s", attributes={"pakat.event": "b", "user.email": "u@b.io"}
            ):
                pass

        assert sender.flush(5.0)
        assert [("a", "bound@b.io"), ("b", "u@b.io")] == [
            (body["event"], body["email"]) for body in _bodies(server)
        ]

    def test_bound_email_stays_on_its_thread(self, server, sender, provider):
        """BatchSpanProcessor's thread does not see the app's binding."""
        processor = BatchSpanProcessor(PakatSpanExporter(sender=sender))
        provider.add_span_processor(processor)
        with bind_email("bound@b.io"):
            with provider.get_tracer("tests").start_as_current_span(
                "s", attributes={"pakat.event": "e"}
            ):
                pass

        assert processor.force_flush(10_000)
        assert sender.flush(5.0)
        assert [] == server.requests
        assert 1 == sender.stats()["dropped"]

    def test_plain_spans_are_skipped(self, server, sender, tracer):
        """Spans without a marker send nothing and count nothing."""
        with tracer.start_as_current_span("db", attributes={"db.system": "x"}):
            pass

        assert sender.flush(5.0)
        assert 0 == sender.stats()["submitted"]

    def test_invalid_span_is_counted(self, server, sender, tracer, caplog):
        """Two markers on one span are reported and counted, not raised."""
        with tracer.start_as_current_span(
            "s", attributes={"pakat.event": "e", "pakat.page": "p"}
        ):
            pass

        assert 1 == sender.stats()["dropped"]
        assert any("has both" in r.getMessage() for r in caplog.records)


class TestErrorSpans:
    def _fail(self, tracer):
        with tracer.start_as_current_span(
            "checkout",
            attributes={"pakat.event": "order", "pakat.email": "a@b.io"},
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "card declined"))

    def test_skipped_by_default(self, server, sender, tracer):
        """A business span whose status is ERROR is not sent."""
        self._fail(tracer)

        assert sender.flush(5.0)
        assert [] == server.requests

    def test_sent_when_asked(self, server, sender, provider):
        """export_errors=True sends failed business spans too."""
        exporter = PakatSpanExporter(sender=sender, export_errors=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._fail(provider.get_tracer("tests"))

        assert sender.flush(5.0)
        assert 1 == len(server.calls)


class TestExporter:
    def test_batch_processor(self, server, sender, provider):
        """Under BatchSpanProcessor, force_flush delivers every call."""
        processor = BatchSpanProcessor(PakatSpanExporter(sender=sender))
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("tests")
        for n in range(20):
            with tracer.start_as_current_span(
                "s", attributes={"pakat.page": "p", "pakat.email": f"{n}@b.io"}
            ):
                pass

        assert processor.force_flush(10_000)
        assert sender.flush(5.0)
        assert 20 == len(server.calls)

    def test_force_flush_waits_for_delivery(self, server, sender):
        """The exporter's force_flush returns once the calls arrived."""
        server.latency = 0.2
        exporter = PakatSpanExporter(sender=sender)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span(
            "s", attributes={"pakat.event": "e", "pakat.email": "a@b.io"}
        ):
            pass

        assert exporter.force_flush(5_000)
        assert 1 == len(server.calls)

    def test_mapper_replaces_the_mapping(self, server, sender, provider):
        """A mapper decides which calls a span makes."""

        def mapper(span):
            if span.name == "visit":
                return [TrackPage(span.name, email="m@b.io")]
            return None

        provider.add_span_processor(
            SimpleSpanProcessor(
                PakatSpanExporter(sender=sender, mapper=mapper)
            )
        )
        tracer = provider.get_tracer("tests")
        for name in ("visit", "other"):
            with tracer.start_as_current_span(name):
                pass

        assert sender.flush(5.0)
        assert [{"email": "m@b.io", "page": "visit"}] == _bodies(server)

    def test_mapper_that_raises(self, server, sender, provider, caplog):
        """A mapper's error is counted and reported, not raised."""

        def mapper(span):
            raise RuntimeError("boom")

        exporter = PakatSpanExporter(sender=sender, mapper=mapper)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tests").start_as_current_span("x"):
            pass

        assert 1 == sender.stats()["dropped"]
        assert any("mapper raised" in r.getMessage() for r in caplog.records)

    def test_mapper_results_that_are_not_calls(self, server, sender):
        """What a mapper returns that is not a call is dropped, not raised."""

        def broken_generator(span):
            yield TrackPage("first", email="m@b.io")
            raise RuntimeError("boom")

        results = [
            PakatSpanExporter(sender=sender, mapper=mapper).export(
                [_finished_span("x")]
            )
            for mapper in (
                lambda span: 5,
                lambda span: ["not a call", TrackPage("kept", email="m@b.io")],
                broken_generator,
            )
        ]

        assert [SpanExportResult.SUCCESS] * 3 == results
        assert sender.flush(5.0)
        assert [{"email": "m@b.io", "page": "kept"}] == _bodies(server)
        assert 3 == sender.stats()["dropped"]

    def test_options_reach_the_shared_sender(self, server):
        """Key, URL and options go to get_sender, shared with a handler."""
        exporter = PakatSpanExporter(
            KEY, url=server.url, timeout=3.0, max_workers=3
        )
        handler = PakatHandler(KEY, url=server.url, timeout=3.0, max_workers=3)

        assert handler.sender is exporter.sender
        assert 3.0 == exporter.sender.options.timeout
        assert 3 == exporter.sender.options.max_workers
        exporter.sender.close(1.0)

    def test_shutdown_keeps_shared_sender(self, server, sender):
        """Shutting the exporter down leaves a handler on its sender up."""
        exporter = PakatSpanExporter(sender=sender)
        exporter.shutdown()
        logger = logging.getLogger("tests.after_shutdown")
        logger.addHandler(PakatHandler(sender=sender))
        logger.warning("x", extra={"pakat": TrackEvent("e", email="a@b.io")})

        assert SpanExportResult.FAILURE == exporter.export([])
        assert sender.flush(5.0)
        assert 1 == len(server.calls)


class TestSampler:
    def test_keeps_business_spans_at_ratio_zero(self, server, sender):
        """At ratio 0, business spans are still sampled; others are not."""
        provider = TracerProvider(sampler=PakatSampler(TraceIdRatioBased(0)))
        provider.add_span_processor(
            SimpleSpanProcessor(PakatSpanExporter(sender=sender))
        )
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span(
            "checkout",
            attributes={"pakat.event": "e", "pakat.email": "a@b.io"},
        ) as business:
            pass
        with tracer.start_as_current_span("plain") as plain:
            pass

        assert business.is_recording() is False  # ended
        assert business.get_span_context().trace_flags.sampled
        assert not plain.get_span_context().trace_flags.sampled
        assert sender.flush(5.0)
        assert 1 == len(server.calls)
        provider.shutdown()

    def test_description(self):
        """The description names the wrapped sampler."""
        assert "PakatSampler{AlwaysOffSampler}" == (
            PakatSampler(ALWAYS_OFF).get_description()
        )


class TestNoFeedback:
    def test_instrumented_http_makes_no_spans(self, server, sender, provider):
        """With requests and urllib3 instrumented, sending traces nothing."""
        seen = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(seen))
        provider.add_span_processor(
            SimpleSpanProcessor(PakatSpanExporter(sender=sender))
        )
        RequestsInstrumentor().instrument(tracer_provider=provider)
        URLLib3Instrumentor().instrument(tracer_provider=provider)
        try:
            with provider.get_tracer("t").start_as_current_span(
                "signup",
                attributes={"pakat.event": "e", "pakat.email": "a@b.io"},
            ):
                pass

            assert sender.flush(5.0)
        finally:
            RequestsInstrumentor().uninstrument()
            URLLib3Instrumentor().uninstrument()

        assert ["signup"] == [span.name for span in seen.get_finished_spans()]
        assert 1 == len(server.requests)


class TestImports:
    def test_root_import_is_light(self):
        """Import pakat_logging imports neither structlog nor OpenTelemetry."""
        code = (
            "import sys, pakat_logging; "
            "print(sorted(m for m in sys.modules "
            "if m.startswith(('opentelemetry', 'structlog'))))"
        )

        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )

        assert "[]" == done.stdout.strip()
