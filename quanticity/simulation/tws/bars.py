"""Historical bars (reqHistoricalData), their keepUpToDate updates, and 5-second real-time bars.

Bars come from the market's own aggregation (``market.bars`` for intraday sizes that
divide an hour, ``market.daily_bars`` for days, weeks and months), so they agree with
the L1 quotes and with the AlphaVantage simulator. FX pairs (the Watchdog's EURUSD
probe) trade around the clock: their bars are sampled from the synthetic rate at every
bar boundary, so a night-time probe still gets bars.

Labels: daily bars ``YYYYMMDD``; intraday bars ``YYYYMMDD HH:MM:SS US/Eastern`` (aware,
formatDate 1) or epoch seconds (formatDate 2). keepUpToDate updates use the same style.
Errors follow TWS: 321 for a malformed request, 162 for "no data" and oversized spans.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from quanticity.simulation.calendar import ET, et_datetime, to_et
from quanticity.simulation.errors import MarketHorizonError, SimulationRequestError
from quanticity.simulation.market import Session, SimulatedMarket
from quanticity.simulation.tws.contracts import SimContract, price_increment
from quanticity.simulation.tws.messages import Bar
from quanticity.simulation.tws.noise import mix
from quanticity.simulation.tws.quotes import QuoteEngine

__all__ = ["BarRequest", "BarRequestError", "BarSource", "parse_bar_size", "parse_duration", "parse_end"]

DAY, WEEK, MONTH = 86_400, 7 * 86_400, 31 * 86_400
_MAX_BARS = 100_000
_SIZE = re.compile(r"^\s*(\d+)\s*(secs?|mins?|hours?|days?|weeks?|months?|[DWM])\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*([SDWMY])\s*$")
_UNIT_S = {"sec": 1, "min": 60, "hou": 3600}
_WHAT = frozenset({"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST"})


class BarRequestError(SimulationRequestError):
    """A bar request TWS would refuse; ``code`` and ``text`` form the error reply."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code}: {text}")


def parse_bar_size(text: str) -> int:
    """Bar length in seconds (``DAY``/``WEEK``/``MONTH`` for the calendar sizes).

    Raises:
        BarRequestError: a size TWS does not offer, or one the simulator cannot build.
    """
    match = _SIZE.match(text)
    if match is not None:
        n, unit = int(match.group(1)), match.group(2).lower()
        if unit[0] == "d" and n == 1:
            return DAY
        if unit[0] == "w" and n == 1:
            return WEEK
        if unit.startswith("mo") or unit == "m" and n == 1:
            return MONTH
        seconds = n * _UNIT_S.get(unit[:3], 0)
        if seconds and 3600 % seconds == 0:
            return seconds
    raise BarRequestError(
        321, f"Error validating request.-'bP' : cause - Historical data bar size setting is invalid: {text!r}"
    )


def parse_duration(text: str) -> tuple[int, str]:
    """``"N S|D|W|M|Y"`` as ``(N, unit)``."""
    match = _DURATION.match(text.upper())
    if match is None or int(match.group(1)) <= 0:
        raise BarRequestError(
            321, f"Error validating request.-'bP' : cause - Historical data duration is invalid: {text!r}"
        )
    return int(match.group(1)), match.group(2)


def parse_end(text: str, now: datetime) -> datetime:
    """The request's end instant: ``''`` is now; ``YYYYMMDD HH:MM:SS [zone]`` or ``YYYYMMDD-HH:MM:SS`` (UTC)."""
    text = text.strip()
    if not text:
        return now
    try:
        if "-" in text and " " not in text:
            return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        parts = text.split()
        stamp = datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S")
        zone = ZoneInfo(parts[2]) if len(parts) > 2 else ET  # no zone: TWS's own zone (US/Eastern here)
        return min(stamp.replace(tzinfo=zone).astimezone(UTC), now)
    except (ValueError, KeyError):
        raise BarRequestError(
            321, f"Error validating request.-'bP' : cause - end date/time is invalid: {text!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class BarRequest:
    """A parsed reqHistoricalData / reqRealTimeBars."""

    contract: SimContract
    bar_s: int
    what: str
    use_rth: bool
    format_date: int


def _label(start: datetime, bar_s: int, format_date: int) -> str:
    if bar_s >= DAY:
        return to_et(start).strftime("%Y%m%d")
    if format_date == 2:
        return str(int(start.timestamp()))
    return to_et(start).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"


class BarSource:
    """Builds bars for requests; call from a worker thread.

    Args:
        market: the simulated market.
        quotes: the quote engine (FX rates, spreads).
    """

    def __init__(self, market: SimulatedMarket, quotes: QuoteEngine) -> None:
        self.market = market
        self.quotes = quotes

    def check(self, req: BarRequest) -> None:
        """Raise ``BarRequestError`` for requests TWS refuses before looking for data."""
        if req.what not in _WHAT:
            raise BarRequestError(321, f"Error validating request.-'bP' : cause - Invalid whatToShow: {req.what}")
        c = req.contract
        if c.sec_type == "CASH" and req.what in ("TRADES", "ADJUSTED_LAST"):
            raise BarRequestError(
                162,
                f"Historical Market Data Service error message:No historical market data for "
                f"{c.symbol}/CASH@FXSUBPIP Last {req.bar_s}",
            )
        if c.sec_type == "OPT":
            raise BarRequestError(
                162,
                f"Historical Market Data Service error message:HMDS query returned no data: "
                f"{c.local_symbol}@{c.exchange} {req.what.title()}",
            )

    def start_of(self, req: BarRequest, end: datetime, amount: int, unit: str) -> datetime:
        """The window start for a duration ending at ``end``."""
        if unit == "S":
            return end - timedelta(seconds=amount)
        if unit == "D":
            if req.contract.sec_type == "CASH":
                return end - timedelta(days=amount)
            k = self.market.calendar.index_on_or_before(to_et(end).date())
            return et_datetime(self.market.calendar.day(max(k - amount + 1, 0)), time(0))
        days = {"W": 7, "M": 30, "Y": 365}[unit] * amount
        return end - timedelta(days=days)

    def history(self, req: BarRequest, start: datetime, end: datetime) -> list[Bar]:
        """Complete bars inside ``[start, end]``; the daily sizes include today's partial bar."""
        self.check(req)
        span = (end - start).total_seconds()
        if req.bar_s < DAY and span / req.bar_s > _MAX_BARS:
            raise BarRequestError(162, "Historical Market Data Service error message:Time length exceed max.")
        try:
            if req.contract.sec_type == "CASH":
                bars = self._fx_bars(req, start, end, partial=False)
            elif req.bar_s >= DAY:
                bars = self._calendar_bars(req, start.date(), end)
            else:
                bars = self._intraday(req, start, end, req.bar_s)
        except MarketHorizonError:
            bars = []
        if not bars:
            c = req.contract
            raise BarRequestError(
                162,
                f"Historical Market Data Service error message:HMDS query returned no data: "
                f"{c.symbol}@{c.exchange} {req.what.title()}",
            )
        return bars

    def window(self, req: BarRequest, start: datetime, end: datetime, flat_when_empty: bool) -> Bar | None:
        """One bar over ``[start, end)`` (a 5-second real-time bar, or the partial bar of an update)."""
        try:
            if req.contract.sec_type == "CASH":
                bars = self._fx_bars(req, start, end, partial=True)
                return bars[0] if bars else None
            if req.bar_s >= DAY:
                bars = self._calendar_bars(req, to_et(end).date(), end)
                return bars[-1] if bars else None
            ones = self._intraday(req, start, end, 5 if (end - start).total_seconds() % 5 == 0 else 1)
        except MarketHorizonError:
            return None
        if ones:
            return self._merge(ones, _label(start, req.bar_s, req.format_date), int(start.timestamp()))
        if not flat_when_empty:
            return None
        mark = self.quotes.quote(req.contract, end).mark
        if mark is None:
            return None
        return self._bar(req, start, mark, mark, mark, mark, 0)

    # ------------------------------------------------------------------ builders
    def _bar(self, req: BarRequest, start: datetime, o: float, h: float, lo: float, c: float, volume: int) -> Bar:
        label = _label(start, req.bar_s, req.format_date)
        inc = price_increment(req.contract, c)
        what = req.what
        shift = {"BID": -inc / 2.0, "ASK": inc / 2.0}.get(what, 0.0)
        o, h, lo, c = (round(x + shift, 6) for x in (o, h, lo, c))
        if what == "BID_ASK":
            o, h, lo, c = round(o - inc / 2, 6), round(h + inc / 2, 6), round(lo - inc / 2, 6), round(c + inc / 2, 6)
        if what in ("TRADES", "ADJUSTED_LAST"):
            wap = round((h + lo + c) / 3.0, 6)
            count = max(1, volume // 150) if volume > 0 else 0
            return Bar(label, int(start.timestamp()), o, h, lo, c, float(volume), wap, count)
        return Bar(label, int(start.timestamp()), o, h, lo, c, -1.0, -1.0, -1)

    def _intraday(self, req: BarRequest, start: datetime, end: datetime, interval: int) -> list[Bar]:
        session: Session = "regular" if req.use_rth else "extended"
        cols = self.market.bars(req.contract.market_symbol, interval, start, end, session)
        out = []
        for i in range(cols["timestamp"].size):
            stamp = datetime.fromtimestamp(int(cols["timestamp"][i]) // 1_000_000_000, UTC)
            out.append(
                self._bar(
                    req,
                    stamp,
                    float(cols["open"][i]),
                    float(cols["high"][i]),
                    float(cols["low"][i]),
                    float(cols["close"][i]),
                    int(cols["volume"][i]),
                )
            )
        return out

    def _calendar_bars(self, req: BarRequest, first: date, end: datetime) -> list[Bar]:
        cols = self.market.daily_bars(req.contract.market_symbol, first, to_et(end).date(), as_of=end)
        days = [d.astype(date) for d in cols["date"]]
        groups: dict[date, list[int]] = {}
        for i, d in enumerate(days):
            key = (
                d if req.bar_s == DAY else (d - timedelta(days=d.weekday()) if req.bar_s == WEEK else d.replace(day=1))
            )
            groups.setdefault(key, []).append(i)
        out = []
        for key, rows in groups.items():
            label_day = days[rows[0]] if req.bar_s != DAY else key
            start = et_datetime(label_day, time(0))
            o, c = float(cols["open"][rows[0]]), float(cols["close"][rows[-1]])
            h, lo = float(np.max(cols["high"][rows])), float(np.min(cols["low"][rows]))
            out.append(self._bar(req, start, o, h, lo, c, int(np.sum(cols["volume"][rows]))))
        return out

    def _fx_bars(self, req: BarRequest, start: datetime, end: datetime, partial: bool) -> list[Bar]:
        step = req.bar_s if req.bar_s < DAY else DAY
        first = math.ceil(start.timestamp() / step) * step if not partial else int(start.timestamp())
        stop = end.timestamp()
        out: list[Bar] = []
        t = first
        while t + (0 if partial else step) <= stop and len(out) < _MAX_BARS:
            t0 = datetime.fromtimestamp(t, UTC)
            t1 = min(datetime.fromtimestamp(t + step, UTC), end)
            o, c = self.quotes.fx_price(req.contract, t0), self.quotes.fx_price(req.contract, t1)
            wiggle = 1e-5 * (1 + mix(t, 11) % 5)
            out.append(self._bar(req, t0, o, max(o, c) + wiggle, min(o, c) - wiggle, c, 0))
            if partial:
                break
            t += step
        return out

    @staticmethod
    def _merge(bars: list[Bar], label: str, epoch: int) -> Bar:
        volume = sum(b.volume for b in bars if b.volume > 0)
        if bars[0].volume < 0:
            wap, count, vol = -1.0, -1, -1.0
        else:
            wap = round(sum(b.wap * b.volume for b in bars) / volume, 6) if volume else bars[-1].close
            count, vol = sum(b.count for b in bars), float(volume)
        return Bar(
            label,
            epoch,
            bars[0].open,
            max(b.high for b in bars),
            min(b.low for b in bars),
            bars[-1].close,
            vol,
            wap,
            count,
        )
