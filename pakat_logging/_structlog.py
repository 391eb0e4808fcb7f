"""PakatProcessor: marked structlog events become tracker calls."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ._guard import in_sender
from ._handler import PakatHandler, marked_fields
from ._markers import (
    DEFAULT_EMAIL_FIELD,
    MARKER,
    send_marker,
)
from ._registry import get_sender
from ._sender import Sender

__all__ = ["PakatProcessor"]


class PakatProcessor:
    """A structlog processor that sends marked events to the tracker.

    An event is a tracking call when its event dict carries the key
    ``pakat`` (``log.info("order placed", pakat={"event": "order"})``).
    The processor hands the call to the shared sender and removes the
    key from the event dict it passes on, so a handler further down a
    stdlib bridge does not send it again. Inside structlog's
    ``ProcessorFormatter``, where the event comes with its log record, a
    record that carries the marker itself and also reaches a
    :class:`PakatHandler` is left to that handler, so each call is sent
    once whichever of the two sees it first. It never raises: an invalid
    marker is counted and reported in the log. structlog itself is not
    imported.

    Args:
        ma_key: The marketing-automation key (default: ``PAKAT_MA_KEY``).
        url: The tracker's base URL (default: ``PAKAT_URL``, then Pakat's).
        sender: The sender to use (default: :func:`get_sender` with the
            key, URL and options).
        email_field: The event-dict key read when the marker has no
            e-mail; ``merge_contextvars`` fills it when bound with
            ``bind_contextvars(email=...)`` (default: ``"email"``).
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
        email_field: str = DEFAULT_EMAIL_FIELD,
        **options: Any,
    ) -> None:
        if sender is None:
            sender = get_sender(ma_key, url=url, **options)
        self.sender = sender
        self.email_field = email_field

    def __call__(
        self,
        logger: object,
        method_name: str,
        event_dict: MutableMapping[str, Any],
    ) -> MutableMapping[str, Any]:
        """Send the event's marker, if any, and return the event dict.

        Args:
            logger: The wrapped logger (unused).
            method_name: The log method's name (unused).
            event_dict: The event; its ``pakat`` key is removed.

        Returns:
            ``event_dict``, without the marker.
        """
        marker = event_dict.pop(MARKER, None)
        if marker is None or in_sender():
            return event_dict

        # ProcessorFormatter gives the event its record (a copy of it).
        record = event_dict.get("_record")
        if (
            isinstance(record, logging.LogRecord)
            and marked_fields(record) is not None
            and _reaches_handler(record)
        ):
            return event_dict

        send_marker(
            self.sender, marker, event_dict, self.email_field, "structlog"
        )

        return event_dict

    def __repr__(self) -> str:
        return f"<PakatProcessor {self.sender!r}>"


def _reaches_handler(record: logging.LogRecord) -> bool:
    """Return whether logging hands ``record`` to a PakatHandler that takes it.

    The walk is the one ``Logger.callHandlers`` makes: the record's logger
    and its parents up to one that does not propagate, each handler whose
    level the record meets. It runs only for a marker met inside a
    ``ProcessorFormatter``, never on the common path.
    """
    name = record.name
    manager = logging.Logger.manager
    logger = manager.root if name == "root" else manager.loggerDict.get(name)
    while isinstance(logger, logging.Logger):
        for handler in logger.handlers:
            if (
                isinstance(handler, PakatHandler)
                and record.levelno >= handler.level
                and handler.filter(record)
            ):
                return True
        if not logger.propagate:
            break
        logger = logger.parent

    return False
