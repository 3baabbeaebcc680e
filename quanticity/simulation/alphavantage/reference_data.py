"""Reference functions: the 10 economic indicators, NEWS_SENTIMENT and MARKET_STATUS."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from quanticity.simulation.alphavantage import formats, messages
from quanticity.simulation.alphavantage.query import Query, Rejection, Reply
from quanticity.simulation.calendar import ET, is_trading_day, to_et
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.macro import MACRO_INTERVALS, MATURITIES
from quanticity.simulation.news import RELEVANCE_DEFINITION, SCORE_DEFINITION

__all__ = ["MACRO_FUNCTIONS", "economic_indicator", "market_status", "news_sentiment"]

MACRO_FUNCTIONS = tuple(MACRO_INTERVALS)


def economic_indicator(q: Query) -> Reply:
    """One of the 10 macro functions; ``interval`` where the function offers several, ``maturity`` for yields."""
    allowed = MACRO_INTERVALS[q.function]
    interval = q.choice("interval", allowed, allowed[0]) if len(allowed) > 1 else allowed[0]
    maturity = q.choice("maturity", tuple(MATURITIES), "10year") if q.function == "TREASURY_YIELD" else None
    csv = q.csv
    observations = q.market.macro_series(q.function, interval, maturity, as_of=q.now)
    if "macro_dots" in q.faults:
        rng = q.faults.rng()
        spoil = rng.random(len(observations)) < q.faults.fraction("macro_dots")
        observations = [(d, None if bad else v) for (d, v), bad in zip(observations, spoil.tolist(), strict=True)]
    return formats.macro(q.function, interval, maturity, observations, csv)


def _news_time(q: Query, name: str) -> datetime | None:
    raw = q.get(name)
    if raw is None:
        return None
    for pattern in ("%Y%m%dT%H%M", "%Y%m%dT%H%M%S"):
        try:
            return datetime.strptime(raw, pattern).replace(tzinfo=ET)
        except ValueError:
            continue
    raise Rejection(messages.news_invalid_inputs())


def news_sentiment(q: Query) -> Reply:
    """NEWS_SENTIMENT: ``tickers`` and ``topics`` (both AND), ``time_from``/``time_to`` (ET), ``sort``, ``limit``.

    ``time_published`` and the time filters are read as US/Eastern, like every other
    AlphaVantage timestamp; the real feed does not say which zone it uses [U].
    """
    tickers = [t for t in (q.get("tickers") or "").split(",") if t]
    topics = [t for t in (q.get("topics") or "").split(",") if t]
    sort = (q.get("sort") or "LATEST").upper()
    try:
        limit = min(int(q.get("limit") or "50"), 1000)
    except ValueError:
        raise Rejection(messages.news_invalid_inputs()) from None
    if limit < 1:
        raise Rejection(messages.news_invalid_inputs())
    time_from, time_to = _news_time(q, "time_from"), _news_time(q, "time_to")
    try:
        feed = q.market.news(tickers, topics, time_from, time_to, sort, limit, as_of=q.now)
    except SimulationRequestError:
        raise Rejection(messages.news_invalid_inputs()) from None
    if not feed:
        raise Rejection(messages.news_no_articles())
    return {
        "items": str(len(feed)),
        "sentiment_score_definition": SCORE_DEFINITION,
        "relevance_score_definition": RELEVANCE_DEFINITION,
        "feed": feed,
    }


# (market_type, region, primary_exchanges, local_open, local_close, notes, time zone or None for 24h)
_MARKETS = (
    ("Equity", "United States", "NASDAQ, NYSE, AMEX, BATS", "09:30", "16:15", "", "America/New_York"),
    ("Equity", "Canada", "Toronto, Toronto Ventures", "09:30", "16:00", "", "America/Toronto"),
    ("Equity", "United Kingdom", "London", "08:00", "16:30", "", "Europe/London"),
    ("Equity", "Germany", "XETRA, Berlin, Frankfurt, Munich, Stuttgart", "08:00", "20:00", "", "Europe/Berlin"),
    ("Equity", "France", "Paris", "09:00", "17:30", "", "Europe/Paris"),
    ("Equity", "Spain", "Barcelona, Madrid", "09:00", "17:30", "", "Europe/Madrid"),
    ("Equity", "Portugal", "Lisbon", "08:00", "16:30", "", "Europe/Lisbon"),
    ("Equity", "Japan", "Tokyo", "09:00", "15:00", "Noon trading break from 11:30 to 12:30 local time", "Asia/Tokyo"),
    ("Equity", "India", "NSE, BSE", "09:15", "15:30", "", "Asia/Kolkata"),
    (
        "Equity",
        "Mainland China",
        "Shanghai, Shenzhen",
        "09:30",
        "15:00",
        "Noon trading break from 11:30 to 13:00 local time",
        "Asia/Shanghai",
    ),
    (
        "Equity",
        "Hong Kong",
        "Hong Kong",
        "09:30",
        "16:00",
        "Noon trading break from 12:00 to 13:00 local time",
        "Asia/Hong_Kong",
    ),
    ("Equity", "Brazil", "Sao Paolo", "10:00", "17:30", "", "America/Sao_Paulo"),
    ("Equity", "Mexico", "Mexico", "08:30", "15:00", "", "America/Mexico_City"),
    ("Equity", "South Africa", "Johannesburg", "09:00", "17:00", "", "Africa/Johannesburg"),
    (
        "Forex",
        "Global",
        "Global",
        "00:00",
        "23:59",
        "The forex market is open 24 hours a day, EXCEPT between 16:00 EST on Friday and 17:00 EST on Sunday",
        None,
    ),
    ("Cryptocurrency", "Global", "Global", "00:00", "23:59", "The cryptocurrency market is open 24 hours a day", None),
)


def _status(now: datetime, market_type: str, region: str, open_: str, close: str, zone: str | None) -> str:
    if market_type == "Cryptocurrency":
        return "open"
    if zone is None:  # forex: closed from Friday 16:00 to Sunday 17:00 New York time
        local = to_et(now)
        closed = (
            (local.weekday() == 4 and local.hour >= 16)
            or local.weekday() == 5
            or (local.weekday() == 6 and local.hour < 17)
        )
        return "closed" if closed else "open"
    local = now.astimezone(ZoneInfo(zone))
    trading = is_trading_day(local.date()) if region == "United States" else local.weekday() < 5
    inside = time.fromisoformat(open_) <= local.time().replace(tzinfo=None) < time.fromisoformat(close)
    return "open" if trading and inside else "closed"


def market_status(q: Query) -> Reply:
    """MARKET_STATUS: the S5 fixture's 16 markets, with status computed from the clock."""
    return {
        "endpoint": "Global Market Open & Close Status",
        "markets": [
            {
                "market_type": m,
                "region": r,
                "primary_exchanges": x,
                "local_open": o,
                "local_close": c,
                "current_status": _status(q.now, m, r, o, c, z),
                "notes": n,
            }
            for m, r, x, o, c, n, z in _MARKETS
        ],
    }
