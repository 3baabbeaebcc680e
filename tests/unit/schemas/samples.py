"""One valid sample of every record type, for the schema, codec and topology tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from quanticity.schemas import (
    AnalyticsResult,
    AuctionState,
    Bar,
    DeadLetter,
    DepthLevel,
    DepthSnapshot,
    Fill,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    OptionQuote,
    OptionQuoteBatch,
    OrderEvent,
    Record,
    Signal,
    SocialMessage,
    Tick,
    TickerSentiment,
    UnderlyingQuote,
)

T0 = datetime(2025, 3, 4, 14, 30, 0, 123456, tzinfo=UTC)
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


def envelope(record_id: str = "rec-1", **changes: Any) -> dict[str, Any]:
    """The shared record fields, valid, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "record_id": record_id,
        "event_time": T0,
        "ingest_time": T0 + timedelta(milliseconds=3),
        "source": "sim",
        "run_id": "run-1",
        "mode": "sim",
    }
    fields.update(changes)
    return fields


def chain_columns(rows: int) -> dict[str, Any]:
    """Valid parallel columns of an option chain with ``rows`` contracts."""
    return {
        "strike": [500.0 + 5 * i for i in range(rows)],
        "right": ["C" if i % 2 == 0 else "P" for i in range(rows)],
        **{
            name: [1.0 + i if i % 3 else None for i in range(rows)]
            for name in (
                "bid",
                "ask",
                "last",
                "volume",
                "open_interest",
                "implied_vol",
                "delta",
                "gamma",
                "theta",
                "vega",
                "rho",
            )
        },
    }


def all_samples() -> dict[type[Record], Record]:
    """One valid record of every record type, keyed by its model."""
    samples: list[Record] = [
        UnderlyingQuote(
            symbol="SPY",
            bid=600.01,
            ask=600.03,
            last=600.02,
            bid_size=300.0,
            ask_size=500.0,
            volume=12345.0,
            **envelope("q-1"),
        ),
        OptionChainSnapshot(
            symbol="SPX",
            expiry=date(2025, 3, 21),
            underlying_price=6001.5,
            flags=["partial"],
            **chain_columns(4),
            **envelope("c-1", source="ibkr"),
        ),
        OptionQuote(
            symbol="SPY",
            expiry=date(2025, 3, 4),
            strike=600.0,
            right="C",
            contract_id=700012,
            bid=1.25,
            ask=1.27,
            bid_size=40.0,
            ask_size=55.0,
            implied_vol=0.142,
            delta=0.51,
            gamma=0.09,
            vega=0.11,
            theta=-1.9,
            underlying_price=600.02,
            **envelope("oq-1", source="ibkr"),
        ),
        OptionQuoteBatch(
            symbol="SPY",
            expiry=[date(2025, 3, 4), date(2025, 3, 4)],
            strike=[600.0, 600.0],
            right=["C", "P"],
            contract_id=[700012, 700013],
            bid=[1.25, 1.1],
            ask=[1.27, None],
            last=[None, 1.12],
            bid_size=[40.0, 12.0],
            ask_size=[55.0, None],
            volume=[1200.0, 800.0],
            open_interest=[None, None],
            implied_vol=[0.142, 0.151],
            delta=[0.51, -0.49],
            gamma=[0.09, 0.09],
            vega=[0.11, 0.11],
            theta=[-1.9, -1.8],
            underlying_price=[600.02, 600.02],
            **envelope("oqb-1", source="ibkr"),
        ),
        AuctionState(
            symbol="SPY",
            auction_volume=1.2e6,
            auction_price=600.1,
            imbalance=-350000.0,
            regulatory_imbalance=-120000.0,
            **envelope("au-1", source="ibkr"),
        ),
        Tick(
            symbol="QQQ",
            kind="trade",
            price=520.5,
            size=100.0,
            exchange="ARCA",
            **envelope("t-1", event_time=T0.astimezone(NEW_YORK_WINTER)),
        ),
        Bar(symbol="IWM", interval_s=60, open=230.0, high=231.0, low=229.5, close=230.5, volume=1e6, **envelope("b-1")),
        DepthSnapshot(
            symbol="AAPL",
            venue="ISLAND",
            bids=[DepthLevel(price=190.0, size=200.0, market_maker="NSDQ")],
            asks=[DepthLevel(price=190.02, size=100.0)],
            **envelope("d-1", source="ibkr"),
        ),
        AnalyticsResult(
            symbol="SPY",
            kind="greeks",
            computed_at=T0,
            valid_until=T0 + timedelta(seconds=5),
            values={"delta": 0.51, "vega": None},
            input_ids=["q-1", "c-1"],
            **envelope("a-1"),
        ),
        Signal(
            symbol="SPY",
            strategy="momentum",
            direction="long",
            confidence=0.75,
            analytics_ids=["a-1"],
            rationale="trend",
            **envelope("s-1"),
        ),
        OrderEvent(
            symbol="SPY",
            order_id="o-1",
            signal_id="s-1",
            account="DU123",
            side="buy",
            quantity=2,
            limit_price=Decimal("1.2345"),
            status="submitted",
            **envelope("oe-1"),
        ),
        Fill(
            symbol="SPY",
            exec_id="x-1",
            order_id="o-1",
            signal_id="s-1",
            side="buy",
            quantity=2,
            price=Decimal("1.2300"),
            commission=Decimal("0.65"),
            **envelope("f-1", mode="paper"),
        ),
        SocialMessage(
            channel="discord",
            tier="premium",
            release_at=T0 + timedelta(minutes=15),
            subject="SPY",
            body="long SPY",
            **envelope("m-1"),
        ),
        IndicatorSeries(
            symbol="SPY",
            function="BBANDS",
            interval="1min",
            parameters={"time_period": 20},
            timestamps=[T0, T0 + timedelta(minutes=1)],
            values={"Real Upper Band": [601.0, 601.5], "Real Lower Band": [599.0, None]},
            **envelope("i-1", source="alphavantage"),
        ),
        MacroSeries(
            function="TREASURY_YIELD",
            name="10-Year Treasury Constant Maturity Rate",
            interval="monthly",
            unit="percent",
            parameters={"maturity": "10year"},
            dates=[date(2025, 1, 1), date(2025, 2, 1)],
            values=[4.6, None],
            **envelope("ma-1", source="alphavantage"),
        ),
        NewsItem(
            title="Stocks rally",
            url="https://example.com/a",
            summary="…",
            source_name="Wire",
            topics={"Technology": 0.5},
            overall_sentiment_score=0.21,
            overall_sentiment_label="Somewhat-Bullish",
            tickers=[
                TickerSentiment(ticker="AAPL", relevance_score=0.16, sentiment_score=0.04, sentiment_label="Neutral")
            ],
            **envelope("n-1", source="alphavantage"),
        ),
        DeadLetter(
            original_topic="quotes",
            original_key="SPY",
            partition=1,
            offset=42,
            reason="not_json",
            detail="unexpected character",
            payload_b64="AAE=",
            payload_preview="\x00\x01",
            payload_sha256="ab" * 32,
            **envelope("dl-1", source="platform"),
        ),
    ]
    return {type(sample): sample for sample in samples}
