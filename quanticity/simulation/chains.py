"""Option chains of the simulated market: the columnar table and how it is priced.

A chain is priced in one vectorised pass: implied vols from the surface, then price
and Greeks from ``quanticity.analytics.greeks_engine.compute_greeks`` (the platform's
own Black-Scholes-Merton kernel; European exercise for every underlying). Quotes are
built around the model value so that ``bid <= value <= ask`` always holds: spreads
widen with distance from the money (in standard deviations) and as expiry nears,
and are rounded outward to the product's tick (pennies for SPY/QQQ/IWM, 0.05/0.10 for
SPX, 0.01/0.05 around $3 for single names).

Greeks in the table use the analytics units (shared/reference/analytics.md): vega and
rho per 1.00 of vol/rate, theta per year. Feed-specific units are the feed's concern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.simulation.calendar import REGULAR_CLOSE_S, TradingCalendar, et_datetime
from quanticity.simulation.instruments import InstrumentSpec
from quanticity.simulation.listings import listed_expiries, strike_grid
from quanticity.simulation.vol_surface import VolSurface

__all__ = ["ChainListing", "OptionChainTable", "build_listing", "price_chain", "with_junk_greeks"]

NS_PER_YEAR = 365.0 * 86400.0 * 1e9  # calendar-time year (ACT/365), as theta per year assumes
_NS = 1_000_000_000


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * _NS + t.microsecond * 1000


@dataclass(frozen=True, slots=True)
class OptionChainTable:
    """A columnar option chain, sorted by expiration, root, strike, then call before put.

    Attributes:
        underlying: the symbol the chain was asked for.
        as_of: the instant it was priced at.
        spot: underlying price used.
        rate: risk-free rate used.
        dividend_yield: dividend yield used.
        contract_id: OCC-style IDs, e.g. ``SPY260904C00600000``.
        root: OCC root of each contract (``SPX`` vs ``SPXW``).
        expiration: expiry dates (``datetime64[D]``).
        expiry_years: time to settlement in years (ACT/365).
        strike: strike prices.
        right: ``"call"`` or ``"put"``.
        bid, bid_size, ask, ask_size, last, mark: quotes (sizes are contracts).
        volume: contracts traded today so far; open_interest: contracts open.
        implied_volatility: decimal (0.18 = 18%).
        delta, gamma, theta, vega, rho: analytics units (per year, per 1.00).
    """

    underlying: str
    as_of: datetime
    spot: float
    rate: float
    dividend_yield: float
    contract_id: NDArray[np.str_]
    root: NDArray[np.str_]
    expiration: NDArray[np.datetime64]
    expiry_years: NDArray[np.float64]
    strike: NDArray[np.float64]
    right: NDArray[np.str_]
    bid: NDArray[np.float64]
    bid_size: NDArray[np.int64]
    ask: NDArray[np.float64]
    ask_size: NDArray[np.int64]
    last: NDArray[np.float64]
    mark: NDArray[np.float64]
    volume: NDArray[np.int64]
    open_interest: NDArray[np.int64]
    implied_volatility: NDArray[np.float64]
    delta: NDArray[np.float64]
    gamma: NDArray[np.float64]
    theta: NDArray[np.float64]
    vega: NDArray[np.float64]
    rho: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.strike.shape[0])

    @property
    def is_call(self) -> NDArray[np.bool_]:
        """True for calls."""
        return np.asarray(self.right == "call")

    def take(self, rows: NDArray[Any]) -> OptionChainTable:
        """The rows selected by a boolean mask or an index array, in that order."""
        columns = {
            f.name: getattr(self, f.name)[rows] for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)
        }
        return replace(self, **columns)


@dataclass(frozen=True, slots=True)
class ChainListing:
    """The contracts listed for one underlying on one trading day, with daily activity levels."""

    underlying: str
    day_index: int
    contract_id: NDArray[np.str_]
    root: NDArray[np.str_]
    expiration: NDArray[np.datetime64]
    strike: NDArray[np.float64]
    is_call: NDArray[np.bool_]
    settle_ns: NDArray[np.int64]
    last_trade_ns: NDArray[np.int64]
    open_interest: NDArray[np.int64]
    volume_target: NDArray[np.float64]
    size_scale: NDArray[np.float64]


def build_listing(
    spec: InstrumentSpec, calendar: TradingCalendar, day_index: int, reference: float, rng: np.random.Generator
) -> ChainListing:
    """List every contract of ``spec`` on trading day ``day_index``.

    Args:
        spec: the underlying.
        calendar: trading calendar.
        day_index: listing day.
        reference: previous close, which centres the strike grids.
        rng: generator for open interest and volume levels (seeded per symbol and day).
    """
    listing_day = calendar.day(day_index)
    listed_at = et_datetime(listing_day, time(9, 30))
    ids: list[str] = []
    roots, exps, strikes, settles, last_trades = [], [], [], [], []
    for e in listed_expiries(spec, calendar, day_index):
        settle = et_datetime(e.date, time(e.settle_s // 3600 + 4, e.settle_s % 3600 // 60))
        last_trade = settle
        if e.last_day_offset:  # AM-settled: last traded at the close of the previous trading day
            prev = calendar.day(calendar.index_on_or_before(e.date - timedelta(days=1)))
            last_trade = et_datetime(prev, time(REGULAR_CLOSE_S // 3600 + 4))
        listed_years = max((settle - listed_at).total_seconds() / (NS_PER_YEAR / _NS), 1.0 / 365.0)
        grid = strike_grid(spec, reference, listed_years)
        stamp = e.date.strftime("%y%m%d")
        for k in grid.tolist():
            code = f"{round(k * 1000):08d}"
            ids.append(f"{e.root}{stamp}C{code}")
            ids.append(f"{e.root}{stamp}P{code}")
        n = 2 * grid.size
        roots.append(np.full(n, e.root))
        exps.append(np.full(n, np.datetime64(e.date, "D")))
        strikes.append(np.repeat(grid, 2))
        settles.append(np.full(n, _ns(settle), dtype=np.int64))
        last_trades.append(np.full(n, _ns(last_trade), dtype=np.int64))
    if not ids:
        empty = np.empty(0)
        return ChainListing(
            spec.symbol,
            day_index,
            np.empty(0, dtype="<U21"),
            np.empty(0, dtype="<U5"),
            np.empty(0, dtype="datetime64[D]"),
            empty,
            np.empty(0, dtype=bool),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            empty,
            empty,
        )
    strike = np.concatenate(strikes)
    settle_ns = np.concatenate(settles)
    is_call = np.tile(np.array([True, False]), strike.size // 2)
    years = np.maximum((settle_ns - _ns(listed_at)) / NS_PER_YEAR, 1.0 / 365.0)
    z = np.log(strike / reference) / (spec.vol * np.sqrt(years))
    # Open interest: concentrated near the money and on round strikes, building up with
    # time listed; indices (no share volume) get SPY-like option activity.
    activity = math.sqrt(max(spec.avg_volume, 30e6) / 60e6)
    round_strike = np.isclose(np.mod(strike, 5.0 if reference > 50 else 1.0), 0.0)
    oi_level = 2.0e4 * activity * np.exp(-0.5 * (z / 1.5) ** 2) * (1.0 + 1.5 * round_strike)
    oi_level *= 0.15 + 0.85 * np.minimum(1.0, years / 0.08)
    open_interest = np.floor(oi_level * rng.lognormal(-0.18, 0.6, strike.size)).astype(np.int64)
    turnover = (0.05 + 2.0 * np.exp(-years * 365.0 / 2.0)) * np.exp(-0.5 * (z / 1.2) ** 2)
    volume_target = (open_interest + 50.0 * activity) * turnover * rng.lognormal(-0.25, 0.7, strike.size)
    size_scale = 20.0 + 400.0 * activity * np.exp(-np.abs(z) / 2.5)
    return ChainListing(
        spec.symbol,
        day_index,
        np.array(ids),
        np.concatenate(roots),
        np.concatenate(exps),
        strike,
        is_call,
        settle_ns,
        np.concatenate(last_trades),
        open_interest,
        volume_target,
        size_scale,
    )


def _session_fraction(t: datetime, listing_day_close: datetime) -> float:
    """Share of the listing day's option volume traded by ``t`` (U-shaped over 09:30-16:15)."""
    start = listing_day_close - timedelta(hours=6, minutes=30)
    x = min(max((t - start).total_seconds() / (6.75 * 3600.0), 0.0), 1.0)
    return (x + 2.0 * ((x - 0.5) ** 3 + 0.125)) / 1.5


# Half-spread = rel * value + tick * (base + wing * |moneyness in standard deviations|),
# widened for short expiries: the index ETFs are the tightest markets, single names the widest.
_SPREAD = {"etf": (0.002, 0.1, 0.3), "spx": (0.003, 0.3, 0.4), "single": (0.006, 0.3, 0.5), "none": (0.006, 0.3, 0.5)}


def _ticks(style: str, value: NDArray[np.float64]) -> NDArray[np.float64]:
    if style == "etf":
        return np.full(value.shape, 0.01)
    if style == "spx":
        return np.where(value < 3.0, 0.05, 0.10)
    return np.where(value < 3.0, 0.01, 0.05)


def price_chain(
    spec: InstrumentSpec,
    listing: ChainListing,
    rows: NDArray[np.bool_],
    t: datetime,
    spot: float,
    surface: VolSurface,
    listing_day_close: datetime,
    rng: np.random.Generator,
) -> OptionChainTable:
    """Quote the selected rows of a listing at instant ``t``.

    Args:
        spec: the underlying.
        listing: the day's contracts.
        rows: mask of the contracts to quote (expired ones must already be excluded).
        t: pricing instant.
        spot: underlying price at ``t``.
        surface: implied-vol surface at ``t``.
        listing_day_close: 16:00 ET of the listing day, for the intraday volume curve.
        rng: generator for sizes and last prices (seeded per symbol and second).
    """
    strike = listing.strike[rows]
    is_call = listing.is_call[rows]
    years = np.maximum((listing.settle_ns[rows] - _ns(t)) / NS_PER_YEAR, 1e-9)
    iv = surface.implied_vol(strike, years)
    g = compute_greeks(spot, strike, years, surface.rate, surface.dividend_yield, iv, is_call)
    value = np.maximum(g.price, 0.0)
    tick = _ticks(spec.option_style, value)
    moneyness = np.minimum(np.abs(np.log(strike / surface.forward(years))) / (iv * np.sqrt(years)), 8.0)
    days = years * 365.0
    rel, base, wing = _SPREAD[spec.option_style]
    half = rel * value + tick * (base + wing * moneyness)
    half *= 1.0 + 0.3 / np.sqrt(days + 0.3)
    # Nearly worthless contracts are offered at one tick, not at a wing-wide spread.
    half = np.minimum(half, np.maximum(0.5 * value, 0.5 * tick))
    # Round outward to the tick; the small epsilon keeps exact multiples from moving a tick.
    bid = np.maximum(np.round(np.floor((value - half) / tick + 1e-9) * tick, 2), 0.0)
    ask = np.maximum(np.round(np.ceil((value + half) / tick - 1e-9) * tick, 2), tick)
    mark = np.floor((bid + ask) * 50.0 + 0.5) / 100.0
    n = strike.size
    size_scale = listing.size_scale[rows]
    bid_size = np.where(bid > 0.0, np.ceil(size_scale * rng.lognormal(-0.25, 0.7, n)), 0.0).astype(np.int64)
    ask_size = np.ceil(size_scale * rng.lognormal(-0.25, 0.7, n)).astype(np.int64)
    ask_size = np.where(bid > 0.0, ask_size, np.maximum(ask_size, 500))  # penny offers on worthless strikes are deep
    volume = np.floor(listing.volume_target[rows] * _session_fraction(t, listing_day_close)).astype(np.int64)
    open_interest = listing.open_interest[rows]
    traded = (volume > 0) | (open_interest > 0)
    stale = np.round(np.round(value * np.exp(0.04 * rng.standard_normal(n)) / tick) * tick, 2)
    last = np.where(traded, np.maximum(stale, tick), 0.0)
    return OptionChainTable(
        underlying=spec.symbol,
        as_of=t,
        spot=spot,
        rate=surface.rate,
        dividend_yield=surface.dividend_yield,
        contract_id=listing.contract_id[rows],
        root=listing.root[rows],
        expiration=listing.expiration[rows],
        expiry_years=years,
        strike=strike,
        right=np.where(is_call, "call", "put"),
        bid=bid,
        bid_size=bid_size,
        ask=ask,
        ask_size=ask_size,
        last=last,
        mark=mark,
        volume=volume,
        open_interest=open_interest,
        implied_volatility=iv,
        delta=g.delta,
        gamma=g.gamma,
        theta=g.theta,
        vega=g.vega,
        rho=g.rho,
    )


def with_junk_greeks(table: OptionChainTable, fraction: float, rng: np.random.Generator) -> OptionChainTable:
    """Give a share of the deep-in-the-money and same-day rows implausible IVs and Greeks.

    The real feed reports IVs like 5.98 (598%) on such rows (alphavantage.md §4). Here the
    chosen rows get an IV between 2.0 and 8.0 and Greeks recomputed at that IV, so each
    row is self-consistent yet implausible, as in the real feed. Quotes do not change.

    Args:
        table: a priced chain.
        fraction: share of eligible rows to spoil, 0..1.
        rng: generator choosing rows and IVs.
    """
    eligible = (np.abs(table.delta) > 0.95) | (table.expiry_years < 1.0 / 365.0)
    chosen = eligible & (rng.random(len(table)) < fraction)
    if not chosen.any():
        return table
    iv = table.implied_volatility.copy()
    iv[chosen] = rng.uniform(2.0, 8.0, int(chosen.sum()))
    g = compute_greeks(
        table.spot,
        table.strike[chosen],
        table.expiry_years[chosen],
        table.rate,
        table.dividend_yield,
        iv[chosen],
        table.is_call[chosen],
    )
    out = {name: getattr(table, name).copy() for name in ("delta", "gamma", "theta", "vega", "rho")}
    for name, column in out.items():
        column[chosen] = getattr(g, name)
    return replace(table, implied_volatility=iv, **out)
