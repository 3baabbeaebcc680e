"""Shared test layer: test telemetry, and one broker + Redis Stack for the integration suites.

The stack comes from, in order: ``QUANTICITY_TEST_KAFKA_BOOTSTRAP`` + ``QUANTICITY_TEST_REDIS_URL``
(servers you run), testcontainers (Redpanda + redis-stack) when a Docker engine answers, or
the embedded binaries (Tansu, Redis Stack) on free loopback ports. Every test gets its own
topic prefix, consumer groups and Redis key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from prometheus_client import Counter, Gauge

from quanticity.observability.metrics import Metrics
from quanticity.observability.test_telemetry import TestTelemetry

ROOT = Path(__file__).resolve().parent.parent
# Shared cache of the private OpenSSL 1.1 (downloaded once per checkout, not per test run).
OPENSSL_DIR = ROOT / ".quanticity" / "openssl1.1"


# Hypothesis: this machine is a shared 2-core box; timing health checks and per-example
# deadlines measure its load, not our code. Property checks themselves are unchanged.
settings.register_profile("quanticity", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("quanticity")


# --------------------------------------------------------------------------- telemetry
# What a live IBKR test reports through ``record_property`` (tests/live/test_live_ibkr.py).
LIVE_IBKR_DEPTH_BOOKS = "live_ibkr_depth_books"
LIVE_IBKR_PACING_WAIT_S = "live_ibkr_pacing_wait_seconds"


class _TelemetryPlugin:
    def __init__(self) -> None:
        self.telemetry = TestTelemetry()
        self.started = time.time()
        r = self.telemetry.registry
        self.live_ibkr_success = Counter(
            "test_live_ibkr_success",
            "Passed tests of the live IBKR suite (pytest -m live_ibkr) in the last session",
            registry=r,
        )
        self.live_ibkr_depth_success = Counter(
            "test_live_ibkr_depth_success",
            "Passed live IBKR tests that received a market depth book in the last session",
            registry=r,
        )
        self.live_ibkr_pacing_wait = Gauge(
            "test_live_ibkr_pacing_wait_seconds",
            "Time the live IBKR suite's requests waited for the pacing budget in the last session",
            registry=r,
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
            self.telemetry.record(report.nodeid, outcome, report.duration)
            if outcome == "passed" and "live_alpha" in report.keywords:
                self.telemetry.live_alpha_success.inc()
            if report.when == "call" and "live_ibkr" in report.keywords:
                self._live_ibkr(report, outcome)

    def _live_ibkr(self, report: pytest.TestReport, outcome: str) -> None:
        properties = dict(report.user_properties)
        self.live_ibkr_pacing_wait.inc(float(properties.get(LIVE_IBKR_PACING_WAIT_S, 0.0)))
        if outcome == "passed":
            self.live_ibkr_success.inc()
            if int(properties.get(LIVE_IBKR_DEPTH_BOOKS, 0)) > 0:
                self.live_ibkr_depth_success.inc()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        now = time.time()
        self.telemetry.finish(now - self.started, now)
        out = ROOT / ".quanticity" / "metrics"
        out.mkdir(parents=True, exist_ok=True)
        self.telemetry.write(out / "test_telemetry.prom")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_TelemetryPlugin(), "quanticity-test-telemetry")


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


IN_SESSION = datetime(2026, 3, 3, 20, 30, tzinfo=UTC)  # Tuesday 15:30 ET, inside the regular session


class RunningClock:
    """A simulator clock that starts at ``start`` and advances with wall time.

    Tests whose simulator must trade (prints, fills at the session's prices) run on it, so
    they pass at any hour of any day, not only while the real market is open.
    """

    def __init__(self, start: datetime = IN_SESSION) -> None:
        self.start = start
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}-"


@dataclass(frozen=True)
class Stack:
    """A broker and a Redis Stack that the integration tests talk to."""

    bootstrap: str
    redis_url: str
    kind: str  # external | containers | embedded


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One broker + Redis Stack for the whole session (see the module docstring)."""
    bootstrap = os.environ.get("QUANTICITY_TEST_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("QUANTICITY_TEST_REDIS_URL")
    if bootstrap and redis_url:
        yield Stack(bootstrap, redis_url, "external")
        return
    if _docker_engine():
        from testcontainers.community.kafka import RedpandaContainer
        from testcontainers.community.redis import RedisContainer

        with RedpandaContainer() as redpanda, RedisContainer("redis/redis-stack-server:7.4.0-v1") as redis:
            host = redis.get_container_host_ip()
            port = redis.get_exposed_port(6379)
            yield Stack(redpanda.get_bootstrap_server(), f"redis://{host}:{port}/0", "containers")
        return
    from quanticity.runtime.embedded import EmbeddedRuntime
    from quanticity.settings.model import EmbeddedSettings

    settings = EmbeddedSettings(
        kafka_port=free_port(),
        redis_port=free_port(),
        home=tmp_path_factory.mktemp("embedded"),
        openssl_dir=OPENSSL_DIR,
    )
    runtime = EmbeddedRuntime(settings, Metrics(), with_broker=True, with_redis=True)
    asyncio.run(runtime.start(watch=False))
    try:
        yield Stack(runtime.bootstrap, runtime.redis_url, "embedded")
    finally:
        runtime.stop_processes()
