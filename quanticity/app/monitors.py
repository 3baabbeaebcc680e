"""Connection monitors: ``redis_connected`` and ``broker_connected``, with logged transitions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quanticity.observability.metrics import Metrics
from quanticity.runtime.probes import broker_answers

log = structlog.get_logger(__name__)


class ConnectionMonitor:
    """Polls a probe and keeps a 0/1 gauge; each lost connection is logged and counted.

    Args:
        name: ``redis`` or ``broker`` (log field).
        probe: returns True while the server answers.
        on_change: called with the new state on every transition.
        interval_s: time between probes.
    """

    def __init__(
        self, name: str, probe: Callable[[], Awaitable[bool]], on_change: Callable[[bool], None], interval_s: float
    ) -> None:
        self.name = name
        self.probe = probe
        self.on_change = on_change
        self.interval_s = interval_s
        self.state: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """Probe once and record the result."""
        ok = await self.probe()
        if ok != self.state:
            if ok:
                log.info("connection_up", server=self.name)
            else:
                log.error(
                    "connection_lost",
                    server=self.name,
                    action=f"the platform retries; check the {self.name} process and its log",
                )
            self.state = ok
            self.on_change(ok)
        return ok

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-monitor")

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def redis_monitor(redis: Redis, metrics: Metrics, interval_s: float, timeout_s: float) -> ConnectionMonitor:
    """Monitor that PINGs Redis and drives ``redis_connected``."""

    async def probe() -> bool:
        try:
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(timeout_s):
                ok = bool(await redis.ping())
            metrics.redis_command_latency.labels(operation="ping").observe(asyncio.get_running_loop().time() - started)
            return ok
        except (RedisError, OSError, TimeoutError):
            return False

    def changed(ok: bool) -> None:
        metrics.redis_connected.set(1 if ok else 0)
        if not ok:
            metrics.redis_errors.labels(operation="ping").inc()

    return ConnectionMonitor("redis", probe, changed, interval_s)


def broker_monitor(bootstrap: str, metrics: Metrics, interval_s: float) -> ConnectionMonitor:
    """Monitor that asks the broker for metadata and drives ``broker_connected``."""

    def changed(ok: bool) -> None:
        metrics.broker_connected.set(1 if ok else 0)
        if not ok:
            metrics.broker_errors.labels(kind="unreachable").inc()

    return ConnectionMonitor(
        "broker", lambda: broker_answers(bootstrap, timeout_s=min(interval_s, 2.0)), changed, interval_s
    )
