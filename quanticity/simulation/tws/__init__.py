"""A local TWS / IB Gateway: the TWS socket protocol over the simulated market.

The real ``ib_insync`` client connects, qualifies contracts, streams L1/L2/tick-by-tick
data and bars, reads the account and trades against it. Modules::

    server          TwsSimulator: listener, sessions, faults, introspection, run_forever
    session         one connection: handshake, pacing, dispatch, sending
    handlers_data   contracts, market data, depth, tick-by-tick, bars
    handlers_trading orders, executions, account, positions, P&L
    handlers_options calculateImpliedVolatility / calculateOptionPrice
    streaming       the feed loops (quotes, resting orders, bars, P&L, account pushes)
    state           shared state and routing of order events
    protocol        framing, field encoding, reading client requests
    messages        server-to-client message builders (order family: order_messages)
    contracts       the contract universe and tick rules (replies: contract_details)
    quotes          L1 quotes and option Greeks from the market (auction, underlying_stats, noise)
    market_feed     L1 subscriptions and market-data types; depth, tick_by_tick
    bars            historical bars; bar_streams: real-time bars and keepUpToDate updates
    fill_model      validation, fill decisions, commissions; orders, account
    faults          fault state and the loopback control server; config; cli
"""

from __future__ import annotations

from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.server import TwsSimulator, run_forever

__all__ = ["TwsSimConfig", "TwsSimulator", "run_forever"]
