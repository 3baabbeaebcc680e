"""Parquet archive: export a day from Redis, verify against the manifest, detect tampering, upload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from quanticity.observability.metrics import Metrics
from quanticity.schemas import MacroSeries, UnderlyingQuote
from quanticity.settings import Settings
from quanticity.storage.archive import export_day, load_manifest, upload, verify
from quanticity.storage.quote_store import UnderlyingQuoteStore
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from quanticity.storage.reference_store import ReferenceStore, macro_samples

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)


async def test_export_verify_tamper_and_upload(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """A day exports to partitioned Parquet whose manifest verifies; a changed byte is caught; upload copies."""
    settings = make_settings()
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    writer = TimeSeriesWriter(redis, Metrics(), prefix)
    try:
        quotes = [
            UnderlyingQuote(
                symbol="SPY",
                bid=600.0 + i,
                ask=600.2 + i,
                last=600.1 + i,
                record_id=f"q{i}",
                event_time=datetime(2026, 11, 20, 15, i, tzinfo=UTC),
                source="alphavantage",
                run_id="t",
                mode="sim",
            )
            for i in range(3)
        ]
        await UnderlyingQuoteStore(writer).store(quotes)
        macro = MacroSeries(
            function="CPI",
            name="Consumer Price Index for all Urban Consumers",
            interval="monthly",
            unit="index 1982-1984=100",
            dates=[DAY],
            values=[315.2],
            record_id="m",
            event_time=quotes[0].event_time,
            source="alphavantage",
            run_id="t",
            mode="sim",
        )
        await ReferenceStore(writer).store_series(*macro_samples(macro), "macro")
        root = tmp_path / "archive"
        written = await export_day(redis, root, DAY, key_prefix=prefix)
    finally:
        await redis.aclose()
    quote_file = "symbol=SPY/date=2026-11-20/function=quote/part-0.parquet"
    assert written[quote_file]["rows"] == 3 * 4  # bid, ask, last, mid per quote (no sizes given)
    assert "symbol=_macro/date=2026-11-20/function=CPI/part-0.parquet" in written
    table = pq.read_table(root / quote_file)
    mids = sorted(
        v
        for k, v in zip(table["key"].to_pylist(), table["value"].to_pylist(), strict=True)
        if k == "underlyings:SPY:mid"
    )
    assert mids == pytest.approx([600.1, 601.1, 602.1])
    assert verify(root) == []

    copy = tmp_path / "uploaded"
    assert set(upload(root, f"file://{copy}")) == {*written, "manifest.json"}
    assert verify(copy) == []
    assert load_manifest(copy) == load_manifest(root)

    data = (root / quote_file).read_bytes()
    (root / quote_file).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (root / "symbol=SPY/stray.parquet").write_bytes(data)
    problems = {p.path: p.reason for p in verify(root)}
    assert "differs from the manifest" in problems[quote_file]
    assert problems["symbol=SPY/stray.parquet"] == "not in the manifest"
