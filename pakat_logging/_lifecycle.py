"""Process events every sender must follow: interpreter exit and fork."""

from __future__ import annotations

import atexit
import mmap
import os
import sys
import threading
import time
import weakref
from typing import Protocol

__all__ = ["HomeFlag", "Managed", "exiting", "home_flag", "track"]


class Managed(Protocol):
    """What a sender offers to the exit and fork hooks."""

    @property
    def shutdown_timeout(self) -> float:
        """Seconds its delivery may take at exit."""

    def _close_at_exit(self, timeout: float) -> None: ...

    def _after_fork(self) -> None: ...


class HomeFlag(Protocol):
    """True at index 0 in the process that made it, false in its forks."""

    def __getitem__(self, index: int, /) -> int: ...


# From Linux's <asm-generic/mman-common.h> (Linux 4.14 and later): the
# mmap module of Python 3.11 does not name it.
_MADV_WIPEONFORK = 18


def home_flag() -> HomeFlag:
    """Return a flag that tells this process from any child forked from it.

    A sender checks on every submit that it still runs in the process
    that made it, because a child forked without the fork hooks (uWSGI
    forks its workers so) must renew it before queueing. ``os.getpid()``
    is a system call: here it was 7 % of what a marked log line costs the
    application's thread. On Linux the flag is instead one byte of a
    private page that the kernel zeroes in every child of this process,
    however it forked: reading it costs no system call. Elsewhere, or when
    the kernel refuses the advice, the flag compares pids.
    """
    if sys.platform == "linux":
        try:
            page = mmap.mmap(
                -1, 1, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
            )
            page.madvise(_MADV_WIPEONFORK)
        except (AttributeError, OSError, ValueError):
            pass
        else:
            page[0] = 1
            return page

    return _PidFlag()


class _PidFlag:
    """The portable :class:`HomeFlag`: a pid compared on every read."""

    __slots__ = ("_pid",)

    def __init__(self) -> None:
        self._pid = os.getpid()

    def __getitem__(self, index: int, /) -> bool:
        return os.getpid() == self._pid


_live: weakref.WeakSet[Managed] = weakref.WeakSet()
# Reentrant: a signal handler may call in while its thread holds it.
_lock = threading.RLock()
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
    _lock = threading.RLock()
    for sender in list(_live):
        sender._after_fork()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
