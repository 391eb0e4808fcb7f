"""Flask: bind the signed-in user's e-mail for each request.

Call ``pakat_logging.flask.init_app(app)``; tracking calls logged while a
request runs then carry the user's e-mail without naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._context import bind_lookup
from ._users import email_of

__all__ = ["init_app"]

_BINDING = "_pakat_logging_binding"


def default_email() -> str | None:
    """Return the e-mail of ``flask.g.user``, else Flask-Login's user."""
    from flask import g  # noqa: PLC0415 - Flask is the user's dependency

    user = g.get("user")
    login = sys.modules.get("flask_login")
    if user is None and login is not None:
        user = login.current_user

    return email_of(user)


def init_app(
    app: Any, get_email: Callable[[], str | None] | None = None
) -> None:
    """Bind an e-mail for every request of ``app``.

    The e-mail is looked up when a marked line needs it, so the app's
    hooks that load the user may run before or after this one.

    Args:
        app: The Flask application.
        get_email: Returns the e-mail for the current request, or
            ``None`` (default: :func:`default_email`, which reads
            ``flask.g.user`` or Flask-Login's ``current_user``).
    """
    from flask import g  # noqa: PLC0415 - Flask is the user's dependency

    find = get_email or default_email

    # The user is looked up when a call needs the e-mail, not here: a
    # before_request hook of the app that sets g.user may run after this
    # one, in the order the hooks were registered.
    def bind() -> None:
        setattr(g, _BINDING, bind_lookup(find))

    def unbind(error: BaseException | None) -> None:
        binding = g.pop(_BINDING, None)
        if binding is not None:
            binding.reset()

    app.before_request(bind)
    app.teardown_request(unbind)
