"""Hand-made contracts and quotes for the TWS simulator's unit tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.quotes import Quote

STOCK = SimContract(756733, "SPY", "STK", "SMART", "ARCA", "USD", "SPY", "SPY", "SPY", "stock", stock_type="ETF")
OPTION = SimContract(
    1_234_567_890, "SPY", "OPT", "SMART", "", "USD", "SPY   260320C00600000", "SPY", "SPY", "etf",
    multiplier="100", expiry=date(2026, 3, 20), strike=600.0, right="C", under_con_id=756733, under_sec_type="STK",
    occ_id="SPY260320C00600000",
)  # fmt: skip
INDEX = SimContract(416904, "SPX", "IND", "CBOE", "CBOE", "USD", "SPX", "SPX", "SPX", "index")
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def quote(
    bid: float | None = 100.0, ask: float | None = 100.02, last: float | None = 100.01, **changes: object
) -> Quote:
    """A regular-session quote with 300 x 400 sizes."""
    q = Quote(NOW, True, True, bid, 300, ask, 400, last, 100, 0, 1000, 100.0, 99.0, 101.0, 98.0, 99.5, 0.01)
    return replace(q, **changes)  # type: ignore[arg-type]
