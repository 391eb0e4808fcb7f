"""Faults on demand for the fake server: failures mixed by ratio, outages."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from pakat_logging.testing._http import Answer, RecordedRequest, failure_answer
from pakat_logging.testing._judge import check_seconds, format_retry_after

__all__ = [
    "DEFAULT_FAULT_RATIO",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_SLOW_SECONDS",
    "FAULT_KINDS",
    "Faults",
    "Weights",
]

FAULT_KINDS = (
    "status_5xx",
    "retry_after_429",
    "slow",
    "reset_before_read",
    "reset_after_read",
)
"""The ways a request can be made to fail, as :meth:`Faults.inject` names
them."""

DEFAULT_FAULT_RATIO = 0.3
"""The share of requests that fail when no ratio is given."""

DEFAULT_RETRY_AFTER = 1
"""Seconds of ``Retry-After`` sent with an injected ``429``."""

DEFAULT_SLOW_SECONDS = 1.0
"""Seconds a ``"slow"`` answer waits before it goes out."""

OUTAGE = "outage"
"""The counter of requests reset because an outage was on."""

_STATUSES_5XX = (500, 502, 503, 504)

Weights = Sequence[str] | Mapping[str, float]
"""Fault kinds in equal shares, or a mapping of kind to weight."""


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A validated mix of faults: each kind's chance per request."""

    chances: Mapping[str, float]
    slow_seconds: float
    retry_after: str

    @property
    def before_body(self) -> float:
        """The chance that a request is reset before its body is read."""
        return self.chances.get("reset_before_read", 0.0)


class Faults:
    """Decides, request by request, whether and how the server fails.

    A request to a tracker endpoint meets two decisions: one before its
    body is read (is the connection reset now?) and one after (which
    failing answer, if any?). The second is drawn given that the first
    passed, so each kind fails its exact share of all requests. Every
    fault dealt is counted. Other paths, such as a page beside the API,
    never fail.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: _Plan | None = None
        # Faults are not secrets, and a seed must replay the same mix.
        self._random = random.Random()  # noqa: S311
        self._outage_until = 0.0
        self._counts = dict.fromkeys((*FAULT_KINDS, OUTAGE), 0)

    @property
    def counts(self) -> MappingProxyType[str, int]:
        """How many requests met each fault, and ``"outage"``, so far."""
        with self._lock:
            return MappingProxyType(dict(self._counts))

    def inject(
        self,
        ratio: float = DEFAULT_FAULT_RATIO,
        kinds: Weights = FAULT_KINDS,
        *,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        retry_after: float | str = DEFAULT_RETRY_AFTER,
        seed: int | None = None,
    ) -> None:
        """Fail a share of the requests from now on, replacing any mix.

        Args:
            ratio: The share of requests that fail, from 0 to 1 (default:
                ``0.3``).
            kinds: Kinds from :data:`FAULT_KINDS` in equal shares, or a
                mapping of kind to weight (default: all, equally).
            slow_seconds: How late a ``"slow"`` answer goes out (default:
                ``1.0``).
            retry_after: The ``Retry-After`` of a 429, in seconds or as
                the header's text (default: ``1``).
            seed: Seeds the draws (default: ``None``, a fresh one).

        Raises:
            ValueError: A value is out of range or a kind is unknown.
        """
        plan = _Plan(
            _chances(_check_ratio(ratio), kinds),
            check_seconds("slow_seconds", slow_seconds),
            format_retry_after(retry_after),
        )
        with self._lock:
            self._plan = plan
            self._random = random.Random(seed)  # noqa: S311

    def clear(self) -> None:
        """Stop injecting faults and end any outage; keep the counts."""
        with self._lock:
            self._plan = None
            self._outage_until = 0.0

    def outage(self, seconds: float) -> None:
        """Reset every request for the next ``seconds``.

        Args:
            seconds: How long the outage lasts from now; one already on
                is extended, never shortened.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        until = time.monotonic() + check_seconds("seconds", seconds)
        with self._lock:
            self._outage_until = max(self._outage_until, until)

    def reset_early(self, request: RecordedRequest) -> bool:
        """Decide whether to reset ``request`` before its body is read.

        Args:
            request: The request line and headers; the body is not read.

        Returns:
            ``True`` during an outage, and for the ``"reset_before_read"``
            share of requests otherwise.
        """
        if request.endpoint is None:
            return False

        with self._lock:
            if time.monotonic() < self._outage_until:
                self._counts[OUTAGE] += 1
                return True

            plan = self._plan
            if plan is None or self._random.random() >= plan.before_body:
                return False

            self._counts["reset_before_read"] += 1
            return True

    def answer(
        self, request: RecordedRequest, judge: Callable[[], Answer]
    ) -> Answer | None:
        """Pick the failing answer to ``request``, if it gets one.

        Args:
            request: The request, body included; it passed
                :meth:`reset_early`.
            judge: Gives the answer the request deserves; a ``"slow"``
                fault sends that answer late.

        Returns:
            The failing answer, or ``None`` to answer as usual.
        """
        if request.endpoint is None:
            return None

        with self._lock:
            plan = self._plan
            kind = None if plan is None else self._draw(plan)
            if plan is None or kind is None:
                return None

            self._counts[kind] += 1
            status = (
                self._random.choice(_STATUSES_5XX)
                if kind == "status_5xx"
                else 0
            )

        return _failing(kind, status, plan, judge)

    def _draw(self, plan: _Plan) -> str | None:
        # Called with the lock held, after reset_early let the request
        # through: each kind's chance is rescaled to the requests left.
        left = 1.0 - plan.before_body
        point = self._random.random() * left
        for kind, chance in plan.chances.items():
            if kind == "reset_before_read":
                continue
            if point < chance:
                return kind
            point -= chance

        return None


def _failing(
    kind: str, status: int, plan: _Plan, judge: Callable[[], Answer]
) -> Answer:
    if kind == "status_5xx":
        return failure_answer(status)

    if kind == "retry_after_429":
        answer = failure_answer(429)
        header = ("Retry-After", plan.retry_after)
        return dataclasses.replace(answer, headers=(*answer.headers, header))

    if kind == "slow":
        # The call is judged and, when valid, recorded as accepted: the
        # client gave up on an answer, not the server on the call.
        answer = judge()
        delay = answer.delay + plan.slow_seconds
        return dataclasses.replace(answer, delay=delay)

    return Answer(None, reset=True)


def _chances(ratio: float, kinds: Weights) -> Mapping[str, float]:
    if isinstance(kinds, str):
        kinds = (kinds,)

    weights = (
        dict(kinds)
        if isinstance(kinds, Mapping)
        else dict.fromkeys(kinds, 1.0)
    )
    unknown = sorted(set(weights) - set(FAULT_KINDS))
    if unknown:
        known = ", ".join(FAULT_KINDS)
        raise ValueError(f"kinds: {unknown[0]!r} is not one of {known}")

    if not weights or any(
        not (math.isfinite(w) and w >= 0) for w in weights.values()
    ):
        raise ValueError("kinds: give at least one kind, weights >= 0")

    total = sum(weights.values())
    if total <= 0:
        raise ValueError("kinds: the weights must not all be zero")

    return MappingProxyType(
        {kind: ratio * weight / total for kind, weight in weights.items()}
    )


def _check_ratio(ratio: float) -> float:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio: {ratio!r} is not between 0 and 1")

    return float(ratio)
