"""The fake server's failure mode: an outage switched on and off by hand."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from pakat_logging.testing._http import Answer, failure_answer
from pakat_logging.testing._judge import check_seconds, format_retry_after

__all__ = [
    "DEFAULT_HOLD",
    "DEFAULT_RETRY_AFTER",
    "FAILURE_MODES",
    "Failure",
]

# "off" answers as usual; the others answer every API request alike.
FAILURE_MODES = ("off", "503", "429", "hold", "drop")

DEFAULT_RETRY_AFTER = 1.0
"""Seconds of ``Retry-After`` sent by the ``"429"`` mode when not given."""

# Longer than the sender's default timeout of 10 s, so that an app left
# with its defaults sees its requests time out.
DEFAULT_HOLD = 15.0
"""Seconds the ``"hold"`` mode holds each answer when not given."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """A failure mode, applied to every API request until switched off.

    Build it with :meth:`parse`, which checks the mode's options.

    Attributes:
        mode: One of :data:`FAILURE_MODES`.
        retry_after: Seconds sent in ``Retry-After`` by the ``"503"`` and
            ``"429"`` modes; ``None`` sends no header.
        delay: Seconds the ``"hold"`` mode waits before each answer.
    """

    mode: str = "off"
    retry_after: float | None = None
    delay: float = 0.0

    @classmethod
    def parse(
        cls,
        mode: str,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> Failure:
        """Check a mode and its options, filling in their defaults.

        Args:
            mode: One of :data:`FAILURE_MODES`.
            retry_after: Seconds of ``Retry-After``, for ``"503"`` and
                ``"429"`` only (default: none for ``"503"``, ``1.0`` for
                ``"429"``).
            delay: Seconds to hold each answer, for ``"hold"`` only
                (default: ``15.0``).

        Returns:
            The failure mode.

        Raises:
            ValueError: The mode is unknown, an option does not belong to
                it, or a number is negative or not finite.
        """
        if mode not in FAILURE_MODES:
            known = ", ".join(FAILURE_MODES)
            raise ValueError(f"mode: {mode!r} is not one of {known}")

        if retry_after is not None and mode not in ("503", "429"):
            raise ValueError(f"retry_after: not an option of mode {mode!r}")

        if delay is not None and mode != "hold":
            raise ValueError(f"delay: not an option of mode {mode!r}")

        if mode == "429" and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER

        if mode == "hold" and delay is None:
            delay = DEFAULT_HOLD

        return cls(
            mode,
            _seconds("retry_after", retry_after),
            _seconds("delay", delay) or 0.0,
        )

    def as_dict(self) -> MappingProxyType[str, Any]:
        """Describe the mode as JSON can carry it.

        Returns:
            ``{"mode": ...}``, with ``retry_after`` or ``delay`` when the
            mode uses them.
        """
        described: dict[str, Any] = {"mode": self.mode}
        if self.retry_after is not None:
            described["retry_after"] = self.retry_after

        if self.mode == "hold":
            described["delay"] = self.delay

        return MappingProxyType(described)

    def apply(self, answer: Answer) -> Answer:
        """Turn the answer a request would get into the one it gets now.

        Args:
            answer: The answer the checks gave the request.

        Returns:
            ``answer`` itself when off, held for :attr:`delay` seconds
            when holding, and otherwise a failure that replaces it.
        """
        if self.mode == "off":
            return answer

        if self.mode == "hold":
            delay = answer.delay + self.delay
            return dataclasses.replace(answer, delay=delay)

        if self.mode == "drop":
            return Answer(None)

        failure = failure_answer(int(self.mode))
        if self.retry_after is None:
            return failure

        header = ("Retry-After", format_retry_after(self.retry_after))

        return dataclasses.replace(failure, headers=(*failure.headers, header))


def _seconds(name: str, value: float | None) -> float | None:
    return None if value is None else check_seconds(name, value)
