"""Redis spool URLs: which ones are Redis, validation, and the client.

Nothing here imports redis-py until :func:`connect` runs, so a sender
with a file spool, or none, never loads it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import urllib.parse
from typing import Any

__all__ = [
    "DEFAULT_CLAIM_TIMEOUT",
    "DEFAULT_PREFIX",
    "RedisTarget",
    "check_redis_url",
    "connect",
    "is_redis_url",
    "masked",
    "parse_redis_url",
]

DEFAULT_PREFIX = "pakat"
"""The hash tag that every key of the outbox shares: ``{pakat}:calls``."""

DEFAULT_CLAIM_TIMEOUT = 30.0
"""Seconds a consumer may hold a call without renewing it before another
consumer claims it."""

DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0

_KINDS = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}

_DEFAULT_PORTS = {"single": 6379, "sentinel": 26379, "cluster": 6379}

# Query parameters handed to redis-py as they are; any other is refused at
# construction rather than failing later, on the spool thread.
_PASSED_ON = frozenset(
    {
        "client_name",
        "db",
        "health_check_interval",
        "max_connections",
        "protocol",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_timeout",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_cert_reqs",
        "ssl_certfile",
        "ssl_check_hostname",
        "ssl_keyfile",
    }
)

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis spool URL.

    Args:
        url: The URL as given.
        kind: ``"single"``, ``"sentinel"`` or ``"cluster"``.
        tls: Whether connections use TLS.
        hosts: ``(host, port)`` of the server, the sentinels or the
            cluster's seed nodes; empty for a Unix socket.
        path: The URL's path: the database, a sentinel's service name
            and database, or a Unix socket.
        username: The user name, or ``None``.
        password: The password, or ``None``.
        options: Query parameters for redis-py.
        prefix: The hash tag of every key.
        claim_timeout: Seconds before a silent consumer's calls are
            claimed by another.
    """

    url: str
    kind: str
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    path: str
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    options: dict[str, str]
    prefix: str
    claim_timeout: float

    @property
    def display(self) -> str:
        """The URL with its password hidden, safe to log."""
        return masked(self.url)


def is_redis_url(spool: object) -> bool:
    """Return whether ``spool`` names a Redis outbox rather than a file.

    Args:
        spool: The ``spool`` option as given.
    """
    if not isinstance(spool, str):
        return False

    scheme, sep, _ = spool.partition("://")
    return bool(sep) and scheme.lower() in _KINDS


def masked(url: str) -> str:
    """Return ``url`` with the password replaced by ``****``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url

    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:****@{hosts}"


def check_redis_url(url: str) -> str:
    """Check a Redis spool URL and that redis-py is installed.

    Args:
        url: A ``redis://``, ``rediss://``, ``unix://``,
            ``redis+sentinel://`` or ``redis+cluster://`` URL.

    Returns:
        The URL, stripped of spaces at its ends.

    Raises:
        ValueError: The URL is malformed, or redis-py is missing.
    """
    url = url.strip()
    parse_redis_url(url)
    if importlib.util.find_spec("redis") is None:
        raise ValueError(
            f"spool {masked(url)!r} needs redis-py: "
            "pip install 'pakat-logging[redis]'"
        )

    return url


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a Redis spool URL without connecting.

    Args:
        url: The spool URL.

    Returns:
        What :func:`connect` needs.

    Raises:
        ValueError: The URL is malformed; the message hides the password.
    """
    shown = masked(url)
    if any(char in url for char in "\r\n\x00 \t"):
        raise ValueError("spool URL must not contain spaces, CR, LF or NUL")

    scheme, _, rest = url.partition("://")
    if scheme.lower() not in _KINDS:
        raise ValueError(f"spool {shown!r} is not a Redis URL")

    kind, tls = _KINDS[scheme.lower()]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hostlist = netloc.rpartition("@")
    if scheme.lower() == "unix":
        hosts: tuple[tuple[str, int], ...] = ()
        path = "/" + path
    else:
        hosts = _hosts(hostlist, _DEFAULT_PORTS[kind], shown)
    username, password = _userinfo(userinfo)
    options, prefix, claim_timeout = _query(query, shown)
    _check_path(kind, path, hosts, shown)

    return RedisTarget(
        url=url,
        kind=kind,
        tls=tls,
        hosts=hosts,
        path=path,
        username=username,
        password=password,
        options=options,
        prefix=prefix,
        claim_timeout=claim_timeout,
    )


def _hosts(text: str, port: int, shown: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in text.split(","):
        parts = urllib.parse.urlsplit(f"//{item}")
        try:
            number = parts.port or port
        except ValueError:
            number = 0
        if not parts.hostname or not 0 < number < 65536:
            raise ValueError(
                f"spool {shown!r} needs host[:port] items, not {item!r}"
            )
        hosts.append((parts.hostname, number))

    return tuple(hosts)


def _userinfo(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None

    user, sep, password = text.partition(":")
    return (
        urllib.parse.unquote(user) or None,
        urllib.parse.unquote(password) if sep else None,
    )


def _query(text: str, shown: str) -> tuple[dict[str, str], str, float]:
    options = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    prefix = options.pop("prefix", DEFAULT_PREFIX)
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"spool {shown!r}: prefix must be 1 to 64 letters, digits or "
            f"'_.:-', not {prefix!r}"
        )

    timeout = options.pop("claim_timeout", str(DEFAULT_CLAIM_TIMEOUT))
    try:
        claim_timeout = float(timeout)
    except ValueError:
        claim_timeout = math.nan
    if not math.isfinite(claim_timeout) or claim_timeout <= 0:
        raise ValueError(
            f"spool {shown!r}: claim_timeout must be a positive number of "
            f"seconds, not {timeout!r}"
        )

    unknown = sorted(set(options) - _PASSED_ON)
    if unknown:
        raise ValueError(
            f"spool {shown!r}: unknown parameter {unknown[0]!r} (known: "
            f"prefix, claim_timeout, {', '.join(sorted(_PASSED_ON))})"
        )

    return options, prefix, claim_timeout


def _check_path(
    kind: str, path: str, hosts: tuple[tuple[str, int], ...], shown: str
) -> None:
    parts = [part for part in path.split("/") if part]
    if kind == "sentinel":
        service, *db = parts or [""]
        if not service or len(db) > 1 or not all(n.isdigit() for n in db):
            raise ValueError(
                f"spool {shown!r} must name the service: "
                "redis+sentinel://host:26379/SERVICE[/DB]"
            )

    if kind == "cluster" and parts:
        raise ValueError(f"spool {shown!r}: a cluster has one database")

    if kind == "single" and len(hosts) > 1:
        raise ValueError(
            f"spool {shown!r} names several hosts: use redis+cluster:// "
            "or redis+sentinel://"
        )

    database = len(parts) == 1 and parts[0].isdigit()
    if kind == "single" and hosts and parts and not database:
        raise ValueError(
            f"spool {shown!r}: the path must be a database number"
        )


def connect(target: RedisTarget) -> Any:
    """Build a redis-py client for ``target``; connections open lazily.

    Returns:
        A ``redis.Redis``, a Sentinel's master client, or a
        ``redis.cluster.RedisCluster`` (which asks its seed nodes for the
        slots at once).
    """
    import redis  # noqa: PLC0415 - optional, loaded only for a Redis spool
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.retry import Retry  # noqa: PLC0415

    settings: dict[str, Any] = {
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        # One quick retry mends a pooled connection that a restarted server
        # closed; the spool's own loop backs off when Redis is down.
        "retry": Retry(NoBackoff(), 1),
        **_client_options(target),
    }
    if target.kind == "sentinel":
        return _sentinel_client(target, settings)

    if target.kind == "cluster":
        return _cluster_client(target, settings)

    plain = _single_url(target)
    return redis.Redis.from_url(plain, **settings)


def _redis(module: str) -> Any:
    # Parts of redis-py are untyped; they are used as Any, on purpose.
    return importlib.import_module(module)


def _client_options(target: RedisTarget) -> dict[str, Any]:
    # redis-py parses these itself from a URL: give it one with only them.
    query = urllib.parse.urlencode(target.options)
    parse_url = _redis("redis.connection").parse_url
    options: dict[str, Any] = parse_url(f"redis://localhost/?{query}")
    options.pop("host", None)
    if target.username is not None:
        options["username"] = target.username
    if target.password is not None:
        options["password"] = target.password
    if target.tls and target.kind != "single":
        options["ssl"] = True

    return options


def _single_url(target: RedisTarget) -> str:
    scheme, _, rest = target.url.partition("://")
    netloc = rest.partition("/")[0].rpartition("@")[2]
    if scheme.lower() == "unix":
        return f"unix://{target.path}"

    return f"{scheme.lower()}://{netloc}/{target.path.strip('/') or '0'}"


def _sentinel_client(target: RedisTarget, settings: dict[str, Any]) -> Any:
    service, *db = [part for part in target.path.split("/") if part]
    sentinels = _redis("redis.sentinel").Sentinel(
        list(target.hosts),
        sentinel_kwargs={
            key: settings[key]
            for key in ("socket_timeout", "socket_connect_timeout")
        },
        **settings,
    )
    return sentinels.master_for(service, db=int(db[0]) if db else 0)


def _cluster_client(target: RedisTarget, settings: dict[str, Any]) -> Any:
    cluster = _redis("redis.cluster")
    nodes = [cluster.ClusterNode(host, port) for host, port in target.hosts]
    return cluster.RedisCluster(startup_nodes=nodes, **settings)
