"""Per-key coalescing of fast inputs: at most one run per key per window, latest input wins.

A chain snapshot that arrives when its key is idle runs at once (no added latency). One that
arrives while the key is running, or less than ``window_s`` after the last run started, waits
until the window ends; if another arrives meanwhile it replaces the waiting one, which is
counted as superseded. Different keys never wait for each other here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
_PRUNE_EVERY = 1000  # submits between two sweeps of idle keys
V = TypeVar("V")


@dataclass
class _Slot(Generic[V]):
    pending: V | None = None
    last_start: float = -math.inf
    task: asyncio.Task[None] | None = None


class Coalescer(Generic[K, V]):
    """Runs ``run(key, value)`` for the latest value of each key, at most once per window.

    Args:
        window_s: minimum time between the starts of two runs of one key.
        run: the work; it must handle its own errors (an escaping exception is logged and
            counted through ``on_error`` and the key carries on with its next value).
        on_superseded: called once per value replaced before it ran.
        on_error: called with the key and the exception when ``run`` raised.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        window_s: float,
        run: Callable[[K, V], Awaitable[None]],
        *,
        on_superseded: Callable[[K], None],
        on_error: Callable[[K, BaseException], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._run = run
        self._on_superseded = on_superseded
        self._on_error = on_error
        self._clock = clock
        self._slots: dict[K, _Slot[V]] = {}
        self._submits = 0

    def submit(self, key: K, value: V) -> None:
        """Schedule ``value`` (not None) for ``key``; replaces a value of that key that has not started."""
        self._submits += 1
        if self._submits % _PRUNE_EVERY == 0:
            self._prune()
        slot = self._slots.setdefault(key, _Slot())
        if slot.pending is not None:
            self._on_superseded(key)
        slot.pending = value
        if slot.task is None:
            slot.task = asyncio.get_running_loop().create_task(self._drive(key, slot))

    def _prune(self) -> None:
        """Forget idle keys whose window has passed (expired expiries would otherwise pile up)."""
        now = self._clock()
        for key in [k for k, s in self._slots.items() if s.task is None and now - s.last_start >= self.window_s]:
            del self._slots[key]

    @property
    def keys(self) -> int:
        """Keys currently tracked."""
        return len(self._slots)

    @property
    def busy(self) -> int:
        """Keys with a value waiting or running."""
        return sum(1 for slot in self._slots.values() if slot.task is not None)

    async def _drive(self, key: K, slot: _Slot[V]) -> None:
        try:
            while slot.pending is not None:
                wait = slot.last_start + self.window_s - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                value, slot.pending = slot.pending, None
                slot.last_start = self._clock()
                try:
                    await self._run(key, value)
                except Exception as exc:  # noqa: BLE001 - one bad run must not stop the key; logged and counted
                    log.exception("coalesced_run_failed", key=str(key))
                    self._on_error(key, exc)
        finally:
            # No await between the last check of `pending` and this line: a submit() cannot slip in.
            slot.task = None

    async def drain(self) -> None:
        """Wait until every key is idle (pending values included)."""
        while tasks := [slot.task for slot in self._slots.values() if slot.task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every waiting or running value (role shutdown)."""
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in self._slots.values():
            slot.pending = None
