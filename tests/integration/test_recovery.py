"""Done-when: a killed Redis or broker shows up in metrics and logs, and the platform recovers.

Runs the platform with its own embedded Tansu and Redis Stack (as `make run` does),
SIGKILLs each server in turn, and checks ``redis_connected`` / ``broker_errors_total``,
the supervisor's restart, and that quotes are stored again afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from quanticity.app.platform import Platform
from quanticity.settings import Settings
from tests.conftest import OPENSSL_DIR, free_port

pytestmark = pytest.mark.integration


async def _until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


async def test_killed_redis_and_broker_are_reported_and_recovered(
    tmp_path: Path, platform_factory: Callable[..., Platform]
) -> None:
    """SIGKILL Redis, then the broker: the gauges/counters say so, and quotes flow again after each."""
    settings = Settings(
        _env_file=None,
        embedded={
            "kafka_port": free_port(),
            "redis_port": free_port(),
            "home": tmp_path / "home",
            "openssl_dir": OPENSSL_DIR,
        },
        redis={"health_interval_s": 0.2},
        observability={"metrics_port": 0, "textfile_dir": tmp_path / "textfiles"},
        demo={"interval_s": 0.2, "symbols": ["SPY"]},
        heartbeat={"interval_s": 0.5},
    )
    platform = platform_factory(settings, ["store", "ingest-demo"])
    await platform.start()
    assert platform.runtime is not None
    metric = platform.metrics.registry.get_sample_value
    redis = Redis.from_url(platform.runtime.redis_url)

    async def samples_after(t_ms: int) -> bool:
        try:
            return len(await redis.execute_command("TS.RANGE", "underlyings:SPY:mid", t_ms, "+")) >= 3
        except Exception:  # noqa: BLE001 - connection refused while Redis is down, or no key yet
            return False

    try:
        await _until(lambda: samples_after(0), 60, "first quotes stored")
        pids = platform.runtime.pids()

        os.kill(pids["redis"] or 0, signal.SIGKILL)
        await _until(lambda: metric("redis_connected") == 0, 10, "redis_connected drops to 0")
        assert (metric("redis_errors_total", {"operation": "ping"}) or 0) >= 1
        await _until(lambda: metric("redis_connected") == 1, 30, "redis_connected back to 1")
        assert metric("embedded_restarts_total", {"service": "redis"}) == 1
        back = int(time.time() * 1000)
        await _until(lambda: samples_after(back), 30, "quotes stored after the Redis restart")
        # AOF: what was stored before the kill survived it
        assert len(await redis.execute_command("TS.RANGE", "underlyings:SPY:mid", 0, back)) >= 3

        os.kill(pids["broker"] or 0, signal.SIGKILL)
        await _until(
            lambda: (metric("broker_errors_total", {"kind": "unreachable"}) or 0) >= 1, 10, "broker error counted"
        )
        assert metric("broker_connected") == 0
        await _until(lambda: metric("broker_connected") == 1, 40, "broker_connected back to 1")
        assert metric("embedded_restarts_total", {"service": "broker"}) == 1
        back = int(time.time() * 1000)
        await _until(lambda: samples_after(back), 60, "quotes stored after the broker restart")
        assert metric("system_module_up", {"module": "store"}) == 1
    finally:
        await redis.aclose()
