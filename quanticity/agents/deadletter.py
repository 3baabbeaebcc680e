"""Route what cannot be decoded or handled to the dead-letter topic: never dropped, never fatal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from quanticity.app.context import RoleContext
from quanticity.errors import RecordDecodeError
from quanticity.schemas import DeadLetter, stable_id, utc_now
from quanticity.schemas.codec import payload_fields, raw_bytes
from quanticity.topology.registry import DEADLETTER

log = structlog.get_logger(__name__)


def dead_letter_for(
    error: RecordDecodeError,
    value: Any,
    *,
    key: bytes | None,
    partition: int | None,
    offset: int | None,
    run_id: str,
    mode: Any,
) -> DeadLetter:
    """Build the dead-letter record for a payload that failed on ``error.topic``."""
    raw = raw_bytes(value)
    fields = payload_fields(raw)
    now = utc_now()
    return DeadLetter(
        record_id=stable_id(error.topic, partition, offset, fields["payload_sha256"]),
        event_time=now,
        ingest_time=now,
        source="platform",
        run_id=run_id,
        mode=mode,
        original_topic=error.topic,
        original_key=key.decode("utf-8", errors="replace") if key is not None else None,
        partition=partition,
        offset=offset,
        reason=error.reason,
        detail=error.detail,
        **fields,
    )


class DeadLetterSink:
    """Sends dead letters for one role and counts them."""

    def __init__(self, app: Any, ctx: RoleContext, role: str) -> None:
        self.topic = ctx.topic(app, DEADLETTER)
        self.ctx = ctx
        self.role = role

    async def route(
        self,
        error: RecordDecodeError,
        value: Any,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        """Publish the dead letter, count it and log it."""
        settings = self.ctx.settings.current
        letter = dead_letter_for(
            error, value, key=key, partition=partition, offset=offset, run_id=settings.run_id, mode=settings.mode
        )
        await self.topic.send(key=letter.key.encode(), value=letter)
        self.ctx.metrics.deadletter.labels(topic=error.topic, reason=error.reason).inc()
        self.ctx.metrics.topic_produced.labels(topic=DEADLETTER).inc()
        log.warning(
            "dead_lettered",
            role=self.role,
            topic=error.topic,
            reason=error.reason,
            detail=error.detail[:300],
            partition=partition,
            offset=offset,
            correlation_id=letter.record_id,
        )
        return letter


async def guarded(sink: DeadLetterSink, topic: str, event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``handle(event)``; whatever it raises sends the event to the dead-letter topic.

    A bad record must never kill an agent (Faust would restart it and the record would be
    acknowledged unhandled). Decode failures keep their reason; any other exception is
    logged with its traceback, counted in ``agent_errors_total`` and dead-lettered as
    ``handler_error``.
    """
    message = event.message
    try:
        await handle(event)
        return
    except RecordDecodeError as error:
        failure = error
    except Exception as exc:  # noqa: BLE001 - the agent's last line of defence; logged, counted, kept
        sink.ctx.metrics.agent_errors.labels(role=sink.role, topic=topic).inc()
        log.exception(
            "agent_handler_failed", role=sink.role, topic=topic, partition=message.partition, offset=message.offset
        )
        failure = RecordDecodeError(topic, "handler_error", f"{type(exc).__name__}: {exc}")
    await sink.route(failure, event.value, key=message.key, partition=message.partition, offset=message.offset)
