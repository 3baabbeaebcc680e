"""The simulated market: one deterministic story that every simulated data source tells.

``SimulatedMarket`` is source-agnostic: the AlphaVantage simulator formats it as JSON and
CSV, the TWS simulator will stream it as ticks. Everything is a pure function of
``(seed, start, symbols)`` and the instant asked about, so two processes with the same
arguments agree, and any window can be asked for in any order.

It is safe to call from several threads: caches are guarded, results are immutable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.cache import LRUCache
from quanticity.simulation.calendar import (
    REGULAR_CLOSE_S,
    REGULAR_OPEN_S,
    SESSION_SECONDS,
    TradingCalendar,
    et_datetime,
    to_et,
)
from quanticity.simulation.chains import ChainListing, OptionChainTable, build_listing, price_chain
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.instruments import DEFAULT_UNIVERSE, InstrumentSpec, instrument_spec, stable_key
from quanticity.simulation.macro import MacroModel
from quanticity.simulation.news import NewsModel
from quanticity.simulation.paths import PathModel
from quanticity.simulation.vol_surface import VolSurface, atm_levels, smile_shape, term_blend

__all__ = ["Session", "SimulatedMarket"]

Session = Literal["extended", "regular"]
Columns = dict[str, NDArray[Any]]  # numpy columns of mixed dtypes, named as documented
_NS = 1_000_000_000
_VIX_TENOR = 30.0 / 365.0


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise SimulationRequestError(f"{name} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * _NS + t.microsecond * 1000


class SimulatedMarket:
    """Underlying paths, a volatility surface, option chains, macro series and news.

    Args:
        seed: master seed; the same seed gives the same market.
        start: aware instant the simulation starts at; each symbol trades at its start
            price at 04:00 ET of the last trading day on or before it.
        symbols: the symbols the market lists (the default watchlist is always listed).
        rate: flat continuously compounded risk-free rate used for options.
        years_back: trading history generated before ``start``.
        years_forward: how far past ``start`` the market runs.
    """

    def __init__(
        self,
        seed: int,
        start: datetime,
        symbols: Sequence[str],
        *,
        rate: float = 0.043,
        years_back: int = 5,
        years_forward: int = 10,
    ) -> None:
        self.seed = seed
        self.start = _aware(start, "start").astimezone(UTC)
        self.rate = rate
        self.symbols = tuple(dict.fromkeys(s.upper() for s in (*symbols, *DEFAULT_UNIVERSE)))
        start_day = to_et(self.start).date()
        self.calendar = TradingCalendar(
            start_day - timedelta(days=366 * years_back), start_day + timedelta(days=366 * years_forward)
        )
        anchor = self.calendar.index_on_or_before(start_day)
        self.paths = PathModel(seed, self.calendar, max(anchor, 0))
        self.macro = MacroModel(seed, self.start, self.calendar)
        self.news_model = NewsModel(seed, self)
        self._listings: LRUCache[tuple[str, int], ChainListing] = LRUCache(32)
        self._chains: LRUCache[tuple[str, int], OptionChainTable] = LRUCache(8)

    # ------------------------------------------------------------------ symbols
    def is_listed(self, symbol: str) -> bool:
        """True for symbols this market lists (constructor symbols and the default universe)."""
        return symbol.upper() in self.symbols

    def spec(self, symbol: str) -> InstrumentSpec:
        """The simulation parameters of ``symbol``."""
        return instrument_spec(symbol)

    def dividend_yield(self, symbol: str) -> float:
        """Continuous dividend yield used to price ``symbol``'s options."""
        return instrument_spec(symbol).dividend_yield

    # ------------------------------------------------------------------ prices
    def _scale(self, spec: InstrumentSpec, k: int, base_prices: NDArray[np.float64]) -> NDArray[np.float64]:
        """Base-path prices turned into ``spec``'s prices on day ``k``."""
        if spec.kind != "vol_index":
            return base_prices * spec.ratio
        # VIX: 30-day ATM vol of the SPX surface (which moves against the index intraday),
        # lifted 5% for the skew a variance-swap style index picks up.
        spx = instrument_spec("SPX")
        short, long_level = atm_levels(
            base_prices, self.paths.close_before("SPY", k), self.paths.day_vol("SPY", k), spx.vol, smile_shape("index")
        )
        return 100.0 * 1.05 * term_blend(short, long_level, _VIX_TENOR)

    def spot(self, symbol: str, t: datetime) -> float:
        """Price of ``symbol`` at ``t`` (1-second resolution; last close outside sessions)."""
        spec = instrument_spec(symbol)
        k, s = self.calendar.session_second(_aware(t, "t"))
        base = spec.path_symbol if spec.kind != "vol_index" else "SPY"
        if s == 0:
            price = self.paths.close_before(base, k)
        elif s == SESSION_SECONDS:
            price = self.paths.close_before(base, k + 1)
        else:
            price = float(self.paths.day_path(base, k)[s])
        return float(self._scale(spec, k, np.array([price]))[0])

    def session_reference(self, symbol: str, t: datetime) -> float:
        """The price ``symbol`` started ``t``'s trading day at (the previous 20:00 close)."""
        spec = instrument_spec(symbol)
        k, _ = self.calendar.session_second(_aware(t, "t"))
        base = spec.path_symbol if spec.kind != "vol_index" else "SPY"
        return float(self._scale(spec, k, np.array([self.paths.close_before(base, k)]))[0])

    def bars(
        self, symbol: str, interval_s: int, start: datetime, end: datetime, session: Session = "extended"
    ) -> Columns:
        """Complete OHLCV bars inside ``[start, end]``.

        Bars are aligned to multiples of ``interval_s`` from midnight ET and labelled by
        their start; only session seconds contribute (04:00-20:00 ET, or 09:30-16:00 for
        ``session="regular"``).

        Args:
            symbol: the instrument.
            interval_s: bar length in seconds; must divide 3600.
            start: earliest bar start (aware).
            end: latest bar end (aware).
            session: extended or regular hours.

        Returns:
            columns ``timestamp`` (int64 ns UTC of the bar start), ``open``, ``high``,
            ``low``, ``close`` (float64) and ``volume`` (int64), oldest first.

        Raises:
            SimulationRequestError: bad interval or naive datetimes.
            MarketHorizonError: the window leaves the simulated horizon.
        """
        if interval_s < 1 or 3600 % interval_s:
            raise SimulationRequestError(f"interval_s must divide 3600, got {interval_s}")
        spec = instrument_spec(symbol)
        start_ns, end_ns = _ns(_aware(start, "start")), _ns(_aware(end, "end"))
        lo_s, hi_s = (0, SESSION_SECONDS) if session == "extended" else (REGULAR_OPEN_S, REGULAR_CLOSE_S)
        out: dict[str, list[NDArray[Any]]] = {c: [] for c in ("timestamp", "open", "high", "low", "close", "volume")}
        for k in self.calendar.between(to_et(start).date(), to_et(end).date()):
            day = self.calendar.day(k)
            cols = self._day_units(spec, k, interval_s % 60 == 0, lo_s, hi_s)
            unit = 60 if interval_s % 60 == 0 else 1
            midnight_ns = _ns(et_datetime(day, time(0)))
            seconds_since_midnight = 4 * 3600 + lo_s + np.arange(cols[0].size) * unit
            bucket = seconds_since_midnight // interval_s
            starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
            ends = np.concatenate((starts[1:], [bucket.size])) - 1
            stamp = midnight_ns + bucket[starts].astype(np.int64) * interval_s * _NS
            keep = (stamp >= start_ns) & (stamp + interval_s * _NS <= end_ns)
            o, h, lo, c, v = cols
            values = (
                stamp,
                o[starts],
                np.maximum.reduceat(h, starts),
                np.minimum.reduceat(lo, starts),
                c[ends],
                np.add.reduceat(v, starts),
            )
            for name, column in zip(out, values, strict=True):
                out[name].append(column[keep])
        result: Columns = {}
        for name, parts in out.items():
            dtype = np.int64 if name in ("timestamp", "volume") else np.float64
            result[name] = np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)
        return result

    def _day_units(
        self, spec: InstrumentSpec, k: int, by_minute: bool, lo_s: int, hi_s: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        base = spec.path_symbol if spec.kind != "vol_index" else "SPY"
        if by_minute:
            m = self.paths.minute_bars(base, k)
            sl = slice(lo_s // 60, hi_s // 60)
            o, h, lo, c, v = m.open[sl], m.high[sl], m.low[sl], m.close[sl], m.volume[sl]
        else:
            p = self.paths.day_path(base, k)
            o, c = p[lo_s:hi_s], p[lo_s + 1 : hi_s + 1]
            h, lo = np.maximum(o, c), np.minimum(o, c)
            v = self.paths.second_volume(base, k)[lo_s:hi_s]
        if spec.kind == "vol_index":  # VIX falls as SPX rises: its high comes from SPX's low
            h, lo = self._scale(spec, k, lo), self._scale(spec, k, h)
            o, c = self._scale(spec, k, o), self._scale(spec, k, c)
        elif spec.ratio != 1.0:
            o, h, lo, c = (x * spec.ratio for x in (o, h, lo, c))
        if spec.avg_volume <= 0.0:
            v = np.zeros_like(v)
        return o, h, lo, c, v

    def daily_bars(self, symbol: str, first: date, last: date, as_of: datetime | None = None) -> Columns:
        """Regular-session daily bars for trading days in ``[first, last]``.

        Args:
            symbol: the instrument.
            first: first date.
            last: last date.
            as_of: when given, days after it are left out and its own day, if its
                regular session has opened, is the partial bar up to ``as_of``.

        Returns:
            columns ``date`` (datetime64[D]), ``open``, ``high``, ``low``, ``close``, ``volume``.
        """
        spec = instrument_spec(symbol)
        days = list(self.calendar.between(first, last))
        partial: tuple[int, int] | None = None
        if as_of is not None:
            k_now, s_now = self.calendar.session_second(_aware(as_of, "as_of"))
            if s_now < REGULAR_CLOSE_S:
                days = [k for k in days if k < k_now]
                if s_now >= REGULAR_OPEN_S + 60 and first <= self.calendar.day(k_now) <= last:
                    partial = (k_now, s_now // 60)
            else:
                days = [k for k in days if k <= k_now]
        rows = [self._daily_row(spec, k) for k in days]
        if partial is not None:
            rows.append(self._partial_row(spec, *partial))
        dates = np.array(
            [np.datetime64(self.calendar.day(k), "D") for k in days]
            + ([np.datetime64(self.calendar.day(partial[0]), "D")] if partial else []),
            dtype="datetime64[D]",
        )
        array = np.array(rows, dtype=np.float64).reshape(len(rows), 5)
        return {
            "date": dates,
            "open": array[:, 0],
            "high": array[:, 1],
            "low": array[:, 2],
            "close": array[:, 3],
            "volume": array[:, 4].astype(np.int64),
        }

    def _daily_row(self, spec: InstrumentSpec, k: int) -> tuple[float, float, float, float, float]:
        base = spec.path_symbol if spec.kind != "vol_index" else "SPY"
        bar = self.paths.daily_bar(base, k)
        o, h, lo, c = self._scale(spec, k, np.array([bar.open, bar.high, bar.low, bar.close]))
        if spec.kind == "vol_index":
            h, lo = lo, h
        return float(o), float(h), float(lo), float(c), float(bar.volume if spec.avg_volume > 0 else 0)

    def _partial_row(self, spec: InstrumentSpec, k: int, minute: int) -> tuple[float, float, float, float, float]:
        o, h, lo, c, v = self._day_units(spec, k, True, 0, SESSION_SECONDS)
        first = REGULAR_OPEN_S // 60
        return (
            float(o[first]),
            float(h[first:minute].max()),
            float(lo[first:minute].min()),
            float(c[minute - 1]),
            float(v[:minute].sum()),
        )

    # ------------------------------------------------------------------ options
    def vol_surface(self, symbol: str, t: datetime) -> VolSurface:
        """The implied-volatility surface of ``symbol`` at ``t``."""
        spec = instrument_spec(symbol)
        if spec.kind == "vol_index":
            raise SimulationRequestError(f"{symbol} is a volatility index; the market has no surface for it")
        k, _ = self.calendar.session_second(_aware(t, "t"))
        return VolSurface.build(
            self.spot(symbol, t),
            self.session_reference(symbol, t),
            self.paths.day_vol(spec.path_symbol, k),
            spec.vol,
            self.rate,
            spec.dividend_yield,
            smile_shape(spec.kind),
        )

    def expirations(self, symbol: str, t: datetime) -> list[date]:
        """Expiration dates still trading at ``t``, ascending (all roots of the family)."""
        chain = self._family_chain(symbol, t)
        return [d.astype(date) for d in np.unique(self._select(symbol, chain).expiration)]

    def _family(self, symbol: str) -> str:
        spec = instrument_spec(symbol)
        return "SPX" if spec.option_style == "spx" else spec.symbol

    def _listing(self, family: str, k: int) -> ChainListing:
        def build() -> ChainListing:
            spec = instrument_spec(family)
            reference = self.paths.close_before(spec.path_symbol, k) * spec.ratio
            rng = self._rng("listing", family, k)
            return build_listing(spec, self.calendar, k, reference, rng)

        return self._listings.get((family, k), build)

    def _rng(self, *words: str | int) -> np.random.Generator:
        entropy = [self.seed % (1 << 32)] + [
            stable_key(w) & 0xFFFFFFFF if isinstance(w, str) else w % (1 << 32) for w in words
        ]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def option_quote_time(self, t: datetime) -> datetime:
        """The instant listed option quotes stand at, at ``t`` (whole seconds).

        Listed options trade in the regular session only (09:30-16:00 ET): after the close,
        overnight, before the open and on non-trading days their quotes hold at the last
        close, while the underlying goes on trading in extended hours.
        """
        second = datetime.fromtimestamp(int(_aware(t, "t").timestamp()), UTC)
        k, s = self.calendar.session_second(second)
        if s >= REGULAR_CLOSE_S:
            return et_datetime(self.calendar.day(k), time(16))
        if s >= REGULAR_OPEN_S:
            return second
        if k > 0:  # before the open: the previous session's close
            return et_datetime(self.calendar.day(k - 1), time(16))
        return et_datetime(self.calendar.day(k), time(9, 30))  # the horizon's first session has no earlier close

    def _family_chain(self, symbol: str, t: datetime) -> OptionChainTable:
        family = self._family(symbol)
        t_second = self.option_quote_time(t)
        second = int(t_second.timestamp())

        def build() -> OptionChainTable:
            spec = instrument_spec(family)
            k, _ = self.calendar.session_second(t_second)
            listing = self._listing(family, k)
            live = listing.last_trade_ns > second * _NS
            close = et_datetime(self.calendar.day(k), time(16))
            return price_chain(
                spec,
                listing,
                live,
                t_second,
                self.spot(family, t_second),
                self.vol_surface(family, t_second),
                close,
                self._rng("quotes", family, second),
            )

        return self._chains.get((family, second), build)

    @staticmethod
    def _select(symbol: str, chain: OptionChainTable) -> OptionChainTable:
        return chain.take(chain.root == "SPXW") if symbol.upper() == "SPXW" else chain

    def chain(self, symbol: str, t: datetime, expiration: date | None = None) -> OptionChainTable:
        """The option chain of ``symbol`` at ``t`` (whole seconds), optionally one expiry.

        Outside the regular session it is the chain as it stood at the last close
        (``option_quote_time``): the same table, poll after poll, until the next open.

        ``SPX`` returns the whole S&P 500 family (roots SPX and SPXW); ``SPXW`` only the
        SPXW root. Symbols without listed options give an empty table.
        """
        table = self._select(symbol, self._family_chain(symbol, t))
        if expiration is not None:
            table = table.take(table.expiration == np.datetime64(expiration, "D"))
        return table

    # ------------------------------------------------------------------ reference data
    def macro_series(
        self, function: str, interval: str, maturity: str | None = None, as_of: datetime | None = None
    ) -> list[tuple[date, float | None]]:
        """A FRED-like macro series, newest first; ``None`` marks a missing observation.

        Args:
            function: AlphaVantage-style name (``TREASURY_YIELD``, ``CPI``...).
            interval: ``daily``, ``weekly``, ``monthly``, ``quarterly``, ``semiannual`` or ``annual``.
            maturity: treasury maturity (``3month``, ``2year``, ... ``30year``).
            as_of: observations published after this instant are left out (default: start).
        """
        return self.macro.series(function, interval, maturity, as_of or self.start)

    def news(
        self,
        tickers: Sequence[str],
        topics: Sequence[str],
        time_from: datetime | None,
        time_to: datetime | None,
        sort: str = "LATEST",
        limit: int = 50,
        as_of: datetime | None = None,
    ) -> list[dict[str, object]]:
        """Synthetic news articles with sentiment (AlphaVantage feed-item shape).

        Args:
            tickers: every article must mention all of them.
            topics: every article must cover all of them (topic codes, e.g. ``technology``).
            time_from: earliest publication instant (default: 3 days before ``time_to``).
            time_to: latest publication instant (default: ``as_of``).
            sort: ``LATEST``, ``EARLIEST`` or ``RELEVANCE``.
            limit: maximum number of articles.
            as_of: the present; nothing later is published (default: start).
        """
        return self.news_model.articles(tickers, topics, time_from, time_to, sort, limit, as_of or self.start)

    def day_return(self, symbol: str, d: date) -> float:
        """Log return of ``symbol`` over trading day ``d`` (0 on non-trading days)."""
        k = self.calendar.index(d)
        spec = instrument_spec(symbol)
        if k is None or spec.kind == "vol_index":
            return 0.0
        base = spec.path_symbol
        return math.log(self.paths.close_before(base, k + 1) / self.paths.close_before(base, k))
