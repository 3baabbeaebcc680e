"""The analytics role on the real broker and Redis Stack: chain snapshots → Greeks in Redis and on ``analytics``."""

from __future__ import annotations

import asyncio
import io
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from redis.asyncio import Redis

from quanticity.agents import analytics
from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_chains import SpotBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import SummaryBook, compute_chain_greeks, valid_until
from quanticity.agents.analytics_portfolio import BookPricer, Position
from quanticity.analytics import compute_greeks
from quanticity.analytics.regime_classifier import REGIME_LABELS
from quanticity.app.platform import Platform
from quanticity.app.roles import RoleSpec
from quanticity.observability.metrics import Metrics
from quanticity.schemas import Bar, DepthLevel, DepthSnapshot, MacroSeries, OptionChainSnapshot, utc_now
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings, SettingsHolder
from quanticity.storage.analytics_store import AnalyticsStore, ResultWrite, decode_result, greeks_key
from tests.conftest import Stack, free_port, unique
from tests.integration.conftest import publish, read_topic
from tests.unit.agents.test_analytics_greeks import synthetic_chain

pytestmark = pytest.mark.integration

# The line quanticity/app/roles.py gets; the test installs the role exactly as build_app does.
ANALYTICS_ROLE = RoleSpec(
    "analytics", "quotes, ticks → Greeks and analytics kernels → Redis + analytics", analytics.install
)
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # a 10k-contract snapshot is ~1.8 MB of JSON


@pytest.fixture
async def start_analytics() -> AsyncIterator[Callable[..., Any]]:
    made: list[Platform] = []

    async def start(settings: Settings, role: RoleSpec = ANALYTICS_ROLE) -> Platform:
        metrics = Metrics()
        holder = SettingsHolder(settings, lambda: settings, metrics)
        platform = Platform(holder, metrics, [role], banner=io.StringIO())
        made.append(platform)
        await platform.start()
        return platform

    yield start
    for platform in made:
        await platform.stop()


async def _publish(settings: Settings, items: list[tuple[bytes, bytes]], topic: str = "quotes") -> None:
    await publish(settings, [(topic, key, value) for key, value in items], max_request_size=MAX_REQUEST_BYTES)


def _chain(n: int, record_id: str, expiry: date | None = None, **kwargs: Any) -> OptionChainSnapshot:
    now = utc_now()
    # A swing expiry: 5 min validity in session; stamped while the market is closed, until 5 min after
    # the next open (``_ttl_bound_ms``).
    return synthetic_chain(
        n, expiry=expiry or (now + timedelta(days=21)).date(), event_time=now, record_id=record_id, **kwargs
    )


def _ttl_bound_ms(chain: OptionChainSnapshot) -> float:
    """The longest a swing result of ``chain`` may live from now, in ms, by the role's default validity."""
    until = valid_until(chain.event_time, "swing", AnalyticsConfig())
    return (until - utc_now()).total_seconds() * 1000.0 + 1_000.0  # the TTL is rounded up to whole seconds


async def _wait_for(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"condition not met within {timeout_s} s"
        await asyncio.sleep(0.1)


def _array(values: list[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


async def test_a_10k_contract_snapshot_lands_as_greeks_in_redis_and_on_the_topic(
    make_settings: Callable[..., Settings], start_analytics: Callable[..., Any]
) -> None:
    """TTL > 0, values equal to compute_greeks on the same inputs, an AnalyticsResult, latency metrics."""
    settings = make_settings(demo={"enabled": False})
    platform = await start_analytics(settings)
    chain = _chain(10_000, "chain-10k", junk_rows=20)
    await _publish(settings, [(b"SPY", encode_record(chain))])
    expiry = chain.expiry.isoformat()
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        key = f"{prefix}analytics:greeks:SPY:{expiry}"
        raw = await _wait_for(lambda: redis.get(key))
        ttl_ms = await redis.pttl(key)
        assert 0 < ttl_ms <= _ttl_bound_ms(chain)
        summary_raw = await redis.get(f"{prefix}analytics:greeks:SPY")
        assert summary_raw is not None and 0 < await redis.pttl(f"{prefix}analytics:greeks:SPY") <= _ttl_bound_ms(chain)
    finally:
        await redis.aclose()
    doc = decode_result(raw, "analytics:greeks:SPY")
    assert doc["input_ids"] == ["chain-10k"] and doc["source"] == "sim"
    assert doc["valid_until"] == valid_until(chain.event_time, "swing", AnalyticsConfig()).isoformat()
    cols = doc["columns"]
    assert len(cols["strike"]) == 10_000
    iv = _array(cols["iv"])
    priced = np.isfinite(iv)
    assert priced.sum() > 9_500
    is_call = np.array(cols["right"]) == "C"
    strike = np.array(cols["strike"])
    expected = compute_greeks(
        doc["spot"],
        strike[priced],
        doc["expiry_years"],
        doc["rate"],
        doc["dividend_yield"],
        iv[priced],
        is_call[priced],
    )
    for name, values in expected.as_dict().items():
        np.testing.assert_allclose(_array(cols[name])[priced], values, rtol=1e-12, atol=0.0, err_msg=name)
    assert doc["counts"]["provider_disagree"] >= 20  # the junk provider deltas were caught
    summary = orjson.loads(summary_raw)
    assert set(summary["expiries"]) == {expiry} and summary["spot"] == doc["spot"]

    results = await read_topic(settings, "analytics", 1)
    assert len(results) == 1
    result = results[0]
    assert result["type"] == "analytics_result" and result["kind"] == "greeks" and result["symbol"] == "SPY"
    assert result["input_ids"] == ["chain-10k"] and result["source"] == "sim"
    assert datetime.fromisoformat(result["computed_at"]) == datetime.fromisoformat(doc["computed_at"])
    assert datetime.fromisoformat(result["valid_until"]) == datetime.fromisoformat(doc["valid_until"])
    assert result["values"]["contracts"] == 10_000.0
    assert result["values"]["expiry_yyyymmdd"] == float(expiry.replace("-", ""))

    m = platform.metrics.registry.get_sample_value
    assert m("analytics_compute_latency_ms_count", {"module": "greeks"}) == 1
    assert m("analytics_end_to_end_ms_count", {"module": "greeks"}) == 1
    assert m("analytics_results_total", {"module": "greeks"}) == 1
    assert m("analytics_input_lag_seconds", {"module": "greeks", "horizon": "swing"}) is not None
    assert m("analytics_last_result_timestamp_seconds", {"module": "greeks", "symbol": "SPY"}) > 0
    assert m("topic_messages_produced_total", {"topic": "analytics"}) == 1


async def test_malformed_records_are_dead_lettered_and_the_agent_keeps_computing(
    make_settings: Callable[..., Settings], start_analytics: Callable[..., Any]
) -> None:
    """Garbage and an invalid chain → dead letters with reasons; chains after them still get Greeks."""
    settings = make_settings(demo={"enabled": False})
    platform = await start_analytics(settings)
    good = _chain(200, "after-garbage")
    broken = _chain(200, "broken").model_dump(mode="json")  # a chain in the JSON form, which still decodes
    broken["bid"] = broken["bid"][:-1]  # a column shorter than the others
    await _publish(settings, [(b"SPY", b"{not json"), (b"SPY", orjson.dumps(broken)), (b"SPY", encode_record(good))])
    letters = await read_topic(settings, "deadletter", 2)
    assert {letter["reason"] for letter in letters} == {"not_json", "validation"}
    assert all(letter["original_topic"] == "quotes" for letter in letters)
    redis = Redis.from_url(settings.redis.url or "")
    try:
        store = AnalyticsStore(redis, platform.metrics.analytics, settings.redis.key_prefix)
        fresh = await _wait_for(lambda: store.greeks("SPY", good.expiry.isoformat()))
        assert fresh.document["input_ids"] == ["after-garbage"]
        # The same key read by a clock past its validity: refused, never served as fresh.
        late = AnalyticsStore(
            redis,
            platform.metrics.analytics,
            settings.redis.key_prefix,
            clock=lambda: valid_until(good.event_time, "swing", AnalyticsConfig()) + timedelta(minutes=1),
        )
        assert await late.greeks("SPY", good.expiry.isoformat()) is None
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    assert m("deadletter_messages_total", {"topic": "quotes", "reason": "not_json"}) == 1
    assert m("deadletter_messages_total", {"topic": "quotes", "reason": "validation"}) == 1
    assert m("analytics_stale_results_total", {"module": "greeks"}) == 1


async def test_a_burst_of_snapshots_of_one_expiry_is_coalesced_to_the_latest(
    make_settings: Callable[..., Settings], start_analytics: Callable[..., Any]
) -> None:
    """Snapshots of one (symbol, expiry) inside 250 ms: the latest is stored, the superseded counted."""
    settings = make_settings(demo={"enabled": False})
    platform = await start_analytics(settings)
    expiry = (utc_now() + timedelta(days=14)).date()
    burst = [_chain(2_000, f"burst-{i}", expiry=expiry) for i in range(6)]
    await _publish(settings, [(b"QQQ", encode_record(c.model_copy(update={"symbol": "QQQ"}))) for c in burst])
    redis = Redis.from_url(settings.redis.url or "")
    try:
        store = AnalyticsStore(redis, platform.metrics.analytics, settings.redis.key_prefix)

        async def latest() -> bool:
            found = await store.greeks("QQQ", expiry.isoformat())
            return found is not None and found.document["input_ids"] == ["burst-5"]

        await _wait_for(latest)
    finally:
        await redis.aclose()
    m = platform.metrics.registry.get_sample_value
    runs = m("analytics_compute_latency_ms_count", {"module": "greeks"})
    superseded = m("analytics_coalesced_inputs_total", {"module": "greeks"}) or 0.0
    assert runs is not None and runs + superseded == 6
    assert superseded >= 1


def _bars(symbol: str, minutes: int, seed: int) -> list[Bar]:
    """The last ``minutes`` 1-minute bars up to now (a feed catching up), prices on a random walk."""
    rng = np.random.default_rng(seed)
    now = utc_now().replace(second=0, microsecond=0)
    closes = 600.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, minutes)))
    return [
        Bar(
            symbol=symbol,
            interval_s=60,
            open=float(c),
            high=float(c),
            low=float(c),
            close=float(c),
            volume=float(rng.integers(5_000, 20_000)),
            record_id=f"{symbol}-bar-{i}",
            event_time=now - timedelta(minutes=minutes - i),
            source="sim",
            run_id="t",
            mode="sim",
        )
        for i, c in enumerate(closes)
    ]


async def test_vpin_liquidity_macro_regime_risk_and_stress_reach_redis(
    make_settings: Callable[..., Settings], start_analytics: Callable[..., Any]
) -> None:
    """Bars, depth, macro series and a position on the real stack → every timer-driven key, fresh."""
    settings = make_settings(demo={"enabled": False})
    config = AnalyticsConfig(
        average_daily_volume={"SPY": 390 * 12_500 / 4},  # ~4 sessions of buckets in 150 minutes
        vpin_every_s=1.0,
        liquidity_every_s=1.0,
        regime_every_s=1.0,
        risk_every_s=1.0,
        stress_every_s=1.0,
    )
    role = RoleSpec("analytics", "analytics with 1 s timers", analytics.installer(config))
    platform = await start_analytics(settings, role)
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    try:
        await redis.hset(
            f"{prefix}positions:DU123", "756733", orjson.dumps({"symbol": "SPY", "sec_type": "STK", "position": 100.0})
        )
        bars = _bars("SPY", 150, 1) + _bars("QQQ", 150, 2)
        await _publish(settings, [(b.symbol.encode(), encode_record(b)) for b in bars], "ticks")
        now = utc_now()
        depth = DepthSnapshot(
            symbol="SPY",
            venue="ARCA",
            bids=[DepthLevel(price=600.0 - 0.01 * k, size=300.0) for k in range(5)],
            asks=[DepthLevel(price=600.01 + 0.01 * k, size=300.0) for k in range(5)],
            record_id="depth-1",
            event_time=now,
            source="sim",
            run_id="t",
            mode="sim",
        )
        macro = MacroSeries(
            function="TREASURY_YIELD",
            name="10-Year",
            interval="monthly",
            unit="percent",
            parameters={"maturity": "10year"},
            dates=[date(2025 + (m + 10) // 12, (m + 10) % 12 + 1, 1) for m in range(12)],
            values=[4.0 + 0.05 * m for m in range(12)],
            record_id="macro-1",
            event_time=now,
            source="alphavantage",
            run_id="t",
            mode="sim",
        )
        await _publish(settings, [(b"SPY", encode_record(depth))], "depth")
        await _publish(settings, [(b"TREASURY_YIELD", encode_record(macro))], "reference")
        keys = ("vpin:SPY", "liquidity:SPY", "macro", "regime", "risk", "stress")

        async def all_there() -> bool:
            return all([await redis.exists(f"{prefix}analytics:{k}") for k in keys])

        await _wait_for(all_there, timeout_s=90)
        docs = {k: orjson.loads(await redis.get(f"{prefix}analytics:{k}")) for k in keys}
        ttls = {k: await redis.pttl(f"{prefix}analytics:{k}") for k in keys}
        log = await redis.lrange(f"{prefix}analytics:regime:log", 0, -1)
    finally:
        await redis.aclose()
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    for key, doc in docs.items():
        assert {"source", "computed_at", "valid_until", "input_ids"} <= doc.keys(), key
        assert datetime.fromisoformat(doc["valid_until"]) > datetime.fromisoformat(doc["computed_at"]), key
    assert 0.0 <= docs["vpin:SPY"]["vpin"] <= 1.0 and docs["vpin:SPY"]["adv_source"] == "config"
    assert docs["liquidity:SPY"]["book_source"] == "depth:ARCA" and docs["liquidity:SPY"]["input_ids"] == ["depth-1"]
    assert docs["macro"]["input_ids"] == ["macro-1"]
    assert docs["regime"]["label"] in REGIME_LABELS and len(log) >= 1
    assert docs["risk"]["symbols"] == ["QQQ", "SPY"] and "5m" in docs["risk"]["windows"]
    assert docs["stress"]["positions"] == 1 and docs["stress"]["input_ids"] == ["756733"]
    m = platform.metrics.registry.get_sample_value
    assert m("analytics_vpin", {"symbol": "SPY"}) == docs["vpin:SPY"]["vpin"]
    for module in ("vpin", "liquidity", "macro", "regime", "risk", "stress"):
        assert (m("analytics_results_total", {"module": module}) or 0) >= 1, module
        assert (m("analytics_compute_latency_ms_count", {"module": module}) or 0) >= 1, module


async def test_the_book_pricer_reads_a_contracts_iv_and_delta_from_the_stored_greeks(stack: Stack) -> None:
    """A position's IV and delta come from its expiry's Greeks document in Redis, cell for cell;
    a contract without a volatility there falls back (here: no summary either, so no value)."""
    now = utc_now()
    expiry = (now + timedelta(days=20)).date()
    chain = synthetic_chain(expiry=expiry, event_time=now, underlying_price=True)
    provider_iv = list(chain.implied_vol)
    bid = list(chain.bid)
    bid[7], provider_iv[7] = None, None  # no mid and no provider IV: this contract gets no Greeks
    chain = chain.model_copy(update={"bid": bid, "implied_vol": provider_iv})
    result = compute_chain_greeks(chain, spot_hint=None, config=AnalyticsConfig())
    redis = Redis.from_url(stack.redis_url)
    metrics = Metrics()
    store = AnalyticsStore(redis, metrics.analytics, unique())
    try:
        key = greeks_key("SPY", expiry.isoformat())
        written = ResultWrite(key, "greeks", result.document, result.summary.valid_until)
        assert await store.write([written]) == [written]
        pricer = BookPricer(SpotBook(), BarBook(metrics.analytics, 10), SummaryBook(), store, now)
        for row in (3, 250):
            position = Position("SPY", 1.0, expiry, float(chain.strike[row]), chain.right[row], source_id="p")
            assert await pricer.contract(position) == (result.columns["iv"][row], result.columns["delta"][row])
        assert math.isnan(result.columns["iv"][7])
        assert await pricer.contract(Position("SPY", 1.0, expiry, float(chain.strike[7]), chain.right[7])) is None
    finally:
        await redis.aclose()


async def test_greeks_command_prints_the_stored_document_as_json(stack: Stack, tmp_path: Path) -> None:
    """`quanticity greeks SYMBOL EXPIRY` prints the columnar document as JSON (null for no value);
    a missing or damaged document, or a dead Redis, is an error that names it."""
    now = utc_now()
    expiry = (now + timedelta(days=20)).date()
    result = compute_chain_greeks(
        synthetic_chain(expiry=expiry, event_time=now), spot_hint=None, config=AnalyticsConfig()
    )
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    try:
        store = AnalyticsStore(redis, Metrics().analytics, prefix)
        await store.write(
            [ResultWrite(greeks_key("SPY", expiry.isoformat()), "greeks", result.document, result.summary.valid_until)]
        )
        await redis.set(f"{prefix}{greeks_key('SPY', '2031-02-21')}", result.document[:-5], px=60_000)
    finally:
        await redis.aclose()
    env = {**os.environ, "QUANTICITY_REDIS__URL": stack.redis_url, "QUANTICITY_REDIS__KEY_PREFIX": prefix}
    command = [sys.executable, "-m", "quanticity.cli.main", "--env-file", str(tmp_path / "none.env"), "greeks"]

    def run(args: list[str], environment: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], env=environment, capture_output=True, text=True, check=False)

    found = run(["spy", expiry.isoformat()])
    missing = run(["SPY", "2031-01-17"])
    damaged = run(["SPY", "2031-02-21"])
    unreachable = run(
        ["SPY", expiry.isoformat()], {**env, "QUANTICITY_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}
    )

    assert found.returncode == 0, found.stderr
    doc = orjson.loads(found.stdout)
    assert doc["valid_until"] == result.summary.valid_until.isoformat()
    for name, values in result.columns.items():
        assert doc["columns"][name] == [None if math.isnan(v) else v for v in values.astype(float).tolist()], name
    assert missing.returncode == 1 and f"no Greeks stored at {prefix}analytics:greeks:SPY:2031-01-17" in missing.stderr
    assert (
        damaged.returncode == 1 and "analytics:greeks:SPY:2031-02-21 holds a broken columnar document" in damaged.stderr
    )
    assert unreachable.returncode == 1 and "error: Redis at redis://127.0.0.1:" in unreachable.stderr
