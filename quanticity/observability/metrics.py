"""The platform's Prometheus metrics: one catalogue, built on an injected registry.

Every metric the app exports is declared here, so dashboards and alert rules can be
checked against a single list (``Metrics.exported_names``). A process builds one
``Metrics`` at start-up and hands it to the services that need it; tests build their own
on a fresh ``CollectorRegistry`` and never reset globals.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from quanticity.data_ingestion.av_metrics import AlphaVantageMetrics
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.observability.gc_pauses import GcPauseMeter

# Latency buckets in seconds: fine below 100 ms (the smoke target), coarse above.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose, including families with no samples yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


class Metrics:
    """Every Prometheus metric of the platform, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.gc = GcPauseMeter(r)  # gc_pause_seconds; the platform installs it while it runs
        # --- process / module health
        self.system_module_up = Gauge(
            "system_module_up",
            "1 while a module (role or runtime service) is running, else 0",
            ["module"],
            registry=r,
        )
        self.heartbeat_timestamp = Gauge(
            "heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat of a role",
            ["role"],
            registry=r,
        )
        self.config_reload_success = Counter(
            "config_reload_success",
            "Configuration reloads (SIGHUP) that were applied",
            registry=r,
        )
        self.config_reload_failure = Counter(
            "config_reload_failure",
            "Configuration reloads (SIGHUP) rejected; the old config stays",
            registry=r,
        )
        # --- Redis
        self.redis_connected = Gauge(
            "redis_connected",
            "1 while the Redis health probe succeeds, else 0",
            registry=r,
        )
        self.redis_command_latency = Histogram(
            "redis_command_latency_seconds",
            "Round-trip time of Redis commands and pipelines",
            ["operation"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "redis_errors",
            "Redis operations that failed",
            ["operation"],
            registry=r,
        )
        self.timeseries_samples_written = Counter(
            "timeseries_samples_written",
            "Samples written to Redis TimeSeries",
            ["family"],
            registry=r,
        )
        # --- Kafka / topics
        self.broker_connected = Gauge(
            "broker_connected",
            "1 while the Kafka-API broker answers metadata requests, else 0",
            registry=r,
        )
        self.broker_errors = Counter(
            "broker_errors",
            "Errors talking to the Kafka-API broker",
            ["kind"],
            registry=r,
        )
        self.topic_produced = Counter(
            "topic_messages_produced",
            "Records produced, per logical topic",
            ["topic"],
            registry=r,
        )
        self.topic_consumed = Counter(
            "topic_messages_consumed",
            "Records consumed and decoded, per logical topic",
            ["topic", "role"],
            registry=r,
        )
        self.topic_produce_latency = Histogram(
            "topic_produce_latency_seconds",
            "Time from send() to broker acknowledgement",
            ["topic"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.topic_consume_lag = Histogram(
            "topic_consume_lag_seconds",
            "Time from a record's ingest_time to its consumption",
            ["topic", "role"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.deadletter = Counter(
            "deadletter_messages",
            "Records routed to the dead-letter topic",
            ["topic", "reason"],
            registry=r,
        )
        self.agent_errors = Counter(
            "agent_errors",
            "Records whose handling raised; each went to the dead-letter topic",
            ["role", "topic"],
            registry=r,
        )
        # --- ingestion
        self.ingest_records = Counter(
            "ingest_records",
            "Records published by ingestion tasks",
            ["source", "kind"],
            registry=r,
        )
        self.ingest_failures = Counter(
            "ingest_failures",
            "Ingestion attempts that failed",
            ["source", "reason"],
            registry=r,
        )
        self.store_chain_batch = Histogram(
            "store_chain_batch_records",
            "Option chain records the store role wrote in one store call (a run of what the broker delivered)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.store_batch_fallbacks = Counter(
            "store_batch_fallbacks",
            "Chain runs whose store call failed other than on Redis and were handled again record by record",
            ["role"],
            registry=r,
        )
        self.ingestion_latency = Histogram(
            "ingestion_latency_seconds",
            "Time from a record's ingest_time to its samples being stored in Redis TimeSeries",
            ["source"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )

        # --- AlphaVantage client, rate limiter and cadence matrix
        self.alphavantage = AlphaVantageMetrics(r)
        self.scheduler_missed_runs = Counter(
            "scheduler_missed_runs",
            "Scheduled runs skipped because the job was late (freshness misses)",
            ["bucket"],
            registry=r,
        )
        self.scheduler_backlog = Gauge(
            "scheduler_backlog",
            "Scheduled calls waiting for a concurrency slot or in flight",
            registry=r,
        )
        self.av_quota = Gauge(
            "alphavantage_quota_calls_per_minute",
            "The plan quota and our own ceiling, calls per minute",
            ["limit"],
            registry=r,
        )
        self.bucket_interval = Gauge(
            "bucket_interval_seconds",
            "How often a cadence bucket refreshes each symbol",
            ["bucket"],
            registry=r,
        )
        self.bucket_last_success = Gauge(
            "bucket_last_success_timestamp_seconds",
            "Unix time of the last successful call of a cadence bucket",
            ["bucket"],
            registry=r,
        )
        # --- IBKR (Module 2) and analytics (Module 3)
        self.ibkr = IbkrMetrics(r)
        self.analytics = AnalyticsMetrics(r)
        # --- runtime
        self.embedded_restarts = Counter(
            "embedded_restarts",
            "Embedded servers restarted after they exited unexpectedly",
            ["service"],
            registry=r,
        )
        self.textfile_errors = Counter(
            "textfile_errors",
            "*.prom files in the textfile directory that could not be parsed",
            ["file"],
            registry=r,
        )

    def exported_names(self) -> set[str]:
        """Return every sample name this registry exposes (``_total``, ``_bucket``… included)."""
        return sample_names(self.registry)
