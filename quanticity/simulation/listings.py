"""Which option contracts are listed on a trading day: expirations and strike grids.

Expiration rules, by listing style:

* ``etf`` (SPY, QQQ, IWM): a daily expiry on each of the next 10 trading days, weekly
  (Friday) expiries for 8 weeks, standard monthlies (third Friday) for 12 months, the
  March/June/September/December monthlies and the January LEAPS out to two years.
* ``spx``: root ``SPXW`` (PM-settled at 16:00) for the dailies, 8 weeks of Fridays,
  six month-ends and six third Fridays; root ``SPX`` (AM-settled at the 09:30 open,
  last traded at the previous close) for 12 standard monthlies, the quarterly cycle
  and the December LEAPS out to three years.
* ``single``: Fridays for 6 weeks, monthlies for 9 months, January LEAPS for 2 years.

An expiry falling on a holiday moves to the previous trading day. Strikes form nested
bands around the previous close: a fine step near the money, coarser steps further
out, each band's width scaled by the expected move ``vol * sqrt(T)``. The grid depends
only on the symbol and the listing day, so it does not move intraday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.calendar import (
    REGULAR_CLOSE_S,
    REGULAR_OPEN_S,
    TradingCalendar,
    last_weekday_trading_day,
    third_friday,
)
from quanticity.simulation.instruments import InstrumentSpec

__all__ = ["Expiry", "listed_expiries", "strike_grid"]


@dataclass(frozen=True, slots=True, order=True)
class Expiry:
    """One listed expiration of one option root.

    Attributes:
        date: expiration date.
        root: OCC root symbol (``SPY``, ``SPX``, ``SPXW``...).
        settle_s: session second of settlement (16:00 PM or 09:30 AM settlement).
        last_day_offset: 0 if it trades on its expiration day, 1 if trading stops the day before.
    """

    date: date
    root: str
    settle_s: int = REGULAR_CLOSE_S
    last_day_offset: int = 0


def _months_ahead(d: date, n: int) -> list[tuple[int, int]]:
    months = []
    y, m = d.year, d.month
    for _ in range(n + 1):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def _fridays(d: date, weeks: int) -> list[date]:
    first = d + timedelta(days=(4 - d.weekday()) % 7)
    return [last_weekday_trading_day(first + timedelta(weeks=w)) for w in range(weeks)]


def _monthlies(d: date, months: int, only: tuple[int, ...] = ()) -> list[date]:
    return [last_weekday_trading_day(third_friday(y, m)) for y, m in _months_ahead(d, months) if not only or m in only]


def _month_ends(d: date, months: int) -> list[date]:
    out = []
    for y, m in _months_ahead(d, months):
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        out.append(last_weekday_trading_day(nxt - timedelta(days=1)))
    return out


def listed_expiries(spec: InstrumentSpec, calendar: TradingCalendar, day_index: int) -> list[Expiry]:
    """Expiries listed on trading day ``day_index`` (including that day's own), sorted.

    Args:
        spec: the underlying.
        calendar: the market's trading calendar.
        day_index: the listing day.

    Returns:
        the expirations, by date then root; empty when the symbol has no options.
    """
    d = calendar.day(day_index)
    horizon = len(calendar) - 1
    dailies = [calendar.day(k) for k in range(day_index, min(day_index + 10, horizon + 1))]
    if spec.option_style == "none":
        return []
    if spec.option_style == "etf":
        dates = {
            *dailies,
            *_fridays(d, 8),
            *_monthlies(d, 12),
            *_monthlies(d, 24, (3, 6, 9, 12)),
            *_monthlies(d, 24, (1,)),
        }
        expiries = {Expiry(x, spec.symbol) for x in dates}
    elif spec.option_style == "spx":
        pm = {*dailies, *_fridays(d, 8), *_month_ends(d, 6), *_monthlies(d, 6)}
        am = {*_monthlies(d, 12), *_monthlies(d, 24, (3, 6, 9, 12)), *_monthlies(d, 36, (12,))}
        expiries = {Expiry(x, "SPXW") for x in pm} | {Expiry(x, "SPX", REGULAR_OPEN_S, 1) for x in am}
    else:
        dates = {*_fridays(d, 6), *_monthlies(d, 9), *_monthlies(d, 24, (1,))}
        expiries = {Expiry(x, spec.symbol) for x in dates}
    last = calendar.last
    return sorted(e for e in expiries if d <= e.date <= last)


# (step, width as a multiple of vol*sqrt(T), minimum width, maximum width) per band,
# finest first; width is a fraction of the reference price on each side.
_Band = tuple[float, float, float, float]


def _bands(spec: InstrumentSpec, reference: float, expiry_years: float) -> list[_Band]:
    near = expiry_years <= 0.25
    if spec.option_style == "etf":
        fine: _Band = (1.0, 4.0, 0.06, 0.10) if near else (1.0, 0.0, 0.03, 0.03)
        return [fine, (5.0, 6.0, 0.12, 0.30), (10.0, 10.0, 0.25, 0.60)]
    if spec.option_style == "spx":
        fine = (5.0, 3.0, 0.05, 0.07) if near else (5.0, 0.0, 0.02, 0.02)
        return [fine, (25.0, 6.0, 0.12, 0.20), (100.0, 10.0, 0.30, 0.50)]
    ladder = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0)
    i = next((j for j, s in enumerate(ladder) if s >= reference / 120.0), len(ladder) - 3)
    i = min(i, len(ladder) - 3)
    return [(ladder[i], 3.0, 0.05, 0.15), (ladder[i + 1], 6.0, 0.15, 0.50), (ladder[i + 2], 10.0, 0.30, 0.90)]


def strike_grid(spec: InstrumentSpec, reference: float, expiry_years: float) -> NDArray[np.float64]:
    """Sorted, unique strikes listed for one expiry.

    Args:
        spec: the underlying.
        reference: the price the grid is centred on (the previous close).
        expiry_years: time to expiry at listing, which sets how wide the bands reach.
    """
    sd = spec.vol * float(np.sqrt(max(expiry_years, 1.0 / 365.0)))
    parts = []
    for step, multiple, lo, hi in _bands(spec, reference, expiry_years):
        width = min(max(multiple * sd, lo), hi)
        low = max(reference * (1.0 - width), step)
        first = np.ceil(low / step)
        last = np.floor(reference * (1.0 + width) / step)
        parts.append(np.arange(first, last + 1.0) * step)
    return np.unique(np.round(np.concatenate(parts), 4))
