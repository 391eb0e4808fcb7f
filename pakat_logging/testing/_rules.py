"""The tracker API's request rules, as the fake server enforces them."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

__all__ = [
    "ENDPOINTS",
    "check_body",
    "check_content_type",
    "check_json",
    "error_code",
    "parse_json",
]

# The endpoints under the base URL, as they appear in the path.
ENDPOINTS = frozenset({"identify", "trackEvent", "trackLink", "trackPage"})

_MISSING = "is required"

_REQUIRED = {
    "identify": ("email",),
    "trackEvent": ("email", "event"),
    "trackLink": ("email", "link"),
    "trackPage": ("email", "page"),
}

# The contact fields each endpoint carries; identify has no reserved keys.
_CONTACT_FIELD = {
    "identify": "attributes",
    "trackEvent": "properties",
    "trackLink": "properties",
    "trackPage": "properties",
}

_EVENTDATA_KEYS = frozenset({"id", "data"})


def error_code(message: str) -> str:
    """Name the API error code that goes with a rule's message.

    Args:
        message: A message returned by one of the checks in this module.

    Returns:
        ``"missing_parameter"`` when a required value is absent,
        ``"invalid_parameter"`` otherwise.
    """
    if message.endswith(_MISSING):
        return "missing_parameter"

    return "invalid_parameter"


def check_content_type(content_type: str | None) -> str | None:
    """Check that a ``Content-Type`` header announces JSON.

    Parameters such as ``; charset=utf-8`` are accepted, as the real
    service accepts them.

    Args:
        content_type: The header's value, or ``None`` when it is absent.

    Returns:
        An error message, or ``None`` when the header is acceptable.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return "Content-Type: must be application/json"

    return None


def parse_json(raw: bytes) -> Any:
    """Parse a request body the way the fake server records it.

    Args:
        raw: The body as received.

    Returns:
        The parsed JSON value, or ``None`` when the body is empty or is
        not valid UTF-8 JSON.
    """
    try:
        return _decode(raw)
    except ValueError:
        return None


def check_json(raw: bytes) -> str | None:
    """Check that a request body is valid UTF-8 JSON.

    ``NaN``, ``Infinity`` and ``-Infinity`` are refused: Python's json
    module reads them, but they are not JSON and the service rejects
    them.

    Args:
        raw: The body as received.

    Returns:
        An error message, or ``None`` when the body parses.
    """
    if not raw.strip():
        return f"body: {_MISSING}"

    try:
        _decode(raw)
    except ValueError as error:
        return f"body: must be valid UTF-8 JSON ({error})"

    return None


def check_body(endpoint: str, body: Any) -> str | None:
    """Check a parsed body against one endpoint's rules.

    Args:
        endpoint: ``"identify"``, ``"trackEvent"``, ``"trackLink"`` or
            ``"trackPage"``.
        body: The parsed JSON body.

    Returns:
        The first rule the body breaks, as ``"<field>: <rule>"``, or
        ``None`` when the body is acceptable.

    Raises:
        KeyError: ``endpoint`` is not one of the four endpoints.
    """
    if not isinstance(body, dict):
        return "body: must be a JSON object"

    return (
        _check_fields(endpoint, body)
        or _check_required(endpoint, body)
        or _check_email(body["email"])
        or _check_contact_field(endpoint, body)
        or _check_eventdata(body.get("eventdata"))
    )


def _decode(raw: bytes) -> Any:
    # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_fields(endpoint: str, body: dict[str, Any]) -> str | None:
    allowed = {*_REQUIRED[endpoint], _CONTACT_FIELD[endpoint]}
    if endpoint == "trackEvent":
        allowed.add("eventdata")

    unknown = sorted(set(body) - allowed)
    if unknown:
        return f"{unknown[0]}: is not a parameter of {endpoint}"

    return None


def _check_required(endpoint: str, body: dict[str, Any]) -> str | None:
    for field in _REQUIRED[endpoint]:
        value = body.get(field)
        if value is None or value == "":
            return f"{field}: {_MISSING}"

        if not isinstance(value, str):
            return f"{field}: must be a string"

    return None


def _check_email(email: str) -> str | None:
    if "@" not in email or any(map(_is_blank_or_control, email)):
        return (
            "email: must contain '@' and no whitespace or control characters"
        )

    return None


def _is_blank_or_control(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cc"


def _check_contact_field(endpoint: str, body: dict[str, Any]) -> str | None:
    field = _CONTACT_FIELD[endpoint]
    value = body.get(field)
    if value is None:
        return None

    if not isinstance(value, dict):
        return f"{field}: must be an object or null"

    if endpoint == "identify":
        return None

    reserved = sorted(set(_REQUIRED[endpoint]) & set(value))
    if reserved:
        return f"{field}: the key '{reserved[0]}' is reserved for {endpoint}"

    return None


def _check_eventdata(eventdata: Any) -> str | None:
    if eventdata is None:
        return None

    if not isinstance(eventdata, dict):
        return "eventdata: must be an object or null"

    unknown = sorted(set(eventdata) - _EVENTDATA_KEYS)
    if unknown:
        return f"eventdata: the key '{unknown[0]}' is not 'id' or 'data'"

    return _check_eventdata_parts(eventdata)


def _check_eventdata_parts(eventdata: dict[str, Any]) -> str | None:
    event_id = eventdata.get("id")
    if event_id is not None and not isinstance(event_id, str):
        return "eventdata.id: must be a string or null"

    data = eventdata.get("data")
    if data is not None and not isinstance(data, dict):
        return "eventdata.data: must be an object or null"

    return None
