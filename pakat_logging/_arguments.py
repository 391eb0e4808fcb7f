"""Argument types for the ``pakat-logging`` commands.

A mistake is refused by the parser, as one line, before anything runs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

__all__ = ["count", "port", "seconds"]

_N = TypeVar("_N", int, float)


def _not_negative(text: str, parse: Callable[[str], _N], what: str) -> _N:
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {what}, not {text!r}"
        ) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"expected {what} of 0 or more, not {text!r}"
        )

    return value


def seconds(text: str) -> float:
    """Parse a finite number of seconds, 0 or more."""
    return _not_negative(text, float, "seconds")


def count(text: str) -> int:
    """Parse a whole number, 0 or more."""
    return _not_negative(text, int, "a whole number")


def port(text: str) -> int:
    """Parse a TCP port, 0 (any free one) to 65535."""
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535, not {text!r}"
        )

    return value
