"""Role ``ingest-av``: the AlphaVantage cadence matrix → ``quotes`` / ``ticks`` / ``reference``.

A background task runs the stream scheduler; each call goes through the rate limiter and
the production client, the normalizer turns the reply into records, and the records are
published keyed by symbol. A reply the normalizer cannot read goes to the dead-letter topic
whole (nothing is lost); rejected rows are counted and logged; classified AlphaVantage
errors are counted by the client and logged here. The last good payload per function and
symbol is kept in the ingestion index for failover.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from quanticity.agents.deadletter import DeadLetterSink
from quanticity.app.context import RoleContext
from quanticity.data_ingestion.alphavantage_rest import AlphaVantageClient
from quanticity.data_ingestion.clock import SystemClock
from quanticity.data_ingestion.errors import AlphaVantageError
from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.data_ingestion.rate_limiter import Bucket, RateLimiter, RateLimits
from quanticity.data_ingestion.stream_scheduler import Call, StreamScheduler, build_plan
from quanticity.errors import RecordDecodeError
from quanticity.schemas import (
    Bar,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    Record,
    Tick,
    UnderlyingQuote,
    utc_now,
)
from quanticity.storage.ingestion_index import IngestionIndex

log = structlog.get_logger(__name__)

#: Which topic each record type is published to.
TOPIC_OF: Mapping[type[Record], str] = {
    UnderlyingQuote: "quotes",
    OptionChainSnapshot: "quotes",
    Bar: "ticks",
    Tick: "ticks",
    IndicatorSeries: "reference",
    MacroSeries: "reference",
    NewsItem: "reference",
}


#: On the first reply for a series, publish at most this many points (one regular session
#: of 1-minute points); later replies publish only what is newer than the last published
#: point. AlphaVantage has no "since" parameter: an intraday indicator reply carries ~30 days
#: (20k+ points, >1 MB), which would be re-sent every minute otherwise.
INITIAL_POINTS = 390


class DeltaFilter:
    """Keeps only the points a series has not published yet (per symbol and function/interval)."""

    def __init__(self, initial_points: int = INITIAL_POINTS) -> None:
        self.initial_points = initial_points
        self._watermark: dict[tuple[str, str], datetime] = {}

    def indicator(self, series: IndicatorSeries) -> IndicatorSeries | None:
        """The part of ``series`` newer than what was published; None when nothing is new."""
        key = (series.symbol, f"{series.function}:{series.interval}")
        mark = self._watermark.get(key)
        start = (
            bisect.bisect_right(series.timestamps, mark)
            if mark is not None
            else max(len(series.timestamps) - self.initial_points, 0)
        )
        if start >= len(series.timestamps):
            return None
        self._watermark[key] = series.timestamps[-1]
        if start == 0:
            return series
        return series.model_copy(
            update={
                "timestamps": series.timestamps[start:],
                "values": {name: column[start:] for name, column in series.values.items()},
            }
        )

    def bars(self, bars: list[Bar]) -> list[Bar]:
        """The bars newer than the last published one of their symbol and interval."""

        def key(bar: Bar) -> tuple[str, str]:
            return (bar.symbol, f"bar:{bar.interval_s}")

        # Judged against the marks from before this reply, so the order of its bars does not matter.
        fresh = [b for b in bars if (mark := self._watermark.get(key(b))) is None or b.event_time > mark]
        for bar in fresh:
            self._watermark[key(bar)] = max(self._watermark.get(key(bar), bar.event_time), bar.event_time)
        return fresh


class AlphaVantageIngest:
    """Executes scheduled calls: limiter → client → normalizer → topics."""

    def __init__(self, app: Any, ctx: RoleContext, role: str, client: AlphaVantageClient) -> None:
        self.ctx = ctx
        self.role = role
        self.client = client
        self.topics = {name: ctx.topic(app, name) for name in ("quotes", "ticks", "reference")}
        self.dead_letters = DeadLetterSink(app, ctx, role)
        self.index = IngestionIndex(ctx.redis(), ctx.settings.current.redis.key_prefix)
        self.delta = DeltaFilter()

    async def execute(self, call: Call) -> None:
        """One scheduled call, end to end."""
        params = dict(call.params)
        symbol = call.symbol or params.get("maturity") or call.function
        try:
            reply = await self.client.call(call.function, **params)
        except AlphaVantageError as exc:
            self.ctx.metrics.ingest_failures.labels(source="alphavantage", reason=type(exc).__name__).inc()
            log.warning(
                "alphavantage_call_failed", bucket=call.bucket, function=call.function, symbol=symbol, error=str(exc)
            )
            return
        if reply.is_empty:
            self.ctx.metrics.ingest_records.labels(source="alphavantage", kind="empty_reply").inc()
            return
        settings = self.ctx.settings.current
        context = NormalizeContext(run_id=settings.run_id, mode=settings.mode, ingest_time=utc_now())
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: normalize(call.function, params, reply.body, context=context)
            )
        except RecordDecodeError as error:
            self.ctx.metrics.ingest_failures.labels(source="alphavantage", reason=error.reason).inc()
            await self.dead_letters.route(error, reply.body, key=symbol.encode())
            return
        for rejected in result.rejected_rows:
            self.ctx.metrics.ingest_failures.labels(source="alphavantage", reason=f"row_{rejected.reason}").inc()
        if result.rejected_rows:
            log.warning(
                "alphavantage_rows_rejected",
                function=call.function,
                symbol=symbol,
                count=len(result.rejected_rows),
                first=str(result.rejected_rows[0]),
            )
        await self._publish(result.records)
        await self.index.keep_payload(call.function, symbol, reply.body)
        self.ctx.metrics.bucket_last_success.labels(bucket=call.bucket).set_to_current_time()

    def _new_only(self, records: list[Record]) -> list[Record]:
        bars = self.delta.bars([r for r in records if isinstance(r, Bar)])
        kept: list[Record] = list(bars)
        for record in records:
            if isinstance(record, Bar):
                continue
            if isinstance(record, IndicatorSeries):
                trimmed = self.delta.indicator(record)
                if trimmed is not None:
                    kept.append(trimmed)
                continue
            kept.append(record)
        return kept

    async def _publish(self, records: list[Record]) -> None:
        sends = []
        for record in self._new_only(records):
            topic = TOPIC_OF[type(record)]
            sends.append(self.topics[topic].send(key=record.key.encode(), value=record))
            self.ctx.metrics.topic_produced.labels(topic=topic).inc()
            self.ctx.metrics.ingest_records.labels(source="alphavantage", kind=record.type).inc()
        for pending in await asyncio.gather(*sends):
            await pending  # the broker's acknowledgement: a failed send raises here, loudly


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the cadence-matrix task on ``app``."""
    settings = ctx.settings.current
    cadence = settings.alphavantage.cadence
    plan = build_plan(cadence, settings.watchlists)

    @app.task
    async def run_cadence_matrix() -> None:
        endpoint = ctx.alphavantage_endpoint()
        metrics = ctx.metrics.alphavantage
        per_second = cadence.ceiling_calls_per_min / 60.0
        limits = RateLimits(
            global_bucket=Bucket(per_second, per_second),
            function_default=Bucket(cadence.per_function_qps, cadence.per_function_qps),
        )
        limiter = RateLimiter(ctx.redis(), metrics, limits, key_prefix=settings.redis.key_prefix)
        client = AlphaVantageClient(endpoint.api_key, limiter, metrics, base_url=endpoint.base_url)
        ingest = AlphaVantageIngest(app, ctx, role, client)
        missed = ctx.metrics.scheduler_missed_runs
        scheduler = StreamScheduler(
            plan,
            ingest.execute,
            SystemClock(),
            on_missed=lambda bucket, n: missed.labels(bucket=bucket).inc(n),
            # the local simulator's market trades at any hour; the real service follows US hours
            market_hours=ctx.av_endpoint is None,
        )
        ctx.metrics.scheduler_backlog.set_function(lambda: scheduler.backlog)
        ctx.metrics.av_quota.labels(limit="plan").set(cadence.plan_calls_per_min)
        ctx.metrics.av_quota.labels(limit="ceiling").set(cadence.ceiling_calls_per_min)
        for bucket, spec in cadence.buckets.items():
            if spec.enabled:
                ctx.metrics.bucket_interval.labels(bucket=bucket).set(spec.every_s)
        log.info(
            "cadence_matrix_started",
            jobs=len(plan.jobs),
            calls_per_min=round(plan.total_calls_per_minute(), 1),
            base_url=endpoint.base_url,
        )
        try:
            await scheduler.run(asyncio.Event())
        finally:
            await client.aclose()
