"""Tests of quanticity.tables.latest_quotes: the rules that keep quote metadata monotonic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import faust
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.schemas import UnderlyingQuote
from quanticity.tables.latest_quotes import TABLE_NAME, classify, freshness, latest_quotes_table, table_value

T0 = datetime(2025, 3, 4, 14, 30, tzinfo=UTC)


def _quote(record_id: str, event_time: datetime) -> UnderlyingQuote:
    return UnderlyingQuote(
        symbol="SPY",
        last=100.0,
        record_id=record_id,
        event_time=event_time,
        ingest_time=event_time,
        source="sim",
        run_id="run-1",
        mode="sim",
    )


def test_first_quote_is_stored() -> None:
    """With nothing stored yet, a quote is stored."""
    assert classify(None, _quote("a", T0)) == "store"


def test_redelivery_of_the_stored_quote_is_a_duplicate() -> None:
    """The same record id as the stored one is a duplicate, whatever its time."""
    stored = table_value(_quote("a", T0))

    assert classify(stored, _quote("a", T0)) == "duplicate"


def test_older_quote_is_out_of_order() -> None:
    """A different quote with an earlier event time is out of order."""
    stored = table_value(_quote("a", T0))

    assert classify(stored, _quote("b", T0 - timedelta(microseconds=1))) == "out_of_order"


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(microseconds=1), timedelta(days=1)])
def test_same_time_or_newer_quote_is_stored(delta: timedelta) -> None:
    """A different quote at the same or a later event time is stored."""
    stored = table_value(_quote("a", T0))

    assert classify(stored, _quote("b", T0 + delta)) == "store"


def test_comparison_is_by_instant_not_by_wall_clock() -> None:
    """A later instant written in an earlier-looking offset is still newer."""
    stored = table_value(_quote("a", T0))
    later_in_new_york = (T0 + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5)))

    assert classify(stored, _quote("b", later_in_new_york)) == "store"


def test_table_value_round_trips_the_event_time() -> None:
    """The stored value holds the record id and an ISO time that parses back to the same instant."""
    quote = _quote("a", T0 + timedelta(microseconds=123))

    value = table_value(quote)

    assert value["record_id"] == "a"
    assert datetime.fromisoformat(value["event_time"]) == quote.event_time


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(0), "fresh"),
        (timedelta(seconds=5), "fresh"),  # exactly max_age is still fresh
        (timedelta(seconds=5, microseconds=1), "stale"),
        (timedelta(seconds=-1), "fresh"),  # clock skew: event slightly in the future
    ],
)
def test_freshness(age: timedelta, expected: str) -> None:
    """A quote is stale only when it is older than max_age."""
    quote = _quote("a", T0)

    assert freshness(quote, T0 + age, timedelta(seconds=5)) == expected


_offsets = st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=1, max_size=30)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))])


@given(_offsets, st.data())
def test_store_only_when_classified_store_keeps_the_latest_event_time(offsets: list[int], data: st.DataObject) -> None:
    """For quotes (with redeliveries) in any order, the stored event_time ends as the max seen."""
    quotes = [
        _quote(f"id-{i}", (T0 + timedelta(milliseconds=ms)).astimezone(data.draw(_zones)))
        for i, ms in enumerate(offsets)
    ]
    redeliveries = data.draw(st.lists(st.sampled_from(quotes), max_size=10))
    arrival = data.draw(st.permutations(quotes + redeliveries))

    stored: dict[str, str] | None = None
    for quote in arrival:
        if classify(stored, quote) == "store":
            stored = table_value(quote)

    assert stored is not None
    assert datetime.fromisoformat(stored["event_time"]) == max(q.event_time for q in quotes)


def test_table_is_declared_with_name_and_partitions() -> None:
    """latest_quotes_table declares a str → dict table with the given partition count."""
    app = faust.App("unit-latest-quotes", broker="memory://", store="memory://")

    table = latest_quotes_table(app, partitions=3)

    assert table.name == TABLE_NAME
    assert table.partitions == 3
    assert table.default is None
    assert (table.key_type, table.value_type) == (str, dict)
