"""What an answer means for a call: delivered, retried later, or refused."""

from __future__ import annotations

import enum
import random
import re

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "MAX_RETRY_AFTER",
    "Verdict",
    "backoff",
    "classify",
    "parse_retry_after",
]

BACKOFF_BASE = 0.5
"""Seconds of the first retry's upper bound; it doubles on each attempt."""

BACKOFF_CAP = 60.0
"""Seconds that no single backoff exceeds."""

MAX_RETRY_AFTER = 600.0
"""Seconds of the longest ``Retry-After`` that is obeyed as given."""

_TRANSIENT = frozenset({408, 425, 429})

# urllib3 already parses both Retry-After forms (delta-seconds and an
# HTTP date) the way RFC 9110 says; one shared instance is stateless here.
_RETRY_AFTER_PARSER = Retry(total=0)

# RFC 9110 has whole seconds only, and urllib3 refuses "1.5"; but a server
# that asks for a fraction of a second (as FakePakatServer may) still asks
# for a wait, and ignoring it would retry sooner than it wants.
_FRACTION = re.compile(r"[0-9]{1,9}\.[0-9]{1,9}")


class Verdict(enum.Enum):
    """The meaning of an HTTP status for the call that got it."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"
    UNAUTHORIZED = "unauthorized"


def classify(status: int) -> Verdict:
    """Return what ``status`` means for the call that got it.

    Args:
        status: The HTTP status code of the tracker's answer.

    Returns:
        ``DELIVERED`` for any 2xx; ``RETRY`` for 408, 425, 429 and 5xx;
        ``UNAUTHORIZED`` for 401 and 403; ``REFUSED`` for the rest, which
        retrying cannot fix.
    """
    if 200 <= status < 300:
        return Verdict.DELIVERED

    if status in _TRANSIENT or status >= 500:
        return Verdict.RETRY

    if status in (401, 403):
        return Verdict.UNAUTHORIZED

    return Verdict.REFUSED


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Return the delay before retry number ``attempt``, with full jitter.

    Args:
        attempt: 1 for the first retry, 2 for the second, and so on.
        rng: Source of randomness (default: the ``random`` module's).

    Returns:
        Seconds, drawn uniformly between zero and ``BACKOFF_BASE *
        2 ** (attempt - 1)``, capped at ``BACKOFF_CAP``.
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt - 1, 32))
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait.

    Args:
        value: The header's value, or ``None`` when it is absent.

    Returns:
        Seconds (at most ``MAX_RETRY_AFTER``), or ``None`` when the header
        is absent or malformed.
    """
    if not value:
        return None

    value = value.strip()
    if _FRACTION.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER)

    try:
        seconds = _RETRY_AFTER_PARSER.parse_retry_after(value)
    except (InvalidHeader, ValueError, OverflowError):
        return None

    return min(max(float(seconds), 0.0), MAX_RETRY_AFTER)
