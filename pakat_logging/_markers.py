"""Markers: how a log record or a structlog event says "send this"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._calls import Call, from_mapping
from ._context import bound_email
from ._errors import InvalidCall

if TYPE_CHECKING:
    from ._sender import Sender

__all__ = ["DEFAULT_EMAIL_FIELD", "MARKER", "build_call", "send_marker"]

MARKER = "pakat"
"""The record attribute or event-dict key that marks a tracking call."""

DEFAULT_EMAIL_FIELD = "email"
"""The record attribute or event-dict key read for a missing e-mail."""


def build_call(
    marker: object, fields: Mapping[str, Any], email_field: str
) -> Call:
    """Turn a marker into a call with an e-mail.

    The e-mail comes from the marker, then from ``fields[email_field]``
    (the record's attributes or the event dict), then from
    :class:`~pakat_logging.bind_email`.

    Args:
        marker: A call object, or a mapping of call fields.
        fields: Where the e-mail may be found next.
        email_field: The name of the e-mail's field in ``fields``.

    Returns:
        A call ready for :meth:`Sender.submit`.

    Raises:
        InvalidCall: The marker is malformed, or no e-mail was found.
    """
    fallback = fields.get(email_field)
    if fallback is None:
        fallback = bound_email()

    if isinstance(marker, Call):
        call = marker
        if call.email is None and fallback is not None:
            call = call.with_email(fallback)
    else:
        call = from_mapping(marker, email=fallback)

    if call.email is None:
        raise InvalidCall(
            f"email: a {call.endpoint} marker has no e-mail, nor has the "
            f"{email_field!r} field, nor bind_email()"
        )

    return call


def send_marker(
    sender: Sender,
    marker: object,
    fields: Mapping[str, Any],
    email_field: str,
    origin: str,
) -> None:
    """Build a marker's call and submit it; never raises.

    An invalid marker is dropped, counted and reported with its reason.

    Args:
        sender: Where the call goes.
        marker: A call object, or a mapping of call fields.
        fields: Where the e-mail may be found next.
        email_field: The name of the e-mail's field in ``fields``.
        origin: Where the marker came from, for the report: a logger's
            name, or ``"structlog"``.
    """
    try:
        call = build_call(marker, fields, email_field)
    except InvalidCall as error:
        sender.drop(f"Dropped a marker from {origin}: {error}")
    except Exception as error:
        sender.drop(f"Dropped a marker from {origin}: {type(error).__name__}")
    else:
        sender.submit(call)
