"""Level-1 quotes from the simulated market: a pure function of (seed, contract, instant).

Stocks, ETFs and cash indices follow the market's 1-second paths, interpolated inside the
second so that quotes move between samples. Trades are the seconds the market's
volume tape says traded; ``last`` is the latest of them. The spread is a few ticks,
wider outside the regular session; sizes and a one-tick spread flicker change every
quarter second, so quotes keep ticking at night while prices stay flat at the close.

Option quotes are rows of ``market.chain`` (the same quotes the AlphaVantage simulator
serves), with model Greeks from ``compute_greeks`` at the surface vol and bid/ask/last
Greeks at the vol implied from those prices.

The closing auction lives in ``auction``. Everything here may run in worker threads: caches are thread-safe LRUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import numpy as np
from numpy.typing import NDArray

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.analytics.implied_vol import implied_vol
from quanticity.simulation.cache import LRUCache
from quanticity.simulation.calendar import REGULAR_CLOSE_S, REGULAR_OPEN_S, SESSION_SECONDS, et_datetime
from quanticity.simulation.chains import OptionChainTable
from quanticity.simulation.errors import MarketHorizonError
from quanticity.simulation.instruments import stable_key
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.auction import AUCTION_SYMBOLS, Auction, closing_auction
from quanticity.simulation.tws.contracts import SimContract, price_increment, to_tick
from quanticity.simulation.tws.messages import OptionGreeks
from quanticity.simulation.tws.noise import mix
from quanticity.simulation.tws.underlying_stats import UnderlyingStats, underlying_stats

__all__ = ["OptionQuote", "Quote", "QuoteEngine"]

_FX_BASE = {"EUR": 1.085, "GBP": 1.27, "USD": 151.2}
_FX_VOL = 0.07
_SPREAD_ETF = 0.15e-4  # regular-session spread as a fraction of price: SPY trades a penny wide
_SPREAD_STOCK = 0.5e-4


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """Option-specific parts of a quote (Greeks in TWS units)."""

    model: OptionGreeks
    bid: OptionGreeks | None
    ask: OptionGreeks | None
    last: OptionGreeks | None
    implied_vol: float
    open_interest: int
    is_call: bool


@dataclass(frozen=True, slots=True)
class Quote:
    """One level-1 snapshot.

    Attributes:
        time: the instant quoted (for delayed data, the delayed instant).
        trading: inside a trading session (prices move, trades print).
        regular: inside the regular 09:30-16:00 session.
        bid, ask: None for contracts without quotes (cash indices, expired options).
        last_ms: epoch milliseconds of the last trade.
        close: the previous session's close.
        increment: the price increment at this price.
    """

    time: datetime
    trading: bool
    regular: bool
    bid: float | None
    bid_size: int
    ask: float | None
    ask_size: int
    last: float | None
    last_size: int
    last_ms: int
    volume: int | None
    vwap: float | None
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    increment: float
    option: OptionQuote | None = None
    auction: Auction | None = None

    @property
    def mid(self) -> float | None:
        """Midpoint of bid and ask, when both exist."""
        if self.bid is None or self.ask is None or self.bid <= 0:
            return None
        return (self.bid + self.ask) / 2.0

    @property
    def mark(self) -> float | None:
        """The price positions are marked at: the midpoint, else the last trade."""
        return self.mid if self.mid is not None else self.last


@dataclass(frozen=True, slots=True)
class _Tape:
    prices: NDArray[np.float64]  # 57,601 prices, one per session second
    volume: NDArray[np.int64]  # shares traded in each second
    cum_volume: NDArray[np.int64]  # shares traded before each second
    cum_value: NDArray[np.float64]
    last_trade: NDArray[np.int64]  # latest second <= s with volume, or -1
    start_epoch: int  # 04:00 ET of the day


class QuoteEngine:
    """Computes ``Quote`` snapshots and underlying statistics from the simulated market.

    Args:
        market: the simulated market.
    """

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self._tapes: LRUCache[tuple[str, int], _Tape] = LRUCache(96)
        self._daily: LRUCache[tuple[str, int, int], dict[str, NDArray[np.float64]]] = LRUCache(256)
        self._rows: LRUCache[tuple[str, int], tuple[OptionChainTable, dict[str, int]]] = LRUCache(16)
        self._closes: LRUCache[tuple[str, int], dict[str, float]] = LRUCache(32)
        self._stats: LRUCache[tuple[str, int, int], UnderlyingStats] = LRUCache(64)

    # ------------------------------------------------------------------ tapes
    def _tape(self, symbol: str, k: int) -> _Tape:
        def build() -> _Tape:
            spec = self.market.spec(symbol)
            paths = self.market.paths
            prices = paths.day_path(spec.path_symbol, k) * spec.ratio
            if spec.avg_volume > 0:
                volume = paths.second_volume(spec.path_symbol, k)
            else:
                volume = np.zeros(SESSION_SECONDS, dtype=np.int64)
            cum_volume = np.concatenate(([0], np.cumsum(volume))).astype(np.int64)
            cum_value = np.concatenate(([0.0], np.cumsum(volume * prices[1:])))
            seconds = np.arange(SESSION_SECONDS, dtype=np.int64)
            last_trade = np.maximum.accumulate(np.where(volume > 0, seconds, -1))
            start = int(et_datetime(self.market.calendar.day(k), time(4)).timestamp())
            return _Tape(prices, volume, cum_volume, cum_value, last_trade, start)

        return self._tapes.get((symbol, k), build)

    def _day_bars(self, symbol: str, t: datetime, k: int, s: int) -> dict[str, NDArray[np.float64]]:
        def build() -> dict[str, NDArray[np.float64]]:
            today = self.market.calendar.day(k)
            cols = self.market.daily_bars(symbol, today - timedelta(days=12), today, as_of=t)
            return {name: np.asarray(cols[name], dtype=np.float64) for name in ("open", "high", "low", "close")}

        return self._daily.get((symbol, k, s // 60), build)

    # ------------------------------------------------------------------ quotes
    def quote(self, contract: SimContract, t: datetime) -> Quote:
        """The level-1 snapshot of ``contract`` at ``t`` (aware)."""
        if contract.sec_type == "OPT":
            return self._option_quote(contract, t)
        if contract.sec_type == "CASH":
            return self._fx_quote(contract, t)
        return self._underlying_quote(contract, t)

    def _underlying_quote(self, c: SimContract, t: datetime) -> Quote:
        symbol = c.market_symbol
        spec = self.market.spec(symbol)
        k, s = self.market.calendar.session_second(t)
        trading = 0 < s < SESSION_SECONDS
        regular = REGULAR_OPEN_S <= s < REGULAR_CLOSE_S
        frac = t.microsecond / 1e6 if trading else 0.0
        vol_index = spec.kind == "vol_index"
        if vol_index:
            p0 = self.market.spot(symbol, t)
            p1 = self.market.spot(symbol, t + timedelta(seconds=1)) if trading else p0
        else:
            tape = self._tape(symbol, k)
            p0 = float(tape.prices[s])
            p1 = float(tape.prices[min(s + 1, SESSION_SECONDS)]) if trading else p0
        mid = p0 + (p1 - p0) * frac
        inc = price_increment(c, mid)
        bars = self._day_bars(symbol, t, k, s)
        has_today = s >= REGULAR_OPEN_S + 60
        closes = bars["close"]
        close = float(closes[-2] if has_today and closes.size > 1 else closes[-1]) if closes.size else None
        quarter = int(t.timestamp() * 4)
        sym_key = stable_key("tws-quote", symbol)
        if vol_index or spec.avg_volume <= 0:  # indices: a value, no quotes, no volume
            last, last_size, last_ms, volume, vwap = to_tick(mid, inc), 0, int(t.timestamp() * 1000), None, None
            bid = ask = None
            bid_size = ask_size = 0
        else:
            width = _SPREAD_ETF if spec.kind == "etf" else _SPREAD_STOCK
            bid, ask, bid_size, ask_size = self._book_top(
                mid, inc, width, spec.avg_volume, trading, regular, sym_key, quarter
            )
            end = max(s, 1) if trading else s
            i = int(tape.last_trade[min(end, SESSION_SECONDS) - 1]) if end > 0 else -1
            if i >= 0:
                last = to_tick(float(tape.prices[i + 1]), inc)
                traded = int(tape.volume[i])
                last_size = max(1, min(traded, 100 * (1 + mix(sym_key, i) % 5)))
                last_ms = (tape.start_epoch + i + 1) * 1000
            else:
                last, last_size, last_ms = to_tick(float(tape.prices[0]), inc), 100, tape.start_epoch * 1000
            volume = int(tape.cum_volume[s])
            vwap = float(tape.cum_value[s] / volume) if volume else None
        opened = has_today and bars["open"].size > 0
        high = low = open_ = None
        if opened:
            open_ = to_tick(float(bars["open"][-1]), inc)
            high = to_tick(max(float(bars["high"][-1]), last if regular and last else 0.0), inc)
            low = to_tick(min(float(bars["low"][-1]), last if regular and last else math.inf), inc)
        auction = self._auction(symbol, k, s, mid, inc) if symbol in AUCTION_SYMBOLS else None
        return Quote(
            t,
            trading,
            regular,
            bid,
            bid_size,
            ask,
            ask_size,
            last,
            last_size,
            last_ms,
            volume,
            vwap,
            open_,
            high,
            low,
            None if close is None else to_tick(close, inc),
            inc,
            auction=auction,
        )

    @staticmethod
    def _book_top(
        mid: float,
        inc: float,
        width: float,
        avg_volume: float,
        trading: bool,
        regular: bool,
        sym_key: int,
        quarter: int,
    ) -> tuple[float, float, int, int]:
        h = mix(sym_key, quarter)
        ticks = max(1, round(mid * width / inc))
        ticks *= 1 if regular else (3 if trading else 5)
        ticks += 1 if h % 5 == 0 else 0  # the one-tick flicker
        bid = math.floor((mid - ticks * inc / 2.0) / inc + 1e-9) * inc
        bid = round(max(bid, inc), 10)
        ask = round(bid + ticks * inc, 10)
        lots = max(1.0, min(avg_volume / 2e6, 30.0))
        if not regular:
            lots = max(1.0, lots / 4.0)
        bid_size = 100 * (1 + int(lots * ((h >> 8) % 1000) / 500.0))
        ask_size = 100 * (1 + int(lots * ((h >> 20) % 1000) / 500.0))
        return bid, ask, bid_size, ask_size

    def _auction(self, symbol: str, k: int, s: int, mid: float, inc: float) -> Auction:
        spec = self.market.spec(symbol)
        base_volume = self.market.spec(spec.path_symbol).avg_volume
        return closing_auction(
            symbol, k, s, mid, inc, base_volume, lambda day: float(self._tape(symbol, day).prices[REGULAR_CLOSE_S])
        )

    def _fx_quote(self, c: SimContract, t: datetime) -> Quote:
        mid = self.fx_price(c, t)
        inc = price_increment(c, mid)
        k, s = self.market.calendar.session_second(t)
        h = mix(stable_key("tws-fx", c.symbol), int(t.timestamp() * 4))
        ticks = 2 + (1 if h % 4 == 0 else 0)
        bid = round(math.floor((mid - ticks * inc / 2.0) / inc + 1e-9) * inc, 10)
        ask = round(bid + ticks * inc, 10)
        sizes = (1_000_000 * (1 + (h >> 8) % 10), 1_000_000 * (1 + (h >> 16) % 10))
        prev = self.fx_price(c, et_datetime(self.market.calendar.day(k), time(4)))
        return Quote(
            t,
            True,
            REGULAR_OPEN_S <= s < REGULAR_CLOSE_S,
            bid,
            sizes[0],
            ask,
            sizes[1],
            None,
            0,
            0,
            None,
            None,
            None,
            None,
            None,
            to_tick(prev, inc),
            inc,
        )

    def fx_price(self, c: SimContract, t: datetime) -> float:
        """The synthetic FX rate: a low-volatility transform of a market path named after the pair."""
        path = f"FX{c.trading_class.replace('.', '')}"
        spec = self.market.spec(path)
        ratio = self.market.spot(path, t) / spec.start_price
        return float(_FX_BASE.get(c.symbol, 1.0) * ratio ** (_FX_VOL / spec.vol))

    # ------------------------------------------------------------------ options
    def _chain_rows(self, family: str, t: datetime) -> tuple[OptionChainTable, dict[str, int]]:
        second = int(t.timestamp())

        def build() -> tuple[OptionChainTable, dict[str, int]]:
            chain = self.market.chain(family, datetime.fromtimestamp(second, UTC))
            return chain, {str(occ): i for i, occ in enumerate(chain.contract_id.tolist())}

        return self._rows.get((family, second), build)

    def _option_close(self, family: str, occ: str, k: int) -> float | None:
        def build() -> dict[str, float]:
            try:
                prev = self.market.calendar.day(k - 1)
            except MarketHorizonError:
                return {}
            chain = self.market.chain(family, et_datetime(prev, time(16)) - timedelta(seconds=1))
            return {str(o): float(m) for o, m in zip(chain.contract_id.tolist(), chain.mark.tolist(), strict=True)}

        return self._closes.get((family, k), build).get(occ)

    def _option_quote(self, c: SimContract, t: datetime) -> Quote:
        chain, rows = self._chain_rows(c.market_symbol, t)
        k, s = self.market.calendar.session_second(t)
        row = rows.get(c.occ_id)
        inc = price_increment(c, 1.0)
        regular = REGULAR_OPEN_S <= s < REGULAR_CLOSE_S
        if row is None:  # expired or not listed today
            return Quote(t, False, regular, None, 0, None, 0, None, 0, 0, None, None, None, None, None, None, inc)
        bid, ask, last = float(chain.bid[row]), float(chain.ask[row]), float(chain.last[row])
        spot, strike, years = chain.spot, float(chain.strike[row]), float(chain.expiry_years[row])
        is_call = bool(chain.is_call[row])
        iv = float(chain.implied_volatility[row])
        prices = np.array([bid if bid > 0 else np.nan, ask, last if last > 0 else np.nan])
        vols, _ = implied_vol(prices, spot, strike, years, chain.rate, chain.dividend_yield, is_call)
        all_vols = np.concatenate(([iv], np.where(np.isfinite(vols), vols, iv)))
        g = compute_greeks(spot, strike, years, chain.rate, chain.dividend_yield, all_vols, is_call)
        pv_div = spot * (1.0 - math.exp(-chain.dividend_yield * years))

        def greeks(i: int, price: float) -> OptionGreeks:
            return OptionGreeks(
                float(all_vols[i]),
                float(g.delta[i]),
                price,
                pv_div,
                float(g.gamma[i]),
                float(g.vega[i]) / 100.0,
                float(g.theta[i]) / 365.0,
                spot,
            )

        solved = np.isfinite(vols)
        option = OptionQuote(
            model=greeks(0, float(g.price[0])),
            bid=greeks(1, bid) if solved[0] else None,
            ask=greeks(2, ask) if solved[1] else None,
            last=greeks(3, last) if solved[2] else None,
            implied_vol=iv,
            open_interest=int(chain.open_interest[row]),
            is_call=is_call,
        )
        volume = int(chain.volume[row])
        close = self._option_close(c.market_symbol, c.occ_id, k)
        return Quote(
            t,
            0 < s < SESSION_SECONDS,
            regular,
            bid,
            int(chain.bid_size[row]),
            ask,
            int(chain.ask_size[row]),
            last if last > 0 else None,
            1 + mix(stable_key(c.occ_id), volume) % 10 if volume else 0,
            int(t.timestamp()) * 1000,
            volume,
            None,
            None,
            None,
            None,
            close,
            price_increment(c, ask),
            option=option,
        )

    # ------------------------------------------------------------------ statistics
    def stats(self, c: SimContract, t: datetime) -> UnderlyingStats:
        """Option-market and range statistics of an underlying (or an option's underlying)."""
        symbol = c.market_symbol
        k, s = self.market.calendar.session_second(t)
        return self._stats.get((symbol, k, s // 60), lambda: underlying_stats(self.market, symbol, t))
