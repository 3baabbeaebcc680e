"""Tests of the simulator's per-key quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quanticity.simulation.alphavantage.config import KeyPlan, SimulatorConfig
from quanticity.simulation.alphavantage.quota import QuotaLedger

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _ledger(**options: object) -> QuotaLedger:
    return QuotaLedger(SimulatorConfig(keys={}, **options))


def test_the_n_plus_first_call_in_a_minute_is_throttled() -> None:
    """A 5/min key gets 5 requests through and the 6th refused, even spread over 50 s."""
    ledger, plan = _ledger(), KeyPlan.premium(5)
    verdicts = [ledger.admit("k", plan, T0 + timedelta(seconds=10 * i)).verdict for i in range(6)]
    assert verdicts == ["ok"] * 5 + ["per_minute"]


def test_the_window_slides() -> None:
    """Once the oldest request is a minute old, one more is admitted; refusals do not count."""
    ledger, plan = _ledger(), KeyPlan.premium(2)
    assert ledger.admit("k", plan, T0).admitted and ledger.admit("k", plan, T0 + timedelta(seconds=30)).admitted
    assert not ledger.admit("k", plan, T0 + timedelta(seconds=59)).admitted
    assert ledger.admit("k", plan, T0 + timedelta(seconds=60)).admitted
    assert not ledger.admit("k", plan, T0 + timedelta(seconds=61)).admitted
    stats = ledger.stats()["k"]
    assert (stats.admitted, stats.rejected, stats.peak_window) == (3, {"per_minute": 2}, 2)


def test_budget_is_shared_per_key_not_per_caller() -> None:
    """Two callers with one key share its budget; another key has its own."""
    ledger, plan = _ledger(), KeyPlan.premium(3)
    for i in range(3):
        assert ledger.admit("shared", plan, T0 + timedelta(seconds=i)).admitted
    assert ledger.admit("shared", plan, T0 + timedelta(seconds=4)).verdict == "per_minute"
    assert ledger.admit("other", plan, T0 + timedelta(seconds=4)).admitted


def test_free_tier_burst_and_daily_cap() -> None:
    """Free keys: one request per second, 25 per day, reset at midnight of the reset time zone."""
    ledger, plan = _ledger(), KeyPlan.free()
    assert ledger.admit("f", plan, T0).admitted
    assert ledger.admit("f", plan, T0 + timedelta(milliseconds=400)).verdict == "burst"
    for i in range(1, 25):
        assert ledger.admit("f", plan, T0 + timedelta(seconds=2 * i)).admitted
    assert ledger.admit("f", plan, T0 + timedelta(seconds=100)).verdict == "daily"
    next_day = datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC)
    assert ledger.admit("f", plan, next_day).admitted


def test_daily_reset_time_zone_is_configurable() -> None:
    """With a US/Eastern reset, 00:30 UTC is still the previous day's budget."""
    ledger, plan = _ledger(free_daily_limit=1, daily_reset_tz="America/New_York"), KeyPlan.free()
    assert ledger.admit("f", plan, datetime(2026, 3, 2, 20, 0, tzinfo=UTC)).admitted
    assert ledger.admit("f", plan, datetime(2026, 3, 3, 0, 30, tzinfo=UTC)).verdict == "daily"
    assert ledger.admit("f", plan, datetime(2026, 3, 3, 5, 30, tzinfo=UTC)).admitted
