"""The fast path from a plain marker to the parts of its call.

Building a call through its class costs layers of calls and checks, and on
the application's thread that is most of what a marked log line costs.
The markers that apps log nearly always have one shape: a dict of JSON's
own types (str keys, scalars, lists, dicts), and a name and an e-mail
already checked once. This module
encodes those in one pass, straight into the parts that the sender queues,
and leaves every other marker to :func:`~pakat_logging._calls.from_mapping`,
which builds it or says what is wrong. It is written by hand because it
must match that general path exactly; a test holds the two to the same
result.
"""

from __future__ import annotations

from typing import Any

from ._calls import (
    _FIELDS,
    Identify,
    Parts,
    TrackEvent,
    TrackLink,
    TrackPage,
)
from ._fields import _checked_emails, _checked_names
from ._json import encode, encode_text

__all__ = ["quick_parts"]

# What json writes for an int and a finite float.
_int_text = int.__repr__
_float_text = float.__repr__

_EVENT = _FIELDS[TrackEvent]
_PAGE = _FIELDS[TrackPage]
_LINK = _FIELDS[TrackLink]
_IDENTIFY = _FIELDS[Identify]
_EVENTDATA = frozenset({"id", "data"})


def quick_parts(  # noqa: PLR0911, PLR0912 - one pass, on the hot path
    marker: object, email: object
) -> Parts | None:
    """Encode a plain marker in one pass, or return ``None``.

    Args:
        marker: The marker, as logged.
        email: The e-mail to use when the marker has none.

    Returns:
        The parts of the call that ``from_mapping(marker, email=email)``
        builds, or ``None`` when the marker needs that general path: it is
        not a dict, a value needs converting, a name or an e-mail has not
        been checked before, or something is wrong with it.

    Raises:
        Exception: A key's own ``__eq__`` raised, or a value contains
            itself (``RecursionError``). Callers take the general path
            then, which reports it.
    """
    if type(marker) is not dict:
        return None

    own = marker.get("email")
    if own is not None:
        email = own
    if type(email) is not str or email not in _checked_emails:
        return None

    if "event" in marker:
        field, endpoint, allowed = "event", "trackEvent", _EVENT
    elif "page" in marker:
        field, endpoint, allowed = "page", "trackPage", _PAGE
    elif "link" in marker:
        field, endpoint, allowed = "link", "trackLink", _LINK
    else:
        return _identify(marker, email)

    # Also refuses a second name: "page" is no field of a trackEvent.
    if not allowed.issuperset(marker):
        return None

    name = marker[field]
    if type(name) is not str:
        return None
    name_text = _checked_names.get(name)
    if name_text is None:
        return None

    properties = marker.get("properties")
    if properties:
        text = _plain_text(properties)
        # The reserved keys: "email", and the call's own name field.
        if text is None or "email" in properties or field in properties:
            return None
        fields = f'"{field}":{name_text},"properties":{text}'
    elif properties is None or type(properties) is dict:
        fields = f'"{field}":{name_text}'
    else:
        return None

    eventdata = marker.get("eventdata")
    if eventdata is not None:
        extra = _eventdata(eventdata)
        if extra is None:
            return None
        fields += extra

    return (endpoint, email, fields, name)


def _identify(marker: dict[Any, Any], email: str) -> Parts | None:
    if not _IDENTIFY.issuperset(marker):
        return None

    fields = ""
    attributes = marker.get("attributes")
    if attributes:
        text = _plain_text(attributes)
        if text is None:
            return None
        fields = f'"attributes":{text}'
    elif attributes is not None and type(attributes) is not dict:
        return None

    return ("identify", email, fields, None)


def _eventdata(value: object) -> str | None:
    """Return ``,"eventdata":...`` for a plain eventdata, or ``None``."""
    if type(value) is not dict or not _EVENTDATA.issuperset(value):
        return None

    parts = []
    event_id = value.get("id")
    if event_id is not None:
        if type(event_id) is not str:
            return None
        parts.append(f'"id":{encode_text(event_id)}')

    data = value.get("data")
    if data:
        text = _plain_text(data)
        if text is None:
            return None
        parts.append(f'"data":{text}')
    elif data is not None:
        return None

    return f',"eventdata":{{{",".join(parts)}}}' if parts else ""


def _plain_text(value: object) -> str | None:
    """Return a dict's JSON text when it holds only what JSON carries as is.

    That is str keys, and values that are str, int, bool, None, finite
    floats, or lists and str-keyed dicts of those, at any depth.
    """
    if type(value) is not dict:
        return None

    # Scalars by hand from json's own pieces, as its pure-Python encoder
    # does: for the few items of a flat dict, the C encoder's set-up costs
    # more than the encoding. Nested values go to the C encoder once their
    # types are known. The text is the same; a test compares the two.
    texts = []
    try:
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str:
                return None
            if kind is str:
                text = encode_text(item)
            elif kind is int:
                text = _int_text(item)
            elif kind is bool:
                text = "true" if item else "false"
            elif item is None:
                text = "null"
            # item - item is 0.0 for every finite float, NaN otherwise.
            elif kind is float and item - item == 0.0:
                text = _float_text(item)
            elif (kind is list or kind is dict) and _is_plain(item):
                text = encode(item)
            else:
                return None
            texts.append(f"{encode_text(key)}:{text}")
    except ValueError:
        # An int too long for str(): from_mapping words the refusal.
        return None

    return f"{{{','.join(texts)}}}"


def _is_plain(value: Any) -> bool:
    """Return whether JSON carries ``value`` as it is, with no conversion.

    Raises:
        RecursionError: ``value`` contains itself, or nests too deeply;
            the general path reports it.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return bool(value - value == 0.0)
    if kind is list:
        return all(map(_is_plain, value))
    if kind is dict:
        return all(type(key) is str for key in value) and all(
            map(_is_plain, value.values())
        )

    return False
