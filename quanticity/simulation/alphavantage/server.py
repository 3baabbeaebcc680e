"""The AlphaVantage simulator: an aiohttp application serving ``GET /query`` on loopback.

Every request goes through the real service's gates in order: API key (bad key ->
``Error Message``), function name (unknown -> ``does not exist``), the key's quota
(throttle text under ``Information`` or ``Note``), the configured faults (503, HTML,
``{}``, forced throttle or premium message), then the function itself. The function
runs in a single worker thread so the event loop never blocks on chain pricing or
path generation; a slow-response fault delays the reply in wall time.

The aiohttp access log is off: query strings carry API keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.simulation.alphavantage import messages
from quanticity.simulation.alphavantage.config import SimulatorConfig
from quanticity.simulation.alphavantage.faults import ActiveFaults, FaultInjector
from quanticity.simulation.alphavantage.indicators import INDICATOR_FUNCTIONS
from quanticity.simulation.alphavantage.market_data import (
    global_quote,
    index_data,
    technical_indicator,
    time_series_intraday,
)
from quanticity.simulation.alphavantage.options_data import historical_options, realtime_options
from quanticity.simulation.alphavantage.query import Query, Rejection, Reply
from quanticity.simulation.alphavantage.quota import QuotaLedger
from quanticity.simulation.alphavantage.reference_data import (
    MACRO_FUNCTIONS,
    economic_indicator,
    market_status,
    news_sentiment,
)
from quanticity.simulation.errors import MarketHorizonError, SimulationRequestError
from quanticity.simulation.market import SimulatedMarket

__all__ = ["FUNCTIONS", "STATE", "SimulatorState", "build_app", "run_forever", "serve"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Handler = Callable[[Query], Reply]

FUNCTIONS: dict[str, Handler] = {
    "REALTIME_OPTIONS": realtime_options,
    "HISTORICAL_OPTIONS": historical_options,
    "TIME_SERIES_INTRADAY": time_series_intraday,
    "GLOBAL_QUOTE": global_quote,
    "INDEX_DATA": index_data,
    "NEWS_SENTIMENT": news_sentiment,
    "MARKET_STATUS": market_status,
    **dict.fromkeys(INDICATOR_FUNCTIONS, technical_indicator),
    **dict.fromkeys(MACRO_FUNCTIONS, economic_indicator),
}


@dataclass(slots=True)
class SimulatorState:
    """What a running simulator knows, for tests and soak reports.

    Attributes:
        config: its configuration.
        market: the market it serves.
        clock: its clock.
        quota: per-key quota ledger (admitted / rejected counts, peak window).
        faults: fault injector (``fired`` counts per function and kind).
        executor: the single worker thread the functions run in (market access stays serial).
        calls: requests per function that reached the function itself.
    """

    config: SimulatorConfig
    market: SimulatedMarket
    clock: Clock
    quota: QuotaLedger
    faults: FaultInjector
    executor: ThreadPoolExecutor
    calls: dict[str, int] = field(default_factory=dict)


STATE = web.AppKey("alphavantage_simulator", SimulatorState)


def _json(payload: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, option=orjson.OPT_INDENT_2), status=status, content_type="application/json"
    )


def _replacement(kind: str, config: SimulatorConfig) -> web.Response:
    if kind == "http_503":
        return web.Response(
            body=b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n",
            status=503,
            content_type="text/html",
        )
    if kind == "html_body":
        return web.Response(body=messages.html_error_page(), content_type="text/html")
    if kind == "empty_object":
        return _json({})
    if kind == "throttle":
        return _json(messages.per_minute_throttle(config.throttle_key))
    return _json(messages.premium_endpoint())


def _run(handler: Handler, query: Query) -> Reply:
    """Run one function in the worker thread, mapping market errors to AlphaVantage replies."""
    try:
        return handler(query)
    except Rejection as rejection:
        return rejection.payload
    except (SimulationRequestError, MarketHorizonError):
        # A parameter the market cannot serve (date outside the simulated horizon, unknown
        # series...) is what the real service calls an invalid API call.
        return messages.invalid_call(query.function)


async def _delivery(response: web.Response, faults: ActiveFaults) -> web.Response:
    if "truncated_body" in faults and isinstance(response.body, bytes) and len(response.body) > 2:
        cut = int(faults.rng().integers(1, len(response.body) - 1))
        response.body = response.body[:cut]
    if "slow_response" in faults:
        await asyncio.sleep(faults.rules["slow_response"].seconds)
    return response


async def _query(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = request.query
    now = state.clock()
    apikey = params.get("apikey", "")
    plan = state.config.keys.get(apikey)
    if plan is None and apikey and apikey != "demo":
        plan = state.config.any_key
    if plan is None:
        return _json(messages.demo_key() if apikey == "demo" else messages.invalid_apikey())
    raw_function = params.get("function", "")
    function = raw_function.upper()
    handler = FUNCTIONS.get(function)
    if handler is None:
        return _json(messages.unknown_function(raw_function))
    decision = state.quota.admit(apikey, plan, now)
    if not decision.admitted:
        key = state.config.throttle_key
        text = {
            "per_minute": messages.per_minute_throttle(key),
            "burst": messages.free_burst(key),
            "daily": messages.daily_cap(apikey, key),
        }[decision.verdict]
        return _json(text)
    faults = state.faults.draw(function, now)
    if faults.replacement is not None:
        return await _delivery(_replacement(faults.replacement, state.config), faults)
    state.calls[function] = state.calls.get(function, 0) + 1
    query = Query(function, params, plan, now, faults, state.market, state.config)
    reply = await asyncio.get_running_loop().run_in_executor(state.executor, _run, handler, query)
    response = web.Response(body=reply.encode(), content_type="text/csv") if isinstance(reply, str) else _json(reply)
    return await _delivery(response, faults)


def build_app(config: SimulatorConfig, market: SimulatedMarket, clock: Clock) -> web.Application:
    """The simulator as an aiohttp application (``GET /query``).

    Args:
        config: keys, plans, entitlements, throttle key and faults.
        market: the simulated market to serve.
        clock: the simulator's notion of now (aware UTC); quotas and data cut-offs use it.
    """
    app = web.Application()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="av-sim")
    app[STATE] = SimulatorState(config, market, clock, QuotaLedger(config), FaultInjector(config), executor)
    app.router.add_get("/query", _query)

    async def _warm_up(_: web.Application) -> None:
        # Loading the numba Greeks kernel takes ~200 ms; do it before the first options request.
        await asyncio.get_running_loop().run_in_executor(
            executor, lambda: compute_greeks(100.0, [100.0], [0.1], 0.04, 0.0, [0.2], [True])
        )

    async def _shutdown(_: web.Application) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_startup.append(_warm_up)
    app.on_cleanup.append(_shutdown)
    return app


async def serve(host: str, port: int, config: SimulatorConfig, market: SimulatedMarket, clock: Clock) -> web.AppRunner:
    """Start the simulator on ``host:port`` and return its runner (``await runner.cleanup()`` stops it).

    Port 0 picks a free port; read it back from ``runner.addresses``.
    """
    runner = web.AppRunner(build_app(config, market, clock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("AlphaVantage simulator listening on %s", runner.addresses)
    return runner


def _wall_clock() -> datetime:
    return datetime.now(UTC)


async def run_forever(
    host: str, port: int, config: SimulatorConfig, market: SimulatedMarket, clock: Clock | None = None
) -> None:
    """Serve until cancelled (the CLI entry point); the clock defaults to wall time."""
    runner = await serve(host, port, config, market, clock or _wall_clock)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
