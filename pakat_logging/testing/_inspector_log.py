"""The inspector's log: recent requests as the page shows them, counted."""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pakat_logging._config import mask
from pakat_logging.testing._http import RecordedRequest
from pakat_logging.testing._rules import ENDPOINTS

__all__ = ["DEFAULT_LOG_SIZE", "CallLog"]

DEFAULT_LOG_SIZE = 1000
"""Requests the inspector keeps; older ones are forgotten first."""

# A body is shown whole up to this size; a bigger one is cut, so one huge
# request cannot make every poll of the page slow.
MAX_BODY_CHARS = 64 * 1024

# The body field that names what a call is about, in the order tried.
_NAME_FIELDS = ("event", "page", "link")

_OTHER = "other"


class CallLog:
    """The latest requests, numbered in the order they were answered.

    Each request gets the next number, which clients use as a cursor: a
    client that has seen up to number ``n`` asks for those after ``n``.
    Numbers are never reused, not even after :meth:`clear`.

    Args:
        size: How many requests to keep (default: ``1000``).
    """

    def __init__(self, size: int = DEFAULT_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=size
        )
        self._counters = _zero_counters()
        self._last = 0

    def note(self, request: RecordedRequest) -> None:
        """Number, describe and count one answered request.

        Args:
            request: The request, with the status it was answered.
        """
        # The recorded time is monotonic; the page shows the wall clock.
        arrival = time.time() - (time.monotonic() - request.time)
        with self._lock:
            self._last += 1
            self._entries.append(_describe(self._last, arrival, request))
            _count(self._counters, request)

    def clear(self) -> int:
        """Forget the requests and reset the counters.

        Returns:
            How many requests were forgotten.
        """
        with self._lock:
            forgotten = len(self._entries)
            self._entries.clear()
            self._counters = _zero_counters()

        return forgotten

    def query(
        self,
        after: int = 0,
        limit: int | None = None,
        endpoint: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        """Select requests, newest first, with the cursor and counters.

        Args:
            after: Only requests numbered above this (default: ``0``).
            limit: At most this many, the newest (default: all kept).
            endpoint: Only this endpoint, or ``"other"`` for requests to
                no endpoint (default: any).
            email: Only e-mails containing this text, in any case
                (default: any).

        Returns:
            ``cursor`` (the last number given), ``first`` (the oldest
            number still kept; clients drop any below it), ``calls`` and
            ``counters``.
        """
        with self._lock:
            entries = list(self._entries)
            counters = {name: dict(n) for name, n in self._counters.items()}
            cursor = self._last

        chosen = _select(reversed(entries), after, endpoint, email)
        calls = list(itertools.islice(chosen, limit))

        return {
            "cursor": cursor,
            "first": entries[0]["id"] if entries else cursor + 1,
            "calls": calls,
            "counters": counters,
        }


def _zero_counters() -> dict[str, dict[str, int]]:
    return {
        name: {"total": 0, "accepted": 0, "failed": 0}
        for name in sorted(ENDPOINTS)
    }


def _count(
    counters: dict[str, dict[str, int]], request: RecordedRequest
) -> None:
    name = request.endpoint or _OTHER
    counter = counters.setdefault(
        name, {"total": 0, "accepted": 0, "failed": 0}
    )
    counter["total"] += 1
    accepted = request.status is not None and 200 <= request.status < 300
    counter["accepted" if accepted else "failed"] += 1


def _describe(
    number: int, arrival: float, request: RecordedRequest
) -> dict[str, Any]:
    body = request.body if isinstance(request.body, dict) else {}
    big = len(request.raw_body) > MAX_BODY_CHARS

    return {
        "id": number,
        "time": round(arrival, 3),
        "method": request.method,
        "path": request.path,
        "endpoint": request.endpoint,
        "email": _text(body.get("email")),
        "name": next(filter(None, map(_text, _names(body))), None),
        "status": request.status,
        "ma_key": mask(request.headers.get("ma-key")),
        "body": None if big else request.body,
        "body_text": _body_text(request),
    }


def _names(body: dict[str, Any]) -> Iterator[Any]:
    return (body.get(field) for field in _NAME_FIELDS)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _body_text(request: RecordedRequest) -> str:
    if request.body is not None:
        text = json.dumps(request.body, indent=2, ensure_ascii=False)
    else:
        text = request.raw_body.decode("utf-8", errors="replace")

    if len(text) <= MAX_BODY_CHARS:
        return text

    cut = len(text) - MAX_BODY_CHARS

    return f"{text[:MAX_BODY_CHARS]}\n... ({cut} more characters)"


def _select(
    entries: Iterable[dict[str, Any]],
    after: int,
    endpoint: str | None,
    email: str | None,
) -> Iterator[dict[str, Any]]:
    wanted = (email or "").casefold()
    for entry in entries:
        if entry["id"] <= after:
            return

        if endpoint and (entry["endpoint"] or _OTHER) != endpoint:
            continue

        if wanted and wanted not in (entry["email"] or "").casefold():
            continue

        yield entry
