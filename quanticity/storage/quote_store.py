"""Underlying quotes → Redis TimeSeries (one series per field) + a metadata hash.

Key scheme (ARCHITECTURE.md §3): ``underlyings:{symbol}:{field}`` with labels
``family=underlyings symbol=… field=… source=…``; metadata in the hash
``meta:underlyings:{symbol}`` (last event and ingest time, source, freshness).
"""

from __future__ import annotations

from collections.abc import Sequence

from quanticity.schemas import UnderlyingQuote
from quanticity.storage.redis_timeseries import PRICE_LADDER, MaddResult, SeriesSpec, TimeSeriesWriter, epoch_ms

QUOTE_FIELDS = ("bid", "ask", "last", "mid", "bid_size", "ask_size", "volume")
_RETENTION_MS = {"ibkr": 48 * 3_600_000}  # IBKR: 48 h full resolution; everything else 7 days
_DEFAULT_RETENTION_MS = 7 * 24 * 3_600_000


def series_key(symbol: str, field: str) -> str:
    """TimeSeries key of one field of an underlying."""
    return f"underlyings:{symbol}:{field}"


def meta_key(symbol: str) -> str:
    """Metadata hash of an underlying."""
    return f"meta:underlyings:{symbol}"


def quote_samples(quote: UnderlyingQuote) -> list[tuple[str, int, float]]:
    """The ``(key, timestamp_ms, value)`` samples of a quote; absent fields are skipped."""
    ts = epoch_ms(quote.event_time)
    values = {
        "bid": quote.bid,
        "ask": quote.ask,
        "last": quote.last,
        "mid": quote.mid,
        "bid_size": quote.bid_size,
        "ask_size": quote.ask_size,
        "volume": quote.volume,
    }
    return [(series_key(quote.symbol, f), ts, float(v)) for f, v in values.items() if v is not None]


def quote_series(quote: UnderlyingQuote) -> list[SeriesSpec]:
    """The series a quote writes to, with labels and retention."""
    retention = _RETENTION_MS.get(quote.source, _DEFAULT_RETENTION_MS)
    return [
        SeriesSpec(
            series_key(quote.symbol, f),
            {"family": "underlyings", "symbol": quote.symbol, "field": f, "source": quote.source},
            retention,
            PRICE_LADDER,
        )
        for f in QUOTE_FIELDS
    ]


class UnderlyingQuoteStore:
    """Stores underlying quotes through a ``TimeSeriesWriter``."""

    def __init__(self, writer: TimeSeriesWriter) -> None:
        self.writer = writer

    async def store(
        self, quotes: Sequence[UnderlyingQuote], freshness: str = "fresh", update_meta: bool = True
    ) -> MaddResult:
        """Write the quotes' samples in one ``TS.MADD`` and (optionally) each symbol's metadata.

        ``update_meta=False`` is for late (out-of-order) quotes: their samples belong in the
        series, but they must not make the metadata look older than it is.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable; nothing is acknowledged.
        """
        samples: list[tuple[str, int, float]] = []
        for quote in quotes:
            await self.writer.ensure_series(quote_series(quote))
            samples.extend(quote_samples(quote))
        result = await self.writer.madd(samples, family="underlyings")
        if not update_meta:
            return result
        async with self.writer.redis.pipeline(transaction=False) as pipe:
            for quote in quotes:
                pipe.hset(
                    self.writer.full_key(meta_key(quote.symbol)),
                    mapping={
                        "last_event_time": quote.event_time.isoformat(),
                        "last_ingest_time": quote.ingest_time.isoformat(),
                        "source": quote.source,
                        "freshness": freshness,
                        "record_id": quote.record_id,
                    },
                )
            await pipe.execute()
        return result
