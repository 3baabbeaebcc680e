"""US equity trading calendar for the simulated market: holidays, sessions, expiry dates.

The simulated exchange follows NYSE full-day holidays (rules valid from 2022 on, when
Juneteenth was added) and ignores the 13:00 early closes: every trading day has the
same 04:00-20:00 ET extended session with the 09:30-16:00 regular session inside it.
Keeping every day the same length lets the path generator work on fixed-size arrays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.errors import MarketHorizonError

__all__ = [
    "ET",
    "EXTENDED_OPEN",
    "REGULAR_CLOSE_S",
    "REGULAR_OPEN_S",
    "SESSION_SECONDS",
    "TradingCalendar",
    "et_datetime",
    "holidays",
    "is_trading_day",
    "last_weekday_trading_day",
    "regular_open_after_close",
    "third_friday",
    "to_et",
]

ET = ZoneInfo("America/New_York")
EXTENDED_OPEN = time(4, 0)
SESSION_SECONDS = 16 * 3600  # 04:00 -> 20:00 ET
REGULAR_OPEN_S = 5 * 3600 + 1800  # 09:30 is 19,800 s after 04:00
REGULAR_CLOSE_S = 12 * 3600  # 16:00 is 43,200 s after 04:00


def _observed(d: date) -> date:
    """Saturday holidays move to Friday, Sunday holidays to Monday (NYSE rule 7.2)."""
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    """NYSE full-day holidays observed in ``year``."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    new_year = date(year, 1, 1)
    # A Saturday New Year's Day is not observed on the Friday before: that Friday is in
    # the previous year and is a normal trading day.
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    return frozenset(days)


def is_trading_day(d: date) -> bool:
    """True on weekdays that are not NYSE holidays."""
    return d.weekday() < 5 and d not in holidays(d.year)


def third_friday(year: int, month: int) -> date:
    """The standard monthly expiration: the third Friday of the month."""
    return _nth_weekday(year, month, 4, 3)


def last_weekday_trading_day(d: date) -> date:
    """``d`` if it trades, else the nearest earlier trading day (expiry holiday rule)."""
    while not is_trading_day(d):
        d -= timedelta(days=1)
    return d


def to_et(t: datetime) -> datetime:
    """An aware datetime converted to US/Eastern."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: the simulated market works in aware UTC instants")
    return t.astimezone(ET)


def et_datetime(d: date, clock: time) -> datetime:
    """The aware UTC instant of wall-clock ``clock`` ET on ``d``."""
    return datetime.combine(d, clock, tzinfo=ET).astimezone(UTC)


_REGULAR_OPEN = time(9, 30)
_REGULAR_CLOSE = time(16, 0)


def regular_open_after_close(t: datetime) -> datetime | None:
    """The next regular-session open (09:30 ET) when the regular session is closed at ``t``, else ``None``.

    Closed means: at or after 16:00 ET, before 09:30 ET, or on a weekend or NYSE holiday.
    Listed option quotes do not change while it is closed, so a snapshot taken then
    describes the market until that open.
    """
    local = to_et(t)
    day, clock = local.date(), local.timetz().replace(tzinfo=None)
    if is_trading_day(day) and _REGULAR_OPEN <= clock < _REGULAR_CLOSE:
        return None
    if not is_trading_day(day) or clock >= _REGULAR_CLOSE:
        day += timedelta(days=1)
        while not is_trading_day(day):
            day += timedelta(days=1)
    return et_datetime(day, _REGULAR_OPEN)


class TradingCalendar:
    """The trading days of a fixed horizon, indexed 0..n-1.

    Args:
        first: first calendar date covered.
        last: last calendar date covered.
    """

    def __init__(self, first: date, last: date) -> None:
        self.first = first
        self.last = last
        days: list[date] = []
        d = first
        while d <= last:
            if is_trading_day(d):
                days.append(d)
            d += timedelta(days=1)
        self._days = days
        self.days64: NDArray[np.datetime64] = np.array(days, dtype="datetime64[D]")
        self._index = {day: k for k, day in enumerate(days)}

    def __len__(self) -> int:
        return len(self._days)

    def check(self, d: date) -> None:
        """Raise ``MarketHorizonError`` when ``d`` lies outside the horizon."""
        if not self.first <= d <= self.last:
            raise MarketHorizonError(d, self.first, self.last)

    def day(self, k: int) -> date:
        """The trading date with index ``k`` (no wrap-around: a negative index is outside the horizon)."""
        if not 0 <= k < len(self._days):
            raise MarketHorizonError(self.first if k < 0 else self.last + timedelta(days=1), self.first, self.last)
        return self._days[k]

    def index(self, d: date) -> int | None:
        """The index of ``d`` if it is a trading day in the horizon, else None."""
        self.check(d)
        return self._index.get(d)

    def index_on_or_before(self, d: date) -> int:
        """Index of the last trading day on or before ``d`` (-1 if there is none)."""
        self.check(d)
        return int(np.searchsorted(self.days64, np.datetime64(d, "D"), side="right")) - 1

    def index_on_or_after(self, d: date) -> int:
        """Index of the first trading day on or after ``d`` (len if there is none)."""
        self.check(d)
        return int(np.searchsorted(self.days64, np.datetime64(d, "D"), side="left"))

    def between(self, first: date, last: date) -> range:
        """Indices of the trading days in ``[first, last]`` clipped to the horizon."""
        lo = int(np.searchsorted(self.days64, np.datetime64(max(first, self.first), "D"), side="left"))
        hi = int(np.searchsorted(self.days64, np.datetime64(min(last, self.last), "D"), side="right"))
        return range(lo, max(lo, hi))

    def session_second(self, t: datetime) -> tuple[int, int]:
        """Where ``t`` falls: ``(day index, second into the 04:00-20:00 session)``.

        Outside a session the second is clamped: before 04:00 on a trading day it is 0,
        after 20:00 it is the session end, and on a non-trading day it is the end of the
        last session, so the price holds at its last value overnight and over weekends.
        """
        local = to_et(t)
        d = local.date()
        k = self.index(d)
        seconds = (local.hour - 4) * 3600 + local.minute * 60 + local.second
        if k is not None:  # before 04:00 the price is still last night's close, i.e. second 0
            return k, min(max(seconds, 0), SESSION_SECONDS)
        before = self.index_on_or_before(d)
        if before < 0:
            raise MarketHorizonError(d, self.first, self.last)
        return before, SESSION_SECONDS
