"""Prometheus metrics of the analytics role (Module 3).

Labels carry kernel names, horizons and the watchlist's symbols only (a bounded set).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A chain's Greeks take a few ms; a PCA or a Markov-switching fit can take hundreds.
_LATENCY_MS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0)


class AnalyticsMetrics:
    """Analytics kernels' latency, failures, staleness and headline values.

    Args:
        registry: the process's registry (tests pass a fresh one).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.compute_latency_ms = Histogram(
            "analytics_compute_latency_ms",
            "Wall time of one kernel run (inputs assembled → result ready), in milliseconds",
            ["module"],
            buckets=_LATENCY_MS_BUCKETS,
            registry=r,
        )
        self.end_to_end_ms = Histogram(
            "analytics_end_to_end_ms",
            "From the input record's ingest_time to the result stored in Redis, in milliseconds",
            ["module"],
            buckets=_LATENCY_MS_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "analytics_failure",
            "Kernel runs that raised or could not produce a result, by reason",
            ["module", "reason"],
            registry=r,
        )
        self.stale_results = Counter(
            "analytics_stale_results",
            "Reads or publications refused because the result was past its valid_until",
            ["module"],
            registry=r,
        )
        self.results = Counter(
            "analytics_results",
            "Results stored and published",
            ["module"],
            registry=r,
        )
        self.input_lag = Gauge(
            "analytics_input_lag_seconds",
            "Age of the newest input when a kernel ran (now − input event time), by horizon",
            ["module", "horizon"],
            registry=r,
        )
        self.last_result = Gauge(
            "analytics_last_result_timestamp_seconds",
            "Unix time of the last result of a kernel for a symbol",
            ["module", "symbol"],
            registry=r,
        )
        self.coalesced = Counter(
            "analytics_coalesced_inputs",
            "Inputs superseded inside a coalescing window before the kernel ran",
            ["module"],
            registry=r,
        )
        self.vpin = Gauge("analytics_vpin", "Latest VPIN of a symbol", ["symbol"], registry=r)
        self.vpin_cdf = Gauge(
            "analytics_vpin_cdf", "CDF of the latest VPIN against its history", ["symbol"], registry=r
        )
        self.liquidity_score = Gauge(
            "analytics_liquidity_score", "Composite liquidity score 0–100 of a symbol", ["symbol"], registry=r
        )
        self.spread_bps = Gauge(
            "analytics_spread_bps", "Quoted spread of a symbol in basis points of mid", ["symbol"], registry=r
        )
        self.regime = Gauge(
            "analytics_regime_probability", "Filtered probability of each regime label", ["label"], registry=r
        )
        self.moc_hit_rate = Gauge(
            "analytics_moc_direction_hit_rate",
            "Share of closing-imbalance projections whose side matched the realised imbalance",
            ["symbol"],
            registry=r,
        )
        self.moc_confidence = Gauge(
            "analytics_moc_confidence", "Confidence of the latest closing-imbalance projection", ["symbol"], registry=r
        )
