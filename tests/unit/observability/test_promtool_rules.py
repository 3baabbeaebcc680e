"""Validate the Prometheus configuration and alert rules with promtool.

promtool comes from Debian's ``prometheus`` package, which CI installs; a missing promtool
fails these tests (it must never silently skip them). ``PROMTOOL`` may point at another
binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from quanticity.observability.dashboards import expr_metric_names
from quanticity.observability.metrics import Metrics

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
CONTAINER_RULES_DIR = "/etc/prometheus/rules"
INSTALL_HINT = (
    "promtool not found. Install it with "
    "`apt-get update && apt-get install -y --no-install-recommends prometheus` "
    "(Debian/Ubuntu), or set PROMTOOL=/path/to/promtool."
)


@pytest.fixture(scope="module")
def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        pytest.fail(INSTALL_HINT)
    return path


def _run(promtool: str, *args: str) -> None:
    result = subprocess.run(  # noqa: S603 - our own fixed argument list
        [promtool, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES, "no prometheus/rules/*.yml"
    assert TEST_FILES, "no prometheus/tests/*.yml"


def test_check_config(promtool: str, tmp_path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    # rule_files holds container paths (the compose file mounts prometheus/rules there);
    # point them at the repository so promtool also checks the rule files it names.
    assert config["rule_files"] == [f"{CONTAINER_RULES_DIR}/*.yml"]
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    rewritten = tmp_path / "prometheus.yml"
    rewritten.write_text(yaml.safe_dump(config))

    _run(promtool, "check", "config", str(rewritten))


def test_scrape_jobs() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}

    assert targets["quanticity"] == ["app:9100"]
    assert targets["redis"] == ["redis-exporter:9121"]
    assert "prometheus" in targets
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"


def test_check_rules(promtool: str) -> None:
    _run(promtool, "check", "rules", *map(str, RULE_FILES))


def test_rule_unit_tests(promtool: str) -> None:
    _run(promtool, "test", "rules", *map(str, TEST_FILES))


def test_rule_metrics_are_exported_by_the_app() -> None:
    exported = Metrics().exported_names()
    for rule in _rules():
        used = expr_metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        unknown = used - exported
        assert not unknown, f"{rule['alert']} uses metrics the app does not export: {sorted(unknown)}"


def test_every_alert_has_severity_and_operator_guidance() -> None:
    alerts = _rules()
    names = [rule["alert"] for rule in alerts]

    assert len(set(names)) == len(names)
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert "Action:" in rule["annotations"]["description"], rule["alert"]
        assert "for" in rule, f"{rule['alert']} has no `for:`, a single bad scrape would page"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}

    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"
