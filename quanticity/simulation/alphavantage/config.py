"""Configuration of the AlphaVantage simulator: API keys, plans, entitlements, faults.

A key's plan is either the free tier (25 requests a day, about one request per
second) or a premium per-minute tier (75 ... 1200 requests per minute). Entitlements
are add-ons, as on the real service (alphavantage.md §9):

* ``premium``: any paid plan; unlocks premium-only functions (HISTORICAL_OPTIONS,
  TIME_SERIES_INTRADAY, MACD, VWAP).
* ``realtime_options``: REALTIME_OPTIONS with real data (600/1200 plans); without it
  the key gets AlphaVantage's artificial ``XXYYZZ`` sample.
* ``realtime`` / ``delayed``: the US market data entitlements requested with
  ``entitlement=realtime|delayed``.
* ``index_data``: INDEX_DATA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "ALL_ENTITLEMENTS",
    "Entitlement",
    "FaultKind",
    "FaultRule",
    "KeyPlan",
    "SimulatorConfig",
]

Entitlement = Literal["premium", "realtime_options", "realtime", "delayed", "index_data"]
ALL_ENTITLEMENTS: frozenset[Entitlement] = frozenset(
    ("premium", "realtime_options", "realtime", "delayed", "index_data")
)

FaultKind = Literal[
    "http_503",  # HTTP 503 with a short HTML body
    "html_body",  # HTTP 200 with an HTML error page instead of JSON
    "empty_object",  # HTTP 200 with ``{}``
    "throttle",  # the per-minute throttle message, whatever the real quota says
    "premium_only",  # the premium-endpoint Information message
    "empty_chain",  # options: ``"data": []``
    "junk_greeks",  # options: implausible IV and Greeks on deep-ITM / same-day rows
    "empty_global_quote",  # GLOBAL_QUOTE: ``{"Global Quote": {}}``
    "macro_dots",  # macro: observations replaced by FRED's ``"."``
    "slow_response",  # the reply is held back ``seconds`` (wall time)
    "truncated_body",  # the body is cut short (invalid JSON / CSV)
]


@dataclass(frozen=True, slots=True)
class FaultRule:
    """When and how one fault fires for a function.

    A rule fires on a request when any of its triggers does: with ``probability``, on
    every ``every_n``-th call of the function, or while the simulator clock is inside
    one of ``windows``.

    Attributes:
        kind: the fault.
        probability: chance per request, 0..1.
        every_n: fire on call n, 2n, 3n... of the function (counted per function).
        windows: ``(start, end)`` clock intervals during which it always fires.
        seconds: delay for ``slow_response``.
        fraction: share of eligible rows affected (``junk_greeks``, ``macro_dots``).
    """

    kind: FaultKind
    probability: float = 0.0
    every_n: int | None = None
    windows: tuple[tuple[datetime, datetime], ...] = ()
    seconds: float = 0.0
    fraction: float = 0.2


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """The plan of one API key.

    Attributes:
        per_minute: requests per minute for a premium plan; None for the free tier.
        entitlements: add-ons the key holds.
    """

    per_minute: int | None
    entitlements: frozenset[Entitlement] = frozenset()

    @classmethod
    def free(cls) -> KeyPlan:
        """The free tier: 25 requests per day, one per second, no premium functions."""
        return cls(None, frozenset())

    @classmethod
    def premium(cls, per_minute: int = 600, entitlements: frozenset[Entitlement] = ALL_ENTITLEMENTS) -> KeyPlan:
        """A premium plan (``premium`` is always among its entitlements)."""
        return cls(per_minute, entitlements | {"premium"})

    def has(self, entitlement: Entitlement) -> bool:
        """Whether the key holds ``entitlement``."""
        return entitlement in self.entitlements


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the AlphaVantage simulator needs besides the market and the clock.

    Attributes:
        keys: API key -> plan. Other keys are rejected as invalid (``demo`` gets the demo message)
            unless ``any_key`` is set.
        any_key: plan for every other non-empty key (a permissive local server; each key still
            has its own quota).
        throttle_key: top-level key of throttle replies: ``Information`` (since 2024) or ``Note`` (2018-2023).
        faults: function name (or ``"*"`` for all) -> fault rules.
        seed: seed of the fault and junk-greek draws.
        free_daily_limit: requests per day of the free tier.
        free_min_interval_s: minimum spacing of free-tier requests (the burst limit).
        quota_window_s: length of the sliding per-minute window of premium plans.
        daily_reset_tz: time zone whose midnight resets the free daily count.
        daily_history_days: calendar days of daily/weekly/monthly history served.
    """

    keys: Mapping[str, KeyPlan]
    any_key: KeyPlan | None = None
    throttle_key: Literal["Information", "Note"] = "Information"
    faults: Mapping[str, tuple[FaultRule, ...]] = field(default_factory=dict)
    seed: int = 0
    free_daily_limit: int = 25
    free_min_interval_s: float = 1.0
    quota_window_s: float = 60.0
    daily_reset_tz: str = "UTC"
    daily_history_days: int = 400

    @classmethod
    def any_key_premium(cls, per_minute: int = 600, **options: object) -> SimulatorConfig:
        """Every non-empty key (but ``demo``) is a premium key with every entitlement."""
        return cls(keys={}, any_key=KeyPlan.premium(per_minute), **options)  # type: ignore[arg-type]

    @classmethod
    def single_key(cls, apikey: str, per_minute: int = 600, **options: object) -> SimulatorConfig:
        """One premium key with every entitlement (the usual local setup)."""
        return cls(keys={apikey: KeyPlan.premium(per_minute)}, **options)  # type: ignore[arg-type]
