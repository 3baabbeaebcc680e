"""The analytics store: TTL = validity on write, stale results refused (and counted) on read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import orjson
import pytest

from quanticity.observability.metrics import Metrics
from quanticity.storage.analytics_store import (
    AnalyticsStore,
    ResultWrite,
    freshness,
    greeks_key,
    greeks_summary_key,
    result_key,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


class FakeRedis:
    """The handful of commands the store uses, in memory, with TTLs in milliseconds."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttl_ms: dict[str, int] = {}
        self.lists: dict[str, list[bytes]] = {}
        self.executed = 0

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        return self.lists.get(key, [])[start : None if stop == -1 else stop + 1]


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def set(self, key: str, value: bytes, px: int | None = None) -> None:
        self.ops.append(("set", (key, value), {"px": px}))

    def lpush(self, key: str, value: bytes) -> None:
        self.ops.append(("lpush", (key, value), {}))

    def ltrim(self, key: str, start: int, stop: int) -> None:
        self.ops.append(("ltrim", (key, start, stop), {}))

    def lrange(self, key: str, start: int, stop: int) -> None:
        self.ops.append(("lrange", (key, start, stop), {}))

    async def execute(self) -> list[Any]:
        self.redis.executed += 1
        results: list[Any] = []
        for op, args, kwargs in self.ops:
            if op == "set":
                self.redis.values[args[0]] = args[1]
                if kwargs["px"] is not None:
                    self.redis.ttl_ms[args[0]] = kwargs["px"]
                results.append(True)
            elif op == "lpush":
                self.redis.lists.setdefault(args[0], []).insert(0, args[1])
                results.append(len(self.redis.lists[args[0]]))
            elif op == "ltrim":
                key, start, stop = args
                self.redis.lists[key] = self.redis.lists[key][start : None if stop == -1 else stop + 1]
                results.append(True)
            else:
                key, start, stop = args
                results.append(self.redis.lists.get(key, [])[start : None if stop == -1 else stop + 1])
        return results


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup() -> Iterator[tuple[AnalyticsStore, FakeRedis, Clock, Metrics]]:
    redis = FakeRedis()
    clock = Clock(NOW)
    metrics = Metrics()
    yield AnalyticsStore(redis, metrics.analytics, "p:", clock), redis, clock, metrics  # type: ignore[arg-type]


def _doc(valid_s: float, **extra: Any) -> bytes:
    return orjson.dumps(
        {"computed_at": NOW.isoformat(), "valid_until": (NOW + timedelta(seconds=valid_s)).isoformat(), **extra}
    )


def _stale(metrics: Metrics, module: str) -> float:
    return metrics.registry.get_sample_value("analytics_stale_results_total", {"module": module}) or 0.0


def test_key_scheme() -> None:
    assert greeks_key("SPY", "2026-12-18") == "analytics:greeks:SPY:2026-12-18"
    assert greeks_summary_key("SPY") == "analytics:greeks:SPY"
    assert result_key("vpin", "QQQ") == "analytics:vpin:QQQ"
    assert result_key("regime") == "analytics:regime"


async def test_write_sets_ttl_to_validity_under_the_prefix(setup: Any) -> None:
    store, redis, _clock, _metrics = setup
    stored = await store.write(
        [
            ResultWrite("analytics:greeks:SPY:2026-11-24", "greeks", _doc(30), NOW + timedelta(seconds=30)),
            ResultWrite("analytics:greeks:SPY", "greeks", _doc(300), NOW + timedelta(seconds=300)),
        ]
    )
    assert len(stored) == 2 and redis.executed == 1  # one round trip
    assert redis.ttl_ms == {"p:analytics:greeks:SPY:2026-11-24": 30_000, "p:analytics:greeks:SPY": 300_000}


async def test_a_result_past_validity_is_not_written_and_is_counted(setup: Any) -> None:
    store, redis, _clock, metrics = setup
    stored = await store.write([ResultWrite("analytics:vpin:SPY", "vpin", _doc(-1), NOW - timedelta(seconds=1))])
    assert stored == [] and redis.values == {} and redis.executed == 0
    assert _stale(metrics, "vpin") == 1


async def test_fresh_results_are_served_and_stale_ones_refused(setup: Any) -> None:
    store, _redis, clock, metrics = setup
    await store.write(
        [ResultWrite("analytics:greeks:SPY:2026-11-24", "greeks", _doc(30, spot=600.0), NOW + timedelta(seconds=30))]
    )
    fresh = await store.greeks("SPY", "2026-11-24")
    assert fresh is not None and fresh.document["spot"] == 600.0
    assert fresh.valid_until == NOW + timedelta(seconds=30) and fresh.computed_at == NOW
    # The key is still there (the server's TTL has not run out, or the clocks differ): still refused.
    clock.now = NOW + timedelta(seconds=30)
    assert await store.greeks("SPY", "2026-11-24") is None
    assert _stale(metrics, "greeks") == 1
    assert await store.greeks("SPY", "2026-12-18") is None  # missing is not stale
    assert _stale(metrics, "greeks") == 1


async def test_reading_something_that_is_not_a_result_raises(setup: Any) -> None:
    store, redis, _clock, _metrics = setup
    redis.values["p:analytics:regime"] = b"not json"
    with pytest.raises(ValueError, match="does not hold JSON"):
        await store.result("regime")
    redis.values["p:analytics:regime"] = b'{"valid_until": "2026-11-24T15:00:00+00:00"}'
    with pytest.raises(ValueError, match="computed_at"):
        await store.result("regime")


def test_freshness_needs_aware_times() -> None:
    doc = {"computed_at": "2026-11-24T15:00:00", "valid_until": "2026-11-24T15:00:30"}
    with pytest.raises(ValueError, match="timezone"):
        freshness(doc, NOW)
    aware = {"computed_at": NOW.isoformat(), "valid_until": (NOW + timedelta(seconds=1)).isoformat()}
    assert freshness(aware, NOW)[2] is True
    assert freshness(aware, NOW + timedelta(seconds=1))[2] is False  # valid_until itself is stale


async def test_change_log_keeps_the_newest_entries(setup: Any) -> None:
    store, _redis, _clock, _metrics = setup
    for i in range(5):
        await store.append_log("regime", {"i": i}, max_length=3)
    assert [e["i"] for e in await store.change_log("regime")] == [4, 3, 2]
