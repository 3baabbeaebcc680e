"""`quanticity config` as a user runs it: exit code 2 on a bad value, masked JSON otherwise.

These run the real CLI in a subprocess; they live with the settings tests because what they
check is the settings loader's contract as seen from the command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SECRET = "av-key-0123456789abcdef"  # noqa: S105 - a fake key that must never be printed


def _run_config(config_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quanticity.cli.main", "--config-dir", str(config_dir), "config"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_bad_value_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    """A bad YAML value makes the CLI exit 2 with the file and dotted key on stderr."""
    config = tmp_path / "config"
    (config / "modules").mkdir(parents=True)
    module = config / "modules" / "kafka.yaml"
    module.write_text("kafka:\n  partitions: 0\n", encoding="utf-8")

    result = _run_config(config, tmp_path)

    assert result.returncode == 2, result.stderr
    assert str(module) in result.stderr
    assert "kafka.partitions" in result.stderr
    assert "Operator action:" in result.stderr
    assert result.stdout == ""


def test_good_config_prints_json_with_secrets_masked(tmp_path: Path) -> None:
    """A valid config prints the effective settings as JSON; the API key shows as asterisks."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "system.yaml").write_text("mode: paper\n", encoding="utf-8")
    (config / "credentials.yaml").write_text(f"alphavantage:\n  api_key: {SECRET}\n", encoding="utf-8")

    result = _run_config(config, tmp_path)

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["mode"] == "paper"
    assert printed["alphavantage"]["api_key"] == "**********"
    assert SECRET not in result.stdout + result.stderr
