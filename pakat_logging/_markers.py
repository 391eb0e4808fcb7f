"""Markers: how a log record or a structlog event says "send this"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._calls import Call, from_mapping
from ._context import bound_email
from ._errors import InvalidCall
from ._quick import quick_parts

if TYPE_CHECKING:
    from ._sender import Sender

__all__ = [
    "DEFAULT_EMAIL_FIELD",
    "MARKER",
    "send_built",
    "send_marker",
]

MARKER = "pakat"
"""The record attribute or event-dict key that marks a tracking call."""

DEFAULT_EMAIL_FIELD = "email"
"""The record attribute or event-dict key read for a missing e-mail."""


def send_marker(
    sender: Sender,
    marker: object,
    fields: Mapping[str, Any],
    email_field: str,
    origin: str,
) -> None:
    """Build a marker's call and submit it; never raises.

    A marker without its own e-mail takes ``fields[email_field]`` (the
    record's attributes or the event dict), then the e-mail bound with
    :class:`~pakat_logging.bind_email`. That e-mail is checked only if
    the marker uses it. An invalid marker is dropped, counted and reported
    with its reason.

    Args:
        sender: Where the call goes.
        marker: A call object, or a mapping of call fields.
        fields: Where the e-mail may be found first.
        email_field: The name of the e-mail's field in ``fields``.
        origin: Where the marker came from, for the report: a logger's
            name, or ``"structlog"``.
    """
    email = fields.get(email_field)
    if email is None:
        email = bound_email()

    # The common marker in one pass; the general path for everything else.
    try:
        parts = quick_parts(marker, email)
    except Exception:
        # A hostile key (an __eq__ that raises): reported below.
        parts = None
    if parts is not None:
        sender._submit_parts(parts)
    else:
        send_built(sender, marker, email, email_field, origin)


def send_built(
    sender: Sender,
    marker: object,
    email: Any,
    email_field: str,
    origin: str,
) -> None:
    """Build a marker's call through its class and submit it; never raises.

    The general path of :func:`send_marker`, for a marker that
    :func:`~pakat_logging._quick.quick_parts` leaves to it, with the
    e-mail found already.
    """
    try:
        call = _build(marker, email, email_field)
    except InvalidCall as error:
        sender.drop(f"Dropped a marker from {origin}: {error}")
    except Exception as error:
        sender.drop(f"Dropped a marker from {origin}: {type(error).__name__}")
    else:
        sender.submit(call)


def _build(marker: object, email: Any, email_field: str) -> Call:
    if isinstance(marker, Call):
        call = marker
        if call.email is None and email is not None:
            call = call.with_email(email)
    else:
        call = from_mapping(marker, email=email)

    if call.email is None:
        raise InvalidCall(
            f"email: a {call.endpoint} marker has no e-mail, nor has the "
            f"{email_field!r} field, nor bind_email()"
        )

    return call
