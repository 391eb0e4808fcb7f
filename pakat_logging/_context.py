"""The e-mail bound to the current request, thread or task."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import TracebackType

__all__ = ["bind_email", "bind_lookup", "bound_email"]


class _Lookup:
    """Finds the e-mail when a call needs one (see :class:`bind_lookup`)."""

    __slots__ = ("find",)

    def __init__(self, find: Callable[[], str | None]) -> None:
        self.find = find


_email: contextvars.ContextVar[str | _Lookup | None] = contextvars.ContextVar(
    "pakat_logging_email", default=None
)


def bound_email() -> str | None:
    """Return the e-mail bound with :class:`bind_email`, if any."""
    email = _email.get()
    if not isinstance(email, _Lookup):
        return email

    try:
        return email.find()
    except Exception:
        # The app's own look-up failed: the call then has no e-mail and
        # is reported so, instead of the logging call raising.
        return None


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


class bind_lookup(bind_email):  # noqa: N801 - as bind_email
    """Bind a function that finds the e-mail each time a call needs one.

    The web integrations bind this at the start of a request: the user is
    then looked up when a marked line is logged, after every hook of the
    app has run, and only if a call needs the e-mail.

    Args:
        find: Returns the contact's e-mail, or ``None``. An exception it
            raises counts as ``None``.
    """

    __slots__ = ()

    def __init__(self, find: Callable[[], str | None]) -> None:
        self._token = _email.set(_Lookup(find))
