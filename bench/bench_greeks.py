"""Benchmark: price + Greeks and implied volatility on a 50,000-contract chain, ours vs peers.

Run from the project root (peers installed as in bench/README.md):

    PYTHONPATH=. python bench/bench_greeks.py            # full run, ~1 minute
    PYTHONPATH=. python bench/bench_greeks.py --quick    # fewer repeats

Every implementation is timed in the same process on the same chain, in alternating
rounds (a block of 5 consecutive calls per implementation per round, 41 rounds) and
reported as the median call, so load spikes on a shared machine hit all of them alike;
ratios are taken against pyvolr and against a plain numpy/scipy version measured in
the same rounds. The pure-Python peers get one round of 2 calls.
The first-compile time is measured in a subprocess with an empty numba cache.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from quanticity.analytics import IVStatus, compute_greeks, implied_vol

MINUTE = 1.0 / (365.0 * 24.0 * 60.0)
RATE = 0.045
DIV = 0.013
SPOT = 500.0


@dataclass(frozen=True)
class Chain:
    strike: NDArray[np.float64]
    expiry: NDArray[np.float64]
    vol: NDArray[np.float64]
    call: NDArray[np.bool_]

    @property
    def size(self) -> int:
        return int(self.strike.size)


def make_chain(n: int = 50_000, seed: int = 2024) -> Chain:
    """Strikes 0.5x-1.5x spot; a quarter 0DTE (1 to 390 minutes), the rest 1 day to 2 years."""
    rng = np.random.default_rng(seed)
    strike = np.round(SPOT * rng.uniform(0.5, 1.5, n), 1)
    zero_dte = rng.random(n) < 0.25
    expiry = np.where(zero_dte, rng.integers(1, 391, n) * MINUTE, np.exp(rng.uniform(np.log(1 / 365), np.log(2.0), n)))
    moneyness = np.log(strike / SPOT)
    vol = np.clip(0.2 - 0.3 * moneyness + 0.8 * moneyness**2 + rng.normal(0, 0.02, n), 0.05, 2.0)  # a smile
    return Chain(strike=strike, expiry=expiry, vol=vol, call=rng.random(n) < 0.5)


# ----------------------------------------------------------------------------- peers
def numpy_scipy_greeks(c: Chain) -> list[NDArray[np.float64]]:
    """Plain vectorised numpy/scipy version of the nine outputs (the reference's baseline)."""
    s, k, t, r, q, v = SPOT, c.strike, c.expiry, RATE, DIV, c.vol
    phi = np.where(c.call, 1.0, -1.0)
    sqrt_t = np.sqrt(t)
    sd = v * sqrt_t
    d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * t) / sd
    d2 = d1 - sd
    dq, dr = np.exp(-q * t), np.exp(-r * t)
    pdf1 = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    nd1, nd2 = ndtr(phi * d1), ndtr(phi * d2)
    price = phi * (s * dq * nd1 - k * dr * nd2)
    vega = s * dq * pdf1 * sqrt_t
    return [
        price,
        phi * dq * nd1,
        dq * pdf1 / (s * sd),
        vega,
        -s * dq * pdf1 * v / (2 * sqrt_t) - phi * r * k * dr * nd2 + phi * q * s * dq * nd1,
        phi * k * t * dr * nd2,
        -dq * pdf1 * d2 / v,
        vega * d1 * d2 / v,
        phi * q * dq * nd1 - dq * pdf1 * (2 * (r - q) * t - d2 * sd) / (2 * t * sd),
    ]


def pyvolr_greeks(c: Chain, flags: NDArray[np.int8]) -> object:
    import pyvolr.bs as pv  # noqa: PLC0415  # bench-only peer

    return pv.price(flags, SPOT, c.strike, c.expiry, RATE, c.vol, DIV), pv.greeks(
        flags, SPOT, c.strike, c.expiry, RATE, c.vol, DIV
    )


def pyvolr_iv(c: Chain, price: NDArray[np.float64], flags: NDArray[np.int8]) -> NDArray[np.float64]:
    import pyvolr.bs as pv  # noqa: PLC0415  # bench-only peer

    return np.asarray(pv.implied_vol(price, flags, SPOT, c.strike, c.expiry, RATE, DIV, on_error="ignore"))


def py_vollib_greeks(c: Chain) -> None:
    from py_vollib.black_scholes_merton import black_scholes_merton as bsm  # noqa: PLC0415
    from py_vollib.black_scholes_merton.greeks import analytical as a  # noqa: PLC0415

    for k, t, v, cl in zip(c.strike.tolist(), c.expiry.tolist(), c.vol.tolist(), c.call.tolist(), strict=True):
        f = "c" if cl else "p"
        bsm(f, SPOT, k, t, RATE, v, DIV)
        a.delta(f, SPOT, k, t, RATE, v, DIV)
        a.gamma(f, SPOT, k, t, RATE, v, DIV)
        a.theta(f, SPOT, k, t, RATE, v, DIV)
        a.vega(f, SPOT, k, t, RATE, v, DIV)
        a.rho(f, SPOT, k, t, RATE, v, DIV)


def py_vollib_iv(c: Chain, price: NDArray[np.float64]) -> NDArray[np.float64]:
    from py_vollib.black_scholes_merton.implied_volatility import implied_volatility  # noqa: PLC0415

    out = np.full(c.size, np.nan)
    for i, (p, k, t, cl) in enumerate(
        zip(price.tolist(), c.strike.tolist(), c.expiry.tolist(), c.call.tolist(), strict=True)
    ):
        try:
            out[i] = implied_volatility(p, SPOT, k, t, RATE, DIV, "c" if cl else "p")
        except Exception:  # noqa: BLE001, S112  # a peer's failure is what we count here
            continue
    return out


def quantlib_greeks(c: Chain) -> None:
    import QuantLib as ql  # noqa: PLC0415, N813  # bench-only peer

    for k, t, v, cl in zip(c.strike.tolist(), c.expiry.tolist(), c.vol.tolist(), c.call.tolist(), strict=True):
        dr = math.exp(-RATE * t)
        fwd = SPOT * math.exp((RATE - DIV) * t)
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if cl else ql.Option.Put, k)
        bc = ql.BlackCalculator(payoff, fwd, v * math.sqrt(t), dr)
        bc.value(), bc.delta(SPOT), bc.gamma(SPOT), bc.vega(t), bc.theta(SPOT, t), bc.rho(t)
        bc.vanna(SPOT, t), bc.volga(t)


def quantlib_iv(c: Chain, price: NDArray[np.float64]) -> NDArray[np.float64]:
    import QuantLib as ql  # noqa: PLC0415, N813  # bench-only peer

    out = np.full(c.size, np.nan)
    for i, (p, k, t, cl) in enumerate(
        zip(price.tolist(), c.strike.tolist(), c.expiry.tolist(), c.call.tolist(), strict=True)
    ):
        dr = math.exp(-RATE * t)
        fwd = SPOT * math.exp((RATE - DIV) * t)
        try:
            out[i] = ql.blackFormulaImpliedStdDev(ql.Option.Call if cl else ql.Option.Put, k, fwd, p, dr) / math.sqrt(t)
        except RuntimeError:
            continue
    return out


# ----------------------------------------------------------------------------- timing
def interleaved(fns: dict[str, Callable[[], object]], rounds: int, block: int = 5) -> dict[str, list[float]]:
    """Time every function in every round: ``block`` consecutive calls each, first one dropped.

    Consecutive calls within a block keep one library's worker threads (rayon's spin
    after a job) from running while the next library is timed; alternating the blocks
    over many rounds spreads the machine's load over all implementations alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up (JIT load, page faults, thread pools)
    for _ in range(rounds):
        for name, fn in fns.items():
            for j in range(block + 1):
                t0 = time.perf_counter()
                fn()
                if j:
                    times[name].append(time.perf_counter() - t0)
    return times


def first_compile_seconds() -> dict[str, float]:
    """Import + compile times with an empty numba cache, then with the cache filled."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import quanticity.analytics as qa\n"
        "t1 = time.perf_counter(); qa.compute_greeks(100.0, 100.0, 0.5, 0.0, 0.0, 0.2, True)\n"
        "t2 = time.perf_counter(); qa.implied_vol(10.0, 100.0, 100.0, 0.5, 0.0, 0.0, True)\n"
        "t3 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2)\n"
    )
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            # Our own interpreter running a fixed snippet: no untrusted input.
            out = subprocess.run(  # noqa: S603
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            imp, greeks, iv = (float(v) for v in out.stdout.split())
            result[f"{label}_import"] = imp
            result[f"{label}_greeks"] = greeks
            result[f"{label}_iv"] = iv
    return result


def iv_quality(
    vol: NDArray[np.float64],
    solved: NDArray[np.bool_],
    solvable: NDArray[np.bool_],
    well: NDArray[np.bool_],
    truth: NDArray[np.float64],
) -> tuple[int, float]:
    failures = int(np.sum(solvable & ~(solved & np.isfinite(vol))))
    ok = well & solved & np.isfinite(vol)
    err = float(np.max(np.abs(vol[ok] - truth[ok]))) if ok.any() else math.nan
    return failures, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, skip the slow pure-Python peers")
    args = parser.parse_args()
    rounds = 5 if args.quick else 41
    slow_rounds = 0 if args.quick else 1

    chain = make_chain()
    flags = np.where(chain.call, 1, -1).astype(np.int8)
    ours = compute_greeks(SPOT, chain.strike, chain.expiry, RATE, DIV, chain.vol, chain.call)
    price = ours.price

    # Which quotes are solvable and well conditioned (see tests/unit/analytics/test_implied_vol.py).
    s_dq = SPOT * np.exp(-DIV * chain.expiry)
    k_dr = chain.strike * np.exp(-RATE * chain.expiry)
    intrinsic = np.maximum(np.where(chain.call, s_dq - k_dr, k_dr - s_dq), 0.0)
    upper = np.where(chain.call, s_dq, k_dr)
    solvable = (price > intrinsic * (1 + 1e-13)) & (price < upper * (1 - 1e-13)) & (price - intrinsic > 1e-250)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        well = solvable & (price / ours.vega <= 100.0)

    fast: dict[str, Callable[[], object]] = {
        "ours_greeks": lambda: compute_greeks(SPOT, chain.strike, chain.expiry, RATE, DIV, chain.vol, chain.call),
        "numpy_scipy_greeks": lambda: numpy_scipy_greeks(chain),
        "pyvolr_greeks": lambda: pyvolr_greeks(chain, flags),
        "ours_iv": lambda: implied_vol(price, SPOT, chain.strike, chain.expiry, RATE, DIV, chain.call),
        "pyvolr_iv": lambda: pyvolr_iv(chain, price, flags),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = interleaved(fast, rounds)
        if slow_rounds:
            times |= interleaved(
                {
                    "py_vollib_greeks": lambda: py_vollib_greeks(chain),
                    "quantlib_greeks": lambda: quantlib_greeks(chain),
                    "py_vollib_iv": lambda: py_vollib_iv(chain, price),
                    "quantlib_iv": lambda: quantlib_iv(chain, price),
                },
                slow_rounds,
                block=2,
            )

        vol, status = implied_vol(price, SPOT, chain.strike, chain.expiry, RATE, DIV, chain.call)
        quality = {"ours_iv": iv_quality(vol, status == IVStatus.SOLVED, solvable, well, chain.vol)}
        pv = pyvolr_iv(chain, price, flags)
        quality["pyvolr_iv"] = iv_quality(pv, np.isfinite(pv), solvable, well, chain.vol)
        if slow_rounds:
            for name, fn in (("py_vollib_iv", py_vollib_iv), ("quantlib_iv", quantlib_iv)):
                peer = fn(chain, price)
                quality[name] = iv_quality(peer, np.isfinite(peer), solvable, well, chain.vol)

    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    print(
        f"chain: {chain.size} contracts, {int(np.sum(chain.expiry < 1 / 365))} 0DTE, "
        f"{int(solvable.sum())} solvable quotes, {int(well.sum())} well conditioned; "
        f"rounds: {rounds} x 5 calls (fast), {slow_rounds} x 2 (pure-Python peers); numba threads: "
        f"{os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}"
    )
    print("\n| implementation | outputs | median ms / 50k | ours is x faster |")
    print("|---|---|---|---|")
    rows = [
        ("ours_greeks", "9"),
        ("numpy_scipy_greeks", "9"),
        ("pyvolr_greeks", "price + 5"),
        ("quantlib_greeks", "8 (loop)"),
        ("py_vollib_greeks", "price + 5 (loop)"),
    ]
    for name, outputs in rows:
        if name in med:
            print(f"| {name} | {outputs} | {med[name]:.3f} | {med[name] / med['ours_greeks']:.1f} |")
    print(
        "\n| implementation | median ms / 50k | ours is x faster | failures on solvable "
        "| max abs vol error (well cond.) |"
    )
    print("|---|---|---|---|---|")
    for name in ("ours_iv", "pyvolr_iv", "quantlib_iv", "py_vollib_iv"):
        if name in med:
            fails, err = quality[name]
            print(f"| {name} | {med[name]:.3f} | {med[name] / med['ours_iv']:.1f} | {fails} | {err:.2e} |")
    spread = {n: (np.percentile(times[n], 25) * 1e3, np.percentile(times[n], 75) * 1e3) for n in fast}
    print("\ninterquartile ranges (ms): " + ", ".join(f"{n} {a:.3f}-{b:.3f}" for n, (a, b) in spread.items()))
    compile_times = first_compile_seconds()
    print(
        "first use with an empty numba cache (s): import {cold_import:.2f}, compute_greeks {cold_greeks:.2f}, "
        "implied_vol {cold_iv:.2f}; with the cache filled: import {warm_import:.2f}, compute_greeks "
        "{warm_greeks:.3f}, implied_vol {warm_iv:.3f}".format(**compile_times)
    )


if __name__ == "__main__":
    main()
