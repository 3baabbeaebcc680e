"""Latest stored quote per symbol: the store role's changelog-backed table.

The store uses it to keep metadata monotonic under at-least-once delivery: a record
already stored (same id) or older than the stored one does not overwrite the metadata
hash, and the freshness flag says whether the newest data is recent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import faust

from quanticity.schemas import UnderlyingQuote

TABLE_NAME = "latest-quotes-v1"

Decision = Literal["store", "duplicate", "out_of_order"]


def latest_quotes_table(app: faust.App, partitions: int) -> Any:
    """Declare the table on ``app`` (symbol → {record_id, event_time})."""
    return app.Table(
        TABLE_NAME,
        default=None,
        partitions=partitions,
        key_type=str,
        value_type=dict,
        help="latest stored underlying quote per symbol",
    )


def classify(previous: dict[str, str] | None, quote: UnderlyingQuote) -> Decision:
    """Whether ``quote`` is new, a redelivery of the stored one, or older than it."""
    if previous is None:
        return "store"
    if previous.get("record_id") == quote.record_id:
        return "duplicate"
    if datetime.fromisoformat(previous["event_time"]) > quote.event_time:
        return "out_of_order"
    return "store"


def table_value(quote: UnderlyingQuote) -> dict[str, str]:
    """What the table keeps for a stored quote."""
    return {"record_id": quote.record_id, "event_time": quote.event_time.isoformat()}


def freshness(quote: UnderlyingQuote, now: datetime, max_age: timedelta) -> Literal["fresh", "stale"]:
    """``stale`` when the quote's event time is older than ``max_age``."""
    return "stale" if now - quote.event_time > max_age else "fresh"
