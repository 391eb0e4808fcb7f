"""Field rules of the tracker's calls: checks and encodings, one per field.

Every function raises :class:`InvalidCall` with a message that names the
field and the rule it broke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidCall
from ._json import encode, encode_text, repeated_name

__all__ = [
    "check_email",
    "check_mapping",
    "check_name",
    "check_properties",
    "encode_field",
    "eventdata_text",
    "key_text",
]

# One "@", something on each side, no whitespace or control characters (C0,
# DEL and C1, which the tracker refuses): enough to catch a wrong field,
# loose enough for every real address.
_EMAIL = re.compile(r"[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+")

_EVENTDATA_KEYS = frozenset({"id", "data"})

# What check_email and check_name have passed, so that the fast path in
# _quick can skip them: a name maps to its JSON text.
_CHECKED_MAX = 4096
_checked_emails: dict[str, None] = {}
_checked_names: dict[str, str] = {}


def check_email(email: object) -> str:
    """Return ``email`` when it is a plausible e-mail address.

    Args:
        email: The value to check.

    Returns:
        The address, as a plain ``str``.

    Raises:
        InvalidCall: It is not a string, or not shaped like an address
            (one ``@``, no whitespace or control characters).
    """
    if type(email) is str and email in _checked_emails:
        return email

    if not isinstance(email, str):
        kind = type(email).__qualname__
        raise InvalidCall(f"email: must be a string, not {kind}")

    if _EMAIL.fullmatch(email) is None:
        raise InvalidCall(
            "email: must be an address with one '@' and no whitespace "
            "or control characters"
        )

    if type(email) is not str:
        # A subclass (Django's SafeString) is kept as its plain text.
        return str.__str__(email)

    # An app logs for the same few contacts over and over: remembering the
    # good ones saves the regular expression on the caller's thread.
    if len(_checked_emails) >= _CHECKED_MAX:
        _checked_emails.clear()
    _checked_emails[email] = None

    return email


def check_name(field: str, value: object) -> str:
    """Return ``value`` as a plain ``str`` when it is a non-blank string."""
    if type(value) is str and value in _checked_names:
        return value

    if not isinstance(value, str):
        kind = type(value).__qualname__
        raise InvalidCall(f"{field}: must be a string, not {kind}")

    if not value or value.isspace():
        raise InvalidCall(f"{field}: must not be empty")

    if type(value) is not str:
        # A subclass is kept as its plain text, as JSON sends it.
        return str.__str__(value)

    # Like e-mails, the same few names come back on every record.
    if len(_checked_names) >= _CHECKED_MAX:
        _checked_names.clear()
    _checked_names[value] = encode_text(value)

    return value


def check_mapping(field: str, value: object) -> Mapping[Any, Any]:
    """Return ``value`` when it is a mapping."""
    # The exact-type test first: isinstance against an ABC costs more, and
    # nearly every mapping logged is a plain dict.
    if type(value) is not dict and not isinstance(value, Mapping):
        kind = type(value).__qualname__
        raise InvalidCall(f"{field}: must be a mapping, not {kind}")

    return value


def encode_field(field: str, value: object) -> str:
    """Encode ``value`` as JSON text, naming ``field`` if it cannot be."""
    # Keys that are int, float, bool or None become strings, as json does;
    # any other key type is refused by the encoder with a TypeError.
    try:
        text = encode(value)
        repeated = repeated_name(value)
    except RecursionError:
        raise InvalidCall(
            f"{field}: nested too deeply to send, or contains itself"
        ) from None
    except (TypeError, ValueError) as error:
        # json words a NaN as "Out of range float values are not JSON
        # compliant"; say what the user can act on instead.
        reason = str(error)
        if reason.startswith("Out of range float"):
            reason = "NaN and Infinity are not valid JSON"
        raise InvalidCall(f"{field}: {reason}") from error

    if repeated is not None:
        raise InvalidCall(
            f"{field}: two keys of one mapping are both written as "
            f"{repeated!r} in JSON"
        )

    return text


def check_properties(
    endpoint: str, value: object, reserved: frozenset[str]
) -> Mapping[Any, Any]:
    """Return ``value`` when it is a mapping without a reserved key."""
    properties = check_mapping("properties", value)
    if not reserved.isdisjoint(properties):
        clash = min(reserved.intersection(properties))
        raise InvalidCall(
            f"properties: the key {clash!r} is reserved for {endpoint}"
        )

    return properties


def eventdata_text(value: object) -> str | None:
    """Return eventdata as JSON text, or ``None`` when it is empty."""
    eventdata = check_mapping("eventdata", value)
    unknown = [key for key in eventdata if key not in _EVENTDATA_KEYS]
    if unknown:
        raise InvalidCall(
            "eventdata: only 'id' and 'data' are allowed, not "
            f"{key_text(unknown[0])}"
        )

    parts = []
    event_id = eventdata.get("id")
    if event_id is not None:
        if not isinstance(event_id, str):
            kind = type(event_id).__qualname__
            raise InvalidCall(f"eventdata.id: must be a string, not {kind}")
        parts.append(f'"id":{encode_text(event_id)}')

    data = eventdata.get("data")
    if data:
        check_mapping("eventdata.data", data)
        parts.append(f'"data":{encode_field("eventdata.data", data)}')

    return "{" + ",".join(parts) + "}" if parts else None


def key_text(key: object) -> str:
    """Name a mapping key for a message, without calling its repr."""
    # A key that is not a str is named by its type: its repr may raise.
    return repr(key) if isinstance(key, str) else type(key).__qualname__
