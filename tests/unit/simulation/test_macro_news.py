"""Tests of the simulated macro series and news feed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from quanticity.simulation import SimulatedMarket, SimulationRequestError
from quanticity.simulation.calendar import ET, holidays
from quanticity.simulation.macro import MACRO_INTERVALS
from tests.unit.simulation.conftest import START

NOW = START + timedelta(days=20)


@pytest.mark.parametrize(("function", "interval"), [(f, i) for f, ivs in MACRO_INTERVALS.items() for i in ivs])
def test_every_series_is_newest_first_and_published_only(market: SimulatedMarket, function: str, interval: str) -> None:
    """Each series is strictly newest first, with nothing dated after the as-of day."""
    series = market.macro_series(function, interval, as_of=NOW)
    dates = [d for d, _ in series]
    assert len(series) >= 5 and dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates)
    assert dates[0] < NOW.date()


def test_levels_are_plausible_near_the_start(market: SimulatedMarket) -> None:
    """Recent values look like the US in 2025."""
    latest = {f: market.macro_series(f, MACRO_INTERVALS[f][0], as_of=NOW)[0][1] for f in MACRO_INTERVALS}
    assert 3.0 < latest["TREASURY_YIELD"] < 6.0 and 2.0 < latest["FEDERAL_FUNDS_RATE"] < 6.5
    assert 290 < latest["CPI"] < 350 and 2.5 < latest["UNEMPLOYMENT"] < 7.0
    assert 150_000 < latest["NONFARM_PAYROLL"] < 170_000 and 20_000 < latest["REAL_GDP"] < 27_000
    assert -2.0 < latest["INFLATION"] < 8.0


def test_daily_yields_are_missing_on_holidays(market: SimulatedMarket) -> None:
    """FRED's '.' (None) appears on weekday market holidays, and only there."""
    daily = market.macro_series("TREASURY_YIELD", "daily", "2year", as_of=NOW)
    missing = {d for d, v in daily if v is None}
    assert missing and all(d in holidays(d.year) for d in missing)
    assert date(2025, 12, 25) in missing


def test_monthly_yield_is_the_average_of_the_daily_ones(market: SimulatedMarket) -> None:
    """Monthly treasury values average the month's daily observations."""
    daily = market.macro_series("TREASURY_YIELD", "daily", "10year", as_of=NOW)
    monthly = dict(market.macro_series("TREASURY_YIELD", "monthly", "10year", as_of=NOW))
    january = [v for d, v in daily if d.year == 2026 and d.month == 1 and v is not None]
    assert monthly[date(2026, 1, 1)] == pytest.approx(sum(january) / len(january), abs=0.006)


def test_macro_rejects_unknown_names(market: SimulatedMarket) -> None:
    """Bad function, interval or maturity raise the named error."""
    for args in (("GDP", "annual", None), ("CPI", "weekly", None), ("TREASURY_YIELD", "daily", "4year")):
        with pytest.raises(SimulationRequestError):
            market.macro_series(*args, as_of=NOW)


def test_news_filters_with_and_semantics(market: SimulatedMarket) -> None:
    """Every article mentions every requested ticker and covers every requested topic."""
    feed = market.news(["AAPL"], ["technology"], None, None, "LATEST", 40, as_of=NOW)
    assert feed
    for item in feed:
        assert "AAPL" in [t["ticker"] for t in item["ticker_sentiment"]]
        assert "Technology" in [t["topic"] for t in item["topics"]]
    stamps = [str(i["time_published"]) for i in feed]
    assert stamps == sorted(stamps, reverse=True)


def test_news_is_deterministic_and_sorted(market: SimulatedMarket) -> None:
    """Same query, same articles; EARLIEST ascends from time_from; limit is honoured."""
    begin = datetime(2026, 3, 10, 0, 0, tzinfo=ET)
    again = SimulatedMarket(market.seed, market.start, market.symbols)
    first = market.news([], [], begin, None, "EARLIEST", 7, as_of=NOW)
    assert first == again.news([], [], begin, None, "EARLIEST", 7, as_of=NOW)
    stamps = [str(i["time_published"]) for i in first]
    assert len(first) == 7 and stamps == sorted(stamps) and stamps[0] >= "20260310T000000"


def test_news_sentiment_fields(market: SimulatedMarket) -> None:
    """Scores are numbers/strings as in the feed, labels follow the thresholds."""
    item = market.news(["NVDA"], [], None, None, "RELEVANCE", 1, as_of=NOW)[0]
    score = item["overall_sentiment_score"]
    assert isinstance(score, float) and -1 <= score <= 1
    ticker = next(t for t in item["ticker_sentiment"] if t["ticker"] == "NVDA")
    assert isinstance(ticker["relevance_score"], str) and isinstance(ticker["ticker_sentiment_score"], str)
    assert set(item) >= {
        "title",
        "url",
        "time_published",
        "authors",
        "summary",
        "banner_image",
        "source",
        "category_within_source",
        "source_domain",
        "topics",
        "overall_sentiment_label",
    }


def test_news_rejects_unknown_inputs(market: SimulatedMarket) -> None:
    """An unknown ticker or topic is an error; a quiet window is an empty list."""
    with pytest.raises(SimulationRequestError):
        market.news(["NOPE1"], [], None, None, "LATEST", 5, as_of=NOW)
    with pytest.raises(SimulationRequestError):
        market.news([], ["gossip"], None, None, "LATEST", 5, as_of=NOW)
    quiet_from = datetime(2026, 3, 14, 5, 0, tzinfo=UTC)
    assert (
        market.news(
            ["AAPL", "HIMS", "COST"], ["ipo"], quiet_from, quiet_from + timedelta(hours=1), "LATEST", 5, as_of=NOW
        )
        == []
    )
