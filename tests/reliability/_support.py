"""Helpers of the reliability suite: sizes, subprocesses, dead endpoints."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

FULL_VARIABLE = "PAKAT_RELIABILITY_FULL"

FULL = os.environ.get(FULL_VARIABLE, "") not in ("", "0")
"""Whether to run each test at its full size (slow, by hand)."""

KEY = "reliability-key-7f3a9c2e5b"

# Full runs take minutes; the bounded ones stay under the usual limit.
TIMEOUT = 3600 if FULL else 120

Size = TypeVar("Size", int, float)

RELIABILITY = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]
"""The marks of every reliability test module."""


def size(bounded: Size, full: Size) -> Size:
    """Return the full size when asked for, the bounded one otherwise."""
    return full if FULL else bounded


def marked_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """Return a logger that feeds only ``handler``, at INFO."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def event_ids(server: Any) -> list[str]:
    """Return the ``eventdata.id`` of every call the server accepted."""
    return [call.body["eventdata"]["id"] for call in server.calls]


def free_port() -> int:
    """Return a loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refusing_url() -> str:
    """Return a loopback URL whose connections are refused."""
    return f"http://127.0.0.1:{free_port()}/api/v2"


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """Yield a loopback URL that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"


def run_script(
    script: str, *args: object, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter, with this checkout importable.

    Args:
        script: Python source, dedented here.
        *args: Its command-line arguments, as text.
        timeout: Seconds it may take at most.

    Returns:
        The finished process, its output captured as text.
    """
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("PAKAT_MA_KEY", None)
    env.pop("PAKAT_URL", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_json(output: str) -> dict[str, Any]:
    """Return the JSON object printed on the last line of ``output``."""
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def wait_for_room(sender: Any, server: Any, window: int) -> int:
    """Wait until fewer than ``window`` calls are pending; return the peak.

    A producer calls this between records, so that it logs as fast as the
    sender delivers and no faster: the wait ends when the fake server has
    seen another request, or half a second later, whichever comes first.
    """
    deadline = time.monotonic() + 300
    peak = pending = sender.stats()["pending"]
    while pending >= window:
        assert time.monotonic() < deadline, "the sender made no progress"
        server.wait_for_requests(len(server.requests) + 1, timeout=0.5)
        pending = sender.stats()["pending"]
        peak = max(peak, pending)

    return peak
