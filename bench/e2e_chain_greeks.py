"""End to end: a 10k-contract chain snapshot arriving on ``quotes`` → Greeks in Redis.

Starts the embedded stack (Tansu + Redis Stack) on free ports and the analytics role in this
process, the way ``quanticity up`` runs it, then publishes chain snapshots on ``quotes`` at a
steady pace (one every ``--every`` seconds, longer than the 250 ms coalescing window so none
is coalesced away). Each snapshot's ``ingest_time`` is stamped just before it is sent, as the
ingest roles do; "stored" is when Redis announces the ``SET`` of its
``analytics:greeks:{symbol}:{expiry}`` key (keyspace notifications, no polling).

Layouts (``--layout``):

- ``single``: one 10,000-contract snapshot per chain (5,000 strikes, calls and puts): the
  worst case, one ~1.8 MB message;
- ``expiries``: the same 10,000 contracts as 10 snapshots of 1,000 (one message per
  underlying+expiry, as the ingest role publishes them); latency runs from the first
  snapshot's ingest to the last expiry's Greeks stored.

``--load`` also runs the ``store`` and ``ingest-av`` roles with the shipped cadence matrix
against the AlphaVantage simulator in the same process (the full Module 1 cadence; the
analytics role then computes the simulator's chains too). ``--load-process`` runs the same
load as ``quanticity worker --role store --role ingest-av`` in a process of its own, as a
deployment that scales workers per role would, with the analytics role alone in this one.
With either, measuring starts once the load's start-up is over (``settle_load``: no series
created for 10 s): its first pass creates every series of every chain, a one-off storm of
hundreds of thousands of commands that is not the cadence.

Every run then sends chains for ``WARM_UP_S`` (5 s) without measuring them: connections and
first-message paths, and the store role's first sight of the chain, when it creates its ~30k
series and reads them back (one ``TS.MGET FILTER`` of 20k series holds Redis for ~250 ms), a
cost paid once per new chain, not per snapshot.

Run from the project root::

    PYTHONPATH=. python bench/e2e_chain_greeks.py [--snapshots 40] [--layout single|expiries] [--load | --load-process]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.common import ROOT, cpu_seconds, embedded_runtime, start_worker
from quanticity.agents import analytics
from quanticity.analytics import compute_greeks
from quanticity.app.platform import Platform
from quanticity.app.roles import RoleSpec, role
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.schemas import OptionChainSnapshot, utc_now
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings, SettingsHolder, load_settings
from quanticity.topology.broker_profile import producer_options
from quanticity.topology.registry import TopicRegistry

ANALYTICS_ROLE = RoleSpec("analytics", "Greeks and analytics kernels", analytics.install)
CONTRACTS = 10_000
SPOT, RATE = 600.0, 0.043
MAX_REQUEST_BYTES = 8 * 1024 * 1024
WARM_UP_S = 5.0


def chain_snapshot(
    n: int, expiry: date, record_id: str, event_time: datetime, rng: np.random.Generator
) -> OptionChainSnapshot:
    """``n`` contracts on a smile, bid/ask around the model price, provider Greeks in AlphaVantage units."""
    half = n // 2
    strike = np.repeat(np.round(np.linspace(0.5 * SPOT, 1.5 * SPOT, half), 2), 2)
    is_call = np.tile([True, False], half)
    settle = datetime.combine(expiry, datetime.min.time(), tzinfo=UTC) + timedelta(hours=21)
    t = max((settle - event_time).total_seconds(), 60.0) / (365.0 * 86400.0)
    m = np.log(strike / SPOT)
    vol = 0.16 + 0.5 * m * m - 0.08 * m + rng.normal(0.0, 0.002, n)
    g = compute_greeks(SPOT, strike, t, RATE, 0.0, vol, is_call)
    half_spread = np.minimum(0.01 + 0.01 * g.price, 0.5 * g.price)

    def floats(a: np.ndarray) -> list[float | None]:
        return a.tolist()  # type: ignore[no-any-return]

    return OptionChainSnapshot(
        symbol="SPY",
        expiry=expiry,
        strike=floats(strike),
        right=["C" if c else "P" for c in is_call],
        bid=floats(g.price - half_spread),
        ask=floats(g.price + half_spread),
        last=floats(g.price),
        volume=floats(np.round(rng.uniform(0, 1000, n))),
        open_interest=floats(np.round(rng.uniform(0, 5000, n))),
        implied_vol=floats(vol),
        delta=floats(g.delta),
        gamma=floats(g.gamma),
        theta=floats(g.theta / 365.0),
        vega=floats(g.vega * 0.01),
        rho=floats(g.rho * 0.01),
        record_id=record_id,
        event_time=event_time,
        source="sim",
        run_id="bench",
        mode="sim",
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(name: str, values_ms: list[float]) -> str:
    return (
        f"{name:<34} n={len(values_ms):<4} p50 {statistics.median(values_ms):7.1f} ms   "
        f"p99 {percentile(values_ms, 0.99):7.1f} ms   max {max(values_ms):7.1f} ms"
    )


async def run(snapshots: int, every_s: float, layout: str, load: bool, load_process: bool) -> None:
    with tempfile.TemporaryDirectory() as home:
        runtime = embedded_runtime(Path(home), with_broker=True)
        await runtime.start(watch=False)
        worker = (
            start_worker(
                runtime, Path(home), "load-worker", ["store", "ingest-av"], topic_prefix="bench-", key_prefix="bench:"
            )
            if load_process
            else None
        )
        try:
            worker_pid = worker.pid if worker is not None else None
            await measure(runtime, Path(home), snapshots, every_s, layout, load, worker is not None, worker_pid)
        finally:
            if worker is not None:
                worker.stop(timeout_s=30)
            runtime.stop_processes()


class Stages:
    """Per-chain stage times from the role's own metrics (deltas of histogram sums and counts)."""

    SERIES = {
        "ingest → decoded by the agent": ("topic_consume_lag_seconds", {"topic": "quotes", "role": "analytics"}, 1e3),
        "compute (IV + Greeks + document)": ("analytics_compute_latency_ms", {"module": "greeks"}, 1.0),
        "ingest → stored (role's metric)": ("analytics_end_to_end_ms", {"module": "greeks"}, 1.0),
    }

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.samples: dict[str, list[float]] = {name: [] for name in self.SERIES}
        self._last = self._read()

    def _read(self) -> dict[str, tuple[float, float]]:
        get = self.metrics.registry.get_sample_value
        return {
            name: (get(f"{metric}_sum", labels) or 0.0, get(f"{metric}_count", labels) or 0.0)
            for name, (metric, labels, _) in self.SERIES.items()
        }

    def mark(self, keep: bool) -> None:
        """Close one chain: record the mean of each stage over the records it consumed."""
        now = self._read()
        for name, (total, count) in now.items():
            d_total, d_count = total - self._last[name][0], count - self._last[name][1]
            if keep and d_count:
                self.samples[name].append(d_total / d_count * self.SERIES[name][2])
        self._last = now


class KeyspaceWatch:
    """When Redis SETs each ``analytics:greeks:SPY:{expiry}`` key (keyspace notifications, no polling)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.stored: dict[str, float] = {}
        self.pubsub = redis.pubsub()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.redis.config_set("notify-keyspace-events", "K$")
        await self.pubsub.psubscribe("__keyspace@0__:bench:analytics:greeks:SPY:*")
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "pmessage" and message["data"] == b"set":
                self.stored[message["channel"].decode().rsplit(":", 1)[-1]] = time.time()

    async def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.stored) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        return len(self.stored) >= count

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped


def layout_of(layout: str) -> tuple[list[date], int]:
    """Expiries and contracts per snapshot of one chain."""
    today = utc_now().date()
    if layout == "single":
        return [today + timedelta(days=21)], CONTRACTS
    return [today + timedelta(days=7 * (i + 1)) for i in range(10)], CONTRACTS // 10


async def measure(
    runtime: EmbeddedRuntime,
    home: Path,
    snapshots: int,
    every_s: float,
    layout: str,
    load: bool,
    load_process: bool,
    worker_pid: int | None = None,
) -> None:
    settings, roles = bench_settings(runtime, home, load)
    metrics = Metrics()
    platform = Platform(SettingsHolder(settings, lambda: settings, metrics), metrics, roles, banner=io.StringIO())
    redis = Redis.from_url(runtime.redis_url)
    topic = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions).broker_name("quotes")
    producer = AIOKafkaProducer(
        bootstrap_servers=runtime.bootstrap, **producer_options(settings.kafka), max_request_size=MAX_REQUEST_BYTES
    )
    await platform.start()
    await producer.start()
    watch = KeyspaceWatch(redis)
    await watch.start()
    rng = np.random.default_rng(7)
    expiries, per = layout_of(layout)
    latencies_ms: list[float] = []
    stages = Stages(metrics)
    try:
        await asyncio.sleep(20.0 if load_process else 2.0)  # the consumer group settles; a worker starts its load
        if load or load_process:
            await settle_load(redis)
        cpu = CpuShares({**runtime.pids(), "load worker": worker_pid})
        # Warm-up rounds for WARM_UP_S: first-message paths and connections, and the store role's
        # first sight of the chain (it creates ~30k series and reads them back, once per new chain).
        warm_until = time.monotonic() + WARM_UP_S
        warm = True
        i = 0
        while len(latencies_ms) < snapshots:
            if i > 2 * snapshots + 100:
                raise SystemExit(f"only {len(latencies_ms)} of {snapshots} chains stored after {i} sent")
            if warm and time.monotonic() >= warm_until:
                warm = False
                stages.mark(keep=False)
            now = utc_now()
            chains = [chain_snapshot(per, e, f"bench-{i}-{e}", now, rng) for e in expiries]
            watch.stored.clear()
            ingest = utc_now()
            # As the ingest role publishes a reply's snapshots: all sends first, then the acknowledgements.
            sends = []
            for chain in chains:
                value = encode_record(chain.model_copy(update={"ingest_time": utc_now()}))
                sends.append(await producer.send(topic, value, key=b"SPY"))
            await asyncio.gather(*sends)
            complete = await watch.wait_for(len(expiries), 10.0)
            await asyncio.sleep(0.05)  # the role observes its metrics just after the SET
            stages.mark(keep=not warm and complete)
            if not complete:
                print(f"chain {i}: only {len(watch.stored)}/{len(expiries)} stored within 10 s", file=sys.stderr)
            elif not warm:
                latencies_ms.append((max(watch.stored.values()) - ingest.timestamp()) * 1000.0)
            i += 1
            await asyncio.sleep(every_s)
        shares = cpu.shares()
    finally:
        await watch.stop()
        await redis.aclose()
        await producer.stop()
        await platform.stop()
    report(layout, len(expiries), per, latencies_ms, stages, shares, load, load_process)


def report(
    layout: str,
    count: int,
    per: int,
    latencies_ms: list[float],
    stages: Stages,
    shares: dict[str, float],
    load: bool,
    load_process: bool,
) -> None:
    """Print the run's latencies, the role's stage metrics and the CPU shares."""
    where = "full, in this process" if load else "full, in its own worker process" if load_process else "none"
    print(f"layout {layout}: {count} snapshot(s) of {per} contracts per chain; load: {where}")
    print(describe("ingest → Greeks stored (keyspace)", latencies_ms))
    for name, values in stages.samples.items():
        if values:
            print(describe(name + (" (mean/snapshot)" if count > 1 else ""), values))
    if load or load_process:
        # The role's metrics have no per-record label: the load's chains (whose ingest time
        # comes before their normalization in ingest-av) are in those means too.
        print("(the stage lines are the role's own metrics over every record it handled, the load's included)")
    print(f"target p99 <= 100 ms: {'met' if percentile(latencies_ms, 0.99) <= 100.0 else 'NOT met'}")
    busy = ", ".join(f"{name} {share:.2f}" for name, share in shares.items())
    print(f"CPU s per wall s while measuring: {busy}; total {sum(shares.values()):.2f} of {os.cpu_count()} cores")


async def settle_load(redis: Redis, window_s: float = 10.0, most: int = 200, limit_s: float = 240.0) -> None:
    """Wait until the load's start-up is over: at most ``most`` series created in ``window_s`` (``limit_s`` at most).

    The first pass over the cadence matrix creates every series of every chain (about 10
    commands a contract, hundreds of thousands in all, in the first minute or so);
    measuring then would time that one-off storm, not the cadence. New indicator and
    underlying series keep trickling in for many minutes (the indicator round robin reaches
    each symbol's next indicator once a minute): a few dozen commands, not a chain's worth.
    Printed, so a run shows how long it took.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    history: list[tuple[float, int]] = []
    while True:
        stats = await redis.info("commandstats")
        now = loop.time()
        history.append((now, int((stats.get("cmdstat_ts.create") or {}).get("calls", 0))))
        recent = [calls for at, calls in history if now - at <= window_s]
        if now - history[0][0] >= window_s and recent[-1] - recent[0] <= most:
            settled = f"settled ({recent[-1] - recent[0]} in the last {window_s:.0f} s)"
            break
        if now - started >= limit_s:
            settled = f"still creating series after {limit_s:.0f} s"
            break
        await asyncio.sleep(1.0)
    print(f"load start-up: {history[-1][1]} TS.CREATE in {now - started:.0f} s, {settled}", file=sys.stderr)


class CpuShares:
    """CPU seconds per wall second of this process and others (with their children) since it was made."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._wall = time.perf_counter()
        self._start = self._read()

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:  # the process has ended: it has no children to count
            return []

    def _read(self) -> dict[str, float]:
        out = {"analytics (this process)": time.process_time()}
        for name, pid in self.pids.items():
            total = 0.0
            for one in (pid, *self._children(pid)):  # the load worker's AlphaVantage simulator
                with contextlib.suppress(OSError):  # ended between listing and reading: its time is gone with it
                    total += cpu_seconds(one)
            out[name] = total
        return out

    def shares(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        now = self._read()
        return {name: (now[name] - self._start.get(name, 0.0)) / wall for name in now}


def bench_settings(runtime: EmbeddedRuntime, home: Path, load: bool) -> tuple[Settings, list[RoleSpec]]:
    """Settings on the embedded servers; with ``load``, the shipped cadence matrix and its roles."""
    overrides: dict[str, Any] = {}
    roles: list[RoleSpec] = [ANALYTICS_ROLE]
    if load:
        shipped = load_settings(ROOT / "config", env_file=None)
        overrides = {
            "alphavantage": {"cadence": shipped.alphavantage.cadence.model_dump()},
            "watchlists": shipped.watchlists,
        }
        roles = [role("store"), ANALYTICS_ROLE, role("ingest-av")]
    settings = Settings(
        _env_file=None,
        kafka={"bootstrap": runtime.bootstrap, "topic_prefix": "bench-"},
        redis={"url": runtime.redis_url, "key_prefix": "bench:"},
        embedded={"home": home / "platform"},
        observability={"metrics_port": 0, "textfile_dir": home / "metrics"},
        demo={"enabled": False},
        **overrides,
    )
    return settings, roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=40, help="measured chains (>= 30)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between chains")
    parser.add_argument("--layout", choices=("single", "expiries"), default="single")
    loads = parser.add_mutually_exclusive_group()
    loads.add_argument("--load", action="store_true", help="also run store + ingest-av at the full cadence")
    loads.add_argument(
        "--load-process", action="store_true", help="the same load, as a `quanticity worker` process of its own"
    )
    args = parser.parse_args()
    asyncio.run(run(args.snapshots, args.every, args.layout, args.load, args.load_process))


if __name__ == "__main__":
    main()
