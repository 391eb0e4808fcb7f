"""The inspector: a live page and a JSON API beside the fake tracker."""

from __future__ import annotations

import functools
import importlib.resources
import ipaddress
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pakat_logging._config import mask
from pakat_logging.testing._http import Answer, RecordedRequest, error_answer
from pakat_logging.testing._inspector_log import DEFAULT_LOG_SIZE, CallLog

if TYPE_CHECKING:
    from pakat_logging.testing._server import FakePakatServer

__all__ = ["INSPECTOR_PREFIX", "Inspector"]

logger = logging.getLogger(__name__)

# The API lives under /api/v2/, so no tracker path can start with this.
INSPECTOR_PREFIX = "/_inspector/"

_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "inspector.css": ("inspector.css", "text/css; charset=utf-8"),
    "inspector.js": ("inspector.js", "text/javascript; charset=utf-8"),
}

# The page loads nothing but its own files and talks only to its origin.
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_COMMON = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)

_FAILURE_FIELDS = frozenset({"mode", "retry_after", "delay"})

_Route = Callable[["Inspector", RecordedRequest], Answer]


class Inspector:
    """Serves the inspector's page and JSON API for one fake server.

    Args:
        server: The fake server it shows and whose failure mode it sets.
        ma_key: The key the server accepts, shown masked; ``None`` for
            any key.
        size: How many requests to keep (default: ``1000``).

    Attributes:
        log: The requests the server answered, as the page lists them.
    """

    def __init__(
        self,
        server: FakePakatServer,
        ma_key: str | None,
        size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        self._server = server
        self._key_hint = "any" if ma_key is None else mask(ma_key)
        self.log = CallLog(size)

    @staticmethod
    def owns(request: RecordedRequest) -> bool:
        """Tell whether a request is for the inspector, not the tracker.

        Args:
            request: The request as received.

        Returns:
            ``True`` for paths under ``/_inspector/`` and for
            ``/_inspector`` itself.
        """
        path = _path(request)

        return path.startswith(INSPECTOR_PREFIX) or path == "/_inspector"

    def answer(self, request: RecordedRequest) -> Answer:
        """Answer a request for the page, one of its files or the API.

        Args:
            request: A request that :meth:`owns`.

        Returns:
            The answer; errors carry the tracker's JSON error body.
        """
        if not _addressed_by_ip_or_localhost(request):
            message = "Host: use an IP address or localhost"
            return error_answer(421, "misdirected_request", message)

        path = _path(request)
        if path == "/_inspector":
            return Answer(308, (("Location", INSPECTOR_PREFIX),))

        name = path.removeprefix(INSPECTOR_PREFIX)
        if name in _ASSETS:
            return _asset(request, *_ASSETS[name])

        return self._api(request, name)

    def _api(self, request: RecordedRequest, name: str) -> Answer:
        routes = _ROUTES.get(name)
        if routes is None:
            message = f"path: {_path(request)} is not an inspector path"
            return error_answer(404, "not_found", message)

        route = routes.get(
            "GET" if request.method == "HEAD" else request.method
        )
        if route is None:
            allowed = ", ".join(routes)
            message = f"method: {request.method} is not allowed, use {allowed}"
            return error_answer(
                405, "method_not_allowed", message, ("Allow", allowed)
            )

        return route(self, request)

    def _calls(self, request: RecordedRequest) -> Answer:
        try:
            selection = _selection(request)
        except ValueError as error:
            return error_answer(400, "invalid_parameter", str(error))

        answer = self.log.query(**selection)
        answer["failure"] = dict(self._server.failure)
        answer["ma_key"] = self._key_hint

        return _json(200, answer)

    def _get_failure(self, request: RecordedRequest) -> Answer:
        return _json(200, dict(self._server.failure))

    def _set_failure(self, request: RecordedRequest) -> Answer:
        refusal = _check_json_post(request)
        if refusal is not None:
            return refusal

        body = request.body
        unknown = sorted(set(body) - _FAILURE_FIELDS)
        if unknown:
            message = f"{unknown[0]}: is not a failure mode option"
            return error_answer(400, "invalid_parameter", message)

        try:
            self._server.set_failure(
                body.get("mode"),
                retry_after=body.get("retry_after"),
                delay=body.get("delay"),
            )
        except ValueError as error:
            return error_answer(400, "invalid_parameter", str(error))

        return _json(200, dict(self._server.failure))

    def _clear(self, request: RecordedRequest) -> Answer:
        refusal = _check_json_post(request)
        if refusal is not None:
            return refusal

        return _json(200, {"cleared": self.log.clear()})


_ROUTES: Mapping[str, Mapping[str, _Route]] = {
    "api/calls": {"GET": Inspector._calls},
    "api/failure": {
        "GET": Inspector._get_failure,
        "POST": Inspector._set_failure,
    },
    "api/clear": {"POST": Inspector._clear},
}


def _path(request: RecordedRequest) -> str:
    return urllib.parse.urlsplit(request.path).path


def _addressed_by_ip_or_localhost(request: RecordedRequest) -> bool:
    # A hostile web page can point a name it owns at 127.0.0.1 (DNS
    # rebinding) and read this origin; its requests then carry that name.
    host = request.headers.get("host")
    if host is None:
        return True

    try:
        name = urllib.parse.urlsplit(f"//{host}").hostname or ""
        ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or name.endswith(".localhost")

    return True


def _check_json_post(request: RecordedRequest) -> Answer | None:
    # Browsers send a cross-site form or text POST without asking first,
    # but never a JSON one: requiring JSON keeps other sites out.
    media_type = request.headers.get("content-type", "").split(";")[0]
    if media_type.strip().lower() != "application/json":
        message = "Content-Type: must be application/json"
        return error_answer(415, "unsupported_media_type", message)

    if not isinstance(request.body, dict):
        message = "body: must be a JSON object"
        return error_answer(400, "invalid_parameter", message)

    return None


def _selection(request: RecordedRequest) -> dict[str, Any]:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)

    def last(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    return {
        "after": _count("after", last("after")) or 0,
        "limit": _count("limit", last("limit")),
        "endpoint": last("endpoint") or None,
        "email": last("email") or None,
    }


def _count(name: str, text: str | None) -> int | None:
    if text is None:
        return None

    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name}: {text!r} is not a whole number >= 0")

    return int(text)


def _json(status: int, data: Any) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode()
    headers = (("Content-Type", "application/json; charset=utf-8"),)

    return Answer(status, (*headers, *_COMMON), body)


def _asset(request: RecordedRequest, name: str, content_type: str) -> Answer:
    if request.method not in ("GET", "HEAD"):
        message = f"method: {request.method} is not allowed, use GET"
        return error_answer(
            405, "method_not_allowed", message, ("Allow", "GET, HEAD")
        )

    headers = (
        ("Content-Type", content_type),
        ("Content-Security-Policy", _POLICY),
        *_COMMON,
    )

    return Answer(200, headers, _read_asset(name))


@functools.cache
def _read_asset(name: str) -> bytes:
    folder = importlib.resources.files("pakat_logging.testing") / "inspector"

    return (folder / name).read_bytes()
