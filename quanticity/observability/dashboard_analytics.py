"""The "Analytics Health" Grafana dashboard: freshness, latency, failures, VPIN, liquidity, regime, MOC.

Every query reads the catalogue of ``analytics_metrics.py``. The latency distributions are
heatmaps of the histogram buckets; the liquidity heatmap is a state timeline of each
symbol's 0–100 score (one band per symbol, coloured by the score).
"""

from __future__ import annotations

from typing import Any

from grafanalib.core import Heatmap, StateTimeline, Target, YAxis

from quanticity.observability.panels import (
    DATASOURCE,
    RATE,
    Layout,
    dashboard,
    quantile,
    stat,
    threshold_steps,
    timeseries,
)

#: Input lag alert thresholds (prometheus/rules/analytics.yml): 1 s for 0DTE/1DTE, 5 s for swing.
LAG_LIMIT_FAST_S = 1.0
LAG_LIMIT_SWING_S = 5.0


def _bucket_heatmap(layout: Layout, title: str, bucket: str, description: str) -> Any:
    """Heatmap of a histogram's buckets (milliseconds) over time, all modules together."""
    return Heatmap(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[
            Target(
                expr=f"sum by (le) (increase({bucket}[{RATE}]))",
                format="heatmap",
                legendFormat="{{le}}",
                refId="A",
                datasource=DATASOURCE,
                intervalFactor=1,
            )
        ],
        dataFormat="tsbuckets",
        yAxis=YAxis(format="ms", decimals=0),
        gridPos=layout.place(12, 8),
        maxDataPoints=None,
    )


def _liquidity_heatmap(layout: Layout) -> Any:
    return StateTimeline(
        title="Liquidity heatmap (score 0–100 by symbol)",
        description="Composite liquidity score of each symbol over time: red below 30, orange below 60.",
        dataSource=DATASOURCE,
        targets=[
            Target(
                expr="max by (symbol) (analytics_liquidity_score)",
                legendFormat="{{symbol}}",
                refId="A",
                datasource=DATASOURCE,
                intervalFactor=1,
            )
        ],
        thresholds=threshold_steps(("red", None), ("orange", 30), ("green", 60)),
        colorMode="thresholds",
        showValue="never",
        mergeValues=False,
        gridPos=layout.place(24, 8),
        maxDataPoints=None,
    )


def analytics_health() -> dict[str, Any]:
    """Return the "Analytics Health" dashboard."""
    layout = Layout()
    panels: list[Any] = [
        layout.row("Freshness"),
        stat(
            layout,
            "Age of the newest result by kernel",
            [("time() - max by (module) (analytics_last_result_timestamp_seconds)", "{{module}}")],
            unit="s",
            description="Seconds since each kernel last stored a result for any symbol.",
            thresholds=threshold_steps(("green", None), ("orange", 60), ("red", 300)),
            width=12,
        ),
        stat(
            layout,
            "Stale results (1h)",
            [("sum(increase(analytics_stale_results_total[1h]))", "stale")],
            description="Results refused on write or read because they were past valid_until.",
            thresholds=threshold_steps(("green", None), ("orange", 1)),
            width=6,
        ),
        stat(
            layout,
            "Failures (1h)",
            [("sum(increase(analytics_failure_total[1h]))", "failures")],
            thresholds=threshold_steps(("green", None), ("orange", 1), ("red", 20)),
            width=6,
        ),
        timeseries(
            layout,
            "Input lag by kernel and horizon",
            [("max by (module, horizon) (analytics_input_lag_seconds)", "{{module}} {{horizon}}")],
            unit="s",
            description=f"Age of the newest input when a kernel ran. Alerts: above {LAG_LIMIT_FAST_S:g} s for "
            f"0DTE/1DTE, above {LAG_LIMIT_SWING_S:g} s for swing.",
            thresholds=threshold_steps(("green", None), ("orange", LAG_LIMIT_FAST_S), ("red", LAG_LIMIT_SWING_S)),
        ),
        timeseries(
            layout,
            "Result age by kernel and symbol",
            [("time() - analytics_last_result_timestamp_seconds", "{{module}} {{symbol}}")],
            unit="s",
        ),
        timeseries(
            layout,
            "Results, stale results and coalesced inputs/s",
            [
                (f"sum by (module) (rate(analytics_results_total[{RATE}]))", "results {{module}}"),
                (f"sum by (module) (rate(analytics_stale_results_total[{RATE}]))", "stale {{module}}"),
                (f"sum by (module) (rate(analytics_coalesced_inputs_total[{RATE}]))", "coalesced {{module}}"),
            ],
            unit="ops",
            description="Coalesced: inputs superseded inside the 250 ms window before their kernel ran.",
        ),
        timeseries(
            layout,
            "Failures/s by kernel and reason",
            [(f"sum by (module, reason) (rate(analytics_failure_total[{RATE}]))", "{{module}} {{reason}}")],
            unit="ops",
        ),
        layout.row("Latency"),
        timeseries(
            layout,
            "Compute latency p50 / p99 by kernel",
            [
                (quantile(0.5, "analytics_compute_latency_ms_bucket", "module"), "p50 {{module}}"),
                (quantile(0.99, "analytics_compute_latency_ms_bucket", "module"), "p99 {{module}}"),
            ],
            unit="ms",
        ),
        timeseries(
            layout,
            "End to end p50 / p99 (input ingest → stored)",
            [
                (quantile(0.5, "analytics_end_to_end_ms_bucket", "module"), "p50 {{module}}"),
                (quantile(0.99, "analytics_end_to_end_ms_bucket", "module"), "p99 {{module}}"),
            ],
            unit="ms",
            description="The Greeks target is p99 <= 100 ms for a 10k-contract chain.",
            thresholds=threshold_steps(("green", None), ("red", 100)),
        ),
        _bucket_heatmap(
            layout,
            "Compute latency distribution",
            "analytics_compute_latency_ms_bucket",
            "Kernel runs per latency bucket, all kernels.",
        ),
        _bucket_heatmap(
            layout,
            "End-to-end latency distribution",
            "analytics_end_to_end_ms_bucket",
            "Results per ingest → stored bucket, all kernels.",
        ),
        layout.row("Microstructure"),
        timeseries(
            layout,
            "VPIN trend",
            [("max by (symbol) (analytics_vpin)", "{{symbol}}")],
            description="Volume-synchronised probability of informed trading (Easley, López de Prado, O'Hara).",
        ),
        timeseries(
            layout,
            "VPIN CDF",
            [("max by (symbol) (analytics_vpin_cdf)", "{{symbol}}")],
            unit="percentunit",
            description="Where the latest VPIN sits in its own history; above 0.9 is the usual toxicity flag.",
            thresholds=threshold_steps(("green", None), ("red", 0.9)),
        ),
        _liquidity_heatmap(layout),
        timeseries(
            layout,
            "Quoted spread (bps of mid)",
            [("max by (symbol) (analytics_spread_bps)", "{{symbol}}")],
            width=24,
        ),
        layout.row("Regime and market on close"),
        timeseries(
            layout,
            "Regime probabilities",
            [("max by (label) (analytics_regime_probability)", "{{label}}")],
            unit="percentunit",
        ),
        timeseries(
            layout,
            "MOC accuracy: direction hit rate and confidence",
            [
                ("max by (symbol) (analytics_moc_direction_hit_rate)", "hit rate {{symbol}}"),
                ("max by (symbol) (analytics_moc_confidence)", "confidence {{symbol}}"),
            ],
            unit="percentunit",
            description="Share of closing-imbalance projections whose side matched the realised imbalance.",
        ),
    ]
    return dashboard(
        "quanticity-analytics-health",
        "Analytics Health",
        "Are analytics results fresh and fast? Input lag, latency distributions, failures and staleness per "
        "kernel; VPIN, liquidity, regime and MOC accuracy.",
        ["analytics"],
        panels,
    )
