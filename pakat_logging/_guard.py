"""The recursion guard: what is produced while sending never comes back."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

__all__ = [
    "LOGGING_DROPS_NESTED_RECORDS",
    "foreign_names",
    "handling",
    "in_handler",
    "in_sender",
    "is_own_name",
    "is_own_record",
    "sending",
    "suppress_tracing",
    "thread_flags",
]

LOGGING_DROPS_NESTED_RECORDS = sys.version_info >= (3, 14)
"""Whether logging drops records logged from inside a handler (3.14+)."""


class _State(threading.local):
    # A class-level default: a missing attribute on a thread-local costs an
    # AttributeError inside getattr, on every record of every thread.
    sending = False
    handling = False


thread_flags = _State()
"""This thread's flags. Read ``thread_flags.sending`` where
:func:`in_sender`'s call would cost too much, as on every marked record."""


def in_sender() -> bool:
    """Return whether the current thread is delivering calls right now."""
    return thread_flags.sending


@contextlib.contextmanager
def sending() -> Iterator[None]:
    """Mark the current thread as a sender thread for the block's length."""
    previous = in_sender()
    thread_flags.sending = True
    try:
        yield
    finally:
        thread_flags.sending = previous


def in_handler() -> bool:
    """Return whether the current thread is inside a PakatHandler."""
    return thread_flags.handling


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Mark the current thread as inside a PakatHandler for the block."""
    previous = thread_flags.handling
    thread_flags.handling = True
    try:
        yield
    finally:
        thread_flags.handling = previous


foreign_names: set[str] = set()
"""Logger names found not to be this library's. Marked records come from a
few loggers, and a look-up here costs a marked record less than comparing
its name. Read ``name not in foreign_names and is_own_name(name)``."""

_FOREIGN_NAMES_MAX = 4096
"""Names remembered at most; then the set starts again from empty."""


def is_own_name(logger_name: object) -> bool:
    """Return whether ``logger_name`` is this library's logger or a child.

    A str that is neither goes into :data:`foreign_names`.
    """
    # logging.makeLogRecord() leaves the name None.
    if type(logger_name) is not str:
        return False
    if logger_name == "pakat_logging" or logger_name.startswith(
        "pakat_logging."
    ):
        return True

    if len(foreign_names) >= _FOREIGN_NAMES_MAX:
        foreign_names.clear()
    foreign_names.add(logger_name)
    return False


def is_own_record(logger_name: str | None) -> bool:
    """Return whether a record from ``logger_name`` must never be tracked.

    Records from this library never become calls, and neither does any
    record made on a thread while it delivers (by ``requests``,
    ``urllib3``, or a hook of the application's).

    Args:
        logger_name: The record's logger name (``None`` for a record made
            by ``logging.makeLogRecord``).
    """
    return in_sender() or is_own_name(logger_name)


def suppress_tracing() -> None:
    """Keep OpenTelemetry instrumentation from tracing this thread's sends.

    An application with ``requests`` or ``urllib3`` auto-instrumentation
    would otherwise trace every delivery, and those spans could come back
    to the exporter. The suppression stays attached for the thread's life:
    a sender thread runs nothing else. Nothing is imported: without
    OpenTelemetry already loaded there is nothing to suppress.
    """
    context = sys.modules.get("opentelemetry.context")
    if context is None:
        return

    current = context.get_current()
    for name in (
        "_SUPPRESS_INSTRUMENTATION_KEY",
        "_SUPPRESS_HTTP_INSTRUMENTATION_KEY",
    ):
        key = getattr(context, name, None)
        if key is not None:
            current = context.set_value(key, True, current)
    context.attach(current)
