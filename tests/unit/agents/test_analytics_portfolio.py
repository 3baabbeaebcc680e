"""Risk attribution and stress services: the book, the kernels, the documents, the Parquet snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_chains import SpotBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import SummaryBook, compute_chain_greeks, expiry_years
from quanticity.agents.analytics_portfolio import PortfolioService, Position, parse_position
from quanticity.analytics.cross_asset_stress import MarketState, StressPosition, stress_test
from quanticity.observability.metrics import Metrics
from quanticity.schemas import UnderlyingQuote
from quanticity.storage.archive import load_manifest, sha256_of, verify
from tests.unit.agents.test_analytics_greeks import synthetic_chain
from tests.unit.agents.test_analytics_micro import SETTINGS, Clock, Recorder
from tests.unit.agents.test_analytics_regime import _minute_bars

NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 12:00 ET
QUOTE = UnderlyingQuote(
    symbol="SPY", bid=599.95, ask=600.05, record_id="q", event_time=NOW, source="sim", run_id="t", mode="sim"
)


class Book:
    def __init__(self, positions: list[Position]) -> None:
        self.held = positions

    async def positions(self) -> list[Position]:
        return self.held


def test_positions_from_the_account_mirror() -> None:
    assert parse_position("1", {"symbol": "SPY", "sec_type": "STK", "position": 100.0}) == Position(
        "SPY", 100.0, source_id="1"
    )
    option = parse_position(
        "2", {"symbol": "SPY", "sec_type": "OPT", "expiry": "20261218", "strike": 600.0, "right": "P", "position": -3}
    )
    assert option == Position("SPY", -3.0, date(2026, 12, 18), 600.0, "P", source_id="2")
    assert parse_position("3", {"symbol": "SPY", "sec_type": "STK", "position": 0.0}) is None
    assert parse_position("4", {"symbol": "EUR", "sec_type": "CASH", "position": 5.0}) is None


def _service(
    book: list[Position], tmp_path: Path, clock: Clock, spots: SpotBook | None = None
) -> tuple[PortfolioService, Recorder, BarBook, SummaryBook]:
    emitter, metrics = Recorder(), Metrics()
    config = AnalyticsConfig()
    bars = BarBook(metrics.analytics, config.regime_history_bars)
    summaries = SummaryBook()
    service = PortfolioService(
        emitter,
        metrics.analytics,
        config,
        lambda: SETTINGS,
        Book(book),
        bars,
        spots or SpotBook(),
        summaries,
        tmp_path / "archive",
        clock=clock,
    )
    return service, emitter, bars, summaries


async def test_stress_values_the_book_with_our_vols_and_spots(tmp_path: Path) -> None:
    clock = Clock(NOW)
    spots = SpotBook()
    spots.on_quote(QUOTE)
    expiry = date(2026, 12, 18)
    book = [Position("SPY", 100.0, source_id="stk"), Position("SPY", -2.0, expiry, 600.0, "P", source_id="opt")]
    service, emitter, _, summaries = _service(book, tmp_path, clock, spots)
    chain = synthetic_chain(underlying_price=True, expiry=expiry, event_time=NOW)
    summary = compute_chain_greeks(chain, spot_hint=None, config=AnalyticsConfig()).summary
    summaries.update("SPY", summary, NOW)
    await service.stress_tick()
    doc: dict[str, Any] = orjson.loads(emitter.emitted[0][2][0].document)
    assert doc["positions"] == 2 and doc["skipped_positions"] == [] and doc["input_ids"] == ["stk", "opt"]
    expected = stress_test(
        [
            StressPosition("SPY", 100.0, label="stk"),
            StressPosition(
                "SPY",
                -2.0,
                600.0,
                expiry_years(NOW, expiry, AnalyticsConfig()),
                False,
                summary.atm_iv or 0.0,
                label="opt",
            ),
        ],
        MarketState({"SPY": 600.0}, AnalyticsConfig().risk_free_rate, {"SPY": 0.0}),
    )
    assert doc["worst"]["scenario"] == expected.worst().scenario.name
    assert doc["worst"]["pnl_full"] == pytest.approx(expected.worst().total_full)
    assert datetime.fromisoformat(doc["valid_until"]) == NOW + timedelta(seconds=900 + 120)


async def test_stress_lists_positions_it_cannot_value(tmp_path: Path) -> None:
    book = [Position("TSLA", 10.0, source_id="x"), Position("SPY", 1.0, date(2026, 12, 18), 600.0, "C", source_id="y")]
    spots = SpotBook()
    spots.on_quote(QUOTE)
    service, emitter, _, _ = _service(book, tmp_path, Clock(NOW), spots)
    await service.stress_tick()
    doc = orjson.loads(emitter.emitted[0][2][0].document)
    assert doc["skipped_positions"] == [{"position": "x", "reason": "no_spot"}, {"position": "y", "reason": "no_vol"}]
    assert doc["positions"] == 0 and doc["scenarios"] == {}


async def test_risk_attribution_on_rolled_windows_and_the_daily_snapshot(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 24, 21, 5, tzinfo=UTC))  # 16:05 ET: after the close
    service, emitter, bars, _ = _service([], tmp_path, clock)
    start = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    for symbol, seed in (("SPY", 1), ("QQQ", 2), ("IWM", 3)):
        for day in range(2):
            for bar in _minute_bars(symbol, start + timedelta(days=day), 390, seed=seed + 10 * day):
                bars.on_bar(bar)
    await service.risk_tick()
    doc: dict[str, Any] = orjson.loads(emitter.emitted[0][2][0].document)
    assert doc["symbols"] == ["IWM", "QQQ", "SPY"] and doc["weights_source"] == "equal" and doc["benchmark"] == "SPY"
    assert set(doc["windows"]) == {"5m", "60m"}
    assert doc["windows"]["5m"]["n_observations"] > 100 and doc["windows"]["60m"]["n_observations"] >= 10
    rows = doc["table"]
    root = tmp_path / "archive"
    (relative,) = load_manifest(root)
    assert relative == "symbol=_risk/date=2026-11-24/function=risk_attribution/part-0.parquet"
    table = pq.read_table(root / relative)
    assert table.num_rows == len(rows) and load_manifest(root)[relative]["sha256"] == sha256_of(root / relative)
    assert verify(root) == []
    # Once a day: a second run after the close does not write again.
    (root / relative).unlink()
    await service.risk_tick()
    assert not (root / relative).exists()
