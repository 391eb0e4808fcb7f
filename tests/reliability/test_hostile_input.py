"""Hostile input: whatever the app logs, nothing raises or goes out bad."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pakat_logging import (
    Identify,
    InvalidCall,
    PakatHandler,
    Sender,
    TrackEvent,
    TrackLink,
    TrackPage,
)
from pakat_logging.testing import FakePakatServer

from ._support import KEY, RELIABILITY, marked_logger, size

pytestmark = RELIABILITY

EXAMPLES = size(150, 2_000)

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Unprintable:
    """A value whose ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        """Refuse to be shown."""
        raise RuntimeError("no str for you")

    __repr__ = __str__


class BrokenMapping(Mapping[str, Any]):
    """A mapping that raises when it is read."""

    def __getitem__(self, key: str) -> Any:
        """Refuse to be read."""
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        """Refuse to be read."""
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        """Claim one item."""
        return 1


def _cyclic_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    return loop


def _cyclic_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


# Characters that make an e-mail, a header or a path go wrong.
NASTY = "\r\n\t\x00\x1f\x7f \u2028\u200b\ud800/\\?#%@\"'<>{}"

# C1 controls, which the tracker refuses in an e-mail as it does C0 ones:
# never part of a good address, often part of a hostile one.
C1 = "".join(map(chr, range(0x80, 0xA0)))

texts = st.text(alphabet=st.characters(codec=None) | st.sampled_from(NASTY))
huge = st.sampled_from([10_000, 300_000, 2_000_000]).map(
    lambda n: "\u00e9" * n
)
unprintable = st.builds(Unprintable)
cycles = st.sampled_from([_cyclic_dict, _cyclic_list]).map(lambda make: make())

# What JSON carries as is, in the shapes real carts have.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4)
    ),
    max_leaves=10,
)
hostile = st.one_of(
    st.floats(),
    st.decimals(),
    st.binary(max_size=16),
    st.datetimes(),
    st.uuids(),
    unprintable,
    huge,
    cycles,
)
keys = st.one_of(
    texts,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.tuples(st.integers()),
    st.binary(max_size=4),
    unprintable,
)
values = st.recursive(
    plain | hostile,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.integers() | st.text(max_size=4), max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=10,
)
good_properties = st.dictionaries(texts, plain, max_size=5)
properties = st.one_of(
    good_properties,
    good_properties,
    good_properties,
    st.dictionaries(texts, values, max_size=5),
    st.dictionaries(keys, values, max_size=5),
    values,
)
# Odd but valid: any letter, mark, symbol or format character of Unicode.
address_part = st.text(
    st.characters(
        exclude_categories=["Cc", "Zs", "Zl", "Zp"],
        exclude_characters=C1 + "@",
    ),
    min_size=1,
)
good_emails = st.builds("{}@{}".format, address_part, address_part)
emails = st.one_of(
    good_emails,
    good_emails,
    good_emails,
    good_emails,
    st.builds(
        "{}@{}".format,
        st.text(alphabet=string.ascii_letters + NASTY, min_size=1),
        st.text(alphabet=string.ascii_letters + NASTY + ".", min_size=1),
    ),
    st.text(),
    st.builds("a{}@b.io".format, st.sampled_from(C1)),
    unprintable,
    st.integers(),
    st.none(),
)
names = st.one_of(
    texts,
    texts,
    texts,
    texts,
    huge,
    st.just("a/../b?x=1#y\r\nHost: evil"),
    unprintable,
    st.integers(),
    st.just(""),
)
eventdata = st.one_of(
    st.fixed_dictionaries({}, optional={"id": texts, "data": properties}),
    st.fixed_dictionaries(
        {}, optional={"id": texts | unprintable, "data": values}
    ),
    properties,
)


good_names = texts.filter(lambda text: text and not text.isspace())
good_eventdata = st.fixed_dictionaries(
    {}, optional={"id": texts, "data": good_properties}
)


def _marker(
    name: str, names: st.SearchStrategy, **optional: st.SearchStrategy
) -> st.SearchStrategy:
    return st.fixed_dictionaries({name: names}, optional=optional)


# Markers a careful app would log, with odd but valid data in every field.
good_markers = st.one_of(
    _marker(
        "event",
        good_names,
        properties=good_properties,
        eventdata=good_eventdata,
        email=good_emails,
    ),
    _marker("page", good_names, properties=good_properties),
    _marker("link", good_names, properties=good_properties),
    st.fixed_dictionaries({}, optional={"attributes": good_properties}),
)
markers = st.one_of(
    good_markers,
    good_markers,
    good_markers,
    _marker("event", names, properties=properties, eventdata=eventdata),
    _marker("page", names, email=emails, unknown=values),
    _marker("link", names, event=names),
    st.fixed_dictionaries(
        {}, optional={"attributes": properties, "email": emails}
    ),
    st.dictionaries(keys, values, max_size=4),
    st.builds(BrokenMapping),
    values,
)


kinds = st.sampled_from([TrackEvent, TrackPage, TrackLink])
good_arguments = st.tuples(
    kinds,
    good_names,
    good_emails,
    good_properties | st.none(),
    good_eventdata | st.none(),
)
any_arguments = st.tuples(
    kinds, names, emails, properties | st.none(), eventdata | st.none()
)


@pytest.fixture
def tracker() -> Iterator[tuple[FakePakatServer, Sender]]:
    """A fake tracker and a sender with room for every example."""
    with FakePakatServer(KEY) as server:
        sender = Sender(KEY, url=server.url, max_queue_bytes=2**30)
        yield server, sender
        sender.close(5.0)


def _submitted(sender: Sender) -> int:
    return sender.stats()["submitted"]


def _refusals(server: FakePakatServer) -> list[tuple[int | None, Any]]:
    return [(r.status, r.body) for r in server.requests if r.status != 204]


class TestHostileMarkers:
    def test_marked_records_never_raise(self, tracker, figure):
        """Any marker and e-mail: logged quietly, counted, sent valid."""
        server, sender = tracker
        logger = marked_logger(
            "reliability.hostile", PakatHandler(sender=sender)
        )
        logger.setLevel(logging.DEBUG)
        seen: list[int] = []

        @SETTINGS
        @given(marker=markers, email=emails)
        def log_one(marker: Any, email: Any) -> None:
            before = _submitted(sender)
            logger.info("hostile", extra={"pakat": marker, "email": email})
            # A marker of None marks nothing, by design.
            expected = 0 if marker is None else 1
            seen.append(_submitted(sender) - before - expected)

        log_one()
        flushed = sender.flush(60)
        stats = sender.stats()

        assert flushed
        assert {0} == set(seen), "each record counts once, sent or dropped"
        assert [] == _refusals(server)
        assert 0 == stats["failed"]
        figure("records logged", len(seen))
        figure("refused (dropped)", stats["dropped"])
        figure("delivered", stats["delivered"])


class TestHostileCalls:
    def test_calls_refuse_or_send_valid(self, tracker, figure):
        """Constructors raise InvalidCall only; submit never raises."""
        server, sender = tracker
        refused = []

        @SETTINGS
        @given(arguments=st.one_of(good_arguments, any_arguments))
        def build_one(arguments) -> None:
            kind, name, email, properties, extra = arguments
            options = {"eventdata": extra} if kind is TrackEvent else {}
            try:
                call = kind(
                    name, email=email, properties=properties, **options
                )
            except InvalidCall:
                refused.append(kind)
                return
            before = _submitted(sender)
            accepted = sender.submit(call)
            assert isinstance(accepted, bool)
            assert before + 1 == _submitted(sender)

        build_one()
        flushed = sender.flush(60)

        assert flushed
        assert [] == _refusals(server)
        figure("calls refused at construction", len(refused))
        figure("calls delivered", sender.stats()["delivered"])

    def test_identify_refuses_or_sends_valid(self, tracker):
        """Identify with any attributes and e-mail refuses or sends valid."""
        server, sender = tracker

        @SETTINGS
        @given(
            arguments=st.tuples(good_emails, good_properties | st.none())
            | st.tuples(emails, properties | st.none())
        )
        def build_one(arguments) -> None:
            email, attributes = arguments
            try:
                call = Identify(email, attributes)
            except InvalidCall:
                return
            sender.submit(call)

        build_one()
        flushed = sender.flush(60)

        assert flushed
        assert [] == _refusals(server)

    def test_anything_submitted_is_counted(self, tracker):
        """submit() of any value returns a bool and counts it once."""
        _, sender = tracker

        @SETTINGS
        @given(value=values | markers)
        def submit_one(value) -> None:
            before = _submitted(sender)
            accepted = sender.submit(value)

            assert accepted is False
            assert before + 1 == _submitted(sender)

        submit_one()


def _repeated_names(payload: bytes) -> list[str]:
    """Return the object member names that occur twice in ``payload``."""
    repeated: list[str] = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in members]
        repeated.extend(n for n in set(names) if names.count(n) > 1)
        return dict(members)

    json.loads(payload, object_pairs_hook=pairs)
    return repeated


class TestEdges:
    @pytest.mark.parametrize("control", ["\x80", "\x9b", "\x9f"])
    def test_c1_control_in_email_is_refused(self, control):
        """An e-mail with a C1 control character is refused when built."""
        with pytest.raises(InvalidCall, match="email"):
            TrackEvent("x", email=f"sara{control}@example.com")

    def test_c1_control_in_email_is_refused_by_the_tracker(self, tracker):
        """The fake tracker answers 400 to such an e-mail, as the API does."""
        server, _ = tracker
        answer = requests.post(
            f"{server.url}/trackEvent",
            json={"email": "sara\x9b@example.com", "event": "x"},
            headers={"ma-key": KEY},
            timeout=10,
        )

        assert 400 == answer.status_code
        assert [] == server.calls

    @pytest.mark.parametrize(
        "properties",
        [{1: "a", "1": "b"}, {True: 1, "true": 2}, {None: 1, "null": 2}],
        ids=["int", "bool", "none"],
    )
    def test_keys_never_collide(self, properties):
        """Keys that collide once written are refused, never sent twice."""
        try:
            payload = TrackEvent(
                "x", email="sara@example.com", properties=properties
            ).payload()
        except InvalidCall:
            payload = b"{}"

        assert [] == _repeated_names(payload)
