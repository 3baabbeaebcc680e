"""Bar requests: parsing TWS's size/duration/end strings, and bars built from the market."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.tws.bars import (
    DAY,
    MONTH,
    WEEK,
    BarRequest,
    BarRequestError,
    BarSource,
    parse_bar_size,
    parse_duration,
    parse_end,
)
from quanticity.simulation.tws.contracts import ContractUniverse
from quanticity.simulation.tws.quotes import QuoteEngine
from tests.unit.simulation.tws.samples import OPTION

NOW = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # Tuesday 11:00 ET


@pytest.fixture(scope="module")
def source(market: SimulatedMarket) -> BarSource:
    return BarSource(market, QuoteEngine(market))


@pytest.fixture(scope="module")
def universe(market: SimulatedMarket) -> ContractUniverse:
    return ContractUniverse(market)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1 secs", 1), ("5 secs", 5), ("1 min", 60), ("5 mins", 300), ("1 hour", 3600), ("1 day", DAY),
     ("1W", WEEK), ("1 week", WEEK), ("1M", MONTH), ("1 month", MONTH)],
)  # fmt: skip
def test_bar_sizes(text: str, seconds: int) -> None:
    assert parse_bar_size(text) == seconds


@pytest.mark.parametrize("text", ["7 mins", "2 hours", "banana", "0 secs"])
def test_unsupported_bar_sizes_are_321(text: str) -> None:
    with pytest.raises(BarRequestError) as info:
        parse_bar_size(text)
    assert info.value.code == 321


def test_durations_and_end_times() -> None:
    assert parse_duration("30 S") == (30, "S") and parse_duration("2 D") == (2, "D")
    with pytest.raises(BarRequestError):
        parse_duration("5 X")
    assert parse_end("", NOW) == NOW
    assert parse_end("20260303 10:30:00 UTC", NOW) == datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
    assert parse_end("20260303-10:30:00", NOW) == datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
    assert parse_end("20260303 10:30:00 US/Eastern", NOW) == datetime(2026, 3, 3, 15, 30, tzinfo=UTC)
    assert parse_end("20300101 00:00:00 UTC", NOW) == NOW  # the future is clamped to now


def test_minute_bars_come_from_the_market(
    source: BarSource, universe: ContractUniverse, market: SimulatedMarket
) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    req = BarRequest(spy, 60, "TRADES", False, 1)
    bars = source.history(req, NOW - timedelta(minutes=30), NOW)
    cols = market.bars("SPY", 60, NOW - timedelta(minutes=30), NOW)
    assert len(bars) == cols["close"].size == 30
    assert [b.close for b in bars] == pytest.approx(list(cols["close"]), abs=1e-6)
    assert bars[0].date == "20260303 10:30:00 US/Eastern" and all(b.volume > 0 and b.count > 0 for b in bars)
    mid = source.history(BarRequest(spy, 60, "MIDPOINT", False, 2), NOW - timedelta(minutes=5), NOW)
    assert mid[0].date == str(int((NOW - timedelta(minutes=5)).timestamp())) and mid[0].volume == -1


def test_daily_weekly_bars_and_no_data(source: BarSource, universe: ContractUniverse) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    daily = source.history(BarRequest(spy, DAY, "TRADES", True, 1), source.start_of(BarRequest(spy, DAY, "TRADES",
                           True, 1), NOW, 5, "D"), NOW)  # fmt: skip
    assert [b.date for b in daily] == ["20260225", "20260226", "20260227", "20260302", "20260303"]
    weekly = source.history(BarRequest(spy, WEEK, "TRADES", True, 1), NOW - timedelta(days=20), NOW)
    assert [b.date for b in weekly] == ["20260211", "20260217", "20260223", "20260302"]  # by first trading day
    night = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
    with pytest.raises(BarRequestError) as info:
        source.history(BarRequest(spy, 5, "TRADES", False, 1), night - timedelta(seconds=30), night)
    assert info.value.code == 162
    with pytest.raises(BarRequestError):
        source.check(BarRequest(OPTION, 60, "TRADES", False, 1))


def test_fx_bars_exist_at_night(source: BarSource, universe: ContractUniverse) -> None:
    eur = next(c for c in universe.underlyings() if c.sec_type == "CASH" and c.symbol == "EUR")
    night = datetime(2026, 3, 8, 3, 0, 2, tzinfo=UTC)  # Saturday night: the Watchdog probe must still get bars
    bars = source.history(BarRequest(eur, 5, "MIDPOINT", False, 1), night - timedelta(seconds=30), night)
    assert len(bars) == 5 and all(0.9 < b.close < 1.3 and b.low <= b.open <= b.high for b in bars)
    with pytest.raises(BarRequestError):
        source.check(BarRequest(eur, 5, "TRADES", False, 1))
