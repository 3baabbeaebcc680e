"""Cross-asset stress: rates, oil, USD, equity and vol shocks -> option portfolio P&L.

A scenario moves the market (equity index %), the rate curve (parallel shift in basis
points), oil (%), the dollar (%) and implied volatility (vol points). Each underlying
translates it through documented betas (:class:`CrossAssetBetas`):

    spot return (%)  = b_eq * equity% + b_rates * bp / 100 + b_oil * oil% + b_usd * usd%
    implied vol move = b_vol * vol_points / 100     (+ the sticky-delta term below)

``b_eq`` is the beta to the index; ``b_rates``, ``b_oil`` and ``b_usd`` are *residual*
sensitivities on top of it (a scenario's equity move already contains the index's own
reaction to rates, oil and the dollar), so SPY/SPX carry zeros there.

Vol rule when spot moves (Derman 1999, "Regimes of volatility"): ``sticky_strike`` keeps
each strike's implied vol (only the scenario's vol shift applies); ``sticky_delta`` keeps
the smile fixed in moneyness, so with a smile ``sigma(K) = sigma_atm + skew ln(K/S)`` a
strike's vol also moves by ``-skew ln(S'/S)`` (with a negative skew a sell-off lowers a
fixed strike's vol: sticky-delta is the milder rule for long-vol books).

Every position is valued twice per scenario, instantly (no time decay): by full
revaluation with :func:`quanticity.analytics.greeks_engine.compute_greeks` and by the
delta-gamma-vega(-rho) Taylor approximation (Hull, "Value at Risk", the quadratic
model). Their gap is the approximation's error, large exactly where the book is convex.

Formulas, default betas and scenarios: docs/module3_formulas_part2.md, "Cross-asset stress".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.analytics.inputs import AnalyticsInputError

__all__ = [
    "DEFAULT_BETAS",
    "DEFAULT_SCENARIOS",
    "VOL_FLOOR",
    "CrossAssetBetas",
    "MarketState",
    "ScenarioResult",
    "StressPosition",
    "StressReport",
    "StressScenario",
    "VolRule",
    "stress_test",
]

VolRule = Literal["sticky_strike", "sticky_delta"]
VOL_FLOOR = 0.01  # a shocked implied vol never goes below 1%


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise AnalyticsInputError(name, f"must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class CrossAssetBetas:
    """How one underlying responds to a scenario.

    Attributes:
        equity: spot % per 1% move of the equity index.
        rates: residual spot % per +100 bp parallel shift.
        oil: residual spot % per 1% move of oil.
        usd: residual spot % per 1% move of the dollar index.
        vol: implied-vol points per scenario vol point.
        skew: smile slope ``d sigma / d ln K`` (per 1.00 of vol), used by sticky-delta only.
    """

    equity: float = 1.0
    rates: float = 0.0
    oil: float = 0.0
    usd: float = 0.0
    vol: float = 1.0
    skew: float = 0.0

    def __post_init__(self) -> None:
        for name in ("equity", "rates", "oil", "usd", "vol", "skew"):
            _finite(name, getattr(self, name))


# Rough, documented starting values; calibrate b_eq from risk_attribution's betas.
DEFAULT_BETAS: Mapping[str, CrossAssetBetas] = {
    "SPY": CrossAssetBetas(equity=1.0, vol=1.0, skew=-0.60),
    "SPX": CrossAssetBetas(equity=1.0, vol=1.0, skew=-0.60),
    "QQQ": CrossAssetBetas(equity=1.20, rates=-1.5, oil=-0.02, usd=-0.10, vol=1.15, skew=-0.50),
    "IWM": CrossAssetBetas(equity=1.15, rates=-1.0, oil=0.02, usd=0.10, vol=1.10, skew=-0.45),
}


@dataclass(frozen=True, slots=True)
class StressScenario:
    """One instantaneous cross-asset shock.

    Attributes:
        name: identifier.
        equity_pct: equity index move in percent (-7.0 = -7%), > -100.
        rates_bp: parallel shift of the rate curve in basis points.
        oil_pct: oil move in percent.
        usd_pct: dollar index move in percent.
        vol_points: implied-volatility move in vol points (+10 = +0.10).
        description: what it represents.
    """

    name: str
    equity_pct: float = 0.0
    rates_bp: float = 0.0
    oil_pct: float = 0.0
    usd_pct: float = 0.0
    vol_points: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("equity_pct", "rates_bp", "oil_pct", "usd_pct", "vol_points"):
            _finite(name, getattr(self, name))
        if self.equity_pct <= -100.0:
            raise AnalyticsInputError("equity_pct", f"must be > -100, got {self.equity_pct!r}")


# Episode magnitudes applied at once (approximate moves over the episode, rounded).
DEFAULT_SCENARIOS: tuple[StressScenario, ...] = (
    StressScenario(
        "covid_crash_2020_03", -20.0, -100.0, -50.0, 5.0, 30.0, "Feb-Mar 2020: SPX -34%, VIX 14->82, 10y -1pp, WTI -55%"
    ),
    StressScenario(
        "rates_shock_2022", -10.0, 150.0, 30.0, 8.0, 10.0, "H1 2022: 10y +150bp, DXY +9%, oil +40%, SPX -20%"
    ),
    StressScenario("vol_spike_10", vol_points=10.0, description="implied vol +10 points, nothing else"),
    StressScenario("flash_crash", equity_pct=-7.0, vol_points=15.0, description="intraday -7% with vol +15"),
    StressScenario("oil_shock", -5.0, 25.0, 40.0, 2.0, 6.0, "supply shock: oil +40%, equities -5%"),
    StressScenario("usd_surge", -4.0, 25.0, -10.0, 6.0, 4.0, "dollar +6%, equities -4%"),
    StressScenario("rates_rally", 3.0, -75.0, 0.0, -2.0, -3.0, "curve -75bp, equities +3%, vol -3"),
    StressScenario("melt_up", equity_pct=5.0, vol_points=-5.0, description="equities +5%, vol -5"),
)


@dataclass(frozen=True, slots=True)
class StressPosition:
    """One position: a European option, or the underlying itself (``strike=None``).

    Attributes:
        underlying: symbol whose spot and betas apply.
        quantity: signed contracts (options) or shares (underlying).
        strike: option strike, > 0; None for a delta-one position in the underlying.
        expiry_years: time to expiry, > 0 (options only).
        is_call: call or put (options only).
        vol: the option's current implied vol, > 0 (options only).
        multiplier: shares per contract (options only), > 0.
        label: id shown in tables (default ``underlying`` plus the contract terms).
    """

    underlying: str
    quantity: float
    strike: float | None = None
    expiry_years: float = math.nan
    is_call: bool = True
    vol: float = math.nan
    multiplier: float = 100.0
    label: str = ""

    def __post_init__(self) -> None:
        _finite("quantity", self.quantity)
        if self.strike is None:
            return
        for name in ("strike", "expiry_years", "vol", "multiplier"):
            value = getattr(self, name)
            if not (value > 0.0 and math.isfinite(value)):
                raise AnalyticsInputError(name, f"must be finite and > 0 for an option, got {value!r}")

    @property
    def is_option(self) -> bool:
        """False for a position in the underlying itself."""
        return self.strike is not None

    def name(self) -> str:
        """``label``, or a description built from the terms."""
        if self.label:
            return self.label
        if self.strike is None:
            return self.underlying
        return f"{self.underlying} {self.strike:g}{'C' if self.is_call else 'P'} {self.expiry_years:.4g}y"


@dataclass(frozen=True, slots=True)
class MarketState:
    """Inputs common to all positions.

    Attributes:
        spot: per underlying, its price (> 0).
        rate: continuously compounded risk-free rate.
        dividend_yield: per underlying, its continuous dividend yield (missing -> 0).
    """

    spot: Mapping[str, float]
    rate: float
    dividend_yield: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _finite("rate", self.rate)
        for symbol, s in self.spot.items():
            if not (s > 0.0 and math.isfinite(s)):
                raise AnalyticsInputError(f"spot[{symbol!r}]", f"must be finite and > 0, got {s!r}")
        for symbol, q in self.dividend_yield.items():
            _finite(f"dividend_yield[{symbol!r}]", q)


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioResult:
    """P&L of every position in one scenario (currency units).

    Attributes:
        scenario: the shock.
        shocked_spot: per underlying, its spot after the shock.
        shocked_vol: per position, the implied vol after the shock (NaN for delta-one).
        pnl_full: per position, full-revaluation P&L.
        pnl_approx: per position, delta-gamma-vega-rho P&L.
        total_full: the book's full-revaluation P&L.
        total_approx: the book's approximate P&L.
    """

    scenario: StressScenario
    shocked_spot: Mapping[str, float]
    shocked_vol: NDArray[np.float64]
    pnl_full: NDArray[np.float64]
    pnl_approx: NDArray[np.float64]
    total_full: float
    total_approx: float

    @property
    def approximation_error(self) -> float:
        """``total_approx - total_full``."""
        return self.total_approx - self.total_full


@dataclass(frozen=True, slots=True, eq=False)
class StressReport:
    """All scenarios for one book.

    Attributes:
        positions: position names, the order of every per-position array.
        vol_rule: ``sticky_strike`` or ``sticky_delta``.
        results: one :class:`ScenarioResult` per scenario, in input order.
        defaulted_betas: underlyings without an entry in the betas map (given the default).
    """

    positions: tuple[str, ...]
    vol_rule: VolRule
    results: tuple[ScenarioResult, ...]
    defaulted_betas: tuple[str, ...] = ()

    def worst(self) -> ScenarioResult:
        """The scenario with the lowest full-revaluation P&L."""
        return min(self.results, key=lambda r: r.total_full)

    def to_table(self) -> list[dict[str, str | float]]:
        """Rows ``scenario, position, pnl_full, pnl_approx`` per position plus a ``TOTAL`` row."""
        rows: list[dict[str, str | float]] = []
        for res in self.results:
            for i, name in enumerate(self.positions):
                rows.append(
                    {
                        "scenario": res.scenario.name,
                        "position": name,
                        "pnl_full": float(res.pnl_full[i]),
                        "pnl_approx": float(res.pnl_approx[i]),
                    }
                )
            rows.append(
                {
                    "scenario": res.scenario.name,
                    "position": "TOTAL",
                    "pnl_full": res.total_full,
                    "pnl_approx": res.total_approx,
                }
            )
        return rows


def stress_test(
    positions: Sequence[StressPosition],
    market: MarketState,
    scenarios: Sequence[StressScenario] = DEFAULT_SCENARIOS,
    *,
    betas: Mapping[str, CrossAssetBetas] = DEFAULT_BETAS,
    default_betas: CrossAssetBetas | None = None,
    vol_rule: VolRule = "sticky_strike",
) -> StressReport:
    """P&L of a book under each scenario, by full revaluation and by Greeks.

    Args:
        positions: the book (options and underlying positions).
        market: spot per underlying, rate, dividend yields.
        scenarios: the shocks (``DEFAULT_SCENARIOS`` by default).
        betas: per underlying, its cross-asset betas.
        default_betas: betas for an underlying missing from ``betas`` (default
            ``CrossAssetBetas()``: index beta 1, vol beta 1, no residuals); such
            underlyings are listed in ``StressReport.defaulted_betas``.
        vol_rule: ``sticky_strike`` or ``sticky_delta``.

    Returns:
        per scenario, the per-position and total P&L both ways.

    Raises:
        AnalyticsInputError: no scenarios, an underlying without a spot, a shock that
            takes a spot to zero or below, or an unknown ``vol_rule``.
    """
    if vol_rule not in ("sticky_strike", "sticky_delta"):
        raise AnalyticsInputError("vol_rule", f"must be 'sticky_strike' or 'sticky_delta', got {vol_rule!r}")
    if not scenarios:
        raise AnalyticsInputError("scenarios", "needs at least one scenario")
    fallback = default_betas if default_betas is not None else CrossAssetBetas()
    underlyings = sorted({p.underlying for p in positions})
    for u in underlyings:
        if u not in market.spot:
            raise AnalyticsInputError("market", f"has no spot for underlying {u!r}")
    beta_of = {u: betas.get(u, fallback) for u in underlyings}

    und_idx = np.array([underlyings.index(p.underlying) for p in positions], dtype=np.intp)
    qty = np.array([p.quantity for p in positions], dtype=np.float64)
    is_opt = np.array([p.is_option for p in positions], dtype=np.bool_)
    mult = np.where(is_opt, np.array([p.multiplier for p in positions], dtype=np.float64), 1.0)
    # Delta-one rows get harmless placeholder terms; their option values are masked out below.
    strike = np.array([p.strike if p.strike is not None else 1.0 for p in positions], dtype=np.float64)
    expiry = np.array([p.expiry_years if p.is_option else 1.0 for p in positions], dtype=np.float64)
    vol = np.array([p.vol if p.is_option else 0.2 for p in positions], dtype=np.float64)
    call = np.array([p.is_call for p in positions], dtype=np.bool_)
    spot0_u = np.array([market.spot[u] for u in underlyings], dtype=np.float64)
    div = np.array([market.dividend_yield.get(u, 0.0) for u in underlyings], dtype=np.float64)[und_idx]
    spot0 = spot0_u[und_idx]

    # Scenario x underlying spot returns, then x position.
    shocks = np.array([[s.equity_pct, s.rates_bp / 100.0, s.oil_pct, s.usd_pct] for s in scenarios], np.float64)
    loadings = np.array([[b.equity, b.rates, b.oil, b.usd] for b in beta_of.values()], np.float64).reshape(-1, 4)
    spot1_u = spot0_u[None, :] * (1.0 + shocks @ loadings.T / 100.0)
    if np.any(spot1_u <= 0.0):
        i, j = np.argwhere(spot1_u <= 0.0)[0]
        raise AnalyticsInputError(
            "scenarios", f"scenario {scenarios[i].name!r} takes {underlyings[j]} to a spot <= 0 ({spot1_u[i, j]:g})"
        )
    spot1 = spot1_u[:, und_idx]  # (S, n)
    d_spot = spot1 - spot0[None, :]
    d_rate = np.array([s.rates_bp / 1e4 for s in scenarios], dtype=np.float64)[:, None]
    vol_beta = np.array([beta_of[p.underlying].vol for p in positions], dtype=np.float64)
    d_vol = np.array([s.vol_points / 100.0 for s in scenarios], dtype=np.float64)[:, None] * vol_beta[None, :]
    if vol_rule == "sticky_delta":
        skew = np.array([beta_of[p.underlying].skew for p in positions], dtype=np.float64)
        d_vol = d_vol - skew[None, :] * np.log(spot1 / spot0[None, :])
    vol1 = np.maximum(vol[None, :] + d_vol, VOL_FLOOR)
    d_vol = vol1 - vol[None, :]

    base = compute_greeks(spot0, strike, expiry, market.rate, div, vol, call)
    shocked = compute_greeks(spot1, strike, expiry, market.rate + d_rate, div, vol1, call)
    scale = qty * mult
    option_full = (shocked.price - base.price[None, :]) * scale[None, :]
    option_approx = (
        base.delta[None, :] * d_spot
        + 0.5 * base.gamma[None, :] * d_spot**2
        + base.vega[None, :] * d_vol
        + base.rho[None, :] * d_rate
    ) * scale[None, :]
    linear = d_spot * qty[None, :]
    pnl_full = np.where(is_opt[None, :], option_full, linear)
    pnl_approx = np.where(is_opt[None, :], option_approx, linear)

    results = tuple(
        ScenarioResult(
            scenario=s,
            shocked_spot={u: float(spot1_u[i, j]) for j, u in enumerate(underlyings)},
            shocked_vol=np.where(is_opt, vol1[i], math.nan),
            pnl_full=pnl_full[i].copy(),
            pnl_approx=pnl_approx[i].copy(),
            total_full=float(pnl_full[i].sum()),
            total_approx=float(pnl_approx[i].sum()),
        )
        for i, s in enumerate(scenarios)
    )
    return StressReport(
        positions=tuple(p.name() for p in positions),
        vol_rule=vol_rule,
        results=results,
        defaulted_betas=tuple(u for u in underlyings if u not in betas),
    )
