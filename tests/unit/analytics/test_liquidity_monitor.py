"""Liquidity monitor: hand-checked book, walk-the-book slippage, statuses, validation, score, OFI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.liquidity_monitor import (
    BookStatus,
    LiquidityScoreParams,
    book_metrics,
    effective_spread,
    l1_books,
    liquidity_score,
    liquidity_snapshot,
    order_books,
    order_flow_imbalance,
    walk_book,
)
from tests.unit.analytics.microstructure_reference import book_reference, score_reference
from tests.unit.analytics.microstructure_samples import random_books

NAN = math.nan

# The hand-checked book (one symbol, three levels a side):
#   bids 100.00 x 200, 99.90 x 400, 99.80 x 800
#   asks 100.10 x 300, 100.20 x 500, 100.50 x 1000
# mid = 100.05, spread = 0.10 = 0.10 / 100.05 * 1e4 = 9.995002 bps
BID_PX = [100.00, 99.90, 99.80]
BID_SZ = [200.0, 400.0, 800.0]
ASK_PX = [100.10, 100.20, 100.50]
ASK_SZ = [300.0, 500.0, 1000.0]


def test_spread_depth_imbalance_and_microprice_by_hand() -> None:
    books = order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ)
    m = book_metrics(books, imbalance_half_life=1.0)
    assert m.status.tolist() == [BookStatus.OK]
    assert m.mid[0] == pytest.approx(100.05, rel=1e-15)
    assert m.spread[0] == pytest.approx(0.10, rel=1e-12)
    assert m.spread_bps[0] == pytest.approx(0.10 / 100.05 * 1e4, rel=1e-12)
    # microprice = (bid * Q_ask + ask * Q_bid) / (Q_bid + Q_ask) = (100 * 300 + 100.1 * 200) / 500 = 100.04:
    # more size on the ask pulls the fair price below the mid
    assert m.microprice[0] == pytest.approx(100.04, rel=1e-15)
    assert m.imbalance_top[0] == pytest.approx((200 - 300) / 500, rel=1e-15)
    # half-life 1 level: weights 1, 1/2, 1/4 -> bid 200 + 200 + 200 = 600, ask 300 + 250 + 250 = 800
    assert m.imbalance_weighted[0] == pytest.approx(-200 / 1400, rel=1e-15)
    assert (m.bid_depth_top[0], m.ask_depth_top[0]) == (200.0, 300.0)
    assert (m.bid_depth_5[0], m.ask_depth_5[0], m.bid_depth_10[0], m.ask_depth_10[0]) == (1400, 1800, 1400, 1800)
    assert m.bid_notional_5[0] == pytest.approx(20_000 + 39_960 + 79_840, rel=1e-15)
    assert m.ask_notional_5[0] == pytest.approx(30_030 + 50_100 + 100_500, rel=1e-15)


def test_walk_the_book_by_hand() -> None:
    books = order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ)
    buy = walk_book(books, 600.0, True)
    # 300 @ 100.10 + 300 @ 100.20 = 60,090 -> VWAP 100.15, 0.10 above mid = 9.995 bps
    assert buy.vwap[0] == pytest.approx(100.15, rel=1e-15)
    assert buy.slippage_bps[0] == pytest.approx(0.10 / 100.05 * 1e4, rel=1e-10)
    assert (buy.filled[0], buy.levels_used[0], buy.worst_price[0], buy.insufficient_depth[0]) == (
        600.0,
        2,
        100.20,
        False,
    )
    sell = walk_book(books, 500.0, False)
    # 200 @ 100.00 + 300 @ 99.90 = 49,970 -> VWAP 99.94, 0.11 below mid = 10.994503 bps
    assert sell.vwap[0] == pytest.approx(99.94, rel=1e-15)
    assert sell.slippage_bps[0] == pytest.approx(0.11 / 100.05 * 1e4, rel=1e-10)
    assert sell.levels_used[0] == 2


def test_insufficient_depth_is_flagged_with_the_partial_fill() -> None:
    books = order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ)
    est = walk_book(books, 5_000.0, True)
    # the asks hold 1,800: all three levels, 180,630 / 1,800 = 100.35
    assert est.insufficient_depth[0]
    assert (est.filled[0], est.levels_used[0], est.worst_price[0]) == (1_800.0, 3, 100.50)
    assert est.vwap[0] == pytest.approx(100.35, rel=1e-14)
    exact = walk_book(books, 1_800.0, True)  # exactly the visible size is not short
    assert not exact.insufficient_depth[0] and exact.filled[0] == 1_800.0


def test_imbalance_sign_follows_the_heavier_side() -> None:
    books = order_books(
        [[100.0, 99.9], [100.0, 99.9], [100.0, 99.9]],
        [[900.0, 900.0], [100.0, 100.0], [500.0, 500.0]],
        [[100.1, 100.2], [100.1, 100.2], [100.1, 100.2]],
        [[100.0, 100.0], [900.0, 900.0], [500.0, 500.0]],
    )
    m = book_metrics(books)
    assert m.imbalance_top[0] > 0 and m.imbalance_weighted[0] > 0 and m.microprice[0] > m.mid[0]
    assert m.imbalance_top[1] < 0 and m.imbalance_weighted[1] < 0 and m.microprice[1] < m.mid[1]
    assert m.imbalance_top[2] == 0 and m.imbalance_weighted[2] == 0 and m.microprice[2] == pytest.approx(m.mid[2])


def test_depth_decay_recovers_an_exponential_profile() -> None:
    mid = 100.0
    kappa = 0.05  # per bps
    dist = np.array([5.0, 15.0, 30.0, 50.0, 80.0])  # bps from mid
    bid_px = mid * (1 - dist / 1e4)
    ask_px = mid * (1 + dist / 1e4)
    bid_sz = 1_000 * np.exp(-kappa * dist)
    ask_sz = 1_000 * np.exp(+0.02 * dist)  # depth building away from the touch: negative decay
    m = book_metrics(order_books(bid_px, bid_sz, ask_px, ask_sz))
    assert m.bid_decay[0] == pytest.approx(kappa, rel=1e-10)
    assert m.ask_decay[0] == pytest.approx(-0.02, rel=1e-10)
    one_level = book_metrics(l1_books(99.9, 100.0, 100.1, 100.0))
    assert math.isnan(one_level.bid_decay[0])  # a slope needs two levels


def test_crossed_locked_and_one_sided_books_are_flagged() -> None:
    books = order_books(
        [[100.2, 100.0], [100.1, 100.0], [NAN, NAN], [100.0, 99.9]],
        [[10.0, 10.0], [10.0, 10.0], [0.0, 0.0], [10.0, 10.0]],
        [[100.1, 100.3], [100.1, 100.3], [100.1, 100.3], [100.1, 100.2]],
        [[10.0, 10.0], [10.0, 10.0], [10.0, 10.0], [10.0, 10.0]],
    )
    assert books.status.tolist() == [BookStatus.CROSSED, BookStatus.LOCKED, BookStatus.ONE_SIDED, BookStatus.OK]
    snap = liquidity_snapshot(books)
    m = snap.metrics
    # crossed: no price-based metric, depths still reported, no score
    assert np.isnan([m.mid[0], m.spread_bps[0], m.microprice[0], m.imbalance_top[0], snap.score[0]]).all()
    assert m.bid_depth_5[0] == 20.0 and math.isnan(snap.buy.slippage_bps[0])
    # locked: spread 0 and the metrics, but no score
    assert m.spread[1] == 0.0 and m.mid[1] == 100.1 and math.isnan(snap.score[1])
    # one-sided: no mid; selling into an empty bid side fills nothing
    assert math.isnan(m.mid[2]) and snap.sell.filled[2] == 0.0 and snap.sell.insufficient_depth[2]
    assert math.isnan(snap.sell.vwap[2]) and math.isnan(m.best_bid[2]) and m.best_ask[2] == 100.1
    assert 0.0 <= snap.score[3] <= 100.0
    empty = order_books([[NAN]], [[0.0]], [[NAN]], [[NAN]])
    assert empty.status.tolist() == [BookStatus.EMPTY]


def test_crossed_book_can_be_an_error_instead() -> None:
    with pytest.raises(AnalyticsInputError) as err:
        order_books([[99.0], [100.2]], [[1.0], [1.0]], [[100.0], [100.1]], [[1.0], [1.0]], on_crossed="raise")
    assert err.value.argument == "bid_px" and err.value.index == 1
    assert "crossed" in str(err.value)
    # a locked book is a market state, not an error, even then
    locked = order_books([[100.0]], [[1.0]], [[100.0]], [[1.0]], on_crossed="raise")
    assert locked.status.tolist() == [BookStatus.LOCKED]


@pytest.mark.parametrize(
    ("bid_px", "bid_sz", "ask_px", "ask_sz", "argument", "fragment"),
    [
        ([100.0, NAN, 99.8], [1.0, 0.0, 1.0], [100.1, 100.2, 100.3], [1.0] * 3, "bid_px", "level 2"),
        ([100.0, 99.9], [1.0, 1.0], [100.1, 100.1], [1.0, 1.0], "ask_px", "strictly increasing"),
        ([100.0, 100.5], [1.0, 1.0], [100.6, 100.7], [1.0, 1.0], "bid_px", "strictly decreasing"),
        ([100.0, 99.9], [1.0, 0.0], [100.1, 100.2], [1.0, 1.0], "bid_sz", "size > 0"),
        ([100.0, NAN], [1.0, 5.0], [100.1, 100.2], [1.0, 1.0], "bid_sz", "size 0 or NaN"),
        ([100.0, -1.0], [1.0, 1.0], [100.1, 100.2], [1.0, 1.0], "bid_px", "> 0"),
        ([100.0, 99.0], [1.0, 1.0], [100.1, math.inf], [1.0, 1.0], "ask_px", "> 0"),
        ([100.0, 99.0], [1.0, 1.0], [100.1, 100.2, 100.3], [1.0, 1.0, 1.0], "ask_px", "differs"),
    ],
)
def test_malformed_books_name_the_argument(
    bid_px: list[float], bid_sz: list[float], ask_px: list[float], ask_sz: list[float], argument: str, fragment: str
) -> None:
    with pytest.raises(AnalyticsInputError) as err:
        order_books(bid_px, bid_sz, ask_px, ask_sz)
    assert err.value.argument == argument
    assert fragment in str(err.value)


def test_score_by_hand_and_its_direction() -> None:
    params = LiquidityScoreParams(reference_notional=600 * 100.05)  # 600 shares at the mid
    snap = liquidity_snapshot(order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ), params=params)
    # spread 9.995 bps -> 5 / 14.995; depth min(139,800, 180,630) -> 139,800 / 639,800;
    # buy 600: 9.995 bps; sell 600: 200 @ 100 + 400 @ 99.9 -> 99.93333, 11.6608 bps
    spread_bps = 0.10 / 100.05 * 1e4
    sell_bps = (100.05 - 59_960 / 600) / 100.05 * 1e4
    expected = 100 * (
        0.4 * 5 / (5 + spread_bps) + 0.3 * 139_800 / 639_800 + 0.3 * 10 / (10 + 0.5 * (spread_bps + sell_bps))
    )
    assert snap.score[0] == pytest.approx(expected, rel=1e-9)
    wide = liquidity_snapshot(order_books(BID_PX, BID_SZ, [100.3, 100.4, 100.5], ASK_SZ), params=params)
    deep = liquidity_snapshot(order_books(BID_PX, np.array(BID_SZ) * 10, ASK_PX, np.array(ASK_SZ) * 10), params=params)
    assert wide.score[0] < snap.score[0] < deep.score[0]
    thin = LiquidityScoreParams(reference_notional=2_000 * 100.05)  # more than the bids hold
    assert liquidity_snapshot(order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ), params=thin).sell.insufficient_depth[0]


def test_score_params_are_validated() -> None:
    with pytest.raises(AnalyticsInputError) as err:
        LiquidityScoreParams(spread_ref_bps=0.0)
    assert err.value.argument == "spread_ref_bps"
    with pytest.raises(AnalyticsInputError):
        LiquidityScoreParams(weight_spread=0.0, weight_depth=0.0, weight_slippage=0.0)


def test_five_hundred_books_match_the_plain_python_reference() -> None:
    b = random_books(500, 10, seed=9)
    books = order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)
    assert (books.status == BookStatus.OK).all()
    snap = liquidity_snapshot(books)
    qty = 100_000.0 / snap.metrics.mid
    for i in range(0, 500, 7):
        ref = book_reference(
            b.bid_px[i].tolist(), b.bid_sz[i].tolist(), b.ask_px[i].tolist(), b.ask_sz[i].tolist(), float(qty[i])
        )
        for name in (
            "mid",
            "spread_bps",
            "microprice",
            "imbalance_top",
            "imbalance_weighted",
            "bid_depth_5",
            "bid_notional_5",
            "bid_decay",
            "ask_decay",
        ):
            assert getattr(snap.metrics, name)[i] == pytest.approx(ref[name], rel=1e-10, abs=1e-12), (i, name)
        assert snap.buy.vwap[i] == pytest.approx(ref["buy_vwap"], rel=1e-13)
        assert snap.sell.slippage_bps[i] == pytest.approx(ref["sell_slippage_bps"], rel=1e-8, abs=1e-10)
        assert bool(snap.buy.insufficient_depth[i]) == bool(ref["buy_insufficient"])
        short = bool(ref["buy_insufficient"] or ref["sell_insufficient"])
        expected = score_reference(
            ref["spread_bps"],
            ref["bid_notional_5"],
            ref["ask_notional_5"],
            ref["buy_slippage_bps"],
            ref["sell_slippage_bps"],
            short,
        )
        assert snap.score[i] == pytest.approx(expected, rel=1e-10)


def test_l1_books_equal_the_top_level_of_l2() -> None:
    b = random_books(50, 5, seed=10)
    l2 = book_metrics(order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz))
    l1 = book_metrics(l1_books(b.bid_px[:, 0], b.bid_sz[:, 0], b.ask_px[:, 0], b.ask_sz[:, 0]))
    for name in ("mid", "spread_bps", "microprice", "imbalance_top", "bid_depth_top", "ask_depth_top"):
        np.testing.assert_array_equal(getattr(l1, name), getattr(l2, name), err_msg=name)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1), st.floats(1.0, 20_000.0), st.booleans())
def test_walk_invariants(levels: int, seed: int, size: float, is_buy: bool) -> None:
    b = random_books(3, levels, seed=seed)
    books = order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)
    est = walk_book(books, size, is_buy)
    m = book_metrics(books)
    best = m.best_ask if is_buy else m.best_bid
    available = (b.ask_sz if is_buy else b.bid_sz).sum(axis=1)
    assert np.all(est.filled <= size) and np.all(est.insufficient_depth == (available < size))
    np.testing.assert_allclose(est.filled, np.minimum(size, available), rtol=1e-12)
    side = 1.0 if is_buy else -1.0
    assert np.all(side * (est.vwap - best) >= -1e-9) and np.all(side * (est.worst_price - est.vwap) >= -1e-9)
    assert np.all(est.slippage_bps >= 0.0)
    assert np.all((m.imbalance_weighted >= -1) & (m.imbalance_weighted <= 1))
    assert np.all((m.microprice >= m.best_bid) & (m.microprice <= m.best_ask))


def test_walk_book_arguments() -> None:
    books = order_books(BID_PX, BID_SZ, ASK_PX, ASK_SZ)
    with pytest.raises(AnalyticsInputError) as err:
        walk_book(books, 0.0, True)
    assert err.value.argument == "order_size"
    with pytest.raises(AnalyticsInputError) as err:
        walk_book(books, [1.0, 2.0], True)
    assert err.value.argument == "order_size"
    with pytest.raises(AnalyticsInputError) as err:
        book_metrics(books, imbalance_half_life=0.0)
    assert err.value.argument == "imbalance_half_life"


def test_score_is_nan_only_for_books_that_are_not_ok() -> None:
    b = random_books(20, 10, seed=11)
    books = order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)
    m = book_metrics(books)
    q = 1_000.0
    score = liquidity_score(m, walk_book(books, q, True), walk_book(books, q, False))
    assert np.isfinite(score).all() and ((score >= 0) & (score <= 100)).all()


# ------------------------------------------------------------- effective spread, OFI
def test_effective_spread_by_hand() -> None:
    quote_t = np.array([0, 10, 20], dtype=np.int64)
    bid = [100.00, 100.20, 100.50]
    ask = [100.10, 100.30, 100.40]  # the third quote is crossed
    trade_t = np.array([-1, 5, 10, 25], dtype=np.int64)
    price = [100.0, 100.10, 100.22, 100.45]
    size = [100.0, 300.0, 100.0, 50.0]
    es = effective_spread(trade_t, price, size, quote_t, bid, ask)
    # t=-1: before any quote; t=5: mid 100.05, 2 * 0.05 = 0.10; t=10: mid 100.25 (quote at
    # the same ns prevails), 2 * 0.03 = 0.06; t=25: prevailing quote crossed -> unmatched
    assert es.matched.tolist() == [False, True, True, False] and es.unmatched_count == 2
    np.testing.assert_allclose(es.spread[1:3], [0.10, 0.06], rtol=1e-10)
    np.testing.assert_allclose(es.spread_bps[1:3], [0.10 / 100.05 * 1e4, 0.06 / 100.25 * 1e4], rtol=1e-10)
    assert es.mean_bps == pytest.approx((300 * 0.10 / 100.05 + 100 * 0.06 / 100.25) / 400 * 1e4, rel=1e-10)
    assert es.mean_spread == pytest.approx((300 * 0.10 + 100 * 0.06) / 400, rel=1e-10)
    none = effective_spread(trade_t[:1], price[:1], size[:1], quote_t, bid, ask)
    assert none.mean_bps is None and none.unmatched_count == 1
    with pytest.raises(AnalyticsInputError) as err:
        effective_spread(trade_t, price, size, quote_t[::-1].copy(), bid, ask)
    assert err.value.argument == "quote_time_ns"


def test_order_flow_imbalance_cases() -> None:
    # Cont, Kukanov, Stoikov (2014): each event's contribution
    bid = [100.0, 100.0, 100.1, 100.0, 100.0]
    bid_size = [10.0, 15.0, 5.0, 8.0, 8.0]
    ask = [100.2, 100.2, 100.2, 100.2, 100.1]
    ask_size = [20.0, 20.0, 20.0, 25.0, 7.0]
    e = order_flow_imbalance(bid, bid_size, ask, ask_size)
    # 1: bid size 10 -> 15 at the same price: +15 - 10 = +5
    # 2: bid up to 100.1 with 5: +5
    # 3: bid back down to 100.0 (8): -5; ask size 20 -> 25 at the same price: -25 + 20 = -5; total -10
    # 4: ask down to 100.1 with 7: -7; bid unchanged 8 -> 8: 0
    np.testing.assert_array_equal(e, [5.0, 5.0, -10.0, -7.0])
    wide = order_flow_imbalance(np.c_[bid, bid], np.c_[bid_size, bid_size], np.c_[ask, ask], np.c_[ask_size, ask_size])
    assert wide.shape == (4, 2) and np.array_equal(wide[:, 1], e)
    with pytest.raises(AnalyticsInputError) as err:
        order_flow_imbalance(bid, bid_size[:3], ask, ask_size)
    assert err.value.argument == "bid_size"
