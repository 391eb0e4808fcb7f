"""Django: bind the signed-in user's e-mail for each request.

Add ``"pakat_logging.django.PakatEmailMiddleware"`` to ``MIDDLEWARE``,
after ``AuthenticationMiddleware``; tracking calls logged while the request
runs then carry the user's e-mail without naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._context import bind_email
from ._users import email_of

__all__ = ["PakatEmailMiddleware"]


class PakatEmailMiddleware:
    """Django middleware that binds ``request.user.email`` per request.

    It works in sync and async stacks alike. Subclass it and override
    :meth:`get_email` to take the e-mail from somewhere else.

    Args:
        get_response: The next middleware or view, as Django passes it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        """Wrap ``get_response``, sync or async."""
        # Imported here: Django is the user's dependency, never ours.
        from asgiref.sync import (  # noqa: PLC0415
            iscoroutinefunction,
            markcoroutinefunction,
            sync_to_async,
        )

        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
            # request.user loads the user from the database on first use,
            # which Django refuses on the event loop: get_email runs in
            # Django's thread for sync code instead.
            self._get_email_async = sync_to_async(self.get_email)

    def get_email(self, request: Any) -> str | None:
        """Return the e-mail to bind for ``request``, or ``None``.

        Args:
            request: The ``HttpRequest``.

        Returns:
            The signed-in user's e-mail (default behaviour), or ``None``.
        """
        return email_of(getattr(request, "user", None))

    def __call__(self, request: Any) -> Any:
        """Run the rest of the stack with the e-mail bound."""
        if self._async:
            return self._acall(request)

        with bind_email(self.get_email(request)):
            return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        email = await self._get_email_async(request)
        with bind_email(email):
            response: Awaitable[Any] = self.get_response(request)
            return await response
