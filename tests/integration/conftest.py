"""Integration fixtures: settings bound to the session stack with a private namespace."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from quanticity.app.platform import Platform
from quanticity.app.roles import role
from quanticity.observability.metrics import Metrics
from quanticity.settings import Settings, SettingsHolder
from quanticity.topology.broker_profile import producer_options
from quanticity.topology.registry import TopicRegistry
from quanticity.topology.tail import tail_topic
from tests.conftest import OPENSSL_DIR, Stack, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def make_settings(stack: Stack, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the session stack with a fresh topic/group/key prefix per call."""

    def build(**overrides: object) -> Settings:
        prefix = unique()
        base: dict[str, object] = {
            "kafka": {
                "bootstrap": stack.bootstrap,
                "topic_prefix": prefix,
                "profile": "production" if stack.kind == "containers" else "dev",
            },
            "redis": {"url": stack.redis_url, "key_prefix": prefix},
            "embedded": {"home": tmp_path / "home", "openssl_dir": OPENSSL_DIR},
            "observability": {"metrics_port": 0, "textfile_dir": tmp_path / "textfiles"},
            "demo": {"interval_s": 0.2, "symbols": ["SPY", "QQQ"]},
            "heartbeat": {"interval_s": 0.5},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}  # type: ignore[dict-item]
            else:
                base[key] = value
        return Settings(_env_file=None, **base)  # type: ignore[arg-type]

    return build


@pytest.fixture
async def platform_factory() -> AsyncIterator[Callable[..., Platform]]:
    """Builds (not starts) platforms and stops every one of them after the test."""
    made: list[Platform] = []

    def build(settings: Settings, roles: list[str]) -> Platform:
        metrics = Metrics()
        platform = Platform(
            SettingsHolder(settings, lambda: settings, metrics), metrics, [role(r) for r in roles], banner=io.StringIO()
        )
        made.append(platform)
        return platform

    yield build
    for platform in made:
        if not platform.stopped.is_set():
            await platform.stop()


async def publish(settings: Settings, items: Iterable[tuple[str, bytes, bytes]], **options: Any) -> None:
    """Send ``(topic, key, value)`` items to the settings' topics in order, each acknowledged before the next.

    Args:
        options: producer options on top of the broker profile's (``max_request_size``…).
    """
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, **{**producer_options(settings.kafka), **options}
    )
    await producer.start()
    try:
        for topic, key, value in items:
            await producer.send_and_wait(registry.broker_name(topic), value, key=key)
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, count: int, idle_timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The first ``count`` records of ``topic`` as ``quanticity tail`` shows them (fewer if it stays idle that long)."""
    records: list[dict[str, Any]] = []
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    await tail_topic(
        settings.kafka.bootstrap or "",
        registry,
        topic,
        records.append,
        from_beginning=True,
        limit=count,
        idle_timeout_s=idle_timeout_s,
    )
    return records
