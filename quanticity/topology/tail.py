"""``quanticity tail``: read a topic without joining a consumer group, decode, print."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from quanticity.errors import BrokerUnavailableError, RecordDecodeError
from quanticity.schemas.codec import decode_record, payload_fields
from quanticity.topology.registry import TopicRegistry


async def tail_topic(
    bootstrap: str,
    registry: TopicRegistry,
    topic: str,
    emit: Callable[[dict[str, Any]], None],
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Emit every record of ``topic`` as a dict (invalid ones as an ``_invalid`` entry).

    Args:
        bootstrap: the broker.
        registry: topic names and record types.
        topic: logical topic name.
        emit: receives one dict per record.
        from_beginning: start at the oldest offset; else only new records.
        limit: stop after this many records.
        idle_timeout_s: stop when no record arrived for this long.

    Returns:
        How many records were emitted.

    Raises:
        BrokerUnavailableError: the broker does not answer or the topic does not exist.
    """
    spec = registry.spec(topic)
    name = registry.broker_name(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        raise BrokerUnavailableError(bootstrap, str(exc)) from exc
    count = 0
    try:
        partitions = consumer.partitions_for_topic(name) or await _fetch_partitions(consumer, name)
        if not partitions:
            raise BrokerUnavailableError(bootstrap, f"topic {name} does not exist on the broker")
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        while limit is None or count < limit:
            batch = await consumer.getmany(timeout_ms=500, max_records=limit - count if limit else None)
            if not batch:
                if idle_timeout_s is not None and loop.time() - last_seen >= idle_timeout_s:
                    break
                continue
            last_seen = loop.time()
            for tp, messages in batch.items():
                for message in messages:
                    emit(_render(topic, spec.models, tp.partition, message))
                    count += 1
                    if limit is not None and count >= limit:
                        return count
        return count
    finally:
        await consumer.stop()


async def _fetch_partitions(consumer: AIOKafkaConsumer, name: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(name) or set()


def _render(topic: str, models: Any, partition: int, message: Any) -> dict[str, Any]:
    where = {
        "_partition": partition,
        "_offset": message.offset,
        "_key": message.key.decode("utf-8", errors="replace") if message.key else None,
    }
    try:
        record = decode_record(topic, message.value, models)
    except RecordDecodeError as error:
        return {
            **where,
            "_invalid": error.reason,
            "_detail": error.detail,
            "_payload_preview": payload_fields(message.value or b"")["payload_preview"],
        }
    return {**where, **record.model_dump(mode="json")}
