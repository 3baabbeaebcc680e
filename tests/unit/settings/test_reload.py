"""Tests of quanticity.settings.reload: SettingsHolder swaps settings only when valid."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from quanticity.observability.metrics import Metrics
from quanticity.settings import Settings, SettingsHolder, load_settings


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "system.yaml").write_text("heartbeat:\n  interval_s: 5\n", encoding="utf-8")
    return config


def _holder(config_dir: Path, metrics: Metrics) -> SettingsHolder:
    initial = load_settings(config_dir, env_file=None, run_id="run-1")
    return SettingsHolder(initial, lambda: load_settings(config_dir, env_file=None, run_id="run-1"), metrics)


def _count(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, f"{name} is not exported"
    return value


def test_successful_reload_applies_counts_and_notifies(config_dir: Path) -> None:
    """A valid change is applied, counted as a success, and every listener gets (old, new)."""
    metrics = Metrics()
    holder = _holder(config_dir, metrics)
    before = holder.current
    calls: list[tuple[Settings, Settings]] = []
    holder.subscribe(lambda old, new: calls.append((old, new)))
    (config_dir / "system.yaml").write_text("heartbeat:\n  interval_s: 7\n", encoding="utf-8")

    assert holder.reload() is True

    assert holder.current.heartbeat.interval_s == 7
    assert len(calls) == 1
    assert calls[0][0] is before
    assert calls[0][1] is holder.current
    assert _count(metrics, "config_reload_success_total") == 1
    assert _count(metrics, "config_reload_failure_total") == 0


def test_failed_reload_keeps_the_old_settings(config_dir: Path) -> None:
    """An invalid file is rejected: old settings stay, failure is counted, listeners are not called."""
    metrics = Metrics()
    holder = _holder(config_dir, metrics)
    before = holder.current
    calls: list[tuple[Settings, Settings]] = []
    holder.subscribe(lambda old, new: calls.append((old, new)))
    (config_dir / "system.yaml").write_text("heartbeat:\n  interval_s: -3\n", encoding="utf-8")

    assert holder.reload() is False

    assert holder.current is before
    assert calls == []
    assert _count(metrics, "config_reload_failure_total") == 1
    assert _count(metrics, "config_reload_success_total") == 0


def test_unparsable_yaml_on_reload_is_a_counted_failure(config_dir: Path) -> None:
    """A YAML syntax error on reload is a rejected reload, not an exception."""
    metrics = Metrics()
    holder = _holder(config_dir, metrics)
    (config_dir / "system.yaml").write_text("heartbeat: [\n", encoding="utf-8")

    assert holder.reload() is False
    assert _count(metrics, "config_reload_failure_total") == 1


def test_counts_accumulate_over_several_reloads(config_dir: Path) -> None:
    """Each reload outcome increments its own counter once."""
    metrics = Metrics()
    holder = _holder(config_dir, metrics)
    system = config_dir / "system.yaml"

    outcomes = []
    for text in ("heartbeat:\n  interval_s: 6\n", "mode: nope\n", "heartbeat:\n  interval_s: 8\n", "kafka: 3\n"):
        system.write_text(text, encoding="utf-8")
        outcomes.append(holder.reload())

    assert outcomes == [True, False, True, False]
    assert _count(metrics, "config_reload_success_total") == 2
    assert _count(metrics, "config_reload_failure_total") == 2
    assert holder.current.heartbeat.interval_s == 8


def test_reload_uses_no_deprecated_pydantic_api(config_dir: Path) -> None:
    """reload() runs clean under warnings-as-errors (model_fields on an instance is deprecated)."""
    holder = _holder(config_dir, Metrics())
    (config_dir / "system.yaml").write_text("heartbeat:\n  interval_s: 9\n", encoding="utf-8")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert holder.reload() is True
