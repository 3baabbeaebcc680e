"""Parquet archive: export a day from Redis, verify against the manifest, detect tampering, upload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from quanticity.observability.metrics import Metrics
from quanticity.schemas import MacroSeries, UnderlyingQuote
from quanticity.settings import Settings
from quanticity.storage.archive import ArchiveError, export_day, load_manifest, upload, verify
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


async def test_a_day_of_option_series_exports_window_by_window_exactly(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Samples across the whole day (window edges included) land once each; other prefixes stay out."""
    settings = make_settings()
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(settings.redis.url or "")
    day_ms = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)
    hour = 3_600_000
    # Every 15 minutes from 00:00 to 23:45, plus the last millisecond of the day and the
    # first of the next (which must stay out).
    stamps = [day_ms + i * hour // 4 for i in range(96)] + [day_ms + 24 * hour - 1, day_ms + 24 * hour]
    strikes = [f"{k}.0" for k in range(590, 610)]
    try:
        for strike in strikes:
            for other in ("", "someone-else:"):
                key = f"{other}{prefix}options:SPY:2026-11-20:{strike}:C:mark"
                await redis.execute_command(
                    "TS.CREATE", key, "LABELS", "family", "options", "symbol", "SPY", "expiry", "2026-11-20",
                    "strike", strike, "right", "C", "field", "mark", "source", "alphavantage",
                )  # fmt: skip
                args: list[object] = []
                for n, t in enumerate(stamps):
                    args += [key, t, float(n)]
                await redis.execute_command("TS.MADD", *args)
        written = await export_day(
            redis, tmp_path / "a", DAY, key_prefix=prefix, families=("options",), window=timedelta(hours=1)
        )
    finally:
        await redis.aclose()
    (name,) = written
    assert name == "symbol=SPY/date=2026-11-20/function=options/part-0.parquet"
    table = pq.read_table(tmp_path / "a" / name)
    assert written[name]["rows"] == table.num_rows == len(strikes) * 97
    assert not any(k.startswith("someone-else:") for k in table["key"].to_pylist())
    per_key = table.group_by("key").aggregate([("value", "sum"), ("value", "count")])
    assert set(per_key["value_count"].to_pylist()) == {97}
    assert set(per_key["value_sum"].to_pylist()) == {float(sum(range(97)))}
    assert pq.ParquetFile(tmp_path / "a" / name).num_row_groups > 1  # written window by window
    assert verify(tmp_path / "a") == []


async def test_an_unwritable_archive_root_is_named(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings()
    redis = Redis.from_url(settings.redis.url or "")
    writer = TimeSeriesWriter(redis, Metrics(), settings.redis.key_prefix)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive root should be")
    try:
        quote = UnderlyingQuote(
            symbol="QQQ", bid=500.0, ask=500.2, record_id="q", event_time=datetime(2026, 11, 20, 15, tzinfo=UTC),
            source="alphavantage", run_id="t", mode="sim",
        )  # fmt: skip
        await UnderlyingQuoteStore(writer).store([quote])
        with pytest.raises(ArchiveError, match="not-a-dir"):
            await export_day(redis, blocker, DAY, key_prefix=settings.redis.key_prefix)
    finally:
        await redis.aclose()
