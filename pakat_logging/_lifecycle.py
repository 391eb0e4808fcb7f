"""Process events every sender must follow: interpreter exit and fork."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Protocol

__all__ = ["Managed", "exiting", "track"]


class Managed(Protocol):
    """What a sender offers to the exit and fork hooks."""

    @property
    def shutdown_timeout(self) -> float:
        """Seconds its delivery may take at exit."""

    def _close_at_exit(self, timeout: float) -> None: ...

    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[Managed] = weakref.WeakSet()
_lock = threading.Lock()
_exiting = threading.Event()


def track(sender: Managed) -> None:
    """Close ``sender`` at exit and renew it in a forked child."""
    with _lock:
        _live.add(sender)


def exiting() -> bool:
    """Return whether the interpreter is running its exit hooks."""
    return _exiting.is_set()


def _at_exit() -> None:
    # One budget for all senders, as long as the longest of theirs: exit
    # must stay bounded however many senders an application made.
    _exiting.set()
    with _lock:
        senders = list(_live)
    if not senders:
        return

    deadline = time.monotonic() + max(s.shutdown_timeout for s in senders)
    for sender in senders:
        sender._close_at_exit(max(deadline - time.monotonic(), 0.0))


def _after_fork_in_child() -> None:
    # The parent's locks may have been held by threads that do not exist
    # here; everything is built anew before any sender is touched.
    global _lock  # noqa: PLW0603 - renewed in the child on purpose
    _lock = threading.Lock()
    for sender in list(_live):
        sender._after_fork()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
