"""Topic administration: create the registry's topics, describe them, compute group lag."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code

from quanticity.errors import BrokerUnavailableError
from quanticity.topology.registry import TopicRegistry

log = structlog.get_logger(__name__)


@dataclass
class TopicInfo:
    """What the broker reports about one topic."""

    name: str
    logical: str | None
    partitions: int
    end_offsets: dict[int, int]
    group_lag: dict[str, int] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(self.end_offsets.values())


async def _admin(bootstrap: str, timeout_s: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
    except (KafkaConnectionError, OSError) as exc:
        await admin.close()
        raise BrokerUnavailableError(bootstrap, str(exc) or type(exc).__name__) from exc
    return admin


async def ensure_topics(
    bootstrap: str, registry: TopicRegistry, replication_factor: int = 1, timeout_s: float = 10.0
) -> list[str]:
    """Create every registry topic that does not exist yet.

    Returns:
        The broker names of the topics that were created now.

    Raises:
        BrokerUnavailableError: the broker does not answer.
    """
    admin = await _admin(bootstrap, timeout_s)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                registry.broker_name(spec.name),
                registry.partitions(spec.name),
                replication_factor,
                topic_configs=spec.config(),
            )
            for spec in registry
            if registry.broker_name(spec.name) not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created = []
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code == 0:
                created.append(name)
                continue
            error = for_code(code)
            if error is TopicAlreadyExistsError:
                continue  # another worker won the race: the topic exists, which is the goal
            raise BrokerUnavailableError(bootstrap, f"creating topic {name} failed: {error.__name__}")
        log.info("topics_created", topics=created)
        return created
    finally:
        await admin.close()


async def describe_topics(
    bootstrap: str, registry: TopicRegistry, *, include_internal: bool = False, timeout_s: float = 10.0
) -> list[TopicInfo]:
    """Partitions, end offsets and per-consumer-group lag of the topics on the broker.

    Args:
        bootstrap: the broker.
        registry: names the logical topics.
        include_internal: also list topics the registry does not declare (changelogs…).
        timeout_s: request timeout.

    Raises:
        BrokerUnavailableError: the broker does not answer.
    """
    admin = await _admin(bootstrap, timeout_s)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await consumer.start()
        metadata = await admin.describe_topics()
        infos: list[TopicInfo] = []
        for topic in metadata:
            name = topic["topic"]
            logical = registry.logical_name(name)
            if logical is None and not include_internal:
                continue
            partitions = [p["partition"] for p in topic["partitions"]]
            tps = [TopicPartition(name, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            infos.append(TopicInfo(name, logical, len(partitions), {tp.partition: off for tp, off in ends.items()}))
        by_name = {info.name: info for info in infos}
        all_tps = [TopicPartition(i.name, p) for i in infos for p in i.end_offsets]
        for group in await admin.list_consumer_groups():
            group_id = group[0]
            try:
                # Explicit partitions: Tansu mis-encodes the "all partitions" form of OffsetFetch.
                offsets = await admin.list_consumer_group_offsets(group_id, partitions=all_tps)
            except KafkaError as exc:
                log.warning("group_offsets_unavailable", group=group_id, error=type(exc).__name__)
                continue
            for tp, meta in offsets.items():
                info = by_name.get(tp.topic)
                if info is None or meta.offset < 0:
                    continue
                lag = max(info.end_offsets.get(tp.partition, 0) - meta.offset, 0)
                info.group_lag[group_id] = info.group_lag.get(group_id, 0) + lag
        order = {spec.name: i for i, spec in enumerate(registry)}
        infos.sort(key=lambda i: (i.logical is None, order.get(i.logical or "", 0), i.name))
        return infos
    except (KafkaConnectionError, OSError) as exc:
        raise BrokerUnavailableError(bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()
        await admin.close()
