"""Constants of the analytics role, with documented defaults.

The settings root has no ``analytics`` section yet. :meth:`AnalyticsConfig.from_settings`
reads every field of this dataclass from ``settings.analytics`` when that section exists and
has an attribute of the same name, so a settings sub-model built from these fields plugs in
without a change here; until then the defaults apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal

Horizon = Literal["0dte", "1dte", "swing"]
HORIZONS: tuple[Horizon, ...] = ("0dte", "1dte", "swing")


@dataclass(frozen=True)
class AnalyticsConfig:
    """How the analytics role schedules, prices and stores.

    Attributes:
        coalesce_window_s: per (symbol, expiry) at most one chain computation starts per window;
            updates that arrive inside it replace the pending one (latest wins).
        validity_0dte_s: how long a Greeks result of a same-day expiry stays valid after its
            input's event time (also the Redis TTL).
        validity_1dte_s: the same for the next trading day's expiry.
        validity_swing_s: the same for every later expiry.
        risk_free_rate: flat continuously compounded rate per year for pricing (the simulator's 4.3%;
            production sets the current short rate).
        dividend_yields: continuous dividend yield per underlying; missing symbols get
            ``default_dividend_yield``.
        default_dividend_yield: dividend yield of symbols not in ``dividend_yields``.
        contract_multiplier: shares per contract, for the dollar exposures of the summary.
        settlement_time_et: wall-clock settlement time (ET) of an expiry date; time to expiry
            runs to it in calendar time (ACT/365).
        spot_max_age_s: an underlying quote or bar is used as spot only when its event time is
            within this many seconds of the chain's.
        parity_pairs: strikes nearest the money used for the put-call-parity forward.
        executor_min_rows: chains with at least this many rows are computed in the role's
            worker thread, so the event loop keeps serving the consumer and timers.
        vpin_bucket_divisor: VPIN volume bucket size is ADV / this (Easley et al.: 50).
        vpin_window_buckets: buckets in the VPIN average (n = 50).
        vpin_every_s: VPIN publication cadence.
        vpin_validity_s: how long a VPIN result stays valid.
        vpin_bar_s: trade aggregation bar length for bulk volume classification.
        vpin_history: VPIN values kept per symbol for the CDF.
        average_daily_volume: ADV per symbol (shares); symbols without one use the traded volume
            seen so far scaled to a session (``vpin_adv_min_session_fraction`` of it at least).
        vpin_adv_min_session_fraction: the shortest share of a session that may stand in for ADV.
        liquidity_every_s: liquidity publication cadence.
        liquidity_validity_s: how long a liquidity result stays valid.
        liquidity_order_size: order size (shares) for the slippage estimate.
        regime_every_s: regime classifier cadence.
        regime_validity_s: how long a regime result stays valid.
        regime_symbol: the underlying whose bars drive the regime classifier.
        regime_history_bars: bars of ``regime_symbol`` kept for the classifier.
        regime_log_length: entries kept in the regime change log.
        regime_refit_every_s: the Markov-switching model is refitted (warm start) this often;
            in between it only filters.
        regime_min_returns: 1-minute returns needed before the first classification.
        regime_max_input_age_s: no regime is published when the newest bar is older (closed market).
        macro_every_s: macro overlay re-evaluation cadence (new series also trigger it).
        macro_validity_s: how long a macro overlay result stays valid.
        swing_grace_s: timer-driven results stay valid this long past their next scheduled run.
        risk_every_s: risk attribution cadence (its windows are 5 m and 60 m returns).
        stress_every_s: cross-asset stress cadence.
        moc_every_s: MOC projection cadence in the last hour.
        moc_window_start_et: when the MOC projections start (ET).
        moc_close_et: the close the projection targets (ET).
        moc_symbols: underlyings with closing-imbalance projections.
        moc_history_days: labelled days kept for refitting the MOC model.
        archive_dir: where the daily Parquet snapshots of the risk attribution go; empty =
            ``<embedded.home>/archive/analytics``.
    """

    coalesce_window_s: float = 0.25
    validity_0dte_s: float = 30.0
    validity_1dte_s: float = 30.0
    validity_swing_s: float = 300.0
    risk_free_rate: float = 0.043
    dividend_yields: Mapping[str, float] = field(default_factory=dict)
    default_dividend_yield: float = 0.0
    contract_multiplier: float = 100.0
    settlement_time_et: time = time(16, 0)
    spot_max_age_s: float = 5.0
    parity_pairs: int = 5
    executor_min_rows: int = 2000
    vpin_bucket_divisor: int = 50
    vpin_window_buckets: int = 50
    vpin_every_s: float = 10.0
    vpin_validity_s: float = 30.0
    vpin_bar_s: int = 60
    vpin_history: int = 2000
    average_daily_volume: Mapping[str, float] = field(default_factory=dict)
    vpin_adv_min_session_fraction: float = 0.1
    liquidity_every_s: float = 5.0
    liquidity_validity_s: float = 15.0
    liquidity_order_size: float = 1000.0
    regime_every_s: float = 60.0
    regime_validity_s: float = 60.0
    regime_symbol: str = "SPY"
    regime_history_bars: int = 2000
    regime_log_length: int = 500
    regime_refit_every_s: float = 900.0
    regime_min_returns: int = 30
    regime_max_input_age_s: float = 300.0
    macro_every_s: float = 3600.0
    macro_validity_s: float = 7200.0
    swing_grace_s: float = 120.0
    risk_every_s: float = 300.0
    stress_every_s: float = 900.0
    moc_every_s: float = 30.0
    moc_window_start_et: time = time(15, 0)
    moc_close_et: time = time(16, 0)
    moc_symbols: tuple[str, ...] = ("SPY", "QQQ", "IWM", "SPX")
    moc_history_days: int = 60
    archive_dir: str = ""

    def validity_s(self, horizon: Horizon) -> float:
        """Validity of a Greeks result of ``horizon``, in seconds."""
        return {"0dte": self.validity_0dte_s, "1dte": self.validity_1dte_s}.get(horizon, self.validity_swing_s)

    def dividend_yield(self, symbol: str) -> float:
        """The continuous dividend yield used for ``symbol``'s options."""
        return float(self.dividend_yields.get(symbol, self.default_dividend_yield))

    @classmethod
    def from_settings(cls, settings: Any) -> AnalyticsConfig:
        """The defaults, overridden by same-named fields of ``settings.analytics`` where it has them."""
        section = getattr(settings, "analytics", None)
        if section is None:
            return cls()
        overrides = {f.name: getattr(section, f.name) for f in dataclasses.fields(cls) if hasattr(section, f.name)}
        return cls(**overrides)
