"""Analytics results, signals, orders, fills and outbound social messages."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from quanticity.schemas.base import Record, SymbolRecord


class AnalyticsResult(SymbolRecord):
    """One analytics computation with its validity window and provenance."""

    type: Literal["analytics_result"] = "analytics_result"
    kind: str = Field(min_length=1, description="greeks, vpin, regime, liquidity…")
    computed_at: AwareDatetime
    valid_until: AwareDatetime
    values: dict[str, float | None]
    input_ids: list[str] = Field(default_factory=list, description="record ids of the inputs")

    @model_validator(mode="after")
    def _check_validity(self) -> AnalyticsResult:
        if self.valid_until < self.computed_at:
            raise ValueError("valid_until is before computed_at")
        return self


class Signal(SymbolRecord):
    """A trading signal; ``record_id`` is its idempotent signal id."""

    type: Literal["signal"] = "signal"
    strategy: str = Field(min_length=1)
    direction: Literal["long", "short", "flat"]
    confidence: float = Field(ge=0, le=1)
    analytics_ids: list[str] = Field(default_factory=list)
    rationale: str = ""


class OrderEvent(SymbolRecord):
    """An order intent or a change of its state. Prices are Decimal, never floats."""

    type: Literal["order_event"] = "order_event"
    PENDING: ClassVar[str] = "pending"
    SUBMITTED: ClassVar[str] = "submitted"
    FILLED: ClassVar[str] = "filled"
    CANCELLED: ClassVar[str] = "cancelled"
    REJECTED: ClassVar[str] = "rejected"
    DONE: ClassVar[frozenset[str]] = frozenset({FILLED, CANCELLED, REJECTED})
    ACTIVE: ClassVar[frozenset[str]] = frozenset({PENDING, SUBMITTED})

    order_id: str = Field(min_length=1, description="correlation id across intent, acks, fills")
    signal_id: str | None = None
    account: str | None = None
    side: Literal["buy", "sell"]
    quantity: int = Field(gt=0)
    limit_price: Decimal | None = Field(default=None, gt=0, decimal_places=4)
    status: Literal["pending", "submitted", "filled", "cancelled", "rejected"]
    reason: str = ""


class Fill(SymbolRecord):
    """An execution, enriched with the signal that caused it."""

    type: Literal["fill"] = "fill"
    exec_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    signal_id: str | None = None
    side: Literal["buy", "sell"]
    quantity: int = Field(gt=0)
    price: Decimal = Field(gt=0, decimal_places=4)
    commission: Decimal = Field(default=Decimal("0"), ge=0)


class SocialMessage(Record):
    """An outbound message for one channel and tier, held until ``release_at``."""

    type: Literal["social_message"] = "social_message"
    channel: Literal["discord", "telegram", "twitter", "reddit", "email"]
    tier: Literal["premium", "basic", "free"]
    release_at: AwareDatetime
    subject: str = ""
    body: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return self.channel


class DeadLetter(Record):
    """A payload that could not be decoded or handled, with the reason. Nothing is dropped."""

    type: Literal["dead_letter"] = "dead_letter"
    original_topic: str
    original_key: str | None = None
    partition: int | None = None
    offset: int | None = None
    reason: str = Field(min_length=1, description="not_json, validation, unknown_type, …")
    detail: str
    payload_b64: str = Field(description="the original bytes, base64: nothing is lost")
    payload_preview: str = Field(description="the first 2 KiB as UTF-8 (with replacement), for people")
    payload_sha256: str

    @property
    def key(self) -> str:
        return self.original_topic
