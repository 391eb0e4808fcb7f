"""Tests for the fast path from a plain marker to the parts of its call."""

from __future__ import annotations

import gc
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pakat_logging import InvalidCall, TrackEvent, TrackLink, TrackPage
from pakat_logging._calls import from_mapping, size_of
from pakat_logging._outbox import Outbox
from pakat_logging._quick import (
    DEFERRED_TEXT_MAX,
    _flat_copy,
    finish,
    quick_parts,
)


class Text(str):
    """A str subclass, as Django's SafeString is."""


EMAIL = "sara@example.com"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31, max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["", " ", "\ud800", "é", '"', "\\", "\n", "</b>"]),
    st.builds(Text, st.text(max_size=4)),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    st.sampled_from([1.5j, b"bytes", {1: "a", "1": "b"}, (1, 2)]),
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["email", "event", "page", "link", "FIRSTNAME"]),
    st.sampled_from([1, None, True, Text("x")]),
)
flat = st.dictionaries(keys, values, max_size=4)
names = st.one_of(
    st.sampled_from(["order_completed", "", "  ", "/cart", Text("x")]),
    st.text(max_size=6),
    st.integers(),
    st.none(),
)
eventdata = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.none(), st.text(max_size=5), st.integers()),
            "data": st.one_of(st.none(), flat, st.lists(scalars, max_size=2)),
            "other": scalars,
        },
    ),
    scalars,
)
markers = st.fixed_dictionaries(
    {},
    optional={
        "event": names,
        "page": names,
        "link": names,
        "email": st.one_of(
            st.none(), st.sampled_from([EMAIL, "bad", " a@b.io"])
        ),
        "properties": st.one_of(st.none(), flat, scalars),
        "attributes": st.one_of(st.none(), flat, scalars),
        "eventdata": eventdata,
        "unknown": scalars,
    },
)
# Markers of the shapes apps log, mostly valid, so that many of them take
# the fast path and are compared.
plain_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)
)
plain_values = st.recursive(
    plain_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
plain_flat = st.dictionaries(st.text(max_size=8), plain_values, max_size=4)
plain_names = st.sampled_from(["order_completed", "/cart", "pakat.net/x"])
plain_markers = st.one_of(
    *(
        st.fixed_dictionaries(
            {kind: plain_names},
            optional={
                "email": st.sampled_from([EMAIL, None]),
                "properties": st.one_of(st.none(), plain_flat),
            },
        )
        for kind in ("page", "link")
    ),
    st.fixed_dictionaries(
        {"event": plain_names},
        optional={
            "email": st.sampled_from([EMAIL, None]),
            "properties": st.one_of(st.none(), plain_flat),
            "eventdata": st.fixed_dictionaries(
                {},
                optional={
                    "id": st.one_of(st.none(), st.text(max_size=5)),
                    "data": st.one_of(st.none(), plain_flat),
                },
            ),
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.sampled_from([EMAIL, None]),
            "attributes": st.one_of(st.none(), plain_flat),
        },
    ),
)
emails = st.one_of(
    st.none(), st.sampled_from([EMAIL, "a@b.io", "bad"]), st.integers()
)


def _general(marker: object, email: object) -> object:
    """Return the general path's parts, or the InvalidCall it raised."""
    try:
        call = from_mapping(marker, email=email)
    except InvalidCall as error:
        return error
    return call._parts


def _two_deferred_calls() -> tuple[object, Outbox]:
    """An outbox given two deferred calls, and the parts they stand for.

    The first call finds no room in the intake and takes the lock; the
    second waits in the intake behind it.
    """
    marker = {"event": "order_completed", "properties": {"N": 1}}
    outbox = Outbox(1000, 2**20, 1)
    outbox.put(quick_parts(marker, EMAIL))
    outbox.put(quick_parts(marker, EMAIL))
    assert 1 == len(outbox._intake)

    return _general(marker, EMAIL), outbox


class TestQuickParts:
    @settings(max_examples=3000, deadline=None)
    @given(st.one_of(markers, plain_markers), emails)
    def test_same_call_as_the_general_path(self, marker, email):
        """Whatever the fast path builds, the general path builds alike."""
        # Run the general path first: it remembers the names and e-mails
        # it has checked, which is what lets the fast path take them.
        general = _general(marker, email)

        quick = quick_parts(marker, email)

        if quick is not None:
            assert general == finish(quick)
            assert quick[1] is not None

    @pytest.mark.parametrize(
        "marker",
        [
            {"event": "order_completed", "properties": {"FIRSTNAME": "S"}},
            {"event": "cart", "eventdata": {"id": "c:1", "data": {"n": 2}}},
            {"page": "/cart", "properties": {"ma_title": "Cart", "n": 1.5}},
            {"link": "pakat.net/x", "email": EMAIL},
            {"attributes": {"FIRSTNAME": "Sara", "VIP": True, "AGE": None}},
            {"event": "big", "properties": {"amount": 12_000_000_000}},
            {
                "event": "order_completed",
                "eventdata": {
                    "id": "cart:1",
                    "data": {"items": [{"sku": "a", "n": 1}], "total": 9.5},
                },
            },
        ],
    )
    def test_takes_the_markers_apps_log(self, marker):
        """Common flat markers go the fast way once their names are known."""
        general = _general(marker, EMAIL)

        quick = quick_parts(marker, EMAIL)

        assert general == finish(quick)

    @pytest.mark.parametrize(
        "marker",
        [
            {"event": "x", "properties": {"items": (1, 2)}},
            {"event": "x", "properties": {"items": [{1: "a"}]}},
            {"event": "x", "properties": {"items": [math.inf]}},
            {"event": "x", "properties": {"at": math.nan}},
            {"event": "x", "properties": {1: "a"}},
            {"event": "x", "properties": {"email": "a@b.io"}},
            {"event": "x", "page": "y"},
            {"event": "x", "eventdata": {"id": 1}},
            {"event": Text("x")},
            {"event": "x", "properties": {"n": 10**5000}},
        ],
    )
    def test_leaves_the_rest_to_the_general_path(self, marker):
        """Nested, converted or invalid markers take the general path."""
        _general(marker, EMAIL)

        assert quick_parts(marker, EMAIL) is None

    @pytest.mark.parametrize("cls", [TrackEvent, TrackPage, TrackLink])
    def test_reserved_keys_are_the_ones_it_checks(self, cls):
        """The fast path refuses "email" and the name: all that is reserved."""
        assert {"email", cls._field} == cls._reserved

    def test_an_unchecked_email_takes_the_general_path(self):
        """An e-mail never checked before is left to the general path."""
        marker = {"event": "order_completed"}

        assert quick_parts(marker, "never-seen@example.com") is None


class TestDeferredParts:
    @pytest.mark.parametrize(
        "marker",
        [
            {"event": "order_completed", "properties": {"FIRSTNAME": "S"}},
            {"page": "/cart", "properties": {"ma_title": "Cart", "n": 1.5}},
            {"link": "pakat.net/x", "properties": {"VIP": True, "X": None}},
            {"attributes": {"FIRSTNAME": "Sara", "AGE": -(10**19)}},
        ],
    )
    def test_flat_properties_are_encoded_later(self, marker):
        """Flat properties are checked and copied now, encoded on finish."""
        general = _general(marker, EMAIL)

        quick = quick_parts(marker, EMAIL)

        assert 5 == len(quick)
        assert general == finish(quick)

    def test_the_copy_is_a_snapshot(self):
        """Changing the marker once it is logged changes nothing sent."""
        properties = {"FIRSTNAME": "Sara"}
        marker = {"event": "order_completed", "properties": properties}
        general = _general(marker, EMAIL)
        quick = quick_parts(marker, EMAIL)

        properties["FIRSTNAME"] = "Someone else"
        properties["LASTNAME"] = "Added later"

        assert general == finish(quick)

    def test_a_change_after_the_check_is_not_sent(self):
        """What was checked is what is sent, whatever another thread does."""
        properties = {"FIRSTNAME": "Sara"}
        marker = {"event": "order_completed", "properties": properties}
        general = _general(marker, EMAIL)
        code = _flat_copy.__code__
        last_line = max(line for *_, line in code.co_lines() if line)

        def tracer(frame, event, arg):
            if frame.f_code is not code:
                return None

            def each_line(frame, event, arg):
                # As another thread could, once every value is checked.
                if event == "line" and frame.f_lineno == last_line:
                    properties["FIRSTNAME"] = object()
                return each_line

            return each_line

        before = sys.gettrace()
        sys.settrace(tracer)
        try:
            quick = quick_parts(marker, EMAIL)
        finally:
            sys.settrace(before)

        assert not isinstance(properties["FIRSTNAME"], str)
        assert general == finish(quick)

    @pytest.mark.parametrize(
        "properties",
        [
            # Past what a deferred call may add once encoded.
            {"NOTE": "x" * 61},
            {f"K{n}": n for n in range(9)},
            # An int whose text may be longer than a deferred one's.
            {"amount": 10**20},
            {"items": [1, 2]},
        ],
    )
    def test_the_rest_is_encoded_at_once(self, properties):
        """Large or nested properties are encoded on the caller's thread."""
        marker = {"event": "order_completed", "properties": properties}
        general = _general(marker, EMAIL)

        quick = quick_parts(marker, EMAIL)

        assert general == quick

    @settings(max_examples=500, deadline=None)
    @given(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=90),
            ),
            max_size=12,
        )
    )
    def test_a_deferred_call_stays_within_its_allowance(self, properties):
        """Encoding never adds more than DEFERRED_TEXT_MAX to the name."""
        properties.pop("email", None)
        properties.pop("event", None)
        marker = {"event": "order_completed", "properties": properties}
        _general(marker, EMAIL)

        quick = quick_parts(marker, EMAIL)

        if quick is not None and len(quick) == 5:
            finished = finish(quick)
            assert len(finished[2]) - len(quick[2]) <= DEFERRED_TEXT_MAX

    def test_the_largest_deferred_call_fits_its_allowance(self):
        """Eight items of 64 characters that JSON writes longest still fit."""
        # Past U+FFFF, each character is written as 12.
        properties = {
            chr(0x1F600 + n): -1.7976931348623157e308 for n in range(7)
        }
        properties["\U0001f6ff"] = "\U0001f680" * 56
        marker = {"event": "order_completed", "properties": properties}
        general = _general(marker, EMAIL)

        quick = quick_parts(marker, EMAIL)

        assert 5 == len(quick)
        assert general == finish(quick)
        added = len(general[2]) - len(quick[2])
        assert 950 < added <= DEFERRED_TEXT_MAX

    def test_the_outbox_counts_and_sends_the_encoded_call(self):
        """Whether it takes the lock or the intake, the call is encoded."""
        general, outbox = _two_deferred_calls()

        first, _ = outbox.take(idle_timeout=1.0)
        assert first is not None
        outbox.settle(first, "delivered")
        second, _ = outbox.take(idle_timeout=1.0)

        assert second is not None
        assert [general, general] == [first.call._parts, second.call._parts]
        assert size_of(general) == outbox._bytes

    def test_a_stopping_outbox_hands_back_the_encoded_call(self):
        """Calls still in the intake when the outbox stops are encoded."""
        general, outbox = _two_deferred_calls()

        left = outbox.stop()

        assert [general, general] == [item.call._parts for item in left]


class TestQueuedParts:
    def test_a_queued_call_is_not_tracked_by_the_collector(self):
        """Once collected, a queued call is no work for later collections."""
        call = TrackEvent("order_completed", email=EMAIL)
        outbox = Outbox(10, 2**20, 1)
        outbox.put(call._parts)
        (entry,) = outbox._lanes[EMAIL]

        gc.collect()

        assert not gc.is_tracked(entry)

    def test_a_call_from_the_intake_is_stamped_as_it_moves_on(self):
        """A new call that waited in the intake is no older than the wait."""
        now = [100.0]
        outbox = Outbox(1000, 2**20, 1, clock=lambda: now[0])
        first = TrackEvent("order_completed", email=EMAIL)._parts
        second = TrackEvent("order_shipped", email=EMAIL)._parts
        assert (True, True) == outbox.put(first)
        # Its contact has a lane and a worker: it waits in the intake.
        assert (True, False) == outbox.put(second)
        now[0] = 105.0

        item, _ = outbox.take(idle_timeout=1.0)

        assert item is not None
        assert first == item.call._parts
        assert 100.0 == item.born
        borns = {parts: born for _, parts, born, _ in outbox._lanes[EMAIL]}
        assert 105.0 == borns[second]
