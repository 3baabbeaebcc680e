"""What the AlphaVantage normalizer takes and gives: its context, its result, its errors.

``NormalizeContext`` carries everything a pure normalizer needs from the outside world
(run id, mode, the ingest and current times, staleness thresholds). ``NormalizeResult``
accounts for every input row: each one is in a record, or in ``rejected_rows`` with a
reason. Rows that are kept with some values withheld are listed in ``row_flags``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal, TypedDict

from quanticity.data_ingestion.av_replies import redact as redact_key
from quanticity.errors import RecordDecodeError
from quanticity.schemas.base import Record
from quanticity.settings.model import Mode

TOPIC = "alphavantage"

# How old the newest data point of a reply may be before the reply is tagged "stale".
# 20 minutes leaves room for the 15-minute-delayed entitlement plus a polling interval.
# Functions not named here (macro, news, daily indicators, historical options) describe
# the past on purpose and are never tagged.
DEFAULT_STALENESS: Mapping[str, timedelta] = MappingProxyType(
    {
        "REALTIME_OPTIONS": timedelta(minutes=20),
        "TIME_SERIES_INTRADAY": timedelta(minutes=20),
        "GLOBAL_QUOTE": timedelta(minutes=20),
    }
)

# Implied volatility above this (300 %) is the deep-ITM / 0DTE junk the reference shows
# (IV 5.98 on a 0DTE call): a solver artefact, not a market view.
DEFAULT_MAX_IMPLIED_VOL = 3.0


class Envelope(TypedDict):
    """Record fields that come from the context, not from the payload."""

    ingest_time: datetime
    source: Literal["alphavantage"]
    run_id: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class NormalizeContext:
    """The outside facts a normalization needs.

    Attributes:
        run_id: stamped on every record.
        mode: stamped on every record.
        ingest_time: when the payload was received (aware); stamped as ``ingest_time``.
        now: the time staleness is judged against (aware); defaults to ``ingest_time``.
        staleness: function → maximum age of a reply's newest data point.
        max_implied_vol: implied volatilities above this are treated as junk greeks.
        quote_from_intraday: also emit the newest intraday bar's close as an
            ``UnderlyingQuote`` (only when that bar is fresh).
    """

    run_id: str
    mode: Mode
    ingest_time: datetime
    now: datetime | None = None
    staleness: Mapping[str, timedelta] = field(default_factory=lambda: DEFAULT_STALENESS)
    max_implied_vol: float = DEFAULT_MAX_IMPLIED_VOL
    quote_from_intraday: bool = True

    def __post_init__(self) -> None:
        for name in ("ingest_time", "now"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"NormalizeContext.{name} must be timezone-aware, got {value!r}")
        if not self.run_id:
            raise ValueError("NormalizeContext.run_id must not be empty")

    @property
    def clock(self) -> datetime:
        """The time staleness is judged against."""
        return self.now if self.now is not None else self.ingest_time

    def is_stale(self, function: str, newest: datetime) -> bool:
        """Whether data whose newest point is ``newest`` is too old for ``function``."""
        threshold = self.staleness.get(function)
        return threshold is not None and self.clock - newest > threshold

    def envelope(self) -> Envelope:
        """The envelope fields every record of this normalization shares."""
        return Envelope(ingest_time=self.ingest_time, source="alphavantage", run_id=self.run_id, mode=self.mode)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """An input row that produced no record.

    Attributes:
        reason: a short machine-friendly reason (``bad_strike``, ``duplicate_timestamp``…).
        detail: what was wrong, for a person.
        row_index: the row's position in the payload (0-based; data rows only for CSV).
    """

    reason: str
    detail: str
    row_index: int


@dataclass(frozen=True, slots=True)
class RowFlag:
    """An input row that was kept with some of its values withheld or doubtful.

    Attributes:
        row_index: the row's position in the payload.
        key: what identifies the row downstream (contract id, timestamp, url).
        flags: e.g. ``("junk_greeks:iv>3",)``, ``("bad_bid",)``.
    """

    row_index: int
    key: str
    flags: tuple[str, ...]


@dataclass(slots=True)
class NormalizeResult:
    """The records made from one payload, and an account of every row that was not clean.

    Attributes:
        function: the AlphaVantage function the payload answered.
        records: the typed records, ready to publish.
        rejected_rows: rows dropped, each with a reason.
        row_flags: rows kept with values withheld (e.g. junk greeks nulled).
        flags: reply-level tags: ``stale``, ``empty``, ``no_greeks``, ``partial``.
        empty_reason: why a reply without data is empty (``unknown_symbol``…), else ``None``.
        rows_in: how many data rows the payload had.
        rows_out: how many of them are in ``records``.
    """

    function: str
    records: list[Record] = field(default_factory=list)
    rejected_rows: list[RejectedRow] = field(default_factory=list)
    row_flags: list[RowFlag] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    empty_reason: str | None = None
    rows_in: int = 0
    rows_out: int = 0

    def reject(self, reason: str, detail: str, row_index: int) -> None:
        """Record a dropped row."""
        self.rejected_rows.append(RejectedRow(reason, f"{self.function}: {detail}", row_index))

    def flag(self, tag: str) -> None:
        """Add a reply-level tag once."""
        if tag not in self.flags:
            self.flags.append(tag)

    def mark_empty(self, reason: str) -> None:
        """Say why the reply carries no data."""
        self.empty_reason = reason
        self.flag("empty")


_TEXT_LIMIT = 300


def redact(text: str) -> str:
    """``text`` without any API key AlphaVantage echoed into it, cut to a sane length."""
    # One redaction rule for the package: the client's (daily-cap echo, apikey= in URLs).
    text = redact_key(text)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def decode_error(function: str, reason: str, detail: str) -> RecordDecodeError:
    """The error for a payload that cannot be normalized at all (it goes to dead letters)."""
    return RecordDecodeError(TOPIC, reason, f"{function}: {redact(detail)}")
