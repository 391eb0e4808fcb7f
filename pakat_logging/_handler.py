"""PakatHandler: marked log records become tracker calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ._context import bound_email
from ._guard import (
    LOGGING_DROPS_NESTED_RECORDS,
    foreign_names,
    handling,
    is_own_name,
    is_own_record,
    thread_flags,
)
from ._markers import DEFAULT_EMAIL_FIELD, MARKER, send_built, send_marker
from ._quick import quick_parts
from ._registry import get_sender
from ._sender import Sender

__all__ = ["PakatHandler", "marked_fields"]


def marked_fields(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """Return the fields holding the marker, or ``None`` for no marker."""
    fields = record.__dict__
    if fields.get(MARKER) is not None:
        return fields

    # structlog's ProcessorFormatter bridge puts the event dict in msg.
    message = record.msg
    if type(message) is dict and message.get(MARKER) is not None:
        return message

    return None


def _nested_reports() -> AbstractContextManager[None]:
    """Hold back the library's reports made inside the block, if need be.

    From Python 3.14 on, logging drops what is logged from inside a
    handler on the same thread; handling() has such reports kept and
    logged a little later instead.
    """
    return handling() if LOGGING_DROPS_NESTED_RECORDS else nullcontext()


class PakatHandler(logging.Handler):
    """A logging handler that sends marked records to the tracker.

    A record is a tracking call when it carries the attribute ``pakat``
    (``logger.info("Order placed", extra={"pakat": {...}})``): a call
    object, or a mapping of call fields. Every other record is ignored at
    the cost of one look-up. Calls go to the shared sender, so ``emit``
    never waits on the network and never raises.

    Usable from :func:`logging.config.dictConfig` with ``"class":
    "pakat_logging.PakatHandler"`` and plain keyword values.

    Args:
        ma_key: The marketing-automation key (default: ``PAKAT_MA_KEY``).
        url: The tracker's base URL (default: ``PAKAT_URL``, then Pakat's).
        sender: The sender to use (default: :func:`get_sender` with the
            key, URL and options).
        level: The handler's level (default: ``logging.NOTSET``).
        email_field: The record attribute read when the marker has no
            e-mail (default: ``"email"``).
        **options: Sender options, passed to :func:`get_sender`.

    Raises:
        ValueError: An option is malformed.

    Note:
        :meth:`flush` does not wait for delivery: logging calls it while
        holding its locks, and the network must never be waited on there.
        Call ``handler.sender.flush()`` to wait.
    """

    def __init__(
        self,
        ma_key: str | None = None,
        *,
        url: str | None = None,
        sender: Sender | None = None,
        level: int | str = logging.NOTSET,
        email_field: str = DEFAULT_EMAIL_FIELD,
        **options: Any,
    ) -> None:
        super().__init__(level)
        if sender is None:
            sender = get_sender(ma_key, url=url, **options)
        self.sender = sender
        self.email_field = email_field

    def handle(self, record: logging.LogRecord) -> bool:
        """Send ``record`` when it is marked; ignore it otherwise.

        Unlike the base class, this takes no lock: the sender is
        thread-safe, and an unmarked record costs a look-up only.

        Returns:
            Whether the record was marked and passed the filters.
        """
        # The common case, an unmarked record, in one dict look-up and no
        # function call: this runs for every record the logger passes on.
        fields: Mapping[str, Any] = record.__dict__
        marker = fields.get(MARKER)
        if marker is None:
            # structlog's ProcessorFormatter bridge puts the event dict in
            # msg.
            message = record.msg
            if type(message) is not dict or message.get(MARKER) is None:
                if not self.filters:
                    return False
                # A filter may mark the record itself.
                return self._filter_and_send(record, marked=False)
            fields = message
            marker = message[MARKER]

        if self.filters:
            return self._filter_and_send(record, marked=True)

        # is_own_record, spelled out as send_marker is below.
        name = record.name
        try:
            own = name not in foreign_names and is_own_name(name)
        except TypeError:
            # A name that cannot be hashed: only makeLogRecord gives one,
            # and it is no logger's.
            own = False
        if own or thread_flags.sending:
            return False

        if LOGGING_DROPS_NESTED_RECORDS:
            self._send(record, fields)
            return True

        # send_marker, spelled out: calling it instead made a marked
        # logger call 1 to 5 percent dearer in side-by-side runs. Keep the
        # two alike.
        email = fields.get(self.email_field)
        if email is None:
            email = bound_email()
        try:
            parts = quick_parts(marker, email)
        except Exception:
            # A hostile key (an __eq__ that raises): the general path
            # reports it.
            parts = None
        if parts is not None:
            self.sender._submit_parts(parts)
        else:
            send_built(
                self.sender, marker, email, self.email_field, record.name
            )

        return True

    def _filter_and_send(
        self, record: logging.LogRecord, *, marked: bool
    ) -> bool:
        """Send ``record`` if the handler's filters pass it and it is marked.

        The filters run before the marker is looked for, as they do for
        any handler, so that a filter may add the marker to a record, and
        turn a line the application already logs into a call. From Python
        3.12 on, a filter may also return a record to use in its place.
        ``marked`` says whether the record carried a marker before.
        """
        if is_own_record(record.name):
            return False

        try:
            passed = self.filter(record)
        except Exception as error:
            # The application's own filter: its error is reported, and
            # never reaches the logging call.
            reason = (
                f"a filter of the handler raised {type(error).__name__} "
                f"on a record from {record.name}"
            )
            with _nested_reports():
                if marked:
                    self.sender.drop(f"Dropped a marker: {reason}")
                else:
                    self.sender._reporter.report(
                        "filter",
                        logging.WARNING,
                        f"Skipped a record: {reason}",
                    )
            return False
        if not passed:
            return False
        if isinstance(passed, logging.LogRecord):
            record = passed

        fields = marked_fields(record)
        if fields is None:
            return False

        self._send(record, fields)
        return True

    def _send(
        self, record: logging.LogRecord, fields: Mapping[str, Any]
    ) -> None:
        with _nested_reports():
            send_marker(
                self.sender,
                fields[MARKER],
                fields,
                self.email_field,
                record.name,
            )

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` when it is marked; never raises."""
        fields = marked_fields(record)
        if fields is not None and not is_own_record(record.name):
            self._send(record, fields)

    def flush(self) -> None:
        """Do nothing: delivery is the sender's, see the class's note."""

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<PakatHandler ({level}) {self.sender!r}>"
