"""Clocks for the scheduler: the wall clock, a compressed clock (soak) and a virtual one (tests)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledClock:
    """Simulated time running ``speed`` times faster than real time from ``start``.

    The soak uses it to play a 24 h cadence in 24 min at ``speed=60``.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start = start
        self.speed = speed
        self._loop_start = asyncio.get_running_loop().time()

    def now(self) -> datetime:
        elapsed = asyncio.get_running_loop().time() - self._loop_start
        return self.start + timedelta(seconds=elapsed * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


class VirtualClock:
    """Time that moves only when someone sleeps: deterministic and instant."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=max(seconds, 0.0))
        await asyncio.sleep(0)
