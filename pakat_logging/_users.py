"""What the web-framework helpers share: finding a user's e-mail."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["email_of"]


def email_of(user: object) -> str | None:
    """Return the e-mail of a signed-in user object, or ``None``.

    Works with Django's and Flask-Login's users (``is_authenticated`` and
    ``email``), Starlette's ``request.user``, and plain mappings with an
    ``"email"`` key.

    Args:
        user: The framework's user, or ``None``.

    Returns:
        The e-mail, or ``None`` for no user, an anonymous one, or a user
        without an e-mail.
    """
    if user is None or getattr(user, "is_authenticated", True) is False:
        return None

    if isinstance(user, Mapping):
        email = user.get("email")
    else:
        email = getattr(user, "email", None)

    return email if isinstance(email, str) and email else None
