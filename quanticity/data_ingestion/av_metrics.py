"""Prometheus metrics of the AlphaVantage client and its rate limiter.

They register on the registry the process already uses (the one behind
``quanticity.observability.metrics.Metrics``), so /metrics serves them with the rest.
Labels carry function names, reply classes and bucket names only: never a key, a URL
or a symbol list, which keeps both secrets and cardinality out of the time series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# AlphaVantage answers in tens of ms for a quote and in seconds for a 20k-contract chain.
_LATENCY_MS_BUCKETS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0)
# Most acquisitions do not wait; the ones that do wait about one token interval (125 ms at 8/s).
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AlphaVantageMetrics:
    """The AlphaVantage client and rate-limiter metrics, registered on ``registry``.

    Args:
        registry: the process's registry (tests pass a fresh one).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.calls = Counter(
            "alphavantage_calls",
            "HTTP requests sent to AlphaVantage (retries included), by function and reply class",
            ["function", "outcome"],
            registry=r,
        )
        self.latency_ms = Histogram(
            "alphavantage_latency_ms",
            "Time from sending a request to having its whole body, in milliseconds",
            ["function"],
            buckets=_LATENCY_MS_BUCKETS,
            registry=r,
        )
        self.throttle_events = Counter(
            "alphavantage_throttle_events",
            "Replies that said the per-second or per-minute quota was exceeded (Note or Information)",
            ["function"],
            registry=r,
        )
        self.retries = Counter(
            "alphavantage_retries",
            "Requests repeated after a transient fault, by the fault's class",
            ["function", "reason"],
            registry=r,
        )
        self.ratelimit_wait = Histogram(
            "ratelimit_wait_seconds",
            "Time an acquisition waited for a token (zero waits included), by function bucket",
            ["bucket"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.ratelimit_tokens = Gauge(
            "ratelimit_tokens",
            "Tokens in a bucket as of this process's last attempt; negative = slots already booked ahead",
            ["bucket"],
            registry=r,
        )
        self.ratelimit_limited = Counter(
            "ratelimit_limited",
            "Acquisition attempts that had to wait, by the bucket that made them wait",
            ["bucket"],
            registry=r,
        )
