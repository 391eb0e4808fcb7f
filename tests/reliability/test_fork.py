"""Fork: children of a busy, multi-threaded parent never deadlock."""

from __future__ import annotations

import collections
import faulthandler
import logging
import os
import select
import signal
import threading
import time

import pytest

from pakat_logging import PakatHandler, Sender, _lifecycle, _registry
from pakat_logging.testing import FakePakatServer

from ._support import (
    KEY,
    RELIABILITY,
    event_ids,
    marked_logger,
    size,
    wait_for_room,
)

pytestmark = [
    *RELIABILITY,
    pytest.mark.skipif(
        not hasattr(os, "pidfd_open"), reason="needs os.fork and pidfd_open"
    ),
    # Python 3.12 warns of any fork in a process with threads: that
    # process is exactly what this test is about.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

CHILDREN = size(10, 50)
WAVE = 5
CHILD_CALLS = 20
PARENT_THREADS = 3
QUEUE = 5_000

# A child that has not finished by then is taken as deadlocked; it dumps
# its threads' stacks to stderr first.
CHILD_TIMEOUT = 30.0


def _record(logger: logging.Logger, event_id: str, contact: int) -> None:
    logger.info(
        "Order placed",
        extra={
            "pakat": {"event": "order", "eventdata": {"id": event_id}},
            "email": f"user{contact}@example.com",
        },
    )


class _Parent:
    """The parent's busy life: threads that log and a thread that locks."""

    def __init__(self, sender: Sender, server: FakePakatServer) -> None:
        self.sender = sender
        self.server = server
        self.handler = PakatHandler(sender=sender)
        self.logger = marked_logger("reliability.fork", self.handler)
        self.stop = threading.Event()
        self.logged: list[str] = []
        self.grabs = 0
        self.threads = [
            threading.Thread(target=self._log, args=(n,), name=f"log-{n}")
            for n in range(PARENT_THREADS)
        ]
        self.threads.append(threading.Thread(target=self._grab, name="grab"))

    def __enter__(self) -> _Parent:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _log(self, number: int) -> None:
        count = 0
        while not self.stop.is_set():
            if count % 20 == 0:
                wait_for_room(self.sender, self.server, QUEUE // 2)
            event_id = f"p{number}-{count}"
            _record(self.logger, event_id, count % 50)
            self.logged.append(event_id)
            count += 1

    def _grab(self) -> None:
        outbox, reporter = self.sender._outbox, self.sender._reporter
        while not self.stop.is_set():
            for lock in (
                outbox.lock,
                reporter.lock,
                self.sender._delivery._pacer._lock,
                _lifecycle._lock,
                _registry._lock,
                self.handler.lock,
            ):
                with lock:
                    self.grabs += 1
                    # Lets the GIL go with the lock held, so that a fork
                    # often happens right then.
                    os.sched_yield()


def _child(parent: _Parent, number: int) -> None:  # pragma: no cover
    """Log this child's own calls, deliver them, and exit; never return."""
    code = 3
    try:
        faulthandler.dump_traceback_later(CHILD_TIMEOUT - 5, exit=True)
        for n in range(CHILD_CALLS):
            _record(parent.logger, f"c{number}-{n}", n)
        flushed = parent.sender.flush(CHILD_TIMEOUT - 10)
        delivered = parent.sender.stats()["delivered"]
        code = 0 if flushed and CHILD_CALLS == delivered else 1
    finally:
        os._exit(code)


def _wait_child(pid: int) -> tuple[int | None, float]:
    """Wait for a child within CHILD_TIMEOUT; kill it if it hangs."""
    started = time.monotonic()
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], CHILD_TIMEOUT)
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status) if ready else None

    return code, time.monotonic() - started


def _fork_children(parent: _Parent) -> tuple[dict[int, int | None], float]:
    """Fork CHILDREN in waves; return their exit codes and the slowest."""
    codes: dict[int, int | None] = {}
    slowest = 0.0
    for wave in range(0, CHILDREN, WAVE):
        pids = {}
        for number in range(wave, min(wave + WAVE, CHILDREN)):
            pid = os.fork()
            if pid == 0:  # pragma: no cover
                _child(parent, number)
            pids[number] = pid
        for number, pid in pids.items():
            codes[number], seconds = _wait_child(pid)
            slowest = max(slowest, seconds)

    return codes, slowest


class TestFork:
    def test_children_deliver_their_own_calls(self, figure):
        """Forks under load and lock traffic: no hang, no call mixed up."""
        with FakePakatServer(KEY) as server:
            sender = Sender(KEY, url=server.url, max_queue_size=QUEUE)
            with _Parent(sender, server) as parent:
                before = sender.stats()["delivered"]
                codes, slowest = _fork_children(parent)
                during = sender.stats()["delivered"] - before
            flushed = sender.flush(60)
            stats = sender.stats()
            sender.close(1.0)
            arrived = collections.Counter(event_ids(server))
        children = [key for key in arrived if key.startswith("c")]

        assert flushed
        assert dict.fromkeys(range(CHILDREN), 0) == codes
        assert CHILDREN * CHILD_CALLS == len(children)
        assert set(parent.logged) == set(arrived) - set(children)
        assert {1} == set(arrived.values()), "a call was sent twice"
        assert 0 == stats["dropped"]
        assert during > 0, "the parent stopped delivering while forking"
        assert parent.grabs > 0, "no thread held the sender's locks"
        figure("children (all exited 0)", CHILDREN)
        figure("slowest child, seconds", round(slowest, 2))
        figure("parent calls delivered while forking", during)
        figure("parent calls delivered in all", len(parent.logged))
        figure("lock grabs during the run", parent.grabs)
