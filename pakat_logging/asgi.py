"""ASGI (FastAPI, Starlette): bind the signed-in user's e-mail per request.

Wrap the app: ``app.add_middleware(PakatEmailMiddleware)`` in FastAPI or
Starlette (after the authentication middleware), or
``PakatEmailMiddleware(app, get_email=...)`` for any ASGI app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._context import bind_email
from ._users import email_of

__all__ = ["PakatEmailMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def default_email(scope: Scope) -> str | None:
    """Return the e-mail of ``scope["user"]``, as Starlette's auth sets it."""
    return email_of(scope.get("user"))


class PakatEmailMiddleware:
    """Pure ASGI middleware that binds an e-mail for each request.

    Each request runs in its own task, with its own copy of the context,
    so concurrent requests never see each other's binding.

    Args:
        app: The ASGI application to wrap.
        get_email: Returns the e-mail for a request's scope, or ``None``
            (default: :func:`default_email`).
    """

    def __init__(
        self,
        app: ASGIApp,
        get_email: Callable[[Scope], str | None] | None = None,
    ) -> None:
        """Wrap ``app``."""
        self.app = app
        self.get_email = get_email or default_email

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run the request with the e-mail bound."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        with bind_email(self.get_email(scope)):
            await self.app(scope, receive, send)
