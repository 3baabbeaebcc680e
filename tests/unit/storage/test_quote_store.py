"""Tests of the pure parts of quanticity.storage.quote_store: samples and series of a quote.

Writing to Redis is covered by the integration suite (it needs a Redis Stack server).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.schemas import UnderlyingQuote
from quanticity.storage.quote_store import QUOTE_FIELDS, meta_key, quote_samples, quote_series, series_key

T0 = datetime(2025, 3, 4, 14, 30, 0, 250000, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _quote(event_time: datetime = T0, source: str = "sim", **prices: Any) -> UnderlyingQuote:
    return UnderlyingQuote(
        symbol="SPY",
        record_id="q-1",
        event_time=event_time,
        ingest_time=event_time,
        source=source,
        run_id="run-1",
        mode="sim",
        **prices,
    )


def test_keys_follow_the_documented_scheme() -> None:
    """Series are underlyings:{symbol}:{field}; metadata is meta:underlyings:{symbol}."""
    assert series_key("SPY", "bid") == "underlyings:SPY:bid"
    assert meta_key("SPY") == "meta:underlyings:SPY"


def test_full_quote_gives_every_field_including_mid() -> None:
    """A quote with every field yields one sample per field, mid computed, at the event time in ms."""
    quote = _quote(bid=100.0, ask=101.0, last=100.4, bid_size=200.0, ask_size=300.0, volume=5000.0)

    samples = quote_samples(quote)

    ts = 1741098600250
    assert samples == [
        ("underlyings:SPY:bid", ts, 100.0),
        ("underlyings:SPY:ask", ts, 101.0),
        ("underlyings:SPY:last", ts, 100.4),
        ("underlyings:SPY:mid", ts, 100.5),
        ("underlyings:SPY:bid_size", ts, 200.0),
        ("underlyings:SPY:ask_size", ts, 300.0),
        ("underlyings:SPY:volume", ts, 5000.0),
    ]


def test_absent_fields_are_skipped() -> None:
    """Fields the quote does not carry (and mid without both sides) produce no sample."""
    samples = quote_samples(_quote(last=50.0, volume=10.0))

    assert [key for key, _, _ in samples] == ["underlyings:SPY:last", "underlyings:SPY:volume"]


def test_zero_is_a_value_not_an_absence() -> None:
    """A zero bid size is stored; only None is skipped."""
    samples = quote_samples(_quote(bid=0.0, ask=0.05, bid_size=0.0))

    assert ("underlyings:SPY:bid_size", 1741098600250, 0.0) in samples
    assert ("underlyings:SPY:bid", 1741098600250, 0.0) in samples


def test_timestamp_is_the_same_instant_in_any_timezone() -> None:
    """An event time given in another offset maps to the same epoch milliseconds."""
    shifted = T0.astimezone(timezone(timedelta(hours=-4)))

    assert quote_samples(_quote(event_time=shifted, last=1.0)) == quote_samples(_quote(last=1.0))


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_timestamp_is_the_event_time_in_whole_milliseconds(event_time: datetime) -> None:
    """The sample timestamp is the event time's epoch milliseconds, truncated, never off by one."""
    ((_, ts, _),) = quote_samples(_quote(event_time=event_time, last=1.0))

    assert ts == (event_time - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("source", "retention_ms"),
    [
        ("ibkr", 48 * 3600 * 1000),
        ("alphavantage", 7 * 24 * 3600 * 1000),
        ("sim", 7 * 24 * 3600 * 1000),
        ("replay", 7 * 24 * 3600 * 1000),
    ],
)
def test_series_retention_depends_on_source(source: str, retention_ms: int) -> None:
    """IBKR series keep 48 h; every other source keeps 7 days."""
    specs = quote_series(_quote(source=source, last=1.0))

    assert {spec.retention_ms for spec in specs} == {retention_ms}


def test_series_cover_every_field_with_labels() -> None:
    """Every quote field gets a series, even ones this quote lacks, labelled for TS.MRANGE filters."""
    specs = quote_series(_quote(source="ibkr", last=1.0))

    assert [spec.key for spec in specs] == [f"underlyings:SPY:{field}" for field in QUOTE_FIELDS]
    for spec, field in zip(specs, QUOTE_FIELDS, strict=True):
        assert dict(spec.labels) == {"family": "underlyings", "symbol": "SPY", "field": field, "source": "ibkr"}


def test_sample_keys_are_a_subset_of_series_keys() -> None:
    """Every sample goes to a series that quote_series declares (so TS.MADD never auto-creates one)."""
    quote = _quote(bid=1.0, ask=2.0, last=1.5, bid_size=1.0, ask_size=1.0, volume=1.0)

    assert {key for key, _, _ in quote_samples(quote)} <= {spec.key for spec in quote_series(quote)}
