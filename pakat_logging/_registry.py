"""One shared sender per tracker URL and key, for the whole process."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ._config import Options
from ._sender import Sender

__all__ = ["get_sender"]

logger = logging.getLogger(__name__)

_senders: dict[tuple[str, str | None], Sender] = {}
# Reentrant: a signal handler may call in while its thread holds it. Such a
# call for the key being made makes a second sender, which works and is
# closed at exit like any other: better than waiting for itself forever.
_lock = threading.RLock()


def get_sender(
    ma_key: str | None = None, *, url: str | None = None, **options: Any
) -> Sender:
    """Return the process-wide sender for this URL and key.

    The first call for a ``(url, ma_key)`` pair creates the sender with
    the given options; later calls return the same one (options that
    differ from its own are reported at WARNING and otherwise ignored).
    A sender that was closed is replaced by a new one.

    Args:
        ma_key: The marketing-automation key (default: ``PAKAT_MA_KEY``).
        url: The tracker's base URL (default: ``PAKAT_URL``, then the
            Pakat URL).
        **options: The options of :class:`Sender`.

    Returns:
        The shared :class:`Sender`.

    Raises:
        ValueError: An option is malformed.
    """
    wanted = Options.resolve(ma_key, url=url, **options)
    key = (wanted.url, wanted.ma_key)
    with _lock:
        sender = _senders.get(key)
        if sender is None or sender.closed:
            sender = Sender(wanted.ma_key, url=wanted.url, **options)
            _senders[key] = sender
            return sender

    if options and sender.options != wanted:
        logger.warning(
            "The shared sender for %s already runs with other options; "
            "the new ones are ignored",
            wanted.url,
        )

    return sender


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - renewed in the child on purpose
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
