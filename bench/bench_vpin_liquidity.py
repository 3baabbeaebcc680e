"""Benchmark: VPIN, liquidity metrics and 5 s bars, our kernels vs plain-Python references.

Run from the project root:

    PYTHONPATH=. python bench/bench_vpin_liquidity.py          # ~1 minute
    PYTHONPATH=. python bench/bench_vpin_liquidity.py --quick  # fewer rounds

Workloads (synthetic, seeded):

* VPIN over one trading month of 1-minute bars (21 x 390 = 8,190 bars, V = ADV/50,
  n = 50): batch ``compute_vpin`` (normal and Student-t BVC), and ``VPINStream`` fed
  bar by bar (the agent's path), against ``vpin_reference`` (lists and ``math``).
* Liquidity for 500 books x 10 levels: ``order_books`` (validation) + ``liquidity_snapshot``
  (spreads, depth, decay, imbalance, microprice, buy and sell walks of a $100k order,
  score) against ``book_reference`` + ``score_reference`` per book.
* Bars: 1,000,000 trades to 5 s bars, ``aggregate_ticks`` against ``bars_reference``.

The references live in tests/unit/analytics/microstructure_reference.py, where the tests
check them against the kernels. Every implementation runs in the same process on the
same data, in alternating rounds, and is reported as the median call; the plain-Python
references get fewer rounds. First-use compile time is measured in a subprocess with an
empty numba cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping

import numpy as np

from quanticity.analytics.bars import aggregate_ticks
from quanticity.analytics.liquidity_monitor import liquidity_snapshot, order_books
from quanticity.analytics.vpin import VPINConfig, VPINStream, compute_vpin
from tests.unit.analytics.microstructure_reference import (
    bars_reference,
    book_reference,
    score_reference,
    vpin_reference,
)
from tests.unit.analytics.microstructure_samples import random_books, random_minute_bars, random_trades

MONTH_BARS = 21 * 390


def median_seconds(fns: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median call time per function over interleaved rounds (one warm-up call each first)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def first_compile_seconds() -> dict[str, float]:
    """First call of each kernel family with an empty numba cache, then with it filled."""
    code = (
        "import time, numpy as np; t0 = time.perf_counter()\n"
        "from quanticity.analytics.vpin import VPINConfig, compute_vpin\n"
        "from quanticity.analytics.liquidity_monitor import liquidity_snapshot, order_books\n"
        "from quanticity.analytics.bars import aggregate_ticks\n"
        "t1 = time.perf_counter(); compute_vpin([1.0, 2.0, 3.0], [1.0, 2.0, 1.5], VPINConfig(1.0, window=1))\n"
        "t2 = time.perf_counter(); liquidity_snapshot(order_books([1.0], [1.0], [1.1], [1.0]))\n"
        "t3 = time.perf_counter(); aggregate_ticks(np.array([1, 2]), [1.0, 2.0], [1.0, 1.0])\n"
        "t4 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)\n"
    )
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            # Our own interpreter running a fixed snippet: no untrusted input.
            out = subprocess.run(  # noqa: S603
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            for name, value in zip(("import", "vpin", "liquidity", "bars"), out.stdout.split(), strict=True):
                result[f"{label}_{name}"] = float(value)
    return result


def bench_vpin(rounds: int) -> None:
    volume, close = random_minute_bars(MONTH_BARS, seed=2024)
    big_v = float(volume.sum()) / (21 * 50)
    normal = VPINConfig(bucket_volume=big_v)
    student = VPINConfig(bucket_volume=big_v, distribution="student_t", df=0.25)
    stream_cfg = VPINConfig(bucket_volume=big_v, sigma="rolling")
    v_list, c_list = volume.tolist(), close.tolist()

    def stream() -> None:
        s = VPINStream(stream_cfg, previous_close=100.0)
        for v, c in zip(v_list, c_list, strict=True):
            s.update(v, c)

    fast = median_seconds(
        {
            "batch normal": lambda: compute_vpin(volume, close, normal, previous_close=100.0),
            "batch student-t": lambda: compute_vpin(volume, close, student, previous_close=100.0),
        },
        rounds,
    )
    slow = median_seconds(
        {
            "stream per bar": stream,
            "python reference": lambda: vpin_reference(v_list, c_list, big_v, 50, 100.0),
        },
        max(3, rounds // 10),
    )
    buckets = compute_vpin(volume, close, normal, previous_close=100.0).bucket_count
    ref = slow["python reference"]
    print(f"\nVPIN, one month of 1-minute bars ({MONTH_BARS} bars, {buckets} buckets, n = 50)")
    for name, sec in {"batch normal": fast["batch normal"], "python reference": ref}.items():
        print(f"  {name:<18} {sec * 1e3:9.3f} ms   reference / this = {ref / sec:8.1f}x")
    # The reference classifies with the normal cdf only: no ratio for the Student-t run.
    print(f"  {'batch student-t':<18} {fast['batch student-t'] * 1e3:9.3f} ms   (t cdf by continued fraction, df 0.25)")
    per_bar = slow["stream per bar"] / MONTH_BARS * 1e6
    print(f"  VPINStream.update, one call per bar: {per_bar:.2f} us per bar (Python call overhead included)")


def bench_liquidity(rounds: int) -> None:
    b = random_books(500, 10, seed=2024)
    books = order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)
    qty = (100_000.0 / liquidity_snapshot(books).metrics.mid).tolist()
    rows = list(zip(b.bid_px.tolist(), b.bid_sz.tolist(), b.ask_px.tolist(), b.ask_sz.tolist(), strict=True))

    def reference() -> None:
        for (bp, bs, ap, as_), q in zip(rows, qty, strict=True):
            r = book_reference(bp, bs, ap, as_, q)
            short = bool(r["buy_insufficient"] or r["sell_insufficient"])
            score_reference(
                r["spread_bps"],
                r["bid_notional_5"],
                r["ask_notional_5"],
                r["buy_slippage_bps"],
                r["sell_slippage_bps"],
                short,
            )

    fast = median_seconds(
        {
            "validate + snapshot": lambda: liquidity_snapshot(order_books(b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)),
            "snapshot only": lambda: liquidity_snapshot(books),
        },
        rounds,
    )
    slow = median_seconds({"python reference": reference}, max(3, rounds // 5))
    ref = slow["python reference"]
    print("\nLiquidity, 500 books x 10 levels (metrics + buy/sell walk of $100k + score)")
    for name, sec in {**fast, **slow}.items():
        print(f"  {name:<20} {sec * 1e3:9.3f} ms   reference / this = {ref / sec:8.1f}x")


def bench_bars(rounds: int) -> None:
    trades = random_trades(1_000_000, seed=2024, mean_gap_ms=20.0)
    t_list, p_list, s_list = trades.time_ns.tolist(), trades.price.tolist(), trades.size.tolist()
    ours = {"aggregate_ticks": lambda: aggregate_ticks(trades.time_ns, trades.price, trades.size)}
    fast = median_seconds(ours, rounds)
    slow = median_seconds({"python reference": lambda: bars_reference(t_list, p_list, s_list, 5_000_000_000)}, 3)
    ref = slow["python reference"]
    print("\nBars, 1,000,000 trades -> 5 s OHLCV + VWAP + count")
    for name, sec in {**fast, **slow}.items():
        print(f"  {name:<18} {sec * 1e3:9.3f} ms   reference / this = {ref / sec:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 21 if args.quick else 101
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs")
    bench_vpin(rounds)
    bench_liquidity(rounds)
    bench_bars(max(5, rounds // 5))
    c = first_compile_seconds()
    print("\nFirst use in a fresh process (empty numba cache -> cached), seconds; the first kernel")
    print("loaded in a process (here the VPIN row) also pays numba's one-off start-up")
    for name in ("import", "vpin", "liquidity", "bars"):
        print(f"  {name:<10} cold {c[f'cold_{name}']:6.2f}   warm {c[f'warm_{name}']:6.3f}")


if __name__ == "__main__":
    main()
