"""Plain-Python reference versions of time bars, VPIN and the book metrics.

Written straight from the formulas (lists, ``math``, no numpy, no numba) so the tests can
cross-check the kernels against an independent implementation, and the benchmark
(bench/bench_vpin_liquidity.py) can time the kernels against them in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def bars_reference(
    time_ns: Sequence[int], price: Sequence[float], size: Sequence[float], interval: int
) -> dict[int, tuple[float, float, float, float, float, float, int]]:
    """Time-sorted trades -> {bar start: (open, high, low, close, volume, vwap, count)}."""
    acc: dict[int, list[float]] = {}
    for t, p, s in zip(time_ns, price, size, strict=True):
        start = t // interval * interval
        if start not in acc:
            acc[start] = [p, p, p, p, 0.0, 0.0, 0]
        a = acc[start]
        a[1] = max(a[1], p)
        a[2] = min(a[2], p)
        a[3] = p
        a[4] += s
        a[5] += p * s
        a[6] += 1
    return {k: (a[0], a[1], a[2], a[3], a[4], a[5] / a[4], int(a[6])) for k, a in acc.items()}


def vpin_reference(
    volume: Sequence[float], close: Sequence[float], bucket_volume: float, window: int, previous_close: float
) -> tuple[list[float], list[float]]:
    """(buy volume per bucket, VPIN per bucket from the window-th on); normal BVC, full-sample sigma."""
    prices = [previous_close, *close]
    dps = [prices[i + 1] - prices[i] for i in range(len(close))]
    mean = sum(dps) / len(dps)
    sigma = math.sqrt(sum((d - mean) ** 2 for d in dps) / (len(dps) - 1))
    buys: list[float] = []
    fill = 0.0
    buy = 0.0
    for v, dp in zip(volume, dps, strict=True):
        z = 0.5 * (1.0 + math.erf(dp / sigma / math.sqrt(2.0)))
        rest = v
        while rest > 0.0:
            room = bucket_volume - fill
            if rest < room:
                fill += rest
                buy += rest * z
                break
            buys.append(min(max(buy + room * z, 0.0), bucket_volume))
            fill = 0.0
            buy = 0.0
            rest -= room
    imbalance = [abs(bucket_volume - 2.0 * b) for b in buys]
    vpin = [sum(imbalance[t - window + 1 : t + 1]) / (window * bucket_volume) for t in range(window - 1, len(buys))]
    return buys, vpin


def book_reference(
    bid_px: Sequence[float],
    bid_sz: Sequence[float],
    ask_px: Sequence[float],
    ask_sz: Sequence[float],
    order_size: float,
    half_life: float = 2.0,
) -> dict[str, float]:
    """Metrics of one uncrossed, two-sided, fully populated book."""
    bid, ask = bid_px[0], ask_px[0]
    mid = 0.5 * (bid + ask)
    qb, qa = bid_sz[0], ask_sz[0]
    wb = sum(2.0 ** (-k / half_life) * q for k, q in enumerate(bid_sz))
    wa = sum(2.0 ** (-k / half_life) * q for k, q in enumerate(ask_sz))
    out = {
        "mid": mid,
        "spread_bps": (ask - bid) / mid * 1e4,
        "microprice": (bid * qa + ask * qb) / (qa + qb),
        "imbalance_top": (qb - qa) / (qb + qa),
        "imbalance_weighted": (wb - wa) / (wb + wa),
        "bid_depth_5": sum(bid_sz[:5]),
        "ask_depth_5": sum(ask_sz[:5]),
        "bid_notional_5": sum(p * q for p, q in zip(bid_px[:5], bid_sz[:5], strict=True)),
        "ask_notional_5": sum(p * q for p, q in zip(ask_px[:5], ask_sz[:5], strict=True)),
        "bid_decay": _decay(bid_px, bid_sz, mid, -1.0),
        "ask_decay": _decay(ask_px, ask_sz, mid, 1.0),
    }
    for side, px, sz in (("buy", ask_px, ask_sz), ("sell", bid_px, bid_sz)):
        rest, notional, filled = order_size, 0.0, 0.0
        for p, q in zip(px, sz, strict=True):
            if rest <= 0.0:
                break
            take = min(q, rest)
            notional += take * p
            filled += take
            rest -= take
        vwap = notional / filled
        out[f"{side}_vwap"] = vwap
        out[f"{side}_slippage_bps"] = ((vwap - mid) if side == "buy" else (mid - vwap)) / mid * 1e4
        out[f"{side}_insufficient"] = float(rest > 0.0)
    return out


def _decay(px: Sequence[float], sz: Sequence[float], mid: float, sign: float) -> float:
    d = [sign * (p - mid) / mid * 1e4 for p in px]
    y = [math.log(q) for q in sz]
    md, my = sum(d) / len(d), sum(y) / len(y)
    return -sum((a - md) * (b - my) for a, b in zip(d, y, strict=True)) / sum((a - md) ** 2 for a in d)


def score_reference(
    spread_bps: float,
    bid_notional_5: float,
    ask_notional_5: float,
    buy_slippage_bps: float,
    sell_slippage_bps: float,
    insufficient: bool,
) -> float:
    """The composite score with the default LiquidityScoreParams."""
    s_spread = 5.0 / (5.0 + spread_bps)
    depth = min(bid_notional_5, ask_notional_5)
    s_depth = depth / (depth + 500_000.0)
    s_slip = 0.0 if insufficient else 10.0 / (10.0 + 0.5 * (buy_slippage_bps + sell_slippage_bps))
    return 100.0 * (0.4 * s_spread + 0.3 * s_depth + 0.3 * s_slip)
