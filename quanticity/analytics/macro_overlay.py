"""Macro overlay: latest macro prints -> z-scores, surprise, momentum, curve, real rate, one risk score.

Input: the AlphaVantage macro series (REAL_GDP, TREASURY_YIELD, FEDERAL_FUNDS_RATE, CPI,
INFLATION, RETAIL_SALES, DURABLES, UNEMPLOYMENT, NONFARM_PAYROLL), one interval per
series, as :class:`MacroObservations` (``from_series`` converts a ``MacroSeries`` record).
Each series is first transformed into the quantity that carries the signal (a level, a
year-on-year change, a monthly change, annualised growth); then the latest value is
compared with its own history. The composite score in [-1, 1] (+1 = most macro risk) is
a weighted mean of bounded components over the fresh series only.

Staleness: an observation is dated at the start of its period (FRED convention). It is
stale when ``as_of - date`` exceeds ``2 * period + release lag + grace``: one period to
end, one more until the next print supersedes it, plus the publication lag. A stale
series is reported in ``MacroOverlay.stale`` and left out of the curve, the real rate
and the composite (whose ``coverage`` then drops); it is never used silently.

Formulas, weights and sources: docs/module3_formulas_part2.md, "Macro overlay".
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.schemas.reference import MacroSeries

__all__ = [
    "DEFAULT_MACRO_WEIGHTS",
    "INTERVAL_DAYS",
    "RELEASE_LAG_DAYS",
    "MacroObservations",
    "MacroOverlay",
    "SeriesSignal",
    "macro_overlay",
]

Transform = Literal["level", "yoy_pct", "change", "annualised_growth_pct"]

INTERVAL_DAYS: Mapping[str, int] = {
    "daily": 1,
    "weekly": 7,
    "monthly": 31,
    "quarterly": 92,
    "semiannual": 184,
    "annual": 366,
}
_MONTHS_PER_PERIOD = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
_PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "annual": 1}
_MOMENTUM_PERIODS = {"daily": 21, "weekly": 4, "monthly": 3, "quarterly": 2, "semiannual": 1, "annual": 1}

# Days from the end of the observed period to publication (US release calendars: BLS CPI
# and the jobs report, Census advance retail sales and durable goods, the BEA advance GDP
# estimate; World Bank annual inflation arrives mid-next-year; rates are posted next day).
RELEASE_LAG_DAYS: Mapping[str, int] = {
    "TREASURY_YIELD": 1,
    "FEDERAL_FUNDS_RATE": 1,
    "CPI": 15,
    "UNEMPLOYMENT": 10,
    "NONFARM_PAYROLL": 10,
    "RETAIL_SALES": 17,
    "DURABLES": 28,
    "REAL_GDP": 30,
    "REAL_GDP_PER_CAPITA": 30,
    "INFLATION": 190,
}
_GRACE_DAYS = 7

_TRANSFORMS: Mapping[str, Transform] = {
    "TREASURY_YIELD": "level",
    "FEDERAL_FUNDS_RATE": "level",
    "UNEMPLOYMENT": "level",
    "INFLATION": "level",
    "CPI": "yoy_pct",
    "RETAIL_SALES": "yoy_pct",  # not seasonally adjusted: year on year removes the season
    "DURABLES": "yoy_pct",
    "NONFARM_PAYROLL": "change",  # thousands of jobs added in the month
    "REAL_GDP": "annualised_growth_pct",
    "REAL_GDP_PER_CAPITA": "annualised_growth_pct",
}

# Weights of the composite; each component is in [-1, 1], +1 = risk-off.
DEFAULT_MACRO_WEIGHTS: Mapping[str, float] = {
    "curve": 0.25,
    "real_rate": 0.15,
    "unemployment": 0.20,
    "payrolls": 0.10,
    "inflation": 0.10,
    "growth": 0.10,
    "retail": 0.05,
    "durables": 0.05,
}
_CURVE_SCALE = 1.0  # percentage points of 10y - 3m inversion for tanh(1) = 0.76
_NEUTRAL_REAL_RATE = 1.0  # percent; above it policy is restrictive
_REAL_RATE_SCALE = 2.0
_Z_SCALE = 2.0  # component = tanh(sign * z / 2): z = 2 gives 0.76


@dataclass(frozen=True, slots=True, eq=False)
class MacroObservations:
    """One macro series, oldest first; NaN marks a missing value (AlphaVantage's ``"."``).

    Attributes:
        function: the AlphaVantage function (``RELEASE_LAG_DAYS`` names them).
        interval: ``daily``, ``weekly``, ``monthly``, ``quarterly``, ``semiannual`` or ``annual``.
        dates: observation dates (period starts), strictly increasing.
        values: float64 values aligned with ``dates``.
        maturity: treasury maturity (``10year``...) for TREASURY_YIELD, else None.
    """

    function: str
    interval: str
    dates: tuple[date, ...]
    values: NDArray[np.float64]
    maturity: str | None = None

    def __post_init__(self) -> None:
        if self.function not in RELEASE_LAG_DAYS:
            raise AnalyticsInputError("function", f"unknown macro function {self.function!r}")
        if self.interval not in INTERVAL_DAYS:
            raise AnalyticsInputError("interval", f"must be one of {', '.join(INTERVAL_DAYS)}, got {self.interval!r}")
        if (self.function == "TREASURY_YIELD") != (self.maturity is not None):
            raise AnalyticsInputError("maturity", "is required for TREASURY_YIELD and only for it")
        try:
            values = np.array(self.values, dtype=np.float64)  # a private, read-only copy
        except (TypeError, ValueError) as exc:
            raise AnalyticsInputError("values", f"not convertible to float64 ({exc})") from None
        object.__setattr__(self, "values", values)
        if self.values.ndim != 1 or self.values.shape[0] != len(self.dates):
            raise AnalyticsInputError("values", f"must be 1-D with {len(self.dates)} entries, got {self.values.shape}")
        if np.any(np.isinf(self.values)):
            raise AnalyticsInputError("values", "must be finite or NaN")
        if any(b <= a for a, b in zip(self.dates, self.dates[1:], strict=False)):
            raise AnalyticsInputError("dates", "must be strictly increasing (oldest first)")
        self.values.flags.writeable = False

    @classmethod
    def create(
        cls,
        function: str,
        interval: str,
        dates: Iterable[date],
        values: Sequence[float | None] | ArrayLike,
        maturity: str | None = None,
    ) -> MacroObservations:
        """Build from any date iterable and numeric array (None -> NaN).

        Raises:
            AnalyticsInputError: a value is not numeric, or the checks of the class fail.
        """
        try:
            column = np.array([math.nan if v is None else v for v in np.asarray(values, dtype=object)], np.float64)
        except (TypeError, ValueError) as exc:
            raise AnalyticsInputError("values", f"not convertible to float64 ({exc})") from None
        return cls(function, interval, tuple(dates), column, maturity)

    @classmethod
    def from_series(cls, series: MacroSeries) -> MacroObservations:
        """Convert a ``MacroSeries`` record (maturity from its ``parameters``)."""
        maturity = series.parameters.get("maturity") if series.function == "TREASURY_YIELD" else None
        if series.function == "TREASURY_YIELD" and maturity is None:
            maturity = "10year"  # AlphaVantage's default maturity
        return cls.create(series.function, series.interval, series.dates, series.values, maturity)

    @property
    def key(self) -> str:
        """``FUNCTION`` or ``TREASURY_YIELD:maturity``."""
        return f"{self.function}:{self.maturity}" if self.maturity else self.function


@dataclass(frozen=True, slots=True)
class SeriesSignal:
    """The latest value of one series against its own history.

    Attributes:
        key: ``FUNCTION`` or ``TREASURY_YIELD:maturity``.
        transform: what the signal is (``level``, ``yoy_pct``, ``change``, ``annualised_growth_pct``).
        latest_date: date of the latest valid signal value.
        latest_value: the raw observation on that date.
        signal: the transformed latest value.
        zscore: ``(signal - mean) / sd`` over the history window (NaN if too short or flat).
        surprise: the latest change against a random walk with drift, in standard deviations.
        momentum: the change over ``MOMENTUM_PERIODS`` periods, in standard deviations.
        n_history: signal values in the history window (the latest excluded).
        age_days: ``as_of - latest_date`` in days.
        max_age_days: the age beyond which the series is stale.
        stale: ``age_days > max_age_days``.
    """

    key: str
    transform: Transform
    latest_date: date
    latest_value: float
    signal: float
    zscore: float
    surprise: float
    momentum: float
    n_history: int
    age_days: int
    max_age_days: int
    stale: bool


@dataclass(frozen=True, slots=True)
class MacroOverlay:
    """The overlay at ``as_of``.

    Attributes:
        as_of: the evaluation date.
        signals: per series key, its :class:`SeriesSignal`.
        curve_10y_2y: 10-year minus 2-year yield, percentage points (NaN if unavailable).
        curve_10y_3m: 10-year minus 3-month yield, percentage points.
        real_rate: effective fed funds minus inflation, percent.
        inflation_source: ``CPI`` (year on year) or ``INFLATION`` (annual), or ``""``.
        components: per composite component, its value in [-1, 1].
        weights_used: the weights of the available components, renormalised to sum to 1.
        risk_score: the composite in [-1, 1] (+1 = most risk); NaN when nothing is available.
        coverage: the sum of the default weights of the available components, in [0, 1].
        stale: keys of stale series (left out of everything above).
        unavailable: composite components with no fresh input.
    """

    as_of: date
    signals: Mapping[str, SeriesSignal]
    curve_10y_2y: float
    curve_10y_3m: float
    real_rate: float
    inflation_source: str
    components: Mapping[str, float]
    weights_used: Mapping[str, float]
    risk_score: float
    coverage: float
    stale: tuple[str, ...] = field(default=())
    unavailable: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (dates as ISO strings)."""
        return {
            "as_of": self.as_of.isoformat(),
            "signals": {
                k: {
                    "transform": s.transform,
                    "latest_date": s.latest_date.isoformat(),
                    "latest_value": s.latest_value,
                    "signal": s.signal,
                    "zscore": s.zscore,
                    "surprise": s.surprise,
                    "momentum": s.momentum,
                    "n_history": s.n_history,
                    "age_days": s.age_days,
                    "max_age_days": s.max_age_days,
                    "stale": s.stale,
                }
                for k, s in self.signals.items()
            },
            "curve_10y_2y": self.curve_10y_2y,
            "curve_10y_3m": self.curve_10y_3m,
            "real_rate": self.real_rate,
            "inflation_source": self.inflation_source,
            "components": dict(self.components),
            "weights_used": dict(self.weights_used),
            "risk_score": self.risk_score,
            "coverage": self.coverage,
            "stale": list(self.stale),
            "unavailable": list(self.unavailable),
        }


def _shift_months(d: date, months: int) -> date:
    year, month0 = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(year, month0 + 1, min(d.day, calendar.monthrange(year, month0 + 1)[1]))


def _transformed(obs: MacroObservations, transform: Transform) -> tuple[list[date], NDArray[np.float64]]:
    """The signal series (valid values only), with its dates."""
    valid = ~np.isnan(obs.values)
    dates = [d for d, ok in zip(obs.dates, valid, strict=True) if ok]
    values = obs.values[valid]
    if transform == "level":
        return dates, np.asarray(values, dtype=np.float64)
    by_date = dict(zip(dates, values.tolist(), strict=True))
    months = 12 if transform == "yoy_pct" else _MONTHS_PER_PERIOD.get(obs.interval, 0)
    if months == 0:
        raise AnalyticsInputError(
            f"series[{obs.key!r}]", f"a {transform} transform needs a monthly or longer interval, got {obs.interval}"
        )
    out_dates: list[date] = []
    out: list[float] = []
    for d, v in zip(dates, values.tolist(), strict=True):
        ref = by_date.get(_shift_months(d, -months))
        if ref is None:
            continue
        if transform == "change":
            out.append(v - ref)
        elif transform == "yoy_pct":
            out.append(100.0 * (v / ref - 1.0) if ref > 0.0 else math.nan)
        else:  # annualised one-period growth
            out.append(100.0 * ((v / ref) ** _PERIODS_PER_YEAR[obs.interval] - 1.0) if ref > 0.0 else math.nan)
        out_dates.append(d)
    arr = np.array(out, dtype=np.float64)
    keep = ~np.isnan(arr)
    return [d for d, ok in zip(out_dates, keep, strict=True) if ok], arr[keep]


def _standardised(value: float, sample: NDArray[np.float64], center: bool, min_history: int) -> float:
    if sample.size < max(min_history, 2):
        return math.nan
    sd = float(sample.std(ddof=1))
    if not sd > 0.0:
        return math.nan
    return (value - (float(sample.mean()) if center else 0.0)) / sd


def _signal(obs: MacroObservations, as_of: date, lookback_years: float, min_history: int) -> SeriesSignal | None:
    transform = _TRANSFORMS[obs.function]
    dates, s = _transformed(obs, transform)
    if s.size == 0:
        return None
    last = s.size - 1
    latest_date = dates[last]
    start = latest_date - timedelta(days=round(365.25 * lookback_years))
    first = next(i for i, d in enumerate(dates) if d > start)
    hist = s[first:last]
    z = _standardised(float(s[last]), hist, True, min_history)
    window = s[first : last + 1]
    changes = np.diff(window)
    surprise = _standardised(float(changes[-1]), changes[:-1], True, min_history) if changes.size else math.nan
    m = _MOMENTUM_PERIODS[obs.interval]
    moves = window[m:] - window[:-m] if window.size > m else np.empty(0)
    momentum = _standardised(float(moves[-1]), moves[:-1], False, min_history) if moves.size else math.nan
    raw_index = obs.dates.index(latest_date)
    age = (as_of - latest_date).days
    max_age = 2 * INTERVAL_DAYS[obs.interval] + RELEASE_LAG_DAYS[obs.function] + _GRACE_DAYS
    return SeriesSignal(
        key=obs.key,
        transform=transform,
        latest_date=latest_date,
        latest_value=float(obs.values[raw_index]),
        signal=float(s[last]),
        zscore=z,
        surprise=surprise,
        momentum=momentum,
        n_history=int(hist.size),
        age_days=age,
        max_age_days=max_age,
        stale=age > max_age,
    )


def _components(fresh: Mapping[str, SeriesSignal]) -> tuple[float, float, float, str, dict[str, float]]:
    """Curve slopes, real rate, inflation source and the composite's components (NaN if unavailable)."""

    def level(key: str) -> float:
        return fresh[key].signal if key in fresh else math.nan

    def z_component(key: str, sign: float, field_: str = "zscore") -> float:
        value = float(getattr(fresh[key], field_)) if key in fresh else math.nan
        return math.tanh(sign * value / _Z_SCALE)

    curve_2y = level("TREASURY_YIELD:10year") - level("TREASURY_YIELD:2year")
    curve_3m = level("TREASURY_YIELD:10year") - level("TREASURY_YIELD:3month")
    inflation_source = "CPI" if "CPI" in fresh else ("INFLATION" if "INFLATION" in fresh else "")
    inflation = fresh[inflation_source].signal if inflation_source else math.nan
    real_rate = level("FEDERAL_FUNDS_RATE") - inflation
    curve = curve_3m if not math.isnan(curve_3m) else curve_2y
    components = {
        "curve": math.tanh(-curve / _CURVE_SCALE),
        "real_rate": math.tanh((real_rate - _NEUTRAL_REAL_RATE) / _REAL_RATE_SCALE),
        "unemployment": z_component("UNEMPLOYMENT", 1.0, "momentum"),
        "payrolls": z_component("NONFARM_PAYROLL", -1.0),
        "inflation": z_component(inflation_source, 1.0) if inflation_source else math.nan,
        "growth": z_component("REAL_GDP", -1.0),
        "retail": z_component("RETAIL_SALES", -1.0),
        "durables": z_component("DURABLES", -1.0),
    }
    return curve_2y, curve_3m, real_rate, inflation_source, components


def macro_overlay(
    series: Iterable[MacroObservations],
    as_of: date,
    *,
    lookback_years: float = 10.0,
    min_history: int = 8,
    weights: Mapping[str, float] = DEFAULT_MACRO_WEIGHTS,
) -> MacroOverlay:
    """Evaluate the macro overlay at ``as_of``.

    Args:
        series: one :class:`MacroObservations` per function (per maturity for treasuries).
        as_of: the evaluation date; no observation may be dated after it.
        lookback_years: history window for z-scores, surprise and momentum, > 0.
        min_history: fewest history values for a standardised number (else NaN), >= 2.
        weights: composite weights by component (keys of ``DEFAULT_MACRO_WEIGHTS``), >= 0.

    Returns:
        per-series signals, the curve slopes, the real rate and the composite score.

    Raises:
        AnalyticsInputError: two series share a key, a series has an observation after
            ``as_of``, or an argument is out of its domain.
    """
    if not (lookback_years > 0.0 and math.isfinite(lookback_years)):
        raise AnalyticsInputError("lookback_years", f"must be finite and > 0, got {lookback_years!r}")
    if min_history < 2:
        raise AnalyticsInputError("min_history", f"must be >= 2, got {min_history!r}")
    unknown = set(weights) - set(DEFAULT_MACRO_WEIGHTS)
    if unknown or any(not (w >= 0.0 and math.isfinite(w)) for w in weights.values()):
        raise AnalyticsInputError("weights", f"keys must be among {sorted(DEFAULT_MACRO_WEIGHTS)}, values >= 0")

    by_key: dict[str, MacroObservations] = {}
    for obs in series:
        if obs.key in by_key:
            raise AnalyticsInputError("series", f"two series for {obs.key!r}; pass one interval per series")
        if obs.dates and obs.dates[-1] > as_of:
            raise AnalyticsInputError(f"series[{obs.key!r}]", f"has an observation dated {obs.dates[-1]} > as_of")
        by_key[obs.key] = obs

    signals: dict[str, SeriesSignal] = {}
    for key, obs in by_key.items():
        sig = _signal(obs, as_of, lookback_years, min_history)
        if sig is not None:
            signals[key] = sig
    fresh = {k: s for k, s in signals.items() if not s.stale}

    curve_2y, curve_3m, real_rate, inflation_source, components = _components(fresh)
    available = {k: v for k, v in components.items() if not math.isnan(v) and weights.get(k, 0.0) > 0.0}
    total_w = sum(weights[k] for k in available)
    full_w = sum(weights.values())
    if total_w > 0.0:
        weights_used = {k: weights[k] / total_w for k in available}
        score = min(max(sum(weights_used[k] * v for k, v in available.items()), -1.0), 1.0)
    else:
        weights_used, score = {}, math.nan
    return MacroOverlay(
        as_of=as_of,
        signals=signals,
        curve_10y_2y=curve_2y,
        curve_10y_3m=curve_3m,
        real_rate=real_rate,
        inflation_source=inflation_source,
        components=components,
        weights_used=weights_used,
        risk_score=score,
        coverage=total_w / full_w if full_w > 0.0 else 0.0,
        stale=tuple(sorted(k for k, s in signals.items() if s.stale)),
        unavailable=tuple(k for k in components if k not in available),
    )
