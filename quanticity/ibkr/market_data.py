"""IBKR L1, option greeks, closing-auction fields, tick-by-tick and 5 s bars → records.

Subscriptions go through :class:`~quanticity.ibkr.connection_manager.IbkrConnection`, so
each one is restored after a reconnect. ``ib_insync`` reports changed tickers once per
socket read (``pendingTickersEvent``); each becomes at most one record per
``quote_coalesce_ms`` (latest values win — an L1 quote is a state, not an event), while
every tick-by-tick event and every bar becomes its own record. Symbols that stream
tick-by-tick trades without TWS real-time bars get 5 s bars built from their trades
(:mod:`quanticity.ibkr.bar_aggregator`), published like TWS's.

Entitlement errors (354 not subscribed, 10089/10090/10168 delayed available, 10167
displaying delayed) downgrade that contract to delayed data once, visibly: a WARNING log
line, ``ibkr_market_data_downgrades_total{code}`` and ``ibkr_market_data_type{symbol}``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import structlog
from ib_insync import IB, Contract, TickByTickAllLast, TickByTickBidAsk, Ticker
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from quanticity.ibkr.bar_aggregator import OhlcvBar, TradeBarAggregator
from quanticity.ibkr.connection_manager import IbkrConnection
from quanticity.ibkr.contracts import parse_expiry
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.schemas import AuctionState, Bar, OptionQuoteBatch, Record, Tick, UnderlyingQuote, stable_id
from quanticity.schemas.level1 import BATCH_COLUMNS
from quanticity.settings.model import Mode

log = structlog.get_logger(__name__)
#: A line that has produced nothing this long after its request is asked again: TWS drops a
#: message over its rate with an error 100 that names no request, and never answers it.
SILENT_LINE_AFTER_S: Final = 30.0
#: How many times a silent line is asked again (a contract that never quotes stops there).
SILENT_LINE_RETRIES: Final = 3

ENTITLEMENT_CODES: Final = frozenset({354, 10089, 10090, 10167, 10168, 10186})
DELAYED_TYPES: Final = frozenset({3, 4})

Emit = Callable[[Record], None]


def _num(value: Any) -> float | None:
    """A ticker number, or None for ib_insync's "absent" values (NaN, -1, 0-priced sides)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _price(value: Any) -> float | None:
    number = _num(value)
    return number if number is not None and number > 0 else None


def _size(value: Any) -> float | None:
    number = _num(value)
    return number if number is not None and number >= 0 else None


@dataclass(frozen=True)
class RecordStamp:
    """Envelope fields every record of this ingest process shares."""

    run_id: str
    mode: Mode

    def envelope(self, record_id: str, event_time: datetime) -> dict[str, Any]:
        return {
            "record_id": record_id,
            "event_time": event_time,
            "source": "ibkr",
            "run_id": self.run_id,
            "mode": self.mode,
        }


@functools.lru_cache(maxsize=4096)
def _expiry(text: str) -> date:
    # strptime costs more than the rest of an option record together: parse each expiry once.
    return parse_expiry(text)


def _event_time(ticker: Ticker) -> datetime:
    t = ticker.time
    if t is None:
        return datetime.now(UTC)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def underlying_quote(ticker: Ticker, stamp: RecordStamp) -> UnderlyingQuote | None:
    """The L1 quote of an underlying ticker, or None while it has no price at all."""
    bid, ask, last = _price(ticker.bid), _price(ticker.ask), _price(ticker.last)
    if last is None:
        last = _price(ticker.close) if bid is None and ask is None else None
    if bid is None and ask is None and last is None:
        return None
    if bid is not None and ask is not None and bid > ask:
        bid = ask = None  # a crossed book is transient on a consolidated feed; keep only last
        if last is None:
            return None
    contract = ticker.contract
    assert contract is not None  # noqa: S101 - ib_insync always attaches the contract
    when = _event_time(ticker)
    volume = _size(ticker.volume)
    rid = stable_id("ibkr-l1", contract.symbol, when.timestamp(), bid, ask, last, volume)
    return UnderlyingQuote(
        symbol=contract.symbol,
        bid=bid,
        ask=ask,
        last=last,
        bid_size=_size(ticker.bidSize) if bid is not None else None,
        ask_size=_size(ticker.askSize) if ask is not None else None,
        volume=volume,
        **stamp.envelope(rid, when),
    )


def auction_state(ticker: Ticker, stamp: RecordStamp) -> AuctionState | None:
    """Closing-auction fields (generic tick 225), or None when the ticker has none."""
    values = (
        _size(ticker.auctionVolume),
        _price(ticker.auctionPrice),
        _num(ticker.auctionImbalance),
        _num(ticker.regulatoryImbalance),
    )
    if all(v is None for v in values):
        return None
    contract = ticker.contract
    assert contract is not None  # noqa: S101
    when = _event_time(ticker)
    return AuctionState(
        symbol=contract.symbol,
        auction_volume=values[0],
        auction_price=values[1],
        imbalance=values[2],
        regulatory_imbalance=values[3],
        last=_price(ticker.last),
        **stamp.envelope(stable_id("ibkr-auction", contract.symbol, when.timestamp(), *values), when),
    )


ROW_FIELDS: Final = BATCH_COLUMNS  # the order option_row returns a row's values in
OptionRow = tuple[Any, ...]
# The row values a batch's record id is made of (as the per-contract quote id was).
_ID_FIELDS = tuple(ROW_FIELDS.index(name) for name in ("contract_id", "bid", "ask", "last", "implied_vol"))


def option_row(ticker: Ticker) -> OptionRow | None:
    """The L1 quote and model greeks of an option ticker as a batch row (``ROW_FIELDS``), or None while empty.

    A crossed book keeps neither side; negative prices and sizes are dropped, so every row
    this returns passes the batch's checks.
    """
    contract = ticker.contract
    assert contract is not None  # noqa: S101
    bid, ask, last = _price(ticker.bid), _price(ticker.ask), _price(ticker.last)
    greeks = ticker.modelGreeks
    if bid is None and ask is None and last is None and greeks is None:
        return None
    if bid is not None and ask is not None and bid > ask:
        bid = ask = None
    iv = _num(ticker.impliedVolatility)
    if iv is None and greeks is not None:
        iv = _num(greeks.impliedVol)
    oi = ticker.callOpenInterest if contract.right == "C" else ticker.putOpenInterest
    return (
        _expiry(contract.lastTradeDateOrContractMonth),
        float(contract.strike),
        "C" if contract.right.startswith("C") else "P",
        contract.conId or None,
        bid,
        ask,
        last,
        _size(ticker.bidSize) if bid is not None else None,
        _size(ticker.askSize) if ask is not None else None,
        _size(ticker.volume),
        _size(oi),
        iv if iv is not None and iv >= 0 else None,
        _num(greeks.delta) if greeks else None,
        _num(greeks.gamma) if greeks else None,
        _num(greeks.vega) if greeks else None,
        _num(greeks.theta) if greeks else None,
        _price(greeks.undPrice) if greeks else None,
    )


def option_batch(
    symbol: str, event_time: datetime, rows: list[OptionRow], delayed: bool, stamp: RecordStamp
) -> OptionQuoteBatch:
    """The rows of one underlying observed at ``event_time`` as one record (id from their contents).

    Raises:
        pydantic.ValidationError: a row does not pass the batch's checks.
    """
    columns = {name: list(values) for name, values in zip(ROW_FIELDS, zip(*rows, strict=True), strict=True)}
    rid = stable_id("ibkr-opt-batch", symbol, event_time.timestamp(), *(tuple(r[i] for i in _ID_FIELDS) for r in rows))
    return OptionQuoteBatch(symbol=symbol, delayed=delayed, **columns, **stamp.envelope(rid, event_time))


def tick_records(ticker: Ticker, stamp: RecordStamp) -> list[Tick]:
    """One :class:`Tick` per tick-by-tick event the ticker received since the last read."""
    contract = ticker.contract
    assert contract is not None  # noqa: S101
    out: list[Tick] = []
    for n, event in enumerate(ticker.tickByTicks):
        when = event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)
        if isinstance(event, TickByTickBidAsk):
            bid, ask = _price(event.bidPrice), _price(event.askPrice)
            if bid is not None and ask is not None and bid > ask:
                continue
            rid = stable_id("ibkr-tbt-ba", contract.symbol, when.timestamp(), n, bid, ask)
            out.append(Tick(symbol=contract.symbol, kind="bid_ask", bid=bid, ask=ask, **stamp.envelope(rid, when)))
        elif isinstance(event, TickByTickAllLast):
            rid = stable_id("ibkr-tbt-t", contract.symbol, when.timestamp(), n, event.price, event.size)
            out.append(
                Tick(
                    symbol=contract.symbol,
                    kind="trade",
                    price=_price(event.price),
                    size=_size(event.size),
                    exchange=event.exchange or None,
                    **stamp.envelope(rid, when),
                )
            )
    return out


def bar_record(symbol: str, bar: Any, stamp: RecordStamp, interval_s: int = 5) -> Bar:
    """A completed real-time bar → :class:`Bar` (``event_time`` = the bar's start)."""
    when = bar.time if bar.time.tzinfo else bar.time.replace(tzinfo=UTC)
    o, h, lo, c = float(bar.open_), float(bar.high), float(bar.low), float(bar.close)
    return Bar(
        symbol=symbol,
        interval_s=interval_s,
        open=o,
        high=max(h, o, c),
        low=min(lo, o, c),
        close=c,
        volume=max(float(bar.volume), 0.0),
        **stamp.envelope(stable_id("ibkr-bar", symbol, interval_s, when.timestamp()), when),
    )


@dataclass
class _Line:
    """One market data line: what it is and when it last produced a record."""

    contract: Contract
    kind: str  # underlying | option
    last_emit: float = 0.0
    dirty: bool = False
    auction: tuple[float | None, ...] = field(default_factory=tuple)
    requested_at: float = 0.0  # monotonic time of the last request
    seen: bool = False  # any update since the first request
    retries: int = 0  # times asked again while silent


class MarketDataFeed:
    """Streams L1/greeks/auction, tick-by-tick and bars of the configured contracts as records.

    Args:
        conn: the role's supervised connection.
        emit: hands a record to the publisher (must not block).
        stamp: the records' envelope.
        metrics: IBKR metrics.
        coalesce_ms: minimum time between two records of one line.
        underlying_ticks: genericTickList of underlyings.
        option_ticks: genericTickList of options.
        data_type: the market data type requested after connect.
    """

    def __init__(
        self,
        conn: IbkrConnection,
        emit: Emit,
        stamp: RecordStamp,
        metrics: IbkrMetrics,
        *,
        coalesce_ms: int = 0,
        underlying_ticks: str = "233,225",
        option_ticks: str = "100,101,104,106",
        data_type: int = 1,
    ) -> None:
        self.conn = conn
        self.emit = emit
        self.stamp = stamp
        self.metrics = metrics
        self.coalesce_s = coalesce_ms / 1000.0
        self.underlying_ticks = underlying_ticks
        self.option_ticks = option_ticks
        self.data_type = data_type
        self._lines: dict[int, _Line] = {}  # conId → line
        self._delayed: set[int] = set()
        self._bar_symbols: set[str] = set()  # real-time bars from TWS
        self._trade_bars = TradeBarAggregator(5)  # 5 s bars built from the trades of the other symbols
        # Option rows waiting for the end of the socket read (or flush) that produced them.
        self._option_rows: dict[tuple[str, datetime, bool], list[OptionRow]] = {}
        self._kind_metrics: dict[str, tuple[Counter, Histogram]] = {}  # labelled children, looked up once
        self.records = 0
        conn.ib.pendingTickersEvent += self._on_tickers
        conn.add_error_listener(self._on_error)

    # ------------------------------------------------------------------ subscribing
    async def subscribe_l1(self, contracts: Iterable[Contract], kind: str) -> None:
        """Stream L1 (plus greeks for options, auction fields for underlyings) of qualified contracts."""
        for contract in contracts:
            self._lines[contract.conId] = _Line(contract, kind, requested_at=time.monotonic())
            self.metrics.market_data_type.labels(contract.symbol).set(self.data_type)
            await self.conn.add_subscription(f"mkt:{contract.conId}", self._l1_restorer(contract, kind))
        self.metrics.subscriptions.labels(self.conn.endpoint.role, "l1").set(len(self._lines))

    async def ask_silent_lines_again(self, after_s: float = SILENT_LINE_AFTER_S) -> int:
        """Request again every L1 line that has produced nothing ``after_s`` after its request.

        TWS drops a message over its rate (error 100, no request id) and never answers it,
        so a dropped ``reqMktData`` is a line that stays silent; pacing makes that rare but
        cannot rule it out. Each line is asked again at most ``SILENT_LINE_RETRIES`` times
        (cancel, then request, through the pacer); logged and counted
        (``ibkr_error_events_total{code="silent_line"}``).

        Returns:
            How many lines were asked again.
        """
        if not self.conn.is_connected:
            return 0
        now = time.monotonic()
        silent = [
            line
            for line in self._lines.values()
            if not line.seen and line.retries < SILENT_LINE_RETRIES and now - line.requested_at >= after_s
        ]
        ib = self.conn.ib
        asked = 0
        for line in silent:
            await self.conn.pace(2)
            if line.seen or not self.conn.is_connected:  # it answered, or the restorers take over
                continue
            silent_s = time.monotonic() - line.requested_at
            ticks = self.underlying_ticks if line.kind == "underlying" else self.option_ticks
            try:
                ib.cancelMktData(line.contract)
                ib.reqMktData(line.contract, ticks, False, False)
            except ConnectionError as exc:  # the socket went meanwhile (counted in ibkr_disconnects_total)
                log.info("ibkr_silent_lines_left_to_restorers", error=str(exc), detail="the reconnect re-requests them")
                break
            line.retries += 1
            line.requested_at = time.monotonic()
            asked += 1
            self.metrics.error_events.labels("silent_line").inc()
            log.warning(
                "ibkr_line_silent_asked_again",
                symbol=line.contract.symbol,
                con_id=line.contract.conId,
                kind=line.kind,
                silent_s=round(silent_s, 1),
                attempt=line.retries,
                attempts=SILENT_LINE_RETRIES,
            )
        return asked

    def _l1_restorer(self, contract: Contract, kind: str) -> Callable[[IB], Any]:
        ticks = self.underlying_ticks if kind == "underlying" else self.option_ticks

        async def restore(ib: IB) -> None:
            ib.reqMktData(contract, ticks, False, False)

        return restore

    async def subscribe_tick_by_tick(self, contracts: Iterable[Contract]) -> None:
        """Stream every trade (``AllLast``) and every bid/ask change (``BidAsk``)."""
        count = 0
        for contract in contracts:
            for tick_type in ("AllLast", "BidAsk"):

                async def restore(ib: IB, contract: Contract = contract, tick_type: str = tick_type) -> None:
                    ib.reqTickByTickData(contract, tick_type, 0, False)

                await self.conn.add_subscription(f"tbt:{tick_type}:{contract.conId}", restore)
                count += 1
        self.metrics.subscriptions.labels(self.conn.endpoint.role, "tick_by_tick").set(count)

    async def subscribe_bars(self, contracts: Iterable[Contract]) -> None:
        """Stream 5 s real-time TRADES bars (``reqRealTimeBars``)."""
        for contract in contracts:
            symbol = contract.symbol
            self._bar_symbols.add(symbol)
            what = "MIDPOINT" if contract.secType == "IND" else "TRADES"

            async def restore(ib: IB, contract: Contract = contract, symbol: str = symbol, what: str = what) -> None:
                bars = ib.reqRealTimeBars(contract, 5, what, False)
                bars.updateEvent += lambda bars, has_new, symbol=symbol: self._on_bar(symbol, bars, has_new)

            await self.conn.add_subscription(f"bars:{contract.conId}", restore)
        self.metrics.subscriptions.labels(self.conn.endpoint.role, "bars").set(len(self._bar_symbols))

    # ------------------------------------------------------------------ events
    def _publish(self, record: Record | None, kind: str, received: float, events: int = 1) -> None:
        if record is None:
            return
        self.emit(record)
        self.records += 1
        metrics = self._kind_metrics.get(kind)
        if metrics is None:
            metrics = self._kind_metrics[kind] = (
                self.metrics.events.labels(kind),
                self.metrics.event_latency_ms.labels(kind),
            )
        metrics[0].inc(events)
        metrics[1].observe((time.perf_counter() - received) * 1000.0)

    def _on_tickers(self, tickers: Iterable[Ticker]) -> None:
        received = time.perf_counter()
        now = time.monotonic()
        seen = False
        for ticker in tickers:
            contract = ticker.contract
            if contract is None:
                continue
            if ticker.tickByTicks:
                for tick in tick_records(ticker, self.stamp):
                    self._publish(tick, "tick", received)
                    if tick.kind == "trade" and tick.symbol not in self._bar_symbols:
                        self._add_trade(tick, received)
                seen = True
            line = self._lines.get(contract.conId)
            if line is None:
                continue
            seen = True
            line.seen = True
            if self.coalesce_s and now - line.last_emit < self.coalesce_s:
                line.dirty = True
                continue
            self._emit_line(line, ticker, received, now)
        if self._option_rows:
            self._publish_option_rows(received)
        if seen:
            self.conn.note_data()

    def _add_trade(self, tick: Tick, received: float) -> None:
        if tick.price is None or not tick.price > 0:
            return
        late = self._trade_bars.late_trades
        for bar in self._trade_bars.add(tick.symbol, tick.event_time, tick.price, tick.size or 0.0):
            self._publish_trade_bar(bar, received)
        if self._trade_bars.late_trades != late:
            self.metrics.late_trades.inc()

    @property
    def trade_bar_symbols(self) -> frozenset[str]:
        """Symbols whose 5 s bars this feed builds from trades (tick-by-tick without TWS real-time bars)."""
        return self._trade_bars.symbols

    def close_trade_bars(self, now: datetime | None = None) -> None:
        """Publish the trade-built 5 s bars whose bucket has ended (call about once a second)."""
        received = time.perf_counter()
        for bar in self._trade_bars.close_due(now or datetime.now(UTC)):
            self._publish_trade_bar(bar, received)

    def _publish_trade_bar(self, bar: OhlcvBar, received: float) -> None:
        record = Bar(
            symbol=bar.symbol,
            interval_s=bar.interval_s,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            **self.stamp.envelope(stable_id("ibkr-bar", bar.symbol, bar.interval_s, bar.start.timestamp()), bar.start),
        )
        self._publish(record, "bar", received)

    def flush_dirty(self) -> None:
        """Emit lines held back by coalescing whose window has passed (call periodically)."""
        received = time.perf_counter()
        now = time.monotonic()
        for ticker in self.conn.ib.tickers():
            contract = ticker.contract
            line = self._lines.get(contract.conId) if contract is not None else None
            if line is not None and line.dirty and now - line.last_emit >= self.coalesce_s:
                self._emit_line(line, ticker, received, now)
        if self._option_rows:
            self._publish_option_rows(received)

    def _emit_line(self, line: _Line, ticker: Ticker, received: float, now: float) -> None:
        line.dirty = False
        line.last_emit = now
        try:
            if line.kind == "option":
                row = option_row(ticker)
                if row is not None:
                    batch_key = (line.contract.symbol, _event_time(ticker), ticker.marketDataType in DELAYED_TYPES)
                    self._option_rows.setdefault(batch_key, []).append(row)
                return
            self._publish(underlying_quote(ticker, self.stamp), "underlying_quote", received)
            auction = auction_state(ticker, self.stamp)
            if auction is not None:
                key = (auction.auction_volume, auction.auction_price, auction.imbalance, auction.regulatory_imbalance)
                if key != line.auction:
                    line.auction = key
                    self._publish(auction, "auction", received)
        except (ValidationError, ValueError) as exc:
            self.metrics.events.labels("invalid").inc()
            log.error("ibkr_ticker_invalid", symbol=line.contract.symbol, con_id=line.contract.conId, error=str(exc))

    def _publish_option_rows(self, received: float) -> None:
        """One :class:`OptionQuoteBatch` per underlying (and event time) of the rows collected."""
        pending, self._option_rows = self._option_rows, {}
        for (symbol, when, delayed), rows in pending.items():
            try:
                batch = option_batch(symbol, when, rows, delayed, self.stamp)
            except (ValidationError, ValueError) as exc:
                # A row the checks refuse must not take the others with it: publish them one by one.
                log.error("ibkr_option_batch_invalid", symbol=symbol, rows=len(rows), error=str(exc))
                for row in rows:
                    try:
                        self._publish(option_batch(symbol, when, [row], delayed, self.stamp), "option_quote", received)
                    except (ValidationError, ValueError) as row_exc:
                        self.metrics.events.labels("invalid").inc()
                        log.error("ibkr_ticker_invalid", symbol=symbol, con_id=row[_ID_FIELDS[0]], error=str(row_exc))
                continue
            self._publish(batch, "option_quote", received, events=len(rows))

    def _on_bar(self, symbol: str, bars: Any, has_new: bool) -> None:
        if not has_new or len(bars) < 2:
            return  # the newest bar is still forming; publish the one it replaced
        received = time.perf_counter()
        try:
            self._publish(bar_record(symbol, bars[-2], self.stamp), "bar", received)
        except (ValidationError, ValueError) as exc:
            self.metrics.events.labels("invalid").inc()
            log.error("ibkr_bar_invalid", symbol=symbol, error=str(exc))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code not in ENTITLEMENT_CODES or contract is None or not getattr(contract, "conId", 0):
            return
        con_id = contract.conId
        if con_id in self._delayed or con_id not in self._lines:
            return
        self._delayed.add(con_id)
        self.metrics.downgrades.labels(str(code)).inc()
        self.metrics.market_data_type.labels(contract.symbol).set(3)
        log.warning(
            "ibkr_market_data_downgraded",
            symbol=contract.symbol,
            con_id=con_id,
            code=code,
            message=message,
            action="re-requesting as delayed data (type 3); check the account's market data subscriptions",
        )
        line = self._lines[con_id]
        ib = self.conn.ib
        ticks = self.underlying_ticks if line.kind == "underlying" else self.option_ticks

        async def restore(ib: IB, contract: Contract = line.contract, ticks: str = ticks) -> None:
            ib.reqMarketDataType(3)
            ib.reqMktData(contract, ticks, False, False)
            ib.reqMarketDataType(self.data_type)

        line.requested_at = time.monotonic()  # a new request: silence is counted from it
        ib.cancelMktData(line.contract)
        self.conn.ib.reqMarketDataType(3)
        ib.reqMktData(line.contract, ticks, False, False)
        ib.reqMarketDataType(self.data_type)
        # Replace the restorer without running it now: the delayed request was just sent.
        self.conn.set_restorer(f"mkt:{con_id}", restore)
