"""The four tracker calls: immutable values whose body is fixed when built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias, cast

from ._errors import InvalidCall
from ._fields import (
    check_email,
    check_mapping,
    check_name,
    check_properties,
    encode_field,
    eventdata_text,
    key_text,
)
from ._json import encode_text

__all__ = [
    "FRAME_SIZE",
    "Call",
    "Identify",
    "Parts",
    "TrackEvent",
    "TrackLink",
    "TrackPage",
    "check_email",
    "from_mapping",
    "from_parts",
    "from_payload",
    "size_of",
]

_set = object.__setattr__
_new = object.__new__

Parts: TypeAlias = tuple[str, "str | None", str, "str | None"]
"""A call as plain values: endpoint, e-mail, encoded fields and name.

Only ``str`` and ``None`` inside, so once the garbage collector has seen
such a tuple it stops tracking it: a long queue of calls held this way
costs the application's collections nothing.
"""


FRAME_SIZE = 12
"""What a body holds besides its fields and e-mail: braces, key, quotes."""


def size_of(parts: Parts) -> int:
    """Return the length in bytes of the body that ``parts`` sends."""
    email = parts[1]
    return len(parts[2]) + (0 if email is None else len(email)) + FRAME_SIZE


class Call:
    """A tracker call: its endpoint, an optional e-mail and a fixed body.

    The body is validated and encoded when the call is built, so changing
    the dictionaries given to it afterwards changes nothing that is sent.
    Calls compare equal when they would send the same body.
    """

    __slots__ = ("_parts",)

    endpoint: ClassVar[str]
    """The tracker endpoint's name, such as ``"trackEvent"``."""

    _parts: Parts

    def __init__(self) -> None:
        raise TypeError("use Identify, TrackEvent, TrackLink or TrackPage")

    def _init(self, email: object, fields: str, name: str | None) -> None:
        # The fields are pre-encoded JSON text; the e-mail is kept apart so
        # with_email() can fill it in without encoding the rest again.
        checked = None if email is None else check_email(email)
        _set(self, "_parts", (self.endpoint, checked, fields, name))

    @property
    def email(self) -> str | None:
        """The contact's e-mail address, or ``None`` until it is filled in."""
        return self._parts[1]

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body this call sends, as a new ``dict`` on each access."""
        result: dict[str, Any] = json.loads(self.payload())
        return result

    @property
    def size(self) -> int:
        """The length in bytes of the encoded body."""
        return size_of(self._parts)

    def payload(self) -> bytes:
        """Return the encoded JSON body, ready to send.

        Returns:
            UTF-8 (in fact ASCII) JSON bytes.
        """
        _, email, fields, _ = self._parts
        if email is not None:
            email = f'"email":{encode_text(email)}'
            fields = f"{email},{fields}" if fields else email

        return f"{{{fields}}}".encode("ascii")

    def with_email(self, email: str) -> Call:
        """Return a copy of this call sent on behalf of ``email``.

        Args:
            email: The contact's e-mail address.

        Returns:
            A new call of the same kind with the same body.

        Raises:
            InvalidCall: ``email`` is not a plausible address.
        """
        endpoint, _, fields, name = self._parts
        clone = _new(type(self))
        _set(clone, "_parts", (endpoint, check_email(email), fields, name))
        return clone

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented

        assert isinstance(other, Call)
        return self.payload() == other.payload()

    def __hash__(self) -> int:
        return hash((type(self), self.payload()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (from_payload, (self.endpoint, self.payload()))

    def _describe(self) -> str:
        return f"email={self._parts[1]!r}"


def from_parts(parts: Parts) -> Call:
    """Return the call that ``parts`` holds, without checking it again.

    Args:
        parts: What a call's ``_parts`` held, or what :func:`quick_parts`
            made.

    Returns:
        A call of the endpoint's class.
    """
    call = _new(_ENDPOINTS[parts[0]])
    _set(call, "_parts", parts)
    return call


def from_payload(endpoint: str, payload: bytes) -> Call:
    """Rebuild a call from its endpoint and its encoded body.

    Args:
        endpoint: ``"identify"``, ``"trackEvent"``, ``"trackLink"`` or
            ``"trackPage"``.
        payload: The JSON body, as :meth:`Call.payload` made it.

    Returns:
        The call, validated again.

    Raises:
        InvalidCall: The endpoint is unknown or the body is not a valid
            call for it.
    """
    cls = _ENDPOINTS.get(endpoint)
    if cls is None:
        raise InvalidCall(f"endpoint: {endpoint!r} is not a tracker endpoint")

    try:
        fields = json.loads(payload)
    except ValueError as error:
        raise InvalidCall(f"body: not JSON ({error})") from None

    if not isinstance(fields, dict):
        raise InvalidCall("body: must be a JSON object")

    return from_mapping(fields, kinds=(cls,))


class _Named(Call):
    """A call whose endpoint takes a name: an event, a page or a link."""

    __slots__ = ()

    _field: ClassVar[str]
    _reserved: ClassVar[frozenset[str]]

    def _init_named(
        self,
        name: object,
        email: object,
        properties: object,
        extra: str,
    ) -> None:
        name = check_name(self._field, name)
        fields = f'"{self._field}":{encode_text(name)}'
        if properties:
            check_properties(self.endpoint, properties, self._reserved)
            encoded = encode_field("properties", properties)
            fields += f',"properties":{encoded}'
        elif properties is not None:
            check_mapping("properties", properties)

        self._init(email, fields + extra, name)

    @property
    def _name(self) -> str:
        return cast(str, self._parts[3])

    def _describe(self) -> str:
        return f"{self._name!r}, {super()._describe()}"


class TrackEvent(_Named):
    """A ``trackEvent`` call: something the contact did.

    Args:
        event: The event's name, such as ``"order_completed"``.
        email: The contact's e-mail (default: ``None``, filled in later).
        properties: Contact fields to update, such as ``{"FIRSTNAME":
            "Sara"}`` (default: ``None``).
        eventdata: ``{"id": str, "data": mapping}``, each part optional:
            ``id`` links related events, ``data`` is the event's payload
            (default: ``None``).

    Raises:
        InvalidCall: A field breaks the tracker's rules; the message names
            the field and the rule.
    """

    __slots__ = ()

    endpoint = "trackEvent"
    _field = "event"
    _reserved = frozenset({"email", "event"})

    def __init__(
        self,
        event: str,
        *,
        email: str | None = None,
        properties: Mapping[str, Any] | None = None,
        eventdata: Mapping[str, Any] | None = None,
    ) -> None:
        text = None if eventdata is None else eventdata_text(eventdata)
        extra = "" if text is None else f',"eventdata":{text}'
        self._init_named(event, email, properties, extra)

    @property
    def event(self) -> str:
        """The event's name."""
        return self._name


class TrackLink(_Named):
    """A ``trackLink`` call: the contact followed a link.

    Args:
        link: The link, as free text (a URL, or a URL without a scheme).
        email: The contact's e-mail (default: ``None``, filled in later).
        properties: Contact fields to update (default: ``None``).

    Raises:
        InvalidCall: A field breaks the tracker's rules.
    """

    __slots__ = ()

    endpoint = "trackLink"
    _field = "link"
    _reserved = frozenset({"email", "link"})

    def __init__(
        self,
        link: str,
        *,
        email: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self._init_named(link, email, properties, "")

    @property
    def link(self) -> str:
        """The link the contact followed."""
        return self._name


class TrackPage(_Named):
    """A ``trackPage`` call: the contact viewed a page.

    Args:
        page: The page's name or URL, as free text.
        email: The contact's e-mail (default: ``None``, filled in later).
        properties: Contact fields to update; may carry ``ma_url``,
            ``ma_path``, ``ma_title`` and ``ma_referrer`` (default:
            ``None``).

    Raises:
        InvalidCall: A field breaks the tracker's rules.
    """

    __slots__ = ()

    endpoint = "trackPage"
    _field = "page"
    _reserved = frozenset({"email", "page"})

    def __init__(
        self,
        page: str,
        *,
        email: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self._init_named(page, email, properties, "")

    @property
    def page(self) -> str:
        """The page the contact viewed."""
        return self._name


class Identify(Call):
    """An ``identify`` call: create or update a contact.

    Args:
        email: The contact's e-mail (default: ``None``, filled in later).
        attributes: Contact attributes, such as ``{"FIRSTNAME": "Sara",
            "mobile": "+98912..."}`` (default: ``None``).

    Raises:
        InvalidCall: A field breaks the tracker's rules.
    """

    __slots__ = ()

    endpoint = "identify"

    def __init__(
        self,
        email: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        fields = ""
        if attributes is not None:
            check_mapping("attributes", attributes)
        if attributes:
            encoded = encode_field("attributes", attributes)
            fields = f'"attributes":{encoded}'
        self._init(email, fields, None)


AnyCall: TypeAlias = Identify | TrackEvent | TrackLink | TrackPage

_KINDS: dict[str, type[Call]] = {
    "event": TrackEvent,
    "page": TrackPage,
    "link": TrackLink,
}

_KIND_NAMES = frozenset(_KINDS)

_ENDPOINTS: dict[str, type[Call]] = {
    cls.endpoint: cls for cls in (Identify, TrackEvent, TrackLink, TrackPage)
}

_FIELDS: dict[type[Call], frozenset[str]] = {
    TrackEvent: frozenset({"event", "email", "properties", "eventdata"}),
    TrackPage: frozenset({"page", "email", "properties"}),
    TrackLink: frozenset({"link", "email", "properties"}),
    Identify: frozenset({"email", "attributes"}),
}


def from_mapping(
    fields: object,
    *,
    email: str | None = None,
    kinds: tuple[type[Call], ...] | None = None,
) -> Call:
    """Build the call that a mapping of call fields describes.

    A mapping with ``event`` is a trackEvent, with ``page`` a trackPage,
    with ``link`` a trackLink, and with none of them an identify.

    Args:
        fields: The call's fields, named as in the tracker's JSON body.
        email: The e-mail to use when ``fields`` has none (default:
            ``None``).
        kinds: The call classes allowed (default: ``None``, all four).

    Returns:
        A new call.

    Raises:
        InvalidCall: More than one of ``event``/``page``/``link``, a field
            the call does not have, or a field that breaks its rules.
    """
    if type(fields) is not dict and not isinstance(fields, Mapping):
        kind = type(fields).__qualname__
        raise InvalidCall(f"marker: must be a call or a mapping, not {kind}")

    cls = _kind_of(fields)
    if kinds is not None and cls not in kinds:
        raise InvalidCall(f"body: is not a {kinds[0].endpoint} call")

    allowed = _FIELDS[cls]
    if not allowed.issuperset(fields):
        key = key_text(min(fields.keys() - allowed, key=key_text))
        raise InvalidCall(f"marker: {cls.endpoint} has no field {key}")

    if email is None or fields.get("email") is not None:
        return cls(**fields)

    if "email" in fields:
        fields = {**fields, "email": email}
        return cls(**fields)

    return cls(**fields, email=email)


def _kind_of(
    fields: Mapping[Any, Any],
) -> type[Identify | TrackEvent | TrackLink | TrackPage]:
    # Three dict look-ups: cheaper than building a set on every record.
    found = ("event" in fields) + ("page" in fields) + ("link" in fields)
    if found > 1:
        first, second = sorted(_KIND_NAMES.intersection(fields))[:2]
        raise InvalidCall(f"marker: has both {first!r} and {second!r}")

    if "event" in fields:
        return TrackEvent
    if "page" in fields:
        return TrackPage
    if "link" in fields:
        return TrackLink

    return Identify
