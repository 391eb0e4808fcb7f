"""The ``pakat-logging`` command: demo, send, fake-server, spool, relay."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import requests

from ._arguments import port, seconds
from ._calls import Call, Identify, TrackEvent, TrackLink, TrackPage
from ._config import KEY_VARIABLE, Options, _is_loopback, mask
from ._errors import InvalidCall
from ._relay_cli import RelayCommandError, add_relay_command, run_relay
from ._spool_cli import SpoolCommandError, add_spool_commands, run_spool
from ._transport import Transport

__all__ = ["main"]


class UsageError(Exception):
    """A mistake in the command line, shown as one line."""


class _ArgumentError(Exception):
    """A line argparse rejected, already worded for stderr."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose mistakes are one line, not the usage block.

    Subcommand parsers are built from the same class, so they behave alike.
    """

    def error(self, message: str) -> NoReturn:
        """Raise the mistake as one line naming the command."""
        raise _ArgumentError(f"{self.prog}: error: {message} (see --help)")


def _pair(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")

    # Numbers, true/false and JSON objects keep their type; anything that
    # is not JSON is sent as the text given.
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pakat-logging",
        description="Send log lines and spans to Pakat's tracker.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="run a small app against an embedded fake tracker",
        description="Start a fake tracker, wire logging, structlog and "
        "OpenTelemetry to it as an app would, and show what arrived.",
    )
    _add_send(commands)
    _add_fake_server(commands)
    add_spool_commands(commands)
    add_relay_command(commands)
    return parser


def _add_send(commands: Any) -> None:
    send = commands.add_parser(
        "send",
        help="deliver one call now and print the tracker's answer",
        description="Deliver one call at once, to check a key and a "
        "network path. Exits non-zero unless the answer is a 2xx.",
    )
    send.add_argument("kind", choices=["event", "page", "link", "identify"])
    send.add_argument(
        "name", nargs="?", help="the event or page name, or the link"
    )
    send.add_argument("--email", required=True, help="the contact's e-mail")
    send.add_argument(
        "--property",
        dest="properties",
        action="append",
        type=_pair,
        default=[],
        metavar="K=V",
        help="a property (JSON values keep their type)",
    )
    send.add_argument(
        "--attribute",
        dest="attributes",
        action="append",
        type=_pair,
        default=[],
        metavar="K=V",
        help="an identify attribute",
    )
    send.add_argument("--url", help="the tracker's base URL")
    send.add_argument("--ma-key", help=f"the key (default: ${KEY_VARIABLE})")
    send.add_argument(
        "--timeout", type=seconds, default=10.0, help="seconds (default: 10)"
    )


def _add_fake_server(commands: Any) -> None:
    fake = commands.add_parser(
        "fake-server",
        help="run the fake tracker in the foreground",
        description="Run FakePakatServer and print each call as it "
        "arrives. The inspector page, at the URL printed, shows the calls "
        "live and switches failures on and off.",
    )
    fake.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this machine "
        "only)",
    )
    fake.add_argument("--port", type=port, default=8025)
    fake.add_argument(
        "--ma-key", help="the only key accepted (default: any key)"
    )
    fake.add_argument(
        "--latency",
        type=seconds,
        default=0.0,
        help="seconds to wait before each answer (default: 0)",
    )
    fake.add_argument(
        "--quiet", action="store_true", help="do not print each call"
    )


def _build_call(args: argparse.Namespace) -> Call:
    if args.kind == "identify":
        if args.name is not None:
            raise UsageError("identify takes no name; use --attribute")
        if args.properties:
            raise UsageError("--property is not for identify; use --attribute")
        return Identify(args.email, dict(args.attributes) or None)

    if args.name is None:
        raise UsageError(f"send {args.kind} needs a name")
    if args.attributes:
        raise UsageError("--attribute is for identify; use --property")

    kinds: dict[str, type[TrackEvent | TrackPage | TrackLink]] = {
        "event": TrackEvent,
        "page": TrackPage,
        "link": TrackLink,
    }
    properties = dict(args.properties) or None
    return kinds[args.kind](args.name, email=args.email, properties=properties)


def _send(args: argparse.Namespace) -> int:
    call = _build_call(args)
    key = args.ma_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise UsageError(f"no key: pass --ma-key or set {KEY_VARIABLE}")

    options = Options.resolve(key, url=args.url, timeout=args.timeout)
    transport = Transport(options)
    target = f"{options.url}/{call.endpoint}"
    print(f"POST {target} (ma-key {mask(key)})")
    print(json.dumps(call.body, ensure_ascii=False))
    try:
        answer = transport.send(call.endpoint, call.payload())
    except requests.RequestException as error:
        print(f"no answer: {type(error).__name__}", file=sys.stderr)
        return 1
    finally:
        transport.close()

    print(f"{answer.status} {answer.text}".rstrip())
    return 0 if 200 <= answer.status < 300 else 1


def _fake_server(args: argparse.Namespace) -> int:
    from .testing import FakePakatServer  # noqa: PLC0415

    server = FakePakatServer(
        args.ma_key,
        host=args.host,
        port=args.port,
        latency=args.latency,
        inspector=True,
    )
    try:
        server.start()
    except (OSError, OverflowError) as error:
        # A port in use or a host that does not resolve: the user's to fix.
        raise UsageError(
            f"cannot listen on {args.host} port {args.port}: {error}"
        ) from None
    try:
        if not _is_loopback(args.host):
            print(
                f"warning: listening on {args.host}, beyond this machine: "
                "anyone who can reach it sees the calls and can switch "
                "failures on",
                file=sys.stderr,
            )
        print(f"Fake Pakat tracker at {server.url} (Ctrl-C to stop)")
        print(f"Inspector at {server.inspector_url}")
        sys.stdout.flush()
        try:
            _print_requests(server, quiet=args.quiet)
        except KeyboardInterrupt:
            print("stopped")
    finally:
        server.stop()

    return 0


def _print_requests(server: Any, *, quiet: bool) -> None:
    seen = 0
    while True:
        server.wait_for_requests(seen + 1, timeout=3600)
        requests_now = server.requests
        if not quiet:
            for request in requests_now[seen:]:
                body = json.dumps(request.body, ensure_ascii=False)
                print(
                    f"{request.status} {request.method} {request.path} {body}"
                )
            sys.stdout.flush()
        seen = len(requests_now)


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo  # noqa: PLC0415

    return run_demo(sys.stdout)


_COMMANDS = {
    "demo": _demo,
    "send": _send,
    "fake-server": _fake_server,
    "spool": run_spool,
    "relay": run_relay,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when a call was not delivered,
        2 for a usage error.
    """
    try:
        args = _parser().parse_args(argv)
    except _ArgumentError as error:
        print(error, file=sys.stderr)
        return 2

    try:
        return _COMMANDS[args.command](args)
    except (
        UsageError,
        SpoolCommandError,
        RelayCommandError,
        InvalidCall,
        ValueError,
    ) as error:
        print(f"pakat-logging {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
