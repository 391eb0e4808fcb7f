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

The commonest marker of all, a few scalars as properties (or attributes),
is checked and copied here but encoded later, by whoever moves the call from
the sender's intake to its queue: usually the sender's own thread. The
check refuses what the general path would, so a bad marker is still
refused while the application's call is on the stack, and the copy is as
good a snapshot as the encoded text, since scalars cannot change.
"""

from __future__ import annotations

from typing import Any, TypeAlias

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

__all__ = ["DEFERRED_TEXT_MAX", "Deferred", "finish", "quick_parts"]

Deferred: TypeAlias = tuple[str, str, str, "str | None", dict[str, Any]]
"""A call whose flat properties are checked and copied but not encoded yet.

Endpoint, e-mail, encoded name (``""`` for an identify), name, and the
copy of the properties (the attributes, for an identify). The first four
are a :data:`Parts`' own; :func:`finish` makes the parts.
"""

DEFERRED_TEXT_MAX = 1024
"""Characters at most that :func:`finish` adds to a deferred call's name.

That is the encoded properties and the keys that frame them. The
sender's intake, which takes small calls without its lock, reckons with
it: the length it sees of a deferred call leaves the properties out.
"""

# What finish adds is bounded by counting characters: a JSON string may
# take 12 for each of the str's (a code point past U+FFFF is written as two
# \uXXXX escapes) and 2 quotes, and an item adds at most 28 besides the
# characters of its key and value (quotes, ":", ",", and a number of up to
# 24). So at most _ITEMS_MAX items whose keys and str values hold at most
# _CHARS_MAX characters in all encode to 12 * 64 + 8 * 28 + 2 = 994, and
# '"event":' and ',"properties":' bring it to 1,016.
_CHARS_MAX = 64
_ITEMS_MAX = 8

# An int is left to the general path from this size on, so that its text
# fits in those 24 characters.
_INT_LIMIT = 10**20

# What json writes for an int and a finite float.
_int_text = int.__repr__
_float_text = float.__repr__

_EVENT = _FIELDS[TrackEvent]
_PAGE = _FIELDS[TrackPage]
_LINK = _FIELDS[TrackLink]
_IDENTIFY = _FIELDS[Identify]
_EVENTDATA = frozenset({"id", "data"})
_FIELD_OF = {"trackEvent": "event", "trackPage": "page", "trackLink": "link"}


def quick_parts(  # noqa: PLR0911, PLR0912 - one pass, on the hot path
    marker: object, email: object
) -> Parts | Deferred | None:
    """Encode a plain marker in one pass, or return ``None``.

    Args:
        marker: The marker, as logged.
        email: The e-mail to use when the marker has none.

    Returns:
        The parts of the call that ``from_mapping(marker, email=email)``
        builds, or its :data:`Deferred` form that :func:`finish` turns
        into those parts, or ``None`` when the marker needs that general
        path: it is not a dict, a value needs converting, a name or an
        e-mail has not been checked before, or something is wrong with it.

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
    eventdata = marker.get("eventdata")
    if properties and eventdata is None:
        values = _flat_copy(properties)
        if values is not None:
            # The reserved keys: "email", and the call's own name field.
            if "email" in values or field in values:
                return None
            return (endpoint, email, name_text, name, values)

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

    if eventdata is not None:
        extra = _eventdata(eventdata)
        if extra is None:
            return None
        fields += extra

    return (endpoint, email, fields, name)


def _identify(marker: dict[Any, Any], email: str) -> Parts | Deferred | None:
    if not _IDENTIFY.issuperset(marker):
        return None

    fields = ""
    attributes = marker.get("attributes")
    if attributes:
        values = _flat_copy(attributes)
        if values is not None:
            return ("identify", email, "", None, values)
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


def _flat_copy(value: object) -> dict[str, Any] | None:
    """Return a copy of a flat dict of scalars small enough to defer.

    That is at most 8 items, with str keys and values that are str,
    bool, None, an int of at most 20 digits or a finite float, whose keys
    and str values hold at most 64 characters in all: what encodes within
    :data:`DEFERRED_TEXT_MAX`. Anything else is ``None``: the caller
    encodes it now, or leaves it to the general path.
    """
    if type(value) is not dict:
        return None

    # The copy is what gets checked: another thread could change the
    # application's dict between a check and a copy made after it.
    values = value.copy()
    # Characters of the keys and the str values: what bounds the text.
    size = 0
    for key, item in values.items():
        if type(key) is not str:
            return None
        kind = type(item)
        if kind is str:
            size += len(key) + len(item)
        elif (
            kind is bool
            or item is None
            or (kind is int and -_INT_LIMIT < item < _INT_LIMIT)
            # item - item is 0.0 for every finite float, NaN otherwise.
            or (kind is float and item - item == 0.0)
        ):
            size += len(key)
        else:
            return None

    if size > _CHARS_MAX or len(values) > _ITEMS_MAX:
        return None

    return values


def finish(parts: Parts | Deferred) -> Parts:
    """Return the parts of a call, encoding its properties if deferred.

    Runs wherever the call leaves the intake, usually on the sender's
    thread. The values were checked when the call was made, so encoding
    them cannot fail.
    """
    if len(parts) == 4:
        return parts

    endpoint, email, name_text, name, values = parts
    text = encode(values)
    if endpoint == "identify":
        return (endpoint, email, f'"attributes":{text}', None)

    field = _FIELD_OF[endpoint]
    return (
        endpoint,
        email,
        f'"{field}":{name_text},"properties":{text}',
        name,
    )
