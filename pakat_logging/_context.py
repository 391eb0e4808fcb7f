"""The e-mail bound to the current request, thread or task."""

from __future__ import annotations

import contextvars
from types import TracebackType

__all__ = ["bind_email", "bound_email"]

_email: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pakat_logging_email", default=None
)


def bound_email() -> str | None:
    """Return the e-mail bound with :class:`bind_email`, if any."""
    return _email.get()


class bind_email:  # noqa: N801 - reads as a function at the call site
    """Bind the contact's e-mail for tracking calls that carry none.

    It takes effect at once, so it works as a plain setter; used as a
    context manager, it also restores the previous binding on exit. The
    binding lives in a :mod:`contextvars` variable, so threads and asyncio
    tasks each see their own.

    Example::

        with bind_email(request.user.email):
            logger.info("Order placed", extra={"pakat": {"event": "order"}})

    Args:
        email: The contact's e-mail, or ``None`` to unbind. It is checked
            when a call uses it: a malformed address makes that call
            invalid rather than raising here.
    """

    __slots__ = ("_token",)

    def __init__(self, email: str | None) -> None:
        self._token = _email.set(email)

    def __enter__(self) -> bind_email:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.reset()

    def reset(self) -> None:
        """Restore the binding that was in force before this one."""
        _email.reset(self._token)
