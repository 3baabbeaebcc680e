"""Live AlphaVantage suite: `ALPHA_VANTAGE_API_KEY=… LIVE_ALPHA_TESTS=1 pytest -m live_alpha`.

Fewer than 30 calls through the production client, limiter and normalizer against the real
service; every reply must normalize into valid records that the stores write to Redis (the
session stack, under a private key prefix). Deselected by default (pyproject addopts).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from quanticity.data_ingestion.alphavantage_rest import AlphaVantageClient
from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.data_ingestion.rate_limiter import RateLimiter
from quanticity.data_ingestion.stream_scheduler import expirations_for
from quanticity.observability.metrics import Metrics
from quanticity.schemas import (
    Bar,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    Record,
    UnderlyingQuote,
)
from quanticity.storage import reference_store as refs
from quanticity.storage.option_store import OptionChainStore
from quanticity.storage.quote_store import UnderlyingQuoteStore
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from tests.conftest import Stack, unique

pytestmark = pytest.mark.live_alpha

CALLS = [
    ("GLOBAL_QUOTE", {"symbol": "SPY"}),
    ("TIME_SERIES_INTRADAY", {"symbol": "SPY", "interval": "1min", "outputsize": "compact"}),
    ("REALTIME_OPTIONS", {"symbol": "SPY", "require_greeks": "true", "datatype": "csv"}),
    ("SMA", {"symbol": "SPY", "interval": "daily", "time_period": "14", "series_type": "close"}),
    ("TREASURY_YIELD", {"maturity": "10year"}),
    ("NEWS_SENTIMENT", {"tickers": "AAPL", "limit": "5"}),
]


async def _store(record: Record, writer: TimeSeriesWriter) -> None:
    if isinstance(record, UnderlyingQuote):
        await UnderlyingQuoteStore(writer).store([record])
    elif isinstance(record, OptionChainSnapshot):
        await OptionChainStore(writer).store([record])
    elif isinstance(record, Bar):
        await refs.ReferenceStore(writer).store_series(*refs.bar_samples([record]), "bars")
    elif isinstance(record, IndicatorSeries):
        await refs.ReferenceStore(writer).store_series(*refs.indicator_samples(record), "indicators")
    elif isinstance(record, MacroSeries):
        await refs.ReferenceStore(writer).store_series(*refs.macro_samples(record), "macro")
    elif isinstance(record, NewsItem):
        await refs.ReferenceStore(writer).store_news([record])


@pytest.fixture
def api_key() -> SecretStr:
    key = os.environ.get("ALPHA_VANTAGE_API_KEY", "")
    if not key or os.environ.get("LIVE_ALPHA_TESTS") != "1":
        pytest.fail("the live suite needs ALPHA_VANTAGE_API_KEY and LIVE_ALPHA_TESTS=1")
    return SecretStr(key)


async def test_live_replies_normalize_and_store(api_key: SecretStr, stack: Stack) -> None:
    """Each live reply normalizes into valid records, and the stores write them to Redis."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique("live")
    metrics = Metrics()
    client = AlphaVantageClient(
        api_key, RateLimiter(redis, metrics.alphavantage, key_prefix=prefix), metrics.alphavantage
    )
    writer = TimeSeriesWriter(redis, metrics, prefix)
    expiry = expirations_for("0dte", datetime.now(UTC))[0].isoformat()
    try:
        for function, params in CALLS:
            if function == "REALTIME_OPTIONS":
                params = {**params, "expiration": expiry}
            reply = await client.call(function, **params)
            if reply.is_empty:
                continue
            result = normalize(
                function,
                params,
                reply.body,
                context=NormalizeContext(run_id="live", mode="live", ingest_time=datetime.now(UTC)),
            )
            assert result.records, f"{function}: no records ({result.empty_reason})"
            for record in result.records:
                await _store(record, writer)
        assert (metrics.registry.get_sample_value("timeseries_samples_written_total", {"family": "macro"}) or 0) > 0
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        assert any(k.decode().startswith(f"{prefix}underlyings:SPY") for k in keys)
    finally:
        await client.aclose()
        await redis.aclose()
