"""The IBKR soak, short: three simulated hours at speed 300 (~40 s wall) with a fault every 4 s.

Runs ``bench/soak_ibkr.py`` in-process (its simulator child, the session's Redis Stack) once
for the module and checks its invariants: the session side (every fault kind fired, each
connection-breaking fault reconnected both roles, stalls cost heartbeats, gaps measured and
bounded, every subscription back with data flowing) and the order side (orders filled, the
ledger agrees with the simulator's book, no submission hung). The invariant checks themselves
are shown to fail on reports that break them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.soak_ibkr import (
    EXPECTED_SUBSCRIPTIONS,
    FAULTS,
    ROLES,
    SoakOptions,
    SoakReport,
    format_report,
    invariants,
    order_invariants,
    order_problems,
    session_invariants,
)
from tests.conftest import Stack

pytestmark = pytest.mark.integration

SHORT = SoakOptions(
    hours=3.0,
    speed=300.0,
    start=datetime(2026, 11, 16, 19, 30, tzinfo=UTC),  # 14:30 New York: the close and the evening come mid-run
    fault_every_min=20.0,  # every 4 wall seconds: each of the five kinds at least once
    order_every_min=2.0,
)


@pytest.fixture(scope="module")
def short_soak(stack: Stack) -> Iterator[SoakReport]:
    """One short soak for the module's tests, on the session's Redis Stack."""
    from bench.soak_ibkr import run

    lines: list[str] = []
    yield asyncio.run(run(replace(SHORT, redis_url=stack.redis_url), out=lines.append))


def test_short_soak_recovers_from_every_fault(short_soak: SoakReport) -> None:
    """Every fault kind fired; both roles came back each time, with every subscription and fresh data."""
    report, text = short_soak, format_report(short_soak)

    assert report.crashes == [], text
    assert set(report.faults) == set(FAULTS), text
    assert session_invariants(report, SHORT.max_gap_s) == [], text
    breaking = report.faults["drop"] + report.faults["restart"]
    for role in ROLES:
        assert report.reconnects[role] >= breaking, text
        assert report.disconnects[role] >= breaking, text
        assert len(report.resubscribe_s[role]) == report.reconnects[role], text  # each reconnect timed
    assert sum(report.missed_heartbeats.values()) > 0, text  # the stalls were noticed
    assert breaking <= len(report.gaps_s) and max(report.gaps_s) < SHORT.max_gap_s, text
    assert all(report.subscriptions_at_end[k] == v for k, v in EXPECTED_SUBSCRIPTIONS.items()), text
    assert report.data_after_last_fault and report.records.get("underlying_quote", 0) > 100, text
    assert report.simulated_h > 2.5, text


def test_short_soak_orders_match_the_simulator(short_soak: SoakReport) -> None:
    """Orders were placed and filled through the faults; the ledger and the simulator's book agree."""
    report, text = short_soak, format_report(short_soak)

    assert report.actions.get("ledger filled", 0) > 5 and report.actions.get("replayed", 0) > 0, text
    assert report.orders_placed == report.orders_in_simulator > 10, text  # each signal placed once
    assert report.executions > 5, text
    assert all(p["ledger"] == p["simulator"] for p in report.positions.values()), text
    assert order_invariants(report) == [], text


# --------------------------------------------------------------------------- the checks can fail
def _report(**changes: Any) -> SoakReport:
    base: dict[str, Any] = {
        "options": {},
        "wall_s": 40.0,
        "simulated_h": 3.0,
        "faults": {"drop": 1, "stall": 1, "restart": 1, "stall_long": 1, "connectivity_lost": 1},
        "reconnects": {"ingest-ibkr": 3.0, "execution": 3.0},
        "disconnects": {"ingest-ibkr": 3.0, "execution": 3.0},
        "missed_heartbeats": {"ingest-ibkr": 4.0, "execution": 4.0},
        "gaps_s": [1.2, 1.8, 5.3],
        "resubscribe_s": {"ingest-ibkr": [0.01] * 3, "execution": [0.0] * 3},
        "records": {"underlying_quote": 600, "tick": 250},
        "actions": {"fill placed": 12, "replayed": 5, "ledger filled": 14},
        "acks": {"submitted": 20, "filled": 14},
        "connected_at_end": {"ingest-ibkr": True, "execution": True},
        "subscriptions_at_end": {"mkt_data": 4, "tick_by_tick": 2, "realtime_bars": 1, "depth": 3},
        "data_after_last_fault": True,
        "orders_placed": 21,
        "orders_in_simulator": 21,
        "executions": 16,
        "sync_problems": [],
        "positions": {"SPY": {"ledger": "6", "simulator": "6"}},
        "client_fills": "16 executions",
        "hung_actions": [],
        "crashes": [],
    }
    return SoakReport(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "failure"),
    [
        ({}, None),
        ({"crashes": ["boom"]}, "crashes"),
        ({"faults": {}}, "nothing proved"),
        ({"records": {}}, "nothing proved"),
        ({"actions": {"fill placed": 3}}, "nothing proved"),
        ({"reconnects": {"ingest-ibkr": 1.0, "execution": 3.0}}, "reconnects: ingest-ibkr"),
        ({"connected_at_end": {"ingest-ibkr": True, "execution": False}}, "not connected at the end"),
        ({"missed_heartbeats": {"ingest-ibkr": 0.0, "execution": 0.0}}, "heartbeats"),
        ({"gaps_s": []}, "no data gap was measured"),
        ({"gaps_s": [1.0, 31.0]}, "longest data gap"),
        ({"subscriptions_at_end": {"mkt_data": 3, "tick_by_tick": 2, "realtime_bars": 1}}, "resubscription"),
        ({"data_after_last_fault": False}, "no market data arrived"),
        ({"sync_problems": ["q-1: ledger filled 0, simulator filled 3"]}, "order sync"),
        ({"hung_actions": ["fill #3 still waiting"]}, "hung orders"),
    ],
)
def test_each_invariant_can_fail(changes: dict[str, Any], failure: str | None) -> None:
    """A report that breaks an invariant fails the soak with that invariant named; a clean one passes."""
    failures = invariants(_report(**changes), max_gap_s=30.0)

    if failure is None:
        assert failures == []
    else:
        assert any(failure in text for text in failures), failures


def _sim_order(filled: str = "3", status: str = "Filled") -> dict[str, Any]:
    return {"order_ref": "q-1", "filled": filled, "status": status}


@pytest.mark.parametrize(
    ("order", "fills", "in_sim", "executions", "problem"),
    [
        ({"broker_order_id": "7", "filled": "3", "status": "filled"}, {"e1"}, [_sim_order()], {"e1"}, None),
        ({}, set(), [], set(), None),  # refused before placement: nothing on either side
        ({"broker_order_id": "7", "filled": "3", "status": "filled"}, {"e1"}, [_sim_order()] * 2, {"e1"}, "2 times"),
        ({"filled": "0", "status": "pending"}, set(), [_sim_order()], {"e1"}, "not placed per the ledger"),
        ({"broker_order_id": "7", "filled": "0", "status": "submitted"}, set(), [], set(), "unknown to the simulator"),
        ({"broker_order_id": "7", "filled": "0", "status": "rejected", "reason": "lost: …"}, set(), [], set(), None),
        ({"broker_order_id": "7", "filled": "0", "status": "filled"}, {"e1"}, [_sim_order()], {"e1"}, "ledger filled"),
        ({"broker_order_id": "7", "filled": "3", "status": "filled"}, set(), [_sim_order()], {"e1"}, "missing"),
        ({"broker_order_id": "7", "filled": "3", "status": "submitted"}, {"e1"}, [_sim_order()], {"e1"}, "status"),
    ],
)
def test_order_problems_name_each_disagreement(
    order: dict[str, str], fills: set[str], in_sim: list[dict[str, Any]], executions: set[str], problem: str | None
) -> None:
    """Duplicates, orders only one side knows, fill quantities, executions and statuses are each caught."""
    problems = order_problems("q-1", order, fills, in_sim, executions)

    if problem is None:
        assert problems == []
    else:
        assert any(problem in text for text in problems), problems
