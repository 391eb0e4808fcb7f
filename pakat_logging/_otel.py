"""PakatSpanExporter and PakatSampler: business spans become tracker calls.

This module imports OpenTelemetry's SDK; the package root imports it only
when one of its names is first used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.util.types import Attributes

from ._calls import (
    Call,
    Identify,
    TrackEvent,
    TrackLink,
    TrackPage,
    check_email,
)
from ._context import bound_email
from ._errors import InvalidCall
from ._registry import get_sender
from ._sender import Sender

__all__ = ["MARKERS", "PakatSampler", "PakatSpanExporter", "span_to_calls"]

logger = logging.getLogger(__name__)

MARKERS = ("pakat.event", "pakat.page", "pakat.link", "pakat.identify")
"""Span attributes that make a span a business span."""

_EMAIL_KEYS = ("pakat.email", "user.email", "enduser.id")
_PROPERTIES = "pakat.properties."
_ATTRIBUTES = "pakat.attributes."
_EVENTDATA_ID = "pakat.eventdata.id"
_EVENTDATA_DATA = "pakat.eventdata.data."

Mapper = Callable[[ReadableSpan], "Iterable[Call] | Call | None"]


_MARKER_SET = frozenset(MARKERS)


def _has_marker(attributes: Iterable[str] | None) -> bool:
    # The SDK hands out attributes as a read-only view over a Mapping that
    # answers a missing key by raising KeyError inside: four look-ups cost
    # microseconds. One pass over the keys, in C, costs far less.
    return attributes is not None and not _MARKER_SET.isdisjoint(attributes)


def _marker(attributes: Mapping[str, Any]) -> str | None:
    found = [key for key in MARKERS if key in attributes]
    if len(found) > 1:
        raise InvalidCall(f"span: has both {found[0]!r} and {found[1]!r}")

    return found[0] if found else None


def _email(attributes: Mapping[str, Any]) -> str | None:
    for key in _EMAIL_KEYS:
        value = attributes.get(key)
        if not value:
            continue
        if key != "enduser.id":
            return str(value)
        try:
            return check_email(value)
        except InvalidCall:
            break

    # Bound on this thread only: under SimpleSpanProcessor, the request's
    # own binding; under BatchSpanProcessor, none.
    return bound_email()


def _prefixed(attributes: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        key[len(prefix) :]: value
        for key, value in attributes.items()
        if key.startswith(prefix)
    }


def span_to_calls(span: ReadableSpan) -> list[Call]:
    """Map a business span to its tracker call, by the default rules.

    ``pakat.event``, ``pakat.page``, ``pakat.link`` or ``pakat.identify``
    says which call; ``pakat.email``, then ``user.email``, then
    ``enduser.id`` (when it is an address), then :class:`bind_email` on
    the thread that maps the span, gives the e-mail;
    ``pakat.properties.<name>`` fill properties (``pakat.attributes.<name>``
    an identify's attributes); ``pakat.eventdata.id`` and
    ``pakat.eventdata.data.<name>`` fill eventdata.

    Args:
        span: A finished span.

    Returns:
        One call for a business span, none for any other.

    Raises:
        InvalidCall: The span's attributes break a call's rules.
    """
    attributes: dict[str, Any] = dict(span.attributes or {})
    marker = _marker(attributes)
    if marker is None:
        return []

    email = _email(attributes)
    if marker == "pakat.identify":
        fields = _prefixed(attributes, _ATTRIBUTES)
        return [Identify(email, fields or None)]

    name = attributes[marker]
    properties = _prefixed(attributes, _PROPERTIES) or None
    if marker == "pakat.event":
        data = _prefixed(attributes, _EVENTDATA_DATA)
        eventdata = {"id": attributes.get(_EVENTDATA_ID), "data": data or None}
        return [
            TrackEvent(
                name, email=email, properties=properties, eventdata=eventdata
            )
        ]

    kind = TrackPage if marker == "pakat.page" else TrackLink
    return [kind(name, email=email, properties=properties)]


class PakatSpanExporter(SpanExporter):
    """An OpenTelemetry span exporter that sends business spans.

    A span is a business span when it carries ``pakat.event``,
    ``pakat.page``, ``pakat.link`` or ``pakat.identify``; see
    :func:`span_to_calls` for the whole mapping. Other spans are skipped
    at the cost of a few dict look-ups. ``export`` only hands calls to
    the sender, so it returns at once under both ``SimpleSpanProcessor``
    and ``BatchSpanProcessor``. Under ``SimpleSpanProcessor`` it runs on
    the thread that ends the span, so an e-mail bound there with
    :class:`bind_email` applies too.

    Args:
        ma_key: The marketing-automation key (default: ``PAKAT_MA_KEY``).
        url: The tracker's base URL (default: ``PAKAT_URL``, then Pakat's).
        sender: The sender to use (default: :func:`get_sender` with the
            key, URL and options).
        mapper: A callable taking a span and returning a call, calls or
            ``None``; it replaces the default mapping, error spans
            included (default: ``None``).
        export_errors: Whether business spans whose status is ERROR are
            sent too; a failed checkout is not an ``order_completed``
            (default: ``False``).
        **options: Sender options, passed to :func:`get_sender`.

    Raises:
        ValueError: An option is malformed.
    """

    def __init__(
        self,
        ma_key: str | None = None,
        *,
        url: str | None = None,
        sender: Sender | None = None,
        mapper: Mapper | None = None,
        export_errors: bool = False,
        **options: Any,
    ) -> None:
        if sender is None:
            sender = get_sender(ma_key, url=url, **options)
        self.sender = sender
        self._mapper = mapper
        self._export_errors = export_errors
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Hand the business spans' calls to the sender; never raises.

        Returns:
            ``SUCCESS``, or ``FAILURE`` after :meth:`shutdown`.
        """
        if self._shut_down:
            return SpanExportResult.FAILURE

        for span in spans:
            if self._mapper is not None:
                self._export_mapped(span)
            elif _has_marker(span.attributes):
                self._export_default(span)

        return SpanExportResult.SUCCESS

    def _export_default(self, span: ReadableSpan) -> None:
        if (
            not self._export_errors
            and span.status.status_code is StatusCode.ERROR
        ):
            logger.debug(
                "Skipped the business span %r: its status is ERROR", span.name
            )
            return

        try:
            calls = span_to_calls(span)
        except Exception as error:
            self.sender.drop(
                f"Dropped the business span {span.name!r}: {error}"
            )
            return

        for call in calls:
            self.sender.submit(call)

    def _export_mapped(self, span: ReadableSpan) -> None:
        assert self._mapper is not None
        try:
            result = self._mapper(span)
            # Inside the try: a generator mapper runs as it is listed.
            calls = (
                [result] if isinstance(result, Call) else list(result or ())
            )
        except Exception as error:
            self.sender.drop(
                f"Dropped the span {span.name!r}: the mapper raised "
                f"{type(error).__name__}"
            )
            return

        # submit() refuses, counts and reports what is not a call.
        for call in calls:
            self.sender.submit(call)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every call handed over so far is settled.

        Args:
            timeout_millis: Milliseconds to wait at most (default: 30,000).

        Returns:
            ``True`` when nothing is left.
        """
        return self.sender.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Stop exporting; the shared sender keeps serving the others."""
        self._shut_down = True


class PakatSampler(Sampler):
    """A sampler that always keeps business spans, and defers the rest.

    An exporter only sees sampled spans, so a ratio sampler would lose
    business spans (and the tracker calls they carry) at random. This
    wrapper records and samples every span that has a ``pakat.*`` marker
    among its attributes at start, and asks the wrapped sampler about
    every other span.

    Args:
        delegate: The sampler deciding for other spans, such as
            ``ParentBased(TraceIdRatioBased(0.1))``.

    Note:
        Only attributes given when the span starts (``attributes=`` of
        ``start_as_current_span``) can be seen here; a marker set later
        does not change the sampling decision.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(  # noqa: PLR0917 - the SDK's signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        """Sample a span with a marker; defer any other to the delegate."""
        if _has_marker(attributes):
            parent = trace.get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else None
            return SamplingResult(
                Decision.RECORD_AND_SAMPLE, attributes, state
            )

        return self._delegate.should_sample(
            parent_context,
            trace_id,
            name,
            kind,
            attributes,
            links,
            trace_state,
        )

    def get_description(self) -> str:
        """Name this sampler and the one it wraps."""
        return f"PakatSampler{{{self._delegate.get_description()}}}"
