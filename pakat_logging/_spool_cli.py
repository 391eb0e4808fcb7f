"""``pakat-logging spool PATH ...``: inspect, replay and purge a spool."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from ._arguments import count, seconds
from ._config import KEY_VARIABLE
from ._sender import Sender
from ._spool import Spool, SpoolError

__all__ = ["add_spool_commands", "run_spool"]

_BAR_WIDTH = 30


class SpoolCommandError(Exception):
    """A spool command that cannot go on, shown as one line."""


def add_spool_commands(commands: Any) -> None:
    """Add ``spool PATH {stats,list,replay,purge}`` to the parser."""
    spool = commands.add_parser(
        "spool",
        help="inspect, replay or purge a disk spool",
        description="Inspect, replay or purge the disk outbox that "
        "Sender(spool=PATH) writes.",
    )
    spool.add_argument("path", help="the spool file")
    actions = spool.add_subparsers(
        dest="action", required=True, prog=f"{spool.prog} PATH"
    )
    actions.add_parser("stats", help="count waiting and refused calls")
    listing = actions.add_parser("list", help="show calls, oldest first")
    listing.add_argument(
        "--refused", action="store_true", help="show refused calls instead"
    )
    listing.add_argument("--limit", type=count, default=50)
    replay = actions.add_parser("replay", help="deliver the waiting calls now")
    replay.add_argument("--url", help="the tracker's base URL")
    replay.add_argument("--ma-key", help=f"the key (default: ${KEY_VARIABLE})")
    replay.add_argument(
        "--timeout",
        type=seconds,
        default=300.0,
        help="seconds to wait at most (default: 300)",
    )
    purge = actions.add_parser(
        "purge", help="delete refused calls (or everything, with --all)"
    )
    purge.add_argument(
        "--all", action="store_true", help="delete waiting calls too"
    )
    purge.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation"
    )


def _side_files(path: str) -> list[str]:
    """The files SQLite keeps beside a spool while it is open."""
    return [f"{path}-wal", f"{path}-shm"]


def _check_owner(path: str) -> None:
    # SQLite makes the side files as whoever opens the spool, and an app
    # that cannot write them can no longer use its spool. Run as root,
    # SQLite gives them to the spool's owner itself; another user cannot,
    # so that user is refused unless the files are there already.
    owner = os.stat(path).st_uid
    me = os.geteuid()
    if me in (0, owner) or all(map(os.path.exists, _side_files(path))):
        return

    raise SpoolCommandError(
        f"{path} belongs to uid {owner}: run this as that user or as root "
        "(SQLite would leave files beside it that the app could not write)"
    )


def _open(path: str, *, read_only: bool) -> Spool:
    if not os.path.isfile(path):
        raise SpoolCommandError(f"no spool at {path}")
    if hasattr(os, "geteuid"):
        _check_owner(path)

    # Opening for writing would add the tables to any SQLite file, so a
    # read-only look comes first: replay and purge refuse a foreign file.
    spool = Spool(path)
    try:
        spool.open(read_only=True)
        if not read_only:
            spool.close()
            spool.open()
    except SpoolError as error:
        raise SpoolCommandError(f"cannot open {path}: {error}") from None

    return spool


def _stats(spool: Spool, args: argparse.Namespace) -> int:
    summary = spool.summary()
    oldest = summary["oldest"]
    age = f"{time.time() - oldest:.0f} s" if oldest else "-"
    print(f"spool     {spool.path}")
    print(
        f"waiting   {summary['waiting']:.0f} ({summary['claimed']:.0f} held)"
    )
    print(f"refused   {summary['refused']:.0f}")
    print(f"oldest    {age}")
    return 0


def _name(body: bytes) -> str:
    try:
        fields = json.loads(body)
    except ValueError:
        return "?"

    return str(
        fields.get("event") or fields.get("page") or fields.get("link") or ""
    )


def _list(spool: Spool, args: argparse.Namespace) -> int:
    rows = spool.listing(refused=args.refused, limit=args.limit)
    state = "reason" if args.refused else "held by"
    print(f"{'id':>6}  {'endpoint':<10}  {'email':<24}  {'name':<20}  {state}")
    for row_id, endpoint, email, body, _, note in rows:
        line = f"{row_id:>6}  {endpoint:<10}  {email:<24}  {_name(body):<20}"
        print(f"{line}  {note}".rstrip())
    if not rows:
        print("(none)")
    return 0


def _replay(spool: Spool, args: argparse.Namespace) -> int:
    total = int(spool.summary()["waiting"])
    spool.close()
    key = args.ma_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise SpoolCommandError(f"no key: pass --ma-key or set {KEY_VARIABLE}")

    # The sender's own reports (a wrong key, a tracker out of reach) are
    # what the person running the command needs to see.
    logging.basicConfig(
        level=logging.WARNING, format="pakat-logging spool: %(message)s"
    )
    sender = Sender(key, url=args.url, spool=spool.path, shutdown_timeout=5)
    deadline = time.monotonic() + args.timeout
    done = False
    # A bar redrawn in place on a terminal; piped, only the last line.
    bar = sys.stdout.isatty()
    while not done and time.monotonic() < deadline:
        done = sender.flush(0.2)
        if bar:
            _progress(sender.stats(), total)
    sender.close(1.0)
    stats = sender.stats()
    if bar:
        print()
    print(
        f"delivered {stats['delivered']}, refused {stats['failed']}, "
        f"left in the spool {stats['spooled']}"
    )
    return 0 if done and not stats["failed"] else 1


def _progress(stats: dict[str, int], total: int) -> None:
    finished = stats["delivered"] + stats["failed"]
    share = finished / total if total else 1.0
    filled = int(_BAR_WIDTH * min(share, 1.0))
    bar = "#" * filled + "." * (_BAR_WIDTH - filled)
    sys.stdout.write(f"\r[{bar}] {finished}/{total}")
    sys.stdout.flush()


def _purge(spool: Spool, args: argparse.Namespace) -> int:
    summary = spool.summary()
    if args.all and not args.yes:
        question = (
            f"Delete {summary['waiting']:.0f} waiting and "
            f"{summary['refused']:.0f} refused calls from {spool.path}? [y/N] "
        )
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1

    print(f"deleted {spool.purge(everything=args.all)} calls")
    return 0


_ACTIONS = {"stats": _stats, "list": _list, "replay": _replay, "purge": _purge}
_READERS = frozenset({"stats", "list"})


def run_spool(args: argparse.Namespace) -> int:
    """Run one ``spool`` action; a problem becomes a one-line error.

    Returns:
        The exit status.

    Raises:
        SpoolCommandError: The spool is missing or unusable.
    """
    spool = _open(args.path, read_only=args.action in _READERS)
    try:
        return _ACTIONS[args.action](spool, args)
    except SpoolError as error:
        raise SpoolCommandError(f"{args.path}: {error}") from None
    finally:
        spool.close()
