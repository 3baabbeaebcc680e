"""The "IBKR" Grafana dashboard: connectivity, data flow, depth rotation, pacing, order lifecycle, P&L."""

from __future__ import annotations

from typing import Any

from quanticity.observability.panels import (
    RATE,
    Layout,
    dashboard,
    quantile,
    stat,
    threshold_steps,
    timeseries,
)

_STATE_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DISCONNECTED", "color": "red", "index": 0},
            "1": {"text": "CONNECTING", "color": "orange", "index": 1},
            "2": {"text": "CONNECTED", "color": "green", "index": 2},
            "3": {"text": "TWS LOST IB (1100)", "color": "orange", "index": 3},
        },
    }
]


def ibkr() -> dict[str, Any]:
    """Return the "IBKR" dashboard."""
    layout = Layout()
    panels: list[Any] = [
        layout.row("Connectivity"),
        stat(
            layout,
            "Session state by role",
            [("max by (role) (ibkr_connection_state)", "{{role}}")],
            mappings=_STATE_MAPPING,
            thresholds=threshold_steps(("red", None), ("orange", 1), ("green", 2), ("orange", 3)),
            width=8,
        ),
        stat(layout, "Reconnects (24h)", [("sum(increase(ibkr_reconnects_total[24h]))", "reconnects")], width=4),
        stat(layout, "Disconnects (24h)", [("sum(increase(ibkr_disconnects_total[24h]))", "disconnects")], width=4),
        stat(
            layout,
            "Missed heartbeats (1h)",
            [("sum(increase(ibkr_missed_heartbeats_total[1h]))", "missed")],
            thresholds=threshold_steps(("green", None), ("orange", 1), ("red", 3)),
            width=4,
        ),
        stat(layout, "Fills (24h)", [("sum(increase(ibkr_fills_total[24h]))", "fills")], width=4),
        timeseries(
            layout,
            "TWS error and system messages/s by code",
            [(f"sum by (code) (rate(ibkr_error_events_total[{RATE}]))", "{{code}}")],
            unit="ops",
            description="1100/1101/1102 connectivity, 326 client id in use, 354/10167 entitlements, 309 depth.",
        ),
        timeseries(
            layout,
            "Data gap and resubscription after a loss (p95)",
            [
                (quantile(0.95, "ibkr_gap_seconds_bucket", "role"), "gap {{role}}"),
                (quantile(0.95, "ibkr_resubscribe_seconds_bucket", "role"), "resubscribe {{role}}"),
            ],
            unit="s",
            thresholds=threshold_steps(("green", None), ("red", 10)),
        ),
        layout.row("Market data"),
        timeseries(
            layout,
            "Events/s by kind",
            [(f"sum by (kind) (rate(ibkr_events_total[{RATE}]))", "{{kind}}")],
            unit="ops",
        ),
        timeseries(
            layout,
            "Update → topic latency p99",
            [(quantile(0.99, "ibkr_event_latency_ms_bucket", "kind"), "{{kind}}")],
            unit="ms",
            thresholds=threshold_steps(("green", None), ("red", 20)),
        ),
        timeseries(
            layout,
            "Active subscriptions",
            [("sum by (kind) (ibkr_active_subscriptions)", "{{kind}}")],
            description="TWS allows 100 L1 lines and 3 depth requests by default.",
        ),
        timeseries(
            layout,
            "Depth rotations and errors/s",
            [
                (f"sum(rate(ibkr_depth_rotations_total[{RATE}]))", "rotations"),
                (f"sum by (code) (rate(ibkr_depth_errors_total[{RATE}]))", "error {{code}}"),
            ],
            unit="ops",
        ),
        timeseries(
            layout,
            "Delayed-data downgrades",
            [(f"sum by (code) (increase(ibkr_market_data_downgrades_total[{RATE}]))", "{{code}}")],
        ),
        timeseries(
            layout,
            "Pacing wait p99",
            [(quantile(0.99, "ibkr_pacing_wait_seconds_bucket", "kind"), "{{kind}}")],
            unit="s",
        ),
        layout.row("Orders and account"),
        timeseries(
            layout,
            "Order status transitions/s",
            [
                (f"sum by (status) (rate(ibkr_order_status_total[{RATE}]))", "{{status}}"),
                (f"sum(rate(ibkr_orders_deduplicated_total[{RATE}]))", "deduplicated resubmissions"),
            ],
            unit="ops",
        ),
        timeseries(
            layout,
            "Submit → fill latency",
            [
                ("histogram_quantile(0.5, sum by (le) (rate(ibkr_submit_to_fill_ms_bucket[1h])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(ibkr_submit_to_fill_ms_bucket[1h])))", "p99"),
            ],
            unit="ms",
        ),
        timeseries(
            layout,
            "Fill rate (fills per order submitted, 1h)",
            [
                (
                    "sum(increase(ibkr_fills_total[1h]))"
                    " / clamp_min(sum(increase(ibkr_orders_submitted_total[1h])), 1)",
                    "fills/order",
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            layout,
            "Paper P&L preview (reqPnL)",
            [("sum by (kind) (ibkr_pnl)", "{{kind}}")],
            unit="currencyUSD",
        ),
        timeseries(
            layout,
            "Account values",
            [("sum by (key) (ibkr_account_value)", "{{key}}")],
            unit="currencyUSD",
        ),
    ]
    return dashboard(
        "quanticity-ibkr",
        "IBKR",
        "TWS sessions per role, market data flow, depth rotation, pacing, orders and paper P&L (Module 2).",
        ["ibkr"],
        panels,
    )
