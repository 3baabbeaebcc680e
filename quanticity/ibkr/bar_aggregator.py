"""OHLCV bars from trades, and the roll-up of short bars into longer ones.

Two sources give the system 5 s bars of an underlying: TWS's real-time bars
(``reqRealTimeBars``, for the symbols in ``ibkr.realtime_bars``) and, for the symbols that
stream tick-by-tick trades without real-time bars, :class:`TradeBarAggregator`, which
builds the same 5 s bars from the trades. Either way the bar reaches Redis as
``ibkr:bars:{symbol}:5s:{field}``, where TimeSeries compaction rules keep the 1 m, 2 m and
5 m bars (open = first, high = max, low = min, close = last, volume = sum), and
:func:`roll_up` does the same arithmetic in Python for consumers that hold bars in memory.

Buckets are aligned to the epoch (a 5 s bar starts at a multiple of 5 s, a 1 m bar on the
minute), as TimeSeries aligns its compactions. A bar is complete once a trade of a later
bucket arrives or :meth:`TradeBarAggregator.close_due` is called after the bucket's end
plus ``grace_s`` (trades arrive a little after their exchange time). A trade for a bucket
that was already closed is late: counted, and left out of the bar.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class OhlcvBar:
    """One bar of ``interval_s`` seconds starting at ``start`` (aware, UTC)."""

    symbol: str
    start: datetime
    interval_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


def bucket_start(when: datetime, interval_s: int) -> datetime:
    """The start of the ``interval_s`` bucket holding ``when`` (epoch-aligned, UTC)."""
    seconds = math.floor(when.timestamp() / interval_s) * interval_s
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class _Open:
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int

    def add(self, price: float, size: float) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.trades += 1


class TradeBarAggregator:
    """Builds epoch-aligned OHLCV bars of ``interval_s`` seconds from trades, per symbol.

    Args:
        interval_s: the bar length (5 s: the real-time bars' length).
        grace_s: how long after a bucket's end :meth:`close_due` still waits for its trades.
    """

    def __init__(self, interval_s: int = 5, grace_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.late_trades = 0
        self._open: dict[str, _Open] = {}
        self._closed_until: dict[str, datetime] = {}

    @property
    def symbols(self) -> frozenset[str]:
        """Symbols this aggregator has built bars for (open or closed)."""
        return frozenset(self._open) | frozenset(self._closed_until)

    def add(self, symbol: str, when: datetime, price: float, size: float) -> list[OhlcvBar]:
        """Add one trade; returns the bar it completed (a trade of a later bucket), if any.

        Raises:
            ValueError: a naive ``when``, or a price or size that is not a finite number >= 0.
        """
        if when.tzinfo is None:
            raise ValueError(f"trade of {symbol} at {when}: the time must be timezone-aware")
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"trade of {symbol} at {when}: price {price} is not a positive number")
        if not (math.isfinite(size) and size >= 0):
            raise ValueError(f"trade of {symbol} at {when}: size {size} is not a number >= 0")
        start = bucket_start(when, self.interval_s)
        closed = self._closed_until.get(symbol)
        if closed is not None and start < closed:
            self.late_trades += 1
            return []
        current = self._open.get(symbol)
        done: list[OhlcvBar] = []
        if current is not None and start > current.start:
            done.append(self._close(symbol, current))
            current = None
        if current is None:
            self._open[symbol] = _Open(start, price, price, price, price, size, 1)
        else:
            current.add(price, size)
        return done

    def close_due(self, now: datetime) -> list[OhlcvBar]:
        """Close every open bar whose bucket ended more than ``grace_s`` before ``now``."""
        done = []
        for symbol, bar in list(self._open.items()):
            if (now - bar.start).total_seconds() >= self.interval_s + self.grace_s:
                done.append(self._close(symbol, bar))
        return done

    def _close(self, symbol: str, bar: _Open) -> OhlcvBar:
        del self._open[symbol]
        end = datetime.fromtimestamp(bar.start.timestamp() + self.interval_s, UTC)
        self._closed_until[symbol] = end
        return OhlcvBar(
            symbol, bar.start, self.interval_s, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades
        )


def roll_up(bars: Iterable[OhlcvBar], interval_s: int) -> list[OhlcvBar]:
    """Roll bars up into epoch-aligned bars of ``interval_s`` (a multiple of theirs), per symbol.

    Open is the first bar's open, close the last bar's close, high the max, low the min and
    volume the sum, as the TimeSeries compaction rules of the bar series compute them. Bars
    need not be sorted; the result is sorted by symbol and start.

    Raises:
        ValueError: ``interval_s`` is not a multiple of a bar's length.
    """
    groups: dict[tuple[str, datetime], list[OhlcvBar]] = {}
    for bar in bars:
        if interval_s % bar.interval_s:
            raise ValueError(f"cannot roll {bar.interval_s} s bars of {bar.symbol} into {interval_s} s bars")
        groups.setdefault((bar.symbol, bucket_start(bar.start, interval_s)), []).append(bar)
    out = []
    for (symbol, start), members in sorted(groups.items()):
        members.sort(key=lambda b: b.start)
        out.append(_merge(symbol, start, interval_s, members))
    return out


def _merge(symbol: str, start: datetime, interval_s: int, bars: Sequence[OhlcvBar]) -> OhlcvBar:
    return OhlcvBar(
        symbol,
        start,
        interval_s,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum(b.volume for b in bars),
        sum(b.trades for b in bars),
    )
