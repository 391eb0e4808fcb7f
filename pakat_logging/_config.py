"""Sender options: defaults, environment variables and validation."""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import math
import os
import urllib.parse

from ._redis_url import check_redis_url, is_redis_url
from ._spool import check_spool_path

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_SIZE",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SPOOL_MAX_AGE",
    "DEFAULT_SPOOL_MAX_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "OPTION_NAMES",
    "Options",
    "mask",
]

DEFAULT_URL = "https://in-automate.pakat.net/api/v2"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE_SIZE = 10_000
DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_WORKERS = 8
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_MAX_AGE = 600.0
DEFAULT_SPOOL_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_SPOOL_MAX_SIZE = 1_000_000

KEY_VARIABLE = "PAKAT_MA_KEY"
URL_VARIABLE = "PAKAT_URL"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def mask(key: str | None) -> str:
    """Return a form of ``key`` safe to show: at most its last four chars.

    Args:
        key: An ma-key, or ``None``.

    Returns:
        ``"<none>"``, or ``"..."`` followed by the last four characters
        when the key is long enough for that to reveal little.
    """
    if not key:
        return "<none>"

    return "..." + key[-4:] if len(key) >= 12 else "..."


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False

    # Python 3.13 counts an IPv4-mapped address (::ffff:127.0.0.1) as
    # loopback and earlier versions do not: it is refused on all of them,
    # so that a URL passes or fails whatever the Python.
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None
    ):
        return False

    return address.is_loopback


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        kind = type(value).__qualname__
        raise ValueError(f"{name} must be a string, not {kind}")

    if any(char in value for char in "\r\n\x00"):
        # The value itself is never quoted: it may be the key.
        raise ValueError(f"{name} must not contain CR, LF or NUL")

    return value


def _check_key(key: object) -> str | None:
    if key is None or key == "":
        return None

    key = _check_text("ma_key", key)
    if key != key.strip() or not key.isprintable():
        raise ValueError(
            "ma_key must not contain spaces at its ends or control characters"
        )

    if not key.isascii():
        # HTTP carries header values as bytes; a key beyond ASCII is a
        # copy-and-paste accident that would fail on every call instead.
        raise ValueError("ma_key must be ASCII text: it is sent as a header")

    return key


def _check_url(url: object, allow_http: bool) -> str:
    url = _check_text("url", url).strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            f"url must be an http(s) URL with a host, not {url!r}"
        )

    if parts.username or parts.password:
        raise ValueError("url must not carry a user name or password")

    if parts.query or parts.fragment or any(c.isspace() for c in url):
        raise ValueError(
            f"url must have no query, fragment or spaces: {url!r}"
        )

    if parts.scheme == "http" and not (
        allow_http or _is_loopback(parts.hostname)
    ):
        raise ValueError(
            f"url {url!r} must use https unless its host is loopback "
            "(pass allow_http=True to send in clear text anyway)"
        )

    return url.rstrip("/")


def _number(name: str, value: object, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        kind = type(value).__qualname__
        raise ValueError(f"{name} must be a number, not {kind}")

    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None

    if not math.isfinite(number) or number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")

    return number


def _count(name: str, value: object) -> int:
    number = _number(name, value, minimum=1)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, not {value!r}")

    return int(number)


def _check_spool(spool: object) -> str:
    if is_redis_url(spool):
        return check_redis_url(str(spool))

    if not isinstance(spool, (str, os.PathLike)) or not os.fspath(spool):
        raise ValueError(f"spool must be a file path, not {spool!r}")

    return check_spool_path(os.fspath(spool))


def _default_age(spool: object) -> float:
    # Without a spool a call lives in memory: minutes. With one, an outage
    # of any length is survived, within reason.
    return DEFAULT_MAX_AGE if spool is None else DEFAULT_SPOOL_MAX_AGE


def _check_deliver(deliver: object, spool: object) -> bool:
    # Without a shared outbox, calls that this process does not deliver
    # would wait for nobody.
    if not deliver and not is_redis_url(spool):
        raise ValueError(
            "deliver=False needs a Redis spool (spool='redis://...'), "
            "where a relay process delivers the calls"
        )

    return bool(deliver)


@dataclasses.dataclass(frozen=True)
class Options:
    """A sender's validated configuration.

    Args:
        url: The tracker's base URL.
        ma_key: The marketing-automation key, or ``None`` when missing.
        timeout: Seconds to connect, and again to read an answer.
        max_queue_size: Calls waiting at most.
        max_queue_bytes: Encoded bytes waiting at most.
        max_workers: Calls in flight at once at most.
        rate_limit: Calls per second at most, or ``None``.
        shutdown_timeout: Seconds that delivery may take at exit.
        spool: Path of the disk outbox, a Redis URL for the outbox
            shared by a fleet, or ``None``.
        spool_max_size: Calls the spool holds at most.
        max_attempts: Tries of one call before it fails (without a spool).
        max_age: Seconds after submission when a call stops being retried.
        allow_http: Whether ``http://`` may reach a host beyond loopback.
        deliver: Whether this process delivers calls, or only adds them to
            a Redis spool for relay processes.
    """

    url: str
    ma_key: str | None = dataclasses.field(repr=False)
    timeout: float
    max_queue_size: int
    max_queue_bytes: int
    max_workers: int
    rate_limit: float | None
    shutdown_timeout: float
    # A Redis URL may carry a password.
    spool: str | None = dataclasses.field(repr=False)
    spool_max_size: int
    max_attempts: int
    max_age: float
    allow_http: bool
    deliver: bool = True

    @classmethod
    def resolve(
        cls,
        ma_key: str | None = None,
        *,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_workers: int = DEFAULT_MAX_WORKERS,
        rate_limit: float | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        spool: str | os.PathLike[str] | None = None,
        spool_max_size: int = DEFAULT_SPOOL_MAX_SIZE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_age: float | None = None,
        allow_http: bool = False,
        deliver: bool = True,
        **unknown: object,
    ) -> Options:
        """Validate options, filling the key and URL from the environment.

        Raises:
            ValueError: An option is unknown, or a value is malformed; the
                message names the option and the rule, never the key.
        """
        if unknown:
            # A ValueError, like every other configuration mistake, so that
            # dictConfig names the handler that has the typo.
            name = min(unknown)
            raise ValueError(
                f"{name!r} is not an option of the sender; the options are "
                f"{', '.join(sorted(OPTION_NAMES))}"
            )

        if ma_key is None:
            ma_key = os.environ.get(KEY_VARIABLE)
        if url is None:
            url = os.environ.get(URL_VARIABLE) or DEFAULT_URL

        return cls(
            url=_check_url(url, bool(allow_http)),
            ma_key=_check_key(ma_key),
            timeout=_number("timeout", timeout, minimum=0.001),
            max_queue_size=_count("max_queue_size", max_queue_size),
            max_queue_bytes=_count("max_queue_bytes", max_queue_bytes),
            max_workers=_count("max_workers", max_workers),
            rate_limit=None
            if rate_limit is None
            else _number("rate_limit", rate_limit, minimum=0.001),
            shutdown_timeout=_number(
                "shutdown_timeout", shutdown_timeout, minimum=0
            ),
            spool=None if spool is None else _check_spool(spool),
            spool_max_size=_count("spool_max_size", spool_max_size),
            max_attempts=_count("max_attempts", max_attempts),
            max_age=_number(
                "max_age",
                _default_age(spool) if max_age is None else max_age,
                minimum=0,
            ),
            allow_http=bool(allow_http),
            deliver=_check_deliver(deliver, spool),
        )


OPTION_NAMES = frozenset(
    name
    for name in inspect.signature(Options.resolve).parameters
    if name not in ("ma_key", "url", "unknown")
)
"""The names of the sender's options, as every integration takes them."""
