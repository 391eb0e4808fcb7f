"""Locks that a signal handler or a finalizer can enter again without a hang.

Python runs a signal handler on the main thread between two bytecodes, and
the garbage collector runs finalizers at any allocation: either may call
the sender while its own thread is half-way through a change under one of
the sender's locks. With a plain lock that call waits forever for its own
thread. Here the lock is reentrant, so the call gets in, and a flag set
for the length of the change tells it that it must change nothing.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["Guarded", "Section"]


class Guarded(Protocol):
    """An object whose changes are made under ``lock`` with ``inside`` set."""

    lock: threading.RLock
    inside: bool


class Section:
    """``with Section(guarded) as entered`` holds the lock for the block.

    ``entered`` is ``False`` when this thread was inside already: the
    block must then leave alone what the interrupted change may be
    half-way through. The block must not wait on a condition of the lock:
    the wait would let other threads in while ``inside`` is set.
    """

    __slots__ = ("_entered", "_guarded")

    def __init__(self, guarded: Guarded) -> None:
        self._guarded = guarded
        self._entered = False

    def __enter__(self) -> bool:
        guarded = self._guarded
        guarded.lock.acquire()
        self._entered = not guarded.inside
        guarded.inside = True
        return self._entered

    def __exit__(self, *exc_info: object) -> None:
        guarded = self._guarded
        if self._entered:
            guarded.inside = False
        guarded.lock.release()
