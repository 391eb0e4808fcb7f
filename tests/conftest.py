"""Shared fixtures: a fake tracker, and checks that tests leave no trace."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from pakat_logging import Sender
from pakat_logging.testing import FakePakatServer

KEY = "test-key-0123456789"


def _keys_of(item: pytest.Item) -> set[str]:
    """Return the ma-keys a test may use: ours and its module's own."""
    keys = {KEY}
    module = getattr(item, "module", None)
    for name in ("KEY", "SECRET"):
        value = getattr(module, name, None)
        if isinstance(value, str):
            keys.add(value)

    return keys


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Fail any test whose output shows a whole ma-key.

    Everything the test printed to stdout or stderr, and every log record
    captured while it ran, is searched; the masked form (its last four
    characters) is allowed.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "teardown" or not report.passed:
        return

    shown = report.capstdout + report.capstderr + report.caplog
    leaked = sum(key in shown for key in _keys_of(item))
    if leaked:
        report.outcome = "failed"
        report.longrepr = (
            f"{leaked} ma-key(s) appeared whole in the test's output or log"
        )


def _sender_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith("pakat-logging")
    ]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the logging module back as the test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    own = logging.getLogger("pakat_logging")
    own_level, own_propagate = own.level, own.propagate
    loggers = dict(logging.Logger.manager.loggerDict)
    disabled = {
        name: logger.disabled
        for name, logger in loggers.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    own.setLevel(own_level)
    own.propagate = own_propagate
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.disabled = disabled.get(name, False)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a sender thread running."""
    before = set(_sender_threads())
    yield
    leaked = [t for t in _sender_threads() if t not in before]
    for thread in leaked:
        thread.join(5.0)
    alive = [t.name for t in leaked if t.is_alive()]
    assert [] == alive, "sender threads left running"


@pytest.fixture
def server() -> Iterator[FakePakatServer]:
    """A fake tracker on loopback that accepts the test key."""
    with FakePakatServer(ma_key=KEY) as fake:
        yield fake


@pytest.fixture
def sender(server: FakePakatServer) -> Iterator[Sender]:
    """A sender pointed at the fake tracker, closed after the test."""
    instance = Sender(KEY, url=server.url, timeout=2.0, shutdown_timeout=5.0)
    yield instance
    instance.close(5.0)
