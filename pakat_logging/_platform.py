"""Hosts where background threads do not run, found before calls pile up."""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["UWSGI_ADVICE", "threads_disabled", "uwsgi_threads_disabled"]

UWSGI_ADVICE = (
    "uWSGI runs without --enable-threads: background threads only run "
    "while a request is served, so tracker calls are delayed and can be "
    "lost. Start uWSGI with --enable-threads (or --threads N)"
)


def uwsgi_threads_disabled(options: Mapping[object, object]) -> bool:
    """Return whether uWSGI's options leave Python threads switched off.

    Args:
        options: ``uwsgi.opt``, whose keys and values may be ``str`` or
            ``bytes``.
    """

    def get(name: str) -> object:
        return options.get(name, options.get(name.encode()))

    if get("enable-threads"):
        return False

    threads = get("threads")
    try:
        return (
            int(
                str(threads, "ascii")
                if isinstance(threads, bytes)
                else str(threads)
            )
            < 1
        )
    except (TypeError, ValueError):
        return True


def threads_disabled() -> str | None:
    """Return why background threads cannot run in this process, or None."""
    uwsgi = sys.modules.get("uwsgi")
    options = getattr(uwsgi, "opt", None)
    if isinstance(options, Mapping) and uwsgi_threads_disabled(options):
        return UWSGI_ADVICE

    return None
