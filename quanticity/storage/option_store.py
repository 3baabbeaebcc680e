"""Option chain snapshots → Redis: a ``mark`` and an ``iv`` series per contract, plus one
full-chain document per underlying+expiry.

Keys (ARCHITECTURE.md §3): ``options:{symbol}:{expiry}:{strike}:{right}:{field}`` for the
series (labels ``family=options symbol expiry strike right field source``), and
``chains:{symbol}:{expiry}`` for the latest snapshot document, which holds every column the
record carries (contract ids, bid/ask/mark, sizes, volume, OI, greeks, row flags) so
nothing is lost between the topic and the hot store without paying for a series per column
per contract. The document is the record's own wire bytes, its binary columnar form (a JSON
header, then the float64 columns; ``schemas/columns.py``), stored as a plain string value
(``SET``, read with ``GET``; ``latest`` and ``quanticity chain SYMBOL EXPIRY`` give it back
as the record). Writing a full SPY chain's documents as JSON cost ~4 ms of client time per
poll, the columnar form ~0.3 ms; RedisJSON would also spend ~13 ms of server time parsing
them and does not give every double back exactly (0.20400000000000001 comes back as 0.204).
Documents written as JSON by earlier versions still read back.

The series' 1 m and 5 m compactions (``{key}:1m``, ``{key}:5m``, the price ladder's ``last``)
are computed here and written in the same ``TS.MADD`` when a bucket closes, not by server
rules, which cost Redis three times the raw write (``storage/chain_compaction.py``).

The write path is built for the 12-second full-chain cadence (docs/benchmarks.md): the keys
of a chain's contracts are RESP-encoded once per chain shape and reused while its strikes
stay the same, the samples of a snapshot share one timestamp and are encoded in one
vectorised pass, and every command leaves as soon as it is encoded over one connection
(``TimeSeriesWriter.session``), so Redis executes one snapshot's ``TS.MADD`` while the
next is encoded; the replies are read raw at the end.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from quanticity.schemas import OptionChainSnapshot, Record
from quanticity.schemas.codec import decode_record, encode_record
from quanticity.storage.chain_compaction import Ladder, OpenBucket, parse_mget
from quanticity.storage.redis_timeseries import (
    PRICE_LADDER,
    MaddResult,
    SampleBatch,
    SeriesKeys,
    SeriesSpec,
    TimeSeriesWriter,
    WriteSession,
)
from quanticity.storage.resp import encode_command

OPTION_FIELDS = ("mark", "iv")
_CHAIN_MODELS: dict[str, type[Record]] = {"option_chain": OptionChainSnapshot}
#: Per-contract series are kept for expirations up to this far out (the 0DTE…45 DTE strategies
#: read them); farther expirations live only in the chain document. Keeps a full-chain
#: universe from turning into hundreds of thousands of series.
DEFAULT_SERIES_MAX_DTE = 60
#: Small chunks: a contract's series gets a few samples a minute, and there are thousands.
_OPTION_CHUNK_BYTES = 256
_RETENTION_MS = {"ibkr": 48 * 3_600_000}
_DEFAULT_RETENTION_MS = 7 * 24 * 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
#: A closed bucket's compaction samples are written over this many ``store`` calls, the first
#: share with the call that closed it: no call carries a whole chain's minute and five-minute
#: buckets on top of its own samples (docs/benchmarks.md, "Compactions spread over calls").
DEFAULT_COMPACTION_SPREAD = 4
#: How far before a chain's newest raw sample a store that starts looks for closed buckets
#: whose compactions were never written (its predecessor stopped with some still pending).
_UNWRITTEN_LOOKBACK_MS = 15 * 60_000


def strike_text(strike: float) -> str:
    """Canonical strike in keys: ``600``, ``612.5`` (no float noise, no trailing zeros)."""
    return format(Decimal(repr(float(strike))).normalize(), "f")


def option_key(symbol: str, expiry: str, strike: float, right: str, field: str) -> str:
    """Series key of one field of one contract."""
    return f"options:{symbol}:{expiry}:{strike_text(strike)}:{right}:{field}"


def chain_key(symbol: str, expiry: str) -> str:
    """Key of the latest full-chain snapshot document."""
    return f"chains:{symbol}:{expiry}"


def _mark(bid: float, ask: float, last: float) -> float:
    if ask >= bid > 0:  # false when either is NaN (absent)
        return (bid + ask) / 2.0
    return last


def chain_samples(snapshot: OptionChainSnapshot) -> list[tuple[str, int, float]]:
    """The ``mark`` and ``iv`` samples of every contract (absent values skipped).

    The mark is the mid when both sides are quoted (``ask >= bid > 0``), else the last
    trade. This is the reference definition, row by row; ``OptionChainStore`` computes the
    same values column-wise (``mark_column``).
    """
    ts = event_ms(snapshot)
    expiry = snapshot.expiry.isoformat()
    samples: list[tuple[str, int, float]] = []
    bid, ask, last, ivs = (
        column.tolist() for column in (snapshot.bid, snapshot.ask, snapshot.last, snapshot.implied_vol)
    )
    for i, strike in enumerate(snapshot.strike.tolist()):
        right = snapshot.right[i]
        mark = _mark(bid[i], ask[i], last[i])
        if not math.isnan(mark):
            samples.append((option_key(snapshot.symbol, expiry, strike, right, "mark"), ts, mark))
        if not math.isnan(ivs[i]):
            samples.append((option_key(snapshot.symbol, expiry, strike, right, "iv"), ts, ivs[i]))
    return samples


def mark_column(snapshot: OptionChainSnapshot) -> NDArray[np.float64]:
    """``chain_samples``' mark of every row as one array (NaN where there is none)."""
    bid, ask, last = snapshot.bid, snapshot.ask, snapshot.last
    with np.errstate(invalid="ignore"):  # NaN comparisons are simply false
        quoted = (ask >= bid) & (bid > 0)
    return np.where(quoted, (bid + ask) / 2.0, last)


def _sample_count(snapshot: OptionChainSnapshot) -> int:
    """How many samples ``chain_samples`` gives for the snapshot, without making them."""
    marks = int(np.count_nonzero(~np.isnan(mark_column(snapshot))))
    return marks + int(np.count_nonzero(~np.isnan(snapshot.implied_vol)))


def event_ms(snapshot: OptionChainSnapshot) -> int:
    """The snapshot's event time in whole epoch milliseconds (exact: no float rounding)."""
    return (snapshot.event_time - _EPOCH) // _MILLISECOND


def chain_series(snapshot: OptionChainSnapshot) -> list[SeriesSpec]:
    """The series a snapshot writes to, with labels and retention."""
    retention = _RETENTION_MS.get(snapshot.source, _DEFAULT_RETENTION_MS)
    expiry = snapshot.expiry.isoformat()
    specs = []
    for strike, right in zip(snapshot.strike.tolist(), snapshot.right, strict=True):
        for field in OPTION_FIELDS:
            labels = {
                "family": "options",
                "symbol": snapshot.symbol,
                "expiry": expiry,
                "strike": strike_text(strike),
                "right": right,
                "field": field,
                "source": snapshot.source,
            }
            specs.append(
                SeriesSpec(
                    option_key(snapshot.symbol, expiry, strike, right, field),
                    labels,
                    retention,
                    PRICE_LADDER,
                    _OPTION_CHUNK_BYTES,
                    client_compaction=True,
                )
            )
    return specs


def days_to_expiry(snapshot: OptionChainSnapshot) -> int:
    """Calendar days from the snapshot's event date to its expiry."""
    return (snapshot.expiry - snapshot.event_time.date()).days


def chain_document(snapshot: OptionChainSnapshot) -> bytes:
    """The ``chains:*`` document of a snapshot: the record's own wire bytes (the columnar form)."""
    return encode_record(snapshot)


def decode_document(raw: bytes, key: str = "chains:*") -> OptionChainSnapshot:
    """A ``chains:*`` document back as a snapshot: the columnar form, or JSON (as written before it).

    The document is the record's wire bytes, so the codec reads it (``decode_record``).

    Raises:
        RecordDecodeError: the document is damaged or not a valid snapshot; ``key`` names it.
    """
    return cast(OptionChainSnapshot, decode_record(key, raw, _CHAIN_MODELS))  # the one model it may return


@dataclass(frozen=True, slots=True)
class _Layout:
    """The series keys of one chain shape (its strikes and rights, in order), and their open compaction buckets."""

    strike: NDArray[np.float64]
    right: list[str]
    raw: dict[str, SeriesKeys]  # field → the raw series' keys
    compacted: dict[tuple[str, str], SeriesKeys]  # (field, suffix) → the compaction series' keys
    ladders: dict[str, Ladder]  # field → its open buckets

    def fits(self, snapshot: OptionChainSnapshot) -> bool:
        return np.array_equal(self.strike, snapshot.strike) and self.right == snapshot.right


@dataclass(frozen=True, slots=True)
class _Pending:
    """A closed bucket whose compaction samples are not all written: positions ``done:`` of ``keys`` remain."""

    keys: SeriesKeys
    start: int
    values: NDArray[np.float64]
    calls_left: int
    done: int = 0

    def share(self, everything: bool) -> tuple[int, _Pending | None]:
        """Where this call's share ends, and what remains after it (``None``: nothing)."""
        remaining = len(self.values) - self.done
        take = remaining if everything or self.calls_left <= 1 else -(-remaining // self.calls_left)
        end = self.done + take
        rest = replace(self, done=end, calls_left=self.calls_left - 1) if end < len(self.values) else None
        return end, rest


@dataclass(slots=True)
class _Call:
    """What one ``store`` call has sent and changed, applied to the store only once Redis took it all."""

    compactions: SampleBatch
    #: the buckets this call closed
    closed: list[_Pending] = dataclasses.field(default_factory=list)
    #: the open buckets before this call
    undo: list[tuple[Ladder, dict[str, OpenBucket | None]]] = dataclasses.field(default_factory=list)
    #: document key → the snapshot written there
    written: dict[str, OptionChainSnapshot] = dataclasses.field(default_factory=dict)
    #: the chains checked for buckets left unwritten
    reconciled: list[tuple[str, date, str]] = dataclasses.field(default_factory=list)
    unchanged: int = 0  # samples not sent again


def _share(batch: SampleBatch, pending: Sequence[_Pending], *, everything: bool) -> list[_Pending]:
    """Add each pending bucket's share for this call to ``batch``; what remains pending after it."""
    left = []
    for entry in pending:
        end, rest = entry.share(everything)
        batch.add_shared_ts(entry.keys.slice(entry.done, end), entry.start, entry.values[entry.done : end])
        if rest is not None:
            left.append(rest)
    return left


class OptionChainStore:
    """Stores option chain snapshots through a ``TimeSeriesWriter``.

    A snapshot whose content (every field but ``ingest_time``) equals the one this store
    wrote for the same chain less than ``unchanged_rewrite_s`` ago is not written again:
    its samples would land on the same timestamps with the same values (a no-op under
    ``DUPLICATE_POLICY LAST``), and its document would only get a newer ``ingest_time``.
    That is every poll after the close (the event time stays the session's close) until
    the next session. The document then keeps the ingest time of its first write; a
    rewrite at least every ``unchanged_rewrite_s`` restores anything Redis lost meanwhile.

    The compaction samples of a bucket that closes are written over ``compaction_spread``
    calls (a share of the series each time, the first with the call that closed it), so
    the call that crosses a five-minute boundary does not carry both resolutions of every
    series on top of its own samples. ``flush`` writes what is still pending (a clean stop
    leaves nothing behind). A store that starts finds, per chain, the closed buckets its
    predecessor left unwritten (up to 15 minutes before the chain's newest raw sample) and
    writes them with its first write of that chain, so a crash loses no bucket either.

    Args:
        writer: the TimeSeries writer.
        series_max_dte: per-contract series only up to this many days to expiry.
        unchanged_rewrite_s: how long an unchanged snapshot may go without being rewritten.
        compaction_spread: over how many calls a closed bucket is written (1: all at once).
    """

    def __init__(
        self,
        writer: TimeSeriesWriter,
        series_max_dte: int = DEFAULT_SERIES_MAX_DTE,
        unchanged_rewrite_s: float = 60.0,
        compaction_spread: int = DEFAULT_COMPACTION_SPREAD,
    ) -> None:
        if compaction_spread < 1:
            raise ValueError(f"compaction_spread must be at least 1, not {compaction_spread}")
        self.writer = writer
        self.series_max_dte = series_max_dte
        self.unchanged_rewrite_s = unchanged_rewrite_s
        self.compaction_spread = compaction_spread
        self._layouts: dict[tuple[str, date, str], _Layout] = {}
        self._pending: list[_Pending] = []  # closed buckets not all written yet, oldest first
        self._reconciled: set[tuple[str, date, str]] = set()  # chains checked for buckets left unwritten
        # chain → its raw series' latest samples, from the layout's TS.MGET, until it is checked
        self._raw_latest: dict[tuple[str, date, str], dict[str, tuple[int, float]]] = {}
        # document key → (the snapshot last written there, monotonic time written)
        self._stored: dict[str, tuple[OptionChainSnapshot, float]] = {}

    async def store(self, snapshots: Sequence[OptionChainSnapshot]) -> MaddResult:
        """Per snapshot, a ``TS.MADD`` of its samples (up to ``series_max_dte``) and a ``SET`` of its
        document, all over one connection and read back together.

        Each command leaves as soon as it is encoded, so Redis works on one snapshot while
        the next is being encoded.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable or refused a command; nothing is acknowledged.
        """
        now = time.monotonic()
        work = _Call(SampleBatch(self.writer.key_prefix, derived=True))
        try:
            async with self.writer.session("options") as session:
                for snapshot in snapshots:
                    await self._send(session, snapshot, now, work)
                pending = _share(work.compactions, [*self._pending, *work.closed], everything=False)
                await session.madd(work.compactions)
                result = await session.finish()
        except BaseException:
            for ladder, before in reversed(work.undo):  # a retry must close the same buckets again
                ladder.open = before
            raise
        self._pending = pending
        self._reconciled.update(work.reconciled)
        for chain in work.reconciled:
            self._raw_latest.pop(chain, None)
        self._stored.update((key, (snapshot, now)) for key, snapshot in work.written.items())
        return replace(result, unchanged=work.unchanged)

    async def flush(self) -> MaddResult:
        """Write every compaction sample still pending.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable or refused the write; the samples stay pending.
        """
        batch = SampleBatch(self.writer.key_prefix, derived=True)
        _share(batch, self._pending, everything=True)
        async with self.writer.session("options") as session:
            await session.madd(batch)
            result = await session.finish()
        self._pending = []
        return result

    @property
    def pending_compactions(self) -> int:
        """How many compaction samples (series × closed buckets) are still to be written."""
        return sum(int(np.count_nonzero(~np.isnan(p.values[p.done :]))) for p in self._pending)

    async def _send(self, session: WriteSession, snapshot: OptionChainSnapshot, now: float, work: _Call) -> None:
        """Send one snapshot's samples and document (or count its samples as unchanged)."""
        key = self.writer.full_key(chain_key(snapshot.symbol, snapshot.expiry.isoformat()))
        near = days_to_expiry(snapshot) <= self.series_max_dte
        previous = self._stored.get(key)
        if (
            previous is not None
            and now - previous[1] < self.unchanged_rewrite_s
            and previous[0].columns_equal(snapshot, ignore=("ingest_time",))
        ):
            work.unchanged += _sample_count(snapshot) if near else 0
            return
        if near:
            layout = await self._layout(snapshot)
            chain = (snapshot.symbol, snapshot.expiry, snapshot.source)
            if chain not in self._reconciled and chain not in work.reconciled:
                work.compactions.add(await self._unwritten_buckets(snapshot, self._raw_latest.get(chain, {})))
                work.reconciled.append(chain)
            ts = event_ms(snapshot)
            columns = {"mark": mark_column(snapshot), "iv": snapshot.implied_vol}
            batch = SampleBatch(self.writer.key_prefix)
            for field in OPTION_FIELDS:
                batch.add_shared_ts(layout.raw[field], ts, columns[field])
                ladder = layout.ladders[field]
                after, closed = ladder.advance(ts, columns[field])
                work.undo.append((ladder, ladder.open))
                ladder.open = after
                for suffix, bucket in closed:
                    keys = layout.compacted[field, suffix]
                    work.closed.append(_Pending(keys, bucket.start, bucket.values, self.compaction_spread))
            await session.madd(batch)
        await session.send(encode_command(b"SET", key.encode(), chain_document(snapshot)))
        work.written[key] = snapshot

    async def _layout(self, snapshot: OptionChainSnapshot) -> _Layout:
        """The keys of the snapshot's contracts; creates the series the writer has not seen."""
        cache_key = (snapshot.symbol, snapshot.expiry, snapshot.source)
        layout = self._layouts.get(cache_key)
        if layout is not None and layout.fits(snapshot):
            return layout
        expiry = snapshot.expiry.isoformat()
        names = {
            field: [
                option_key(snapshot.symbol, expiry, strike, right, field)
                for strike, right in zip(snapshot.strike.tolist(), snapshot.right, strict=True)
            ]
            for field in OPTION_FIELDS
        }
        # Building 20k series specs per snapshot costs more than the write: only for new contracts.
        if self.writer.unknown(key for keys in names.values() for key in keys):
            await self.writer.ensure_series(chain_series(snapshot))
        prefix = self.writer.key_prefix
        last = await self._latest_samples(snapshot, "")
        if cache_key not in self._reconciled:
            self._raw_latest[cache_key] = last
        layout = _Layout(
            snapshot.strike,
            list(snapshot.right),
            {field: SeriesKeys(names[field], prefix) for field in OPTION_FIELDS},
            {
                (field, c.suffix): SeriesKeys([f"{name}:{c.suffix}" for name in names[field]], prefix)
                for field in OPTION_FIELDS
                for c in PRICE_LADDER
            },
            {field: Ladder.recover(PRICE_LADDER, names[field], last) for field in OPTION_FIELDS},
        )
        self._layouts[cache_key] = layout
        return layout

    async def _unwritten_buckets(
        self, snapshot: OptionChainSnapshot, last: dict[str, tuple[int, float]]
    ) -> list[tuple[str, int, float]]:
        """The compaction samples of the chain's closed buckets that are missing from its compaction series.

        Those are buckets a store closed but stopped before writing (``compaction_spread``).
        Compactions are written oldest bucket first, so a series whose compaction holds the
        last closed bucket lacks none. Per resolution, one ``TS.MGET`` finds the others; each
        of them gets the raw series' ``last`` buckets since its newest compaction (at most 15
        minutes back) up to the open bucket, usually none: a series with no value in the last
        bucket, or one left behind by a store that stopped.

        Args:
            last: the latest sample of each raw series of the chain (``_latest_samples``).
        """
        if not last:
            return []
        newest = max(ts for ts, _ in last.values())
        missing: list[tuple[str, int, float]] = []
        for c in PRICE_LADDER:
            open_start = newest - newest % c.bucket_ms
            held = await self._latest_samples(snapshot, c.suffix)
            behind: dict[str, int] = {}
            for name in last:
                written = held.get(f"{name}:{c.suffix}")
                if written is not None and written[0] >= open_start - c.bucket_ms:
                    continue  # holds the last closed bucket, hence every one before it
                since = open_start - _UNWRITTEN_LOOKBACK_MS
                behind[name] = since if written is None else max(since, written[0] + c.bucket_ms)
            if not behind:
                continue
            async with self.writer.redis.pipeline(transaction=False) as pipe:
                for name, since in behind.items():
                    key = self.writer.full_key(name)
                    pipe.execute_command("TS.RANGE", key, since, open_start - 1, "AGGREGATION", "last", c.bucket_ms)
                replies = await pipe.execute()
            for name, reply in zip(behind, replies, strict=True):
                missing += [(f"{name}:{c.suffix}", int(ts), float(value)) for ts, value in reply]
        return missing

    async def _latest_samples(self, snapshot: OptionChainSnapshot, resolution: str) -> dict[str, tuple[int, float]]:
        """The latest sample of each series of the snapshot's chain at ``resolution`` (``""``: the raw series).

        One ``TS.MGET`` over the chain's labels; compactions carry a ``resolution`` label, raw series none.
        """
        reply = await self.writer.redis.execute_command(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            "TS.MGET",
            "FILTER",
            "family=options",
            f"symbol={snapshot.symbol}",
            f"expiry={snapshot.expiry.isoformat()}",
            f"source={snapshot.source}",
            f"resolution={resolution}",
        )
        return parse_mget(reply, self.writer.key_prefix)

    async def latest(self, symbol: str, expiry: date) -> OptionChainSnapshot | None:
        """The latest stored snapshot of ``symbol`` and ``expiry`` (``None`` if none was stored).

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
            RecordDecodeError: the document is damaged or not a valid snapshot.
        """
        raw: Any = await self.writer.redis.get(self.writer.full_key(chain_key(symbol, expiry.isoformat())))
        if raw is None:
            return None
        return decode_document(raw, chain_key(symbol, expiry.isoformat()))
