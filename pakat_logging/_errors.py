"""The library's errors: one root, subclassed only where callers catch."""

from __future__ import annotations

__all__ = ["InvalidCall", "PakatError"]


class PakatError(Exception):
    """Base class of every error raised by pakat-logging."""


class InvalidCall(PakatError, ValueError):  # noqa: N818 - public name
    """A tracker call whose fields break the tracker API's rules.

    The message names the field and the rule it broke, for example
    ``"properties: the key 'email' is reserved for trackEvent"``.
    """
