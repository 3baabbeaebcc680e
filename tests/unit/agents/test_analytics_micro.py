"""VPIN and liquidity services: inputs → kernel → result documents, validity and metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_micro import (
    LiquidityService,
    VpinService,
    adv_from_history,
    merge_depth,
    session_fraction,
)
from quanticity.analytics.bars import ONE_MINUTE_NS, aggregate_ticks
from quanticity.analytics.vpin import VPINConfig, compute_vpin
from quanticity.observability.metrics import Metrics
from quanticity.schemas import AnalyticsResult, Bar, DepthLevel, DepthSnapshot, Tick, UnderlyingQuote
from quanticity.settings import Settings
from quanticity.storage.analytics_store import ResultWrite

# Tuesday 2026-11-24 14:30 UTC = 09:30 ET, the open.
OPEN = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
SETTINGS = Settings(_env_file=None, run_id="unit")  # type: ignore[call-arg]


class Recorder:
    """An Emitter that keeps what it was given."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, list[ResultWrite], AnalyticsResult | None]] = []

    async def emit(
        self,
        module: str,
        symbol: str,
        writes: Sequence[ResultWrite],
        result: AnalyticsResult | None,
        *,
        ingest_time: datetime | None = None,
    ) -> bool:
        self.emitted.append((module, symbol, list(writes), result))
        return True

    def documents(self) -> list[dict[str, Any]]:
        return [orjson.loads(w.document) for _, _, writes, _ in self.emitted for w in writes]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _envelope(record_id: str, t: datetime) -> dict[str, Any]:
    return {"record_id": record_id, "event_time": t, "ingest_time": t, "source": "sim", "run_id": "t", "mode": "sim"}


def _trades(minutes: int, per_minute: int, seed: int = 3) -> list[Tick]:
    rng = np.random.default_rng(seed)
    price = 600.0
    ticks = []
    for i in range(minutes * per_minute):
        t = OPEN + timedelta(seconds=60.0 * i / per_minute + 0.5)
        price *= math.exp(rng.normal(0.0, 0.0005))
        ticks.append(
            Tick(
                symbol="SPY",
                kind="trade",
                price=round(price, 2),
                size=float(rng.integers(1, 500)),
                **_envelope(f"t{i}", t),
            )
        )
    return ticks


async def test_vpin_from_trades_matches_the_batch_kernel_and_is_published_with_its_validity() -> None:
    emitter, metrics = Recorder(), Metrics()
    minutes = 150
    ticks = _trades(minutes, per_minute=20)
    adv = sum(t.size or 0.0 for t in ticks) / minutes * 390 / 4  # small ADV: many buckets in 150 minutes
    config = AnalyticsConfig(average_daily_volume={"SPY": adv})
    clock = Clock(OPEN)
    service = VpinService(emitter, metrics.analytics, config, lambda: SETTINGS, clock=clock)
    for tick in ticks:
        service.on_tick(tick)
    clock.now = ticks[-1].event_time + timedelta(seconds=61)  # the last minute has ended
    await service.tick()
    (module, symbol, writes, record), *_ = emitter.emitted
    assert (module, symbol) == ("vpin", "SPY") and writes[0].key == "analytics:vpin:SPY"
    doc = emitter.documents()[0]
    # The same 1-minute bars through the batch kernel (rolling sigma) give the same VPIN.
    state = service.symbols["SPY"]
    assert state.stream is not None
    times = np.array([int(t.event_time.timestamp() * 1e9) for t in ticks])
    bars = aggregate_ticks(times, [t.price for t in ticks], [t.size for t in ticks], interval_ns=ONE_MINUTE_NS)
    batch = compute_vpin(bars.volume, bars.close, VPINConfig(bucket_volume=adv / 50, window=50, sigma="rolling"))
    assert doc["vpin"] == pytest.approx(batch.latest_vpin, rel=1e-12)
    assert 0.0 <= doc["vpin"] <= 1.0 and doc["adv_source"] == "config" and doc["bars"] == minutes
    assert doc["input_ids"] == [f"t{len(ticks) - 3}", f"t{len(ticks) - 2}", f"t{len(ticks) - 1}"]
    assert record is not None and record.kind == "vpin" and record.values["vpin"] == doc["vpin"]
    assert datetime.fromisoformat(doc["valid_until"]) == ticks[-1].event_time + timedelta(seconds=90)
    assert metrics.registry.get_sample_value("analytics_vpin", {"symbol": "SPY"}) == doc["vpin"]


async def test_vpin_waits_for_an_adv_then_starts_from_the_session_so_far() -> None:
    emitter = Recorder()
    clock = Clock(OPEN)
    config = AnalyticsConfig(vpin_adv_min_session_fraction=0.1, vpin_window_buckets=5)
    service = VpinService(emitter, Metrics().analytics, config, lambda: SETTINGS, clock=clock)
    ticks = _trades(60, per_minute=10)
    for tick in ticks[: 10 * 20]:  # 20 minutes: 5% of the session, not enough to stand in for ADV
        service.on_tick(tick)
    clock.now = OPEN + timedelta(minutes=20, seconds=5)
    await service.tick()
    assert service.symbols["SPY"].stream is None and emitter.emitted == []
    for tick in ticks[10 * 20 :]:
        service.on_tick(tick)
    clock.now = OPEN + timedelta(minutes=60, seconds=5)  # 15% of the session
    await service.tick()
    state = service.symbols["SPY"]
    assert state.stream is not None and state.adv_source == "session_so_far"
    traded = sum(t.size or 0.0 for t in ticks[: 10 * 59])  # the bars closed by then
    assert state.adv == pytest.approx(traded / session_fraction(clock.now), rel=0.05)


async def test_minute_bars_feed_vpin_only_for_symbols_without_trades() -> None:
    service = VpinService(Recorder(), Metrics().analytics, AnalyticsConfig(), lambda: SETTINGS)
    bar = Bar(symbol="QQQ", interval_s=60, open=1, high=2, low=1, close=2, volume=100, **_envelope("b1", OPEN))
    service.on_bar(bar)
    service.on_bar(bar)  # a duplicate is not counted twice
    service.on_bar(bar.model_copy(update={"interval_s": 300, "record_id": "b5"}))  # not a 1-minute bar
    assert service.symbols["QQQ"].pending_volume == [100.0]
    service.on_tick(Tick(symbol="QQQ", kind="trade", price=2.0, size=5.0, **_envelope("t", OPEN)))
    service.on_bar(bar.model_copy(update={"event_time": OPEN + timedelta(minutes=1), "record_id": "b2"}))
    assert service.symbols["QQQ"].pending_volume == [100.0]  # trades now drive QQQ


def test_adv_from_history_counts_complete_sessions_only() -> None:
    day1 = int(datetime(2026, 11, 20, 14, 30, tzinfo=UTC).timestamp() * 1000)
    day2 = int(datetime(2026, 11, 23, 14, 30, tzinfo=UTC).timestamp() * 1000)
    partial = int(datetime(2026, 11, 24, 14, 30, tzinfo=UTC).timestamp() * 1000)
    samples = [(day1 + i * 60_000, 10.0) for i in range(390)] + [(day2 + i * 60_000, 20.0) for i in range(390)]
    samples += [(partial + i * 60_000, 1000.0) for i in range(30)]
    assert adv_from_history(samples) == pytest.approx((3900.0 + 7800.0) / 2)
    assert adv_from_history(samples[-30:]) is None


def _depth(venue: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]], t: datetime) -> DepthSnapshot:
    return DepthSnapshot(
        symbol="SPY",
        venue=venue,
        bids=[DepthLevel(price=p, size=s) for p, s in bids],
        asks=[DepthLevel(price=p, size=s) for p, s in asks],
        **_envelope(f"d-{venue}", t),
    )


def test_venue_books_merge_by_price() -> None:
    a = _depth("ARCA", [(600.00, 100), (599.99, 50)], [(600.01, 80), (600.02, 40)], OPEN)
    b = _depth("ISLAND", [(600.00, 30), (599.98, 70)], [(600.02, 10)], OPEN)
    bids, asks = merge_depth([a, b], levels=2)
    assert bids == [(600.00, 130), (599.99, 50)]
    assert asks == [(600.01, 80), (600.02, 50)]


async def test_liquidity_from_depth_and_from_l1_with_validity_and_metrics() -> None:
    emitter, metrics = Recorder(), Metrics()
    clock = Clock(OPEN + timedelta(seconds=1))
    service = LiquidityService(emitter, metrics.analytics, AnalyticsConfig(), lambda: SETTINGS, clock=clock)
    levels = [(600.00 - 0.01 * k, 500.0) for k in range(10)]
    service.on_depth(_depth("ARCA", levels, [(600.01 + 0.01 * k, 500.0) for k in range(10)], OPEN))
    quote = UnderlyingQuote(symbol="QQQ", bid=500.0, ask=500.1, bid_size=300, ask_size=200, **_envelope("q1", OPEN))
    service.on_quote(quote)
    await service.tick()
    docs = {d["symbol"]: d for d in emitter.documents()}
    spy, qqq = docs["SPY"], docs["QQQ"]
    assert spy["book_source"] == "depth:ARCA" and spy["status"] == "ok" and spy["levels"] == {"bids": 10, "asks": 10}
    assert spy["spread_bps"] == pytest.approx(0.01 / 600.005 * 1e4)
    assert 0.0 < spy["score"] <= 100.0
    assert spy["order_slippage_bps"]["buy"] > 0.0  # 1000 shares walk past the 500 at the touch
    assert qqq["book_source"] == "l1" and qqq["imbalance_top"] == pytest.approx((300 - 200) / 500)
    assert datetime.fromisoformat(spy["valid_until"]) == OPEN + timedelta(seconds=15)
    assert metrics.registry.get_sample_value("analytics_spread_bps", {"symbol": "QQQ"}) == pytest.approx(
        0.1 / 500.05 * 1e4
    )
    # 20 s later nothing is fresh: nothing is published.
    emitter.emitted.clear()
    clock.now = OPEN + timedelta(seconds=20)
    await service.tick()
    assert emitter.emitted == []


async def test_a_crossed_consolidated_book_is_flagged_not_scored() -> None:
    emitter = Recorder()
    service = LiquidityService(emitter, Metrics().analytics, AnalyticsConfig(), lambda: SETTINGS, clock=lambda: OPEN)
    service.on_depth(_depth("ARCA", [(600.05, 100)], [(600.10, 100)], OPEN))
    service.on_depth(_depth("ISLAND", [(599.90, 100)], [(600.00, 100)], OPEN))  # its ask is below ARCA's bid
    await service.tick()
    (doc,) = emitter.documents()
    assert doc["status"] == "crossed" and doc["score"] is None
