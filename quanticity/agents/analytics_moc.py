"""Market-on-close imbalance projections: every 30 s in the last hour, a daily refit and accuracy log.

Inputs per symbol (SPX takes SPY's auction fields, ``moc_predictor.AUCTION_PROXY``): the latest
``AuctionState`` on ``quotes`` (IBKR auction volume, indicative price, imbalance, regulatory
imbalance), last price and session VWAP / volume from :class:`BarBook`, the top-five-level
depth of the liquidity service's book, and ADV (configuration, else the 1-minute history). The
expected cumulative volume at a time is ``ADV x elapsed share of the session``
(:func:`expected_volume`; a U-shaped profile would replace that function).

Between ``moc_window_start_et`` and ``moc_close_et`` on weekdays one row per symbol is appended
every ``moc_every_s``; with a fitted model the close is projected and stored at
``analytics:moc:{symbol}``. The first run after the close labels the day (final published
imbalance, close over each row's last price), scores the model in use on it (out of sample:
``analytics:moc:log``, ``analytics_moc_direction_hit_rate``), adds the day to the training
history (``analytics:moc:history``, the last ``moc_history_days``) and refits
(``analytics:moc:model``). Until a first day has been labelled there is no model and no
projection: rows are still collected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import ET
from quanticity.agents.analytics_micro import LiquidityService, adv_from_history, session_fraction
from quanticity.agents.analytics_sink import Emitter, Provenance, kernel_result
from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.moc_predictor import (
    AUCTION_PROXY,
    AuctionSeries,
    MocModel,
    backtest_moc,
    fit_moc_model,
    moc_features,
    project_close,
)
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import AuctionState, utc_now
from quanticity.settings.model import Settings
from quanticity.storage.analytics_store import log_key, result_key

log = structlog.get_logger(__name__)

MODULE = "moc"
_COLUMNS = (
    "minutes_to_close",
    "auction_imbalance",
    "regulatory_imbalance",
    "auction_volume",
    "auction_price",
    "last_price",
    "vwap",
    "cum_volume",
    "expected_cum_volume",
    "bid_depth",
    "ask_depth",
)


def expected_volume(adv: float, now: datetime) -> float:
    """Usual cumulative session volume at ``now``: ADV times the elapsed share of the session."""
    return max(adv * session_fraction(now), 1.0)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass
class _Day:
    """One symbol's rows of today's last hour, and the input ids behind them."""

    rows: list[dict[str, float]] = field(default_factory=list)
    last_auction: AuctionState | None = None
    adv: float | None = None


class MocService:
    """Closing-imbalance projections, daily labelling, refit and accuracy log.

    Args:
        emitter: where projections go.
        metrics: the analytics metrics.
        config: window, cadence, symbols, ADV.
        settings: run id and mode for the records.
        bars: last price, VWAP and session volume per symbol.
        liquidity: the books for top-of-book depth.
        redis: the model, the training history and the accuracy log.
        key_prefix: the deployment's Redis key prefix.
        clock: now.
    """

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        bars: BarBook,
        liquidity: LiquidityService,
        redis: Callable[[], Redis] | None,
        key_prefix: str = "",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.bars = bars
        self.liquidity = liquidity
        self.redis = redis
        self.prefix = key_prefix
        self.clock = clock
        self.auctions: dict[str, AuctionState] = {}
        self.day: date | None = None
        self.days: dict[str, _Day] = {}
        self.model: MocModel | None = None
        self._model_loaded = False

    def on_auction(self, state: AuctionState) -> None:
        """The latest auction fields of a symbol."""
        current = self.auctions.get(state.symbol)
        if current is None or state.event_time >= current.event_time:
            self.auctions[state.symbol] = state

    def _adv(self, symbol: str) -> float | None:
        if symbol in self.config.average_daily_volume:
            return float(self.config.average_daily_volume[symbol])
        state = self.bars.get(symbol)
        if state is None:
            return None
        starts = [s // 1_000_000 for s in state.start_1m]
        return adv_from_history(list(zip(starts, state.volume_1m, strict=True)))

    def _row(self, symbol: str, now: datetime, minutes_to_close: float) -> tuple[dict[str, float], AuctionState] | None:
        source = AUCTION_PROXY.get(symbol, symbol)
        auction = self.auctions.get(source)
        state = self.bars.get(source)
        adv = self._adv(source)
        if auction is None or state is None or state.last_price is None or state.session_vwap is None or not adv:
            return None
        book = self.liquidity.book(source, now - timedelta(seconds=self.config.liquidity_validity_s))
        bid_depth = sum(size for _, size in book.bids[:5]) if book else 0.0
        ask_depth = sum(size for _, size in book.asks[:5]) if book else 0.0
        row = {
            "minutes_to_close": minutes_to_close,
            "auction_imbalance": _nan(auction.imbalance),
            "regulatory_imbalance": _nan(auction.regulatory_imbalance),
            "auction_volume": _nan(auction.auction_volume),
            "auction_price": _nan(auction.auction_price),
            "last_price": state.last_price,
            "vwap": state.session_vwap,
            "cum_volume": state.session_volume,
            "expected_cum_volume": expected_volume(adv, now),
            "bid_depth": bid_depth,
            "ask_depth": ask_depth,
            "adv": adv,
        }
        return row, auction

    async def tick(self) -> None:
        """The 30 s cadence: rows and projections inside the window; labelling once after the close."""
        now = self.clock()
        et = now.astimezone(ET)
        if not np.is_busday(et.date()):
            return
        close = datetime.combine(et.date(), self.config.moc_close_et, tzinfo=ET)
        start = datetime.combine(et.date(), self.config.moc_window_start_et, tzinfo=ET)
        if self.day != et.date():
            self.day, self.days = et.date(), {}
        if et >= close:
            if any(d.rows for d in self.days.values()):
                await self._label_day(now)
            return
        if et < start:
            return
        await self._load_model()
        minutes_to_close = (close - et).total_seconds() / 60.0
        for symbol in self.config.moc_symbols:
            await self._step(symbol, now, minutes_to_close)

    async def _step(self, symbol: str, now: datetime, minutes_to_close: float) -> None:
        built = self._row(symbol, now, minutes_to_close)
        if built is None:
            log.debug("moc_inputs_missing", symbol=symbol)
            return
        row, auction = built
        day = self.days.setdefault(symbol, _Day())
        if day.rows and day.rows[-1]["minutes_to_close"] <= minutes_to_close:
            return
        day.rows.append(row)
        day.last_auction, day.adv = auction, row["adv"]
        self.metrics.input_lag.labels(module=MODULE, horizon="0dte").set(
            max((now - auction.event_time).total_seconds(), 0.0)
        )
        if self.model is None:
            return
        started = time.perf_counter()
        try:
            series = AuctionSeries.create(**{c: [r[c] for r in day.rows] for c in _COLUMNS})
            projection = project_close(self.model, series, row["adv"], symbol=symbol)
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=MODULE, reason="invalid_input").inc()
            log.warning("moc_projection_failed", symbol=symbol, error=str(exc))
            return
        self.metrics.compute_latency_ms.labels(module=MODULE).observe((time.perf_counter() - started) * 1000.0)
        self.metrics.moc_confidence.labels(symbol=symbol).set(projection.confidence)
        payload = {
            "side": projection.side,
            "imbalance_shares": projection.imbalance_shares,
            "imbalance_sigma_shares": projection.imbalance_sigma_shares,
            "close_move": projection.close_move,
            "close_move_sigma": projection.close_move_sigma,
            "projected_close": projection.projected_close,
            "hit_probability": projection.hit_probability,
            "confidence": projection.confidence,
            "minutes_to_close": projection.minutes_to_close,
            "auction_source": AUCTION_PROXY.get(symbol, symbol),
            "rows": len(day.rows),
            "model_rows": self.model.n_train,
        }
        values = {k: float(v) for k, v in payload.items() if isinstance(v, int | float)}
        write, record = kernel_result(
            module=MODULE,
            key=result_key(MODULE, symbol),
            symbol=symbol,
            payload=payload,
            values=values,
            computed_at=now,
            valid_until=now + timedelta(seconds=2 * self.config.moc_every_s),
            provenance=Provenance(auction.source, auction.event_time, (auction.record_id,), auction.ingest_time),
            settings=self.settings(),
        )
        await self.emitter.emit(MODULE, symbol, [write], record)

    async def _load_model(self) -> None:
        if self._model_loaded or self.redis is None:
            return
        try:
            raw = await self.redis().get(self.prefix + "analytics:moc:model")
        except RedisError as exc:
            self.metrics.failures.labels(module=MODULE, reason="redis").inc()
            log.warning("moc_model_unavailable", error=str(exc))
            return
        self._model_loaded = True
        if raw is None:
            log.info("moc_no_model_yet", detail="rows are collected; the first labelled day fits the model")
            return
        try:
            self.model = MocModel.from_dict(orjson.loads(raw))
        except (AnalyticsInputError, orjson.JSONDecodeError) as exc:
            self.metrics.failures.labels(module=MODULE, reason="invalid_model").inc()
            log.error("moc_model_unreadable", error=str(exc))

    def training_rows(self, close_price: dict[str, float]) -> dict[str, Any]:
        """Today's labelled rows: features, time to close, ADV, final imbalance, close move."""
        features: list[np.ndarray] = []
        tau: list[float] = []
        adv: list[float] = []
        final: list[float] = []
        move: list[float] = []
        for symbol, day in self.days.items():
            price = close_price.get(AUCTION_PROXY.get(symbol, symbol))
            if not day.rows or day.last_auction is None or day.adv is None or price is None:
                continue
            series = AuctionSeries.create(**{c: [r[c] for r in day.rows] for c in _COLUMNS})
            features.append(moc_features(series, day.adv))
            tau.extend(r["minutes_to_close"] for r in day.rows)
            adv.extend([day.adv] * len(day.rows))
            final.extend([day.last_auction.imbalance or 0.0] * len(day.rows))
            move.extend(price / r["last_price"] - 1.0 for r in day.rows)
        stacked = np.vstack(features) if features else np.empty((0, 8))
        return {"features": stacked.tolist(), "tau": tau, "adv": adv, "final": final, "move": move}

    async def _label_day(self, now: datetime) -> None:
        """Score the model on today, add today to the history, refit, log accuracy."""
        close_price = {s: st.last_price for s, st in self.bars.symbols.items() if st.last_price is not None}
        today = self.training_rows(close_price)
        self.days = {}
        if not today["tau"] or self.redis is None:
            return
        client = self.redis()
        history_key, log_name = self.prefix + "analytics:moc:history", self.prefix + log_key(MODULE)
        entry: dict[str, Any] = {"date": self.day.isoformat() if self.day else None, "rows": len(today["tau"])}
        try:
            if self.model is not None:
                score = backtest_moc(
                    self.model, today["features"], today["tau"], today["adv"], today["final"], today["move"]
                )
                entry["backtest"] = score.to_dict()
                if math.isfinite(score.direction_hit_rate):
                    for symbol in self.config.moc_symbols:
                        self.metrics.moc_hit_rate.labels(symbol=symbol).set(score.direction_hit_rate)
            async with client.pipeline(transaction=True) as pipe:
                pipe.lpush(history_key, orjson.dumps(today))
                pipe.ltrim(history_key, 0, self.config.moc_history_days - 1)
                pipe.lrange(history_key, 0, -1)
                *_, days = await pipe.execute()
            pooled = [orjson.loads(d) for d in days]
            model = fit_moc_model(
                np.vstack([np.asarray(d["features"], dtype=np.float64).reshape(-1, 8) for d in pooled]),
                [t for d in pooled for t in d["tau"]],
                [a for d in pooled for a in d["adv"]],
                [f for d in pooled for f in d["final"]],
                [m for d in pooled for m in d["move"]],
            )
            self.model = model
            entry["model_rows"] = model.n_train
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self.prefix + "analytics:moc:model", orjson.dumps(model.to_dict()))
                pipe.lpush(log_name, orjson.dumps({"time": now.isoformat(), **entry}))
                pipe.ltrim(log_name, 0, 499)
                await pipe.execute()
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=MODULE, reason="invalid_input").inc()
            log.warning("moc_refit_failed", error=str(exc), rows=len(today["tau"]))
            return
        except RedisError as exc:
            self.metrics.failures.labels(module=MODULE, reason="redis").inc()
            log.error("moc_day_not_recorded", error=str(exc))
            return
        log.info("moc_day_labelled", **entry)
