"""GC pause metering and the freeze of long-lived objects."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from quanticity.observability.gc_pauses import GcPauseMeter, freeze_long_lived


def _count(registry: CollectorRegistry, generation: str) -> float:
    return registry.get_sample_value("gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_each_collection_is_observed_by_generation_while_installed() -> None:
    registry = CollectorRegistry()
    meter = GcPauseMeter(registry)
    meter.install()
    meter.install()  # idempotent: one observation per collection, not two
    try:
        gc.collect()
        gc.collect(0)
    finally:
        meter.uninstall()
    assert _count(registry, "2") == 1 and _count(registry, "0") >= 1  # gen 0 may also run by itself
    gc.collect()
    assert _count(registry, "2") == 1  # uninstalled: no longer observed
    assert (registry.get_sample_value("gc_pause_seconds_sum", {"generation": "2"}) or 0.0) > 0


def test_freeze_exempts_the_objects_alive_now_until_unfrozen() -> None:
    kept = [[i] for i in range(1000)]  # long-lived containers the collector would walk
    try:
        pause = freeze_long_lived("test")
        assert pause > 0 and gc.get_freeze_count() >= len(kept)
        assert not any(o is kept for o in gc.get_objects())  # frozen objects are out of every generation
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())
