"""Fixtures of the reliability suite, and the figures it reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ._support import FULL, FULL_VARIABLE

_FIGURES: list[tuple[str, str, Any]] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Note a measured figure, shown at the end of the run."""

    def note(name: str, value: Any) -> None:
        _FIGURES.append((request.node.nodeid, name, value))

    return note


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show the figures the reliability tests measured."""
    if not _FIGURES:
        return

    size = "full" if FULL else f"bounded; {FULL_VARIABLE}=1 for full"
    terminalreporter.section(f"reliability figures ({size})")
    test = None
    for nodeid, name, value in _FIGURES:
        if nodeid != test:
            test = nodeid
            terminalreporter.write_line(nodeid.split("::", 1)[-1])
        terminalreporter.write_line(f"    {name}: {value}")
