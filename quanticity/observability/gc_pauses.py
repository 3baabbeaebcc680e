"""Garbage-collector pauses: measured, and kept short by freezing what lives for the whole run.

CPython's cyclic collector stops the process while it walks a generation. The oldest
generation holds everything that survived start-up: a Faust app, aiokafka clients, pydantic
schemas, ib_insync's tickers. Measured in the IBKR ingest benchmark, a full collection of that
process took 70–100 ms, every coroutine waiting for it: one of those inside a measured window
turned a 5 ms p99 into 65 ms. :func:`freeze_long_lived` runs one full collection and then
moves every surviving object into the permanent generation (``gc.freeze``), which later
collections skip; objects created afterwards are collected as usual. Roles call it once they
hold their long-lived state (after start-up, after subscribing).

:class:`GcPauseMeter` observes every collection's duration per generation in
``gc_pause_seconds`` (a histogram), so an operator sees pauses next to the latencies they cause.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Histogram

log = structlog.get_logger(__name__)

_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def freeze_long_lived(reason: str) -> float:
    """Collect once, then exempt every object alive now from later collections; returns the pause (s)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    pause = time.perf_counter() - started
    log.info("gc_frozen", reason=reason, frozen_objects=gc.get_freeze_count(), pause_ms=round(pause * 1000, 1))
    return pause


class GcPauseMeter:
    """Observes the duration of every garbage collection of this process, by generation.

    Args:
        registry: where ``gc_pause_seconds`` is registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pauses = Histogram(
            "gc_pause_seconds",
            "Duration of each cyclic garbage collection (the process is stopped meanwhile), by generation",
            ["generation"],
            buckets=_PAUSE_BUCKETS,
            registry=registry,
        )
        self._children = [self.pauses.labels(str(g)) for g in range(3)]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        """Start observing (idempotent)."""
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        """Stop observing."""
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            generation = info.get("generation", 2)
            self._children[min(max(generation, 0), 2)].observe(time.perf_counter() - self._started)
