"""``pakat-logging relay``: deliver the calls a fleet adds to Redis."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from ._arguments import seconds
from ._config import KEY_VARIABLE
from ._redis_url import is_redis_url, masked
from ._sender import Sender

__all__ = ["RelayCommandError", "add_relay_command", "run_relay"]

DEFAULT_REPORT_INTERVAL = 60.0
"""Seconds between two lines of counters."""

DEFAULT_HELD = 1000
"""Calls a relay holds at once."""

STOP_TIMEOUT = 1.0
"""Seconds a stopping relay gives its calls in flight before it hands the
rest back to the stream."""


class RelayCommandError(Exception):
    """A relay that cannot start, shown as one line."""


def add_relay_command(commands: Any) -> None:
    """Add ``relay --spool URL`` to the parser."""
    relay = commands.add_parser(
        "relay",
        help="deliver the calls that app processes add to a Redis spool",
        description="Read the Redis spool that Sender(spool='redis://...', "
        "deliver=False) writes, and deliver its calls until stopped "
        "(Ctrl-C or SIGTERM). Run one or more, on any machine.",
    )
    relay.add_argument(
        "--spool", required=True, help="the Redis spool URL (redis://...)"
    )
    relay.add_argument("--url", help="the tracker's base URL")
    relay.add_argument("--ma-key", help=f"the key (default: ${KEY_VARIABLE})")
    relay.add_argument(
        "--rate-limit",
        type=float,
        help="calls per second for the whole fleet (default: none)",
    )
    relay.add_argument(
        "--max-workers",
        type=int,
        default=8,
        help="calls in flight at once (default: 8)",
    )
    relay.add_argument(
        "--max-queue-size",
        type=int,
        default=DEFAULT_HELD,
        help="calls held at once; the rest stay in Redis for the other "
        f"relays (default: {DEFAULT_HELD})",
    )
    relay.add_argument(
        "--report-interval",
        type=seconds,
        default=DEFAULT_REPORT_INTERVAL,
        help="seconds between two lines of counters (default: 60)",
    )


def _stop_on_sigterm(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)


def run_relay(args: argparse.Namespace) -> int:
    """Deliver calls from the Redis spool until Ctrl-C or SIGTERM.

    Returns:
        The exit status: 0 once stopped.

    Raises:
        RelayCommandError: No key, or a spool that is not a Redis URL.
        ValueError: An option is malformed.
    """
    sender = _sender(args)
    logging.basicConfig(
        level=logging.WARNING, format="pakat-logging relay: %(message)s"
    )
    stop = threading.Event()
    _stop_on_sigterm(stop)
    print(
        f"Relaying {masked(args.spool)} to {sender.options.url} "
        "(Ctrl-C to stop)",
        flush=True,
    )
    # A flush opens the spool, which starts reading it.
    sender.flush(0)
    with contextlib.suppress(KeyboardInterrupt):
        _serve(sender, stop, args.report_interval)

    return _finish(sender)


def _sender(args: argparse.Namespace) -> Sender:
    if not is_redis_url(args.spool):
        raise RelayCommandError(
            f"--spool must be a Redis URL (redis://host:6379/0), not "
            f"{masked(args.spool)!r}"
        )

    key = args.ma_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise RelayCommandError(f"no key: pass --ma-key or set {KEY_VARIABLE}")

    return Sender(
        key,
        url=args.url,
        spool=args.spool,
        rate_limit=args.rate_limit,
        max_workers=args.max_workers,
        max_queue_size=args.max_queue_size,
    )


def _serve(sender: Sender, stop: threading.Event, interval: float) -> None:
    last = sender.stats()
    next_report = time.monotonic() + interval
    while not stop.wait(min(interval, 1.0)):
        if time.monotonic() < next_report:
            continue

        next_report = time.monotonic() + interval
        stats = sender.stats()
        if stats != last:
            print(_counts(stats), flush=True)
        last = stats


def _counts(stats: dict[str, int]) -> str:
    return (
        f"delivered {stats['delivered']} ({stats['possible_duplicates']} "
        f"possible duplicates), refused {stats['failed']}, in hand "
        f"{stats['pending']}"
    )


def _finish(sender: Sender) -> int:
    # Calls in hand go back to the stream for the other relays.
    sender.close(STOP_TIMEOUT)
    stats = sender.stats()
    print(f"stopped: {_counts(stats)}, handed back {stats['spooled']}")
    sys.stdout.flush()
    return 0
