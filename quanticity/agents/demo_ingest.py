"""Role ``ingest-demo``: publishes synthetic underlying quotes to ``quotes`` (sim mode)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from quanticity.app.context import RoleContext
from quanticity.data_ingestion.demo import DemoQuoteGenerator
from quanticity.schemas import utc_now

log = structlog.get_logger(__name__)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the demo publisher timer on ``app``."""
    settings = ctx.settings.current
    quotes_topic = ctx.topic(app, "quotes")
    generator = DemoQuoteGenerator(settings.demo.symbols, settings.run_id, settings.mode)
    produced = ctx.metrics.topic_produced.labels(topic="quotes")
    latency = ctx.metrics.topic_produce_latency.labels(topic="quotes")
    records = ctx.metrics.ingest_records.labels(source="sim", kind="underlying_quote")

    async def send_one(quote: Any) -> None:
        started = time.perf_counter()
        await (await quotes_topic.send(key=quote.symbol.encode(), value=quote))
        latency.observe(time.perf_counter() - started)
        produced.inc()
        records.inc()

    @app.timer(settings.demo.interval_s, name="demo-quotes")
    async def publish_demo_quotes() -> None:
        quotes = generator.next_quotes(utc_now())
        results = await asyncio.gather(*(send_one(q) for q in quotes), return_exceptions=True)
        for quote, result in zip(quotes, results, strict=True):
            if isinstance(result, KafkaError | OSError | asyncio.TimeoutError):
                ctx.metrics.ingest_failures.labels(source="sim", reason="broker").inc()
                ctx.metrics.broker_errors.labels(kind="produce").inc()
                log.error(
                    "demo_quote_not_published", symbol=quote.symbol, error=repr(result), correlation_id=quote.record_id
                )
            elif isinstance(result, BaseException):
                raise result
