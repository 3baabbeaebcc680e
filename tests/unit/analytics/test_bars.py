"""Bars: OHLCV against a naive reference, roll-ups, the streaming aggregator, realized volatility."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics.bars import (
    FIVE_MINUTES_NS,
    FIVE_SECONDS_NS,
    ONE_MINUTE_NS,
    TRADING_SECONDS_PER_YEAR,
    TWO_MINUTES_NS,
    BarAggregator,
    Bars,
    aggregate_ticks,
    log_returns,
    realized_variance,
    realized_volatility,
    rolling_realized_volatility,
    rollup,
)
from quanticity.analytics.inputs import AnalyticsInputError
from tests.unit.analytics.microstructure_reference import bars_reference
from tests.unit.analytics.microstructure_samples import SESSION_OPEN_NS, random_trades

SEC = 1_000_000_000


def assert_bars_match_reference(bars: Bars, reference: Mapping[int, tuple[float, ...]]) -> None:
    assert bars.start_ns.tolist() == list(reference)
    ref = np.array(list(reference.values()))
    np.testing.assert_array_equal(bars.open, ref[:, 0])
    np.testing.assert_array_equal(bars.high, ref[:, 1])
    np.testing.assert_array_equal(bars.low, ref[:, 2])
    np.testing.assert_array_equal(bars.close, ref[:, 3])
    np.testing.assert_array_equal(bars.volume, ref[:, 4])  # integer sizes: sums are exact
    np.testing.assert_allclose(bars.vwap, ref[:, 5], rtol=1e-13)
    np.testing.assert_array_equal(bars.trade_count, ref[:, 6].astype(np.int64))


def assert_same_bars(a: Bars, b: Bars) -> None:
    assert a.interval_ns == b.interval_ns
    for field in ("start_ns", "open", "high", "low", "close", "volume", "vwap", "trade_count"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@pytest.mark.parametrize("interval", [FIVE_SECONDS_NS, ONE_MINUTE_NS, TWO_MINUTES_NS, FIVE_MINUTES_NS])
def test_ohlcv_matches_naive_reference(interval: int) -> None:
    trades = random_trades(20_000, seed=1)
    bars = aggregate_ticks(trades.time_ns, trades.price, trades.size, interval_ns=interval)
    reference = bars_reference(trades.time_ns.tolist(), trades.price.tolist(), trades.size.tolist(), interval)
    assert_bars_match_reference(bars, reference)
    assert bars.volume.sum() == trades.size.sum()
    assert bars.trade_count.sum() == trades.size.size


def test_hand_checked_bars_and_epoch_session_alignment() -> None:
    # The session open (09:30 New York) is a multiple of 5 min from the epoch, so the
    # first 5 s bar of the session starts exactly there.
    open_ns = int(datetime(2024, 6, 5, 9, 30, tzinfo=ZoneInfo("America/New_York")).timestamp()) * SEC
    assert open_ns == SESSION_OPEN_NS
    t = np.array([open_ns - 1, open_ns, open_ns + 2 * SEC, open_ns + 5 * SEC - 1, open_ns + 5 * SEC], dtype=np.int64)
    price = [10.0, 10.5, 11.0, 10.25, 9.0]
    size = [100.0, 200.0, 100.0, 100.0, 50.0]
    bars = aggregate_ticks(t, price, size)
    # bar [open-5s, open): 1 trade; [open, open+5s): 3 trades; [open+5s, ...): 1 trade
    assert bars.start_ns.tolist() == [open_ns - 5 * SEC, open_ns, open_ns + 5 * SEC]
    assert bars.end_ns.tolist() == [open_ns, open_ns + 5 * SEC, open_ns + 10 * SEC]
    b = bars.bar(1)
    assert (b.open, b.high, b.low, b.close, b.volume, b.trade_count) == (10.5, 11.0, 10.25, 10.25, 400.0, 3)
    assert b.vwap == pytest.approx((10.5 * 200 + 11.0 * 100 + 10.25 * 100) / 400, rel=1e-15)


def test_empty_input_gives_no_bars() -> None:
    bars = aggregate_ticks(np.empty(0, dtype=np.int64), [], [])
    assert len(bars) == 0 and bars.volume.dtype == np.float64


@pytest.mark.parametrize("target", [ONE_MINUTE_NS, TWO_MINUTES_NS, FIVE_MINUTES_NS])
def test_rollups_equal_direct_aggregation(target: int) -> None:
    trades = random_trades(30_000, seed=2, mean_gap_ms=150.0)
    five_s = aggregate_ticks(trades.time_ns, trades.price, trades.size)
    direct = aggregate_ticks(trades.time_ns, trades.price, trades.size, interval_ns=target)
    rolled = rollup(five_s, target)
    for field in ("start_ns", "open", "high", "low", "close", "volume", "trade_count"):
        np.testing.assert_array_equal(getattr(rolled, field), getattr(direct, field), err_msg=field)
    np.testing.assert_allclose(rolled.vwap, direct.vwap, rtol=1e-13)
    assert rolled.interval_ns == target


def test_rollup_of_a_rollup_equals_direct() -> None:
    trades = random_trades(10_000, seed=3)
    one_m = rollup(aggregate_ticks(trades.time_ns, trades.price, trades.size), ONE_MINUTE_NS)
    five_m = rollup(one_m, FIVE_MINUTES_NS)
    direct = aggregate_ticks(trades.time_ns, trades.price, trades.size, interval_ns=FIVE_MINUTES_NS)
    np.testing.assert_array_equal(five_m.close, direct.close)
    np.testing.assert_array_equal(five_m.trade_count, direct.trade_count)


def test_rollup_rejects_a_non_multiple_interval_and_unaligned_bars() -> None:
    trades = random_trades(100, seed=4)
    bars = aggregate_ticks(trades.time_ns, trades.price, trades.size, interval_ns=ONE_MINUTE_NS)
    with pytest.raises(AnalyticsInputError) as err:
        rollup(bars, 90 * SEC)
    assert err.value.argument == "interval_ns"
    with pytest.raises(AnalyticsInputError) as err:
        rollup(bars, FIVE_MINUTES_NS, origin_ns=SEC)
    assert err.value.argument == "bars"


def test_streaming_in_chunks_equals_batch_exactly() -> None:
    trades = random_trades(5_000, seed=5)
    batch = aggregate_ticks(trades.time_ns, trades.price, trades.size)
    agg = BarAggregator(FIVE_SECONDS_NS)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, 5_000), 60, replace=False))
    parts: list[Bars] = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, 5_000], strict=True):
        update = agg.add(trades.time_ns[lo:hi], trades.price[lo:hi], trades.size[lo:hi])
        assert update.late_ticks == 0
        parts.append(update.completed)
    parts.append(agg.flush())
    streamed = Bars(
        FIVE_SECONDS_NS,
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("start_ns", "open", "high", "low", "close")),
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("volume", "vwap", "trade_count")),
    )
    assert_same_bars(streamed, batch)


def test_single_tick_streaming_emits_each_bar_when_the_next_interval_starts() -> None:
    agg = BarAggregator(FIVE_SECONDS_NS)
    assert agg.add(0, 10.0, 1.0).completed.start_ns.size == 0
    assert agg.add(4 * SEC, 12.0, 1.0).completed.start_ns.size == 0
    open_bar = agg.open_bar
    assert open_bar is not None and open_bar.trade_count == 2 and open_bar.close == 12.0
    done = agg.add(7 * SEC, 11.0, 2.0).completed
    assert done.start_ns.tolist() == [0] and done.close.tolist() == [12.0] and done.vwap.tolist() == [11.0]


def test_out_of_order_ticks_within_the_open_bar_merge_by_timestamp() -> None:
    agg = BarAggregator(FIVE_SECONDS_NS)
    # arrival order: t=2s, t=1s (earlier: becomes the open), t=4s, t=3s (earlier than the last: not the close)
    agg.add(np.array([2, 1, 4, 3], dtype=np.int64) * SEC, [20.0, 10.0, 40.0, 30.0], [1.0, 1.0, 1.0, 1.0])
    bar = agg.flush().bar(0)
    assert (bar.open, bar.high, bar.low, bar.close, bar.trade_count) == (10.0, 40.0, 10.0, 40.0, 4)


def test_ticks_older_than_the_open_bar_are_late_counted_and_never_merged() -> None:
    agg = BarAggregator(FIVE_SECONDS_NS)
    agg.add(np.array([1, 6], dtype=np.int64) * SEC, [10.0, 11.0], [5.0, 5.0])  # bar [0,5s) done, [5,10s) open
    update = agg.add(np.array([2 * SEC, 7 * SEC, 3 * SEC], dtype=np.int64), [99.0, 12.0, 98.0], [7.0, 1.0, 8.0])
    assert update.late_ticks == 2 and update.late_volume == 15.0
    assert update.completed.start_ns.size == 0
    assert (agg.late_ticks, agg.late_volume) == (2, 15.0)
    open_bar = agg.open_bar
    assert open_bar is not None
    assert (open_bar.high, open_bar.volume, open_bar.trade_count) == (12.0, 6.0, 2)  # 98/99 never merged


def test_close_until_emits_on_the_clock_and_later_ticks_for_it_are_late() -> None:
    agg = BarAggregator(FIVE_SECONDS_NS)
    agg.add(1 * SEC, 10.0, 1.0)
    assert len(agg.close_until(5 * SEC - 1)) == 0
    done = agg.close_until(5 * SEC)
    assert done.start_ns.tolist() == [0] and agg.open_bar is None
    update = agg.add(4 * SEC, 10.5, 3.0)
    assert update.late_ticks == 1 and update.late_volume == 3.0
    assert agg.add(5 * SEC, 11.0, 1.0).late_ticks == 0


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(AnalyticsInputError) as err:
        aggregate_ticks(np.array([2, 1], dtype=np.int64), [1.0, 1.0], [1.0, 1.0])
    assert err.value.argument == "time_ns" and err.value.index == 1
    with pytest.raises(AnalyticsInputError) as err:
        aggregate_ticks(np.array([1.0, 2.0]), [1.0, 1.0], [1.0, 1.0])
    assert err.value.argument == "time_ns"
    with pytest.raises(AnalyticsInputError) as err:
        aggregate_ticks(np.array([1, 2]), [1.0, -1.0], [1.0, 1.0])
    assert err.value.argument == "price" and err.value.index == 1
    with pytest.raises(AnalyticsInputError) as err:
        aggregate_ticks(np.array([1, 2]), [1.0, 1.0], [1.0, 0.0])
    assert err.value.argument == "size"
    with pytest.raises(AnalyticsInputError) as err:
        aggregate_ticks(np.array([1, 2]), [1.0, 1.0, 1.0], [1.0, 1.0])
    assert err.value.argument == "price"
    with pytest.raises(AnalyticsInputError) as err:
        BarAggregator(0)
    assert err.value.argument == "interval_ns"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 120 * SEC), st.floats(1.0, 1_000.0), st.integers(1, 10_000)),
        min_size=1,
        max_size=200,
    )
)
def test_bar_invariants_and_streaming_one_by_one(ticks: list[tuple[int, float, int]]) -> None:
    ticks.sort(key=lambda x: x[0])
    t = np.array([x[0] for x in ticks], dtype=np.int64)
    p = np.array([x[1] for x in ticks])
    s = np.array([float(x[2]) for x in ticks])
    bars = aggregate_ticks(t, p, s)
    assert bars.volume.sum() == s.sum() and bars.trade_count.sum() == t.size
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert np.all((bars.vwap >= bars.low * (1 - 1e-15)) & (bars.vwap <= bars.high * (1 + 1e-15)))
    agg = BarAggregator()
    emitted = [agg.add(t[i], p[i], s[i]).completed for i in range(t.size)] + [agg.flush()]
    assert np.concatenate([e.close for e in emitted]).tolist() == bars.close.tolist()


# ------------------------------------------------------------------ realized volatility
def test_realized_volatility_by_hand() -> None:
    close = [100.0, 101.0, 100.0]
    r = math.log(1.01)
    assert log_returns(close) == pytest.approx([r, -r], rel=1e-15)
    assert realized_variance(close) == pytest.approx(2 * r * r, rel=1e-14)
    # mean squared return per 5 s bar x (252 * 23,400 s / 5 s) bars per year
    assert realized_volatility(close, FIVE_SECONDS_NS) == pytest.approx(
        math.sqrt(r * r * TRADING_SECONDS_PER_YEAR / 5), rel=1e-14
    )
    assert realized_volatility(close, FIVE_SECONDS_NS, annualize=False) == pytest.approx(math.sqrt(2) * r, rel=1e-14)


def test_rolling_realized_volatility_matches_each_window() -> None:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200)))
    rolling = rolling_realized_volatility(close, 30, ONE_MINUTE_NS)
    assert rolling.size == 200 - 30
    for j in (0, 57, 169):
        assert rolling[j] == pytest.approx(realized_volatility(close[j : j + 31], ONE_MINUTE_NS), rel=1e-13)
    assert rolling_realized_volatility(close[:10], 30, ONE_MINUTE_NS).size == 0


def test_realized_volatility_needs_two_prices() -> None:
    with pytest.raises(AnalyticsInputError) as err:
        realized_variance([100.0])
    assert err.value.argument == "close"
    with pytest.raises(AnalyticsInputError) as err:
        rolling_realized_volatility([1.0, 2.0], 0, ONE_MINUTE_NS)
    assert err.value.argument == "window"
