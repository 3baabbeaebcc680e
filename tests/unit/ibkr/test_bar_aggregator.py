"""Bars from trades and the roll-up of short bars: hand-checked cases and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.ibkr.bar_aggregator import OhlcvBar, TradeBarAggregator, bucket_start, roll_up

T0 = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC)  # on a minute: every bucket boundary


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_trades_make_one_bar_per_bucket_completed_by_the_next_bucket() -> None:
    agg = TradeBarAggregator(5)
    assert agg.add("SPY", at(0.2), 100.0, 10) == []
    assert agg.add("SPY", at(1.0), 101.5, 5) == []
    assert agg.add("SPY", at(4.9), 99.0, 1) == []
    assert agg.add("SPY", at(3.0), 100.5, 4) == []  # out of order inside the open bucket: still counted
    (bar,) = agg.add("SPY", at(5.0), 102.0, 2)  # the first trade of the next bucket closes the bar
    assert bar == OhlcvBar("SPY", at(0), 5, 100.0, 101.5, 99.0, 100.5, 20.0, 4)


def test_a_quiet_symbol_closes_after_the_grace_and_late_trades_are_counted_out() -> None:
    agg = TradeBarAggregator(5, grace_s=1.0)
    agg.add("QQQ", at(2.0), 500.0, 3)
    assert agg.close_due(at(5.9)) == []  # the bucket ended, but its trades may still be in flight
    (bar,) = agg.close_due(at(6.0))
    assert (bar.start, bar.open, bar.close, bar.volume, bar.trades) == (at(0), 500.0, 500.0, 3.0, 1)
    assert agg.add("QQQ", at(4.0), 501.0, 1) == []  # late for a closed bar
    assert agg.late_trades == 1
    assert agg.close_due(at(60)) == []  # the late trade opened nothing


def test_symbols_are_independent() -> None:
    agg = TradeBarAggregator(5)
    agg.add("SPY", at(1), 100.0, 1)
    agg.add("IWM", at(2), 200.0, 1)
    assert [b.symbol for b in agg.add("SPY", at(6), 100.0, 1)] == ["SPY"]
    assert [b.symbol for b in agg.close_due(at(7))] == ["IWM"]


@pytest.mark.parametrize(
    ("price", "size", "naive"),
    [(float("nan"), 1.0, False), (0.0, 1.0, False), (10.0, -1.0, False), (10.0, float("inf"), False), (1.0, 1.0, True)],
)
def test_bad_trades_are_refused_with_the_symbol_named(price: float, size: float, naive: bool) -> None:
    when = at(1).replace(tzinfo=None) if naive else at(1)
    with pytest.raises(ValueError, match="SPY"):
        TradeBarAggregator(5).add("SPY", when, price, size)


def test_roll_up_matches_the_compaction_rules() -> None:
    bars = [
        OhlcvBar("SPY", at(55), 5, 10.0, 11.0, 9.5, 10.5, 100.0, 3),  # previous minute
        OhlcvBar("SPY", at(65), 5, 10.6, 12.0, 10.1, 11.8, 50.0, 2),
        OhlcvBar("SPY", at(60), 5, 10.4, 10.9, 9.0, 10.6, 70.0, 4),  # unsorted input
        OhlcvBar("SPY", at(115), 5, 11.8, 11.9, 11.0, 11.2, 30.0, 1),
    ]
    first, second = roll_up(bars, 60)
    assert first == OhlcvBar("SPY", at(0), 60, 10.0, 11.0, 9.5, 10.5, 100.0, 3)
    assert second == OhlcvBar("SPY", at(60), 60, 10.4, 12.0, 9.0, 11.2, 150.0, 7)
    with pytest.raises(ValueError, match="cannot roll 5 s bars of SPY into 7 s"):
        roll_up(bars, 7)


trades = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=600, allow_nan=False),
        st.floats(min_value=0.01, max_value=1e4, allow_nan=False),
        st.integers(min_value=0, max_value=10_000),
    ),
    min_size=1,
    max_size=200,
)


@given(trades)
def test_five_second_bars_rolled_to_a_minute_equal_minute_bars_from_the_same_trades(
    raw: list[tuple[float, float, int]],
) -> None:
    ordered = sorted(raw)
    five, minute = TradeBarAggregator(5), TradeBarAggregator(60)
    bars5: list[OhlcvBar] = []
    bars60: list[OhlcvBar] = []
    for t, price, size in ordered:
        bars5 += five.add("SPY", at(t), price, size)
        bars60 += minute.add("SPY", at(t), price, size)
    bars5 += five.close_due(at(10_000))
    bars60 += minute.close_due(at(10_000))
    assert roll_up(bars5, 60) == bars60
    assert sum(b.trades for b in bars5) == len(ordered) and five.late_trades == 0
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars5)
    assert all(bucket_start(b.start, 5) == b.start for b in bars5)
