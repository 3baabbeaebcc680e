"""FRED-like US macro series for the simulated market.

Every series is anchored at a plausible level on the market's start date and runs
forward and backward from there as a mean-reverting or trending random process, so
values near "now" look like 2025 data whatever the start. Series that the real feed
derives from one another are derived here too: weekly and monthly treasury and
fed-funds values are averages of the daily ones, semiannual CPI averages the monthly
index, annual inflation is the change of the annual average CPI, and annual GDP the
mean of its quarters. Daily treasury yields are missing (``None``, FRED's ``"."``) on
weekday market holidays, as in FRED. Observations appear only once published.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.calendar import TradingCalendar, holidays, to_et
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.instruments import stable_key

__all__ = ["MACRO_INTERVALS", "MATURITIES", "MacroModel"]

_EPOCH = date(2000, 1, 3)

MATURITIES: dict[str, tuple[float, float]] = {  # maturity -> (level at start, loading on the slope factor)
    "3month": (4.30, -1.0),
    "2year": (3.95, -0.45),
    "5year": (4.00, -0.1),
    "7year": (4.15, 0.1),
    "10year": (4.35, 0.3),
    "30year": (4.90, 0.6),
}

MACRO_INTERVALS: dict[str, tuple[str, ...]] = {  # function -> accepted intervals, default first
    "REAL_GDP": ("annual", "quarterly"),
    "REAL_GDP_PER_CAPITA": ("quarterly",),
    "TREASURY_YIELD": ("monthly", "daily", "weekly"),
    "FEDERAL_FUNDS_RATE": ("monthly", "daily", "weekly"),
    "CPI": ("monthly", "semiannual"),
    "INFLATION": ("annual",),
    "RETAIL_SALES": ("monthly",),
    "DURABLES": ("monthly",),
    "UNEMPLOYMENT": ("monthly",),
    "NONFARM_PAYROLL": ("monthly",),
}

# Days after the end of the observed period until the value is published.
_LAG_DAYS = {
    "CPI": 13,
    "UNEMPLOYMENT": 7,
    "NONFARM_PAYROLL": 7,
    "RETAIL_SALES": 15,
    "DURABLES": 26,
    "REAL_GDP": 28,
    "REAL_GDP_PER_CAPITA": 28,
    "INFLATION": 45,
}

Observation = tuple[date, float | None]


def _month_start(i: int) -> date:
    return date(_EPOCH.year + i // 12, i % 12 + 1, 1)


def _month_index(d: date) -> int:
    return (d.year - _EPOCH.year) * 12 + d.month - 1


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


class MacroModel:
    """Deterministic macro series.

    Args:
        seed: master seed.
        start: the market's start (the anchor of every level).
        calendar: the market's trading calendar (its last day ends every series).
    """

    def __init__(self, seed: int, start: datetime, calendar: TradingCalendar) -> None:
        self.seed = seed
        self.anchor = to_et(start).date()
        self.last = calendar.last
        self._lock = threading.RLock()  # builders of derived series call back into the cache
        self._cache: dict[str, object] = {}
        self._weekdays = np.arange(np.datetime64(_EPOCH), np.datetime64(self.last) + 1, dtype="datetime64[D]")
        self._weekdays = self._weekdays[np.is_busday(self._weekdays)]
        n_months = _month_index(self.last) + 1
        self._months = [_month_start(i) for i in range(n_months)]

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seed % (1 << 32), stable_key("macro", name) & 0xFFFFFFFF])
        )

    def _cached(self, key: str, build: Callable[[], object]) -> object:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def _ar1(self, name: str, n: int, anchor: int, phi: float, sd: float) -> NDArray[np.float64]:
        """An AR(1) path that is 0 at ``anchor``, run forward and backward from it."""
        eps = self._rng(name).standard_normal(n) * sd
        x = np.zeros(n)
        for i in range(anchor + 1, n):
            x[i] = phi * x[i - 1] + eps[i]
        for i in range(anchor - 1, -1, -1):  # AR(1) is time-reversible in distribution
            x[i] = phi * x[i + 1] + eps[i]
        return x

    # ------------------------------------------------------------------ daily rates
    def _daily_rates(self) -> dict[str, NDArray[np.float64]]:
        def build() -> dict[str, NDArray[np.float64]]:
            n = self._weekdays.size
            anchor = int(np.searchsorted(self._weekdays, np.datetime64(self.anchor), side="right")) - 1
            level = self._ar1("level", n, anchor, 0.9995, 0.055)
            slope = self._ar1("slope", n, anchor, 0.999, 0.03)
            out = {m: np.maximum(base + level + load * slope, 0.01) for m, (base, load) in MATURITIES.items()}
            # Fed funds: the target range moves in 25 bp steps at meetings every 30 business
            # days toward the 3-month bill; the effective rate trades 17 bp under the top.
            upper = np.empty(n)
            current = math.ceil((out["3month"][0] + 0.1) * 4) / 4
            for i in range(n):
                if i % 30 == 0:
                    wanted = math.ceil((out["3month"][i] + 0.1) * 4) / 4
                    current = max(current + max(min(wanted - current, 0.5), -0.5), 0.25)
                upper[i] = current
            out["FEDERAL_FUNDS_RATE"] = np.round(upper - 0.17, 2)
            return out

        return self._cached("daily-rates", build)  # type: ignore[return-value]

    def _daily_series(self, key: str) -> list[Observation]:
        def build() -> list[Observation]:
            values = self._daily_rates()[key]
            days: list[date] = self._weekdays.astype(object).tolist()
            if key != "FEDERAL_FUNDS_RATE":
                return [(d, None if d in holidays(d.year) else float(v)) for d, v in zip(days, values, strict=True)]
            # The effective fed funds rate is a calendar-day series: weekends and holidays
            # carry the previous business day's value.
            calendar_days = np.arange(self._weekdays[0], self._weekdays[-1] + 1, dtype="datetime64[D]")
            source = np.searchsorted(self._weekdays, calendar_days, side="right") - 1
            return list(zip(calendar_days.astype(object).tolist(), values[source].tolist(), strict=True))

        return self._cached(f"daily-{key}", build)  # type: ignore[return-value]

    def _rates(self, function: str, interval: str, maturity: str, as_of: date) -> list[Observation]:
        key = "FEDERAL_FUNDS_RATE" if function == "FEDERAL_FUNDS_RATE" else maturity
        daily = [o for o in self._daily_series(key) if o[0] < as_of]
        if interval == "daily":
            return daily[::-1]
        if interval == "weekly":
            week_end = 2 if function == "FEDERAL_FUNDS_RATE" else 4  # FRED: weeks end Wednesday / Friday
            return self._average(daily, lambda d: d + timedelta(days=(week_end - d.weekday()) % 7), as_of)
        return self._average(daily, lambda d: d.replace(day=1), as_of, monthly=True)

    @staticmethod
    def _average(
        daily: list[Observation], bucket: Callable[[date], date], as_of: date, monthly: bool = False
    ) -> list[Observation]:
        groups: dict[date, list[float]] = {}
        for d, v in daily:
            if v is not None:
                groups.setdefault(bucket(d), []).append(v)
        out = []
        for key, vals in groups.items():
            end = _next_month(key) if monthly else key + timedelta(days=1)
            if end <= as_of:
                out.append((key, round(sum(vals) / len(vals), 2)))
        return sorted(out, reverse=True)

    # ------------------------------------------------------------------ monthly economy
    def _monthly(self) -> dict[str, NDArray[np.float64]]:
        def build() -> dict[str, NDArray[np.float64]]:
            n = len(self._months)
            a = _month_index(self.anchor)
            infl = 0.0022 + self._ar1("inflation", n, a, 0.9, 0.0003) + self._rng("cpi-noise").normal(0, 0.0007, n)
            log_cpi = np.cumsum(infl)
            cpi = 320.0 * np.exp(log_cpi - log_cpi[a])
            unemployment = np.clip(4.1 + self._ar1("unemployment", n, a, 0.97, 0.12), 2.5, 15.0)
            payroll_change = 150.0 + self._ar1("payroll", n, a, 0.7, 60.0)
            payroll = 159_000.0 + np.cumsum(payroll_change) - np.cumsum(payroll_change)[a]
            month_of_year = np.array([m.month for m in self._months])
            seasonal = np.array([0.90, 0.92, 1.01, 1.0, 1.03, 1.01, 1.01, 1.02, 0.98, 1.0, 1.04, 1.13])[
                month_of_year - 1
            ]
            retail_trend = np.cumsum(0.003 + self._rng("retail").normal(0, 0.008, n))
            retail = 730_000.0 * np.exp(retail_trend - retail_trend[a]) * seasonal
            durables_trend = np.cumsum(0.002 + self._ar1("durables", n, a, 0.5, 0.01))
            durables = (
                300_000.0 * np.exp(durables_trend - durables_trend[a]) * np.exp(self._rng("dur").normal(0, 0.03, n))
            )
            return {
                "CPI": cpi,
                "UNEMPLOYMENT": unemployment,
                "NONFARM_PAYROLL": payroll,
                "RETAIL_SALES": retail,
                "DURABLES": durables,
            }

        return self._cached("monthly", build)  # type: ignore[return-value]

    def _quarterly_gdp(self) -> NDArray[np.float64]:
        def build() -> NDArray[np.float64]:
            n = len(self._months) // 3 + 1
            a = _month_index(self.anchor) // 3
            growth = np.cumsum(0.005 + self._ar1("gdp", n, a, 0.4, 0.005))
            return np.asarray(23_500.0 * np.exp(growth - growth[a]), dtype=np.float64)

        return self._cached("gdp", build)  # type: ignore[return-value]

    def _published(self, function: str, period_end: date, as_of: date) -> bool:
        return period_end + timedelta(days=_LAG_DAYS[function] - 1) < as_of

    def _economy(self, function: str, interval: str, as_of: date) -> list[Observation]:
        out: list[Observation] = []
        if function in ("REAL_GDP", "REAL_GDP_PER_CAPITA"):
            gdp = self._quarterly_gdp()
            quarters = [(_month_start(3 * q), float(v)) for q, v in enumerate(gdp) if 3 * q < len(self._months)]
            if function == "REAL_GDP_PER_CAPITA":
                out = [
                    (d, round(v * 1e9 / (340e6 * math.exp(0.005 * (d - self.anchor).days / 365.25)), 0))
                    for d, v in quarters
                    if self._published(function, _next_month(_next_month(_next_month(d))), as_of)
                ]
            elif interval == "quarterly":
                out = [
                    (d, round(v, 3))
                    for d, v in quarters
                    if self._published(function, _next_month(_next_month(_next_month(d))), as_of)
                ]
            else:
                out = [
                    (date(y, 1, 1), round(float(np.mean(vs)), 3))
                    for y, vs in self._by_year(quarters).items()
                    if len(vs) == 4 and self._published(function, date(y + 1, 1, 1), as_of)
                ]
            return sorted(out, reverse=True)
        cpi = self._monthly()["CPI"]
        months = [(m, float(cpi[i])) for i, m in enumerate(self._months)]
        if function == "INFLATION":
            annual = {y: float(np.mean(vs)) for y, vs in self._by_year(months).items() if len(vs) == 12}
            out = [
                (date(y, 1, 1), 100.0 * (annual[y] / annual[y - 1] - 1.0))
                for y in annual
                if y - 1 in annual and self._published(function, date(y + 1, 1, 1), as_of)
            ]
        elif function == "CPI" and interval == "semiannual":
            halves: dict[date, list[float]] = {}
            for m, v in months:
                halves.setdefault(date(m.year, 1 if m.month <= 6 else 7, 1), []).append(v)
            out = [
                (d, round(float(np.mean(vs)), 3))
                for d, vs in halves.items()
                if len(vs) == 6
                and self._published("CPI", date(d.year + (d.month == 7), 7 if d.month == 1 else 1, 1), as_of)
            ]
        else:
            series = self._monthly()[function]
            digits = {"CPI": 3, "UNEMPLOYMENT": 1}.get(function, 0)
            out = [
                (m, round(float(series[i]), digits))
                for i, m in enumerate(self._months)
                if self._published(function, _next_month(m), as_of)
            ]
        return sorted(out, reverse=True)

    @staticmethod
    def _by_year(values: list[tuple[date, float]]) -> dict[int, list[float]]:
        years: dict[int, list[float]] = {}
        for d, v in values:
            years.setdefault(d.year, []).append(v)
        return years

    # ------------------------------------------------------------------ public
    def series(self, function: str, interval: str | None, maturity: str | None, as_of: datetime) -> list[Observation]:
        """One series, newest first.

        Args:
            function: one of ``MACRO_INTERVALS``.
            interval: one of the function's intervals (None for its default).
            maturity: treasury maturity (None for ``10year``); only for TREASURY_YIELD.
            as_of: nothing published after this instant is returned.

        Raises:
            SimulationRequestError: unknown function, interval or maturity.
        """
        function = function.upper()
        if function not in MACRO_INTERVALS:
            raise SimulationRequestError(f"unknown macro series {function!r}")
        allowed = MACRO_INTERVALS[function]
        interval = interval or allowed[0]
        if interval not in allowed:
            raise SimulationRequestError(f"{function} has no {interval!r} interval (one of {', '.join(allowed)})")
        today = to_et(as_of).date()
        if function in ("TREASURY_YIELD", "FEDERAL_FUNDS_RATE"):
            maturity = maturity or "10year"
            if function == "TREASURY_YIELD" and maturity not in MATURITIES:
                raise SimulationRequestError(f"unknown treasury maturity {maturity!r}")
            return self._rates(function, interval, maturity, today)
        return self._economy(function, interval, today)
