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
from collections.abc import Mapping
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


class AlphaVantageIngest:
    """Executes scheduled calls: limiter → client → normalizer → topics."""

    def __init__(self, app: Any, ctx: RoleContext, role: str, client: AlphaVantageClient) -> None:
        self.ctx = ctx
        self.role = role
        self.client = client
        self.topics = {name: ctx.topic(app, name) for name in ("quotes", "ticks", "reference")}
        self.dead_letters = DeadLetterSink(app, ctx, role)
        self.index = IngestionIndex(ctx.redis(), ctx.settings.current.redis.key_prefix)

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

    async def _publish(self, records: list[Record]) -> None:
        sends = []
        for record in records:
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
            plan, ingest.execute, SystemClock(), on_missed=lambda bucket, n: missed.labels(bucket=bucket).inc(n)
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
