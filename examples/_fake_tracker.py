"""Point the examples at a fake tracker unless PAKAT_URL says otherwise."""

from __future__ import annotations

import atexit
import os

from pakat_logging.testing import FakePakatServer


def ensure_tracker() -> FakePakatServer | None:
    """Start a FakePakatServer and export its URL, unless one is given.

    Returns:
        The fake tracker, or ``None`` when PAKAT_URL was already set.
    """
    if os.environ.get("PAKAT_URL"):
        return None

    server = FakePakatServer().start()
    atexit.register(server.stop)
    os.environ["PAKAT_URL"] = server.url
    os.environ.setdefault("PAKAT_MA_KEY", "example-key-not-secret")
    return server


def show(server: FakePakatServer | None) -> None:
    """Print what the fake tracker received, one call a line."""
    if server is None:
        return

    for call in server.calls:
        print(f"{call.endpoint:<11} {call.body}")
