"""A local AlphaVantage: the real HTTP API, shapes, quirks and error texts over a simulated market.

::

    server          aiohttp app: key -> function -> quota -> faults -> function handler
    config          keys, plans, entitlements, fault rules
    quota           per-key per-minute windows, free-tier burst and daily caps
    faults          seeded fault injection (503, HTML, {}, throttles, empty chains, junk Greeks...)
    query           the parsed request and shared parameter checks
    market_data     TIME_SERIES_INTRADAY, GLOBAL_QUOTE, INDEX_DATA, technical indicators
    options_data    REALTIME_OPTIONS, HISTORICAL_OPTIONS
    reference_data  economic indicators, NEWS_SENTIMENT, MARKET_STATUS
    indicators      indicator math (TA-Lib conventions)
    formats         JSON and CSV shaping
    messages        verbatim error, throttle and premium texts
"""

from __future__ import annotations

from quanticity.simulation.alphavantage.config import ALL_ENTITLEMENTS, FaultRule, KeyPlan, SimulatorConfig
from quanticity.simulation.alphavantage.server import FUNCTIONS, STATE, SimulatorState, build_app, run_forever, serve

__all__ = [
    "ALL_ENTITLEMENTS",
    "FUNCTIONS",
    "STATE",
    "FaultRule",
    "KeyPlan",
    "SimulatorConfig",
    "SimulatorState",
    "build_app",
    "run_forever",
    "serve",
]
