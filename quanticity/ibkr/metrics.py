"""Prometheus metrics of the IBKR connection, market data, depth, pacing and orders (Module 2).

Labels carry TWS codes, roles, request kinds and venues only: never an account number.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_GAP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 300.0)
_ORDER_MS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 30000.0)
_EVENT_MS_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 1000.0)


class IbkrMetrics:
    """Connectivity, data flow, depth rotation, pacing and order lifecycle metrics.

    Args:
        registry: the process's registry (tests pass a fresh one).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.connection_state = Gauge(
            "ibkr_connection_state",
            "0 disconnected, 1 connecting, 2 connected (API ready), 3 connected but TWS lost its farms (1100)",
            ["role"],
            registry=r,
        )
        self.reconnects = Counter("ibkr_reconnects", "Successful reconnects after a loss", ["role"], registry=r)
        self.disconnects = Counter("ibkr_disconnects", "Connections lost (socket closed)", ["role"], registry=r)
        self.error_events = Counter(
            "ibkr_error_events", "Error and system messages from TWS, by code", ["code"], registry=r
        )
        self.missed_heartbeats = Counter(
            "ibkr_missed_heartbeats",
            "Heartbeat probes (reqCurrentTime) that got no answer in time",
            ["role"],
            registry=r,
        )
        self.last_heartbeat = Gauge(
            "ibkr_last_heartbeat_timestamp_seconds", "Unix time of the last answered heartbeat", ["role"], registry=r
        )
        self.gap_seconds = Histogram(
            "ibkr_gap_seconds",
            "Data gap of a connection loss: socket lost → first market data after resubscription",
            ["role"],
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.resubscribe_seconds = Histogram(
            "ibkr_resubscribe_seconds",
            "Time to restore every active subscription after a reconnect",
            ["role"],
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.subscriptions = Gauge(
            "ibkr_active_subscriptions", "Active subscriptions by kind", ["role", "kind"], registry=r
        )
        self.market_data_type = Gauge(
            "ibkr_market_data_type",
            "Market data type in use per symbol: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen",
            ["symbol"],
            registry=r,
        )
        self.downgrades = Counter(
            "ibkr_market_data_downgrades",
            "Subscriptions downgraded to delayed data after an entitlement error",
            ["code"],
            registry=r,
        )
        self.events = Counter("ibkr_events", "Market data events published, by kind", ["kind"], registry=r)
        self.late_trades = Counter(
            "ibkr_bar_late_trades",
            "Tick-by-tick trades that arrived after their 5 s bar was closed (left out of it)",
            registry=r,
        )
        self.event_latency_ms = Histogram(
            "ibkr_event_latency_ms",
            "From the client receiving an update to its record being handed to the topic, in ms",
            ["kind"],
            buckets=_EVENT_MS_BUCKETS,
            registry=r,
        )
        self.depth_errors = Counter(
            "ibkr_depth_errors", "Depth subscriptions refused or failed, by code", ["code"], registry=r
        )
        self.depth_rotations = Counter(
            "ibkr_depth_rotations", "Depth slots handed to the next symbol/venue", registry=r
        )
        self.pacing_wait = Histogram(
            "ibkr_pacing_wait_seconds",
            "Time a request waited for the IBKR pacing budget, by request kind",
            ["kind"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.pacing_tokens = Gauge(
            "ibkr_pacing_tokens", "Tokens in an IBKR pacing bucket as of the last attempt", ["bucket"], registry=r
        )
        self.pacing_limited = Counter(
            "ibkr_pacing_limited", "IBKR requests that had to wait for the pacing budget", ["bucket"], registry=r
        )
        self.orders_submitted = Counter("ibkr_orders_submitted", "Orders placed with TWS", ["role"], registry=r)
        self.orders_deduplicated = Counter(
            "ibkr_orders_deduplicated",
            "Submissions answered from an existing order (same idempotency token)",
            registry=r,
        )
        self.order_status = Counter(
            "ibkr_order_status", "Order status transitions seen from TWS", ["status"], registry=r
        )
        self.fills = Counter("ibkr_fills", "Executions received", registry=r)
        self.submit_to_fill_ms = Histogram(
            "ibkr_submit_to_fill_ms",
            "From placeOrder to the order reaching Filled, in milliseconds",
            buckets=_ORDER_MS_BUCKETS,
            registry=r,
        )
        self.account_value = Gauge(
            "ibkr_account_value", "Account values (USD): net liquidation, cash, buying power…", ["key"], registry=r
        )
        self.pnl = Gauge("ibkr_pnl", "Account P&L (USD) from reqPnL: daily, unrealized, realized", ["kind"], registry=r)
        self.position_mismatches = Gauge(
            "ibkr_position_mismatches",
            "Contracts whose ledger and broker quantities differed at the last position reconciliation",
            registry=r,
        )
        self.position_reconciliations = Counter(
            "ibkr_position_reconciliations",
            "Position reconciliations, by result (ok, mismatch)",
            ["result"],
            registry=r,
        )

    # The shared Redis limiter records through these names (quanticity.data_ingestion.rate_limiter).
    @property
    def ratelimit_tokens(self) -> Gauge:
        return self.pacing_tokens

    @property
    def ratelimit_limited(self) -> Counter:
        return self.pacing_limited

    @property
    def ratelimit_wait(self) -> Histogram:
        return self.pacing_wait
