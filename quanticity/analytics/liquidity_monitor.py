"""Liquidity from L1/L2 books: spreads, depth and its decay, imbalance, slippage, a 0-100 score.

Books are ``(symbols, levels)`` float64 arrays per side (level 0 = best), so one call
covers a whole watchlist; ``l1_books`` wraps top-of-book quotes as one-level books. A
level is present when its price is finite; present levels are contiguous from level 0,
with bid prices strictly decreasing and ask prices strictly increasing; a missing level
has size 0 or NaN. Malformed books raise ``AnalyticsInputError`` naming the argument,
symbol row and level.

Crossed and locked books are market states, not malformed input: each book gets a
``BookStatus``. ``CROSSED`` (best bid > best ask, a stale or broken feed) and one-sided
books get NaN for every price-based metric (depths are still reported); ``LOCKED``
(best bid == best ask) gets its metrics (spread 0) but, like every non-``OK`` book, no
liquidity score. ``order_books(..., on_crossed="raise")`` turns a crossed book into an
error instead. Formulas and sources: docs/module3_formulas.md, "Liquidity monitor".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._jit import kernel
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "BookMetrics",
    "BookStatus",
    "EffectiveSpread",
    "LiquidityScoreParams",
    "LiquiditySnapshot",
    "OrderBooks",
    "SlippageEstimate",
    "book_metrics",
    "effective_spread",
    "l1_books",
    "liquidity_score",
    "liquidity_snapshot",
    "order_books",
    "order_flow_imbalance",
    "walk_book",
]

BPS = 1e4


class BookStatus(IntEnum):
    """State of one book's top of book."""

    OK = 0
    LOCKED = 1  # best bid == best ask: metrics computed (spread 0), no score
    CROSSED = 2  # best bid > best ask: price-based metrics NaN, no score
    ONE_SIDED = 3  # one side has no levels: price-based metrics NaN, no score
    EMPTY = 4  # no levels at all


_OK, _LOCKED, _CROSSED, _ONE_SIDED, _EMPTY = (int(s) for s in BookStatus)

_PRICE_OR_MISSING = Bound(low=0.0, allow_nan=True)
_SIZE_OR_MISSING = Bound(low=0.0, low_inclusive=True, allow_nan=True)
_POSITIVE = Bound(low=0.0)
_NON_NEGATIVE = Bound(low=0.0, low_inclusive=True)

# Validation problems found by the kernel: (code, side, row, level).
_BAD_SIZE, _GHOST_SIZE, _HOLE, _ORDER = 1, 2, 3, 4
_PROBLEMS = {
    _BAD_SIZE: "a present level (finite price) needs a finite size > 0",
    _GHOST_SIZE: "a missing level (NaN price) must have size 0 or NaN",
    _HOLE: "levels must be contiguous from level 0 (a present level follows a missing one)",
    _ORDER: "prices must move away from the touch level by level (bids strictly decreasing, asks strictly increasing)",
}

# Rows of the metrics kernel's output, in BookMetrics field order after `status`.
_BEST_BID, _BEST_ASK, _MID, _SPREAD, _SPREAD_BPS, _MICRO, _IMB_TOP, _IMB_W = range(8)
_BID_D1, _ASK_D1 = 8, 13  # each side: depth top, depth 5, depth 10, notional 5, decay
_METRIC_ROWS = 18


@dataclass(frozen=True, slots=True)
class OrderBooks:
    """Validated L2 books, one row per symbol.

    Attributes:
        bid_px: ``(m, L)`` bid prices, level 0 best; NaN where a level is missing.
        bid_sz: ``(m, L)`` bid sizes (0 where missing).
        ask_px: ``(m, L)`` ask prices.
        ask_sz: ``(m, L)`` ask sizes.
        bid_levels: ``(m,)`` present bid levels.
        ask_levels: ``(m,)`` present ask levels.
        status: ``(m,)`` ``BookStatus`` codes (int8).
    """

    bid_px: NDArray[np.float64]
    bid_sz: NDArray[np.float64]
    ask_px: NDArray[np.float64]
    ask_sz: NDArray[np.float64]
    bid_levels: NDArray[np.int64]
    ask_levels: NDArray[np.int64]
    status: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.status.size)


@dataclass(frozen=True, slots=True)
class BookMetrics:
    """Per-book liquidity metrics, each an ``(m,)`` float64 array (see the module docstring for NaN rules).

    Attributes:
        status: ``BookStatus`` codes.
        best_bid: level-0 bid (NaN if none).
        best_ask: level-0 ask.
        mid: ``(bid + ask) / 2``.
        spread: quoted spread ``ask - bid``.
        spread_bps: ``spread / mid * 1e4``.
        microprice: size-weighted mid ``(bid * Q_ask + ask * Q_bid) / (Q_bid + Q_ask)``.
        imbalance_top: ``(Q_bid - Q_ask) / (Q_bid + Q_ask)`` at level 0, in [-1, 1]; > 0 = bid-heavy.
        imbalance_weighted: the same over all levels with weights ``2**(-k / half_life)``.
        bid_depth_top / ask_depth_top: level-0 size.
        bid_depth_5 / ask_depth_5: size over levels 0-4 (fewer if the book is shallower).
        bid_depth_10 / ask_depth_10: size over levels 0-9.
        bid_notional_5 / ask_notional_5: ``sum price * size`` over levels 0-4.
        bid_decay / ask_decay: ``kappa`` of ``size_k ~ A exp(-kappa d_k)``, ``d_k`` the
            level's distance from mid in bps; per bps (> 0: thinning away from the touch);
            NaN with fewer than two levels on the side.
    """

    status: NDArray[np.int8]
    best_bid: NDArray[np.float64]
    best_ask: NDArray[np.float64]
    mid: NDArray[np.float64]
    spread: NDArray[np.float64]
    spread_bps: NDArray[np.float64]
    microprice: NDArray[np.float64]
    imbalance_top: NDArray[np.float64]
    imbalance_weighted: NDArray[np.float64]
    bid_depth_top: NDArray[np.float64]
    bid_depth_5: NDArray[np.float64]
    bid_depth_10: NDArray[np.float64]
    bid_notional_5: NDArray[np.float64]
    bid_decay: NDArray[np.float64]
    ask_depth_top: NDArray[np.float64]
    ask_depth_5: NDArray[np.float64]
    ask_depth_10: NDArray[np.float64]
    ask_notional_5: NDArray[np.float64]
    ask_decay: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SlippageEstimate:
    """Walking the book for one order per symbol.

    Attributes:
        vwap: average fill price of the part the book can fill (NaN if it fills nothing).
        slippage_bps: cost vs mid, ``(vwap - mid) / mid * 1e4`` for a buy and
            ``(mid - vwap) / mid * 1e4`` for a sell; NaN where the book has no mid or is
            crossed. With ``insufficient_depth`` it covers the fillable part only, a
            lower bound on the true cost.
        filled: quantity the visible book fills (``order_size`` unless insufficient).
        levels_used: levels touched.
        worst_price: price of the deepest level touched (NaN if none).
        insufficient_depth: the visible book holds less than ``order_size``.
        status: the book's ``BookStatus``.
    """

    vwap: NDArray[np.float64]
    slippage_bps: NDArray[np.float64]
    filled: NDArray[np.float64]
    levels_used: NDArray[np.int64]
    worst_price: NDArray[np.float64]
    insufficient_depth: NDArray[np.bool_]
    status: NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class LiquidityScoreParams:
    """Reference scales and weights of the composite liquidity score.

    Each component maps to (0, 1] as ``ref / (ref + x)`` (a cost ``x``) or
    ``x / (x + ref)`` (a depth ``x``), so a component is 0.5 exactly at its reference.
    Defaults suit US large-cap equities and ETFs; options need smaller depth scales.

    Attributes:
        spread_ref_bps: quoted spread scoring 0.5.
        depth_ref_notional: ``min(bid_notional_5, ask_notional_5)`` scoring 0.5 (currency).
        slippage_ref_bps: mean buy/sell slippage of the reference order scoring 0.5.
        reference_notional: size of the reference order, currency (shares = notional / mid).
        weight_spread / weight_depth / weight_slippage: component weights, >= 0, not all 0.
    """

    spread_ref_bps: float = 5.0
    depth_ref_notional: float = 500_000.0
    slippage_ref_bps: float = 10.0
    reference_notional: float = 100_000.0
    weight_spread: float = 0.4
    weight_depth: float = 0.3
    weight_slippage: float = 0.3

    def __post_init__(self) -> None:
        for name in ("spread_ref_bps", "depth_ref_notional", "slippage_ref_bps", "reference_notional"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise AnalyticsInputError(name, f"must be finite and > 0, got {value!r}")
        weights = (self.weight_spread, self.weight_depth, self.weight_slippage)
        for name, value in zip(("weight_spread", "weight_depth", "weight_slippage"), weights, strict=True):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise AnalyticsInputError(name, f"must be finite and >= 0, got {value!r}")
        if sum(weights) <= 0:
            raise AnalyticsInputError("weight_spread", "the three weights must not all be 0")


@dataclass(frozen=True, slots=True)
class LiquiditySnapshot:
    """Everything the liquidity agent publishes per symbol.

    Attributes:
        metrics: spreads, depths, imbalance, microprice, decay.
        buy: slippage of buying the reference order.
        sell: slippage of selling it.
        score: composite score in [0, 100]; NaN unless the book is ``OK``.
    """

    metrics: BookMetrics
    buy: SlippageEstimate
    sell: SlippageEstimate
    score: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EffectiveSpread:
    """Effective spreads of trades against the prevailing quote midpoint.

    Attributes:
        mid: prevailing mid per trade (NaN where unmatched).
        spread: ``2 |price - mid|`` per trade.
        spread_bps: ``2 |price - mid| / mid * 1e4`` per trade.
        matched: the trade had a valid prevailing quote (at or before it, not crossed,
            both sides present); unmatched trades are NaN and left out of the means.
        mean_bps: size-weighted mean of ``spread_bps`` over matched trades (None if none).
        mean_spread: size-weighted mean of ``spread``.
        unmatched_count: trades without a valid prevailing quote.
    """

    mid: NDArray[np.float64]
    spread: NDArray[np.float64]
    spread_bps: NDArray[np.float64]
    matched: NDArray[np.bool_]
    mean_bps: float | None
    mean_spread: float | None
    unmatched_count: int


# ----------------------------------------------------------------------------- kernels
@kernel(inline=True)
def _check_side(
    px: NDArray[np.float64], sz: NDArray[np.float64], row: int, falling: bool, err: NDArray[np.int64], side: int
) -> int:
    # Returns the number of present levels, or records the first problem in err.
    n = 0
    missing = False
    for k in range(px.shape[1]):
        p = px[row, k]
        q = sz[row, k]
        present = p == p
        code = 0
        if present:
            if missing:
                code = _HOLE
            elif not (q > 0.0 and q < math.inf):
                code = _BAD_SIZE
            elif k > 0 and ((falling and p >= px[row, k - 1]) or (not falling and p <= px[row, k - 1])):
                code = _ORDER
            n += 1
        else:
            missing = True
            if q == q and q != 0.0:
                code = _GHOST_SIZE
        if code != 0 and err[0] == 0:
            err[0] = code
            err[1] = side
            err[2] = row
            err[3] = k
    return n


@kernel()
def _check_books(
    bid_px: NDArray[np.float64],
    bid_sz: NDArray[np.float64],
    ask_px: NDArray[np.float64],
    ask_sz: NDArray[np.float64],
    nb: NDArray[np.int64],
    na: NDArray[np.int64],
    status: NDArray[np.int8],
    err: NDArray[np.int64],
) -> None:
    for i in range(bid_px.shape[0]):
        nb[i] = _check_side(bid_px, bid_sz, i, True, err, 0)
        na[i] = _check_side(ask_px, ask_sz, i, False, err, 1)
        if nb[i] == 0 and na[i] == 0:
            s = _EMPTY
        elif nb[i] == 0 or na[i] == 0:
            s = _ONE_SIDED
        elif bid_px[i, 0] > ask_px[i, 0]:
            s = _CROSSED
        elif bid_px[i, 0] == ask_px[i, 0]:
            s = _LOCKED
        else:
            s = _OK
        status[i] = s


@kernel(inline=True)
def _side_metrics(
    px: NDArray[np.float64],
    sz: NDArray[np.float64],
    row: int,
    n: int,
    weight: NDArray[np.float64],
    mid: float,
    sign: float,
    out: NDArray[np.float64],
    first: int,
) -> float:
    # Writes depth top/5/10, notional 5 and decay of one side; returns its weighted depth.
    d1 = 0.0
    d5 = 0.0
    d10 = 0.0
    n5 = 0.0
    weighted = 0.0
    # Decay: OLS slope of ln(size_k) on the level's distance in bps. Distances are taken
    # from the touch rather than the mid (same slope, smaller sums, less cancellation).
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    for k in range(n):
        q = sz[row, k]
        p = px[row, k]
        d1 += q if k < 1 else 0.0
        d5 += q if k < 5 else 0.0
        d10 += q if k < 10 else 0.0
        n5 += q * p if k < 5 else 0.0
        weighted += weight[k] * q
        x = sign * (p - px[row, 0]) / mid * BPS
        y = math.log(q)
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    out[first, row] = d1
    out[first + 1, row] = d5
    out[first + 2, row] = d10
    out[first + 3, row] = n5
    den = n * sxx - sx * sx
    out[first + 4, row] = -(n * sxy - sx * sy) / den if n >= 2 and den > 0.0 else math.nan
    return weighted


@kernel()
def _book_metrics(
    bid_px: NDArray[np.float64],
    bid_sz: NDArray[np.float64],
    ask_px: NDArray[np.float64],
    ask_sz: NDArray[np.float64],
    nb: NDArray[np.int64],
    na: NDArray[np.int64],
    status: NDArray[np.int8],
    weight: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    for i in range(bid_px.shape[0]):
        has_mid = status[i] in (_OK, _LOCKED)
        bid = bid_px[i, 0]
        ask = ask_px[i, 0]
        mid = 0.5 * (bid + ask) if has_mid else math.nan
        wb = _side_metrics(bid_px, bid_sz, i, nb[i], weight, mid, -1.0, out, _BID_D1)
        wa = _side_metrics(ask_px, ask_sz, i, na[i], weight, mid, 1.0, out, _ASK_D1)
        qb = out[_BID_D1, i]
        qa = out[_ASK_D1, i]
        out[_BEST_BID, i] = bid if nb[i] > 0 else math.nan
        out[_BEST_ASK, i] = ask if na[i] > 0 else math.nan
        # NaN for crossed and one-sided books (see the module docstring).
        out[_MID, i] = mid
        out[_SPREAD, i] = ask - bid if has_mid else math.nan
        out[_SPREAD_BPS, i] = (ask - bid) / mid * BPS
        out[_MICRO, i] = (bid * qa + ask * qb) / (qa + qb) if has_mid else math.nan
        out[_IMB_TOP, i] = (qb - qa) / (qb + qa) if has_mid else math.nan
        out[_IMB_W, i] = (wb - wa) / (wb + wa) if has_mid else math.nan


@kernel()
def _walk(
    px: NDArray[np.float64],
    sz: NDArray[np.float64],
    levels: NDArray[np.int64],
    qty: NDArray[np.float64],
    out: NDArray[np.float64],
    used: NDArray[np.int64],
    short: NDArray[np.bool_],
) -> None:
    # One side per row (asks for a buy, bids for a sell); out rows: vwap, filled, worst price.
    for i in range(qty.shape[0]):
        rest = qty[i]
        notional = 0.0
        got = 0.0
        k = 0
        last = math.nan
        while k < levels[i] and rest > 0.0:
            take = min(sz[i, k], rest)
            notional += take * px[i, k]
            got += take
            rest -= take
            last = px[i, k]
            k += 1
        out[0, i] = notional / got if got > 0.0 else math.nan
        out[1, i] = got
        out[2, i] = last
        used[i] = k
        short[i] = rest > 0.0


# ------------------------------------------------------------------------------ public
def _side_matrix(name: str, value: ArrayLike, bound: Bound) -> NDArray[np.float64]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsInputError(name, f"not convertible to float64 ({exc})") from exc
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise AnalyticsInputError(name, f"must be (symbols, levels) with at least one level, got shape {arr.shape}")
    prepared = prepare_inputs({name: (arr, bound)}, {})
    return prepared.floats[name].reshape(arr.shape)


def order_books(
    bid_px: ArrayLike,
    bid_sz: ArrayLike,
    ask_px: ArrayLike,
    ask_sz: ArrayLike,
    *,
    on_crossed: Literal["flag", "raise"] = "flag",
) -> OrderBooks:
    """Validate L2 books (one row per symbol, one column per level, level 0 best).

    Args:
        bid_px: bid prices ``(m, L)`` (or ``(L,)`` for one book), > 0, NaN = missing level.
        bid_sz: bid sizes, > 0 at present levels, 0 or NaN at missing ones.
        ask_px: ask prices, same shape.
        ask_sz: ask sizes, same shape.
        on_crossed: ``"flag"`` (status ``CROSSED``) or ``"raise"``.

    Returns:
        the books with per-side level counts and a status per book.

    Raises:
        AnalyticsInputError: shapes differ, a price is <= 0 or infinite, a size is bad,
            levels have holes or are out of order, or (``on_crossed="raise"``) a book is
            crossed; the error names the argument and the book row / level.
    """
    if on_crossed not in ("flag", "raise"):
        raise AnalyticsInputError("on_crossed", f"must be 'flag' or 'raise', got {on_crossed!r}")
    bp = _side_matrix("bid_px", bid_px, _PRICE_OR_MISSING)
    bs = _side_matrix("bid_sz", bid_sz, _SIZE_OR_MISSING)
    ap = _side_matrix("ask_px", ask_px, _PRICE_OR_MISSING)
    as_ = _side_matrix("ask_sz", ask_sz, _SIZE_OR_MISSING)
    for name, arr in (("bid_sz", bs), ("ask_px", ap), ("ask_sz", as_)):
        if arr.shape != bp.shape:
            raise AnalyticsInputError(name, f"shape {arr.shape} differs from bid_px {bp.shape}")
    m = bp.shape[0]
    nb = np.empty(m, dtype=np.int64)
    na = np.empty(m, dtype=np.int64)
    status = np.empty(m, dtype=np.int8)
    err = np.zeros(4, dtype=np.int64)
    if m:
        _check_books(bp, bs, ap, as_, nb, na, status, err)
    if err[0]:
        code, side, row, level = (int(x) for x in err)
        which = "bid" if side == 0 else "ask"
        name = f"{which}_sz" if code in (_BAD_SIZE, _GHOST_SIZE) else f"{which}_px"
        raise AnalyticsInputError(name, f"{_PROBLEMS[code]} (book row {row}, level {level})")
    if on_crossed == "raise":
        crossed = np.flatnonzero(status == _CROSSED)
        if crossed.size:
            row = int(crossed[0])
            raise AnalyticsInputError(
                "bid_px", f"book is crossed: best bid {bp[row, 0]!r} > best ask {ap[row, 0]!r}", index=row
            )
    bs = np.where(np.isnan(bp), 0.0, bs)
    as_ = np.where(np.isnan(ap), 0.0, as_)
    return OrderBooks(bp, bs, ap, as_, nb, na, status)


def l1_books(
    bid: ArrayLike,
    bid_size: ArrayLike,
    ask: ArrayLike,
    ask_size: ArrayLike,
    *,
    on_crossed: Literal["flag", "raise"] = "flag",
) -> OrderBooks:
    """Top-of-book quotes as one-level books (one element per symbol).

    Args:
        bid: best bid per symbol, > 0, NaN = no bid.
        bid_size: its size.
        ask: best ask per symbol, NaN = no ask.
        ask_size: its size.
        on_crossed: as for ``order_books``.

    Returns:
        ``(m, 1)`` books.

    Raises:
        AnalyticsInputError: as for ``order_books``.
    """
    cols = [np.atleast_1d(np.asarray(x, dtype=np.float64))[:, None] for x in (bid, bid_size, ask, ask_size)]
    return order_books(*cols, on_crossed=on_crossed)


def book_metrics(books: OrderBooks, *, imbalance_half_life: float = 2.0) -> BookMetrics:
    """Spreads, depth, imbalance, microprice and depth decay of every book.

    Args:
        books: validated books (``order_books`` / ``l1_books``).
        imbalance_half_life: levels over which the weight of the depth-weighted
            imbalance halves, > 0 (``inf``: equal weights).

    Returns:
        one value per book and metric.

    Raises:
        AnalyticsInputError: a non-positive half-life.
    """
    if not (isinstance(imbalance_half_life, int | float) and imbalance_half_life > 0):
        raise AnalyticsInputError("imbalance_half_life", f"must be > 0, got {imbalance_half_life!r}")
    out = np.empty((_METRIC_ROWS, len(books)), dtype=np.float64)
    if len(books):
        _book_metrics(
            books.bid_px,
            books.bid_sz,
            books.ask_px,
            books.ask_sz,
            books.bid_levels,
            books.ask_levels,
            books.status,
            2.0 ** (-np.arange(books.bid_px.shape[1]) / float(imbalance_half_life)),
            out,
        )
    return BookMetrics(books.status, *(out[r] for r in range(_METRIC_ROWS)))


def walk_book(books: OrderBooks, order_size: ArrayLike, is_buy: ArrayLike) -> SlippageEstimate:
    """Fill price and slippage of a market order per book, walking the visible levels.

    Args:
        books: validated books.
        order_size: quantity per book (or one for all), finite and > 0.
        is_buy: True to buy (walk the asks), False to sell (walk the bids); per book or one.

    Returns:
        VWAP, slippage vs mid in bps, filled quantity, levels used, deepest price touched
        and the insufficient-depth flag, per book.

    Raises:
        AnalyticsInputError: a bad order size, or arguments that do not broadcast to the books.
    """
    m = len(books)
    prepared = prepare_inputs({"order_size": (order_size, _POSITIVE)}, {"is_buy": is_buy})
    if prepared.size not in (1, m):
        raise AnalyticsInputError("order_size", f"needs one value or one per book ({m}), got {prepared.size}")
    qty = np.broadcast_to(prepared.floats["order_size"], (m,)).copy()
    buy = np.broadcast_to(prepared.flags["is_buy"], (m,))[:, None]
    out = np.empty((3, m), dtype=np.float64)
    used = np.empty(m, dtype=np.int64)
    short = np.empty(m, dtype=np.bool_)
    if m:
        px = np.where(buy, books.ask_px, books.bid_px)
        sz = np.where(buy, books.ask_sz, books.bid_sz)
        _walk(px, sz, np.where(buy[:, 0], books.ask_levels, books.bid_levels), qty, out, used, short)
    vwap, filled, worst = out
    has_mid = (books.status == _OK) | (books.status == _LOCKED)
    mid = np.where(has_mid, 0.5 * (books.bid_px[:, 0] + books.ask_px[:, 0]), np.nan)
    slip = np.where(buy[:, 0], vwap - mid, mid - vwap) / mid * BPS
    return SlippageEstimate(vwap, slip, filled, used, worst, short, books.status)


def liquidity_score(
    metrics: BookMetrics,
    buy: SlippageEstimate,
    sell: SlippageEstimate,
    params: LiquidityScoreParams | None = None,
) -> NDArray[np.float64]:
    """Composite liquidity score in [0, 100] per book (NaN unless the book is ``OK``).

    ``100 * (w_s S_spread + w_d S_depth + w_x S_slip) / (w_s + w_d + w_x)`` with
    ``S_spread = r_s / (r_s + spread_bps)``, ``S_depth = D / (D + r_d)`` for
    ``D = min(bid_notional_5, ask_notional_5)``, and ``S_slip = r_x / (r_x + x)`` for
    ``x`` the mean buy/sell slippage of the reference order (0 if either side cannot
    fill it).

    Args:
        metrics: from ``book_metrics``.
        buy: ``walk_book`` of the reference order, buying.
        sell: the same, selling.
        params: reference scales and weights.

    Returns:
        the scores.
    """
    p = params or LiquidityScoreParams()
    s_spread = p.spread_ref_bps / (p.spread_ref_bps + metrics.spread_bps)
    depth = np.minimum(metrics.bid_notional_5, metrics.ask_notional_5)
    s_depth = depth / (depth + p.depth_ref_notional)
    cost = 0.5 * (buy.slippage_bps + sell.slippage_bps)
    s_slip = np.where(
        buy.insufficient_depth | sell.insufficient_depth, 0.0, p.slippage_ref_bps / (p.slippage_ref_bps + cost)
    )
    total = p.weight_spread + p.weight_depth + p.weight_slippage
    score = 100.0 * (p.weight_spread * s_spread + p.weight_depth * s_depth + p.weight_slippage * s_slip) / total
    return np.where(metrics.status == _OK, np.clip(score, 0.0, 100.0), np.nan)


def liquidity_snapshot(
    books: OrderBooks, *, params: LiquidityScoreParams | None = None, imbalance_half_life: float = 2.0
) -> LiquiditySnapshot:
    """All liquidity metrics, reference-order slippage both ways and the score, per book.

    Args:
        books: validated books.
        params: score parameters (reference order notional, scales, weights).
        imbalance_half_life: as for ``book_metrics``.

    Returns:
        the snapshot.
    """
    p = params or LiquidityScoreParams()
    metrics = book_metrics(books, imbalance_half_life=imbalance_half_life)
    # Books without a mid get a placeholder size: their slippage is NaN and score NaN anyway.
    qty = np.where(np.isfinite(metrics.mid), p.reference_notional / metrics.mid, 1.0)
    buy = walk_book(books, qty, True)
    sell = walk_book(books, qty, False)
    return LiquiditySnapshot(metrics, buy, sell, liquidity_score(metrics, buy, sell, p))


def effective_spread(
    trade_time_ns: ArrayLike,
    trade_price: ArrayLike,
    trade_size: ArrayLike,
    quote_time_ns: ArrayLike,
    bid: ArrayLike,
    ask: ArrayLike,
) -> EffectiveSpread:
    """Effective spread ``2 |p - m|`` of each trade against the prevailing quote midpoint.

    The prevailing quote is the last one with ``quote_time <= trade_time`` (no Lee-Ready
    delay: modern feeds timestamp quotes and trades on one clock).

    Args:
        trade_time_ns: trade times, int64 ns (any order).
        trade_price: trade prices, > 0.
        trade_size: trade sizes, > 0 (weights of the means).
        quote_time_ns: quote times, int64 ns, non-decreasing.
        bid: bid per quote, > 0 or NaN (no bid).
        ask: ask per quote, > 0 or NaN.

    Returns:
        per-trade spreads, the matched mask and size-weighted means.

    Raises:
        AnalyticsInputError: malformed or mismatched arrays, unsorted quote times.
    """
    tt = _ns_column("trade_time_ns", trade_time_ns)
    qt = _ns_column("quote_time_ns", quote_time_ns)
    trades = prepare_inputs({"trade_price": (trade_price, _POSITIVE), "trade_size": (trade_size, _POSITIVE)}, {})
    quotes = prepare_inputs({"bid": (bid, _PRICE_OR_MISSING), "ask": (ask, _PRICE_OR_MISSING)}, {})
    if trades.size != tt.size or np.size(trade_price) != np.size(trade_size):
        raise AnalyticsInputError("trade_price", f"trade_time_ns, trade_price and trade_size need {tt.size} elements")
    if quotes.size != qt.size or np.size(bid) != np.size(ask):
        raise AnalyticsInputError("bid", f"quote_time_ns, bid and ask need {qt.size} elements")
    if qt.size > 1:
        back = np.flatnonzero(qt[1:] < qt[:-1])
        if back.size:
            raise AnalyticsInputError("quote_time_ns", "must be non-decreasing", index=int(back[0]) + 1)
    b, a = quotes.floats["bid"], quotes.floats["ask"]
    p, q = trades.floats["trade_price"], trades.floats["trade_size"]
    idx = np.searchsorted(qt, tt, side="right") - 1
    safe = np.maximum(idx, 0)
    qb = b[safe] if qt.size else np.full(tt.size, np.nan)
    qa = a[safe] if qt.size else np.full(tt.size, np.nan)
    matched = (idx >= 0) & (qa >= qb)  # NaN sides compare False
    mid = np.where(matched, 0.5 * (qb + qa), np.nan)
    spread = 2.0 * np.abs(p - mid)
    spread_bps = spread / mid * BPS
    weight = float(q[matched].sum())
    mean_bps = float(np.dot(q[matched], spread_bps[matched]) / weight) if weight > 0 else None
    mean_spread = float(np.dot(q[matched], spread[matched]) / weight) if weight > 0 else None
    return EffectiveSpread(mid, spread, spread_bps, matched, mean_bps, mean_spread, int(tt.size - matched.sum()))


def _ns_column(name: str, value: ArrayLike) -> NDArray[np.int64]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise AnalyticsInputError(name, f"must be a 1-D array of int64 ns, got dtype {arr.dtype} shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def order_flow_imbalance(
    bid: ArrayLike, bid_size: ArrayLike, ask: ArrayLike, ask_size: ArrayLike
) -> NDArray[np.float64]:
    """Order-flow imbalance ``e_n`` between consecutive top-of-book snapshots (Cont, Kukanov, Stoikov 2014).

    ``e_n = 1{B_n >= B_{n-1}} q^B_n - 1{B_n <= B_{n-1}} q^B_{n-1}
          - 1{A_n <= A_{n-1}} q^A_n + 1{A_n >= A_{n-1}} q^A_{n-1}``; positive = net buying
    pressure. Sum over a window for the OFI of that window.

    Args:
        bid: best bids, ``(T,)`` or ``(T, m)`` (time first), > 0.
        bid_size: their sizes, >= 0.
        ask: best asks, > 0.
        ask_size: their sizes, >= 0.

    Returns:
        ``e_n`` for n = 1..T-1, shape ``(T-1,)`` or ``(T-1, m)``.

    Raises:
        AnalyticsInputError: a bad price or size, or shapes that differ.
    """
    shape = np.shape(bid)
    for name, value in (("bid_size", bid_size), ("ask", ask), ("ask_size", ask_size)):
        if np.shape(value) != shape:
            raise AnalyticsInputError(name, f"shape {np.shape(value)} differs from bid {shape}")
    if len(shape) not in (1, 2):
        raise AnalyticsInputError("bid", f"must be (T,) or (T, symbols), got shape {shape}")
    c = prepare_inputs(
        {
            "bid": (bid, _POSITIVE),
            "bid_size": (bid_size, _NON_NEGATIVE),
            "ask": (ask, _POSITIVE),
            "ask_size": (ask_size, _NON_NEGATIVE),
        },
        {},
    ).floats
    b, qb, a, qa = (c[k].reshape(shape) for k in ("bid", "bid_size", "ask", "ask_size"))
    return (
        np.where(b[1:] >= b[:-1], qb[1:], 0.0)
        - np.where(b[1:] <= b[:-1], qb[:-1], 0.0)
        - np.where(a[1:] <= a[:-1], qa[1:], 0.0)
        + np.where(a[1:] >= a[:-1], qa[:-1], 0.0)
    )
