"""Option quote batches: the record's row checks, and the store's samples equal to per-quote ones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from quanticity.schemas import OptionQuote, OptionQuoteBatch
from quanticity.storage.ibkr_marketstore import option_batch_samples, option_samples

WHEN = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
ENVELOPE = {"record_id": "b-1", "event_time": WHEN, "source": "ibkr", "run_id": "run-t", "mode": "sim"}
ROWS: list[dict[str, Any]] = [
    {"expiry": date(2026, 11, 24), "strike": 600.0, "right": "C", "contract_id": 1, "bid": 1.2, "ask": 1.3,
     "last": None, "bid_size": 10.0, "ask_size": 12.0, "volume": 100.0, "open_interest": None,
     "implied_vol": 0.15, "delta": 0.5, "gamma": 0.08, "vega": 0.1, "theta": -2.0, "underlying_price": 600.1},
    {"expiry": date(2026, 11, 25), "strike": 595.5, "right": "P", "contract_id": 2, "bid": None, "ask": 0.8,
     "last": 0.79, "bid_size": None, "ask_size": 3.0, "volume": None, "open_interest": 50.0,
     "implied_vol": None, "delta": None, "gamma": None, "vega": None, "theta": None, "underlying_price": None},
]  # fmt: skip


def batch(rows: list[dict[str, Any]] = ROWS) -> OptionQuoteBatch:
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return OptionQuoteBatch(symbol="SPY", **columns, **ENVELOPE)


def test_each_row_stores_exactly_what_the_same_quote_would() -> None:
    specs, samples = option_batch_samples(batch())

    expected_specs, expected_samples = [], []
    for row in ROWS:
        s, v = option_samples(OptionQuote(symbol="SPY", **row, **ENVELOPE))
        expected_specs += s
        expected_samples += v
    assert samples == expected_samples and specs == expected_specs
    assert len(samples) == 9 + 2  # first row: all but last, with the mid; second: ask and last only


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bid": 1.4}, "row 0: crossed quote"),
        ({"volume": -1.0}, "row 0: volume -1.0 is negative"),
        ({"strike": 0.0}, "row 0: strike must be > 0"),
    ],
)
def test_a_bad_row_is_refused_with_its_row_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        batch([{**ROWS[0], **change}, ROWS[1]])


def test_columns_must_have_one_value_per_row() -> None:
    columns = {name: [row[name] for row in ROWS] for name in ROWS[0]}
    columns["delta"] = [0.5]
    with pytest.raises(ValidationError, match="column delta has 1 rows, strike has 2"):
        OptionQuoteBatch(symbol="SPY", **columns, **ENVELOPE)
    with pytest.raises(ValidationError, match="at least one row"):
        OptionQuoteBatch(symbol="SPY", **{name: [] for name in ROWS[0]}, **ENVELOPE)
