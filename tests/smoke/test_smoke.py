"""Smoke: `quanticity up` on the embedded stack, as `make run` starts it, end to end.

Starts the real CLI as a child process on free ports, waits for quotes to flow
demo → quotes topic → store role → Redis TimeSeries (TS.MADD), checks the ingestion-latency
histogram on /metrics in steady state, lists the topics, then sends SIGINT and checks that
the CLI and both embedded servers are gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OPENSSL_DIR, ROOT, free_port

pytestmark = pytest.mark.smoke

CLI = [sys.executable, "-m", "quanticity.cli.main"]


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _latency_buckets(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        dict(labels)["le"]: value
        for (name, labels), value in samples.items()
        if name == "ingestion_latency_seconds_bucket" and dict(labels).get("source") == "sim"
    }


def _wait_metric(port: int, name: str, value: float, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _scrape(port).get((name, ())) == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {value}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture
def running(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], int, int, Path]]:
    metrics_port, redis_port = free_port(), free_port()
    roles = getattr(request, "param", None)
    env = {
        **os.environ,
        "QUANTICITY_EMBEDDED__KAFKA_PORT": str(free_port()),
        "QUANTICITY_EMBEDDED__REDIS_PORT": str(redis_port),
        "QUANTICITY_EMBEDDED__HOME": str(tmp_path / "home"),
        "QUANTICITY_EMBEDDED__OPENSSL_DIR": str(OPENSSL_DIR),
        "QUANTICITY_OBSERVABILITY__METRICS_PORT": str(metrics_port),
        "QUANTICITY_OBSERVABILITY__TEXTFILE_DIR": str(tmp_path / "textfiles"),
        "QUANTICITY_DEMO__INTERVAL_S": "0.2",
    }
    for name in ("QUANTICITY_KAFKA_BOOTSTRAP", "QUANTICITY_REDIS_URL", "ALPHA_VANTAGE_API_KEY"):
        env.pop(name, None)
    if roles is not None:
        env["QUANTICITY_ROLES__ENABLED"] = json.dumps(roles)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    stdout = (tmp_path / "stdout.txt").open("w")
    proc = subprocess.Popen(
        [*CLI, "--config-dir", str(tmp_path / "config"), "--env-file", str(tmp_path / "no.env"), "up"],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=(tmp_path / "stderr.txt").open("w"),
        text=True,
    )
    try:
        yield proc, env, metrics_port, redis_port, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# The Module 0 demo path on its own: the latency target is for the demo ingestion task.
# (Under the full AlphaVantage cadence the same process also stores chains; see the README.)
@pytest.mark.parametrize("running", [["store", "ingest-demo"]], indirect=True)
def test_make_run_stack_stores_quotes_fast_and_stops_cleanly(
    running: tuple[subprocess.Popen[str], dict[str, str], int, int, Path],
) -> None:
    """quotes reach Redis TS with steady-state ingestion latency under 100 ms; SIGINT leaves nothing behind."""
    proc, env, metrics_port, redis_port, tmp_path = running
    deadline = time.monotonic() + 120
    first: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        try:
            first = _scrape(metrics_port)
        except OSError:
            time.sleep(0.5)
            continue
        if first.get(("ingestion_latency_seconds_count", (("source", "sim"),)), 0) >= 20:
            break
        time.sleep(0.5)
    else:
        pytest.fail("no quotes were stored within 120 s: " + (tmp_path / "stderr.txt").read_text()[-2000:])
    assert first[("redis_connected", ())] == 1
    assert first[("system_module_up", (("module", "store"),))] == 1
    assert first[("system_module_up", (("module", "ingest-demo"),))] == 1
    time.sleep(5)  # steady state: measure only what was stored after the warm-up
    second = _scrape(metrics_port)
    before, after = _latency_buckets(first), _latency_buckets(second)
    stored = after["+Inf"] - before["+Inf"]
    under_100ms = after["0.1"] - before["0.1"]
    assert stored >= 10, f"only {stored} quotes stored in 5 s"
    assert under_100ms / stored >= 0.99, f"{under_100ms} of {stored} stored quotes under 100 ms"

    client = redis.Redis(host="127.0.0.1", port=redis_port)
    try:
        rows = client.execute_command("TS.RANGE", "underlyings:SPY:mid", "-", "+")
        assert len(rows) >= 10
        assert client.hget("meta:underlyings:SPY", "freshness") == b"fresh"
    finally:
        client.close()

    topics = subprocess.run(
        [*CLI, "--env-file", str(tmp_path / "no.env"), "topics"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert topics.returncode == 0, topics.stderr
    listed = {line.split()[0] for line in topics.stdout.splitlines()[1:] if line.strip()}
    assert listed >= {"quotes", "ticks", "depth", "analytics", "signals", "orders", "fills", "social", "deadletter"}

    # SIGHUP: a bad file is rejected (old config kept), a good one is applied
    module = tmp_path / "config" / "modules" / "runtime.yaml"
    good = module.read_text()
    module.write_text(good + "\nheartbeat:\n  interval_s: -5\n")
    proc.send_signal(signal.SIGHUP)
    _wait_metric(metrics_port, "config_reload_failure_total", 1)
    module.write_text(good)
    proc.send_signal(signal.SIGHUP)
    _wait_metric(metrics_port, "config_reload_success_total", 1)
    assert proc.poll() is None

    banner = (tmp_path / "stdout.txt").read_text()
    child_pids = [int(p) for p in re.findall(r"pid (\d+)\)", banner)]
    assert len(child_pids) == 2, banner  # broker, Redis
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, (tmp_path / "stderr.txt").read_text()[-2000:]
    time.sleep(0.5)
    assert [pid for pid in child_pids if _alive(pid)] == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in found if _alive(pid)]


@pytest.mark.parametrize("delay_s", [0.5, 1.0, 2.0, 3.0])
def test_ctrl_c_during_start_up_exits_promptly_without_orphans(
    running: tuple[subprocess.Popen[str], dict[str, str], int, int, Path], delay_s: float
) -> None:
    """SIGINT while roles (all of them, the simulator too) are starting: exit within 15 s, no survivors."""
    proc, env, metrics_port, _, tmp_path = running
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _scrape(metrics_port)
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 15 s after SIGINT: " + (tmp_path / "stderr.txt").read_text()[-4000:])
    time.sleep(0.5)
    kafka_port = env["QUANTICITY_EMBEDDED__KAFKA_PORT"]
    assert _processes_mentioning(f"127.0.0.1:{kafka_port}") == []
    assert _processes_mentioning(str(tmp_path / "home")) == []
    assert _processes_mentioning("sim alphavantage --port") == []
