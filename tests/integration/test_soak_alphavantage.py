"""The AlphaVantage soak, short: a few simulated minutes of the whole matrix with faults turned up.

Runs ``bench/soak_alphavantage.py`` in-process (its own embedded Redis and simulator child)
and checks its invariants: no quota breach, no crash, every valid sample written and read
back, the archive verifies; and that the faults really happened, so the pass means something.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.soak_alphavantage import SoakOptions, SoakReport, format_report, invariants, peak_per_window, run

pytestmark = pytest.mark.integration


async def test_short_soak_with_faults_keeps_every_invariant(tmp_path: Path) -> None:
    """Three simulated minutes across the close at speed 8, faults x8: invariants hold and the faults fired.

    Speed 8 keeps the matrix close to what one process sends in real time (~6-7x): far
    above it the scheduler skips queued repeats, and too few post-close polls remain.
    """
    lines: list[str] = []
    options = SoakOptions(
        hours=3 / 60,
        speed=8,
        start=datetime(2026, 11, 23, 20, 59, 0, tzinfo=UTC),  # 15:59 New York: the close comes mid-run
        fault_scale=8.0,
        throttle_flip_s=60.0,
        home=tmp_path,
    )
    report = await run(options, out=lines.append)
    text = format_report(report)

    assert report.failures == [], text
    assert report.peak_requests_per_min <= report.ceiling < report.quota, text
    [key_stats] = report.simulator["quota"].values()
    assert key_stats["rejected"] == {} and key_stats["peak_window"] <= report.ceiling, text
    fired = {kind for kinds in report.simulator["faults"].values() for kind in kinds}
    assert {"throttle", "http_503", "junk_greeks"} <= fired, text
    assert sum(report.throttle_events.values()) > 0, text  # the client saw (and retried) throttles
    assert report.row_flags > 0, text  # junk greeks flagged, not silently kept
    assert {"options", "indicators", "bars"} <= set(report.samples_written), text
    assert report.samples_written == report.samples_expected, text
    assert report.readback_checked > 100 and report.readback_mismatches == [], text
    assert report.archive_files > 0 and report.archive_problems == [], text
    assert report.calls.get("REALTIME_OPTIONS", 0) > 10, text
    assert report.restamped_chains > 0, text  # after the close, polls rewrite the close's samples: read back too


def _report(**changes: object) -> SoakReport:
    base: dict[str, object] = {
        "options": {},
        "wall_s": 1.0,
        "simulated_s": 60.0,
        "planned_calls_per_min": 80.0,
        "calls": {"REALTIME_OPTIONS": 1},
        "outcomes": {},
        "requests": 1,
        "peak_requests_per_min": 1,
        "quota": 600,
        "ceiling": 480,
        "simulator": {"quota": {"k": {"admitted": 1, "rejected": {}, "peak_window": 1}}},
        "throttle_events": {},
        "errors": {},
        "row_rejections": {},
        "row_flags": 0,
        "rows_unaccounted": 0,
        "samples_expected": {"options": 10},
        "samples_written": {"options": 10},
        "samples_unchanged": {},
        "samples_refused": 0,
        "readback_checked": 5,
        "readback_mismatches": [],
        "documents": {},
        "records": {},
        "restamped_chains": 0,
        "freshness_misses": {},
        "missed_runs": {},
        "max_backlog": 0,
        "dispatched": 1,
        "abandoned_at_end": 0,
        "archive_files": 1,
        "archive_rows": 1,
        "archive_problems": [],
        "crashes": [],
    }
    return SoakReport(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "failure"),
    [
        ({}, None),
        ({"peak_requests_per_min": 601}, "quota breach"),
        ({"simulator": {"quota": {"k": {"rejected": {"per_minute": 1}}}}}, "quota breach"),
        ({"crashes": ["boom"]}, "crashes"),
        ({"samples_written": {"options": 9}}, "lost samples"),
        ({"samples_refused": 1}, "lost samples"),
        ({"rows_unaccounted": 2}, "rows neither"),
        ({"readback_mismatches": ["k@1"]}, "not read back"),
        ({"samples_written": {}, "samples_expected": {}}, "proved nothing"),
        ({"archive_problems": ["x: missing"]}, "archive"),
        ({"archive_files": 0}, "archive"),
    ],
)
def test_each_invariant_can_fail(changes: dict[str, object], failure: str | None) -> None:
    """A breach of any invariant makes the soak fail (and a clean report passes)."""
    failures = invariants(_report(**changes))

    if failure is None:
        assert failures == []
    else:
        assert any(failure in text for text in failures), failures


def test_peak_is_taken_over_a_sliding_window() -> None:
    """Requests within 60 s of each other count together, wherever the minute boundaries fall."""
    assert peak_per_window([]) == 0
    assert peak_per_window([59.5, 60.5, 119.0, 120.6]) == 3
    assert peak_per_window([0.0, 60.0, 120.0]) == 2  # both ends of a window included
