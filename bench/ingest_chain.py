"""A full SPY-size chain from HTTP body to samples in Redis: ours vs a straightforward baseline.

Stages per iteration (one ~9.5k-contract SPY chain, all expirations, as the simulator serves it):

- ours: ``normalize`` of the CSV body (pyarrow) → ``encode_record`` of every snapshot (the
  bytes that go on the ``quotes`` topic) → ``OptionChainStore.store`` (one pre-encoded
  ``TS.MADD`` of a ``mark`` and an ``iv`` sample per contract up to 60 DTE, plus one JSON
  document per expiry);
- baseline: stdlib ``json.loads`` of the JSON body → per-key redis-py ``TS.ADD`` of ``mark``
  and ``iv`` for every contract in one pipeline;
- floor: the Redis server's own time for our ``TS.MADD`` calls (``INFO commandstats``).

Run: ``python bench/ingest_chain.py [iterations]``. It starts its own Redis Stack (embedded
binaries) on a free port and stops it. Report ratios: this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from redis.asyncio import Redis

from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.process import free_loopback_port
from quanticity.schemas import OptionChainSnapshot
from quanticity.schemas.codec import encode_record
from quanticity.settings.model import EmbeddedSettings
from quanticity.simulation.alphavantage import formats
from quanticity.simulation.market import SimulatedMarket
from quanticity.storage.option_store import OptionChainStore
from quanticity.storage.redis_timeseries import TimeSeriesWriter

ROOT = Path(__file__).resolve().parent.parent


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"


async def _madd_usec(redis: Redis) -> float:
    stats = await redis.info("commandstats")
    entry = stats.get("cmdstat_ts.madd") or stats.get("cmdstat_TS.MADD") or {}
    return float(entry.get("usec", 0.0))


async def run(iterations: int) -> None:
    when = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    market = SimulatedMarket(7, when, ["SPY"])
    table = market.chain("SPY", when)
    csv_body = str(formats.options("Realtime Options", table, "SPY", when.date(), True, True)).encode()
    json_body = json.dumps(formats.options("Realtime Options", table, "SPY", when.date(), True, False)).encode()
    print(f"chain: {len(table.strike)} contracts; CSV {len(csv_body) / 1e6:.2f} MB, JSON {len(json_body) / 1e6:.2f} MB")

    with tempfile.TemporaryDirectory() as home:
        settings = EmbeddedSettings(
            kafka_port=free_loopback_port(),
            redis_port=free_loopback_port(),
            home=Path(home),
            openssl_dir=ROOT / ".quanticity" / "openssl1.1",
        )
        runtime = EmbeddedRuntime(settings, Metrics(), with_broker=False, with_redis=True)
        await runtime.start(watch=False)
        redis = Redis.from_url(runtime.redis_url)
        try:
            ours = {"normalize": [], "encode": [], "store": [], "total": []}
            baseline: list[float] = []
            floor: list[float] = []
            store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), "ours:"))
            for i in range(iterations + 2):  # two warm-ups: series creation, JIT-free paths
                ctx = NormalizeContext(run_id="bench", mode="sim", ingest_time=datetime.now(UTC), now=when)
                t0 = time.perf_counter()
                result = normalize("REALTIME_OPTIONS", {"symbol": "SPY", "datatype": "csv"}, csv_body, context=ctx)
                t1 = time.perf_counter()
                snapshots = [r for r in result.records if isinstance(r, OptionChainSnapshot)]
                wire = [encode_record(s) for s in snapshots]
                t2 = time.perf_counter()
                before = await _madd_usec(redis)
                await store.store(snapshots)
                t3 = time.perf_counter()
                after = await _madd_usec(redis)
                if i >= 2:
                    ours["normalize"].append(t1 - t0)
                    ours["encode"].append(t2 - t1)
                    ours["store"].append(t3 - t2)
                    ours["total"].append(t3 - t0)
                    floor.append((after - before) / 1e6)
                del wire

                t0 = time.perf_counter()
                rows = json.loads(json_body)["data"]
                async with redis.pipeline(transaction=False) as pipe:
                    ts = int(time.time() * 1000)
                    for row in rows:
                        if date.fromisoformat(row["expiration"]) > date(2027, 1, 23):
                            continue  # the same 60-DTE policy as ours, for a like-for-like write
                        base = f"base:{row['contractID']}"
                        pipe.execute_command("TS.ADD", f"{base}:mark", ts, float(row["mark"]), "ON_DUPLICATE", "LAST")
                        pipe.execute_command(
                            "TS.ADD", f"{base}:iv", ts, float(row["implied_volatility"]), "ON_DUPLICATE", "LAST"
                        )
                    await pipe.execute()
                if i >= 2:
                    baseline.append(time.perf_counter() - t0)
            samples = sum(len(s.strike) for s in snapshots if (s.expiry - when.date()).days <= 60) * 2
            docs = len(snapshots)
            print(f"samples per chain written: ~{samples} (mark + iv, expirations ≤ 60 DTE) + {docs} JSON docs")
            for stage, values in ours.items():
                print(f"ours {stage:<10} {_percentiles(values)}")
            print(f"baseline   {_percentiles(baseline)}   (json.loads + per-key TS.ADD pipeline)")
            print(f"floor      {_percentiles(floor)}   (Redis server time of our TS.MADD)")
            ratio = statistics.median(baseline) / statistics.median(ours["total"])
            print(f"ours is {ratio:.1f}x faster than the baseline (median, same run)")
        finally:
            await redis.aclose()
            runtime.stop_processes()


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
