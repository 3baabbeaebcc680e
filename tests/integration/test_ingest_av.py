"""Module 1 end to end: the cadence matrix against the local simulator lands in Redis.

The platform starts the AlphaVantage simulator (no API key), the ingest-av role runs the
shipped cadence matrix through the real client, limiter and normalizer, and the store role
writes options, bars, indicators and quotes. What a user would check: TS.MRANGE over
``options:SPY:*`` and ``underlyings:*`` returns fresh samples, /metrics counts calls by
function, the ingestion index says what is fresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from quanticity.app.platform import Platform
from quanticity.settings import Settings, load_settings
from quanticity.storage.archive import parse_mrange
from quanticity.storage.ingestion_index import IngestionIndex

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_cadence_matrix_flows_from_the_simulator_into_redis(
    make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """options:SPY:* and underlyings:* get fresh samples, AV bars land, calls are counted by function."""
    shipped = load_settings(ROOT / "config", env_file=None)
    settings = make_settings(
        alphavantage={"cadence": shipped.alphavantage.cadence.model_dump()},
        watchlists=shipped.watchlists,
        demo={"interval_s": 1.0},
    )
    platform = platform_factory(settings, ["store", "ingest-av", "ingest-demo"])
    await platform.start()
    assert platform.ctx is not None and platform.ctx.av_endpoint is not None  # the simulator serves
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    started_ms = int(time.time() * 1000) - 5_000

    async def fresh(
        family_filter: list[str], since: int | str = started_ms
    ) -> list[tuple[str, dict[str, str], list[tuple[int, float]]]]:
        reply = await redis.execute_command(
            "TS.MRANGE", since, "+", "WITHLABELS", "FILTER", *family_filter, "resolution="
        )
        return [row for row in parse_mrange(reply) if row[0].startswith(prefix) and row[2]]

    try:
        deadline = asyncio.get_running_loop().time() + 90
        options: list[tuple[str, dict[str, str], list[tuple[int, float]]]] = []
        underlyings: list[tuple[str, dict[str, str], list[tuple[int, float]]]] = []
        while asyncio.get_running_loop().time() < deadline:
            # Option samples carry the chain's event time: after the close (or on a weekend) that is
            # the last session's close, before this test began. The key prefix is this test's own,
            # so every sample under it was written by this run.
            options = await fresh(["family=options", "symbol=SPY"], since="-")
            underlyings = await fresh(["family=underlyings"])
            if options and underlyings:
                break
            await asyncio.sleep(1)
        assert options, "no fresh options:SPY:* samples within 90 s"
        assert underlyings, "no fresh underlyings:* samples within 90 s"
        assert {labels["field"] for _, labels, _ in options} >= {"mark", "iv"}
        # intraday bars from AlphaVantage (their times are the simulated session's, maybe yesterday's)
        bars = await redis.execute_command("TS.QUERYINDEX", "family=bars", "source=alphavantage")
        assert any(key.decode().startswith(prefix) for key in bars)
        index = await IngestionIndex(redis, prefix).entries("SPY")
        assert any(dataset.startswith("options:") for dataset in index)
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    assert (m("alphavantage_calls_total", {"function": "REALTIME_OPTIONS", "outcome": "ok"}) or 0) >= 1
    assert m("alphavantage_quota_calls_per_minute", {"limit": "ceiling"}) == 480
