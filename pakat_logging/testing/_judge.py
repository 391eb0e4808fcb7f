"""How the fake tracker judges a request, and the checks of its options.

The route, the key and the body decide the answer of the real service;
these helpers keep FakePakatServer's own module about serving and
recording.
"""

from __future__ import annotations

import dataclasses
import math

from pakat_logging.testing import _rules
from pakat_logging.testing._http import (
    Answer,
    RecordedRequest,
    error_answer,
    failure_answer,
    success_answer,
)

__all__ = [
    "check_payload",
    "check_route",
    "check_seconds",
    "check_success",
    "format_retry_after",
    "scripted",
]


def check_route(request: RecordedRequest) -> Answer | None:
    if request.method != "POST":
        message = f"method: {request.method} is not allowed, use POST"
        return error_answer(
            405, "method_not_allowed", message, ("Allow", "POST")
        )

    if request.endpoint is None:
        message = f"path: {request.path} is not a tracker endpoint"
        return error_answer(404, "not_found", message)

    return None


def check_payload(request: RecordedRequest) -> Answer | None:
    message = (
        _rules.check_content_type(request.headers.get("content-type"))
        or _rules.check_json(request.raw_body)
        or _rules.check_body(str(request.endpoint), request.body)
    )
    if message is None:
        return None

    return error_answer(400, _rules.error_code(message), message)


def scripted(
    status: int,
    retry_after: str | float | None,
    delay: float,
    drop: bool,
    message: str | None,
) -> Answer:
    if not 200 <= status <= 599:
        raise ValueError(f"status: {status!r} is not between 200 and 599")

    delay = check_seconds("delay", delay)
    if drop:
        return Answer(None, delay=delay)

    answer = (
        success_answer(status)
        if status < 300
        else failure_answer(status, message)
    )
    if retry_after is not None:
        retry = ("Retry-After", format_retry_after(retry_after))
        answer = dataclasses.replace(answer, headers=(*answer.headers, retry))

    return dataclasses.replace(answer, delay=delay)


def check_success(status: int) -> int:
    if not 200 <= status < 300:
        raise ValueError(f"success_status: {status!r} is not a 2xx")

    return status


def check_seconds(name: str, value: float) -> float:
    """Return ``value`` as float seconds when it is a finite duration."""
    # bool is an int, and JSON's true would otherwise read as one second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} is not a number of seconds")

    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: {value!r} is not a duration >= 0")

    return float(value)


def format_retry_after(value: str | float) -> str:
    """Return the text of a ``Retry-After`` header: as given, or seconds."""
    if isinstance(value, str):
        if "\r" in value or "\n" in value:
            raise ValueError("retry_after: must not contain CR or LF")

        return value

    seconds = check_seconds("retry_after", value)

    return str(int(seconds)) if seconds.is_integer() else str(seconds)
