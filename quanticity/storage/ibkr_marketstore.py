"""IBKR market data → Redis: TimeSeries for L1 and bars, a Stream for tick-by-tick replay.

Key scheme (issue "Module 2"):

- ``ibkr:underlying:{symbol}:{field}``: bid, ask, last, mid, sizes, volume;
- ``ibkr:option:{symbol}:{expiry}:{strike}:{right}:{field}``: bid, ask, mid, last, iv and
  the model greeks; ``expiry`` is ``YYYYMMDD``, ``strike`` without trailing zeros;
- ``ibkr:auction:{symbol}:{field}``: closing-auction volume, price and imbalances;
- ``ibkr:bars:{symbol}:5s:{field}`` with server-side rules to ``…:1m``, ``…:2m``, ``…:5m``
  (first/max/min/last/sum), which is the bar aggregator's roll-up;
- ``ibkr:ticks:{symbol}``: a Redis Stream of tick-by-tick events, capped by length, for replay.

Full resolution is kept 48 h; 1 m and 5 m compactions 30 and 90 days. Samples are idempotent
(``DUPLICATE_POLICY LAST`` on the writer's series), so a record seen twice after a reconnect
stores once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from quanticity.schemas import AuctionState, Bar, OptionQuote, OptionQuoteBatch, Tick, UnderlyingQuote
from quanticity.storage.redis_timeseries import (
    PRICE_LADDER,
    Compaction,
    MaddResult,
    SeriesSpec,
    TimeSeriesWriter,
    epoch_ms,
)

FULL_RESOLUTION_MS = 48 * 3_600_000
TICK_STREAM_MAXLEN = 200_000
UNDERLYING_FIELDS = ("bid", "ask", "last", "mid", "bid_size", "ask_size", "volume")
OPTION_FIELDS = ("bid", "ask", "mid", "last", "iv", "delta", "gamma", "vega", "theta", "underlying")
AUCTION_FIELDS = ("auction_volume", "auction_price", "imbalance", "regulatory_imbalance")
BAR_FIELDS = ("open", "high", "low", "close", "volume")
# The bar aggregator's roll-up: one rule per interval from the 5 s series (rules cannot chain).
BAR_INTERVALS = (("1m", 60_000), ("2m", 120_000), ("5m", 300_000))
_BAR_AGGREGATION = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
_BAR_RETENTION_MS = {"1m": 30 * 86_400_000, "2m": 30 * 86_400_000, "5m": 90 * 86_400_000}


def _ms(record: UnderlyingQuote | OptionQuote | OptionQuoteBatch | AuctionState | Bar | Tick) -> int:
    return epoch_ms(record.event_time)


def strike_text(strike: float) -> str:
    """A strike as it appears in keys: ``600`` not ``600.0``, ``52.5`` as is."""
    return f"{strike:.4f}".rstrip("0").rstrip(".")


def underlying_key(symbol: str, field: str) -> str:
    """TimeSeries key of one L1 field of an underlying."""
    return f"ibkr:underlying:{symbol}:{field}"


def option_key(symbol: str, expiry: date, strike: float, right: str, field: str) -> str:
    """TimeSeries key of one field of an option contract."""
    return f"ibkr:option:{symbol}:{expiry:%Y%m%d}:{strike_text(strike)}:{right}:{field}"


def auction_key(symbol: str, field: str) -> str:
    """TimeSeries key of one closing-auction field."""
    return f"ibkr:auction:{symbol}:{field}"


def bar_key(symbol: str, interval: str, field: str) -> str:
    """TimeSeries key of one OHLCV field of ``symbol``'s bars at ``interval`` (5s, 1m, 2m, 5m)."""
    return f"ibkr:bars:{symbol}:{interval}:{field}"


def tick_stream_key(symbol: str) -> str:
    """Redis Stream of ``symbol``'s tick-by-tick events."""
    return f"ibkr:ticks:{symbol}"


def _labels(family: str, symbol: str, field: str, **extra: str) -> dict[str, str]:
    return {"family": family, "symbol": symbol, "field": field, "source": "ibkr", **extra}


def underlying_samples(quote: UnderlyingQuote) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of an IBKR underlying quote (absent fields skipped)."""
    values = {
        "bid": quote.bid,
        "ask": quote.ask,
        "last": quote.last,
        "mid": quote.mid,
        "bid_size": quote.bid_size,
        "ask_size": quote.ask_size,
        "volume": quote.volume,
    }
    ts = _ms(quote)
    specs, samples = [], []
    for field, value in values.items():
        if value is None:
            continue
        key = underlying_key(quote.symbol, field)
        specs.append(SeriesSpec(key, _labels("ibkr_underlying", quote.symbol, field), FULL_RESOLUTION_MS, PRICE_LADDER))
        samples.append((key, ts, float(value)))
    return specs, samples


def option_samples(quote: OptionQuote) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of an IBKR option quote (absent fields skipped)."""
    specs: list[SeriesSpec] = []
    samples: list[tuple[str, int, float]] = []
    values = _option_values(*(getattr(quote, name) for name in _QUOTE_FIELDS))
    _add_contract(specs, samples, quote.symbol, _ms(quote), quote.expiry, quote.strike, quote.right, values)
    return specs, samples


def option_batch_samples(batch: OptionQuoteBatch) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of every row of a batch, as :func:`option_samples` gives them per quote."""
    ts = _ms(batch)
    specs: list[SeriesSpec] = []
    samples: list[tuple[str, int, float]] = []
    columns = [getattr(batch, name) for name in _QUOTE_FIELDS]
    for i, (expiry, strike, right) in enumerate(zip(batch.expiry, batch.strike, batch.right, strict=True)):
        values = _option_values(*(column[i] for column in columns))
        _add_contract(specs, samples, batch.symbol, ts, expiry, strike, right, values)
    return specs, samples


#: The fields of an OptionQuote (or a batch's columns) that ``_option_values`` takes, in its order.
_QUOTE_FIELDS = ("bid", "ask", "last", "implied_vol", "delta", "gamma", "vega", "theta", "underlying_price")


def _option_values(*row: float | None) -> dict[str, float | None]:
    """A contract's stored fields from its ``_QUOTE_FIELDS`` values (``mid`` as ``OptionQuote.mid``)."""
    bid, ask, last, iv, delta, gamma, vega, theta, underlying = row
    mid = (bid + ask) / 2.0 if bid is not None and ask is not None else None
    fields = {"bid": bid, "ask": ask, "mid": mid, "last": last, "iv": iv, "delta": delta, "gamma": gamma}
    return {**fields, "vega": vega, "theta": theta, "underlying": underlying}


def _add_contract(
    specs: list[SeriesSpec],
    samples: list[tuple[str, int, float]],
    symbol: str,
    ts: int,
    expiry: date,
    strike: float,
    right: str,
    values: dict[str, float | None],
) -> None:
    """Append the series and samples of one contract's present ``values``."""
    extra = {"expiry": f"{expiry:%Y%m%d}", "strike": strike_text(strike), "right": right}
    for field, value in values.items():
        if value is None:
            continue
        key = option_key(symbol, expiry, strike, right, field)
        labels = _labels("ibkr_option", symbol, field, **extra)
        specs.append(SeriesSpec(key, labels, FULL_RESOLUTION_MS, PRICE_LADDER, chunk_size=256))
        samples.append((key, ts, float(value)))


def auction_samples(state: AuctionState) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of a closing-auction update."""
    values = {
        "auction_volume": state.auction_volume,
        "auction_price": state.auction_price,
        "imbalance": state.imbalance,
        "regulatory_imbalance": state.regulatory_imbalance,
    }
    ts = _ms(state)
    specs, samples = [], []
    for field, value in values.items():
        if value is None:
            continue
        key = auction_key(state.symbol, field)
        specs.append(SeriesSpec(key, _labels("ibkr_auction", state.symbol, field), FULL_RESOLUTION_MS, PRICE_LADDER))
        samples.append((key, ts, float(value)))
    return specs, samples


def bar_samples(bar: Bar) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series (with the 1 m / 2 m / 5 m roll-up rules) and samples of a 5 s bar."""
    interval = f"{bar.interval_s}s"
    ts = _ms(bar)
    specs, samples = [], []
    for field in BAR_FIELDS:
        rules: tuple[Compaction, ...] = ()
        if bar.interval_s == 5:
            rules = tuple(
                Compaction(name, ms, _BAR_AGGREGATION[field], _BAR_RETENTION_MS[name]) for name, ms in BAR_INTERVALS
            )
        key = bar_key(bar.symbol, interval, field)
        specs.append(
            SeriesSpec(key, _labels("ibkr_bars", bar.symbol, field, interval=interval), FULL_RESOLUTION_MS, rules)
        )
        samples.append((key, ts, float(getattr(bar, field))))
    return specs, samples


class IbkrMarketStore:
    """Writes IBKR L1, auction state, bars (TimeSeries) and ticks (Stream) through one writer."""

    def __init__(self, writer: TimeSeriesWriter) -> None:
        self.writer = writer

    async def store(
        self, records: Sequence[UnderlyingQuote | OptionQuote | OptionQuoteBatch | AuctionState | Bar]
    ) -> MaddResult:
        """Write the records' samples in one ``TS.MADD``, creating missing series first.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable; nothing is acknowledged.
        """
        specs: list[SeriesSpec] = []
        samples: list[tuple[str, int, float]] = []
        for record in records:
            if isinstance(record, UnderlyingQuote):
                s, v = underlying_samples(record)
            elif isinstance(record, OptionQuote):
                s, v = option_samples(record)
            elif isinstance(record, OptionQuoteBatch):
                s, v = option_batch_samples(record)
            elif isinstance(record, AuctionState):
                s, v = auction_samples(record)
            else:
                s, v = bar_samples(record)
            specs.extend(s)
            samples.extend(v)
        await self.writer.ensure_series(specs)
        return await self.writer.madd(samples, family="ibkr")

    async def store_ticks(self, ticks: Sequence[Tick]) -> None:
        """Append tick-by-tick events to their symbol's Stream (capped at ``TICK_STREAM_MAXLEN``).

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        async with self.writer.redis.pipeline(transaction=False) as pipe:
            for tick in ticks:
                fields: dict[bytes | bytearray | memoryview | str | int | float, Any] = {
                    "kind": tick.kind,
                    "record_id": tick.record_id,
                    **{
                        name: str(value)
                        for name, value in (
                            ("price", tick.price),
                            ("size", tick.size),
                            ("bid", tick.bid),
                            ("ask", tick.ask),
                            ("exchange", tick.exchange),
                        )
                        if value is not None
                    },
                }
                pipe.xadd(
                    self.writer.full_key(tick_stream_key(tick.symbol)),
                    fields,
                    maxlen=TICK_STREAM_MAXLEN,
                    approximate=True,
                )
            await pipe.execute()
