"""Portfolio kernels of the analytics role: risk attribution (5 m timer) and cross-asset stress (15 m).

The book is what the IBKR account mirror keeps in Redis (``positions:{account}``: conId →
JSON with symbol, sec_type, expiry, strike, right, position), read fresh on every run. Option
positions are valued with the implied vol of our own Greeks document for their contract
(``analytics:greeks:{symbol}:{expiry}``), else the ATM vol of the fresh summary; a position
without a spot or a vol is left out and listed in the result.

- Risk attribution: PCA factors, exposures, betas to SPY and VaR on returns of 5-minute and
  60-minute bars (rolled from the 1-minute bars of :class:`BarBook`, stored history included)
  for every symbol with bars. Weights are the book's dollar delta per underlying; without a
  book, equal weights (the watchlist as a portfolio) and ``weights_source: equal``.
  ``analytics:risk``; once a day, at the first run after the close, the long table goes to a
  Parquet snapshot ``symbol=_risk/date=…/function=risk_attribution/part-0.parquet`` with a
  manifest entry (rows, sha256), the conventions of ``quanticity.storage.archive``.
- Stress: every scenario of ``cross_asset_stress.DEFAULT_SCENARIOS`` on the book, full
  revaluation and Greeks. ``analytics:stress``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_chains import SpotBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import ET, SummaryBook, expiry_years
from quanticity.agents.analytics_sink import MARKET, Emitter, Provenance, kernel_result
from quanticity.analytics.cross_asset_stress import MarketState, StressPosition, StressReport, stress_test
from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.risk_attribution import RiskAttribution, risk_attribution
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import utc_now
from quanticity.settings.model import Settings
from quanticity.storage.analytics_store import AnalyticsStore, result_key
from quanticity.storage.archive import MANIFEST, load_manifest, sha256_of

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Position:
    """One line of the book.

    Attributes:
        symbol: the underlying.
        quantity: signed contracts or shares.
        expiry: option expiry (None for shares).
        strike: option strike.
        right: ``C`` or ``P``.
        multiplier: shares per contract.
        source_id: the broker's contract id.
    """

    symbol: str
    quantity: float
    expiry: date | None = None
    strike: float | None = None
    right: str | None = None
    multiplier: float = 100.0
    source_id: str = ""

    @property
    def is_option(self) -> bool:
        return self.expiry is not None and self.strike is not None and self.right in ("C", "P")


class PositionSource(Protocol):
    """Where the book comes from."""

    async def positions(self) -> list[Position]: ...


def parse_position(con_id: str, raw: dict[str, Any]) -> Position | None:
    """A ``positions:{account}`` entry → :class:`Position` (None for flat or unsupported lines)."""
    quantity = float(raw.get("position") or 0.0)
    symbol = str(raw.get("symbol") or "")
    if not quantity or not symbol:
        return None
    sec_type = raw.get("sec_type")
    if sec_type in ("STK", "IND"):
        return Position(symbol, quantity, source_id=con_id)
    if sec_type in ("OPT", "FOP") and raw.get("expiry") and raw.get("strike") and raw.get("right"):
        text = str(raw["expiry"])
        expiry = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return Position(symbol, quantity, expiry, float(raw["strike"]), str(raw["right"])[0], source_id=con_id)
    return None


class RedisPositions:
    """The book from the IBKR account mirror's ``positions:*`` hashes."""

    def __init__(self, redis: Callable[[], Redis], key_prefix: str = "") -> None:
        self.redis = redis
        self.prefix = key_prefix

    async def positions(self) -> list[Position]:
        """Every open position of every mirrored account.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        client = self.redis()
        out: list[Position] = []
        async for key in client.scan_iter(match=f"{self.prefix}positions:*", count=100):
            for con_id, value in (await client.hgetall(key)).items():
                position = parse_position(
                    con_id.decode() if isinstance(con_id, bytes) else str(con_id), orjson.loads(value)
                )
                if position is not None:
                    out.append(position)
        return out


class BookPricer:
    """Spots and implied vols for the positions of one run (Greeks documents read once per expiry)."""

    def __init__(
        self, spots: SpotBook, bars: BarBook, summaries: SummaryBook, store: AnalyticsStore | None, now: datetime
    ) -> None:
        self.spots = spots
        self.bars = bars
        self.summaries = summaries
        self.store = store
        self.now = now
        self._docs: dict[tuple[str, date], dict[str, Any] | None] = {}

    def spot(self, symbol: str) -> float | None:
        """Latest spot: quote/bar/trade, else the Greeks summary, else the last bar close."""
        spot = self.spots.get(symbol)
        if spot is not None:
            return spot.price
        parts = self.summaries.fresh(symbol, self.now)
        if parts:
            return parts[-1].spot
        state = self.bars.get(symbol)
        return state.last_price if state is not None else None

    async def _document(self, symbol: str, expiry: date) -> dict[str, Any] | None:
        key = (symbol, expiry)
        if key not in self._docs:
            found = await self.store.greeks(symbol, expiry.isoformat()) if self.store is not None else None
            self._docs[key] = found.document if found is not None else None
        return self._docs[key]

    async def contract(self, position: Position) -> tuple[float, float] | None:
        """``(iv, delta)`` of an option position from its Greeks document, else the ATM vol (delta NaN)."""
        assert position.expiry is not None  # options only
        doc = await self._document(position.symbol, position.expiry)
        if doc is not None:
            cols = doc["columns"]  # float64 arrays, NaN where a contract has no value (null in a JSON one)
            for i, (k, r) in enumerate(zip(cols["strike"], cols["right"], strict=True)):
                iv = _number(cols["iv"][i])
                if r == position.right and math.isclose(k, position.strike or 0.0) and not math.isnan(iv):
                    return iv, _number(cols["delta"][i])
        parts = self.summaries.fresh(position.symbol, self.now)
        atm = next((p.atm_iv for p in parts if p.expiry == position.expiry and p.atm_iv), None)
        atm = atm or next((p.atm_iv for p in parts if p.atm_iv), None)
        return (atm, math.nan) if atm else None


def _number(value: float | None) -> float:
    """A document cell as a float: NaN for no value."""
    return math.nan if value is None else float(value)


def equal_or_book_weights(symbols: Sequence[str], exposures: dict[str, float]) -> tuple[np.ndarray, str]:
    """Dollar delta per symbol from the book, else 1.0 each (``equal``)."""
    if any(exposures.get(s) for s in symbols):
        return np.array([exposures.get(s, 0.0) for s in symbols]), "book"
    return np.ones(len(symbols)), "equal"


def write_snapshot(root: Path, day: date, rows: list[dict[str, Any]], computed_at: datetime) -> str:
    """The day's risk table as Parquet under ``root`` with its manifest entry; returns the relative path."""
    relative = f"symbol=_risk/date={day.isoformat()}/function=risk_attribution/part-0.parquet"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "computed_at": pa.array([computed_at] * len(rows), type=pa.timestamp("ms", tz="UTC")),
            **{
                name: pa.array([str(r[name]) for r in rows], type=pa.string())
                for name in ("window", "kind", "symbol", "factor", "metric")
            },
            "value": pa.array([float(r["value"]) for r in rows], type=pa.float64()),
        }
    )
    staging = target.with_suffix(".parquet.tmp")
    pq.write_table(table, staging, compression="zstd")
    staging.replace(target)  # a reader never sees half a file
    manifest = load_manifest(root)
    manifest[relative] = {"rows": table.num_rows, "sha256": sha256_of(target), "created": datetime.now(UTC).isoformat()}
    temp = root / (MANIFEST + ".tmp")
    temp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temp.replace(root / MANIFEST)
    return relative


class PortfolioService:
    """Risk attribution and stress on the book, on their timers."""

    RISK = "risk"
    STRESS = "stress"

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        book: PositionSource,
        bars: BarBook,
        spots: SpotBook,
        summaries: SummaryBook,
        archive_root: Path,
        store: Callable[[], AnalyticsStore] | None = None,
        executor: Callable[[], Executor | None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.book = book
        self.bars = bars
        self.spots = spots
        self.summaries = summaries
        self.archive_root = archive_root
        self.store = store
        self.executor = executor
        self.clock = clock
        self.snapshot_day: date | None = None

    async def _positions(self, module: str) -> list[Position] | None:
        try:
            return await self.book.positions()
        except RedisError as exc:
            self.metrics.failures.labels(module=module, reason="redis").inc()
            log.error("positions_unavailable", module=module, error=str(exc))
            return None

    def _pricer(self, now: datetime) -> BookPricer:
        return BookPricer(self.spots, self.bars, self.summaries, self.store() if self.store else None, now)

    async def _run(self, module: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.executor(), work)
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=module, reason="invalid_input").inc()
            log.warning("portfolio_kernel_failed", module=module, error=str(exc))
            return None
        self.metrics.compute_latency_ms.labels(module=module).observe((time.perf_counter() - started) * 1000.0)
        return result

    # ----------------------------------------------------------------- risk attribution
    async def risk_tick(self) -> None:
        """Attribution on 5 m and 60 m returns; the daily Parquet snapshot after the close."""
        now = self.clock()
        positions = await self._positions(self.RISK)
        if positions is None:
            return
        await self.bars.bootstrap(sorted({*self.bars.symbols, *(p.symbol for p in positions)}), now)
        self.bars.close_until(now)
        symbols = sorted(s for s, st in self.bars.symbols.items() if len(st.close_1m) >= 2)
        if len(symbols) < 2:
            log.debug("risk_waiting_for_bars", symbols=symbols)
            return
        windows = {}
        for name, minutes, minimum in (("5m", 5, 20), ("60m", 60, 10)):
            returns = self.bars.aligned_returns(symbols, minutes, 2000)
            if returns.shape[0] >= minimum:
                windows[name] = returns
        if not windows:
            log.debug("risk_waiting_for_history", symbols=symbols)
            return
        pricer = self._pricer(now)
        exposures: dict[str, float] = {}
        skipped: list[str] = []
        for p in positions:
            spot = pricer.spot(p.symbol)
            delta = 1.0
            if p.is_option:
                priced = await pricer.contract(p)
                delta = priced[1] * p.multiplier if priced else math.nan
            if spot is None or not math.isfinite(delta):
                skipped.append(p.source_id or p.symbol)
                continue
            exposures[p.symbol] = exposures.get(p.symbol, 0.0) + p.quantity * delta * spot
        weights, weights_source = equal_or_book_weights(symbols, exposures)
        benchmark = "SPY" if "SPY" in symbols else None
        result: RiskAttribution | None = await self._run(
            self.RISK, lambda: risk_attribution(windows, symbols, weights, benchmark=benchmark, method="ewma")
        )
        if result is None:
            return
        rows = result.to_table()
        summary = {
            name: {
                "n_observations": wa.n_observations,
                "var": wa.var.var,
                "portfolio_sigma": wa.var.portfolio_sigma,
                "systematic_share": wa.exposure.systematic_share,
                "beta_exposure": wa.beta_exposure,
                "explained_variance_ratio": wa.pca.explained_variance_ratio.tolist(),
            }
            for name, wa in result.windows.items()
        }
        values: dict[str, float | None] = {
            f"{k}_{w}": float(v) for w, s in summary.items() for k, v in s.items() if isinstance(v, int | float)
        }
        payload = {
            "symbols": list(symbols),
            "weights": weights.tolist(),
            "weights_source": weights_source,
            "benchmark": benchmark,
            "skipped_positions": skipped,
            "windows": summary,
            "table": rows,
        }
        ids = [st.recent_ids[-1] for s in symbols if (st := self.bars.symbols[s]).recent_ids]
        await self._emit(self.RISK, payload, values, now, ids)
        await self._snapshot(rows, now)

    async def _snapshot(self, rows: list[dict[str, Any]], now: datetime) -> None:
        et = now.astimezone(ET)
        if et.time() < self.config.moc_close_et or self.snapshot_day == et.date():
            return
        try:
            path = await asyncio.get_running_loop().run_in_executor(
                self.executor(), write_snapshot, self.archive_root, et.date(), rows, now
            )
        except OSError as exc:
            self.metrics.failures.labels(module=self.RISK, reason="archive").inc()
            log.error("risk_snapshot_failed", root=str(self.archive_root), error=str(exc))
            return
        self.snapshot_day = et.date()
        log.info("risk_snapshot_written", path=path, rows=len(rows))

    # ----------------------------------------------------------------------- stress
    async def stress_tick(self) -> None:
        """Every scenario on the current book."""
        now = self.clock()
        positions = await self._positions(self.STRESS)
        if positions is None:
            return
        pricer = self._pricer(now)
        book: list[StressPosition] = []
        spots: dict[str, float] = {}
        skipped: list[dict[str, str]] = []
        for p in positions:
            spot = pricer.spot(p.symbol)
            if spot is None:
                skipped.append({"position": p.source_id or p.symbol, "reason": "no_spot"})
                continue
            spots[p.symbol] = spot
            if not p.is_option:
                book.append(StressPosition(p.symbol, p.quantity, label=p.source_id or p.symbol))
                continue
            assert p.expiry is not None  # is_option
            years = expiry_years(now, p.expiry, self.config)
            priced = await pricer.contract(p) if years > 0.0 else None
            if priced is None:
                skipped.append({"position": p.source_id, "reason": "expired" if years <= 0.0 else "no_vol"})
                continue
            book.append(
                StressPosition(
                    p.symbol, p.quantity, p.strike, years, p.right == "C", priced[0], p.multiplier, label=p.source_id
                )
            )
        market = MarketState(spots, self.config.risk_free_rate, {s: self.config.dividend_yield(s) for s in spots})
        report: StressReport | None = None
        if book:
            report = await self._run(self.STRESS, lambda: stress_test(book, market))
            if report is None:
                return
        scenarios = (
            {r.scenario.name: {"pnl_full": r.total_full, "pnl_approx": r.total_approx} for r in report.results}
            if report
            else {}
        )
        worst = report.worst() if report else None
        payload = {
            "positions": len(book),
            "skipped_positions": skipped,
            "scenarios": scenarios,
            "worst": {"scenario": worst.scenario.name, "pnl_full": worst.total_full} if worst else None,
            "defaulted_betas": list(report.defaulted_betas) if report else [],
            "table": report.to_table() if report else [],
        }
        values: dict[str, float | None] = {f"pnl_{name}": s["pnl_full"] for name, s in scenarios.items()}
        values["worst_pnl"] = worst.total_full if worst else 0.0
        values["positions"] = float(len(book))
        await self._emit(self.STRESS, payload, values, now, [p.source_id for p in positions if p.source_id])

    async def _emit(
        self,
        module: str,
        payload: dict[str, Any],
        values: dict[str, float | None],
        now: datetime,
        input_ids: Sequence[str],
    ) -> None:
        every = self.config.stress_every_s if module == self.STRESS else self.config.risk_every_s
        write, record = kernel_result(
            module=module,
            key=result_key(module),
            symbol=MARKET,
            payload=payload,
            values=values,
            computed_at=now,
            valid_until=now + timedelta(seconds=every + self.config.swing_grace_s),
            provenance=Provenance("platform", now, tuple(input_ids)),
            settings=self.settings(),
        )
        await self.emitter.emit(module, MARKET, [write], record)
