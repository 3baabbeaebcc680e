"""The ingest-av delta filter: a series is published once, then only its new points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quanticity.agents.ingest_av import DeltaFilter
from quanticity.schemas import Bar, IndicatorSeries

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _series(minutes: range) -> IndicatorSeries:
    stamps = [T0 + timedelta(minutes=m) for m in minutes]
    return IndicatorSeries(
        symbol="SPY",
        function="SMA",
        interval="1min",
        timestamps=stamps,
        values={"SMA": [float(m) for m in minutes]},
        record_id=f"r{minutes.stop}",
        event_time=stamps[-1],
        source="alphavantage",
        run_id="t",
        mode="sim",
    )


def _bar(minute: int) -> Bar:
    return Bar(
        symbol="QQQ",
        interval_s=60,
        open=1,
        high=2,
        low=0.5,
        close=1.5,
        volume=10,
        record_id=f"b{minute}",
        event_time=T0 + timedelta(minutes=minute),
        source="alphavantage",
        run_id="t",
        mode="sim",
    )


def test_first_reply_is_capped_then_only_new_points_pass() -> None:
    """1000 points → the newest 390; the next reply (shifted by 2) → just the 2 new points; a repeat → nothing."""
    delta = DeltaFilter(initial_points=390)
    first = delta.indicator(_series(range(0, 1000)))
    assert first is not None and len(first.timestamps) == 390 and first.values["SMA"][0] == 610.0
    second = delta.indicator(_series(range(2, 1002)))
    assert second is not None and second.values["SMA"] == [1000.0, 1001.0]
    assert delta.indicator(_series(range(2, 1002))) is None


def test_bars_already_published_are_dropped() -> None:
    """A compact intraday reply overlapping the last one yields only the bars after it."""
    delta = DeltaFilter()
    assert [b.record_id for b in delta.bars([_bar(m) for m in range(5)])] == ["b0", "b1", "b2", "b3", "b4"]
    assert [b.record_id for b in delta.bars([_bar(m) for m in range(3, 8)])] == ["b5", "b6", "b7"]
    assert delta.bars([_bar(6)]) == []
