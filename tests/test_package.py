"""Tests for the package's public names."""

from __future__ import annotations

import pakat_logging

SPEC_NAMES = (
    "Identify",
    "TrackEvent",
    "TrackLink",
    "TrackPage",
    "InvalidCall",
    "PakatError",
    "Sender",
    "get_sender",
    "bind_email",
    "PakatHandler",
    "PakatProcessor",
    "PakatSpanExporter",
)


class TestAll:
    def test_all_is_pinned(self):
        """The public names are exactly these, in this order."""
        assert [
            "Call",
            "Identify",
            "InvalidCall",
            "PakatError",
            "PakatHandler",
            "PakatProcessor",
            "PakatSampler",
            "PakatSpanExporter",
            "Sender",
            "TrackEvent",
            "TrackLink",
            "TrackPage",
            "__version__",
            "bind_email",
            "get_sender",
        ] == pakat_logging.__all__

    def test_all_is_sorted(self):
        """__all__ is kept sorted."""
        assert sorted(pakat_logging.__all__) == pakat_logging.__all__

    def test_spec_names_are_public(self):
        """Every name the specification lists is in __all__."""
        missing = set(SPEC_NAMES) - set(pakat_logging.__all__)

        assert set() == missing

    def test_every_name_resolves(self):
        """Each name in __all__ can be imported from the package."""
        missing = [
            name
            for name in pakat_logging.__all__
            if not hasattr(pakat_logging, name)
        ]

        assert [] == missing
