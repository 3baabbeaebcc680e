"""The envelope every record shares: schema version, times, source, run and mode."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from quanticity.settings.model import Mode

# "platform": records the platform makes itself (dead letters), not market data.
Source = Literal["alphavantage", "ibkr", "sim", "replay", "platform"]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def stable_id(*parts: object) -> str:
    """A deterministic id from ``parts``: replays of the same input get the same id."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=12)
    return digest.hexdigest()


class Record(BaseModel):
    """Base of every record on every topic. Immutable.

    Subclasses set ``type`` to a unique ``Literal`` (the discriminator the codec reads)
    and may raise ``SCHEMA_VERSION`` when they change shape incompatibly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA_VERSION: ClassVar[int] = 1

    type: str
    schema_version: int = Field(default=1, ge=1)
    record_id: str = Field(min_length=1, description="idempotency key of this record")
    event_time: AwareDatetime = Field(description="when it happened at the source")
    ingest_time: AwareDatetime = Field(default_factory=utc_now, description="when the platform received it")
    source: Source
    run_id: str = Field(min_length=1)
    mode: Mode

    @property
    def key(self) -> str:
        """The partition key. Symbol-keyed records use the underlying; others say otherwise."""
        return self.record_id


class SymbolRecord(Record):
    """A record keyed by its underlying symbol."""

    symbol: str = Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9.\-^]+$")

    @property
    def key(self) -> str:
        return self.symbol
