"""Bars, indicators, macro series and news → Redis.

Keys (ARCHITECTURE.md §3):
- ``bars:{symbol}:{interval}:{field}`` — OHLCV bars from AlphaVantage intraday (IBKR bars
  keep their own ``ibkr:bars:…`` family, Module 2);
- ``indicators:{symbol}:{function}:{value}`` — one series per indicator value key
  (``SMA``, ``MACD_Signal``, ``Real Upper Band``…);
- ``macro:{function}[:{maturity}]`` — one series per macro series, sample at the
  observation date (UTC midnight); missing observations are not written;
- ``news:{record_id}`` — one JSON document per article, and the sorted set
  ``news:by_ticker:{ticker}`` (score = publication time) to find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

import orjson

from quanticity.schemas import Bar, IndicatorSeries, MacroSeries, NewsItem
from quanticity.storage.redis_timeseries import MaddResult, SeriesSpec, TimeSeriesWriter, epoch_ms

_WEEK_MS = 7 * 24 * 3_600_000
_MACRO_RETENTION_MS = 0  # keep macro history: a few hundred points per series
_BAR_FIELDS = ("open", "high", "low", "close", "volume")


def _slug(text: str) -> str:
    return text.replace(" ", "_")


def bar_samples(bars: Sequence[Bar]) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of OHLCV bars."""
    specs: dict[str, SeriesSpec] = {}
    samples: list[tuple[str, int, float]] = []
    for bar in bars:
        interval = f"{bar.interval_s}s"
        ts = epoch_ms(bar.event_time)
        for field in _BAR_FIELDS:
            key = f"bars:{bar.symbol}:{interval}:{field}"
            specs.setdefault(
                key,
                SeriesSpec(
                    key,
                    {
                        "family": "bars",
                        "symbol": bar.symbol,
                        "interval": interval,
                        "field": field,
                        "source": bar.source,
                    },
                    _WEEK_MS,
                ),
            )
            samples.append((key, ts, float(getattr(bar, field))))
    return list(specs.values()), samples


def indicator_samples(series: IndicatorSeries) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """Series and samples of one indicator reply (gaps skipped)."""
    specs = []
    samples: list[tuple[str, int, float]] = []
    stamps = [epoch_ms(t) for t in series.timestamps]
    for value_key, column in series.values.items():
        key = f"indicators:{series.symbol}:{series.function}:{_slug(value_key)}"
        specs.append(
            SeriesSpec(
                key,
                {
                    "family": "indicators",
                    "symbol": series.symbol,
                    "function": series.function,
                    "value": _slug(value_key),
                    "interval": series.interval,
                    "source": series.source,
                },
                _WEEK_MS,
            )
        )
        samples.extend((key, ts, v) for ts, v in zip(stamps, column, strict=True) if v is not None)
    return specs, samples


def macro_key(series: MacroSeries) -> str:
    """Series key of a macro series (maturity-qualified for TREASURY_YIELD)."""
    maturity = series.parameters.get("maturity")
    return f"macro:{series.function}" + (f":{maturity}" if maturity else "")


def macro_samples(series: MacroSeries) -> tuple[list[SeriesSpec], list[tuple[str, int, float]]]:
    """The series and samples of a macro reply; missing observations are not written."""
    key = macro_key(series)
    spec = SeriesSpec(
        key,
        {
            "family": "macro",
            "function": series.function,
            "unit": _slug(series.unit),
            "interval": series.interval,
            "source": series.source,
        },
        _MACRO_RETENTION_MS,
    )
    samples = [
        (key, int(datetime.combine(d, time(), UTC).timestamp() * 1000), v)
        for d, v in zip(series.dates, series.values, strict=True)
        if v is not None
    ]
    return [spec], samples


class ReferenceStore:
    """Writes bars, indicators, macro series and news."""

    def __init__(self, writer: TimeSeriesWriter) -> None:
        self.writer = writer

    async def store_series(
        self, specs: list[SeriesSpec], samples: list[tuple[str, int, float]], family: str
    ) -> MaddResult:
        """Create what is missing, then one ``TS.MADD``."""
        await self.writer.ensure_series(specs)
        return await self.writer.madd(samples, family=family)

    async def store_news(self, items: Sequence[NewsItem]) -> None:
        """One JSON document per article plus per-ticker sorted-set entries (idempotent)."""
        async with self.writer.redis.pipeline(transaction=False) as pipe:
            for item in items:
                doc_key = self.writer.full_key(f"news:{item.record_id}")
                pipe.execute_command("JSON.SET", doc_key, "$", orjson.dumps(item.model_dump(mode="json")))
                pipe.expire(doc_key, 30 * 24 * 3600)
                score = item.event_time.timestamp()
                for ticker in item.tickers:
                    pipe.zadd(self.writer.full_key(f"news:by_ticker:{ticker.ticker}"), {item.record_id: score})
            await pipe.execute()
