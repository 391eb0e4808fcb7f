"""Tests for the call objects: validation, conversions and the body."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import pickle
import uuid

import pytest

from pakat_logging import (
    Identify,
    InvalidCall,
    PakatError,
    TrackEvent,
    TrackLink,
    TrackPage,
)
from pakat_logging._calls import from_mapping


class Colour(enum.Enum):
    RED = "red"


class TestBody:
    def test_track_event_body(self):
        """A trackEvent sends its e-mail, name, properties and eventdata."""
        call = TrackEvent(
            "order_completed",
            email="sara@example.com",
            properties={"FIRSTNAME": "Sara"},
            eventdata={"id": "cart:1234", "data": {"total": 120}},
        )

        assert "trackEvent" == call.endpoint
        assert {
            "email": "sara@example.com",
            "event": "order_completed",
            "properties": {"FIRSTNAME": "Sara"},
            "eventdata": {"id": "cart:1234", "data": {"total": 120}},
        } == call.body

    def test_identify_body(self):
        """An identify sends its e-mail and attributes."""
        call = Identify("sara@example.com", {"mobile": "+989121234567"})

        assert "identify" == call.endpoint
        assert {
            "email": "sara@example.com",
            "attributes": {"mobile": "+989121234567"},
        } == call.body

    def test_link_and_page_are_free_text(self):
        """Links and pages are sent as given, never checked as URLs."""
        link = TrackLink("example.com/promo?x=1", email="a@b.io")
        page = TrackPage("Home page", email="a@b.io")

        assert "trackLink" == link.endpoint
        assert {"email": "a@b.io", "link": "example.com/promo?x=1"} == (
            link.body
        )
        assert {"email": "a@b.io", "page": "Home page"} == page.body

    def test_empty_optionals_are_left_out(self):
        """None and empty optional fields never reach the body."""
        call = TrackEvent("x", email="a@b.io", properties={}, eventdata={})

        assert {"email": "a@b.io", "event": "x"} == call.body
        assert b'{"email":"a@b.io","event":"x"}' == call.payload()

    def test_track_link_body(self):
        """A trackLink sends its e-mail, link and properties."""
        call = TrackLink(
            "https://shop.example/promo?utm=spring",
            email="sara@example.com",
            properties={"FIRSTNAME": "Sara", "campaign": "spring"},
        )

        assert "trackLink" == call.endpoint
        assert {
            "email": "sara@example.com",
            "link": "https://shop.example/promo?utm=spring",
            "properties": {"FIRSTNAME": "Sara", "campaign": "spring"},
        } == call.body

    def test_track_page_body(self):
        """A trackPage sends its e-mail, page and the ma_ properties."""
        call = TrackPage(
            "Checkout",
            email="sara@example.com",
            properties={
                "ma_url": "https://shop.example/checkout",
                "ma_path": "/checkout",
                "ma_title": "Checkout",
                "ma_referrer": "https://shop.example/cart",
            },
        )

        assert "trackPage" == call.endpoint
        assert {
            "email": "sara@example.com",
            "page": "Checkout",
            "properties": {
                "ma_url": "https://shop.example/checkout",
                "ma_path": "/checkout",
                "ma_title": "Checkout",
                "ma_referrer": "https://shop.example/cart",
            },
        } == call.body

    def test_identify_body_with_attributes(self):
        """An identify sends every attribute, numbers included."""
        call = Identify(
            "sara@example.com",
            {
                "FIRSTNAME": "Sara",
                "LASTNAME": "Karimi",
                "mobile": "+989121234567",
                "AGE": 31,
            },
        )

        assert {
            "email": "sara@example.com",
            "attributes": {
                "FIRSTNAME": "Sara",
                "LASTNAME": "Karimi",
                "mobile": "+989121234567",
                "AGE": 31,
            },
        } == call.body

    def test_nested_empty_object_is_sent_as_object(self):
        """An empty object inside properties or eventdata.data stays {}."""
        call = TrackEvent(
            "cart_updated",
            email="a@b.io",
            properties={"address": {}},
            eventdata={"id": "cart:1", "data": {"items": [], "meta": {}}},
        )

        payload = call.payload().decode()

        assert '"address":{}' in payload
        assert '"meta":{}' in payload
        assert {
            "email": "a@b.io",
            "event": "cart_updated",
            "properties": {"address": {}},
            "eventdata": {"id": "cart:1", "data": {"items": [], "meta": {}}},
        } == json.loads(payload)
        assert json.loads(payload) == call.body

    @pytest.mark.parametrize(
        "call",
        [
            TrackLink("x", email="a@b.io", properties={}),
            TrackPage("x", email="a@b.io", properties={}),
            TrackEvent("x", email="a@b.io", properties={}),
            Identify("a@b.io", {}),
        ],
    )
    def test_empty_top_level_object_is_left_out(self, call):
        """An empty properties or attributes is left out, not [] or null."""
        payload = call.payload().decode()

        assert {"properties", "attributes"}.isdisjoint(call.body)
        assert "[]" not in payload
        assert "null" not in payload

    def test_nested_values_are_kept(self):
        """Nulls, false, empty lists and big integers inside survive."""
        data = {"line2": None, "gift": False, "items": [], "total": 2**40}
        call = TrackEvent("x", email="a@b.io", eventdata={"data": data})

        assert data == call.body["eventdata"]["data"]

    def test_email_can_come_later(self):
        """A call without e-mail gets one through with_email()."""
        call = TrackPage("home")

        filled = call.with_email("a@b.io")

        assert call.email is None
        assert {"email": "a@b.io", "page": "home"} == filled.body

    def test_with_email_keeps_the_class(self):
        """with_email() on a subclass of a call returns that subclass."""

        class Checkout(TrackEvent):
            __slots__ = ()

        filled = Checkout("checkout").with_email("a@b.io")

        assert Checkout is type(filled)
        assert "checkout" == filled.event

    def test_body_is_a_snapshot(self):
        """Mutating the dict after building the call changes nothing."""
        properties = {"FIRSTNAME": "Sara"}
        call = TrackEvent("x", email="a@b.io", properties=properties)

        properties["FIRSTNAME"] = "Changed"
        call.body["properties"]["FIRSTNAME"] = "Also changed"

        assert {"FIRSTNAME": "Sara"} == call.body["properties"]

    def test_calls_are_immutable(self):
        """Attributes cannot be set on a call."""
        call = TrackEvent("x")

        with pytest.raises(AttributeError):
            call.email = "a@b.io"  # type: ignore[misc]

    def test_equal_calls(self):
        """Calls with the same body are equal and hash alike."""
        one = TrackEvent("x", email="a@b.io", properties={"a": 1})
        two = TrackEvent("x", email="a@b.io", properties={"a": 1})

        assert one == two
        assert hash(one) == hash(two)
        assert one != TrackPage("x", email="a@b.io")

    def test_pickle_round_trip(self):
        """A call survives pickling, for queues between processes."""
        call = TrackEvent("x", email="a@b.io", eventdata={"id": "c:1"})

        assert call == pickle.loads(pickle.dumps(call))


class TestConversions:
    def test_standard_types(self):
        """Dates, decimals, UUIDs, enums, sets, tuples and bytes convert."""
        uid = uuid.UUID(int=1)
        call = TrackEvent(
            "x",
            email="a@b.io",
            properties={
                "when": datetime.datetime(2024, 5, 1, 12, 30),
                "day": datetime.date(2024, 5, 1),
                "at": datetime.time(9, 15),
                "price": decimal.Decimal("12.50"),
                "rials": decimal.Decimal("1500000000000"),
                "id": uid,
                "colour": Colour.RED,
                "tags": {"b", "a"},
                "pair": (1, 2),
                "raw": "héllo".encode(),
            },
        )

        assert {
            "when": "2024-05-01T12:30:00",
            "day": "2024-05-01",
            "at": "09:15:00",
            "price": 12.5,
            "rials": 1500000000000,
            "id": str(uid),
            "colour": "red",
            "tags": ["a", "b"],
            "pair": [1, 2],
            "raw": "héllo",
        } == call.body["properties"]

    @pytest.mark.parametrize(
        "value", [float("nan"), float("inf"), decimal.Decimal("NaN")]
    )
    def test_nan_is_refused(self, value):
        """NaN and Infinity are never sent."""
        with pytest.raises(InvalidCall, match="properties: NaN"):
            TrackEvent("x", properties={"v": value})

    @pytest.mark.parametrize("exponent", [4300, 1_000_000])
    def test_huge_decimal_is_refused(self, exponent):
        """A whole Decimal too long to write is refused before it is built."""
        value = decimal.Decimal(f"1e{exponent}")

        with pytest.raises(InvalidCall, match="more than 4300 digits"):
            TrackEvent("x", properties={"v": value})

    def test_decimal_of_4300_digits_is_sent_exactly(self):
        """The longest whole Decimal that Python writes stays exact."""
        value = decimal.Decimal("9" * 4300)

        call = TrackEvent("x", properties={"v": value})

        assert int("9" * 4300) == call.body["properties"]["v"]

    def test_unknown_type_is_refused_without_repr(self):
        """An object JSON cannot carry is refused by its type's name."""

        class Hostile:
            def __repr__(self):
                raise RuntimeError("boom")

            __str__ = __repr__

        with pytest.raises(InvalidCall, match=r"type .*Hostile"):
            TrackEvent("x", properties={"v": Hostile()})

    def test_cycle_is_refused(self):
        """A dict that contains itself is refused."""
        data: dict = {}
        data["self"] = data

        with pytest.raises(InvalidCall, match=r"eventdata\.data"):
            TrackEvent("x", eventdata={"data": data})

    def test_deep_nesting_is_refused(self):
        """Nesting deeper than the interpreter allows is refused."""
        data: list = []
        for _ in range(100_000):
            data = [data]

        with pytest.raises(InvalidCall, match="nested too deeply"):
            TrackEvent("x", properties={"v": data})

    def test_bytes_that_are_not_utf8(self):
        """Bytes that are not UTF-8 are refused."""
        with pytest.raises(InvalidCall, match="UTF-8"):
            TrackEvent("x", properties={"v": b"\xff"})


class TestValidation:
    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (lambda: TrackEvent(""), "event: must not be empty"),
            (lambda: TrackEvent(7), "event: must be a string"),  # type: ignore[arg-type]
            (lambda: TrackPage("  "), "page: must not be empty"),
            (lambda: TrackLink(""), "link: must not be empty"),
            (
                lambda: TrackEvent("x", properties={"email": "a"}),
                "properties: the key 'email' is reserved",
            ),
            (
                lambda: TrackPage("x", properties={"page": "a"}),
                "the key 'page' is reserved for trackPage",
            ),
            (
                lambda: TrackLink("x", properties={"link": "a"}),
                "the key 'link' is reserved for trackLink",
            ),
            (
                lambda: TrackEvent("x", eventdata={"id": "a", "other": 1}),
                "eventdata: only 'id' and 'data' are allowed",
            ),
            (
                lambda: TrackEvent("x", eventdata={"id": 12}),
                "eventdata.id: must be a string",
            ),
            (
                lambda: TrackEvent("x", eventdata={"data": [1]}),
                "eventdata.data: must be a mapping",
            ),
            (
                lambda: TrackEvent("x", properties=[1]),  # type: ignore[arg-type]
                "properties: must be a mapping",
            ),
            (
                lambda: TrackEvent("x", properties={(1, 2): "a"}),
                "properties: keys must be str",
            ),
            (lambda: Identify("no-at-sign"), "email: must be an address"),
            (lambda: Identify("a@b.io\r\nX: y"), "email: must be an address"),
            (lambda: Identify("a\x9b@b.io"), "email: must be an address"),
            (lambda: Identify(42), "email: must be a string"),  # type: ignore[arg-type]
            (
                lambda: Identify("a@b.io", attributes="x"),  # type: ignore[arg-type]
                "attributes: must be a mapping",
            ),
        ],
    )
    def test_invalid_input(self, build, message):
        """Bad input raises InvalidCall naming the field and the rule."""
        with pytest.raises(InvalidCall, match=message):
            build()

    def test_invalid_call_is_a_value_error(self):
        """InvalidCall is both a ValueError and the library's error."""
        assert issubclass(InvalidCall, ValueError)
        assert issubclass(InvalidCall, PakatError)


class TestFromMapping:
    @pytest.mark.parametrize(
        ("fields", "kind"),
        [
            ({"event": "x"}, TrackEvent),
            ({"page": "x"}, TrackPage),
            ({"link": "x"}, TrackLink),
            ({"attributes": {"A": 1}}, Identify),
            ({}, Identify),
        ],
    )
    def test_kind_by_field(self, fields, kind):
        """The field present decides which call a mapping is."""
        assert kind is type(from_mapping(fields))

    def test_two_kinds_are_invalid(self):
        """A mapping with both event and page is refused."""
        with pytest.raises(InvalidCall, match="has both 'event' and 'page'"):
            from_mapping({"event": "x", "page": "y"})

    def test_unknown_field_is_invalid(self):
        """A field the call does not have is refused."""
        with pytest.raises(InvalidCall, match="trackPage has no field 'x'"):
            from_mapping({"page": "p", "x": 1})


class TestKeys:
    def test_simple_keys_become_strings(self):
        """Int, float, bool and None keys become strings, as in JSON."""
        call = TrackEvent("x", properties={1: "a", None: "b", 2.5: "c"})

        assert {"1": "a", "null": "b", "2.5": "c"} == call.body["properties"]

    @pytest.mark.parametrize(
        ("properties", "name"),
        [
            ({1: "a", "1": "b"}, "'1'"),
            ({True: 1, "true": 2}, "'true'"),
            ({"deep": [{None: 1, "null": 2}]}, "'null'"),
        ],
    )
    def test_keys_written_alike_are_refused(self, properties, name):
        """Two keys JSON would write as one name are refused, not merged."""
        with pytest.raises(InvalidCall, match=f"both written as {name}"):
            TrackEvent("x", properties=properties)
