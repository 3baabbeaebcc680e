"""The store role writes every record family to its Redis keys, and indexes what it wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from quanticity.app.platform import Platform
from quanticity.schemas import (
    Bar,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    Record,
    TickerSentiment,
    utc_now,
)
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings
from quanticity.storage.ingestion_index import IngestionIndex
from quanticity.topology.broker_profile import producer_options
from quanticity.topology.registry import TopicRegistry

pytestmark = pytest.mark.integration


def _envelope(record_id: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "record_id": record_id,
        "event_time": now - timedelta(seconds=1),
        "ingest_time": now,
        "source": "alphavantage",
        "run_id": "t",
        "mode": "sim",
    }


def _records() -> list[tuple[str, Record]]:
    now = utc_now()
    expiry = date(2026, 12, 18)
    chain = OptionChainSnapshot(
        symbol="SPY",
        expiry=expiry,
        underlying_price=600.0,
        strike=[595.0, 600.0, 612.5],
        right=["C", "P", "C"],
        bid=[7.1, 4.0, None],
        ask=[7.3, 4.2, None],
        last=[7.2, 4.1, 0.9],
        volume=[10.0, 5.0, 0.0],
        open_interest=[100.0, 50.0, 1.0],
        implied_vol=[0.18, 0.19, None],
        delta=[0.6, -0.4, None],
        gamma=[0.01, 0.01, None],
        theta=[-30.0, -28.0, None],
        vega=[40.0, 41.0, None],
        rho=[10.0, -9.0, None],
        **_envelope("chain-1"),
    )
    bar = Bar(
        symbol="QQQ",
        interval_s=60,
        open=520.0,
        high=521.0,
        low=519.5,
        close=520.5,
        volume=12000.0,
        **_envelope("bar-1"),
    )
    indicator = IndicatorSeries(
        symbol="AAPL",
        function="BBANDS",
        interval="1min",
        parameters={"time_period": 14},
        timestamps=[now - timedelta(minutes=2), now - timedelta(minutes=1)],
        values={"Real Upper Band": [191.0, 191.5], "Real Lower Band": [189.0, None]},
        **_envelope("ind-1"),
    )
    macro = MacroSeries(
        function="TREASURY_YIELD",
        name="10-Year Treasury Constant Maturity Rate",
        interval="monthly",
        unit="percent",
        parameters={"maturity": "10year"},
        dates=[date(2026, 9, 1), date(2026, 10, 1)],
        values=[4.1, None],
        **_envelope("macro-1"),
    )
    news = NewsItem(
        title="Chips rally",
        url="https://example.com/n1",
        overall_sentiment_score=0.2,
        overall_sentiment_label="Somewhat-Bullish",
        tickers=[TickerSentiment(ticker="NVDA", relevance_score=0.9, sentiment_score=0.3, sentiment_label="Bullish")],
        **_envelope("news-1"),
    )
    far = chain.model_copy(update={"expiry": date(2027, 6, 18), "record_id": "chain-far"})
    return [
        ("quotes", chain),
        ("quotes", far),
        ("ticks", bar),
        ("reference", indicator),
        ("reference", macro),
        ("reference", news),
    ]


async def test_every_record_family_lands_in_its_keys(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """Chains → options:* series + chains:* doc + index; bars, indicators, macro, news → their keys."""
    settings = make_settings(demo={"enabled": False})
    platform = platform_factory(settings, ["store"])
    await platform.start()
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, **producer_options(settings.kafka))
    await producer.start()
    try:
        for topic, record in _records():
            await producer.send_and_wait(registry.broker_name(topic), encode_record(record), key=record.key.encode())
    finally:
        await producer.stop()
    p = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not await redis.exists(f"{p}news:news-1"):
            assert asyncio.get_running_loop().time() < deadline, "news document never written"
            await asyncio.sleep(0.2)
        mark = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:595:C:mark", "-", "+")
        assert [float(v) for _, v in mark] == [pytest.approx(7.2)]  # (bid + ask) / 2
        no_quote_mark = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:612.5:C:mark", "-", "+")
        assert [float(v) for _, v in no_quote_mark] == [pytest.approx(0.9)]  # falls back to last
        no_iv = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:612.5:C:iv", "-", "+")
        assert no_iv == []  # no IV from the source → no sample, never a made-up one
        doc = await redis.execute_command("JSON.GET", f"{p}chains:SPY:2026-12-18", "$.strike")
        assert b"612.5" in doc
        # beyond 60 DTE: the chain document only, no per-contract series
        assert await redis.exists(f"{p}chains:SPY:2027-06-18")
        assert not await redis.exists(f"{p}options:SPY:2027-06-18:595:C:mark")
        index = await IngestionIndex(redis, p).entries("SPY")
        assert index["options:2026-12-18"]["freshness"] == "fresh"
        assert index["options:2026-12-18"]["source"] == "alphavantage"
        close = await redis.execute_command("TS.RANGE", f"{p}bars:QQQ:60s:close", "-", "+")
        assert [float(v) for _, v in close] == [520.5]
        upper = await redis.execute_command("TS.RANGE", f"{p}indicators:AAPL:BBANDS:Real_Upper_Band", "-", "+")
        lower = await redis.execute_command("TS.RANGE", f"{p}indicators:AAPL:BBANDS:Real_Lower_Band", "-", "+")
        assert len(upper) == 2 and len(lower) == 1  # the gap is not written
        macro = await redis.execute_command("TS.RANGE", f"{p}macro:TREASURY_YIELD:10year", "-", "+")
        assert [float(v) for _, v in macro] == [4.1]
        assert await redis.zscore(f"{p}news:by_ticker:NVDA", "news-1") is not None
    finally:
        await redis.aclose()
    assert platform.metrics.registry.get_sample_value("timeseries_samples_written_total", {"family": "options"}) == 5
