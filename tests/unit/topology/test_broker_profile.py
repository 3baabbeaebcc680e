"""Tests of quanticity.topology.broker_profile: the dev (Tansu) and production option sets."""

from __future__ import annotations

import pytest

from quanticity.settings.model import KafkaSettings
from quanticity.topology.broker_profile import (
    consumer_options,
    faust_app_options,
    faust_broker_url,
    producer_options,
)

DEV = KafkaSettings(profile="dev", request_timeout_s=10.0, replication_factor=1)
PRODUCTION = KafkaSettings(profile="production", request_timeout_s=20.0, replication_factor=3)


def test_dev_app_options_carry_the_tansu_workarounds() -> None:
    """dev: one record per batch, 6 s sessions, at-least-once, earliest offsets."""
    options = faust_app_options(DEV)

    assert options["producer_max_batch_size"] == 1
    assert options["broker_session_timeout"] == 6
    assert options["processing_guarantee"] == "at_least_once"
    assert options["consumer_auto_offset_reset"] == "earliest"
    assert options["topic_replication_factor"] == 1


def test_production_app_options_do_not_shrink_batches() -> None:
    """production: library batch size and session timeout; still at-least-once; RF from settings."""
    options = faust_app_options(PRODUCTION)

    assert options.get("producer_max_batch_size") != 1
    assert "broker_session_timeout" not in options
    assert options["processing_guarantee"] == "at_least_once"
    assert options["topic_replication_factor"] == 3


def test_broker_request_timeout_is_at_least_90_s() -> None:
    """Faust's broker request timeout is 3 × the configured one, never below 90 s."""
    assert faust_app_options(DEV)["broker_request_timeout"] == 90.0
    assert faust_app_options(KafkaSettings(request_timeout_s=40.0))["broker_request_timeout"] == 120.0


def test_dev_producer_sends_one_record_per_batch_without_idempotence() -> None:
    """dev producer: no idempotence (Tansu rejects InitProducerId), 1-byte batches, no linger, acks=1."""
    options = producer_options(DEV)

    assert options["enable_idempotence"] is False
    assert options["max_batch_size"] == 1
    assert options["linger_ms"] == 0
    assert options["acks"] == 1
    assert options["request_timeout_ms"] == 10_000


def test_production_producer_waits_for_all_replicas() -> None:
    """production producer: acks=all and the library's batching."""
    options = producer_options(PRODUCTION)

    assert options["acks"] == "all"
    assert "max_batch_size" not in options
    assert options["request_timeout_ms"] == 20_000


def test_consumer_sessions_are_short_only_on_dev() -> None:
    """dev consumers use 6 s sessions with 1 s heartbeats; production keeps the defaults."""
    assert consumer_options(DEV) == {
        "request_timeout_ms": 10_000,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
    }
    assert consumer_options(PRODUCTION) == {"request_timeout_ms": 20_000}


def test_broker_url_scheme_follows_the_profile() -> None:
    """dev brokers use the tansu:// transport, production ones kafka://, one URL per server."""
    assert faust_broker_url(DEV, "127.0.0.1:19092") == "tansu://127.0.0.1:19092"
    assert faust_broker_url(PRODUCTION, "a:9092, b:9092") == "kafka://a:9092;kafka://b:9092"


@pytest.mark.parametrize(("kafka", "scheme"), [(DEV, "tansu"), (PRODUCTION, "kafka")])
def test_broker_url_accepts_bootstrap_values_with_a_kafka_scheme(kafka: KafkaSettings, scheme: str) -> None:
    """kafka.bootstrap may be written kafka://host:port (the setting accepts it); the scheme is not doubled."""
    bootstrap = KafkaSettings(bootstrap="kafka://a:9092,kafka://b:9092").bootstrap
    assert bootstrap is not None

    assert faust_broker_url(kafka, bootstrap) == f"{scheme}://a:9092;{scheme}://b:9092"
