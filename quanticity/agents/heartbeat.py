"""Every role's heartbeat: proves its event loop is alive, on /metrics and in the log."""

from __future__ import annotations

import time
from typing import Any

import structlog

from quanticity.app.context import RoleContext

log = structlog.get_logger(__name__)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the heartbeat timer of ``role`` on ``app``."""
    interval = ctx.settings.current.heartbeat.interval_s
    gauge = ctx.metrics.heartbeat_timestamp.labels(role=role)

    @app.timer(interval, name=f"{role}-heartbeat")
    async def heartbeat() -> None:
        gauge.set(time.time())
        log.debug("heartbeat", role=role)

    # First beat at start, not one interval later: a fresh role is visibly alive at once.
    @app.task
    async def first_beat() -> None:
        gauge.set(time.time())
