"""quotes → store → Redis TimeSeries on the real broker and Redis Stack; bad records → dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from quanticity.app.platform import Platform
from quanticity.settings import Settings
from tests.integration.conftest import publish, read_topic

pytestmark = pytest.mark.integration


async def _wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.2)


async def ts_info(redis: Redis, key: str) -> dict[str, Any]:
    """TS.INFO as a str-keyed dict (redis-py 8 speaks RESP3, so the reply is a map)."""
    raw = await redis.execute_command("TS.INFO", key)

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, dict):
            return {plain(k): plain(v) for k, v in value.items()}
        return value

    return plain(raw)


async def test_demo_quotes_reach_redis_timeseries_with_labels_and_metadata(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """The demo role's quotes are stored per field in labelled series, with a metadata hash."""
    settings = make_settings()
    platform = platform_factory(settings, ["store", "ingest-demo"])
    await platform.start()
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url)
    try:

        async def enough_samples() -> Any:
            try:
                rows = await redis.execute_command("TS.RANGE", f"{prefix}underlyings:SPY:mid", "-", "+")
            except Exception:  # noqa: BLE001 - the key does not exist until the first write
                return None
            return rows if len(rows) >= 5 else None

        rows = await _wait_for(enough_samples)
        assert all(500 < float(value) < 700 for _, value in rows)  # the demo walk starts SPY at 600
        info = await ts_info(redis, f"{prefix}underlyings:SPY:bid")
        assert info["labels"] == {"family": "underlyings", "symbol": "SPY", "field": "bid", "source": "sim"}
        assert info["retentionTime"] == 7 * 24 * 3600 * 1000
        assert info["duplicatePolicy"] == "last"
        # the 1 s → 1 m → 5 m ladder: two server-side rules from the raw series
        assert sorted(info["rules"]) == [f"{prefix}underlyings:SPY:bid:1m", f"{prefix}underlyings:SPY:bid:5m"]
        minute = await ts_info(redis, f"{prefix}underlyings:SPY:bid:1m")
        assert minute["labels"]["resolution"] == "1m" and minute["sourceKey"] == f"{prefix}underlyings:SPY:bid"
        meta = await redis.hgetall(f"{prefix}meta:underlyings:QQQ")
        assert meta[b"source"] == b"sim" and meta[b"freshness"] == b"fresh"
        # raw series only: compactions carry a `resolution` label, raw series none (`resolution=`)
        filtered = await redis.execute_command(
            "TS.QUERYINDEX", "family=underlyings", "symbol=QQQ", "field=(bid,ask)", "resolution="
        )
        assert sorted(k.decode() for k in filtered if k.decode().startswith(prefix)) == [
            f"{prefix}underlyings:QQQ:ask",
            f"{prefix}underlyings:QQQ:bid",
        ]
        m = platform.metrics.registry.get_sample_value
        assert m("redis_connected") == 1 and m("broker_connected") == 1
        assert m("system_module_up", {"module": "store"}) == 1
        assert (m("timeseries_samples_written_total", {"family": "underlyings"}) or 0) >= 5
        assert m("heartbeat_timestamp_seconds", {"role": "store"}) is not None
    finally:
        await redis.aclose()


async def test_invalid_records_go_to_deadletter_with_reason_and_the_agent_survives(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """Garbage, unknown types and invalid quotes are dead-lettered, counted, and later quotes still land."""
    settings = make_settings(demo={"enabled": False})
    platform = platform_factory(settings, ["store"])
    await platform.start()
    good = {
        "type": "underlying_quote",
        "record_id": "good-1",
        "event_time": "2026-11-24T15:00:00+00:00",
        "source": "sim",
        "run_id": "test",
        "mode": "sim",
        "symbol": "IWM",
        "bid": 230.0,
        "ask": 230.1,
    }
    crossed = {**good, "record_id": "crossed", "bid": 231.0}
    payloads = [b"{not json", orjson.dumps({"type": "mystery"}), orjson.dumps(crossed), orjson.dumps(good)]
    await publish(settings, [("quotes", b"IWM", payload) for payload in payloads])
    letters = await read_topic(settings, "deadletter", 3)
    by_reason = {letter["reason"]: letter for letter in letters}
    assert set(by_reason) == {"not_json", "unknown_type", "validation"}
    assert by_reason["not_json"]["payload_preview"] == "{not json"
    assert "crossed quote" in by_reason["validation"]["detail"]
    assert by_reason["validation"]["original_key"] == "IWM"
    redis = Redis.from_url(settings.redis.url)
    try:

        async def stored() -> Any:
            return await redis.exists(f"{settings.redis.key_prefix}underlyings:IWM:bid")

        await _wait_for(stored)
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    for reason in ("not_json", "unknown_type", "validation"):
        assert m("deadletter_messages_total", {"topic": "quotes", "reason": reason}) == 1
