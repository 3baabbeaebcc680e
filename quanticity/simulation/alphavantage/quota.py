"""Per-key request quotas of the AlphaVantage simulator.

Premium keys get a sliding window: at most ``per_minute`` admitted requests in any
``quota_window_s`` seconds (the real throttle "clears within seconds", which a sliding
window reproduces and a fixed calendar minute would not). Free keys get the burst rule
(one request per ``free_min_interval_s``) and the daily cap, reset at midnight of
``daily_reset_tz``. Rejected requests do not count. All keys sharing one name share one
budget, whichever connection they arrive on.

Time comes from the simulator clock, so a compressed clock compresses the quota too.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from quanticity.simulation.alphavantage.config import KeyPlan, SimulatorConfig

__all__ = ["QuotaDecision", "QuotaLedger", "QuotaStats"]

Verdict = Literal["ok", "per_minute", "burst", "daily"]


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """Whether a request is admitted and, if not, which limit stopped it."""

    verdict: Verdict

    @property
    def admitted(self) -> bool:
        """True when the request may proceed."""
        return self.verdict == "ok"


@dataclass(slots=True)
class QuotaStats:
    """Counters of one key, for soak reports.

    Attributes:
        admitted: requests let through.
        rejected: requests refused, by limit.
        peak_window: the most requests admitted within one quota window.
    """

    admitted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    peak_window: int = 0


@dataclass(slots=True)
class _KeyState:
    window: deque[float] = field(default_factory=deque)
    day: date | None = None
    day_count: int = 0
    last: float | None = None
    stats: QuotaStats = field(default_factory=QuotaStats)


class QuotaLedger:
    """Admits or throttles requests per API key.

    Args:
        config: simulator configuration (limits, window, reset time zone).
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._tz = ZoneInfo(config.daily_reset_tz)
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def admit(self, apikey: str, plan: KeyPlan, now: datetime) -> QuotaDecision:
        """Count one request of ``apikey`` at ``now`` if its plan allows it.

        Args:
            apikey: the key (its budget is shared by every caller using it).
            plan: the key's plan.
            now: the simulator clock.
        """
        t = now.timestamp()
        with self._lock:
            state = self._keys.setdefault(apikey, _KeyState())
            verdict = self._premium(state, plan, t) if plan.per_minute is not None else self._free(state, now, t)
            if verdict == "ok":
                state.window.append(t)
                self._trim(state, t)
                state.last = t
                state.stats.admitted += 1
                state.stats.peak_window = max(state.stats.peak_window, len(state.window))
            else:
                state.stats.rejected[verdict] = state.stats.rejected.get(verdict, 0) + 1
            return QuotaDecision(verdict)

    def _trim(self, state: _KeyState, t: float) -> None:
        horizon = t - self._config.quota_window_s
        while state.window and state.window[0] <= horizon:
            state.window.popleft()

    def _premium(self, state: _KeyState, plan: KeyPlan, t: float) -> Verdict:
        self._trim(state, t)
        assert plan.per_minute is not None
        return "per_minute" if len(state.window) >= plan.per_minute else "ok"

    def _free(self, state: _KeyState, now: datetime, t: float) -> Verdict:
        today = now.astimezone(self._tz).date()
        if state.day != today:
            state.day, state.day_count = today, 0
        if state.day_count >= self._config.free_daily_limit:
            return "daily"
        if state.last is not None and t - state.last < self._config.free_min_interval_s:
            return "burst"
        state.day_count += 1
        return "ok"

    def stats(self) -> dict[str, QuotaStats]:
        """A copy of the counters of every key seen so far."""
        with self._lock:
            return {
                k: QuotaStats(s.stats.admitted, dict(s.stats.rejected), s.stats.peak_window)
                for k, s in self._keys.items()
            }
