"""Building blocks of the generated Grafana dashboards: layout, panels, queries.

Each dashboard module (``dashboards.py``, ``dashboard_ibkr.py``, ``dashboard_analytics.py``)
composes these, so every panel gets the same datasource, legend and threshold conventions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, cast

# DashboardEncoder lives in the private-looking _gen module, but it is what grafanalib's own
# documentation uses to turn dashboards into JSON.
from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, RowPanel, Stat, Target, TimeSeries
from grafanalib.core import Time as GrafanaTime

DATASOURCE_UID: Final = "prometheus"
"""uid of the Prometheus datasource (grafana/provisioning/datasources/prometheus.yml)."""

DATASOURCE: Final[dict[str, str]] = {"type": "prometheus", "uid": DATASOURCE_UID}

# Grafana 10 understands this schema natively; grafanalib's default (12) would make Grafana
# run its old-schema migrations over panels that are already in the current format.
SCHEMA_VERSION: Final = 39

# Grafana picks a range covering at least four scrape intervals (the datasource declares
# timeInterval 15s), so rate() always sees enough samples at any zoom level.
RATE: Final = "$__rate_interval"

_WIDTH: Final = 24  # Grafana's grid is 24 columns wide.


class Layout:
    """Places panels left to right, top to bottom, so no gridPos is written by hand."""

    def __init__(self) -> None:
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def place(self, width: int, height: int) -> Any:
        if self._x + width > _WIDTH:
            self._newline()
        pos = GridPos(h=height, w=width, x=self._x, y=self._y)
        self._x += width
        self._line_height = max(self._line_height, height)
        return pos

    def row(self, title: str) -> Any:
        self._newline()
        panel = RowPanel(title=title, gridPos=GridPos(h=1, w=_WIDTH, x=0, y=self._y))
        self._y += 1
        return panel


def targets(queries: Sequence[tuple[str, str]]) -> list[Any]:
    """Build one Prometheus target per ``(expr, legend)`` with refIds A, B, …."""
    return [
        # intervalFactor 1: grafanalib's default of 2 would halve the query resolution.
        Target(
            expr=expr,
            legendFormat=legend,
            refId=chr(ord("A") + n),
            datasource=DATASOURCE,
            intervalFactor=1,
        )
        for n, (expr, legend) in enumerate(queries)
    ]


def threshold_steps(*steps: tuple[str, float | None]) -> list[dict[str, Any]]:
    return [{"color": color, "value": value} for color, value in steps]


UP_DOWN_MAPPING: Final = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    }
]


def timeseries(
    layout: Layout,
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    thresholds: list[dict[str, Any]] | None = None,
) -> Any:
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets(queries),
        unit=unit,
        gridPos=layout.place(width, height),
        thresholds=thresholds or threshold_steps(("green", None)),
        thresholdsStyleMode="line" if thresholds else "off",
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        # None lets Grafana fit the resolution to the panel width (grafanalib defaults to 100).
        maxDataPoints=None,
    )


def stat(
    layout: Layout,
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "none",
    description: str = "",
    width: int = 6,
    height: int = 4,
    thresholds: list[dict[str, Any]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> Any:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets(queries),
        format=unit,
        gridPos=layout.place(width, height),
        thresholds=thresholds or threshold_steps(("green", None)),
        mappings=mappings or [],
        color={"mode": "thresholds"},
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        noValue="no data",
    )


def quantile(q: float, bucket: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}[{RATE}])))"


def run_quantile(q: float, bucket: str, by: str) -> str:
    # No rate(): a test-telemetry file holds exactly one run's distribution.
    return f"histogram_quantile({q}, sum by (le, {by}) ({bucket}))"


def dashboard(uid: str, title: str, description: str, tags: list[str], panels: list[Any]) -> dict[str, Any]:
    dashboard = Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=["quanticity", *tags],
        panels=panels,
        refresh="30s",
        time=GrafanaTime("now-6h", "now"),
        timezone="utc",
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        graphTooltip=1,  # shared crosshair: line up a spike across panels
    ).auto_panel_ids()
    # Round-trip through JSON: grafanalib objects become plain dicts/lists.
    return cast(dict[str, Any], json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder)))
