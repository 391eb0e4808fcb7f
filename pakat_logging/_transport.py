"""HTTP delivery of one call over a pool of keep-alive connections."""

from __future__ import annotations

import platform
from typing import Any, NamedTuple

import requests
import requests.adapters
import requests.structures
from urllib3.exceptions import NewConnectionError

from ._config import Options
from ._version import __version__

__all__ = ["USER_AGENT", "Answer", "Transport", "never_sent"]

USER_AGENT = (
    f"pakat-logging/{__version__} "
    f"{platform.python_implementation()}/{platform.python_version()} "
    f"requests/{requests.__version__}"
)

_ERROR_TEXT_LIMIT = 300


class Answer(NamedTuple):
    """The tracker's answer to one call."""

    status: int
    retry_after: str | None
    text: str


def never_sent(error: requests.RequestException) -> bool:
    """Return whether ``error`` proves the request never reached a server.

    A connect timeout or a refused connection does; a read timeout or a
    connection dropped after the body went out does not, so a retry after
    those may deliver the call twice.
    """
    if isinstance(error, requests.ConnectTimeout):
        return True

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, NewConnectionError):
            return True
        cause = cause.__context__ or _reason(cause)

    return False


def _reason(error: BaseException) -> BaseException | None:
    # urllib3's MaxRetryError keeps the real error in .reason, and requests
    # keeps the MaxRetryError in args[0] rather than chaining it.
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return reason

    first = error.args[0] if error.args else None
    return first if isinstance(first, BaseException) else None


class Transport:
    """Posts encoded calls to the tracker.

    One ``requests`` adapter holds a pool of up to ``max_workers``
    keep-alive connections; requests are prepared by hand and sent through
    the adapter, so proxy and certificate settings are read from the
    environment once instead of on every call.

    Args:
        options: The sender's options.
    """

    def __init__(self, options: Options) -> None:
        self._base = options.url
        self._timeout = (options.timeout, options.timeout)
        self._headers = {
            "ma-key": options.ma_key or "",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._adapter = requests.adapters.HTTPAdapter(
            pool_connections=1,
            pool_maxsize=options.max_workers,
            max_retries=0,
        )
        self._settings: dict[str, Any] | None = None

    def _environment(self) -> dict[str, Any]:
        # Resolved on first use, not at construction, which does no I/O;
        # proxies and REQUESTS_CA_BUNDLE are honoured as requests would.
        settings = self._settings
        if settings is None:
            with requests.Session() as session:
                settings = dict(
                    session.merge_environment_settings(
                        self._base, {}, None, True, None
                    )
                )
            self._settings = settings

        return settings

    def send(self, endpoint: str, payload: bytes) -> Answer:
        """Post ``payload`` to ``endpoint`` and return the answer.

        Args:
            endpoint: The tracker endpoint, such as ``"trackEvent"``.
            payload: The encoded JSON body.

        Returns:
            The status, the ``Retry-After`` header and a short text.

        Raises:
            requests.RequestException: The request failed before an answer
                came back (connection, timeout or TLS error).
        """
        settings = self._environment()
        response = self._adapter.send(
            self._prepare(endpoint, payload),
            timeout=self._timeout,
            verify=settings["verify"],
            proxies=settings["proxies"],
            cert=settings["cert"],
        )
        try:
            text = "" if response.status_code < 300 else _excerpt(response)
            return Answer(
                response.status_code, response.headers.get("Retry-After"), text
            )
        finally:
            response.close()

    def _prepare(
        self, endpoint: str, payload: bytes
    ) -> requests.PreparedRequest:
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = f"{self._base}/{endpoint}"
        request.headers = requests.structures.CaseInsensitiveDict(
            self._headers
        )
        request.headers["Content-Length"] = str(len(payload))
        request.body = payload
        request.hooks = {"response": []}

        return request

    def close(self) -> None:
        """Close the pooled connections."""
        self._adapter.close()

    def __repr__(self) -> str:
        return f"<Transport {self._base}>"


def _excerpt(response: requests.Response) -> str:
    text = response.text.strip().replace("\r", " ").replace("\n", " ")
    return text[:_ERROR_TEXT_LIMIT] or response.reason or ""
