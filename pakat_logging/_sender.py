"""The background sender: accepts calls at once, delivers them later."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

from . import _guard, _lifecycle
from ._calls import (
    Call,
    Identify,
    Parts,
    TrackEvent,
    TrackLink,
    TrackPage,
    from_parts,
)
from ._config import Options, mask
from ._delivery import Delivery, Pacer, PacerLike
from ._outbox import Outbox, ReentryError
from ._platform import threads_disabled
from ._quick import Deferred, finish
from ._redis_spooler import RedisSpooler
from ._redis_url import is_redis_url
from ._report import Reporter
from ._spooler import Spooler
from ._transport import Transport

__all__ = ["IDLE_TIMEOUT", "Sender"]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT = 5.0
"""Seconds a worker waits for work before it stops (one always stays while
calls wait)."""

_CALL_TYPES = frozenset({Identify, TrackEvent, TrackLink, TrackPage})


class Sender:
    """Delivers tracker calls from background threads.

    ``submit`` only queues a call and returns; worker threads deliver it
    over pooled keep-alive connections, retry what fails transiently, and
    keep the calls of one contact in order. Construction does no I/O and
    starts no thread; the first submitted call starts the first worker.

    Args:
        ma_key: The marketing-automation key (default: the environment
            variable ``PAKAT_MA_KEY``). A missing key is reported at the
            first call, whose delivery is dropped and counted.
        url: The tracker's base URL (default: ``PAKAT_URL``, then
            ``https://in-automate.pakat.net/api/v2``).
        **options: ``timeout`` (default: 10.0), ``max_queue_size``
            (default: 10,000), ``max_queue_bytes`` (default: 16 MiB),
            ``max_workers`` (default: 8), ``rate_limit`` (default:
            ``None``), ``shutdown_timeout`` (default: 10.0), ``spool``
            (default: ``None``), ``max_attempts`` (default: 10),
            ``max_age`` (default: 600.0), ``allow_http`` (default:
            ``False``), ``deliver`` (default: ``True``; ``False`` only
            adds calls to a Redis spool, for ``pakat-logging relay``).

    Raises:
        ValueError: An option is malformed: a key or URL with CR/LF, a URL
            that is not ``https`` to a host beyond loopback, a negative
            timeout, and so on.
    """

    def __init__(
        self,
        ma_key: str | None = None,
        *,
        url: str | None = None,
        **options: Any,
    ) -> None:
        self._options = Options.resolve(ma_key, url=url, **options)
        self._closed = False
        # Reentrant: close() from a signal handler must not wait forever
        # on a close() that the signal interrupted.
        self._close_lock = threading.RLock()
        self._setup()
        _lifecycle.track(self)

    def _setup(self) -> None:
        # Everything a forked child must not share with its parent.
        options = self._options
        self._home = _lifecycle.home_flag()
        self._outbox = Outbox(
            options.max_queue_size,
            options.max_queue_bytes,
            options.max_workers,
        )
        self._transport = Transport(options)
        pacer: PacerLike = Pacer(options.rate_limit)
        self._reporter = Reporter(logger)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spooler = self._open_spool()
        # What the hot path asks first, in one attribute: neither changes
        # until the next _setup.
        self._direct = self._spooler is None and options.ma_key is not None
        if isinstance(self._spooler, RedisSpooler):
            # Every process of the fleet paces and pauses through Redis.
            pacer = self._spooler.gate(
                pacer, self._stopped, options.rate_limit
            )
        self._delivery = Delivery(
            options,
            outbox=self._outbox,
            transport=self._transport,
            pacer=pacer,
            reporter=self._reporter,
            spooler=self._spooler,
            stopped=self._stopped,
        )

    def _open_spool(self) -> Spooler | RedisSpooler | None:
        options = self._options
        if options.spool is None:
            return None

        if is_redis_url(options.spool):
            return RedisSpooler(
                options.spool,
                self._outbox,
                max_rows=options.spool_max_size,
                reporter=self._reporter,
                start_worker=self._start_worker,
                deliver=options.deliver,
                max_held=options.max_queue_size,
            )

        return Spooler(
            options.spool,
            self._outbox,
            max_rows=options.spool_max_size,
            reporter=self._reporter,
            start_worker=self._start_worker,
        )

    @property
    def options(self) -> Options:
        """The validated options this sender runs with."""
        return self._options

    @property
    def shutdown_timeout(self) -> float:
        """Seconds that delivery may take at interpreter exit."""
        return self._options.shutdown_timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def submit(self, call: Call) -> bool:
        """Queue ``call`` for delivery; never blocks and never raises.

        Args:
            call: An :class:`Identify`, :class:`TrackEvent`,
                :class:`TrackLink` or :class:`TrackPage` with an e-mail.

        Returns:
            ``True`` when the call was accepted. ``False`` when it was not
            (queue full, sender closed, no key, no e-mail, not a call); it
            is then counted as dropped and reported in the log.
        """
        try:
            if type(call) in _CALL_TYPES and call._parts[1] is not None:
                return self._submit_parts(call._parts)

            return self._submit(call)
        except Exception:
            self._outbox.count("dropped")
            logger.exception("Dropped a call after an unexpected error")
            return False

    def _submit_parts(self, parts: Parts | Deferred) -> bool:
        # submit() for a call's parts, with an e-mail; the integrations'
        # fast path comes here straight from quick_parts, so no call object
        # is made on the application's thread.
        try:
            # The common case in one test: an open sender with a key and no
            # spool, in the process that made it.
            if self._direct and not self._closed and self._home[0]:
                # _put, spelled out to spare a call on the hot path.
                accepted, start = self._outbox.put(parts)
                if start:
                    self._start_worker()
                if not accepted:
                    self._report_full()
                return accepted

            return self._submit(from_parts(finish(parts)))
        except ReentryError:
            self._refuse_reentry()
            return False
        except Exception:
            self._outbox.count("dropped")
            logger.exception("Dropped a call after an unexpected error")
            return False

    def drop(self, reason: str) -> None:
        """Count a call that could not even be built, and report why.

        Integrations call this for an invalid marker, so that every
        refusal shows in :meth:`stats` and in the log.

        Args:
            reason: One sentence naming the field and the rule broken.
        """
        self._outbox.count("dropped")
        self._reporter.report(f"invalid: {reason}", logging.WARNING, reason)

    def _submit(self, call: Call) -> bool:
        if not self._home[0]:
            self._after_fork()

        if not (
            isinstance(call, Call)
            and call.email is not None
            and not self._closed
            and self._options.ma_key is not None
        ):
            self._refuse(call)
            return False

        spooler = self._spooler
        if spooler is None or spooler.broken:
            return self._put(call._parts)

        accepted = spooler.accept(call)
        if not accepted:
            self._outbox.count("dropped")
            self._report_full()

        return accepted

    def _put(self, parts: Parts) -> bool:
        try:
            accepted, start = self._outbox.put(parts)
        except ReentryError:
            self._refuse_reentry()
            return False
        if start:
            self._start_worker()
        if not accepted:
            self._report_full()

        return accepted

    def _refuse_reentry(self) -> None:
        self._outbox.count("dropped")
        self._reporter.report(
            "reentered",
            logging.WARNING,
            "Dropped a call made while this thread was queueing another "
            "(from a signal handler, or a finalizer the garbage collector "
            "ran)",
        )

    def _refuse(self, call: object) -> None:
        # Only for a call that _submit refused: count it, and say why.
        if not isinstance(call, Call):
            kind = type(call).__qualname__
            self.drop(f"Dropped a {kind}: only tracker calls can be submitted")
        elif call.email is None:
            self.drop(f"Dropped a {call.endpoint} call that has no email")
        elif self._closed:
            self.drop(f"Dropped a {call.endpoint} call: the sender is closed")
        else:
            # So the key is missing. One warning says it all: a line per
            # call would repeat it for every record the app logs.
            self._outbox.count("dropped")
            self._reporter.once(
                "no_key",
                logging.WARNING,
                "No ma-key is configured (pass ma_key or set PAKAT_MA_KEY): "
                "tracker calls are dropped",
            )

    def _report_full(self) -> None:
        options = self._options
        limit = (
            f"the spool holds {options.spool_max_size} calls"
            if self._spooler is not None and not self._spooler.broken
            else f"{options.max_queue_size} calls or "
            f"{options.max_queue_bytes} bytes"
        )
        spooler = self._spooler
        if isinstance(spooler, RedisSpooler) and spooler.unreachable:
            limit = (
                f"Redis cannot be reached and {options.max_queue_size} "
                "calls wait in memory"
            )
        elif isinstance(spooler, RedisSpooler) and spooler.buffer_full:
            # A burst larger than max_queue_size within one group commit.
            limit = (
                f"{options.max_queue_size} calls wait in memory to be "
                "written to Redis"
            )
        self._reporter.report(
            "queue_full",
            logging.WARNING,
            f"The queue is full ({limit}): dropping new calls",
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call submitted so far is delivered or failed.

        Args:
            timeout: Seconds to wait at most (default: ``None``, no limit).

        Returns:
            ``True`` when nothing submitted before the call is left.
        """
        if not self._home[0]:
            self._after_fork()

        self._reporter.drain()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._wait_flushed(deadline)
        finally:
            # The end of a burst, as the caller sees it: say what was held.
            self._reporter.drain(everything=True)

    def _wait_flushed(self, deadline: float | None) -> bool:
        spooler, outbox = self._spooler, self._outbox
        while True:
            if spooler is not None and not spooler.wait_written(
                _left(deadline)
            ):
                return False

            # Looked at before the wait: a call that comes in from the spool
            # after it has a later number than the last one waited for.
            drained = spooler is None or not spooler.outside
            if not outbox.wait_settled(_left(deadline)):
                return False

            if spooler is None or drained:
                return True

            # Calls waiting on disk come into the outbox as room frees up.
            if not spooler.wait_refilled(_left(deadline)):
                return False

    def close(self, timeout: float | None = None) -> bool:
        """Deliver what is queued within ``timeout``, then stop.

        Calls still queued when the time is up are counted as dropped and
        reported in one line. Safe to call twice; runs by itself at
        interpreter exit.

        Args:
            timeout: Seconds to wait at most (default: ``None``, meaning
                the ``shutdown_timeout`` option).

        Returns:
            ``True`` when every accepted call was delivered or failed.
        """
        with self._close_lock:
            if self._closed:
                return self._outbox.pending == 0
            self._closed = True

        if timeout is None:
            timeout = self._options.shutdown_timeout
        deadline = time.monotonic() + max(timeout, 0.0)
        self._deliver_here(deadline)
        spooler = self._spooler
        if spooler is None or spooler.started:
            self.flush(timeout)
        # Else nothing was ever submitted or flushed: opening the spool
        # only to close it (for a Redis spool, reaching the server) could
        # make the exit of a process that tracked nothing wait.

        return self._stop(deadline)

    def _deliver_here(self, deadline: float) -> None:
        # Calls wait but no worker runs: its start was refused during
        # interpreter shutdown (Python 3.12+), or threads do not run here
        # (uWSGI without threads). No new thread may start now, so the
        # closing thread delivers them itself.
        if not self._outbox.adopt_worker():
            return

        with _guard.sending():
            while self._outbox.pending and time.monotonic() < deadline:
                item, grow = self._outbox.take(deadline - time.monotonic())
                if grow:
                    self._outbox.release_worker()
                if item is None:
                    return
                self._delivery.deliver(item)

        self._outbox.release_worker()

    def _close_at_exit(self, timeout: float) -> None:
        try:
            self.close(timeout)
        except Exception:
            logger.exception("Closing the sender at exit failed")

    def _stop(self, deadline: float) -> bool:
        before = self.stats()
        left = self._outbox.stop()
        self._stopped.set()
        for item in left:
            self._delivery.leave(item)
        for thread in list(self._threads):
            thread.join(max(deadline - time.monotonic(), 0.0))

        if self._spooler is not None and not self._spooler.broken:
            remaining = max(deadline - time.monotonic(), 0.0)
            self._outbox.count("spooled", self._spooler.close(remaining))
        stats = self.stats()
        self._reporter.drain(everything=True)
        lost = stats["dropped"] - before["dropped"]
        spooled = stats["spooled"] - before["spooled"]
        self._log_summary(stats, lost, spooled)
        if stats["pending"] == 0:
            self._transport.close()

        return not (lost or spooled or stats["pending"])

    def _log_summary(
        self, stats: dict[str, int], lost: int, spooled: int
    ) -> None:
        summary = (
            f"Sender closed: {stats['delivered']} delivered, "
            f"{stats['failed']} failed, {spooled} spooled, {lost} lost (not "
            f"delivered within the shutdown timeout), {stats['pending']} "
            "still in flight"
        )
        undelivered = lost or spooled or stats["pending"]
        level = logging.WARNING if undelivered else logging.DEBUG
        logger.log(level, summary)

    def stats(self) -> dict[str, int]:
        """Return the delivery counters.

        Returns:
            ``submitted`` (every call given to :meth:`submit`),
            ``delivered``, ``retried`` (attempts that will be tried
            again), ``failed`` (refused by the API or out of retries),
            ``dropped`` (not accepted, or lost at close), ``pending``
            (accepted, not yet delivered or failed) and
            ``possible_duplicates`` (delivered after an attempt that may
            have arrived too). ``submitted == delivered + failed +
            dropped + pending`` always holds.
        """
        spooler = self._spooler
        return self._outbox.snapshot(0 if spooler is None else spooler.outside)

    def _start_worker(self) -> None:
        problem = threads_disabled()
        if problem is not None:
            self._reporter.once("no_threads", logging.WARNING, problem)

        thread = threading.Thread(
            target=self._work, name="pakat-logging-sender", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # Python 3.12+ refuses new threads during interpreter shutdown;
            # the workers already running carry on.
            self._outbox.release_worker()
            return

        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)

    def _work(self) -> None:
        _guard.suppress_tracing()
        with _guard.sending():
            while True:
                self._reporter.drain()
                item, grow = self._outbox.take(IDLE_TIMEOUT)
                if item is None:
                    return

                if grow:
                    self._start_worker()
                self._delivery.pace()
                self._delivery.deliver(item)

    def _after_fork(self) -> None:
        # The child starts empty: the parent still delivers what it queued.
        if self._spooler is not None:
            self._spooler.abandon()
        self._setup()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Sender {self._options.url} ma_key={mask(self._options.ma_key)} "
            f"{state} pending={self._outbox.pending}>"
        )


def _left(deadline: float | None) -> float | None:
    """Return the seconds until ``deadline``, never negative."""
    if deadline is None:
        return None

    return max(deadline - time.monotonic(), 0.0)
