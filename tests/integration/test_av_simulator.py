"""The AlphaVantage simulator on a loopback port, driven by a real ``httpx.AsyncClient``.

Needs neither the broker nor Redis: each test starts its own server (fresh quotas and
fault counters) over one shared simulated market, with a clock the test controls.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.alphavantage import FUNCTIONS, FaultRule, KeyPlan, SimulatorConfig, serve
from quanticity.simulation.alphavantage.indicators import INDICATOR_FUNCTIONS
from quanticity.simulation.calendar import ET
from tests.conftest import free_port

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # Monday 09:30 ET
NOW = datetime(2026, 3, 3, 11, 0, 7, tzinfo=ET)  # Tuesday, mid-session
PREMIUM_PLAN = KeyPlan.premium(600)
KEYS = {"key": PREMIUM_PLAN, "free": KeyPlan.free(), "basic": KeyPlan.premium(75, frozenset({"premium"}))}
INVALID = (
    "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for {}."
)
PREMIUM = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium "
    "plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"
)
THROTTLE = (
    "Thank you for using Alpha Vantage! Please contact premium@alphavantage.co if you are targeting a higher "
    "API call volume."
)


class Clock:
    """A simulator clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Start = Callable[..., Awaitable[tuple[httpx.AsyncClient, Clock]]]


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(3, START, ["SPY", "QQQ", "IWM", "SPX"])


@pytest.fixture
async def start(market: SimulatedMarket) -> AsyncIterator[Start]:
    """Starts a simulator with the given config options; everything stops at teardown."""
    running: list[tuple[object, httpx.AsyncClient]] = []

    async def launch(**options: object) -> tuple[httpx.AsyncClient, Clock]:
        config = SimulatorConfig(keys=options.pop("keys", KEYS), daily_history_days=150, **options)  # type: ignore[arg-type]
        clock = Clock(NOW)
        port = free_port()
        runner = await serve("127.0.0.1", port, config, market, clock)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
        running.append((runner, client))
        return client, clock

    yield launch
    for runner, client in running:
        await client.aclose()
        await runner.cleanup()  # type: ignore[attr-defined]


async def _get(client: httpx.AsyncClient, **params: str) -> dict[str, object]:
    response = await client.get("/query", params={"apikey": "key", **params})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


async def _csv(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get("/query", params={"apikey": "key", "datatype": "csv", **params})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return response.text.splitlines()


async def test_realtime_options(start: Start) -> None:
    """Filters by expiration and contract, greeks on request, CSV header, SPX vs SPXW roots, entitlement."""
    client, _ = await start()
    today = await _get(
        client, function="REALTIME_OPTIONS", symbol="SPY", expiration="2026-03-03", require_greeks="true"
    )
    rows = today["data"]
    assert today["endpoint"] == "Realtime Options" and today["message"] == "success"
    assert 150 < len(rows) < 400 and {r["expiration"] for r in rows} == {"2026-03-03"}
    assert len(rows[0]) == 20 and all(isinstance(v, str) for v in rows[0].values())
    strikes = [float(r["strike"]) for r in rows[::2]]
    assert strikes == sorted(strikes) and [r["type"] for r in rows[:2]] == ["call", "put"]
    one = await _get(client, function="REALTIME_OPTIONS", symbol="SPY", contract=rows[10]["contractID"])
    assert [r["contractID"] for r in one["data"]] == [rows[10]["contractID"]] and len(one["data"][0]) == 14
    past = await _get(client, function="REALTIME_OPTIONS", symbol="SPY", expiration="2026-03-02")
    assert past == {"Error Message": INVALID.format("REALTIME_OPTIONS")}
    lines = await _csv(
        client, function="REALTIME_OPTIONS", symbol="QQQ", require_greeks="true", expiration="2026-03-06"
    )
    assert lines[0].endswith(",date,implied_volatility,delta,gamma,theta,vega,rho") and lines[1].startswith(
        "QQQ260306C"
    )
    spxw = await _get(client, function="REALTIME_OPTIONS", symbol="SPXW", expiration="2026-03-03")
    assert spxw["data"] and all(r["contractID"].startswith("SPXW260303") for r in spxw["data"])
    spx = await _get(client, function="REALTIME_OPTIONS", symbol="SPX", expiration="2026-03-20")
    assert spx["data"] and {r["contractID"][:9] for r in spx["data"]} == {"SPX260320"}
    sample = (
        await client.get("/query", params={"function": "REALTIME_OPTIONS", "symbol": "SPY", "apikey": "basic"})
    ).json()
    assert sample["data"][0]["symbol"] == "XXYYZZ" and "ARTIFICIAL" in sample["message"]


async def test_realtime_options_hold_at_the_close_until_the_open(start: Start) -> None:
    """After 16:00 ET the chain is the close's, poll after poll (the underlying trades on till 20:00);
    before the next open it is still that close's, dated with its session."""
    client, clock = await start()
    query = {"function": "REALTIME_OPTIONS", "symbol": "SPY", "expiration": "2026-03-04", "require_greeks": "true"}
    clock.now = datetime(2026, 3, 3, 15, 59, 0, tzinfo=ET)
    before_close = await _get(client, **query)
    clock.now = datetime(2026, 3, 3, 15, 59, 30, tzinfo=ET)
    assert await _get(client, **query) != before_close  # in session: quotes move
    clock.now = datetime(2026, 3, 3, 16, 5, tzinfo=ET)
    after_close = await _get(client, **query)
    clock.now = datetime(2026, 3, 3, 19, 30, tzinfo=ET)
    assert await _get(client, **query) == after_close
    clock.now = datetime(2026, 3, 4, 8, 0, tzinfo=ET)  # the next morning, before the open
    assert await _get(client, **query) == after_close
    assert {row["date"] for row in after_close["data"]} == {"2026-03-03"}  # type: ignore[union-attr]
    clock.now = datetime(2026, 3, 4, 9, 31, tzinfo=ET)
    opened = await _get(client, **query)
    assert opened != after_close and {row["date"] for row in opened["data"]} == {"2026-03-04"}  # type: ignore[union-attr]


async def test_historical_options(start: Start) -> None:
    """Default date is the previous session; always with greeks; weekends are empty; the free tier is refused."""
    client, _ = await start()
    default = await _get(client, function="HISTORICAL_OPTIONS", symbol="IWM", expiration="2026-03-02")
    assert default["endpoint"] == "Historical Options" and default["data"]
    assert {r["date"] for r in default["data"]} == {"2026-03-02"} and len(default["data"][0]) == 20
    weekend = await _get(client, function="HISTORICAL_OPTIONS", symbol="IWM", date="2026-02-28")
    assert weekend == {"endpoint": "Historical Options", "message": "success", "data": []}
    future = await _get(client, function="HISTORICAL_OPTIONS", symbol="IWM", date="2026-03-04")
    assert future == {"Error Message": INVALID.format("HISTORICAL_OPTIONS")}
    free = (
        await client.get("/query", params={"function": "HISTORICAL_OPTIONS", "symbol": "IWM", "apikey": "free"})
    ).json()
    assert free == {"Information": PREMIUM}


async def test_time_series_intraday(start: Start) -> None:
    """compact/full/month/extended_hours/entitlement/CSV, and no index intraday."""
    client, clock = await start()
    compact = await _get(client, function="TIME_SERIES_INTRADAY", symbol="SPY", interval="1min", entitlement="realtime")
    series = compact["Time Series (1min)"]
    stamps = list(series)
    assert len(stamps) == 100 and stamps == sorted(stamps, reverse=True) and stamps[0] == "2026-03-03 10:59:00"
    assert compact["Meta Data"]["3. Last Refreshed"] == stamps[0]
    eod = await _get(client, function="TIME_SERIES_INTRADAY", symbol="SPY", interval="60min", outputsize="full")
    eod_stamps = list(eod["Time Series (60min)"])
    assert eod_stamps[0] == "2026-03-02 19:00:00" and eod["Meta Data"]["5. Output Size"] == "Full size"
    month = await _get(
        client,
        function="TIME_SERIES_INTRADAY",
        symbol="AAPL",
        interval="30min",
        month="2026-02",
        outputsize="full",
        extended_hours="false",
    )
    keys = list(month["Time Series (30min)"])
    assert all(k.startswith("2026-02") for k in keys) and {k[11:16] for k in keys} == {
        f"{h:02d}:{m:02d}" for h in range(9, 16) for m in (0, 30)
    } - {"09:00"}
    lines = await _csv(client, function="TIME_SERIES_INTRADAY", symbol="QQQ", interval="5min", entitlement="delayed")
    assert lines[0] == "timestamp,open,high,low,close,volume" and lines[1].startswith("2026-03-03 10:40:00,")
    for bad in (
        {"interval": "2min", "symbol": "SPY"},
        {"interval": "5min", "symbol": "SPX"},
        {"interval": "5min", "symbol": "SPY", "month": "2026-13"},
    ):
        assert await _get(client, function="TIME_SERIES_INTRADAY", **bad) == {
            "Error Message": INVALID.format("TIME_SERIES_INTRADAY")
        }
    clock.now = NOW + timedelta(hours=10)  # after 20:00 the whole day is out without an entitlement
    late = await _get(client, function="TIME_SERIES_INTRADAY", symbol="SPY", interval="15min")
    assert list(late["Time Series (15min)"])[0] == "2026-03-03 19:45:00"


async def test_global_quote(start: Start) -> None:
    """Realtime and delayed keys, end-of-day default, {} for unknown and index symbols, CSV."""
    client, _ = await start()
    live = (await _get(client, function="GLOBAL_QUOTE", symbol="MSFT", entitlement="realtime"))["Global Quote"]
    assert live["07. latest trading day"] == "2026-03-03" and live["10. change percent"].endswith("%")
    delayed = await _get(client, function="GLOBAL_QUOTE", symbol="MSFT", entitlement="delayed")
    assert list(delayed) == ["Global Quote - DATA DELAYED BY 15 MINUTES"]
    eod = (await _get(client, function="GLOBAL_QUOTE", symbol="MSFT"))["Global Quote"]
    assert eod["07. latest trading day"] == "2026-03-02" and eod["05. price"] == live["08. previous close"]
    assert await _get(client, function="GLOBAL_QUOTE", symbol="NOSUCH") == {"Global Quote": {}}
    assert await _get(client, function="GLOBAL_QUOTE", symbol="SPX") == {"Global Quote": {}}
    lines = await _csv(client, function="GLOBAL_QUOTE", symbol="MSFT", entitlement="realtime")
    assert lines[0] == "symbol,open,high,low,price,volume,latestDay,previousClose,change,changePercent"
    refused = (
        await client.get(
            "/query",
            params={"function": "GLOBAL_QUOTE", "symbol": "MSFT", "apikey": "basic", "entitlement": "realtime"},
        )
    ).json()
    assert refused == {"Information": PREMIUM}


_INDICATOR_PARAMS = {"time_period": "10", "series_type": "close"}


async def test_all_technical_indicators(start: Start) -> None:
    """Each of the 19 indicators answers with its data key, Meta Data and string values; MACD/VWAP are premium."""
    client, _ = await start()
    for function in INDICATOR_FUNCTIONS:
        interval = "15min" if function == "VWAP" else "daily"
        payload = await _get(client, function=function, symbol="AAPL", interval=interval, **_INDICATOR_PARAMS)
        data = payload[f"Technical Analysis: {function}"]
        meta = payload["Meta Data"]
        assert list(meta)[:4] == ["1: Symbol", "2: Indicator", "3: Last Refreshed", "4: Interval"], function
        newest = next(iter(data))
        assert newest == meta["3: Last Refreshed"][: len(newest)] and len(data) > 50, function
        assert all(isinstance(v, str) for v in data[newest].values()), function
    intraday = await _get(
        client, function="RSI", symbol="AAPL", interval="5min", month="2026-02", time_period="14", series_type="close"
    )
    assert all(k.startswith("2026-02") and len(k) == 16 for k in intraday["Technical Analysis: RSI"])
    lines = await _csv(client, function="STOCH", symbol="AAPL", interval="weekly")
    assert lines[0] == "time,SlowD,SlowK"
    free = (
        await client.get(
            "/query",
            params={
                "function": "MACD",
                "symbol": "AAPL",
                "interval": "daily",
                "series_type": "close",
                "apikey": "free",
            },
        )
    ).json()
    assert free == {"Information": PREMIUM}
    missing = await _get(client, function="SMA", symbol="AAPL", interval="daily", series_type="close")
    assert missing == {"Error Message": INVALID.format("SMA")}


_UNITS = {
    "REAL_GDP": "billions of dollars",
    "REAL_GDP_PER_CAPITA": "chained 2012 dollars",
    "TREASURY_YIELD": "percent",
    "FEDERAL_FUNDS_RATE": "percent",
    "CPI": "index 1982-1984=100",
    "INFLATION": "percent",
    "RETAIL_SALES": "millions of dollars",
    "DURABLES": "millions of dollars",
    "UNEMPLOYMENT": "percent",
    "NONFARM_PAYROLL": "thousands of persons",
}


async def test_economic_indicators(start: Start) -> None:
    """All 10 macro functions with names, units, newest-first data, maturities and CSV."""
    client, _ = await start()
    for function, unit in _UNITS.items():
        payload = await _get(client, function=function)
        assert set(payload) == {"name", "interval", "unit", "data"} and payload["unit"] == unit, function
        dates = [row["date"] for row in payload["data"]]
        assert dates == sorted(dates, reverse=True) and dates[0] < "2026-03-03", function
    yields = await _get(client, function="TREASURY_YIELD", interval="daily", maturity="3month")
    assert yields["name"] == "3-Month Treasury Constant Maturity Rate" and yields["data"][0]["date"] == "2026-03-02"
    assert any(row["value"] == "." for row in yields["data"])  # market holidays
    assert (await _csv(client, function="CPI", interval="semiannual"))[0] == "timestamp,value"
    assert await _get(client, function="CPI", interval="weekly") == {"Error Message": INVALID.format("CPI")}


async def test_news_market_status_and_index_data(start: Start) -> None:
    """NEWS_SENTIMENT filters and texts, MARKET_STATUS from the clock, INDEX_DATA gating and shape."""
    client, _ = await start()
    news = await _get(client, function="NEWS_SENTIMENT", tickers="NVDA", limit="5")
    assert news["items"] == "5" and len(news["feed"]) == 5
    assert all("NVDA" in [t["ticker"] for t in item["ticker_sentiment"]] for item in news["feed"])
    assert (await _get(client, function="NEWS_SENTIMENT", tickers="NOPEX"))["Information"].startswith("Invalid inputs.")
    empty = await _get(
        client,
        function="NEWS_SENTIMENT",
        tickers="HIMS,COST,ORCL",
        topics="ipo,blockchain",
        time_from="20260303T0500",
        time_to="20260303T0600",
    )
    assert empty["Information"].startswith("No articles found.")
    status = await _get(client, function="MARKET_STATUS")
    us = status["markets"][0]
    assert status["endpoint"] == "Global Market Open & Close Status" and us["current_status"] == "open"
    weekly = await _get(client, function="INDEX_DATA", symbol="SPX", interval="weekly")
    assert weekly["symbol"] == "SPX" and weekly["data"][0]["date"] == "2026-03-02"
    assert set(weekly["data"][0]) == {"date", "open", "high", "low", "close"}
    basic = (
        await client.get(
            "/query", params={"function": "INDEX_DATA", "symbol": "SPX", "interval": "daily", "apikey": "basic"}
        )
    ).json()
    assert basic == {"Information": PREMIUM}
    assert await _get(client, function="INDEX_DATA", symbol="SPX", interval="5min") == {
        "Error Message": INVALID.format("INDEX_DATA")
    }


async def test_request_errors(start: Start) -> None:
    """Missing/unknown function, bad or demo key, and every function is routed."""
    client, _ = await start()
    assert await _get(client) == {"Error Message": "This API function () does not exist."}
    assert await _get(client, function="FOO") == {"Error Message": "This API function (FOO) does not exist."}
    bad = (await client.get("/query", params={"function": "CPI", "apikey": "wrong"})).json()
    assert bad["Error Message"].startswith("the parameter apikey is invalid or missing.")
    demo = (await client.get("/query", params={"function": "CPI", "apikey": "demo"})).json()
    assert demo["Information"].startswith("The **demo** API key is for demo purposes only.")
    assert await _get(client, function="GLOBAL_QUOTE") == {"Error Message": INVALID.format("GLOBAL_QUOTE")}
    assert len(FUNCTIONS) == 7 + 19 + 10


@pytest.mark.parametrize("key", ["Information", "Note"])
async def test_per_minute_quota(start: Start, key: str) -> None:
    """The 4th call of a 3/min key within a minute is throttled under the configured key; it clears later."""
    client, clock = await start(keys={"key": KeyPlan.premium(3)}, throttle_key=key)
    for _ in range(3):
        assert "Global Quote" in await _get(client, function="GLOBAL_QUOTE", symbol="SPY")
    assert await _get(client, function="CPI") == {key: THROTTLE}
    clock.now += timedelta(seconds=61)
    assert "data" in await _get(client, function="CPI")


async def test_free_tier_limits(start: Start) -> None:
    """Free keys: the burst text within a second, the daily-cap text (quoting the key) after the cap."""
    client, clock = await start(free_daily_limit=2)
    params = {"function": "GLOBAL_QUOTE", "symbol": "SPY", "apikey": "free"}
    assert "Global Quote" in (await client.get("/query", params=params)).json()
    burst = (await client.get("/query", params=params)).json()
    assert burst["Information"].startswith("Thank you for using Alpha Vantage! Please consider spreading out")
    clock.now += timedelta(seconds=2)
    assert "Global Quote" in (await client.get("/query", params=params)).json()
    clock.now += timedelta(seconds=2)
    cap = (await client.get("/query", params=params)).json()
    assert cap["Information"].startswith("We have detected your API key as free and our standard API rate limit is 25")


async def test_fault_injection(start: Start) -> None:
    """Each fault kind, forced on its own function, reaches the client as configured."""
    always = 1.0
    faults = {
        "MARKET_STATUS": (FaultRule("http_503", probability=always),),
        "CPI": (FaultRule("html_body", probability=always),),
        "DURABLES": (FaultRule("empty_object", probability=always),),
        "INFLATION": (FaultRule("throttle", probability=always),),
        "WMA": (FaultRule("premium_only", probability=always),),
        "REALTIME_OPTIONS": (FaultRule("empty_chain", probability=always),),
        "HISTORICAL_OPTIONS": (FaultRule("junk_greeks", probability=always, fraction=1.0),),
        "GLOBAL_QUOTE": (FaultRule("empty_global_quote", probability=always),),
        "UNEMPLOYMENT": (FaultRule("macro_dots", probability=always, fraction=1.0),),
        "SMA": (FaultRule("truncated_body", probability=always),),
        "NEWS_SENTIMENT": (FaultRule("slow_response", probability=always, seconds=0.3),),
    }
    client, _ = await start(faults=faults)
    unavailable = await client.get("/query", params={"function": "MARKET_STATUS", "apikey": "key"})
    assert unavailable.status_code == 503
    html = await client.get("/query", params={"function": "CPI", "apikey": "key"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert await _get(client, function="DURABLES") == {}
    assert await _get(client, function="INFLATION") == {"Information": THROTTLE}
    assert await _get(client, function="WMA", symbol="SPY", interval="daily", **_INDICATOR_PARAMS) == {
        "Information": PREMIUM
    }
    chain = await _get(client, function="REALTIME_OPTIONS", symbol="SPY", expiration="2026-03-03")
    assert chain == {"endpoint": "Realtime Options", "message": "success", "data": []}
    junk = await _get(client, function="HISTORICAL_OPTIONS", symbol="SPY", expiration="2026-03-02")
    assert any(float(r["implied_volatility"]) >= 2.0 for r in junk["data"])
    assert await _get(client, function="GLOBAL_QUOTE", symbol="SPY", entitlement="realtime") == {"Global Quote": {}}
    dots = await _get(client, function="UNEMPLOYMENT")
    assert {row["value"] for row in dots["data"]} == {"."}
    truncated = await client.get(
        "/query", params={"function": "SMA", "symbol": "SPY", "interval": "daily", "apikey": "key", **_INDICATOR_PARAMS}
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    began = time.perf_counter()
    await _get(client, function="NEWS_SENTIMENT", tickers="AAPL", limit="1")
    assert time.perf_counter() - began >= 0.3


async def test_any_key_mode_accepts_every_key_but_demo(start: Start) -> None:
    """With ``any_key`` (the CLI default) any non-empty key is premium; ``demo`` and no key are refused."""
    from quanticity.simulation.alphavantage.config import KeyPlan

    client, _ = await start(keys={}, any_key=KeyPlan.premium(600))
    quote = await client.get("/query", params={"apikey": "whatever-1", "function": "GLOBAL_QUOTE", "symbol": "SPY"})
    assert "Global Quote" in quote.json()
    missing = await client.get("/query", params={"function": "GLOBAL_QUOTE", "symbol": "SPY"})
    assert "apikey is invalid or missing" in missing.json()["Error Message"]
    demo = await client.get("/query", params={"apikey": "demo", "function": "GLOBAL_QUOTE", "symbol": "SPY"})
    assert "demo" in demo.json()["Information"]
