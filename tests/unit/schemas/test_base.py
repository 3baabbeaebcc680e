"""Tests of quanticity.schemas.base: the record envelope, keys and stable ids."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from quanticity.schemas import Record, SocialMessage, UnderlyingQuote, stable_id, utc_now

from .samples import T0, envelope


def test_stable_id_is_deterministic_and_sensitive_to_each_part() -> None:
    """The same parts always give the same id; changing any part changes it."""
    base = stable_id("run-1", "SPY", 7)

    assert base == stable_id("run-1", "SPY", 7)
    assert len(base) == 24 and int(base, 16) >= 0
    assert len({base, stable_id("run-2", "SPY", 7), stable_id("run-1", "QQQ", 7), stable_id("run-1", "SPY", 8)}) == 4


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_stable_id_differs_for_different_sequence_numbers(a: int, b: int) -> None:
    """Different sequence numbers under one run and symbol never share an id."""
    assert (stable_id("run", "SPY", a) == stable_id("run", "SPY", b)) == (a == b)


def test_utc_now_is_timezone_aware() -> None:
    """utc_now() carries a UTC offset of zero."""
    now = utc_now()

    assert now.utcoffset() == timedelta(0)


def test_naive_event_time_is_rejected() -> None:
    """A datetime without a timezone is refused for event_time and ingest_time."""
    naive = datetime(2025, 3, 4, 14, 30)
    with pytest.raises(ValidationError, match="event_time"):
        UnderlyingQuote(symbol="SPY", bid=1.0, **envelope(event_time=naive))
    with pytest.raises(ValidationError, match="ingest_time"):
        UnderlyingQuote(symbol="SPY", bid=1.0, **envelope(ingest_time=naive))


def test_ingest_time_defaults_to_now() -> None:
    """Without ingest_time, a record is stamped with an aware 'now'."""
    fields = envelope()
    del fields["ingest_time"]
    before = utc_now()

    quote = UnderlyingQuote(symbol="SPY", bid=1.0, **fields)

    assert before <= quote.ingest_time <= utc_now()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_id", ""),
        ("run_id", ""),
        ("source", "bloomberg"),
        ("mode", "prod"),
        ("schema_version", 0),
    ],
)
def test_envelope_fields_are_validated(field: str, value: object) -> None:
    """Empty ids, unknown sources or modes and schema_version < 1 are rejected."""
    change: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError, match=field):
        UnderlyingQuote(symbol="SPY", bid=1.0, **envelope(**change))


@pytest.mark.parametrize("symbol", ["spy", "", "TOO-LONG-SYMBOL-XYZ", "SP Y", "SPY$"])
def test_symbol_must_be_an_upper_case_ticker(symbol: str) -> None:
    """Symbols are 1–16 chars of A–Z, 0–9, '.', '-', '^'."""
    with pytest.raises(ValidationError, match="symbol"):
        UnderlyingQuote(symbol=symbol, bid=1.0, **envelope())


def test_records_are_immutable_and_reject_unknown_fields() -> None:
    """Records are frozen value objects and refuse fields they do not declare."""
    quote = UnderlyingQuote(symbol="SPY", bid=1.0, **envelope())
    with pytest.raises(ValidationError):
        quote.bid = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="colour"):
        UnderlyingQuote(symbol="SPY", bid=1.0, colour="red", **envelope())  # type: ignore[call-arg]


def test_keys_are_symbol_channel_or_record_id() -> None:
    """Symbol records key by symbol, social messages by channel, bare records by id."""
    quote = UnderlyingQuote(symbol="SPY", bid=1.0, **envelope("q-9"))
    message = SocialMessage(channel="email", tier="free", release_at=T0, body="hi", **envelope("m-9"))
    bare = Record(type="x", **envelope("r-9"))

    assert quote.key == "SPY"
    assert message.key == "email"
    assert bare.key == "r-9"
