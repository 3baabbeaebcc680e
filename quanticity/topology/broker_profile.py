"""Broker profiles: the one place the Tansu workarounds live (ARCHITECTURE.md §6).

``dev`` (the embedded Tansu broker):
  1. one record per produce batch — Tansu's ListOffsets(latest) is off by one after a
     multi-record batch, which silently drops table changelog updates on recovery;
  2. no idempotent producer / exactly-once — Tansu rejects aiokafka's InitProducerId;
  3. short sessions — a Tansu JoinGroup waits session_timeout/2;
  4. short fetch waits — Tansu does not wake a waiting Fetch on new data, so the worker
     consumer uses the ``tansu://`` transport (``tansu_transport.py``).
``production`` (Redpanda, Kafka): the library defaults, larger batches, longer sessions.
"""

from __future__ import annotations

from typing import Any

from quanticity.settings.model import KafkaSettings


def faust_broker_url(kafka: KafkaSettings, bootstrap: str) -> str:
    """The Faust broker URL: ``tansu://`` (short fetch waits) in dev, ``kafka://`` otherwise."""
    scheme = "tansu" if kafka.profile == "dev" else "kafka"
    return ";".join(f"{scheme}://{server.strip()}" for server in bootstrap.split(","))


def faust_app_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust ``App`` settings for the configured broker profile."""
    options: dict[str, Any] = {
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "topic_replication_factor": kafka.replication_factor,
        "broker_request_timeout": max(kafka.request_timeout_s * 3, 90.0),
    }
    if kafka.profile == "dev":
        options.update(
            producer_max_batch_size=1,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
        )
    return options


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``AIOKafkaProducer`` keyword arguments for the configured broker profile."""
    options: dict[str, Any] = {
        "enable_idempotence": False,
        "acks": 1 if kafka.profile == "dev" else "all",
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
    }
    if kafka.profile == "dev":
        options["max_batch_size"] = 1  # bytes: every batch then carries exactly one record
        options["linger_ms"] = 0
    return options


def consumer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword arguments for the configured broker profile."""
    options: dict[str, Any] = {"request_timeout_ms": int(kafka.request_timeout_s * 1000)}
    if kafka.profile == "dev":
        options.update(session_timeout_ms=6000, heartbeat_interval_ms=1000)
    return options
