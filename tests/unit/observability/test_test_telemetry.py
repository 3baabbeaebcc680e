"""Tests of quanticity.observability.test_telemetry: record, write, parse back."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from quanticity.observability.test_telemetry import OTHER_SUITE, TestTelemetry, suite_of


def _samples(path: Path) -> list[Sample]:
    return [s for family in text_string_to_metric_families(path.read_text()) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, f"expected one sample {name}{labels}, got {matches}"
    return matches[0]


@pytest.mark.parametrize(
    ("nodeid", "suite"),
    [
        ("tests/unit/observability/test_x.py::test_y", "unit"),
        ("tests/integration/test_redis.py::TestA::test_b[param-1]", "integration"),
        ("tests/smoke/test_stack.py", "smoke"),
        ("tests/test_top_level.py::test_z", OTHER_SUITE),
        ("test_elsewhere.py::test_z", OTHER_SUITE),
        ("sub/tests/unit/test_a.py::test_b", "unit"),
    ],
)
def test_suite_of(nodeid: str, suite: str) -> None:
    assert suite_of(nodeid) == suite


def test_written_file_parses_back_with_the_recorded_values(tmp_path: Path) -> None:
    telemetry = TestTelemetry()
    telemetry.record("tests/unit/test_a.py::test_1", "passed", 0.002)
    telemetry.record("tests/unit/test_a.py::test_2", "passed", 0.02)
    telemetry.record("tests/unit/test_a.py::test_3", "failed", 0.2)
    telemetry.record("tests/integration/test_b.py::test_4", "skipped", 0.0)
    telemetry.record("tests/integration/test_b.py::test_5", "error", 3.0)
    telemetry.finish(session_duration_s=12.5, now=1_700_000_000.0)
    path = tmp_path / "metrics" / "test_telemetry.prom"  # parent is created by write()

    telemetry.write(path)
    samples = _samples(path)

    assert _value(samples, "test_cases_total", suite="unit", outcome="passed") == 2
    assert _value(samples, "test_cases_total", suite="unit", outcome="failed") == 1
    # Outcomes a suite never had are exported as 0, not left out.
    assert _value(samples, "test_cases_total", suite="unit", outcome="skipped") == 0
    assert _value(samples, "test_cases_total", suite="unit", outcome="error") == 0
    assert _value(samples, "test_cases_total", suite="integration", outcome="skipped") == 1
    assert _value(samples, "test_cases_total", suite="integration", outcome="error") == 1
    assert _value(samples, "test_case_duration_seconds_count", suite="unit") == 3
    assert _value(samples, "test_case_duration_seconds_sum", suite="unit") == pytest.approx(0.222)
    assert _value(samples, "test_case_duration_seconds_bucket", suite="unit", le="0.005") == 1
    assert _value(samples, "test_case_duration_seconds_bucket", suite="unit", le="0.05") == 2
    assert _value(samples, "test_case_duration_seconds_bucket", suite="unit", le="+Inf") == 3
    assert _value(samples, "test_case_duration_seconds_bucket", suite="integration", le="2.5") == 1
    assert _value(samples, "test_session_duration_seconds") == 12.5
    assert _value(samples, "test_session_last_run_timestamp_seconds") == 1_700_000_000.0


def test_every_written_sample_name_is_in_exported_names(tmp_path: Path) -> None:
    telemetry = TestTelemetry()
    telemetry.record("tests/unit/test_a.py::test_1", "passed", 0.01)
    telemetry.finish(session_duration_s=1.0, now=1.0)
    path = tmp_path / "t.prom"
    telemetry.write(path)

    written = {s.name for s in _samples(path)}

    assert written <= telemetry.exported_names()
    assert {
        "test_cases_total",
        "test_case_duration_seconds_bucket",
        "test_session_duration_seconds",
        "test_session_last_run_timestamp_seconds",
    } <= written


def test_instances_do_not_share_a_registry(tmp_path: Path) -> None:
    first, second = TestTelemetry(), TestTelemetry()
    first.record("tests/unit/test_a.py::test_1", "passed", 0.01)
    path = tmp_path / "second.prom"
    second.write(path)

    assert not [s for s in _samples(path) if s.name == "test_cases_total"]


def test_rewriting_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.prom"
    old = TestTelemetry()
    old.record("tests/unit/test_a.py::test_1", "failed", 0.01)
    old.write(path)
    new = TestTelemetry()
    new.record("tests/unit/test_a.py::test_1", "passed", 0.01)
    new.write(path)

    samples = _samples(path)

    assert _value(samples, "test_cases_total", suite="unit", outcome="failed") == 0
    assert _value(samples, "test_cases_total", suite="unit", outcome="passed") == 1
    assert list(tmp_path.iterdir()) == [path], "write() must not leave temporary files behind"


@pytest.mark.parametrize(("outcome", "duration"), [("xfailed", 0.1), ("passed", -0.1)])
def test_record_rejects_bad_input(outcome: str, duration: float) -> None:
    with pytest.raises(ValueError):
        TestTelemetry().record("tests/unit/test_a.py::test_1", outcome, duration)


def test_pytest_does_not_collect_the_class() -> None:
    assert TestTelemetry.__test__ is False
