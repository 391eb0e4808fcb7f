"""Tests for the JSON encoding of call fields: subclasses of JSON's types."""

from __future__ import annotations

import collections
import enum

import pytest

from pakat_logging import InvalidCall, TrackEvent

Point = collections.namedtuple("Point", "x y")


class Text(str):
    """A str subclass, as Django's SafeString is."""


class Items(list):
    """A list subclass."""


class Size(enum.IntEnum):
    SMALL = 1


def _sent(value: object) -> object:
    call = TrackEvent("x", email="a@b.io", properties={"value": value})
    return call.body["properties"]["value"]


class TestSubclasses:
    def test_namedtuple_is_a_list(self):
        """A namedtuple is sent as a list, like any tuple."""
        sent = _sent(Point(1, 2))

        assert [1, 2] == sent

    def test_str_subclass_name_and_email_are_plain_text(self):
        """A str subclass as event name or e-mail is kept as plain str."""
        call = TrackEvent(Text("order"), email=Text("a@b.io"))

        assert str is type(call.event)
        assert str is type(call.email)
        assert {"email": "a@b.io", "event": "order"} == call.body

    def test_str_subclass_is_text(self):
        """A str subclass is sent as its text."""
        sent = _sent(Text("<b>Sara</b>"))

        assert "<b>Sara</b>" == sent

    def test_list_subclass_is_a_list(self):
        """A list subclass is sent as a list, its members kept."""
        sent = _sent(Items([1, {"a": None}]))

        assert [1, {"a": None}] == sent

    def test_int_enum_is_its_value(self):
        """An IntEnum is sent as its number."""
        sent = _sent(Size.SMALL)

        assert 1 == sent

    def test_keys_that_collide_inside_a_list_subclass(self):
        """Keys written alike are still refused inside a list subclass."""
        with pytest.raises(InvalidCall, match="both written as '1'"):
            _sent(Items([{1: "a", "1": "b"}]))
