"""The store role writes every record family to its Redis keys, and indexes what it wrote."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import faust
import numpy as np
import orjson
import pytest
import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from quanticity.agents.deadletter import DeadLetterSink
from quanticity.agents.store import ChainWriter, StoreHandlers
from quanticity.app.context import RoleContext
from quanticity.app.platform import Platform
from quanticity.observability.metrics import Metrics
from quanticity.schemas import (
    Bar,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    Record,
    TickerSentiment,
    UnderlyingQuote,
    utc_now,
)
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings, SettingsHolder
from quanticity.storage.ingestion_index import IngestionIndex
from quanticity.storage.option_store import OptionChainStore, chain_samples, decode_document
from quanticity.storage.redis_timeseries import BatchPart, SampleBatch, SeriesKeys, TimeSeriesWriter
from quanticity.storage.resp import encode_command
from quanticity.topology.registry import TopicRegistry
from quanticity.topology.tail import tail_topic
from tests.conftest import Stack, free_port, unique
from tests.integration.conftest import publish, read_topic

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
    await publish(settings, [(topic, record.key.encode(), encode_record(record)) for topic, record in _records()])
    p = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        deadline = asyncio.get_running_loop().time() + 30
        # Each topic has its own agent: wait for the last write of each (a chain's document follows its samples).
        for last in ("news:news-1", "chains:SPY:2026-12-18", "chains:SPY:2027-06-18"):
            while not await redis.exists(f"{p}{last}"):
                assert asyncio.get_running_loop().time() < deadline, f"{last} never written"
                await asyncio.sleep(0.2)
        mark = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:595:C:mark", "-", "+")
        assert [float(v) for _, v in mark] == [pytest.approx(7.2)]  # (bid + ask) / 2
        no_quote_mark = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:612.5:C:mark", "-", "+")
        assert [float(v) for _, v in no_quote_mark] == [pytest.approx(0.9)]  # falls back to last
        no_iv = await redis.execute_command("TS.RANGE", f"{p}options:SPY:2026-12-18:612.5:C:iv", "-", "+")
        assert no_iv == []  # no IV from the source → no sample, never a made-up one
        doc = decode_document(await redis.get(f"{p}chains:SPY:2026-12-18")).model_dump(mode="json")
        assert doc["strike"] == [595.0, 600.0, 612.5] and doc["implied_vol"] == [0.18, 0.19, None]
        # `quanticity tail quotes` shows the columnar chain records as JSON, null where a value is absent.
        lines: list[dict[str, Any]] = []
        on_quotes = sum(topic == "quotes" for topic, _ in _records())
        await tail_topic(
            settings.kafka.bootstrap or "",
            registry,
            "quotes",
            lines.append,
            from_beginning=True,
            limit=on_quotes,
            idle_timeout_s=30,
        )
        tailed = {line["record_id"]: line for line in lines if line["type"] == "option_chain"}
        assert tailed["chain-1"]["bid"] == [7.1, 4.0, None] and tailed["chain-1"]["right"] == ["C", "P", "C"]
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


async def test_the_role_writes_pending_compactions_when_it_stops(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """A chain that closes a minute leaves most of that minute pending (spread over calls); stopping writes it."""
    settings = make_settings(demo={"enabled": False})
    platform = platform_factory(settings, ["store"])
    await platform.start()
    minute = (utc_now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    expiry = (minute + timedelta(days=10)).date()
    first = _chain(expiry, minute + timedelta(seconds=30))
    closing = _chain(expiry, minute + timedelta(seconds=70))  # the next minute: the first one closes
    await publish(settings, [("quotes", chain.key.encode(), encode_record(chain)) for chain in (first, closing)])
    p = settings.redis.key_prefix
    key = f"{p}chains:SPY:{expiry.isoformat()}"
    redis = Redis.from_url(settings.redis.url or "")
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while (raw := await redis.get(key)) is None or decode_document(raw, key).record_id != closing.record_id:
            assert asyncio.get_running_loop().time() < deadline, "the closing chain was never stored"
            await asyncio.sleep(0.2)
        compactions = [f"{p}{sample_key}:1m" for sample_key, _, _ in chain_samples(first)]
        held = [bool(await redis.execute_command("TS.RANGE", k, "-", "+")) for k in compactions]
        assert 0 < held.count(True) < len(held)  # one share of the closed minute so far
        await platform.stop()
        for k, (_, _, value) in zip(compactions, chain_samples(first), strict=True):
            reply = await redis.execute_command("TS.RANGE", k, "-", "+")
            assert [(int(ts), float(v)) for ts, v in reply] == [(int(minute.timestamp() * 1000), value)], k
    finally:
        await redis.aclose()


async def test_chains_delivered_together_are_written_in_one_call_each_run(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """Chains waiting on ``quotes`` when the role starts go out in runs; a quote between them keeps its place."""
    settings = make_settings(demo={"enabled": False})
    base = (utc_now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    expiries = [(base + timedelta(days=d)).date() for d in (3, 10, 17)]
    first = [_chain(expiry, base + timedelta(seconds=1 + i)) for i, expiry in enumerate(expiries)]
    again = _chain(expiries[0], base + timedelta(seconds=30))  # the same chain a poll later
    quote = UnderlyingQuote(symbol="SPY", bid=600.0, ask=600.1, **_envelope("quote-1"))
    records = [*first[:2], quote, first[2], again]
    await publish(settings, [("quotes", r.key.encode(), encode_record(r)) for r in records])
    platform = platform_factory(settings, ["store"])
    await platform.start()
    p = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        key = f"{p}chains:SPY:{expiries[0].isoformat()}"
        deadline = asyncio.get_running_loop().time() + 30
        while (raw := await redis.get(key)) is None or decode_document(raw, key).record_id != again.record_id:
            assert asyncio.get_running_loop().time() < deadline, "the later poll was never stored"
            await asyncio.sleep(0.2)
        for chain in first:
            sample_key = chain_samples(chain)[0][0]
            reply = await redis.execute_command("TS.RANGE", f"{p}{sample_key}", "-", "+")
            assert (int(reply[0][0]), float(reply[0][1])) == chain_samples(chain)[0][1:], sample_key
        mark = await redis.execute_command("TS.RANGE", f"{p}{chain_samples(again)[0][0]}", "-", "+")
        assert len(mark) == 2  # both polls of the first expiry, in order
        index = await IngestionIndex(redis, p).entries("SPY")
        assert {f"options:{e.isoformat()}" for e in expiries} <= set(index)
        assert index[f"options:{expiries[0].isoformat()}"]["last_event_time"] == again.event_time.isoformat()
        assert await redis.exists(f"{p}underlyings:SPY:bid")  # the quote between the chains
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    assert m("store_chain_batch_records_sum") == 4  # every chain written exactly once
    assert m("topic_messages_consumed_total", {"topic": "quotes", "role": "store"}) == len(records)


async def test_a_refusal_no_retry_changes_dead_letters_the_record_and_the_agent_goes_on(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """A key of another type (WRONGTYPE) is tried a few times, then the record is dead-lettered with the reason."""
    settings = make_settings(demo={"enabled": False})
    p = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    base = (utc_now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    expiry = (base + timedelta(days=5)).date()
    spy = _chain(expiry, base)
    qqq = _chain(expiry, base + timedelta(seconds=1)).model_copy(update={"symbol": "QQQ", "record_id": "qqq-1"})
    try:
        await redis.set(f"{p}index:SPY", "not a hash")  # the ingestion index of SPY can never be written
        platform = platform_factory(settings, ["store"])
        await platform.start()
        with structlog.testing.capture_logs() as logs:
            await publish(settings, [("quotes", c.key.encode(), encode_record(c)) for c in (spy, qqq)])
            letters = await read_topic(settings, "deadletter", 1)
            deadline = asyncio.get_running_loop().time() + 30
            while "options:" + expiry.isoformat() not in await IngestionIndex(redis, p).entries("QQQ"):
                assert asyncio.get_running_loop().time() < deadline, "the chain after the refused one was not indexed"
                await asyncio.sleep(0.2)
        assert [(letter["reason"], letter["original_key"]) for letter in letters] == [("handler_error", "SPY")]
        assert "wrong kind of value" in letters[0]["detail"]
        refused = [e for e in logs if e["event"] == "store_refused"]
        assert refused and all(e["what"] == "index" and e["attempts"] == 3 for e in refused)
        assert await redis.exists(f"{p}chains:SPY:{expiry.isoformat()}")  # what could be written was
    finally:
        await redis.aclose()


async def test_the_chain_writer_writes_what_queued_meanwhile_in_one_call_and_acks_in_order(
    make_settings: Callable[..., Settings],
) -> None:
    """Group commit: chains queued while a write is in flight go out together in the next call."""
    settings = make_settings(demo={"enabled": False})
    metrics = Metrics()
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    ctx = RoleContext(
        SettingsHolder(settings, lambda: settings, metrics),
        metrics,
        registry,
        settings.kafka.bootstrap or "",
        settings.redis.url or "",
    )
    app = faust.App("chain-writer-test", broker="kafka://127.0.0.1:9", autodiscover=False)  # never started
    acked: list[str] = []

    async def ack(event: Any) -> None:
        acked.append(event)

    handlers = StoreHandlers(ctx, table=None)  # the quote table is not used by chains
    writer = ChainWriter(handlers, "quotes", "store", DeadLetterSink(app, ctx, "store"), ack)
    base = (utc_now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    chains = [_chain((base + timedelta(days=d)).date(), base + timedelta(seconds=d)) for d in range(1, 9)]
    for i, chain in enumerate(chains[:5]):
        await writer.submit(f"e{i}", chain)  # submitting does not yield: the write starts with all five
    await writer.drain()
    await writer.submit("e5", chains[5])
    await asyncio.sleep(0)  # the write of e5 starts and waits on Redis
    await writer.submit("e6", chains[6])
    await writer.submit("e7", chains[7])
    await writer.drain()
    assert acked == [f"e{i}" for i in range(8)]
    m = metrics.registry.get_sample_value
    assert (m("store_chain_batch_records_count"), m("store_chain_batch_records_sum")) == (3, 8)  # runs of 5, 1, 2
    assert m("store_chain_batch_records_bucket", {"le": "1.0"}) == 1
    redis = Redis.from_url(settings.redis.url or "")
    try:
        p = settings.redis.key_prefix
        for chain in chains:
            key = f"{p}chains:SPY:{chain.expiry.isoformat()}"
            assert decode_document(await redis.get(key), key).record_id == chain.record_id
        index = await IngestionIndex(redis, p).entries("SPY")
        assert {f"options:{c.expiry.isoformat()}" for c in chains} <= set(index)
    finally:
        await redis.aclose()
        await ctx.close()


async def test_a_chain_run_that_fails_is_handled_one_by_one_and_only_the_bad_chain_is_dead_lettered(
    make_settings: Callable[..., Settings],
    platform_factory: Callable[..., Platform],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store call that raises (not a Redis failure) does not lose the run's good chains."""
    settings = make_settings(demo={"enabled": False})
    base = (utc_now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    chains = [_chain((base + timedelta(days=d)).date(), base + timedelta(seconds=d)) for d in (3, 10, 17)]
    bad_id = chains[1].record_id
    real_store = OptionChainStore.store

    async def failing_store(self: OptionChainStore, snapshots: Any) -> Any:
        if any(s.record_id == bad_id for s in snapshots):
            raise ValueError(f"fault injected for {bad_id}")
        return await real_store(self, snapshots)

    monkeypatch.setattr(OptionChainStore, "store", failing_store)
    await publish(settings, [("quotes", c.key.encode(), encode_record(c)) for c in chains])
    platform = platform_factory(settings, ["store"])
    await platform.start()
    letters = await read_topic(settings, "deadletter", 1)
    assert [(letter["reason"], letter["original_topic"]) for letter in letters] == [("handler_error", "quotes")]
    assert bad_id in letters[0]["detail"]
    p = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        for chain in (chains[0], chains[2]):
            key = f"{p}chains:SPY:{chain.expiry.isoformat()}"
            deadline = asyncio.get_running_loop().time() + 30
            while not await redis.exists(key):
                assert asyncio.get_running_loop().time() < deadline, f"{key} never written"
                await asyncio.sleep(0.2)
        assert not await redis.exists(f"{p}chains:SPY:{chains[1].expiry.isoformat()}")
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    assert (m("store_batch_fallbacks_total", {"role": "store"}) or 0) >= 1
    assert m("agent_errors_total", {"role": "store", "topic": "quotes"}) == 1  # the bad chain alone


# --------------------------------------------------------------------------- the option store on its own
def _chain(expiry: date, event_time: Any, rows: int = 40, **extra: Any) -> OptionChainSnapshot:
    return OptionChainSnapshot(
        symbol="SPY",
        expiry=expiry,
        record_id=f"c-{event_time.isoformat()}",
        event_time=event_time,
        ingest_time=event_time,
        source="alphavantage",
        run_id="t",
        mode="sim",
        strike=[500.0 + 2.5 * (i // 2) for i in range(rows)],
        right=["C" if i % 2 == 0 else "P" for i in range(rows)],
        contract_id=[f"SPY{expiry:%y%m%d}{'CP'[i % 2]}{i:08d}" for i in range(rows)],
        bid=[1.0 + i for i in range(rows)],
        ask=[1.2 + i for i in range(rows)],
        last=[None] * rows,
        mark=[1.1 + i for i in range(rows)],
        bid_size=[10.0] * rows,
        ask_size=[20.0] * rows,
        volume=[5.0] * rows,
        open_interest=[50.0] * rows,
        implied_vol=[0.2 + i / 1000 if i % 7 else None for i in range(rows)],
        delta=[0.5] * rows,
        gamma=[0.01] * rows,
        theta=[-3.0] * rows,
        vega=[10.0] * rows,
        rho=[1.0] * rows,
        **extra,
    )


async def test_option_store_writes_series_and_documents_and_reads_them_back(stack: Stack) -> None:
    """Two polls of two expirations: samples in series with their compaction series, documents read back whole."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), prefix))
    t0 = utc_now().replace(microsecond=0)
    near, far = (t0 + timedelta(days=10)).date(), (t0 + timedelta(days=200)).date()
    try:
        first = await store.store([_chain(near, t0), _chain(far, t0)])
        second_near = _chain(near, t0 + timedelta(seconds=12), row_flags=[["stale"]] + [[]] * 39)
        second = await store.store([second_near, _chain(far, t0 + timedelta(seconds=12))])

        per_poll = 40 + sum(1 for i in range(40) if i % 7)  # a mark per contract, an iv where there is one
        assert (first.written, first.rejected, second.written, second.rejected) == (per_poll, [], per_poll, [])
        key = f"{prefix}options:SPY:{near.isoformat()}:500:C:mark"
        samples = await redis.execute_command("TS.RANGE", key, "-", "+")
        assert [float(v) for _, v in samples] == [pytest.approx(1.1), pytest.approx(1.1)]
        assert [int(t) for t, _ in samples] == [int(t0.timestamp() * 1000), int(t0.timestamp() * 1000) + 12_000]
        info = await redis.execute_command("TS.INFO", key)  # redis-py turns the reply into a dict
        assert not info[b"rules"]  # the store writes the compactions itself (storage/chain_compaction.py)
        for suffix in ("1m", "5m"):
            dest = await redis.execute_command("TS.INFO", f"{key}:{suffix}")
            assert dest[b"labels"][b"resolution"] == suffix.encode() and dest[b"sourceKey"] is None
        assert info[b"chunkSize"] == 256 and b"CHUNK_SIZE" not in info[b"labels"]
        assert not await redis.exists(f"{prefix}options:SPY:{far.isoformat()}:500:C:mark")  # > 60 DTE: document only
        assert await store.latest("SPY", near) == second_near  # byte for byte: every double exactly
        assert await store.latest("SPY", far) == _chain(far, t0 + timedelta(seconds=12))
        assert await store.latest("SPY", date(2030, 1, 18)) is None
        document = decode_document(await redis.get(f"{prefix}chains:SPY:{near.isoformat()}")).model_dump(mode="json")
        assert document["row_flags"][0] == ["stale"] and document["contract_id"][0] == f"SPY{near:%y%m%d}C00000000"
    finally:
        await redis.aclose()


async def test_option_store_reports_refused_samples_and_failed_commands(stack: Stack) -> None:
    """A sample Redis refuses is reported by key; a refused command in the same write raises; the pool stays usable."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    writer = TimeSeriesWriter(redis, Metrics(), prefix)
    store = OptionChainStore(writer)
    t0 = utc_now().replace(microsecond=0)
    expiry = (t0 + timedelta(days=3)).date()
    blocked = f"options:SPY:{expiry.isoformat()}:502.5:P:mark"
    ts = int(t0.timestamp() * 1000)
    try:
        # A series that refuses a second sample at one timestamp: the poll's sample for it is refused.
        await redis.execute_command("TS.CREATE", f"{prefix}{blocked}", "DUPLICATE_POLICY", "BLOCK")
        await redis.execute_command("TS.ADD", f"{prefix}{blocked}", ts, 9.0)
        result = await store.store([_chain(expiry, t0)])
        assert [key for key, _ in result.rejected] == [blocked]
        assert "TSDB" in result.rejected[0][1]
        assert result.written == 40 + sum(1 for i in range(40) if i % 7) - 1

        # A command after the samples fails (LPUSH on a string): the write raises once every reply is read.
        await redis.set(f"{prefix}not-a-list", b"x")
        batch = SampleBatch(prefix)
        batch.add([(f"options:SPY:{expiry.isoformat()}:500:C:iv", ts + 5, 0.25)])
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await writer.write(batch, "options", [encode_command(b"LPUSH", f"{prefix}not-a-list".encode(), b"y")])
        assert await redis.ping()
        assert await redis.execute_command(
            "TS.RANGE", f"{prefix}options:SPY:{expiry.isoformat()}:500:C:iv", ts + 5, ts + 5
        )
        later = await writer.madd([(f"options:SPY:{expiry.isoformat()}:500:C:iv", ts + 10, 0.3)], family="options")
        assert later.written == 1
    finally:
        await redis.aclose()


async def test_a_large_batch_goes_out_as_bounded_commands_and_refusals_keep_their_keys(stack: Stack) -> None:
    """20 samples with at most 7 per command: three TS.MADD on the wire, every sample stored but
    the one Redis refuses, and that refusal (in the third command) reported under its own key."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    writer = TimeSeriesWriter(redis, Metrics(), prefix, max_samples_per_command=7)
    keys = [f"options:SPY:{unique()}:{i}:iv" for i in range(20)]
    ts = int(utc_now().timestamp() * 1000)

    async def madd_calls() -> int:
        stats = await redis.info("commandstats")
        return int(stats.get("cmdstat_ts.madd", {}).get("calls", 0))

    try:
        for i, key in enumerate(keys):
            await redis.execute_command("TS.CREATE", prefix + key, "DUPLICATE_POLICY", "BLOCK" if i == 16 else "LAST")
        await redis.execute_command("TS.ADD", prefix + keys[16], ts, 9.0)
        batch = SampleBatch(prefix)
        batch.add([(key, ts, float(i)) for i, key in enumerate(keys[:10])])
        batch.add_shared_ts(SeriesKeys(keys[10:], prefix), ts, np.arange(10.0, 20.0))
        before = await madd_calls()

        result = await writer.write(batch, "options")

        assert await madd_calls() - before == 3
        assert result.written == 19
        assert [key for key, _ in result.rejected] == [keys[16]]
        stored = [await redis.execute_command("TS.GET", prefix + key) for key in keys]
        expected = [float(i) for i in range(20)]
        expected[16] = 9.0  # the sample that was there before: the refused one did not replace it
        assert [float(value) for _, value in stored] == expected
    finally:
        await redis.aclose()


@pytest.mark.parametrize("in_flight", [7, 14, 1_000])
async def test_a_session_leaves_at_most_its_window_of_samples_unanswered(stack: Stack, in_flight: int) -> None:
    """Commands of 7 samples under a window of ``in_flight`` samples: before each TS.MADD leaves,
    its samples and those of the TS.MADDs not answered yet stay within the window (Redis would
    run a longer pipeline back to back while other clients wait). A SET sent between two
    batches keeps its place among the replies, and a refusal read early keeps its key."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    writer = TimeSeriesWriter(redis, Metrics(), prefix, max_samples_per_command=7, max_samples_in_flight=in_flight)
    first = [f"options:SPY:{unique()}:{i}:mark" for i in range(20)]
    second = [f"options:SPY:{unique()}:{i}:iv" for i in range(10)]
    document = f"{prefix}chain:SPY:{unique()}"
    ts = int(utc_now().timestamp() * 1000)
    unanswered_at_send: list[int] = []
    try:
        for i, key in enumerate(first + second):
            await redis.execute_command("TS.CREATE", prefix + key, "DUPLICATE_POLICY", "BLOCK" if i == 3 else "LAST")
        await redis.execute_command("TS.ADD", prefix + first[3], ts, -1.0)
        batch_one, batch_two = SampleBatch(prefix), SampleBatch(prefix)
        batch_one.add([(key, ts, float(i)) for i, key in enumerate(first)])
        batch_two.add_shared_ts(SeriesKeys(second, prefix), ts, np.arange(20.0, 30.0))

        async with writer.session("options") as session:
            send = session._send

            async def watched(command: bytes, expected: Any) -> None:
                if isinstance(expected[0], BatchPart):
                    answered = len(session._replies)
                    waiting = sum(p.count for p in session._expected[answered:] if isinstance(p, BatchPart))
                    unanswered_at_send.append(waiting + expected[0].count)
                await send(command, expected)

            session._send = watched  # type: ignore[method-assign]
            await session.madd(batch_one)
            await session.send(encode_command(b"SET", document.encode(), b"doc"))
            await session.madd(batch_two)
            result = await session.finish()

        assert len(unanswered_at_send) == 5  # 7 + 7 + 6, then 7 + 3
        assert max(unanswered_at_send) <= max(in_flight, 7)
        if in_flight >= 30:
            assert max(unanswered_at_send) == 30  # a wide window sends everything before reading
        assert result.written == 29
        assert [key for key, _ in result.rejected] == [first[3]]
        assert await redis.get(document) == b"doc"
        stored = [float((await redis.execute_command("TS.GET", prefix + key))[1]) for key in first + second]
        assert stored == [-1.0 if i == 3 else float(i) for i in range(30)]
    finally:
        await redis.aclose()


async def test_a_write_on_a_connection_redis_closed_raises_and_is_counted(stack: Stack) -> None:
    """Redis drops the session's connection before answering its command: the write fails as a
    connection error, counted under its operation, and the next write gets a fresh connection."""
    redis = Redis.from_url(stack.redis_url)
    metrics = Metrics()
    prefix = unique()
    writer = TimeSeriesWriter(redis, metrics, prefix)
    ts = int(utc_now().timestamp() * 1000)
    key = f"options:SPY:{unique()}:iv"
    try:
        await redis.execute_command("TS.CREATE", f"{prefix}{key}")
        batch = SampleBatch(prefix)
        batch.add([(key, ts, 0.25)])
        with pytest.raises(RedisConnectionError) as failed:
            async with writer.session("options") as session:
                # every other client of the server: the session's connection among them
                await redis.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
                await asyncio.sleep(0.1)  # the close reaches the session's transport
                await session.madd(batch)
                await session.finish()
        assert "reading Redis replies failed" in str(failed.value)
        assert metrics.registry.get_sample_value("redis_errors_total", {"operation": "write"}) == 1
        assert (await writer.write(batch, "options")).written == 1
    finally:
        await redis.aclose()


async def test_option_store_does_not_rewrite_an_unchanged_snapshot(stack: Stack) -> None:
    """The same content again (a poll after the close) is not resent; new content, or enough time, is."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), prefix))
    t0 = utc_now().replace(microsecond=0)
    expiry = (t0 + timedelta(days=5)).date()
    first = _chain(expiry, t0)
    again = first.model_copy(update={"ingest_time": t0 + timedelta(seconds=12)})
    per_poll = len(chain_samples(first))
    try:
        assert (await store.store([first])).written == per_poll
        repeat = await store.store([again])
        assert (repeat.written, repeat.unchanged, repeat.rejected) == (0, per_poll, [])
        assert await store.latest("SPY", expiry) == first  # the document keeps its first ingest time

        moved = again.model_copy(update={"bid": [b + 0.01 if b is not None else None for b in again.bid]})
        assert (await store.store([moved])).written == per_poll
        assert await store.latest("SPY", expiry) == moved

        store.unchanged_rewrite_s = 0.0  # a rewrite is due: the same content is sent again
        assert (await store.store([moved])).written == per_poll
    finally:
        await redis.aclose()


async def test_chain_command_prints_the_stored_document_as_json(stack: Stack, tmp_path: Path) -> None:
    """`quanticity chain SYMBOL EXPIRY` prints the stored columnar document as JSON; a missing one is named."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    t0 = utc_now().replace(microsecond=0)
    expiry = (t0 + timedelta(days=5)).date()
    chain = _chain(expiry, t0)
    try:
        await OptionChainStore(TimeSeriesWriter(redis, Metrics(), prefix)).store([chain])
    finally:
        await redis.aclose()
    env = {**os.environ, "QUANTICITY_REDIS__URL": stack.redis_url, "QUANTICITY_REDIS__KEY_PREFIX": prefix}
    command = [sys.executable, "-m", "quanticity.cli.main", "--env-file", str(tmp_path / "none.env"), "chain"]

    redis = Redis.from_url(stack.redis_url)
    try:
        await redis.set(f"{prefix}chains:SPY:2031-02-21", encode_record(chain)[:-5])  # a truncated document
    finally:
        await redis.aclose()
    dead_redis = {**env, "QUANTICITY_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}

    def run(args: list[str], environment: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], env=environment, capture_output=True, text=True, check=False)

    found = run(["spy", expiry.isoformat()])
    missing = run(["SPY", "2031-01-17"])
    damaged = run(["SPY", "2031-02-21"])
    unreachable = run(["SPY", expiry.isoformat()], dead_redis)

    assert found.returncode == 0, found.stderr
    assert orjson.loads(found.stdout) == chain.model_dump(mode="json")
    assert missing.returncode == 1 and f"no chain stored at {prefix}chains:SPY:2031-01-17" in missing.stderr
    assert damaged.returncode == 1 and "'chains:SPY:2031-02-21' (not_json): columnar payload" in damaged.stderr
    assert unreachable.returncode == 1 and "error: Redis at redis://127.0.0.1:" in unreachable.stderr


async def test_a_command_larger_than_the_socket_takes_at_once_is_flushed_and_the_limits_restored(
    stack: Stack,
) -> None:
    """A command the socket cannot take at once waits in asyncio's buffer; the session waits for it
    to leave with the buffer's high-water mark at zero, then puts the marks back. asyncio gives
    them as (low, high): read the other way round, the restore raised ValueError (seen on the
    bench's 20k-series TS.CREATE batch) and left the connection with no high-water mark."""
    redis = Redis.from_url(stack.redis_url)
    writer = TimeSeriesWriter(redis, Metrics(), f"t{unique()}:")
    payload = os.urandom(24 << 20)  # 24 MB: more than a loopback socket takes in one write
    try:
        async with writer.session(None) as session:
            stream = session._conn._writer
            before = stream.transport.get_write_buffer_limits()
            await session.send(encode_command(b"SET", writer.full_key("big").encode(), payload))
            assert stream.transport.get_write_buffer_size() == 0
            assert stream.transport.get_write_buffer_limits() == before
            await session.finish()
        assert await redis.strlen(writer.full_key("big")) == len(payload)
    finally:
        await redis.delete(writer.full_key("big"))
        await redis.aclose()
