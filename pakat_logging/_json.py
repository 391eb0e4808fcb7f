"""JSON encoding of call fields: predictable conversions, never a repr."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import json.encoder
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["encode", "encode_text", "repeated_name"]


def _convert(value: Any) -> Any:  # noqa: PLR0911 - one return per type
    """Turn a value that JSON cannot carry into one it can, or refuse it."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()

    if isinstance(value, decimal.Decimal):
        return _decimal(value)

    if isinstance(value, enum.Enum):
        return value.value

    if isinstance(value, uuid.UUID):
        return str(value)

    if isinstance(value, (set, frozenset)):
        return _set(value)

    if isinstance(value, (bytes, bytearray, memoryview)):
        return _text(bytes(value))

    if isinstance(value, Mapping):
        return dict(value)

    # Only the type's name: the value's own __repr__ may raise or leak.
    name = type(value).__qualname__
    raise TypeError(f"a value of type {name} cannot be sent as JSON")


# Python writes no int of more digits (sys.set_int_max_str_digits), and
# building one from a Decimal such as 1E+1000000 takes seconds.
_DECIMAL_DIGITS_MAX = 4300


def _decimal(value: decimal.Decimal) -> int | float:
    # JSON numbers have any precision, but json writes only int and float:
    # a whole Decimal stays exact, a fraction keeps a float's 17 digits.
    if not value.is_finite():
        raise ValueError("NaN and Infinity are not valid JSON")

    # adjusted() is the exponent of the first digit: checked before the
    # int is built, so a huge exponent costs no time on the caller's thread.
    if value.adjusted() >= _DECIMAL_DIGITS_MAX:
        raise ValueError(
            f"a Decimal of more than {_DECIMAL_DIGITS_MAX} digits cannot be "
            "sent"
        )

    if value == value.to_integral_value():
        return int(value)

    return float(value)


def _set(value: set[Any] | frozenset[Any]) -> list[Any]:
    # Sorted when the members allow it, so the same set always sends the
    # same list; mixed types keep their iteration order.
    try:
        return sorted(value)
    except TypeError:
        return list(value)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise TypeError("bytes that are not UTF-8 cannot be sent") from None


# ensure_ascii keeps the output pure ASCII, so lone surrogates in a str are
# escaped instead of failing at the UTF-8 step.
_encoder = json.JSONEncoder(
    ensure_ascii=True,
    allow_nan=False,
    separators=(",", ":"),
    default=_convert,
)

encode_text = json.encoder.encode_basestring_ascii
"""Encode one ``str`` as a JSON string literal (C speed, ASCII only)."""

# JSONEncoder.encode builds a new C encoder on every call, which costs
# more than encoding a small dict; this one is built once. It is given no
# markers dict, because a shared one would make two threads encoding the
# same dict at once see a cycle: a real cycle ends in RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _convert, encode_text, None, ":", ",", False, False, False
    )
)


def encode(value: Any) -> str:
    """Encode one field's value as compact JSON text.

    Args:
        value: The field's value, nested as deeply as the caller likes.

    Returns:
        The JSON text, ASCII only.

    Raises:
        TypeError: A value that no conversion covers, or a mapping key of
            a type JSON cannot carry.
        ValueError: NaN or Infinity.
        RecursionError: Nesting deeper than the interpreter allows, or a
            value that contains itself.
    """
    if _c_encoder is None:  # pragma: no cover - CPython always has it
        text: str = _encoder.encode(value)
        return text

    return "".join(_c_encoder(value, 0))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def repeated_name(value: Any) -> str | None:
    """Return a name that two keys of one mapping in ``value`` write alike.

    JSON writes the keys ``1`` and ``"1"`` (or ``True`` and ``"true"``, or
    ``None`` and ``"null"``) as one name, and a reader keeps one of the two
    values without a word. ``encode`` cannot see that, so this walks what it
    encoded. Call it only on a value that ``encode`` accepted: cycles and
    conversions that fail have been refused by then.

    Args:
        value: A value that ``encode`` accepted.

    Returns:
        The name written twice, or ``None`` when every name is unique.
    """
    # json's C encoder takes subclasses of str, int, float, list, tuple and
    # dict for their base type (a namedtuple, an IntEnum, Django's
    # SafeString), testing them in this order.
    if type(value) in _SCALARS or isinstance(value, (str, int, float)):
        return None

    children: Iterable[Any]
    if isinstance(value, (list, tuple)):
        children = value
    elif isinstance(value, dict):
        # Keys that are all str, the common case, cannot collide.
        for key in value:
            if type(key) is not str:
                repeated = _repeated_key(value)
                if repeated is not None:
                    return repeated
                break
        children = value.values()
    elif isinstance(value, (set, frozenset, bytes, bytearray, memoryview)):
        # Members of a set are hashable, so never a mapping.
        return None
    else:
        # What the encoder turned into JSON through _convert: a Mapping
        # became a dict, an Enum its value; the rest are scalars.
        return repeated_name(_convert(value))

    for item in children:
        if type(item) in _SCALARS:
            continue
        repeated = repeated_name(item)
        if repeated is not None:
            return repeated
    return None


def _repeated_key(mapping: dict[Any, Any]) -> str | None:
    names = [_key_name(key) for key in mapping]
    if len(set(names)) == len(names):
        return None

    return min(name for name in names if names.count(name) > 1)


def _key_name(key: Any) -> str:
    """Return the name JSON writes for a key that ``encode`` accepted."""
    if isinstance(key, str):
        return key
    # int, float, bool and None: the text json writes, without quotes.
    return encode(key)
