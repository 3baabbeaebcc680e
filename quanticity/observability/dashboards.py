"""Grafana dashboards of the platform, generated with grafanalib.

The JSON under ``grafana/dashboards/`` is generated from this module and committed, so
Grafana's file provisioning needs no Python. Regenerate it after editing a dashboard::

    python -m quanticity.observability.dashboards grafana/dashboards   # make dashboards-sync

``tests/unit/observability/test_dashboards.py`` fails when the committed JSON and this
module disagree, and when a panel queries a metric nobody exports (checked with
:func:`panel_metric_names` against the app's catalogue, the test telemetry and
:data:`REDIS_EXPORTER_METRICS`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

# DashboardEncoder lives in the private-looking _gen module, but it is what grafanalib's own
# documentation uses to turn dashboards into JSON.
from quanticity.observability.dashboard_analytics import analytics_health
from quanticity.observability.dashboard_ibkr import ibkr
from quanticity.observability.panels import (
    RATE as _RATE,
)
from quanticity.observability.panels import (
    UP_DOWN_MAPPING as _UP_DOWN_MAPPING,
)
from quanticity.observability.panels import (
    Layout as _Layout,
)
from quanticity.observability.panels import (
    dashboard as _dashboard,
)
from quanticity.observability.panels import (
    quantile as _quantile,
)
from quanticity.observability.panels import (
    run_quantile as _run_quantile,
)
from quanticity.observability.panels import (
    stat as _stat,
)
from quanticity.observability.panels import (
    threshold_steps as _thresholds,
)
from quanticity.observability.panels import (
    timeseries as _timeseries,
)

UID_PREFIX: Final = "quanticity-"
"""Every generated dashboard uid starts with this; :func:`main` prunes only such files."""

REDIS_EXPORTER_METRICS: Final[frozenset[str]] = frozenset(
    {
        # Sample names of oliver006/redis_exporter (v1.54.0, default "redis" namespace) that
        # the dashboards may use. Taken from the exporter's source (exporter/exporter.go:
        # the metricMapGauges/metricMapCounters tables, the per-command
        # "commands_total"/"commands_duration_seconds_total" descriptions and the "up"
        # gauge of Collect). These names have been stable for many releases. The
        # server-side latency histogram is deliberately absent: its name changed between
        # releases (redis_latency_usec -> redis_commands_latencies_usec) and it needs
        # Redis >= 7, while the app's own redis_command_latency_seconds covers latency.
        "redis_up",
        "redis_connected_clients",
        "redis_blocked_clients",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_commands_processed_total",
        "redis_commands_total",
        "redis_commands_duration_seconds_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
        "redis_rejected_connections_total",
        "redis_connections_received_total",
    }
)

# --------------------------------------------------------------------------- PromQL names

# Aggregation operators, keywords and literals that look like identifiers but never name a
# metric. Function names need no list: an identifier followed by "(" is always a call.
_NOT_METRICS: Final = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "atan2",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
# Keywords followed by a parenthesised list of label names (not expressions).
_LABEL_LIST_KEYWORDS: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0[xX][0-9a-fA-F]+
               |(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_]\w*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
  | (?P<op>[^\s"'`()\[\]{}A-Za-z0-9_:$#.]+|\.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(expr: str) -> list[_Token]:
    """Split a PromQL expression into tokens, dropping whitespace and comments."""
    out: list[_Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN_RE.match(expr, pos)
        if match is None:  # pragma: no cover - the "op" alternative matches any other character
            raise ValueError(f"cannot tokenise PromQL at {expr[pos:]!r}")
        kind = cast(str, match.lastgroup)
        if kind != "space":
            out.append(_Token(kind, match.group()))
        pos = match.end()
    return out


def _skip_group(tokens: Sequence[_Token], start: int) -> int:
    """Return the index just past the bracket group that opens at ``tokens[start]``."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].kind == "open":
            depth += 1
        elif tokens[index].kind == "close":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


def _name_from_matchers(tokens: Sequence[_Token], start: int, end: int) -> str | None:
    """Return the metric named by ``{__name__="x"}`` inside ``tokens[start:end]``, if any."""
    for index in range(start, end - 2):
        name, operator, value = tokens[index], tokens[index + 1], tokens[index + 2]
        if name.text == "__name__" and operator.text == "=" and value.kind == "string":
            return value.text[1:-1]
    return None


def expr_metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects.

    Functions (identifiers followed by ``(``), aggregation operators, keywords such as
    ``by``/``without``/``on``/``ignoring``, the label lists after them, label matchers inside
    ``{}``, range and subquery durations inside ``[]``, numbers, durations, strings and
    Grafana variables are skipped. ``{__name__="x"}`` counts as the metric ``x``.

    Args:
        expr: A PromQL expression, e.g. from a panel target or an alert rule.

    Returns:
        The set of metric (sample) names, e.g. ``{"redis_command_latency_seconds_bucket"}``.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "open" and token.text in "{[":
            end = _skip_group(tokens, index)
            if token.text == "{":
                named = _name_from_matchers(tokens, index + 1, end - 1)
                if named is not None:
                    names.add(named)
            index = end
            continue
        if token.kind == "ident":
            lowered = token.text.lower()
            if lowered in _LABEL_LIST_KEYWORDS and following is not None and following.text == "(":
                index = _skip_group(tokens, index + 1)
                continue
            is_call = following is not None and following.text == "("
            if not is_call and lowered not in _NOT_METRICS:
                names.add(token.text)
        index += 1
    return names


def _iter_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # Collapsed rows carry their panels inside the row panel.
        yield from _iter_panels(panel.get("panels") or [])


def panel_metric_names(dashboard_json: dict[str, Any]) -> set[str]:
    """Return every metric name used by any panel target of a dashboard.

    Args:
        dashboard_json: A dashboard as a JSON-able dict (as produced by :func:`build_dashboards`).

    Returns:
        The union of :func:`expr_metric_names` over all panel target expressions,
        including panels nested in collapsed rows.
    """
    names: set[str] = set()
    for panel in _iter_panels(dashboard_json.get("panels") or []):
        for target in panel.get("targets") or []:
            names |= expr_metric_names(str(target.get("expr") or ""))
    return names


def system_overview() -> dict[str, Any]:
    """Return the "System Overview" dashboard: liveness, connections, reloads, topic flow."""
    layout = _Layout()
    panels: list[Any] = [
        layout.row("Liveness"),
        _stat(
            layout,
            "Modules",
            [("system_module_up", "{{module}}")],
            description="1 while a role or runtime service (broker, redis) runs.",
            width=12,
            mappings=_UP_DOWN_MAPPING,
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        _stat(
            layout,
            "Broker connected",
            [("max(broker_connected)", "broker")],
            width=6,
            mappings=_UP_DOWN_MAPPING,
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        _stat(
            layout,
            "Redis connected",
            [("max(redis_connected)", "redis")],
            width=6,
            mappings=_UP_DOWN_MAPPING,
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        _timeseries(
            layout,
            "Heartbeat age",
            [("time() - heartbeat_timestamp_seconds", "{{role}}")],
            unit="s",
            description="Seconds since each role's last heartbeat (beats every 5 s; alert above 30 s).",
            thresholds=_thresholds(("green", None), ("red", 30)),
        ),
        _timeseries(
            layout,
            "Config reloads (per 15m)",
            [
                ("sum(increase(config_reload_success_total[15m]))", "applied"),
                ("sum(increase(config_reload_failure_total[15m]))", "rejected"),
            ],
            description="SIGHUP reloads; a rejected reload keeps the old configuration.",
        ),
        _timeseries(
            layout,
            "GC pause p99",
            [(_quantile(0.99, "gc_pause_seconds_bucket", "generation"), "gen {{generation}}")],
            unit="s",
            description="Cyclic garbage collections stop the whole process; long-lived start-up state is "
            "frozen out of them (gc.freeze), so gen 2 should stay in milliseconds.",
            width=24,
        ),
        layout.row("Topics"),
        _timeseries(
            layout,
            "Produced records/s",
            [(f"sum by (topic) (rate(topic_messages_produced_total[{_RATE}]))", "{{topic}}")],
            unit="ops",
        ),
        _timeseries(
            layout,
            "Consumed records/s",
            [
                (
                    f"sum by (topic, role) (rate(topic_messages_consumed_total[{_RATE}]))",
                    "{{topic}} → {{role}}",
                )
            ],
            unit="ops",
        ),
        _timeseries(
            layout,
            "Produce latency p99",
            [(_quantile(0.99, "topic_produce_latency_seconds_bucket", "topic"), "{{topic}}")],
            unit="s",
            description="send() to broker acknowledgement.",
        ),
        _timeseries(
            layout,
            "Consume lag p99",
            [(_quantile(0.99, "topic_consume_lag_seconds_bucket", "topic, role"), "{{topic}} → {{role}}")],
            unit="s",
            description="A record's ingest_time to its consumption.",
        ),
        _timeseries(
            layout,
            "Broker errors/s",
            [(f"sum by (kind) (rate(broker_errors_total[{_RATE}]))", "{{kind}}")],
            unit="ops",
            width=24,
        ),
    ]
    return _dashboard(
        "quanticity-system-overview",
        "System Overview",
        "Is every module up, are the broker and Redis reachable, do records flow through the topics?",
        ["overview"],
        panels,
    )


def ingestion() -> dict[str, Any]:
    """Return the "Ingestion & Rate Limits" dashboard."""
    layout = _Layout()
    panels: list[Any] = [
        layout.row("AlphaVantage calls and quota"),
        _timeseries(
            layout,
            "Calls/min vs quota",
            [
                (f"sum(rate(alphavantage_calls_total[{_RATE}])) * 60", "calls/min (all)"),
                ("max by (limit) (alphavantage_quota_calls_per_minute)", "{{limit}}"),
            ],
            unit="short",
            description="Every request sent, retries included, against the plan quota and our ceiling. "
            "Alert AlphaVantageQuotaBreach above the ceiling.",
        ),
        _timeseries(
            layout,
            "Calls/min by function and outcome",
            [
                (
                    f"sum by (function, outcome) (rate(alphavantage_calls_total[{_RATE}])) * 60",
                    "{{function}} {{outcome}}",
                )
            ],
        ),
        _timeseries(
            layout,
            "Latency p50 / p99 (ms)",
            [
                (_quantile(0.5, "alphavantage_latency_ms_bucket", "function"), "p50 {{function}}"),
                (_quantile(0.99, "alphavantage_latency_ms_bucket", "function"), "p99 {{function}}"),
            ],
            unit="ms",
        ),
        _timeseries(
            layout,
            "Throttle replies and retries/min",
            [
                (
                    f"sum by (function) (rate(alphavantage_throttle_events_total[{_RATE}])) * 60",
                    "throttled {{function}}",
                ),
                (f"sum by (reason) (rate(alphavantage_retries_total[{_RATE}])) * 60", "retry {{reason}}"),
            ],
        ),
        _timeseries(
            layout,
            "Rate-limiter wait p99 and tokens",
            [
                (_quantile(0.99, "ratelimit_wait_seconds_bucket", "bucket"), "wait p99 {{bucket}}"),
                ("min by (bucket) (ratelimit_tokens)", "tokens {{bucket}}"),
            ],
        ),
        _timeseries(
            layout,
            "Backlog, missed runs and bucket age",
            [
                ("scheduler_backlog", "calls waiting or in flight"),
                (f"sum by (bucket) (increase(scheduler_missed_runs_total[{_RATE}]))", "missed {{bucket}}"),
                ("max by (bucket) (time() - bucket_last_success_timestamp_seconds)", "age s {{bucket}}"),
            ],
            description="Alert AlphaVantageBucketStale: no success for three of the bucket's intervals.",
        ),
        layout.row("Ingestion"),
        _timeseries(
            layout,
            "Ingested records/s",
            [(f"sum by (source, kind) (rate(ingest_records_total[{_RATE}]))", "{{source}} {{kind}}")],
            unit="ops",
        ),
        _timeseries(
            layout,
            "Ingest failures/s",
            [(f"sum by (source, reason) (rate(ingest_failures_total[{_RATE}]))", "{{source}} {{reason}}")],
            unit="ops",
            description="Alert IngestFailuresHigh: above 0.1/s per source for 2m.",
            thresholds=_thresholds(("green", None), ("red", 0.1)),
        ),
        _timeseries(
            layout,
            "Ingestion latency p50",
            [(_quantile(0.5, "ingestion_latency_seconds_bucket", "source"), "{{source}}")],
            unit="s",
            description="A record's ingest_time to its samples stored in Redis TimeSeries.",
        ),
        _timeseries(
            layout,
            "Ingestion latency p99",
            [(_quantile(0.99, "ingestion_latency_seconds_bucket", "source"), "{{source}}")],
            unit="s",
            description="The smoke target is 100 ms end to end.",
            thresholds=_thresholds(("green", None), ("red", 0.1)),
        ),
        _timeseries(
            layout,
            "Store role: option chains per store call",
            [
                (f"histogram_quantile(0.5, sum by (le) (rate(store_chain_batch_records_bucket[{_RATE}])))", "p50"),
                (f"histogram_quantile(0.99, sum by (le) (rate(store_chain_batch_records_bucket[{_RATE}])))", "p99"),
                (f"sum(increase(store_batch_fallbacks_total[{_RATE}]))", "runs handled one by one"),
            ],
            width=24,
            description=(
                "The store role writes the chains the broker delivered together (a SPY poll is ~31, one per "
                "expiry) in one call. A run handled one by one failed other than on Redis: see the log "
                "event chain_batch_failed."
            ),
        ),
        layout.row("Dead letters"),
        _timeseries(
            layout,
            "Dead-lettered records/s",
            [(f"sum by (topic, reason) (rate(deadletter_messages_total[{_RATE}]))", "{{topic}} {{reason}}")],
            unit="ops",
            width=24,
            description="Alert DeadLetterGrowing: any sustained rate for 10m.",
        ),
    ]
    return _dashboard(
        "quanticity-ingestion",
        "Ingestion & Rate Limits",
        "AlphaVantage calls against the quota, latency, throttling, rate-limiter waits, scheduler "
        "backlog and freshness; ingestion throughput, failures, latency and dead letters.",
        ["ingestion"],
        panels,
    )


def test_telemetry() -> dict[str, Any]:
    """Return the "Test Telemetry" dashboard over the metrics of :mod:`.test_telemetry`.

    Every pytest session rewrites the textfile from zero, so the counters are the numbers of
    the last run and are shown as they are (no ``rate``); the time axis shows run history.
    """
    layout = _Layout()
    panels: list[Any] = [
        layout.row("Last run"),
        _stat(
            layout,
            "Last run",
            [("time() - test_session_last_run_timestamp_seconds", "age")],
            unit="s",
            description="Time since the last pytest session ended.",
            thresholds=_thresholds(("green", None), ("orange", 86400)),
        ),
        _stat(
            layout,
            "Session duration",
            [("test_session_duration_seconds", "duration")],
            unit="s",
        ),
        _stat(
            layout,
            "Failed or errored",
            [('sum(test_cases_total{outcome=~"failed|error"})', "failed")],
            thresholds=_thresholds(("green", None), ("red", 1)),
        ),
        _stat(
            layout,
            "Pass rate",
            [
                (
                    'sum(test_cases_total{outcome="passed"}) / sum(test_cases_total{outcome!="skipped"})',
                    "pass rate",
                )
            ],
            unit="percentunit",
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        layout.row("History"),
        _timeseries(
            layout,
            "Test cases by outcome",
            [("sum by (outcome) (test_cases_total)", "{{outcome}}")],
        ),
        _timeseries(
            layout,
            "Test cases by suite",
            [("sum by (suite) (test_cases_total)", "{{suite}}")],
        ),
        _timeseries(
            layout,
            "Test case duration p50 / p99",
            [
                (_run_quantile(0.5, "test_case_duration_seconds_bucket", "suite"), "p50 {{suite}}"),
                (_run_quantile(0.99, "test_case_duration_seconds_bucket", "suite"), "p99 {{suite}}"),
            ],
            unit="s",
        ),
        _timeseries(
            layout,
            "Session duration history",
            [("test_session_duration_seconds", "session")],
            unit="s",
        ),
    ]
    return _dashboard(
        "quanticity-test-telemetry",
        "Test Telemetry",
        "Outcome of the last pytest sessions (written by the test-telemetry plugin).",
        ["tests"],
        panels,
    )


def redis_health() -> dict[str, Any]:
    """Return the "Redis Health" dashboard: the app's client view and redis_exporter's server view."""
    layout = _Layout()
    panels: list[Any] = [
        layout.row("Status"),
        _stat(
            layout,
            "App → Redis",
            [("max(redis_connected)", "connected")],
            mappings=_UP_DOWN_MAPPING,
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        _stat(
            layout,
            "Exporter → Redis",
            [('max(redis_up{job="redis"})', "up")],
            mappings=_UP_DOWN_MAPPING,
            thresholds=_thresholds(("red", None), ("green", 1)),
        ),
        _stat(
            layout,
            "Connected clients",
            [('sum(redis_connected_clients{job="redis"})', "clients")],
        ),
        _stat(
            layout,
            "Memory used",
            [('sum(redis_memory_used_bytes{job="redis"})', "used")],
            unit="bytes",
        ),
        layout.row("Client view (app)"),
        _timeseries(
            layout,
            "Command latency p50",
            [(_quantile(0.5, "redis_command_latency_seconds_bucket", "operation"), "{{operation}}")],
            unit="s",
        ),
        _timeseries(
            layout,
            "Command latency p99",
            [(_quantile(0.99, "redis_command_latency_seconds_bucket", "operation"), "{{operation}}")],
            unit="s",
            description="Alert RedisCommandLatencyHigh: above 50 ms for 5m.",
            thresholds=_thresholds(("green", None), ("red", 0.05)),
        ),
        _timeseries(
            layout,
            "Redis errors/s",
            [(f"sum by (operation) (rate(redis_errors_total[{_RATE}]))", "{{operation}}")],
            unit="ops",
        ),
        _timeseries(
            layout,
            "TimeSeries samples written/s",
            [(f"sum by (family) (rate(timeseries_samples_written_total[{_RATE}]))", "{{family}}")],
            unit="ops",
        ),
        layout.row("Server view (redis_exporter)"),
        _timeseries(
            layout,
            "Commands processed/s",
            [(f'sum(rate(redis_commands_processed_total{{job="redis"}}[{_RATE}]))', "commands")],
            unit="ops",
        ),
        _timeseries(
            layout,
            "Top commands by calls/s",
            [(f'topk(10, sum by (cmd) (rate(redis_commands_total{{job="redis"}}[{_RATE}])))', "{{cmd}}")],
            unit="ops",
        ),
        _timeseries(
            layout,
            "Mean server time per command",
            [
                (
                    f'sum by (cmd) (rate(redis_commands_duration_seconds_total{{job="redis"}}[{_RATE}]))'
                    f' / sum by (cmd) (rate(redis_commands_total{{job="redis"}}[{_RATE}]))',
                    "{{cmd}}",
                )
            ],
            unit="s",
            description="Time inside Redis only; the gap to the client p50 is network and queueing.",
        ),
        _timeseries(
            layout,
            "Memory used vs maxmemory",
            [
                ('sum(redis_memory_used_bytes{job="redis"})', "used"),
                ('sum(redis_memory_max_bytes{job="redis"}) > 0', "maxmemory"),
            ],
            unit="bytes",
        ),
    ]
    return _dashboard(
        "quanticity-redis-health",
        "Redis Health",
        "Redis as the app sees it (connection, latency, errors, writes) and as redis_exporter sees it.",
        ["redis"],
        panels,
    )


def build_dashboards() -> dict[str, dict[str, Any]]:
    """Return every dashboard, keyed by its file name under ``grafana/dashboards/``.

    Returns:
        ``{"system-overview.json": {...}, ...}``; the values are plain JSON-able dicts.
    """
    return {
        "system-overview.json": system_overview(),
        "ingestion.json": ingestion(),
        "test-telemetry.json": test_telemetry(),
        "redis-health.json": redis_health(),
        "ibkr.json": ibkr(),
        "analytics-health.json": analytics_health(),
    }


def dashboard_text(dashboard_json: dict[str, Any]) -> str:
    """Serialise a dashboard deterministically: sorted keys, 2-space indent, final newline.

    Args:
        dashboard_json: A dashboard as returned by :func:`build_dashboards`.

    Returns:
        The file content :func:`write_dashboards` writes.
    """
    return json.dumps(dashboard_json, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard of :func:`build_dashboards` into ``directory``.

    Args:
        directory: Target directory; created if missing.

    Returns:
        The written paths, sorted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, dashboard_json in sorted(build_dashboards().items()):
        path = directory / name
        path.write_text(dashboard_text(dashboard_json), encoding="utf-8")
        written.append(path)
    return written


def stale_dashboards(directory: Path) -> list[Path]:
    """Return generated dashboards in ``directory`` that :func:`build_dashboards` no longer makes.

    Only files whose uid starts with :data:`UID_PREFIX` count, so hand-made dashboards
    dropped into the same directory are never touched.

    Args:
        directory: A directory of dashboard JSON files.

    Returns:
        The stale paths, sorted.
    """
    current = set(build_dashboards())
    stale: list[Path] = []
    for path in sorted(directory.glob("*.json")):
        if path.name in current:
            continue
        try:
            uid = json.loads(path.read_text(encoding="utf-8")).get("uid")
        except (ValueError, AttributeError):
            continue
        if isinstance(uid, str) and uid.startswith(UID_PREFIX):
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the dashboards: ``python -m quanticity.observability.dashboards [DIR]``.

    Args:
        argv: Command-line arguments without the program name; ``DIR`` defaults to
            ``grafana/dashboards``.

    Returns:
        The process exit code.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(arg in ("-h", "--help") for arg in args):
        print("usage: python -m quanticity.observability.dashboards [DIR]", file=sys.stderr)
        return 2
    directory = Path(args[0]) if args else Path("grafana/dashboards")
    # A renamed dashboard would otherwise linger and be provisioned twice.
    for path in stale_dashboards(directory) if directory.is_dir() else []:
        path.unlink()
        print(f"removed {path}")
    for path in write_dashboards(directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
