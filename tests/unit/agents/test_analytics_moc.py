"""MOC service: rows in the last hour, no projection without a model, daily labelling, refit and accuracy log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_micro import LiquidityService
from quanticity.agents.analytics_moc import MocService, expected_volume
from quanticity.analytics.moc_predictor import MocModel
from quanticity.observability.metrics import Metrics
from quanticity.schemas import AuctionState, Tick
from tests.unit.agents.test_analytics_micro import SETTINGS, Clock, Recorder
from tests.unit.agents.test_analytics_store import FakeRedis

ADV = {"SPY": 60e6, "QQQ": 40e6, "IWM": 25e6}
CONFIG = AnalyticsConfig(average_daily_volume=ADV)


def _service(redis: FakeRedis, clock: Clock) -> tuple[MocService, Recorder, BarBook, Metrics]:
    emitter, metrics = Recorder(), Metrics()
    bars = BarBook(metrics.analytics, 500)
    liquidity = LiquidityService(Recorder(), metrics.analytics, CONFIG, lambda: SETTINGS, clock=clock)
    service = MocService(
        emitter, metrics.analytics, CONFIG, lambda: SETTINGS, bars, liquidity, lambda: redis, clock=clock
    )  # type: ignore[arg-type,return-value]
    return service, emitter, bars, metrics


def _envelope(record_id: str, t: datetime) -> dict[str, object]:
    return {"record_id": record_id, "event_time": t, "ingest_time": t, "source": "ibkr", "run_id": "t", "mode": "sim"}


async def _trade_day(service: MocService, bars: BarBook, clock: Clock, day: datetime, seed: int) -> None:
    """The last hour in 30 s steps: trades and auction fields for SPY, QQQ, IWM, then the close."""
    rng = np.random.default_rng(seed)
    price = {"SPY": 600.0, "QQQ": 520.0, "IWM": 230.0}
    drift = {s: rng.choice([-1.0, 1.0]) for s in price}
    start = day.replace(hour=20, minute=0)  # 15:00 ET (EST)
    for step in range(120):
        t = start + timedelta(seconds=30 * step)
        clock.now = t + timedelta(seconds=1)
        for symbol in price:
            price[symbol] *= 1.0 + 1e-4 * drift[symbol] + rng.normal(0.0, 2e-4)
            bars.on_tick(
                Tick(symbol=symbol, kind="trade", price=price[symbol], size=1000.0, **_envelope(f"{symbol}{step}", t))
            )
            imbalance = drift[symbol] * ADV[symbol] * 0.002 * (1 + step / 60) + rng.normal(0.0, 1e4)
            service.on_auction(
                AuctionState(
                    symbol=symbol,
                    auction_volume=ADV[symbol] * 0.01,
                    auction_price=price[symbol] * (1 + 1e-4 * drift[symbol]),
                    imbalance=imbalance,
                    regulatory_imbalance=imbalance * 0.8,
                    **_envelope(f"a{symbol}{step}", t),
                )
            )
        await service.tick()


async def test_a_day_without_a_model_collects_rows_then_labels_and_fits() -> None:
    redis, clock = FakeRedis(), Clock(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))
    service, emitter, bars, _ = _service(redis, clock)
    await _trade_day(service, bars, clock, datetime(2026, 11, 24, tzinfo=UTC), seed=1)
    assert emitter.emitted == []  # no model yet: nothing projected
    assert {s: len(d.rows) for s, d in service.days.items()} == {"SPY": 120, "QQQ": 120, "IWM": 120, "SPX": 120}
    clock.now = datetime(2026, 11, 24, 21, 0, 30, tzinfo=UTC)  # 16:00:30 ET
    await service.tick()
    model = MocModel.from_dict(orjson.loads(redis.values["analytics:moc:model"]))
    assert model.n_train == 480 and service.model is not None
    (log_entry,) = [orjson.loads(e) for e in redis.lists["analytics:moc:log"]]
    assert log_entry["rows"] == 480 and "backtest" not in log_entry  # nothing to score out of sample yet
    assert len(redis.lists["analytics:moc:history"]) == 1 and service.days == {}


async def test_with_a_model_the_close_is_projected_and_the_day_scored() -> None:
    redis, clock = FakeRedis(), Clock(datetime(2026, 11, 23, 20, 0, tzinfo=UTC))
    first, _, bars, _ = _service(redis, clock)
    await _trade_day(first, bars, clock, datetime(2026, 11, 23, tzinfo=UTC), seed=1)
    clock.now = datetime(2026, 11, 23, 21, 0, 30, tzinfo=UTC)
    await first.tick()
    # The next day, a fresh role (a restart) loads the model from Redis.
    service, emitter, bars, metrics = _service(redis, clock)
    await _trade_day(service, bars, clock, datetime(2026, 11, 24, tzinfo=UTC), seed=2)
    docs = emitter.documents()
    assert {d["symbol"] for d in docs} == {"SPY", "QQQ", "IWM", "SPX"}
    last_spy = [d for d in docs if d["symbol"] == "SPY"][-1]
    assert last_spy["side"] in ("buy", "sell") and 0.0 <= last_spy["confidence"] <= 1.0
    assert [d for d in docs if d["symbol"] == "SPX"][-1]["auction_source"] == "SPY"
    assert datetime.fromisoformat(last_spy["valid_until"]) - datetime.fromisoformat(
        last_spy["computed_at"]
    ) == timedelta(seconds=60)
    clock.now = datetime(2026, 11, 24, 21, 0, 30, tzinfo=UTC)
    await service.tick()
    newest = orjson.loads(redis.lists["analytics:moc:log"][0])
    assert newest["backtest"]["n"] == 480 and 0.0 <= newest["backtest"]["direction_hit_rate"] <= 1.0
    hit = metrics.registry.get_sample_value("analytics_moc_direction_hit_rate", {"symbol": "SPY"})
    assert hit == newest["backtest"]["direction_hit_rate"]
    assert MocModel.from_dict(orjson.loads(redis.values["analytics:moc:model"])).n_train == 960  # both days


async def test_outside_the_last_hour_and_on_weekends_nothing_happens() -> None:
    redis = FakeRedis()
    clock = Clock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))  # 13:00 ET
    service, emitter, _, _ = _service(redis, clock)
    await service.tick()
    clock.now = datetime(2026, 11, 28, 20, 30, tzinfo=UTC)  # Saturday
    await service.tick()
    assert service.days == {} and emitter.emitted == [] and redis.values == {}


def test_expected_volume_follows_the_session() -> None:
    assert expected_volume(1e6, datetime(2026, 11, 24, 21, 0, tzinfo=UTC)) == 1e6
    assert expected_volume(1e6, datetime(2026, 11, 24, 17, 45, tzinfo=UTC)) == 0.5e6
