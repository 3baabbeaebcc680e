"""Macro overlay and regime services: inputs → kernels → documents, change log, validity."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import SummaryBook, compute_chain_greeks
from quanticity.agents.analytics_regime import MacroService, RegimeService, term_structure_ivs
from quanticity.analytics.macro_overlay import MacroObservations, macro_overlay
from quanticity.analytics.regime_classifier import REGIME_LABELS
from quanticity.observability.metrics import Metrics
from quanticity.schemas import Bar, MacroSeries
from quanticity.storage.analytics_store import AnalyticsStore
from tests.unit.agents.test_analytics_greeks import synthetic_chain
from tests.unit.agents.test_analytics_micro import SETTINGS, Clock, Recorder
from tests.unit.agents.test_analytics_store import FakeRedis

NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 12:00 ET


def _macro(function: str, values: list[float], maturity: str | None = None, record_id: str = "m") -> MacroSeries:
    dates = [date(2016 + (i + 11) // 12, (i + 11) % 12 + 1, 1) for i in range(len(values))]
    return MacroSeries(
        function=function,
        name=function,
        interval="monthly",
        unit="percent",
        parameters={"maturity": maturity} if maturity else {},
        dates=dates,
        values=values,
        record_id=record_id,
        event_time=NOW - timedelta(hours=1),
        ingest_time=NOW - timedelta(hours=1),
        source="alphavantage",
        run_id="t",
        mode="sim",
    )


async def test_macro_overlay_over_the_latest_reply_of_each_series() -> None:
    emitter, metrics = Recorder(), Metrics()
    service = MacroService(emitter, metrics.analytics, AnalyticsConfig(), lambda: SETTINGS, clock=lambda: NOW)
    n = 119  # Dec 2016 .. Oct 2026
    rng = np.random.default_rng(5)
    ten = list(3.0 + np.cumsum(rng.normal(0, 0.1, n)))
    two = list(3.5 + np.cumsum(rng.normal(0, 0.1, n)))
    series = [
        _macro("TREASURY_YIELD", ten, "10year", "ty10"),
        _macro("TREASURY_YIELD", two, "2year", "ty2"),
        _macro("UNEMPLOYMENT", list(4.0 + np.cumsum(rng.normal(0, 0.05, n))), record_id="un"),
    ]
    for s in series:
        service.on_macro(s)
    await service.coalescer.drain()
    doc = orjson.loads(emitter.emitted[-1][2][0].document)
    expected = macro_overlay([MacroObservations.from_series(s) for s in series], NOW.date())
    assert doc["risk_score"] == pytest.approx(expected.risk_score)
    assert doc["curve_10y_2y"] == pytest.approx(expected.curve_10y_2y)
    assert doc["input_ids"] == ["ty10", "ty2", "un"] and doc["kind"] == "macro" and doc["symbol"] == "MARKET"
    assert datetime.fromisoformat(doc["valid_until"]) == NOW + timedelta(hours=2)
    assert service.score(NOW) == pytest.approx(expected.risk_score)
    assert math.isnan(service.score(NOW + timedelta(hours=3)))  # past its validity
    # The burst of three replies gave at most two evaluations (leading edge + trailing), not three.
    assert len(emitter.emitted) <= 2


async def test_a_macro_series_the_overlay_does_not_know_is_counted_not_fatal() -> None:
    metrics = Metrics()
    service = MacroService(Recorder(), metrics.analytics, AnalyticsConfig(), lambda: SETTINGS, clock=lambda: NOW)
    service.on_macro(_macro("WTI", [70.0, 71.0]))
    assert service.series == {}
    assert (
        metrics.registry.get_sample_value("analytics_failure_total", {"module": "macro", "reason": "invalid_input"})
        == 1
    )


def test_term_structure_from_expiry_summaries() -> None:
    config = AnalyticsConfig()
    now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    parts = [
        compute_chain_greeks(
            synthetic_chain(underlying_price=True, expiry=e, event_time=now, record_id=str(e)),
            spot_hint=None,
            config=config,
        ).summary
        for e in (date(2026, 11, 24), date(2026, 12, 4), date(2027, 1, 15))
    ]
    iv_0dte, front, iv_30d = term_structure_ivs(parts)
    assert iv_0dte == front == parts[0].atm_iv
    t = [p.expiry_years for p in parts[1:]]
    w = [(p.atm_iv or 0.0) ** 2 * p.expiry_years for p in parts[1:]]
    assert iv_30d == pytest.approx(math.sqrt(np.interp(30 / 365, t, w) / (30 / 365)))
    assert math.isnan(term_structure_ivs(parts[:1])[2])  # 30 days not bracketed


def _minute_bars(symbol: str, start: datetime, minutes: int, seed: int, vol: float = 5e-4) -> list[Bar]:
    rng = np.random.default_rng(seed)
    price = 600.0 * np.exp(np.cumsum(rng.normal(0.0, vol, minutes)))
    return [
        Bar(
            symbol=symbol,
            interval_s=60,
            open=float(p),
            high=float(p),
            low=float(p),
            close=float(p),
            volume=1000.0,
            record_id=f"{symbol}-{i}",
            event_time=start + timedelta(minutes=i),
            ingest_time=start + timedelta(minutes=i + 1),
            source="sim",
            run_id="t",
            mode="sim",
        )
        for i, p in enumerate(price)
    ]


async def test_regime_is_classified_stored_and_its_changes_logged() -> None:
    emitter, metrics, redis = Recorder(), Metrics(), FakeRedis()
    config = AnalyticsConfig()
    bars = BarBook(metrics.analytics, config.regime_history_bars)
    start = NOW - timedelta(minutes=200)
    for bar in _minute_bars("SPY", start, 200, seed=1):
        bars.on_bar(bar)
    for symbol, seed in (("QQQ", 2), ("IWM", 3)):
        for bar in _minute_bars(symbol, start, 200, seed=seed):
            bars.on_bar(bar)
    clock = Clock(NOW + timedelta(seconds=30))
    store = AnalyticsStore(redis, metrics.analytics, "", clock)  # type: ignore[arg-type]
    macro = MacroService(Recorder(), metrics.analytics, config, lambda: SETTINGS, clock=clock)
    service = RegimeService(
        emitter,
        metrics.analytics,
        config,
        lambda: SETTINGS,
        bars,
        SummaryBook(),
        macro,
        store=lambda: store,
        clock=clock,
    )
    await service.tick()
    doc: dict[str, Any] = orjson.loads(emitter.emitted[0][2][0].document)
    assert doc["label"] in REGIME_LABELS and 0.0 <= doc["confidence"] <= 1.0
    assert doc["regime_symbol"] == "SPY" and doc["input_ids"] == ["SPY-197", "SPY-198", "SPY-199"]
    assert datetime.fromisoformat(doc["valid_until"]) == clock.now + timedelta(seconds=60)
    assert not math.isnan(doc["features"]["rv_1m"]) and doc["features"]["breadth"] is not None
    log = await store.change_log("regime")
    assert [e["label"] for e in log] == [doc["label"]] and log[0]["previous"] is None
    assert (
        metrics.registry.get_sample_value("analytics_regime_probability", {"label": doc["label"]}) == doc["confidence"]
    )
    # The same inputs a minute later: the model is reused (no refit) and no change is logged.
    fitted = service.model
    clock.now += timedelta(seconds=60)
    await service.tick()
    assert service.model is fitted and len(await store.change_log("regime")) == 1


async def test_no_regime_without_enough_bars_or_when_the_market_is_quiet() -> None:
    emitter, metrics = Recorder(), Metrics()
    config = AnalyticsConfig()
    bars = BarBook(metrics.analytics, config.regime_history_bars)
    for bar in _minute_bars("SPY", NOW - timedelta(minutes=20), 20, seed=1):
        bars.on_bar(bar)
    clock = Clock(NOW)
    macro = MacroService(Recorder(), metrics.analytics, config, lambda: SETTINGS)
    service = RegimeService(
        emitter, metrics.analytics, config, lambda: SETTINGS, bars, SummaryBook(), macro, clock=clock
    )
    await service.tick()
    assert emitter.emitted == []  # 19 returns < 30
    for bar in _minute_bars("SPY", NOW, 100, seed=2):
        bars.on_bar(bar)
    clock.now = NOW + timedelta(hours=3)  # the newest bar is two hours old
    await service.tick()
    assert emitter.emitted == []
