"""Argument types for the ``pakat-logging`` commands.

A mistake is refused by the parser, as one line, before anything runs.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["count", "port", "seconds"]


def seconds(text: str) -> float:
    """Parse a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds, not {text!r}"
        ) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"expected seconds of 0 or more, not {text!r}"
        )

    return value


def count(text: str) -> int:
    """Parse a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of 0 or more, not {text!r}"
        )

    return value


def port(text: str) -> int:
    """Parse a TCP port, 0 (any free one) to 65535."""
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535, not {text!r}"
        )

    return value
