"""Option chain snapshots → Redis: a ``mark`` and an ``iv`` series per contract, plus one
full-chain JSON document per underlying+expiry.

Keys (ARCHITECTURE.md §3): ``options:{symbol}:{expiry}:{strike}:{right}:{field}`` for the
series (labels ``family=options symbol expiry strike right field source``), and
``chains:{symbol}:{expiry}`` for the latest snapshot document (RedisJSON), which holds every
column the source sent (bid/ask/sizes/volume/OI/greeks) so nothing is lost between the
topic and the hot store without paying for a series per column per contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import orjson

from quanticity.schemas import OptionChainSnapshot
from quanticity.storage.redis_timeseries import PRICE_LADDER, MaddResult, SeriesSpec, TimeSeriesWriter

OPTION_FIELDS = ("mark", "iv")
#: Per-contract series are kept for expirations up to this far out (the 0DTE…45 DTE strategies
#: read them); farther expirations live only in the chain document. Keeps a full-chain
#: universe from turning into hundreds of thousands of series.
DEFAULT_SERIES_MAX_DTE = 60
#: Small chunks: a contract's series gets a few samples a minute, and there are thousands.
_OPTION_CHUNK_BYTES = 256
_RETENTION_MS = {"ibkr": 48 * 3_600_000}
_DEFAULT_RETENTION_MS = 7 * 24 * 3_600_000


def strike_text(strike: float) -> str:
    """Canonical strike in keys: ``600``, ``612.5`` (no float noise, no trailing zeros)."""
    return format(Decimal(repr(strike)).normalize(), "f")


def option_key(symbol: str, expiry: str, strike: float, right: str, field: str) -> str:
    """Series key of one field of one contract."""
    return f"options:{symbol}:{expiry}:{strike_text(strike)}:{right}:{field}"


def chain_key(symbol: str, expiry: str) -> str:
    """Key of the latest full-chain snapshot document."""
    return f"chains:{symbol}:{expiry}"


def _mark(bid: float | None, ask: float | None, last: float | None) -> float | None:
    if bid is not None and ask is not None and ask >= bid > 0:
        return (bid + ask) / 2.0
    return last


def chain_samples(snapshot: OptionChainSnapshot) -> list[tuple[str, int, float]]:
    """The ``mark`` and ``iv`` samples of every contract (absent values skipped)."""
    ts = int(snapshot.event_time.timestamp() * 1000)
    expiry = snapshot.expiry.isoformat()
    samples: list[tuple[str, int, float]] = []
    for i, strike in enumerate(snapshot.strike):
        right = snapshot.right[i]
        mark = _mark(snapshot.bid[i], snapshot.ask[i], snapshot.last[i])
        if mark is not None:
            samples.append((option_key(snapshot.symbol, expiry, strike, right, "mark"), ts, mark))
        iv = snapshot.implied_vol[i]
        if iv is not None:
            samples.append((option_key(snapshot.symbol, expiry, strike, right, "iv"), ts, iv))
    return samples


def chain_series(snapshot: OptionChainSnapshot) -> list[SeriesSpec]:
    """The series a snapshot writes to, with labels and retention."""
    retention = _RETENTION_MS.get(snapshot.source, _DEFAULT_RETENTION_MS)
    expiry = snapshot.expiry.isoformat()
    specs = []
    for strike, right in zip(snapshot.strike, snapshot.right, strict=True):
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
                SeriesSpec(option_key(snapshot.symbol, expiry, strike, right, field), labels, retention, PRICE_LADDER)
            )
    return specs


def days_to_expiry(snapshot: OptionChainSnapshot) -> int:
    """Calendar days from the snapshot's event date to its expiry."""
    return (snapshot.expiry - snapshot.event_time.date()).days


class OptionChainStore:
    """Stores option chain snapshots through a ``TimeSeriesWriter``.

    Args:
        writer: the TimeSeries writer.
        series_max_dte: per-contract series only up to this many days to expiry.
    """

    def __init__(self, writer: TimeSeriesWriter, series_max_dte: int = DEFAULT_SERIES_MAX_DTE) -> None:
        self.writer = writer
        self.series_max_dte = series_max_dte

    async def store(self, snapshots: Sequence[OptionChainSnapshot]) -> MaddResult:
        """One ``TS.MADD`` for the near expirations' samples, then one ``JSON.SET`` per snapshot.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable; nothing is acknowledged.
        """
        samples: list[tuple[str, int, float]] = []
        for snapshot in snapshots:
            if days_to_expiry(snapshot) > self.series_max_dte:
                continue
            own = chain_samples(snapshot)
            # Building 20k series specs per snapshot costs more than the write: only for new contracts.
            if self.writer.unknown(key for key, _, _ in own):
                await self.writer.ensure_series(chain_series(snapshot))
            samples.extend(own)
        result = await self.writer.madd(samples, family="options")
        async with self.writer.redis.pipeline(transaction=False) as pipe:
            for snapshot in snapshots:
                document = orjson.dumps(snapshot.model_dump(mode="json"))
                pipe.execute_command(
                    "JSON.SET",
                    self.writer.full_key(chain_key(snapshot.symbol, snapshot.expiry.isoformat())),
                    "$",
                    document,
                )
            await pipe.execute()
        return result
