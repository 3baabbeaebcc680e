"""Outcome of a pytest session as Prometheus exposition text (the "Test Telemetry" dashboard).

A pytest plugin feeds every test report into :class:`TestTelemetry` and, at session end,
writes the result with :meth:`TestTelemetry.write` into the metrics directory that the app's
``/metrics`` endpoint re-serves, like node_exporter's textfile collector. Each session
writes a fresh file from a fresh registry, so the counters hold the numbers of the *last*
run; Prometheus keeps the history across runs.

The metrics live on their own :class:`~prometheus_client.CollectorRegistry` so that
recording a test session never touches the app's registry (and tests can build as many
instances as they like).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from quanticity.observability.metrics import sample_names

OUTCOMES: Final[tuple[str, ...]] = ("passed", "failed", "skipped", "error")
"""Outcomes a test case can have; ``error`` is a failure in setup or teardown."""

OTHER_SUITE: Final = "other"
"""Suite label of test ids that are not inside a sub-directory of ``tests/``."""

# Unit tests take milliseconds, integration and smoke tests seconds; the top bucket is the
# 300 s per-test timeout of pyproject.toml.
_DURATION_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


def suite_of(nodeid: str) -> str:
    """Return the suite of a pytest node id: the first directory below ``tests/``.

    Args:
        nodeid: A pytest node id such as ``tests/unit/observability/test_x.py::test_y``.

    Returns:
        ``unit`` for the example above; :data:`OTHER_SUITE` when the test file is not inside
        a sub-directory of a ``tests`` directory.
    """
    # Node ids always use "/" and put the file path before the first "::".
    parts = nodeid.split("::", 1)[0].split("/")
    if "tests" in parts:
        below = parts[parts.index("tests") + 1 :]
        # The last component is the test file itself, not a suite directory.
        if len(below) >= 2:
            return below[0]
    return OTHER_SUITE


class TestTelemetry:
    """Counts test outcomes and durations of one pytest session.

    Example:
        >>> telemetry = TestTelemetry()
        >>> telemetry.record("tests/unit/test_a.py::test_ok", "passed", 0.02)
        >>> telemetry.finish(session_duration_s=1.5, now=1_700_000_000.0)
        >>> telemetry.write(Path(".quanticity/metrics/test_telemetry.prom"))  # doctest: +SKIP
    """

    # The class name starts with "Test"; tell pytest it is not a test class.
    __test__ = False

    def __init__(self) -> None:
        """Create the metrics on a private registry."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.cases = Counter(
            "test_cases",
            "Test cases of the last pytest session, per suite and outcome",
            ["suite", "outcome"],
            registry=r,
        )
        self.live_alpha_success = Counter(
            "test_live_alpha_success",
            "Passed tests of the live AlphaVantage suite (pytest -m live_alpha) in the last session",
            registry=r,
        )
        self.case_duration = Histogram(
            "test_case_duration_seconds",
            "Duration of the test cases of the last pytest session",
            ["suite"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.session_duration = Gauge(
            "test_session_duration_seconds",
            "Wall-clock duration of the last pytest session",
            registry=r,
        )
        self.last_run = Gauge(
            "test_session_last_run_timestamp_seconds",
            "Unix time at which the last pytest session ended",
            registry=r,
        )
        self._suites: set[str] = set()

    def record(self, nodeid: str, outcome: str, duration_s: float) -> None:
        """Count one test case.

        Args:
            nodeid: The pytest node id; its suite is derived with :func:`suite_of`.
            outcome: One of :data:`OUTCOMES`.
            duration_s: Time the test case took, in seconds.

        Raises:
            ValueError: If ``outcome`` is unknown or ``duration_s`` is negative; both mean the
                plugin feeding this class is wrong, and silently dropping the case would
                make the dashboard lie.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown test outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        if duration_s < 0:
            raise ValueError(f"negative test duration {duration_s!r} for {nodeid}")
        suite = suite_of(nodeid)
        if suite not in self._suites:
            # Create every outcome of a new suite at 0 so "failed" reads 0, not "no data".
            self._suites.add(suite)
            for known in OUTCOMES:
                self.cases.labels(suite=suite, outcome=known)
        self.cases.labels(suite=suite, outcome=outcome).inc()
        self.case_duration.labels(suite=suite).observe(duration_s)

    def finish(self, session_duration_s: float, now: float) -> None:
        """Record the end of the session.

        Args:
            session_duration_s: Wall-clock duration of the whole session, in seconds.
            now: Unix time at which the session ended (injected so tests are deterministic).
        """
        self.session_duration.set(session_duration_s)
        self.last_run.set(now)

    def write(self, path: Path) -> None:
        """Write the metrics as Prometheus exposition text.

        ``write_to_textfile`` writes a temporary file next to ``path`` and renames it, so a
        concurrent scrape never sees a half-written file.

        Args:
            path: Target file; missing parent directories are created.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def exported_names(self) -> set[str]:
        """Return every sample name the written file can contain (``_total``, ``_bucket``…)."""
        return sample_names(self.registry)
