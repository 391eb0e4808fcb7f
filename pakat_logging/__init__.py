"""Turn log lines and spans into Pakat tracker calls, off the hot path.

The calls (:class:`Identify`, :class:`TrackEvent`, :class:`TrackLink`,
:class:`TrackPage`) are immutable values; a :class:`Sender` delivers them
from background threads, and :func:`get_sender` returns the one that the
integrations share in a process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._calls import Call, Identify, TrackEvent, TrackLink, TrackPage
from ._context import bind_email
from ._errors import InvalidCall, PakatError
from ._handler import PakatHandler
from ._registry import get_sender
from ._sender import Sender
from ._structlog import PakatProcessor
from ._version import __version__

if TYPE_CHECKING:
    from ._otel import PakatSampler, PakatSpanExporter

__all__ = [
    "Call",
    "Identify",
    "InvalidCall",
    "PakatError",
    "PakatHandler",
    "PakatProcessor",
    "PakatSampler",
    "PakatSpanExporter",
    "Sender",
    "TrackEvent",
    "TrackLink",
    "TrackPage",
    "__version__",
    "bind_email",
    "get_sender",
]

_OTEL_NAMES = frozenset({"PakatSampler", "PakatSpanExporter"})


def __getattr__(name: str) -> Any:
    # The OpenTelemetry integration is imported on first use, so that
    # importing pakat_logging never imports OpenTelemetry.
    if name in _OTEL_NAMES:
        from . import _otel  # noqa: PLC0415

        return getattr(_otel, name)

    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())
