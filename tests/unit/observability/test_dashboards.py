"""Tests of the Grafana dashboard generator and of the committed, generated JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from quanticity.observability import dashboards
from quanticity.observability.dashboards import (
    REDIS_EXPORTER_METRICS,
    build_dashboards,
    dashboard_text,
    expr_metric_names,
    panel_metric_names,
    stale_dashboards,
    write_dashboards,
)
from quanticity.observability.metrics import Metrics
from quanticity.observability.panels import DATASOURCE_UID
from quanticity.observability.test_telemetry import TestTelemetry

REPO = Path(__file__).resolve().parents[3]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
SYNC_HINT = "grafana/dashboards/ is out of date with quanticity/observability/dashboards.py; run `make dashboards-sync`"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


# --- (a) committed JSON == generated JSON


def test_committed_dashboards_match_the_generator() -> None:
    generated = build_dashboards()
    committed = {path.name for path in DASHBOARD_DIR.glob("*.json")}

    assert committed == set(generated), (
        f"{SYNC_HINT} and delete files it does not generate "
        f"(committed {sorted(committed)}, generated {sorted(generated)})"
    )
    for name, dashboard in generated.items():
        on_disk = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert on_disk == dashboard_text(dashboard), f"{SYNC_HINT} ({name} differs)"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in write_dashboards(tmp_path / "a")]
    second = [p.read_bytes() for p in write_dashboards(tmp_path / "b")]

    assert first == second
    assert all(text.endswith(b"}\n") for text in first)


def test_write_dashboards_returns_sorted_paths_of_valid_json(tmp_path: Path) -> None:
    paths = write_dashboards(tmp_path)

    assert paths == sorted(paths)
    assert [p.name for p in paths] == sorted(build_dashboards())
    for path in paths:
        assert json.loads(path.read_text(encoding="utf-8")) == build_dashboards()[path.name]


def test_main_regenerates_and_prunes_only_stale_generated_files(tmp_path: Path) -> None:
    stale = tmp_path / "renamed-away.json"
    stale.write_text(json.dumps({"uid": "quanticity-old", "title": "Old"}))
    foreign = tmp_path / "someone-elses.json"
    foreign.write_text(json.dumps({"uid": "handmade", "title": "Mine"}))

    assert stale_dashboards(tmp_path) == [stale]
    assert dashboards.main([str(tmp_path)]) == 0

    assert not stale.exists()
    assert foreign.exists()
    assert {p.name for p in tmp_path.glob("*.json")} == set(build_dashboards()) | {foreign.name}


# --- (b) every queried metric exists


def test_every_panel_metric_is_exported() -> None:
    known = Metrics().exported_names() | TestTelemetry().exported_names() | REDIS_EXPORTER_METRICS
    for name, dashboard in build_dashboards().items():
        used = panel_metric_names(dashboard)
        assert used, f"{name}: no metric found in any panel (parser broken?)"
        unknown = used - known
        assert not unknown, f"{name} queries metrics nobody exports: {sorted(unknown)}"


def test_redis_exporter_list_does_not_shadow_app_metrics() -> None:
    # The exporter list is for exporter metrics only; an app metric in it would hide a
    # rename in metrics.py from the test above.
    assert not REDIS_EXPORTER_METRICS & Metrics().exported_names()
    assert all(name.startswith("redis_") for name in REDIS_EXPORTER_METRICS)


def test_redis_health_uses_the_exporter() -> None:
    used = panel_metric_names(build_dashboards()["redis-health.json"])

    assert used & REDIS_EXPORTER_METRICS
    assert {"redis_connected", "redis_command_latency_seconds_bucket", "redis_errors_total"} <= used


def test_test_telemetry_dashboard_covers_every_telemetry_metric() -> None:
    used = panel_metric_names(build_dashboards()["test-telemetry.json"])

    assert {
        "test_cases_total",
        "test_case_duration_seconds_bucket",
        "test_session_duration_seconds",
        "test_session_last_run_timestamp_seconds",
    } <= used


# --- (c) four dashboards, unique uids and titles, one datasource


def test_dashboards_have_unique_uids_and_titles() -> None:
    built = build_dashboards()
    titles = sorted(d["title"] for d in built.values())
    uids = [d["uid"] for d in built.values()]

    assert titles == sorted(
        ["System Overview", "Ingestion & Rate Limits", "Test Telemetry", "Redis Health", "IBKR", "Analytics Health"]
    )
    assert len(set(uids)) == len(uids) == 6
    assert all(uid.startswith(dashboards.UID_PREFIX) for uid in uids)
    assert built["system-overview.json"]["uid"] == "quanticity-system-overview"


def test_panels_have_unique_ids_and_the_provisioned_datasource() -> None:
    for name, dashboard in build_dashboards().items():
        panels = _panels(dashboard)
        ids = [p["id"] for p in panels]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels:
            if panel["type"] == "row":
                continue
            expected = {"type": "prometheus", "uid": DATASOURCE_UID}
            assert panel["datasource"] == expected, (name, panel["title"])
            assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                assert target["expr"].strip()


def test_panels_do_not_overlap() -> None:
    for name, dashboard in build_dashboards().items():
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']} is wider than the grid"
            columns = range(pos["x"], pos["x"] + pos["w"])
            area = {(x, y) for x in columns for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & area, f"{name}: {panel['title']} overlaps another panel"
            cells |= area


def test_provisioned_datasource_and_dashboard_provider() -> None:
    datasource = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/quanticity.yml").read_text())

    (prometheus,) = datasource["datasources"]
    assert prometheus["uid"] == DATASOURCE_UID
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True
    (files,) = provider["providers"]
    assert files["type"] == "file"
    assert files["options"]["path"] == "/var/lib/grafana/dashboards"


# --- (d) the PromQL metric-name parser


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (le, operation) (rate(redis_command_latency_seconds_bucket[5m])))",
            {"redis_command_latency_seconds_bucket"},
        ),
        ("redis_connected == 0", {"redis_connected"}),
        ("time() - heartbeat_timestamp_seconds > 30", {"heartbeat_timestamp_seconds"}),
        ("absent(heartbeat_timestamp_seconds)", {"heartbeat_timestamp_seconds"}),
        (
            'sum without (instance) (rate(ingest_failures_total{source="alpha", reason=~"http_.*"}[$__rate_interval]))',
            {"ingest_failures_total"},
        ),
        (
            "sum(rate(ingest_records_total[5m])) by (source) / on (source) group_left(kind) "
            "sum by (source) (rate(ingest_failures_total[5m] offset 1h))",
            {"ingest_records_total", "ingest_failures_total"},
        ),
        ("topk(10, sum by (cmd) (rate(redis_commands_total[1h30m])))", {"redis_commands_total"}),
        ('count_values("value", system_module_up) > bool 1e3', {"system_module_up"}),
        ("max_over_time(broker_connected[10m:30s]) or vector(0)", {"broker_connected"}),
        ('label_replace(redis_up, "dst", "$1", "instance", "(.*):.*")', {"redis_up"}),
        ('{__name__="deadletter_messages_total", topic="x"}', {"deadletter_messages_total"}),
        (
            "rate(a_total[5m]) unless ignoring(reason) b_total  # trailing comment c_total",
            {"a_total", "b_total"},
        ),
        ("-0x1F + .5 * Inf - NaN", set()),
        ("redis_up @ 1609746000", {"redis_up"}),
    ],
)
def test_expr_metric_names(expr: str, names: set[str]) -> None:
    assert expr_metric_names(expr) == names
    assert panel_metric_names({"panels": [{"targets": [{"expr": expr}]}]}) == names


def test_panel_metric_names_reads_every_target_including_collapsed_rows() -> None:
    dashboard = {
        "panels": [
            {"type": "timeseries", "targets": [{"expr": "rate(a_total[5m])"}, {"expr": "b"}]},
            {"type": "row", "collapsed": True, "panels": [{"targets": [{"expr": "max(c) by (le)"}]}]},
            {"type": "text"},
        ]
    }

    assert panel_metric_names(dashboard) == {"a_total", "b", "c"}
