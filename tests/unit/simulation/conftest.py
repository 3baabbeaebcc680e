"""Shared fixtures: one simulated market per session (it is immutable and thread-safe)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quanticity.simulation import SimulatedMarket

# Monday 2 March 2026, 09:30 ET: a regular session right after a weekend.
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
SEED = 11


@pytest.fixture(scope="session")
def market() -> SimulatedMarket:
    """The market most tests read from."""
    return SimulatedMarket(SEED, START, ["SPY", "QQQ", "IWM", "SPX"])
