"""The AlphaVantage cadence matrix: plan the calls, then dispatch them on time.

``build_plan`` turns the settings into jobs (one per bucket and symbol) and can say how many
calls per minute each bucket costs (``quanticity av schedule``). ``StreamScheduler`` runs
the jobs on an injected clock: each symbol of a rotating bucket gets its own phase so the
calls spread evenly, a late job skips the runs it missed (counted, never bunched up), and at
most ``max_concurrency`` calls are in flight. The per-function 8 QPS and the global ceiling
are the rate limiter's job, downstream of the scheduler.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from quanticity.data_ingestion.schedule_config import BucketSettings, CadenceSettings, ExpirySelection

log = structlog.get_logger(__name__)

EASTERN = ZoneInfo("America/New_York")
_MARKET_OPEN, _MARKET_CLOSE = time(4, 0), time(20, 0)  # extended hours, as TIME_SERIES_INTRADAY serves
_NIGHT_RUN = time(20, 30)

# Required parameters per indicator (reference §5): time_period, series_type, both or none.
_NEEDS_PERIOD = {
    "SMA",
    "EMA",
    "WMA",
    "DEMA",
    "TEMA",
    "RSI",
    "BBANDS",
    "WILLR",
    "ADX",
    "CCI",
    "MFI",
    "MINUS_DI",
    "PLUS_DI",
    "AROON",
}
_NEEDS_SERIES = {"SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI", "BBANDS", "MACD"}


@dataclass(frozen=True)
class Call:
    """One request to make: function and query parameters (without the API key)."""

    bucket: str
    function: str
    params: tuple[tuple[str, str], ...]

    @property
    def symbol(self) -> str | None:
        return dict(self.params).get("symbol") or dict(self.params).get("tickers")


@dataclass
class Job:
    """A recurring unit of the plan: one bucket × one symbol (or one macro series)."""

    bucket: str
    settings: BucketSettings
    symbol: str | None
    offset_s: float
    base_params: tuple[tuple[str, str], ...] = ()
    rotation: list[str] = field(default_factory=list)  # indicator round-robin
    _turn: int = 0

    @property
    def calls_per_run(self) -> int:
        return 2 if self.settings.expirations == "0dte_1dte" else 1

    def calls(self, now: datetime, cadence: CadenceSettings) -> list[Call]:
        """The calls of one run at ``now`` (expirations resolved, next indicator picked)."""
        function = self.settings.function
        params = dict(self.base_params)
        if function == "MACRO":
            function = params.pop("function")
        if function == "INDICATORS":
            function = self.rotation[self._turn % len(self.rotation)]
            self._turn += 1
            params.update(indicator_params(function, cadence))
        if self.symbol is not None:
            params.setdefault("symbol", self.symbol)
        if function in ("REALTIME_OPTIONS", "HISTORICAL_OPTIONS") and self.settings.expirations != "all":
            return [
                Call(self.bucket, function, tuple(sorted({**params, "expiration": d.isoformat()}.items())))
                for d in expirations_for(self.settings.expirations, now)
            ]
        return [Call(self.bucket, function, tuple(sorted(params.items())))]


def indicator_params(function: str, cadence: CadenceSettings) -> dict[str, str]:
    """Query parameters an indicator needs (reference §5)."""
    params = {"interval": cadence.indicator_interval}
    if function in _NEEDS_PERIOD:
        params["time_period"] = str(cadence.indicator_time_period)
    if function in _NEEDS_SERIES:
        params["series_type"] = "close"
    return params


def trading_day_on_or_after(day: date) -> date:
    """The first weekday on or after ``day`` (exchange holidays are not modelled)."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


#: Daily index and ETF options stop trading at 16:00 ET on their expiration day.
EXPIRY_CUTOFF = time(16, 0)


def expirations_for(selection: ExpirySelection, now: datetime) -> list[date]:
    """0DTE / 1DTE expiration dates for ``now`` (US/Eastern trading days).

    From 16:00 ET today's expiration has expired: "0DTE" is then the next trading day's
    (the one the next session trades as 0DTE) and "1DTE" the one after, so no call is spent
    on a chain that can no longer trade.
    """
    local = now.astimezone(EASTERN)
    today = local.date() if local.time() < EXPIRY_CUTOFF else local.date() + timedelta(days=1)
    today = trading_day_on_or_after(today)
    next_day = trading_day_on_or_after(today + timedelta(days=1))
    return {"0dte": [today], "1dte": [next_day], "0dte_1dte": [today, next_day]}.get(selection, [])


@dataclass
class Plan:
    """Every job of the cadence matrix, plus the pairs delegated to other sources."""

    jobs: list[Job]
    delegated: list[tuple[str, str, str, str]]  # (bucket, function, symbol, served_by)
    cadence: CadenceSettings

    def calls_per_minute(self) -> dict[str, float]:
        """Planned calls per minute by bucket (night backfills spread over 24 h)."""
        per_bucket: dict[str, float] = {}
        for job in self.jobs:
            rate = job.calls_per_run * 60.0 / job.settings.every_s
            per_bucket[job.bucket] = per_bucket.get(job.bucket, 0.0) + rate
        return per_bucket

    def total_calls_per_minute(self) -> float:
        return sum(self.calls_per_minute().values())


def build_plan(cadence: CadenceSettings, watchlists: dict[str, list[str]]) -> Plan:
    """Expand the buckets into jobs.

    Raises:
        ValueError: a bucket names an unknown watchlist, or the plan exceeds the ceiling.
    """
    etfs = set(watchlists.get("etfs", []))
    delegated_pairs = {(a.function, a.symbol): a.served_by for a in cadence.alternate_sources}
    jobs: list[Job] = []
    delegated: list[tuple[str, str, str, str]] = []
    for bucket, spec in cadence.buckets.items():
        if not spec.enabled:
            continue
        if spec.function == "MACRO":
            series = _macro_series(cadence)
            for i, params in enumerate(series):
                offset = _spread(spec) * i / len(series) if spec.rotate else 0.0
                jobs.append(Job(bucket, spec, None, offset, tuple(sorted(params.items()))))
            continue
        symbols = _symbols(bucket, spec, watchlists, etfs)
        for i, symbol in enumerate(symbols):
            function = spec.function
            served_by = delegated_pairs.get((function, symbol)) or delegated_pairs.get(("*", symbol))
            if served_by is not None:
                delegated.append((bucket, function, symbol, served_by))
                continue
            offset = _spread(spec) * i / len(symbols) if spec.rotate else 0.0
            params = dict(spec.params)
            if function == "NEWS_SENTIMENT":
                params["tickers"] = symbol
                job_symbol = None
            else:
                job_symbol = symbol
            rotation = (
                list(
                    cadence.indicators[i % len(cadence.indicators) :]
                    + cadence.indicators[: i % len(cadence.indicators)]
                )
                if function == "INDICATORS" and cadence.indicators
                else []
            )
            if function == "INDICATORS" and not rotation:
                raise ValueError(f"bucket {bucket}: INDICATORS needs alphavantage.cadence.indicators")
            jobs.append(Job(bucket, spec, job_symbol, offset, tuple(sorted(params.items())), rotation))
    plan = Plan(jobs, delegated, cadence)
    total = plan.total_calls_per_minute()
    if total > cadence.ceiling_calls_per_min:
        raise ValueError(
            f"the cadence matrix plans {total:.1f} calls/min, above the ceiling of {cadence.ceiling_calls_per_min}"
        )
    return plan


def _spread(spec: BucketSettings) -> float:
    return min(spec.spread_s or spec.every_s, spec.every_s)


def _symbols(bucket: str, spec: BucketSettings, watchlists: dict[str, list[str]], etfs: set[str]) -> list[str]:
    symbols: list[str] = []
    for name in spec.watchlists:
        if name not in watchlists:
            raise ValueError(f"bucket {bucket}: unknown watchlist {name!r} (known: {sorted(watchlists)})")
        symbols.extend(s for s in watchlists[name] if s not in symbols)
    if spec.exclude_etfs:
        symbols = [s for s in symbols if s not in etfs]
    return symbols


def _macro_series(cadence: CadenceSettings) -> list[dict[str, str]]:
    series: list[dict[str, str]] = []
    for function in cadence.macro_functions:
        if function == "TREASURY_YIELD":
            series.extend({"function": function, "maturity": m} for m in cadence.macro_treasury_maturities)
        else:
            series.append({"function": function})
    return series


def in_window(window: str, now: datetime) -> bool:
    """Whether a bucket with ``window`` may run at ``now``."""
    if window == "always":
        return True
    local = now.astimezone(EASTERN)
    if window == "night":
        return True  # night jobs are scheduled at 20:30 ET by next_window_start; never refused late
    return local.weekday() < 5 and _MARKET_OPEN <= local.time() < _MARKET_CLOSE


def next_window_start(window: str, now: datetime) -> datetime:
    """The next time at or after ``now`` when ``window`` is open."""
    local = now.astimezone(EASTERN)
    if window == "night":
        target = datetime.combine(local.date(), _NIGHT_RUN, EASTERN)
        return target if target >= local else target + timedelta(days=1)
    if in_window(window, now):
        return now
    day = local.date() if local.time() < _MARKET_OPEN else local.date() + timedelta(days=1)
    return datetime.combine(trading_day_on_or_after(day), _MARKET_OPEN, EASTERN)


class Clock(Protocol):
    """Time source of the scheduler (real, or compressed for the soak)."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class StreamScheduler:
    """Dispatches the plan's calls on time with bounded concurrency.

    Args:
        plan: what to call and how often.
        execute: performs one call (client + normalize + publish); its exceptions are the
            caller's to count — the scheduler logs and keeps going.
        clock: time source.
        on_missed: told ``(bucket, runs)`` when a late job skips runs.
        market_hours: hold ``market`` buckets outside 04:00–20:00 ET weekdays. The simulated
            market trades at any hour, so sim mode turns this off and data flows at night too.
    """

    def __init__(
        self,
        plan: Plan,
        execute: Callable[[Call], Awaitable[None]],
        clock: Clock,
        on_missed: Callable[[str, int], None] | None = None,
        *,
        market_hours: bool = True,
    ) -> None:
        self.plan = plan
        self.execute = execute
        self.clock = clock
        self.on_missed = on_missed
        self.market_hours = market_hours
        self._semaphore = asyncio.Semaphore(plan.cadence.max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: set[Call] = set()  # dispatched, not yet holding a slot
        self._seq = itertools.count()
        self.dispatched = 0

    @property
    def backlog(self) -> int:
        """Calls dispatched but not finished (waiting for a slot or in flight)."""
        return len(self._tasks)

    def _window(self, job: Job) -> str:
        return "always" if job.settings.window == "market" and not self.market_hours else job.settings.window

    def _first_due(self, job: Job, start: datetime) -> datetime:
        first = next_window_start(self._window(job), start)
        return first + timedelta(seconds=job.offset_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then wait for the calls in flight.

        Cancelled (the role stops), it cancels the calls in flight and waits for them before
        it ends, so its caller may close the HTTP client after it: a call cut off by a closed
        client used to end as a ``scheduled_call_failed`` error at every Ctrl-C.
        """
        try:
            await self._run(stop)
        except asyncio.CancelledError:
            in_flight = list(self._tasks)
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise

    async def _run(self, stop: asyncio.Event) -> None:
        start = self.clock.now()
        heap: list[tuple[datetime, int, Job]] = [
            (self._first_due(j, start), next(self._seq), j) for j in self.plan.jobs
        ]
        heapq.heapify(heap)
        while heap and not stop.is_set():
            due, _, job = heap[0]
            wait = (due - self.clock.now()).total_seconds()
            if wait > 0:
                stopper = asyncio.ensure_future(stop.wait())
                sleeper = asyncio.ensure_future(self.clock.sleep(wait))
                try:
                    await asyncio.wait({stopper, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopper.cancel()
                    sleeper.cancel()
                continue
            heapq.heappop(heap)
            now = self.clock.now()
            if in_window(self._window(job), now):
                for call in job.calls(now, self.plan.cadence):
                    self._spawn(call)
                heapq.heappush(heap, (self._next_due(job, due, now), next(self._seq), job))
            else:
                heapq.heappush(heap, (self._first_due(job, now), next(self._seq), job))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _next_due(self, job: Job, due: datetime, now: datetime) -> datetime:
        period = timedelta(seconds=job.settings.every_s)
        following = due + period
        if following <= now:
            missed = int((now - following) / period) + 1
            following += missed * period
            if self.on_missed is not None:
                self.on_missed(job.bucket, missed)
        return following

    def _spawn(self, call: Call) -> None:
        if call in self._waiting:
            # The same request is still queued for a slot (the process is behind): a second
            # copy would fetch the same data later still. Skip it and report the missed run,
            # so the backlog stays bounded by the number of distinct calls.
            if self.on_missed is not None:
                self.on_missed(call.bucket, 1)
            return
        self._waiting.add(call)
        task = asyncio.ensure_future(self._guarded(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.dispatched += 1

    async def _guarded(self, call: Call) -> None:
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting.discard(call)
        try:
            await self.execute(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed call must not stop the matrix; execute counts it
            log.error(
                "scheduled_call_failed",
                bucket=call.bucket,
                function=call.function,
                symbol=call.symbol,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            self._semaphore.release()


def describe_plan(plan: Plan) -> Iterable[str]:
    """Lines for ``quanticity av schedule``."""
    per_bucket = plan.calls_per_minute()
    yield f"{'BUCKET':<28} {'FUNCTION':<20} {'SYMBOLS':>7} {'EVERY':>8} {'CALLS/MIN':>10}"
    for bucket, spec in plan.cadence.buckets.items():
        if bucket not in per_bucket:
            continue
        count = sum(1 for j in plan.jobs if j.bucket == bucket)
        yield f"{bucket:<28} {spec.function:<20} {count:>7} {spec.every_s:>7.0f}s {per_bucket[bucket]:>10.2f}"
    total = plan.total_calls_per_minute()
    yield (
        f"TOTAL {total:.2f} calls/min planned across {len(plan.jobs)} jobs "
        f"(ceiling {plan.cadence.ceiling_calls_per_min}/min, plan quota {plan.cadence.plan_calls_per_min}/min)"
    )
    for bucket, function, symbol, served_by in plan.delegated:
        yield f"  not from AlphaVantage: {function} {symbol} ({bucket}) → served by {served_by}"
