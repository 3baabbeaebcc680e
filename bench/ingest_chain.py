"""A full SPY-size chain from HTTP body to samples in Redis: ours vs a straightforward baseline.

The run plays the 12-second REALTIME_OPTIONS cadence: iteration ``i`` ingests the simulator's
SPY chain (~9.2k contracts, all expirations) as quoted at ``T0 + 12 s · i``, so every chain is
new data and the samples' timestamps advance as in production (a 1-minute compaction bucket
closes every fifth poll). Stages per iteration:

- ours: ``normalize`` of the CSV body (pyarrow) → ``encode_record`` of every snapshot (the
  bytes that go on the ``quotes`` topic) → ``publish``: the records sent to ``quotes`` on the
  embedded broker, with the ingest role's producer settings, until the broker acknowledged
  every one → ``OptionChainStore.store`` (a ``TS.MADD`` of a ``mark`` and an ``iv`` sample
  per contract up to 60 DTE and a ``SET`` of the chain document, per expiry, all over one
  connection in one round trip);
- baseline: stdlib ``json.loads`` of the JSON body → per-key redis-py ``TS.ADD`` of ``mark``
  and ``iv`` for every contract up to 60 DTE, in one pipeline;
- floor: the Redis server's own time for our commands (``INFO commandstats``): ``TS.MADD``
  and the documents' ``SET`` separately;
- Redis CPU: the server process's CPU time (every thread, from ``/proc``) over the timed
  polls of ours, per poll: command execution plus reading and parsing the requests, the
  append-only file and the replies, i.e. what the store waits for at best;
- rules: after the timed loop, the polls' raw samples replayed into series with server-side
  1 m / 5 m rules and into series without any compaction, to show what the rules would cost
  the server (the store computes the compactions itself and writes them when a bucket closes).

Also printed, outside the total: ``decode``, the store role's ``decode_record`` of the wire
bytes.

The total above is the stages back to back in one process, the store writing a poll's
snapshots in one call. The production path differs: the store role consumes the records from
the broker as they arrive and group-commits them (the chains that queue while a write is in
flight go out together, with their ingestion-index entries). ``--store-role POLLS`` also
measures that path: the ``store`` role runs as ``quanticity worker --role store`` in a
process of its own, this process normalizes, encodes and publishes each poll (one per second
after the previous one is stored), and the time runs from the HTTP body to Redis announcing
the ``SET`` of the poll's last chain document (keyspace notifications; the records of a
symbol keep their order on one partition, and each document is written after its samples).

The set-up (the simulated market, every poll's bodies) is frozen out of the garbage
collector's full collections, as the platform freezes its start-up state: otherwise a
collection that walks it lands in a timed stage now and then.

Run: ``PYTHONPATH=. python bench/ingest_chain.py [iterations] [--store-role POLLS]``. It
starts its own broker and Redis Stack (embedded binaries, AOF on, the ``dev`` broker profile,
as ``make run``) on free ports and stops them. Report ratios from one run: this machine is
shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.common import cpu_seconds, embedded_runtime, start_worker
from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.observability.gc_pauses import freeze_long_lived
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.schemas import OptionChainSnapshot
from quanticity.schemas.codec import decode_record, encode_record
from quanticity.settings.model import KafkaSettings
from quanticity.simulation.alphavantage import formats
from quanticity.simulation.market import SimulatedMarket
from quanticity.storage.option_store import (
    DEFAULT_SERIES_MAX_DTE,
    OptionChainStore,
    chain_samples,
    chain_series,
    days_to_expiry,
)
from quanticity.storage.redis_timeseries import (
    DEFAULT_MAX_SAMPLES_IN_FLIGHT,
    PRICE_LADDER,
    SampleBatch,
    TimeSeriesWriter,
)
from quanticity.topology.admin import ensure_topics
from quanticity.topology.broker_profile import producer_options
from quanticity.topology.registry import TopicRegistry

T0 = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)  # a Tuesday, 10:30 New York: mid-session
CADENCE = timedelta(seconds=12)
WARM_UPS = 2  # series creation and first-use paths
TOPIC_PREFIX = "bench-"
STORE_ROLE_TOPIC_PREFIX = "role-"
STORE_ROLE_PREFIX = "role:"  # the store role's keys, apart from the in-process store's "ours:"
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # a produce request may carry a whole expiry's record


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _line(name: str, samples: list[float], note: str = "") -> str:
    p50, p99 = _percentiles(samples)
    return f"{name:<16} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   {note}"


async def _server_usec(redis: Redis) -> dict[str, float]:
    stats = await redis.info("commandstats")
    return {
        name: float((stats.get(f"cmdstat_{name}") or stats.get(f"cmdstat_{name.upper()}") or {}).get("usec", 0.0))
        for name in ("ts.madd", "set", "json.set")
    }


def _bodies(iterations: int) -> list[tuple[datetime, bytes, bytes]]:
    """(quote time, CSV body, JSON body) of the SPY chain at each poll of the run."""
    market = SimulatedMarket(7, T0, ["SPY"])
    out = []
    for i in range(iterations):
        at = T0 + i * CADENCE
        table = market.chain("SPY", at)
        csv_body = str(formats.options("Realtime Options", table, "SPY", at.date(), True, True)).encode()
        json_body = json.dumps(formats.options("Realtime Options", table, "SPY", at.date(), True, False)).encode()
        out.append((at, csv_body, json_body))
    return out


async def _baseline(redis: Redis, json_body: bytes, at: datetime) -> float:
    started = time.perf_counter()
    rows = json.loads(json_body)["data"]
    horizon = at.date() + timedelta(days=60)
    ts = int(at.timestamp() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            if date.fromisoformat(row["expiration"]) > horizon:
                continue  # the same 60-DTE policy as ours, for a like-for-like write
            base = f"base:{row['contractID']}"
            pipe.execute_command("TS.ADD", f"{base}:mark", ts, float(row["mark"]), "ON_DUPLICATE", "LAST")
            pipe.execute_command("TS.ADD", f"{base}:iv", ts, float(row["implied_volatility"]), "ON_DUPLICATE", "LAST")
        await pipe.execute()
    return time.perf_counter() - started


def _snapshots(at: datetime, csv_body: bytes) -> list[OptionChainSnapshot]:
    ctx = NormalizeContext(run_id="bench", mode="sim", ingest_time=at)
    result = normalize("REALTIME_OPTIONS", {"symbol": "SPY", "datatype": "csv"}, csv_body, context=ctx)
    return [r for r in result.records if isinstance(r, OptionChainSnapshot)]


async def _rules_share(redis: Redis, polls: list[tuple[datetime, bytes, bytes]]) -> tuple[list[float], list[float]]:
    """Server time of the polls' raw samples replayed into series with the 1 m + 5 m rules, and without any."""
    with_rules: list[float] = []
    without: list[float] = []
    for prefix, client_compaction in (("rules:", False), ("bare:", True)):
        writer = TimeSeriesWriter(redis, Metrics(), prefix)
        for n, (at, csv_body, _) in enumerate(polls):
            snapshots = _snapshots(at, csv_body)  # normalized again: the timed loop keeps no chain alive
            near = [s for s in snapshots if days_to_expiry(s) <= DEFAULT_SERIES_MAX_DTE]
            if n == 0:
                specs = [spec for chain in near for spec in chain_series(chain)]
                compactions = () if client_compaction else PRICE_LADDER  # server rules, or nothing
                await writer.ensure_series(
                    [replace(s, compactions=compactions, client_compaction=False) for s in specs]
                )
            batch = SampleBatch(prefix)
            batch.add([sample for chain in near for sample in chain_samples(chain)])
            before = (await _server_usec(redis))["ts.madd"]
            await writer.write(batch, "options")
            spent = ((await _server_usec(redis))["ts.madd"] - before) / 1e6
            if n >= WARM_UPS:
                (with_rules if not client_compaction else without).append(spent)
    return with_rules, without


async def _publish(producer: AIOKafkaProducer, topic: str, wire: list[bytes]) -> None:
    """Send a poll's records as the ingest role does (all sent, then every acknowledgement awaited)."""
    acks = [await producer.send(topic, value, key=b"SPY") for value in wire]
    await asyncio.gather(*acks)


async def run(iterations: int, in_flight: int, store_role: int) -> None:
    polls = _bodies(iterations + WARM_UPS)
    first = polls[0]
    print(
        f"SPY chain at {first[0]:%H:%M:%S} + {CADENCE.seconds} s per poll: CSV {len(first[1]) / 1e6:.2f} MB, "
        f"JSON {len(first[2]) / 1e6:.2f} MB"
    )
    registry = TopicRegistry(prefix=TOPIC_PREFIX)
    models = registry.spec("quotes").models
    with tempfile.TemporaryDirectory() as home:
        runtime = embedded_runtime(Path(home), with_broker=True)
        await runtime.start(watch=False)
        await ensure_topics(runtime.bootstrap, registry)
        redis = Redis.from_url(runtime.redis_url)
        producer = AIOKafkaProducer(
            bootstrap_servers=runtime.bootstrap,
            **producer_options(KafkaSettings(bootstrap=runtime.bootstrap)),  # dev: the embedded broker's profile
            max_request_size=MAX_REQUEST_BYTES,
        )
        await producer.start()
        quotes = registry.broker_name("quotes")
        freeze_long_lived("benchmark set up")  # as the roles do after start-up (quanticity/app/platform.py)
        try:
            stages = ("normalize", "encode", "publish", "store", "total")
            ours: dict[str, list[float]] = {stage: [] for stage in stages}
            decode: list[float] = []
            baseline: list[float] = []
            floor: dict[str, list[float]] = {"ts.madd": [], "documents": []}
            redis_pid = runtime.pids()["redis"]
            if redis_pid is None:
                raise RuntimeError("the embedded Redis did not start")
            redis_cpu = 0.0
            store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), "ours:", max_samples_in_flight=in_flight))
            document_count = samples = contracts = 0
            for i, (at, csv_body, json_body) in enumerate(polls):
                before = await _server_usec(redis)  # outside the timed stages: a round trip of its own
                cpu_before = cpu_seconds(redis_pid)
                t0 = time.perf_counter()
                snapshots = _snapshots(at, csv_body)
                t1 = time.perf_counter()
                wire = [encode_record(s) for s in snapshots]
                t2 = time.perf_counter()
                await _publish(producer, quotes, wire)
                t3 = time.perf_counter()
                written = await store.store(snapshots)
                t4 = time.perf_counter()
                after = await _server_usec(redis)
                if i >= WARM_UPS:
                    redis_cpu += cpu_seconds(redis_pid) - cpu_before
                t5 = time.perf_counter()
                for raw in wire:
                    decode_record("quotes", raw, models)
                t6 = time.perf_counter()
                if i >= WARM_UPS:
                    for stage, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                        ours[stage].append(value)
                    floor["ts.madd"].append((after["ts.madd"] - before["ts.madd"]) / 1e6)
                    documents = sum(after[name] - before[name] for name in ("set", "json.set"))
                    floor["documents"].append(documents / 1e6)
                    decode.append(t6 - t5)
                document_count = len(snapshots)
                samples, contracts = written.written, sum(len(s.strike) for s in snapshots)
                elapsed = await _baseline(redis, json_body, at)
                if i >= WARM_UPS:
                    baseline.append(elapsed)
            print(
                f"per poll: {contracts} contracts, {samples} samples (mark + iv, ≤ 60 DTE), {document_count} documents"
            )
            for stage, values in ours.items():
                print(_line(f"ours {stage}", values))
            print(_line("decode", decode, "(store role's decode_record of the wire bytes; not in the total)"))
            print(_line("baseline", baseline, "(json.loads + per-key TS.ADD pipeline)"))
            print(_line("floor TS.MADD", floor["ts.madd"], "(server time)"))
            print(_line("floor documents", floor["documents"], "(server time, SET or JSON.SET of every document)"))
            per_poll = redis_cpu / len(ours["total"]) * 1000
            note = "(every thread, while ours' polls ran: commands, parsing, AOF, replies)"
            print(f"{'Redis CPU':<16} mean {per_poll:6.1f} ms per poll   {note}")
            rules, bare = await _rules_share(redis, polls)
            print(_line("TS.MADD rules", rules, "(server time, raw samples replayed into series with 1 m + 5 m rules)"))
            print(_line("TS.MADD bare", bare, "(server time, raw samples replayed, no compaction at all)"))
            p50, p99 = _percentiles(ours["total"])
            b50, b99 = _percentiles(baseline)
            print(
                f"ours vs baseline: {b50 / p50:.1f}x at p50, {b99 / p99:.1f}x at p99 (same run); "
                f"target p99 <= 50 ms: {'met' if p99 <= 0.050 else 'NOT met'}"
            )
            if store_role:
                polls = _bodies(store_role + WARM_UPS)
                role_registry = TopicRegistry(prefix=STORE_ROLE_TOPIC_PREFIX)  # none of the records above
                await ensure_topics(runtime.bootstrap, role_registry)
                topic = role_registry.broker_name("quotes")
                latencies = await _through_store_role(runtime, Path(home), redis, producer, topic, polls)
                print(
                    _line(
                        "store role",
                        latencies,
                        "(HTTP body → the poll's last chain document in Redis, via the broker and the store role)",
                    )
                )
        finally:
            await producer.stop()
            await redis.aclose()
            runtime.stop_processes()


async def _through_store_role(
    runtime: EmbeddedRuntime,
    home: Path,
    redis: Redis,
    producer: AIOKafkaProducer,
    topic: str,
    polls: list[tuple[datetime, bytes, bytes]],
) -> list[float]:
    """Per poll after the warm-ups: HTTP body → the last chain document ``SET`` by the store role in its own process."""
    worker = start_worker(
        runtime, home, "store-worker", ["store"], topic_prefix=STORE_ROLE_TOPIC_PREFIX, key_prefix=STORE_ROLE_PREFIX
    )
    pubsub = redis.pubsub()
    try:
        await redis.config_set("notify-keyspace-events", "K$")
        stored: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
        await pubsub.psubscribe(f"__keyspace@0__:{STORE_ROLE_PREFIX}chains:SPY:*")

        async def listen() -> None:
            async for message in pubsub.listen():
                if message["type"] == "pmessage" and message["data"] == b"set":
                    await stored.put((message["channel"].decode().rsplit(":", 1)[-1], time.perf_counter()))

        listener = asyncio.create_task(listen())
        latencies = []
        try:
            for i, (at, csv_body, _) in enumerate(polls):
                while not stored.empty():  # a document written again (a redelivery) is not this poll's
                    stored.get_nowait()
                t0 = time.perf_counter()
                snapshots = _snapshots(at, csv_body)
                await _publish(producer, topic, [encode_record(s) for s in snapshots])
                last = snapshots[-1].expiry.isoformat()
                # The first poll waits for the worker's start-up and its creation of every series.
                timeout_s = 180.0 if i == 0 else 30.0
                async with asyncio.timeout(timeout_s):
                    while True:
                        expiry, when = await stored.get()
                        if expiry == last:
                            break
                if i >= WARM_UPS:
                    latencies.append(when - t0)
                await asyncio.sleep(1.0)  # the store role idles between polls, as at the 12 s cadence
        except TimeoutError as exc:
            log = home / "store-worker.log"
            raise RuntimeError(f"the store role stored no chain document in time: see {log}") from exc
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        return latencies
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        worker.stop(timeout_s=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=30, help="timed polls after the warm-ups")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=DEFAULT_MAX_SAMPLES_IN_FLIGHT,
        help="TS.MADD samples sent and not answered at once (redis.madd_max_samples_in_flight)",
    )
    parser.add_argument(
        "--store-role",
        type=int,
        default=0,
        metavar="POLLS",
        help="also time this many polls through the broker and the store role in its own process",
    )
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error(f"iterations must be at least 1, not {args.iterations}")
    if args.in_flight < 1:
        parser.error(f"--in-flight must be at least 1, not {args.in_flight}")
    if args.store_role < 0:
        parser.error(f"--store-role must be 0 or more polls, not {args.store_role}")
    asyncio.run(run(args.iterations, args.in_flight, args.store_role))


if __name__ == "__main__":
    main()
