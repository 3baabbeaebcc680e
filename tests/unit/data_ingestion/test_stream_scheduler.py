"""The cadence matrix: planning (calls/min, delegation, expirations) and on-time dispatch."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from quanticity.data_ingestion.clock import VirtualClock
from quanticity.data_ingestion.schedule_config import BucketSettings, CadenceSettings
from quanticity.data_ingestion.stream_scheduler import (
    Call,
    StreamScheduler,
    build_plan,
    expirations_for,
    in_window,
    next_window_start,
)
from quanticity.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
# Tuesday 2026-11-24 10:00 US/Eastern (15:00 UTC): inside the market window.
TUESDAY_10AM = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _repo_plan() -> tuple[CadenceSettings, dict[str, list[str]]]:
    settings = load_settings(ROOT / "config", env_file=None)
    return settings.alphavantage.cadence, settings.watchlists


def test_repository_plan_stays_under_the_ceiling_and_names_every_bucket() -> None:
    """The shipped matrix plans ≤ 480 calls/min and every bucket of the issue is present."""
    cadence, watchlists = _repo_plan()
    plan = build_plan(cadence, watchlists)
    per_bucket = plan.calls_per_minute()
    assert plan.total_calls_per_minute() <= cadence.ceiling_calls_per_min <= cadence.plan_calls_per_min
    # 3 index ETFs × (0DTE + 1DTE) every 12 s
    assert per_bucket["index_options_0dte_1dte"] == pytest.approx(3 * 2 * 5)
    assert per_bucket["index_intraday"] == pytest.approx(3)
    assert per_bucket["extended_options"] == pytest.approx(15 * 60 / 45)
    assert per_bucket["indicators"] == pytest.approx(18)  # one per symbol per minute, SPX derived
    assert per_bucket["news"] == pytest.approx(15 / 10)  # single names only, every 10 min


def test_spx_is_never_requested_from_alphavantage() -> None:
    """SPX options/intraday/indicators are delegated (reference §11): no job asks for them."""
    cadence, watchlists = _repo_plan()
    plan = build_plan(cadence, watchlists)
    assert all(job.symbol != "SPX" for job in plan.jobs)
    delegated = {(function, symbol, source) for _, function, symbol, source in plan.delegated}
    assert ("REALTIME_OPTIONS", "SPX", "ibkr") in delegated
    assert ("TIME_SERIES_INTRADAY", "SPX", "ibkr") in delegated


def test_news_skips_etfs() -> None:
    """NEWS_SENTIMENT runs for single names, never for the ETFs."""
    cadence, watchlists = _repo_plan()
    plan = build_plan(cadence, watchlists)
    tickers = {dict(job.base_params)["tickers"] for job in plan.jobs if job.bucket == "news"}
    assert tickers == set(watchlists["extended"]) and not tickers & set(watchlists["etfs"])


def test_a_plan_over_the_ceiling_is_refused() -> None:
    """A matrix that would exceed the ceiling fails at planning time, naming the numbers."""
    cadence = CadenceSettings(
        ceiling_calls_per_min=10, buckets={"hot": BucketSettings(function="GLOBAL_QUOTE", watchlists=["w"], every_s=1)}
    )
    with pytest.raises(ValueError, match="60.0 calls/min, above the ceiling of 10"):
        build_plan(cadence, {"w": ["SPY"]})


def test_unknown_watchlist_is_named() -> None:
    """A bucket naming a watchlist that does not exist is a clear error."""
    cadence = CadenceSettings(buckets={"b": BucketSettings(function="GLOBAL_QUOTE", watchlists=["nope"], every_s=60)})
    with pytest.raises(ValueError, match="unknown watchlist 'nope'"):
        build_plan(cadence, {"w": ["SPY"]})


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), [date(2026, 11, 24), date(2026, 11, 25)]),  # Tuesday
        (datetime(2026, 11, 27, 15, 0, tzinfo=UTC), [date(2026, 11, 27), date(2026, 11, 30)]),  # Friday → Monday
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), [date(2026, 11, 30), date(2026, 12, 1)]),  # Saturday
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), [date(2026, 11, 25), date(2026, 11, 26)]),  # 22:00 ET Tuesday
        (datetime(2026, 11, 24, 20, 59, tzinfo=UTC), [date(2026, 11, 24), date(2026, 11, 25)]),  # 15:59 ET
        (datetime(2026, 11, 24, 21, 0, tzinfo=UTC), [date(2026, 11, 25), date(2026, 11, 26)]),  # 16:00 ET: expired
        (datetime(2026, 11, 27, 21, 30, tzinfo=UTC), [date(2026, 11, 30), date(2026, 12, 1)]),  # Friday after close
    ],
)
def test_0dte_and_1dte_follow_the_eastern_trading_day(now: datetime, expected: list[date]) -> None:
    """0DTE/1DTE are the next two weekday expirations in US/Eastern still trading (until 16:00 ET)."""
    assert expirations_for("0dte_1dte", now) == expected


def test_indicator_round_robin_covers_every_indicator_with_its_parameters() -> None:
    """19 runs of one symbol's indicator job ask for all 19 indicators with their required params."""
    cadence, watchlists = _repo_plan()
    plan = build_plan(cadence, watchlists)
    job = next(j for j in plan.jobs if j.bucket == "indicators" and j.symbol == "AAPL")
    calls = [job.calls(TUESDAY_10AM, cadence)[0] for _ in range(19)]
    assert sorted(c.function for c in calls) == sorted(cadence.indicators)
    by_function = {c.function: dict(c.params) for c in calls}
    assert by_function["SMA"]["time_period"] == "14" and by_function["SMA"]["series_type"] == "close"
    assert "time_period" not in by_function["OBV"] and "series_type" not in by_function["VWAP"]
    assert by_function["MACD"]["series_type"] == "close" and "time_period" not in by_function["MACD"]


def test_market_window_and_its_next_opening() -> None:
    """Market buckets run 04:00–20:00 ET on weekdays; after hours they wait for the next open."""
    assert in_window("market", TUESDAY_10AM)
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert not in_window("market", saturday)
    assert next_window_start("market", saturday) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Mon 04:00 ET


async def _run_for(
    plan_minutes: float, cadence: CadenceSettings, watchlists: dict[str, list[str]], start: datetime = TUESDAY_10AM
) -> tuple[list[tuple[datetime, Call]], dict[str, int]]:
    clock = VirtualClock(start)
    stop = asyncio.Event()
    seen: list[tuple[datetime, Call]] = []
    missed: Counter[str] = Counter()
    end = start + timedelta(minutes=plan_minutes)

    async def execute(call: Call) -> None:
        if clock.now() >= end:
            stop.set()
            return
        seen.append((clock.now(), call))

    scheduler = StreamScheduler(
        build_plan(cadence, watchlists), execute, clock, on_missed=lambda bucket, n: missed.update({bucket: n})
    )
    await asyncio.wait_for(scheduler.run(stop), 30)
    return seen, dict(missed)


async def test_ten_simulated_minutes_dispatch_the_planned_calls_and_never_burst_over_the_ceiling() -> None:
    """Over 10 virtual minutes each bucket gets its planned count and no 60 s window exceeds 480."""
    cadence, watchlists = _repo_plan()
    seen, missed = await _run_for(10, cadence, watchlists)
    per_bucket = Counter(call.bucket for _, call in seen)
    assert per_bucket["index_options_0dte_1dte"] == pytest.approx(300, abs=6)
    assert per_bucket["extended_options"] == pytest.approx(200, abs=15)
    assert per_bucket["indicators"] == pytest.approx(180, abs=18)
    assert "backfill_intraday" not in per_bucket  # night only
    times = sorted(t for t, _ in seen)
    peak = max(sum(1 for u in times[i:] if u - t < timedelta(seconds=60)) for i, t in enumerate(times))
    assert peak <= cadence.ceiling_calls_per_min
    assert missed == {}
    functions = {call.function for _, call in seen if call.bucket == "indicators"}
    assert functions == set(cadence.indicators)


async def test_a_stalled_clock_skips_missed_runs_instead_of_bunching_them() -> None:
    """After a 5-minute stall the job runs once, and the skipped runs are reported."""
    cadence = CadenceSettings(
        buckets={"q": BucketSettings(function="GLOBAL_QUOTE", watchlists=["w"], every_s=10, window="always")}
    )
    clock = VirtualClock(TUESDAY_10AM)
    stop = asyncio.Event()
    stamps: list[datetime] = []
    missed: list[int] = []

    async def execute(call: Call) -> None:
        stamps.append(clock.now())
        if len(stamps) == 2:
            clock.t += timedelta(minutes=5)  # the process was stalled
        if len(stamps) == 4:
            stop.set()

    await asyncio.wait_for(
        StreamScheduler(
            build_plan(cadence, {"w": ["SPY"]}), execute, clock, on_missed=lambda _b, n: missed.append(n)
        ).run(stop),
        10,
    )
    assert missed == [30]
    assert stamps[3] - stamps[2] == timedelta(seconds=10)


async def test_an_overloaded_process_keeps_one_queued_copy_per_call() -> None:
    """When calls take longer than their period, the backlog stays at one waiting copy per call."""
    cadence = CadenceSettings(
        max_concurrency=1,
        buckets={"q": BucketSettings(function="GLOBAL_QUOTE", watchlists=["w"], every_s=1, window="always")},
    )
    clock = VirtualClock(TUESDAY_10AM)
    stop = asyncio.Event()
    missed: list[int] = []
    backlog: list[int] = []
    scheduler: StreamScheduler

    async def execute(call: Call) -> None:
        backlog.append(scheduler.backlog)
        await asyncio.sleep(0.05)
        if len(backlog) == 5:
            stop.set()

    scheduler = StreamScheduler(
        build_plan(cadence, {"w": ["SPY", "QQQ"]}), execute, clock, on_missed=lambda _b, n: missed.append(n)
    )
    # The virtual clock jumps on every sleep: many periods pass while one call runs.
    await asyncio.wait_for(scheduler.run(stop), 10)
    assert max(backlog) <= 3  # one in flight + one waiting per symbol
    assert sum(missed) > 20


async def test_cancelling_the_scheduler_cancels_its_calls_in_flight_before_it_ends() -> None:
    """A stopping role cancels the scheduler and then closes the HTTP client: no call may still
    be using the client then (each used to fail with "client has been closed", logged as an error)."""
    cadence = CadenceSettings(
        buckets={"q": BucketSettings(function="GLOBAL_QUOTE", watchlists=["w"], every_s=60, window="always")},
    )
    started = asyncio.Event()
    outcome: list[str] = []

    async def execute(call: Call) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)  # a request waiting on the server
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    scheduler = StreamScheduler(build_plan(cadence, {"w": ["SPY"]}), execute, VirtualClock(TUESDAY_10AM))
    with structlog.testing.capture_logs() as logs:
        runner = asyncio.ensure_future(scheduler.run(asyncio.Event()))
        await asyncio.wait_for(started.wait(), 5)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(runner, 5)  # a call left running would hold it: TimeoutError
        # ended: the role may close the client now, nothing uses it any more
        assert outcome == ["cancelled"] and scheduler.backlog == 0
        await asyncio.sleep(0)
    assert not [e for e in logs if e["event"] == "scheduled_call_failed"]


async def test_macro_jobs_call_their_own_function() -> None:
    """A MACRO bucket expands into one call per series, each with its function and maturity."""
    cadence = CadenceSettings(
        macro_functions=["CPI", "TREASURY_YIELD"],
        macro_treasury_maturities=["2year", "10year"],
        buckets={"macro": BucketSettings(function="MACRO", every_s=3600, window="always")},
    )
    plan = build_plan(cadence, {})
    calls = [job.calls(TUESDAY_10AM, cadence)[0] for job in plan.jobs]
    assert sorted((c.function, dict(c.params).get("maturity")) for c in calls) == [
        ("CPI", None),
        ("TREASURY_YIELD", "10year"),
        ("TREASURY_YIELD", "2year"),
    ]
    assert all("function" not in dict(c.params) for c in calls)


async def test_without_market_hours_a_market_bucket_runs_at_night() -> None:
    """Sim mode (market_hours=False) runs market buckets at 02:00 ET; live mode waits for 04:00."""
    cadence = CadenceSettings(buckets={"q": BucketSettings(function="GLOBAL_QUOTE", watchlists=["w"], every_s=60)})
    night = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 02:00 ET
    for market_hours, expected in ((False, night), (True, datetime(2026, 11, 24, 9, 0, tzinfo=UTC))):
        clock = VirtualClock(night)
        stop = asyncio.Event()
        stamps: list[datetime] = []

        async def execute(
            call: Call, stamps: list[datetime] = stamps, clock: VirtualClock = clock, stop: asyncio.Event = stop
        ) -> None:
            stamps.append(clock.now())
            stop.set()

        await asyncio.wait_for(
            StreamScheduler(build_plan(cadence, {"w": ["SPY"]}), execute, clock, market_hours=market_hours).run(stop),
            10,
        )
        assert stamps == [expected]
