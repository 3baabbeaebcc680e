"""Market-wide kernels of the analytics role: the macro overlay and the regime classifier.

- Macro: every ``MacroSeries`` on ``reference`` is kept (latest reply per function and
  maturity); a burst of replies is coalesced and the overlay evaluated once, and again on an
  hourly timer. ``analytics:macro`` (validity ``macro_validity_s``).
- Regime: every ``regime_every_s`` (60 s) the classifier runs on the 1-minute returns of
  ``regime_symbol`` with realised volatility on 5 s / 1 m / 5 m bars, breadth over the symbols
  seen on ``ticks`` (advancers vs decliners against their session open), the macro score and
  the ATM implied vols of the Greeks summaries (0DTE, front, 30-day). The Markov-switching
  model is refitted with a warm start every ``regime_refit_every_s`` and only filters in
  between. ``analytics:regime`` (60 s validity) holds the state; every label change is pushed
  on ``analytics:regime:log``. ``analytics_regime_probability{label}`` carries the confidence
  of the current label (0 for the others) and the filtered state probabilities as
  ``state_calm`` / ``state_volatile``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta

import numpy as np
import structlog
from redis.exceptions import RedisError

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_coalesce import Coalescer
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import ET, ExpirySummary, SummaryBook
from quanticity.agents.analytics_sink import MARKET, Emitter, Provenance, kernel_result
from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.macro_overlay import MacroObservations, MacroOverlay, macro_overlay
from quanticity.analytics.regime_classifier import (
    REGIME_LABELS,
    MarkovSwitchingModel,
    RegimeFeatures,
    RegimeLabel,
    RegimeResult,
    breadth_from_counts,
    classify_regime,
    fit_markov_switching,
    realized_vol,
)
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import MacroSeries, Source, utc_now
from quanticity.settings.model import Settings
from quanticity.storage.analytics_store import AnalyticsStore, result_key

log = structlog.get_logger(__name__)

_DAY_YEARS = 30.0 / 365.0


class MacroService:
    """The macro overlay over the latest reply of every macro series."""

    MODULE = "macro"

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.clock = clock
        self.series: dict[str, tuple[MacroObservations, MacroSeries]] = {}
        self.latest: tuple[MacroOverlay, datetime] | None = None
        self.coalescer: Coalescer[str, str] = Coalescer(
            5.0,
            lambda _key, _value: self.evaluate(),
            on_superseded=lambda _key: metrics.coalesced.labels(module=self.MODULE).inc(),
            on_error=lambda _key, _exc: metrics.failures.labels(module=self.MODULE, reason="internal").inc(),
        )

    def on_macro(self, series: MacroSeries) -> None:
        """Keep the reply and schedule an evaluation (a burst of replies gives one)."""
        try:
            observations = MacroObservations.from_series(series)
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="invalid_input").inc()
            log.warning(
                "macro_series_rejected", function=series.function, error=str(exc), correlation_id=series.record_id
            )
            return
        self.series[observations.key] = (observations, series)
        self.coalescer.submit(self.MODULE, observations.key)

    def score(self, now: datetime) -> float:
        """The composite risk score while the last evaluation is valid, else NaN."""
        if self.latest is None or now >= self.latest[1]:
            return math.nan
        return self.latest[0].risk_score

    async def evaluate(self) -> None:
        """Evaluate the overlay on every series held and emit it."""
        if not self.series:
            return
        now = self.clock()
        started = time.perf_counter()
        records = [record for _, record in self.series.values()]
        try:
            overlay = macro_overlay([obs for obs, _ in self.series.values()], now.astimezone(ET).date())
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="invalid_input").inc()
            log.warning("macro_overlay_failed", error=str(exc))
            return
        self.metrics.compute_latency_ms.labels(module=self.MODULE).observe((time.perf_counter() - started) * 1000.0)
        until = now + timedelta(seconds=self.config.macro_validity_s)
        self.latest = (overlay, until)
        newest = max(records, key=lambda r: r.ingest_time)
        provenance = Provenance(
            newest.source,
            max(r.event_time for r in records),
            tuple(sorted(r.record_id for r in records)),
            newest.ingest_time,
        )
        values = {
            "risk_score": overlay.risk_score,
            "coverage": overlay.coverage,
            "curve_10y_2y": overlay.curve_10y_2y,
            "curve_10y_3m": overlay.curve_10y_3m,
            "real_rate": overlay.real_rate,
            "stale_series": float(len(overlay.stale)),
        }
        write, record = kernel_result(
            module=self.MODULE,
            key=result_key(self.MODULE),
            symbol=MARKET,
            payload=overlay.to_dict(),
            values=values,
            computed_at=now,
            valid_until=until,
            provenance=provenance,
            settings=self.settings(),
        )
        await self.emitter.emit(self.MODULE, MARKET, [write], record)


def term_structure_ivs(parts: Sequence[ExpirySummary]) -> tuple[float, float, float]:
    """``(iv_0dte, front_iv, iv_30d)`` from expiry summaries (nearest first); NaN where unknown.

    The 30-day vol interpolates total variance ``sigma^2 T`` linearly in ``T`` between the
    expiries around 30 days; it is NaN unless 30 days lies between two expiries.
    """
    known = [p for p in parts if p.atm_iv is not None and math.isfinite(p.atm_iv)]
    iv_0dte = next((p.atm_iv for p in known if p.horizon == "0dte"), None)
    front = known[0].atm_iv if known else None
    t = np.array([p.expiry_years for p in known])
    w = np.array([(p.atm_iv or 0.0) ** 2 * p.expiry_years for p in known])
    iv_30d = math.nan
    if t.size >= 2 and t.min() <= _DAY_YEARS <= t.max():
        order = np.argsort(t)
        iv_30d = math.sqrt(float(np.interp(_DAY_YEARS, t[order], w[order])) / _DAY_YEARS)
    return (
        math.nan if iv_0dte is None else iv_0dte,
        math.nan if front is None else front,
        iv_30d,
    )


class RegimeService:
    """The regime classifier on a timer, with its state and change log in Redis."""

    MODULE = "regime"

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        bars: BarBook,
        summaries: SummaryBook,
        macro: MacroService,
        store: Callable[[], AnalyticsStore] | None = None,
        executor: Callable[[], Executor | None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.bars = bars
        self.summaries = summaries
        self.macro = macro
        self.store = store
        self.executor = executor
        self.clock = clock
        self.model: MarkovSwitchingModel | None = None
        self.fitted_at: datetime | None = None
        self.label: RegimeLabel | None = None
        self._label_loaded = False

    def breadth(self) -> float:
        """Advancers vs decliners against their session open, over today's symbols (NaN below two)."""
        today = self.clock().astimezone(ET).date()
        up = down = 0
        for state in self.bars.symbols.values():
            if state.session != today or state.session_open is None or state.last_price is None:
                continue
            up += state.last_price > state.session_open
            down += state.last_price < state.session_open
        return breadth_from_counts(up, down) if up + down >= 2 else math.nan

    def features(self, symbol: str, now: datetime) -> RegimeFeatures:
        """Realised vols, breadth, macro score and implied vols for the rule."""

        def rv(returns: np.ndarray, seconds: float, minimum: int) -> float:
            return realized_vol(returns, seconds) if returns.size >= minimum else math.nan

        _, five = self.bars.rolled_closes(symbol, 5)
        five_min = np.diff(np.log(five[-13:])) if five.size >= 2 else np.empty(0)
        iv_0dte, front, iv_30d = term_structure_ivs(self.summaries.fresh(symbol, now))
        return RegimeFeatures(
            rv_5s=rv(self.bars.five_second_returns(symbol), 5.0, 12),
            rv_1m=rv(self.bars.minute_returns(symbol, 60), 60.0, 10),
            rv_5m=rv(five_min, 300.0, 6),
            breadth=self.breadth(),
            macro_score=self.macro.score(now),
            front_iv=front,
            iv_0dte=iv_0dte,
            iv_30d=iv_30d,
        )

    async def _previous_label(self) -> None:
        if self._label_loaded or self.store is None:
            return
        try:
            entries = await self.store().change_log(self.MODULE, 1)
        except RedisError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="redis").inc()
            log.warning("regime_log_unavailable", error=str(exc))
            return
        self._label_loaded = True
        if entries and entries[0].get("label") in REGIME_LABELS:
            self.label = entries[0]["label"]

    def _classify(self, returns: np.ndarray, features: RegimeFeatures, refit: bool) -> RegimeResult:
        model = self.model
        if refit:
            model = fit_markov_switching(returns, 2, start=self.model)
        return classify_regime(returns, features, model=model, previous_label=self.label)

    async def tick(self) -> None:
        """One classification: read inputs, classify (in the worker), store, log changes, publish."""
        now = self.clock()
        symbol = self.config.regime_symbol
        await self.bars.bootstrap([symbol], now)
        self.bars.close_until(now)
        state = self.bars.get(symbol)
        returns = self.bars.minute_returns(symbol, self.config.regime_history_bars)
        if state is None or state.last_event is None or returns.size < self.config.regime_min_returns:
            log.debug("regime_waiting_for_bars", symbol=symbol, returns=int(returns.size))
            return
        lag = (now - state.last_event).total_seconds()
        self.metrics.input_lag.labels(module=self.MODULE, horizon="intraday").set(max(lag, 0.0))
        if lag > self.config.regime_max_input_age_s:
            log.debug("regime_inputs_quiet", symbol=symbol, lag_s=round(lag))
            return
        await self._previous_label()
        features = self.features(symbol, now)
        refit = (
            self.model is None
            or self.fitted_at is None
            or (now - self.fitted_at).total_seconds() >= self.config.regime_refit_every_s
        )
        started = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor(), self._classify, returns, features, refit
            )
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="invalid_input").inc()
            log.warning("regime_failed", error=str(exc))
            return
        self.metrics.compute_latency_ms.labels(module=self.MODULE).observe((time.perf_counter() - started) * 1000.0)
        if refit:
            self.model, self.fitted_at = result.model, now
        await self._emit(result, state.source, state.last_event, tuple(state.recent_ids), now)

    async def _emit(
        self, result: RegimeResult, source: Source, event_time: datetime, ids: tuple[str, ...], now: datetime
    ) -> None:
        previous, self.label = self.label, result.label
        for label in REGIME_LABELS:
            self.metrics.regime.labels(label=label).set(result.confidence if label == result.label else 0.0)
        self.metrics.regime.labels(label="state_calm").set(result.probabilities[0])
        self.metrics.regime.labels(label="state_volatile").set(result.probabilities[-1])
        values = {
            "label_index": float(REGIME_LABELS.index(result.label)),
            "confidence": result.confidence,
            "stress_score": result.stress_score,
            "p_calm": result.probabilities[0],
            "p_volatile": result.probabilities[-1],
        }
        write, record = kernel_result(
            module=self.MODULE,
            key=result_key(self.MODULE),
            symbol=MARKET,
            payload={**result.to_dict(), "regime_symbol": self.config.regime_symbol},
            values=values,
            computed_at=now,
            valid_until=now + timedelta(seconds=self.config.regime_validity_s),
            provenance=Provenance(source, event_time, ids),
            settings=self.settings(),
        )
        await self.emitter.emit(self.MODULE, MARKET, [write], record)
        if previous != result.label and self.store is not None:
            entry = {
                "time": now.isoformat(),
                "label": result.label,
                "previous": previous,
                "confidence": result.confidence,
                "stress_score": result.stress_score,
                "record_id": record.record_id,
            }
            try:
                await self.store().append_log(self.MODULE, entry, self.config.regime_log_length)
            except RedisError as exc:
                self.metrics.failures.labels(module=self.MODULE, reason="redis").inc()
                log.error("regime_change_not_logged", error=str(exc), label=result.label, previous=previous)
            log.info("regime_changed", label=result.label, previous=previous, confidence=round(result.confidence, 3))
