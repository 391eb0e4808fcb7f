"""Turn log lines and spans into Pakat tracker calls, off the hot path.

The calls (:class:`Identify`, :class:`TrackEvent`, :class:`TrackLink`,
:class:`TrackPage`) are immutable values; a :class:`Sender` delivers them
from background threads, and :func:`get_sender` returns the one that the
integrations share in a process.
"""

from __future__ import annotations

import logging

from ._calls import Call, Identify, TrackEvent, TrackLink, TrackPage
from ._errors import InvalidCall, PakatError
from ._registry import get_sender
from ._sender import Sender
from ._version import __version__

__all__ = [
    "Call",
    "Identify",
    "InvalidCall",
    "PakatError",
    "Sender",
    "TrackEvent",
    "TrackLink",
    "TrackPage",
    "__version__",
    "get_sender",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
