"""Tests of quanticity.schemas.market: quotes, chains, ticks, bars and depth validate."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from quanticity.schemas import Bar, DepthLevel, DepthSnapshot, OptionChainSnapshot, Tick, UnderlyingQuote
from quanticity.schemas.columns import column_list

from .samples import chain_columns, envelope

_CHAIN_COLUMNS = (
    "right",
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "implied_vol",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)


def _quote(**prices: Any) -> UnderlyingQuote:
    return UnderlyingQuote(symbol="SPY", **prices, **envelope())


def test_quote_with_bid_and_ask_has_a_mid() -> None:
    """A valid quote keeps its prices and computes the midpoint."""
    quote = _quote(bid=100.0, ask=100.5, last=100.2)

    assert (quote.bid, quote.ask, quote.last) == (100.0, 100.5, 100.2)
    assert quote.mid == 100.25


@pytest.mark.parametrize("prices", [{"bid": 1.0}, {"ask": 1.0}, {"last": 1.0}])
def test_one_sided_quote_is_valid_without_mid(prices: dict[str, float]) -> None:
    """A quote needs only one of bid, ask, last; without both sides it has no mid."""
    assert _quote(**prices).mid is None


def test_locked_quote_is_valid() -> None:
    """bid == ask (a locked market) is allowed."""
    assert _quote(bid=10.0, ask=10.0).mid == 10.0


def test_crossed_quote_is_rejected() -> None:
    """bid > ask is refused with a 'crossed quote' message."""
    with pytest.raises(ValidationError, match="crossed quote"):
        _quote(bid=100.5, ask=100.0)


def test_quote_without_any_price_is_rejected() -> None:
    """Sizes and volume alone do not make a quote."""
    with pytest.raises(ValidationError, match="at least one of bid, ask, last"):
        _quote(bid_size=100.0, volume=10.0)


@pytest.mark.parametrize("field", ["bid", "ask", "last", "bid_size", "ask_size", "volume"])
def test_negative_quote_fields_are_rejected(field: str) -> None:
    """Prices, sizes and volume cannot be negative."""
    with pytest.raises(ValidationError, match=field):
        _quote(**{"last": 1.0, field: -0.01})


def test_chain_with_equal_columns_is_valid() -> None:
    """A chain whose columns all have one row per strike validates, None values included."""
    chain = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(5), **envelope())

    assert len(chain.strike) == 5
    assert chain.right == ["C", "P", "C", "P", "C"]
    assert math.isnan(chain.bid[0])
    assert chain.bid.dtype == np.float64 and not chain.bid.flags.writeable


def test_empty_chain_is_valid() -> None:
    """A chain with zero contracts (all columns empty) is consistent."""
    chain = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(0), **envelope())

    assert chain.rows == 0 and chain.strike.size == 0


@pytest.mark.parametrize("column", _CHAIN_COLUMNS)
def test_chain_column_of_unequal_length_is_rejected(column: str) -> None:
    """Any column shorter than strike is refused, naming the column."""
    columns = chain_columns(3)
    columns[column] = columns[column][:2]

    with pytest.raises(ValidationError, match=f"column {column} has 2 rows"):
        OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **columns, **envelope())


def test_chain_right_must_be_c_or_p() -> None:
    """Rights other than C and P are refused."""
    columns = chain_columns(2)
    columns["right"] = ["C", "X"]
    with pytest.raises(ValidationError, match="right"):
        OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **columns, **envelope())


_PER_ROW = {
    "contract_id": ["SPX250321C05000000", None, "SPX250321C05010000"],
    "mark": [1.5, None, 2.0],
    "bid_size": [10.0, 0.0, None],
    "ask_size": [5.0, None, 1.0],
    "row_flags": [["junk_greeks:iv_above_3"], [], ["stale"]],
}


def test_chain_per_row_columns_are_optional_and_parallel() -> None:
    """Contract ids, marks, sizes and row flags may be absent as a whole; present, they have one entry per row."""
    bare = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(3), **envelope())
    full = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(3), **_PER_ROW, **envelope())

    assert (bare.contract_id, bare.mark.size, bare.row_flags) == ([], 0, [])
    assert bare.flags_of(2) == [] and full.flags_of(2) == ["stale"] and full.flags_of(1) == []
    assert column_list(full.bid_size) == [10.0, 0.0, None]


@pytest.mark.parametrize("column", sorted(_PER_ROW))
def test_chain_per_row_column_of_the_wrong_length_is_rejected(column: str) -> None:
    """A present per-row column must match the strikes, like every other column."""
    with pytest.raises(ValidationError, match=f"column {column} has 2 rows"):
        OptionChainSnapshot(
            symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(3), **{column: _PER_ROW[column][:2]}, **envelope()
        )


def test_typed_columns_give_the_validated_record() -> None:
    """from_typed_columns gives the same record as full validation; the envelope is still validated."""
    columns = {**chain_columns(3), **_PER_ROW}
    fields = {"symbol": "SPX", "expiry": date(2025, 3, 21), **envelope()}

    typed = OptionChainSnapshot.from_typed_columns(columns, **fields)

    assert typed == OptionChainSnapshot(**columns, **fields)
    assert OptionChainSnapshot.model_validate(typed.model_dump()) == typed
    with pytest.raises(ValidationError, match="symbol"):
        OptionChainSnapshot.from_typed_columns(columns, **{**fields, "symbol": "not a symbol"})


@pytest.mark.parametrize(
    ("change", "message"),
    [({"bid": [1.0]}, "column bid has 1 rows"), ({"mark": [1.0]}, "column mark has 1 rows"), ({"iv": []}, "iv")],
)
def test_typed_columns_still_check_names_and_lengths(change: dict[str, Any], message: str) -> None:
    """Unequal or unknown columns are refused even when their cells are trusted."""
    with pytest.raises(ValueError, match=message):
        OptionChainSnapshot.from_typed_columns(
            {**chain_columns(3), **change}, symbol="SPX", expiry=date(2025, 3, 21), **envelope()
        )


@pytest.mark.parametrize(
    ("cells", "message"),
    [(["1.5", 2.0, 3.0], "holds str"), ([True, 2.0, 3.0], "holds bool"), ([[1.0], 2.0, 3.0], "holds list")],
)
def test_number_column_cells_must_be_numbers(cells: list[Any], message: str) -> None:
    """A text, boolean or nested cell in a number column is refused, naming the column."""
    with pytest.raises(ValidationError, match=f"bid[\\s\\S]*{message}"):
        OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **{**chain_columns(3), "bid": cells}, **envelope())


@pytest.mark.parametrize("strike", [0.0, -5.0, None, math.inf])
def test_strikes_must_be_positive_and_finite(strike: float | None) -> None:
    """A strike of zero, below zero, absent or infinite is refused."""
    columns = chain_columns(3)
    columns["strike"] = [100.0, strike, 110.0]
    with pytest.raises(ValidationError, match="strike must be positive and finite"):
        OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **columns, **envelope())


def test_columns_are_read_only_and_copies_convert_lists() -> None:
    """A snapshot's arrays cannot be written; model_copy turns a list into a column like validation does."""
    chain = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(3), **envelope())
    with pytest.raises(ValueError, match="read-only"):
        chain.bid[0] = 1.0
    mine = np.array([1.0, 2.0, 3.0])
    held = chain.model_copy(update={"ask": mine})
    mine[0] = 99.0  # the caller's array changes; the record's column does not
    assert held.ask[0] == 1.0
    copy = chain.model_copy(update={"bid": [1.0, None, 2.0]})
    assert copy.bid.dtype == np.float64 and column_list(copy.bid) == [1.0, None, 2.0]
    assert copy != chain and copy == chain.model_copy(update={"bid": np.array([1.0, np.nan, 2.0])})


def test_json_form_of_a_chain_has_null_for_absent_values() -> None:
    """In JSON a number column is a list with null where the source gave nothing, and it reads back equal."""
    chain = OptionChainSnapshot(symbol="SPX", expiry=date(2025, 3, 21), **chain_columns(3), **envelope())
    dumped = chain.model_dump(mode="json")
    assert dumped["bid"] == column_list(chain.bid) and None in dumped["bid"]
    assert OptionChainSnapshot.model_validate_json(chain.model_dump_json()) == chain


def test_tick_kind_is_trade_or_bid_ask() -> None:
    """A tick is a trade or a bid/ask change, nothing else."""
    assert Tick(symbol="SPY", kind="bid_ask", bid=1.0, ask=1.1, **envelope()).kind == "bid_ask"
    with pytest.raises(ValidationError, match="kind"):
        Tick(symbol="SPY", kind="quote", price=1.0, **envelope())


def _bar(**ohlc: float) -> Bar:
    values = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, **ohlc}
    return Bar(symbol="SPY", interval_s=60, volume=100.0, **values, **envelope())


def test_valid_bar_and_flat_bar() -> None:
    """A bar inside its range validates, including one where all four prices are equal."""
    assert _bar().high == 11.0
    assert _bar(open=5.0, high=5.0, low=5.0, close=5.0).low == 5.0


@pytest.mark.parametrize(
    "ohlc",
    [
        {"low": 12.0},  # low > high
        {"open": 11.5},  # open above high
        {"close": 8.0},  # close below low
        {"high": 9.5, "low": 9.0},  # high below open and close
    ],
)
def test_bar_outside_its_range_is_rejected(ohlc: dict[str, float]) -> None:
    """low <= open, close <= high must hold."""
    with pytest.raises(ValidationError, match="low <= open, close <= high"):
        _bar(**ohlc)


def test_bar_interval_must_be_positive() -> None:
    """interval_s of 0 is refused."""
    with pytest.raises(ValidationError, match="interval_s"):
        Bar(symbol="SPY", interval_s=0, open=1.0, high=1.0, low=1.0, close=1.0, volume=0.0, **envelope())


def test_depth_snapshot_limits_levels() -> None:
    """Up to 50 levels per side are accepted; 51 are refused."""
    levels = [DepthLevel(price=100.0 - i / 100, size=1.0) for i in range(51)]

    assert len(DepthSnapshot(symbol="SPY", venue="ARCA", bids=levels[:50], asks=[], **envelope()).bids) == 50
    with pytest.raises(ValidationError, match="bids"):
        DepthSnapshot(symbol="SPY", venue="ARCA", bids=levels, asks=[], **envelope())


def test_depth_level_rejects_negative_size() -> None:
    """A depth level's size cannot be negative."""
    with pytest.raises(ValidationError, match="size"):
        DepthLevel(price=1.0, size=-1.0)
