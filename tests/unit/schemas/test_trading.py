"""Tests of quanticity.schemas.trading: analytics, signals, orders, fills, social, dead letters."""

from __future__ import annotations

import typing
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from quanticity.schemas import AnalyticsResult, DeadLetter, Fill, OrderEvent, Signal, SocialMessage

from .samples import T0, envelope


def _analytics(computed_at: datetime, valid_until: datetime) -> AnalyticsResult:
    return AnalyticsResult(
        symbol="SPY", kind="vpin", computed_at=computed_at, valid_until=valid_until, values={"vpin": 0.3}, **envelope()
    )


def test_analytics_validity_window() -> None:
    """valid_until may equal computed_at; before it, the result is refused."""
    assert _analytics(T0, T0).valid_until == T0
    with pytest.raises(ValidationError, match="valid_until is before computed_at"):
        _analytics(T0, T0 - timedelta(microseconds=1))


def test_analytics_times_must_be_aware() -> None:
    """Naive computed_at / valid_until are refused."""
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValidationError, match="computed_at"):
        _analytics(naive, T0)
    with pytest.raises(ValidationError, match="valid_until"):
        _analytics(T0, naive + timedelta(hours=1))


@pytest.mark.parametrize("confidence", [-0.01, 1.01])
def test_signal_confidence_is_between_zero_and_one(confidence: float) -> None:
    """Signal confidence outside [0, 1] is refused."""
    with pytest.raises(ValidationError, match="confidence"):
        Signal(symbol="SPY", strategy="x", direction="long", confidence=confidence, **envelope())


def _order(**changes: Any) -> OrderEvent:
    fields: dict[str, Any] = {
        "symbol": "SPY",
        "order_id": "o-1",
        "side": "buy",
        "quantity": 1,
        "limit_price": Decimal("10.5"),
        "status": "pending",
        **changes,
    }
    return OrderEvent(**fields, **envelope())


def test_order_limit_price_is_decimal() -> None:
    """Limit prices are held as Decimal, whatever form they arrive in."""
    assert _order(limit_price=Decimal("101.2500")).limit_price == Decimal("101.25")
    assert isinstance(_order(limit_price="101.25").limit_price, Decimal)
    assert _order(limit_price=None).limit_price is None


@pytest.mark.parametrize("price", [Decimal("0"), Decimal("-1"), Decimal("1.23456")])
def test_order_limit_price_must_be_positive_with_four_decimals(price: Decimal) -> None:
    """Zero, negative and sub-1/10000 limit prices are refused."""
    with pytest.raises(ValidationError, match="limit_price"):
        _order(limit_price=price)


def test_order_quantity_must_be_positive() -> None:
    """An order for zero contracts is refused."""
    with pytest.raises(ValidationError, match="quantity"):
        _order(quantity=0)


def test_order_state_sets_partition_the_statuses() -> None:
    """DONE and ACTIVE are disjoint and together are exactly the allowed statuses."""
    statuses = set(typing.get_args(OrderEvent.model_fields["status"].annotation))

    assert OrderEvent.DONE.isdisjoint(OrderEvent.ACTIVE)
    assert statuses == OrderEvent.DONE | OrderEvent.ACTIVE


def _fill(**changes: Any) -> Fill:
    fields: dict[str, Any] = {
        "symbol": "SPY",
        "exec_id": "x-1",
        "order_id": "o-1",
        "side": "sell",
        "quantity": 3,
        "price": Decimal("2.05"),
        **changes,
    }
    return Fill(**fields, **envelope())


def test_fill_prices_are_decimal() -> None:
    """Fill price and commission are Decimal; commission defaults to zero."""
    fill = _fill()

    assert isinstance(fill.price, Decimal) and fill.price == Decimal("2.05")
    assert fill.commission == Decimal("0")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", Decimal("0")),
        ("price", Decimal("0.00001")),
        ("commission", Decimal("-0.01")),
        ("exec_id", ""),
        ("quantity", -1),
    ],
)
def test_fill_rejects_bad_values(field: str, value: object) -> None:
    """Non-positive or over-precise prices, negative commissions, empty ids are refused."""
    with pytest.raises(ValidationError, match=field):
        _fill(**{field: value})


def test_social_message_needs_a_body_and_a_known_channel() -> None:
    """An empty body or an unknown channel is refused."""
    fields: dict[str, Any] = {"channel": "discord", "tier": "basic", "release_at": T0}
    with pytest.raises(ValidationError, match="body"):
        SocialMessage(body="", **fields, **envelope())
    with pytest.raises(ValidationError, match="channel"):
        SocialMessage(body="x", **{**fields, "channel": "fax"}, **envelope())


def test_dead_letter_is_keyed_by_its_original_topic() -> None:
    """A dead letter's partition key is the topic the payload came from."""
    letter = DeadLetter(
        original_topic="orders",
        reason="validation",
        detail="d",
        payload_b64="",
        payload_preview="",
        payload_sha256="0" * 64,
        **envelope(source="platform"),
    )

    assert letter.key == "orders"
    with pytest.raises(ValidationError, match="reason"):
        DeadLetter(
            original_topic="orders",
            reason="",
            detail="d",
            payload_b64="",
            payload_preview="",
            payload_sha256="0" * 64,
            **envelope(source="platform"),
        )
