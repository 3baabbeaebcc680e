"""Redis TimeSeries writes: labelled series created once, samples in bulk ``TS.MADD``.

Series are created with ``DUPLICATE_POLICY LAST`` so a replay of the same input rewrites
samples instead of failing or duplicating them (at-least-once delivery, idempotent sink).
"""

from __future__ import annotations

import asyncio
import bisect
import importlib
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from quanticity.observability.metrics import Metrics
from quanticity.storage.resp import (
    RawReply,
    ReplyReader,
    RespProtocolError,
    bulk_keys,
    encode_command,
    encode_samples,
    encode_shared_ts,
    madd_header,
)

pa: Any = importlib.import_module("pyarrow")

log = structlog.get_logger(__name__)

DEFAULT_MAX_SAMPLES_PER_COMMAND = 2_000
DEFAULT_MAX_SAMPLES_IN_FLIGHT = 2_000


@dataclass(frozen=True)
class Compaction:
    """A downsampled copy of a series: ``{key}:{suffix}``, labelled ``resolution={suffix}``.

    Kept by a server-side rule unless the series' ``SeriesSpec.client_compaction`` says the
    writer computes it (``storage/chain_compaction.py``). RedisTimeSeries cannot chain rules
    (a compaction cannot feed another), so the 1 s → 1 m → 5 m ladder is two rules from the
    raw series, one per resolution.
    """

    suffix: str
    bucket_ms: int
    aggregation: str
    retention_ms: int


#: The hot-store ladder (ARCHITECTURE.md §3): raw → 1 m (30 days) and raw → 5 m (90 days).
PRICE_LADDER = (Compaction("1m", 60_000, "last", 30 * 86_400_000), Compaction("5m", 300_000, "last", 90 * 86_400_000))
VOLUME_LADDER = (Compaction("1m", 60_000, "sum", 30 * 86_400_000), Compaction("5m", 300_000, "sum", 90 * 86_400_000))


@dataclass(frozen=True)
class SeriesSpec:
    """A series to create: key, labels, retention and its compactions.

    ``client_compaction``: the compaction series are created but get no server rule (and a
    rule an earlier version created is deleted); the writer's caller writes them.
    """

    key: str
    labels: Mapping[str, str]
    retention_ms: int
    compactions: tuple[Compaction, ...] = ()
    chunk_size: int | None = None  # bytes; None = the server default (4096)
    client_compaction: bool = False


@dataclass(frozen=True)
class MaddResult:
    """Outcome of one bulk write."""

    written: int
    rejected: list[tuple[str, str]]  # (key, error) per sample the server refused
    unchanged: int = 0  # samples not sent again: the same values at the same timestamps were just stored
    derived: int = 0  # compaction samples the client wrote (not in ``written``)


class TimeSeriesWriter:
    """Writes samples to Redis TimeSeries.

    Args:
        redis: an asyncio client (``decode_responses=False``).
        metrics: latency, error and sample counters.
        key_prefix: namespace prepended to every key (tests use a random one).
        max_samples_per_command: a batch with more samples goes out as several ``TS.MADD``
            commands of at most this many. Redis runs one command at a time: a 20k-sample
            ``TS.MADD`` holds every other client (the analytics role's ``SET``, an order
            write) for 30-90 ms on this machine; 2,000 samples take ~3 ms.
        max_samples_in_flight: a session sends the next ``TS.MADD`` only once the samples
            of those not yet answered and its own stay within this many (one command is
            always allowed). Redis reads a client's pipelined commands in one go and runs
            them back to back: ten 2,000-sample commands sent at once hold another client's
            ``SET`` for ~30-60 ms, one at a time for ~3 ms.
    """

    def __init__(
        self,
        redis: Redis,
        metrics: Metrics,
        key_prefix: str = "",
        max_samples_per_command: int = DEFAULT_MAX_SAMPLES_PER_COMMAND,
        max_samples_in_flight: int = DEFAULT_MAX_SAMPLES_IN_FLIGHT,
    ) -> None:
        if max_samples_per_command < 1:
            raise ValueError(f"max_samples_per_command must be >= 1, got {max_samples_per_command}")
        if max_samples_in_flight < 1:
            raise ValueError(f"max_samples_in_flight must be >= 1, got {max_samples_in_flight}")
        self.redis = redis
        self.metrics = metrics
        self.key_prefix = key_prefix
        self.max_samples_per_command = max_samples_per_command
        self.max_samples_in_flight = max_samples_in_flight
        self._created: set[str] = set()

    def unknown(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` is a series this writer has not created yet."""
        return any(key not in self._created for key in keys)

    def full_key(self, key: str) -> str:
        return self.key_prefix + key

    async def ensure_series(self, specs: Sequence[SeriesSpec]) -> None:
        """Create the series that this writer has not created yet (idempotent).

        The commands are RESP-encoded here and sent over one connection (``WriteSession``):
        a new full chain is ~10k series, i.e. ~50k ``TS.CREATE``/``TS.CREATERULE`` commands,
        which cost seconds through redis-py's per-argument encoding and reply parsing.

        Raises:
            RedisError: Redis is unreachable or refused a creation for another reason.
        """
        todo = [s for s in specs if s.key not in self._created]
        if not todo:
            return
        started = time.perf_counter()
        async with self.session(None, operation="ts_create") as session:
            for spec in todo:
                # CHUNK_SIZE before LABELS: everything after LABELS is read as label pairs.
                chunk: list[str | int] = ["CHUNK_SIZE", spec.chunk_size] if spec.chunk_size else []
                commands = [_command("TS.CREATE", *self._create_args(spec.key, spec.retention_ms, spec.labels, chunk))]
                for c in spec.compactions:
                    dest = f"{spec.key}:{c.suffix}"
                    labels = {**spec.labels, "resolution": c.suffix}
                    commands.append(_command("TS.CREATE", *self._create_args(dest, c.retention_ms, labels)))
                    source, target = self.full_key(spec.key), self.full_key(dest)
                    if spec.client_compaction:  # a rule from an earlier version would write it twice
                        commands.append(_command("TS.DELETERULE", source, target))
                    else:
                        commands.append(
                            _command("TS.CREATERULE", source, target, "AGGREGATION", c.aggregation, c.bucket_ms)
                        )
                # Another writer (or an earlier run) got there first: the series/rule exists, as wanted.
                await session.send(b"".join(commands), replies=len(commands), tolerate=_EXISTS)
            await session.finish()
        self.metrics.redis_command_latency.labels(operation="ts_create").observe(time.perf_counter() - started)
        self._created.update(spec.key for spec in todo)

    def _create_args(
        self, key: str, retention_ms: int, labels: Mapping[str, str], options: Sequence[str | int] = ()
    ) -> list[str | int]:
        args: list[str | int] = [self.full_key(key), "RETENTION", retention_ms, "DUPLICATE_POLICY", "LAST", *options]
        args.append("LABELS")
        for name, value in labels.items():
            args += [name, value]
        return args

    async def madd(self, samples: Sequence[tuple[str, int, float]], family: str) -> MaddResult:
        """Write ``(key, timestamp_ms, value)`` samples in one ``TS.MADD``.

        NaN and infinite values are not sent (TimeSeries would store them as-is and
        poison aggregations); they count as rejected.

        Raises:
            RedisError: the command could not be delivered (connection lost…).
        """
        batch = SampleBatch(self.key_prefix)
        batch.add(samples)
        return await self.write(batch, family)

    async def write(self, batch: SampleBatch, family: str, extra: Iterable[bytes] = ()) -> MaddResult:
        """Send the batch's ``TS.MADD``, then ``extra`` pre-encoded commands, in one round trip.

        ``extra`` may be a generator: each command is sent as soon as it is made, so the
        server works on the samples while the rest is being encoded.

        Raises:
            ResponseError: the server refused the ``TS.MADD`` as a whole, or one of ``extra``.
            RedisError: the commands could not be delivered or the reply was unreadable;
                the connection is dropped.
        """
        async with self.session(family) as session:
            await session.madd(batch)
            for command in extra:
                await session.send(command)
            return await session.finish()

    def session(self, family: str | None, operation: str = "write") -> WriteSession:
        """A one-connection pipeline whose commands leave as soon as they are added (``WriteSession``)."""
        return WriteSession(self, family, operation)


class WriteSession:
    """Commands sent as they are made over one pooled connection; replies read as the window needs.

    Use as ``async with writer.session(family) as s: await s.madd(batch); await s.send(cmd);
    result = await s.finish()``. Each command is pushed to the socket before the caller
    goes on, so Redis executes it while the caller encodes the next one: on two cores the
    server's ``TS.MADD`` time overlaps our encoding, but no more than the writer's
    ``max_samples_in_flight`` wait unanswered: Redis would run them back to back while
    other clients wait. Replies are read raw
    (``resp.ReplyReader``): without hiredis, redis-py's parser spends ~3 µs per element of a
    10k-element ``TS.MADD`` reply. Leaving the block early (an error, a cancellation)
    drops the connection, whose stream is then out of step.

    Args:
        writer: the writer (its Redis pool, metrics, prefix).
        family: the ``timeseries_samples_written_total`` label (``None``: no samples are sent).
        operation: the ``redis_errors_total`` label of failed commands.
    """

    def __init__(self, writer: TimeSeriesWriter, family: str | None, operation: str = "write") -> None:
        self.writer = writer
        self.family = family
        self.operation = operation
        self._conn: Any = None
        self._expected: list[BatchPart | _Expect] = []  # per command sent: its batch part, or what its reply may be
        self._replies: list[RawReply] = []  # the replies read so far, in the order of _expected
        self._reader: ReplyReader | None = None
        self._in_flight = 0  # samples of the TS.MADD commands sent and not answered yet
        self._unsent: list[SampleBatch] = []
        self._started = 0.0
        self._finished = False

    async def __aenter__(self) -> WriteSession:
        pool = self.writer.redis.connection_pool
        self._conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        self._started = time.perf_counter()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        conn, self._conn = self._conn, None
        if kind is not None or not self._finished:
            await conn.disconnect()
        await self.writer.redis.connection_pool.release(conn)

    async def madd(self, batch: SampleBatch) -> None:
        """Send the batch's samples as ``TS.MADD`` commands of at most the writer's
        ``max_samples_per_command`` (nothing when it holds no sample; its rejections still count).

        Each command leaves as soon as it is encoded, so Redis runs one while the next is made.
        """
        if not batch.count:
            self._unsent.append(batch)  # nothing to send, but its rejections belong to the result
            return
        window = self.writer.max_samples_in_flight
        for part in batch.parts(self.writer.max_samples_per_command):
            while self._in_flight and self._in_flight + part.count > window:
                await self._read_next()
            await self._send(part.command, [part])
            self._in_flight += part.count

    async def send(self, command: bytes, *, replies: int = 1, tolerate: Sequence[str] = ()) -> None:
        """Send pre-encoded commands (``resp.encode_command``): ``replies`` of them, none of which may fail.

        Args:
            command: the RESP bytes of one or more commands.
            replies: how many commands (replies) ``command`` holds.
            tolerate: an error reply containing one of these texts is not a failure.
        """
        await self._send(command, [_Expect(tolerate)] * replies)

    async def _send(self, command: bytes, expected: Sequence[BatchPart | _Expect]) -> None:
        # Straight to the connection's StreamWriter: redis-py's send_packed_command runs every
        # write in a task of its own under wait_for (~80 µs a command, ~3.5 ms a chain poll).
        conn = self._conn
        writer = conn._writer  # redis-py's StreamWriter for this connection (no public accessor)
        try:
            if writer is None or writer.transport.is_closing():
                raise ConnectionResetError("the connection is closed")
            writer.write(command)
            async with asyncio.timeout(conn.socket_timeout):
                await _flushed(writer)
        except TimeoutError as exc:
            self.writer.metrics.redis_errors.labels(operation=self.operation).inc()
            raise RedisTimeoutError(f"Redis took no more bytes for {conn.socket_timeout} s") from exc
        except OSError as exc:
            self.writer.metrics.redis_errors.labels(operation=self.operation).inc()
            raise RedisConnectionError(f"sending to Redis failed: {exc}") from exc
        self._expected.extend(expected)

    async def finish(self) -> MaddResult:
        """Read every reply; the samples written and rejected.

        Raises:
            ResponseError: a ``TS.MADD`` was refused as a whole, or another command failed.
            RedisError: no reply in time, or an unreadable one.
        """
        metrics = self.writer.metrics
        replies = await self._read_all()
        self._finished = True
        if self.family is not None:
            metrics.redis_command_latency.labels(operation="ts_madd").observe(time.perf_counter() - self._started)
        rejected = [refusal for batch in self._unsent for refusal in batch.rejected]
        written = derived = 0
        failed: list[str] = []
        for expected, reply in zip(self._expected, replies, strict=True):
            if isinstance(expected, _Expect):
                if reply.is_error and not any(text in reply.text for text in expected.tolerate):
                    failed.append(reply.text)
                continue
            batch = expected.batch
            if expected.first == 0:  # the batch's own refusals (non-finite values), once
                rejected += batch.rejected
            if reply.is_error or reply.kind != b"*" or reply.count != expected.count:
                metrics.redis_errors.labels(operation="ts_madd").inc()
                raise ResponseError(reply.text if reply.is_error else f"TS.MADD: unexpected reply {reply.kind!r}")
            errors = [(batch.key_of(expected.first + index), error) for index, error in reply.errors]
            rejected += errors
            if batch.derived:
                derived += expected.count - len(errors)
            else:
                written += expected.count - len(errors)
        if failed:
            metrics.redis_errors.labels(operation=self.operation).inc(len(failed))
            raise ResponseError(failed[0])
        result = MaddResult(written, rejected, derived=derived)
        self._count(result)
        return result

    def _count(self, result: MaddResult) -> None:
        metrics = self.writer.metrics
        if result.rejected:
            metrics.redis_errors.labels(operation="ts_madd_sample").inc(len(result.rejected))
            log.warning("timeseries_samples_rejected", count=len(result.rejected), first=result.rejected[0])
        if self.family is not None:
            metrics.timeseries_samples_written.labels(family=self.family).inc(result.written)
            if result.derived:
                metrics.timeseries_samples_written.labels(family=f"{self.family}_compaction").inc(result.derived)

    async def _read_all(self) -> list[RawReply]:
        """The replies of every command sent, the ones not read yet read now."""
        while len(self._replies) < len(self._expected):
            await self._read_next()
        reader = self._reader
        if reader is not None and reader.pending:
            raise RedisConnectionError(f"{reader.pending} bytes beyond the expected replies")
        return self._replies

    async def _read_next(self) -> None:
        """Read the reply of the oldest command not answered yet (kept for ``finish``)."""
        conn = self._conn
        if self._reader is None:
            # redis-py has no public raw-read API; its own parser reads this same stream between replies.
            stream = conn._reader
            if stream is None:
                raise RedisConnectionError("connection closed before the replies")
            self._reader = ReplyReader(stream)
        try:
            async with asyncio.timeout(conn.socket_timeout):
                reply = await self._reader.read()
        except TimeoutError as exc:
            self.writer.metrics.redis_errors.labels(operation=self.operation).inc()
            raise RedisTimeoutError(f"no reply from Redis within {conn.socket_timeout} s") from exc
        except (OSError, RespProtocolError) as exc:
            self.writer.metrics.redis_errors.labels(operation=self.operation).inc()
            raise RedisConnectionError(f"reading Redis replies failed: {exc}") from exc
        expected = self._expected[len(self._replies)]
        self._replies.append(reply)
        if isinstance(expected, BatchPart):
            self._in_flight -= expected.count


@dataclass(frozen=True, slots=True)
class _Expect:
    """What the reply of a command other than a ``TS.MADD`` may be: any success, or a tolerated error."""

    tolerate: Sequence[str] = ()


_EXISTS = ("already exists", "already has a", "rule does not exist")


def _command(*args: str | int) -> bytes:
    return encode_command(*(arg.encode() if isinstance(arg, str) else b"%d" % arg for arg in args))


async def _flushed(writer: asyncio.StreamWriter) -> None:
    """Wait until the bytes written to ``writer`` have left the process (not just reached asyncio's buffer).

    ``drain`` returns as soon as the buffer is below its high-water mark (64 KB), and the
    rest would only move when the loop next runs, after our CPU work: the server could
    not start the command. A high-water mark of zero makes ``drain`` wait for an empty buffer.
    """
    if writer.transport.get_write_buffer_size() == 0:
        return
    transport = writer.transport
    low, high = transport.get_write_buffer_limits()  # asyncio returns (low, high)
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


class SeriesKeys:
    """The keys of a fixed list of series, RESP-encoded once for repeated shared-timestamp writes.

    Args:
        names: the keys without the writer's prefix (as ``MaddResult`` reports them).
        key_prefix: the writer's prefix.
        encoded: their ``bulk_keys`` already made (a slice of another list's); then ``key_prefix`` is unused.
    """

    def __init__(self, names: Sequence[str], key_prefix: str = "", *, encoded: Any = None) -> None:
        self.names = list(names)
        self.encoded = bulk_keys([(key_prefix + name).encode() for name in self.names]) if encoded is None else encoded

    def __len__(self) -> int:
        return len(self.names)

    def slice(self, start: int, stop: int) -> SeriesKeys:
        """The keys ``start:stop``, sharing this list's encoding (nothing is encoded again)."""
        return SeriesKeys(self.names[start:stop], encoded=self.encoded.slice(start, max(stop - start, 0)))


@dataclass(frozen=True, slots=True)
class BatchPart:
    """One ``TS.MADD`` of a batch: samples ``first`` to ``first + count`` of its send order."""

    batch: SampleBatch
    first: int
    count: int
    command: bytes


class SampleBatch:
    """Samples for ``TS.MADD``: one command, or several of a bounded size (``parts``).

    Samples that share a timestamp (``add_shared_ts``) are encoded together, in one
    vectorised pass per timestamp (and part), when the commands are made.

    Args:
        key_prefix: the writer's prefix, prepended to the keys of ``add``.
        derived: the samples are compactions the client computed (``MaddResult.derived``;
            ``timeseries_samples_written_total`` counts them under ``{family}_compaction``).
    """

    def __init__(self, key_prefix: str = "", *, derived: bool = False) -> None:
        self.key_prefix = key_prefix
        self.derived = derived
        self.count = 0
        self.rejected: list[tuple[str, str]] = []
        self._plain: list[list[tuple[bytes, int, float]]] = []  # the samples of each ``add``
        self._shared: list[tuple[int, Any, NDArray[np.float64]]] = []  # (ts, bulk keys, values)
        # Key names per added block: (its timestamp, None for ``add``; names; positions in names or None).
        self._blocks: list[tuple[int | None, Sequence[str], Sequence[int] | None]] = []
        self._sent_order: list[tuple[int, Sequence[str], Sequence[int] | None]] = []

    def add(self, samples: Sequence[tuple[str, int, float]]) -> None:
        """Samples with their own keys and timestamps; non-finite values are rejected."""
        batch: list[tuple[bytes, int, float]] = []
        keys: list[str] = []
        for key, ts, value in samples:
            if not math.isfinite(value):
                self.rejected.append((key, "value is not finite"))
                continue
            batch.append(((self.key_prefix + key).encode(), ts, value))
            keys.append(key)
        if batch:
            self._plain.append(batch)
            self._blocks.append((None, keys, None))
            self.count += len(batch)

    def add_shared_ts(self, keys: SeriesKeys, ts: int, values: NDArray[np.float64]) -> None:
        """One value per series of ``keys``, all at ``ts``; NaN = no value (nothing sent), ±inf rejected."""
        if len(values) != len(keys):
            raise ValueError(f"{len(values)} values for {len(keys)} series")
        finite = np.isfinite(values)
        if finite.all():
            encoded, positions = keys.encoded, None
        else:
            for position in np.flatnonzero(~finite & ~np.isnan(values)).tolist():
                self.rejected.append((keys.names[position], "value is not finite"))
            index = np.flatnonzero(finite)
            encoded, positions = keys.encoded.take(pa.array(index)), index.tolist()
            values = values[index]
        if len(values):
            self._shared.append((ts, encoded, values))
            self._blocks.append((ts, keys.names, positions))
            self.count += len(values)

    def command(self) -> bytes:
        """The whole batch as one ``TS.MADD`` (the batch must hold a sample)."""
        (part,) = self.parts(max(self.count, 1))
        return part.command

    def parts(self, max_samples: int) -> Iterator[BatchPart]:
        """The batch as ``TS.MADD`` commands of at most ``max_samples`` samples each, each
        encoded only when it is asked for (the caller sends one while the next is made).

        Samples of ``add`` come first, then those of ``add_shared_ts`` by timestamp; a
        reply's element ``i`` of a part is sample ``part.first + i`` (``key_of``).

        Raises:
            ValueError: ``max_samples`` is below 1.
        """
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        return self._parts(max_samples)

    def _parts(self, max_samples: int) -> Iterator[BatchPart]:
        sources: list[tuple[int | None, Any, Any]] = [(None, plain, None) for plain in self._plain]
        order = [block for block in self._blocks if block[0] is None]
        for ts in dict.fromkeys(ts for ts, _, _ in self._shared):
            same = [(keys, values) for t, keys, values in self._shared if t == ts]
            keys = same[0][0] if len(same) == 1 else pa.concat_arrays([k for k, _ in same])
            values = same[0][1] if len(same) == 1 else np.concatenate([v for _, v in same])
            sources.append((ts, keys, values))
            order += [block for block in self._blocks if block[0] == ts]
        self._sent_order = []
        first = 0
        for _, names, positions in order:
            self._sent_order.append((first, names, positions))
            first += len(names) if positions is None else len(positions)
        chunk: list[bytes] = []
        size = start = 0
        for stamp, data, values in sources:
            total, done = len(data), 0
            while done < total:
                take = min(total - done, max_samples - size)
                if stamp is None:
                    chunk.append(encode_samples(data[done : done + take]))
                else:
                    chunk.append(encode_shared_ts(data.slice(done, take), stamp, values[done : done + take]))
                done += take
                size += take
                if size == max_samples:
                    yield BatchPart(self, start, size, madd_header(size) + b"".join(chunk))
                    start, size, chunk = start + size, 0, []
        if size:
            yield BatchPart(self, start, size, madd_header(size) + b"".join(chunk))

    def key_of(self, index: int) -> str:
        """The key (without prefix) of the ``index``-th sample sent (``parts``/``command``)."""
        starts = [first for first, _, _ in self._sent_order]
        first, names, positions = self._sent_order[bisect.bisect_right(starts, index) - 1]
        offset = index - first
        return names[offset if positions is None else positions[offset]]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(t: datetime) -> int:
    """An aware instant in whole epoch milliseconds, exactly (``timestamp() * 1000`` can round wrong)."""
    return (t - _EPOCH) // _MILLISECOND
