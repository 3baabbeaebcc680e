"""One option chain snapshot → implied vols, price and eight Greeks per contract, and its summary.

Pure: no Faust, Kafka or Redis here. The analytics role calls :func:`compute_chain_greeks`
(in a worker thread for large chains) and stores/publishes what it returns.

Per contract: the implied volatility is solved from the mid where the snapshot has a bid and
an ask; where it has not, or the mid has no solution (``IVStatus``), the provider's IV is used;
the Greeks are computed for every contract that ends up with a volatility, in one call of
:func:`compute_greeks`. Provider Greeks are cross-checked against ours.

Spot, in order of preference: the snapshot's ``underlying_price``; the put-call-parity forward
of the snapshot's own near-the-money pairs (consistent with the option prices, and all an
AlphaVantage chain offers); the latest underlying quote or bar within ``spot_max_age_s``.

Exposures (summary) take the dealer convention: customers are assumed long the puts and
short the calls they hold open interest in, so dealers are long calls and short puts.
``net_gex`` is the dollar change of dealer delta for a 1% spot move, ``net_vanna`` for a one
vol-point move, ``net_charm`` over one calendar day.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from numpy.typing import NDArray

from quanticity.agents.analytics_config import AnalyticsConfig, Horizon
from quanticity.analytics import (
    GREEK_NAMES,
    Disagreement,
    IVStatus,
    compute_greeks,
    crosscheck_provider_greeks,
    implied_vol,
)
from quanticity.errors import QuanticityError
from quanticity.schemas import OptionChainSnapshot, utc_now
from quanticity.schemas.columns import encode_columnar
from quanticity.simulation.calendar import regular_open_after_close

ET = ZoneInfo("America/New_York")
SECONDS_PER_YEAR = 365.0 * 86400.0
GREEKS_SCHEMA = "quanticity.analytics.greeks/2"
PROVIDER_GREEKS = ("delta", "gamma", "theta", "vega", "rho")

IV_FROM_NONE, IV_FROM_MID, IV_FROM_PROVIDER = 0, 1, 2
_IV_SOURCE_CODES = {str(IV_FROM_NONE): "none", str(IV_FROM_MID): "mid", str(IV_FROM_PROVIDER): "provider"}
_IV_STATUS_CODES = {str(int(s)): s.name.lower() for s in IVStatus}
_DISAGREE_BITS = int(
    Disagreement.DELTA | Disagreement.GAMMA | Disagreement.THETA | Disagreement.VEGA | Disagreement.RHO
)
UNITS = {
    "price": "currency per share",
    "delta": "per 1.00 of spot",
    "gamma": "per 1.00 of spot, squared",
    "vega": "per 1.00 of volatility",
    "theta": "per year (calendar time passing)",
    "rho": "per 1.00 of rate",
    "vanna": "d(delta)/d(vol) per 1.00 of volatility",
    "vomma": "d(vega)/d(vol) per 1.00 of volatility",
    "charm": "d(delta)/dt per year",
    "iv": "per sqrt(year)",
    "net_gex": "dealer delta change in currency for a 1% spot move",
    "net_vanna": "dealer delta change in currency for a 1 vol-point move",
    "net_charm": "dealer delta change in currency over one calendar day",
}


class ChainNotComputable(QuanticityError):
    """A valid snapshot for which no Greeks can be computed (no spot, expired, bad strikes).

    Attributes:
        reason: short label for ``analytics_failure_total{reason}``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Spot:
    """An underlying price and where it came from."""

    price: float
    source: str  # chain | parity | quote | bar | trade
    event_time: datetime
    record_id: str | None = None


@dataclass(frozen=True)
class ExpirySummary:
    """The headline numbers of one expiry, for the per-underlying summary and the result record."""

    expiry: date
    horizon: Horizon
    spot: float
    spot_source: str
    forward: float
    expiry_years: float
    atm_iv: float | None
    skew_25d: float | None
    net_gex: float
    net_vanna: float
    net_charm: float
    counts: dict[str, int]
    source: str
    event_time: datetime
    computed_at: datetime
    valid_until: datetime
    input_ids: tuple[str, ...]

    def values(self) -> dict[str, float | None]:
        """Flat numbers for ``AnalyticsResult.values``."""
        return {
            "expiry_yyyymmdd": float(self.expiry.year * 10000 + self.expiry.month * 100 + self.expiry.day),
            "expiry_years": self.expiry_years,
            "spot": self.spot,
            "forward": self.forward,
            "atm_iv": self.atm_iv,
            "skew_25d": self.skew_25d,
            "net_gex": self.net_gex,
            "net_vanna": self.net_vanna,
            "net_charm": self.net_charm,
            **{name: float(count) for name, count in self.counts.items()},
        }

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON-able mapping."""
        return {
            "expiry": self.expiry.isoformat(),
            "horizon": self.horizon,
            "spot": self.spot,
            "spot_source": self.spot_source,
            "forward": self.forward,
            "expiry_years": self.expiry_years,
            "atm_iv": self.atm_iv,
            "skew_25d": self.skew_25d,
            "net_gex": self.net_gex,
            "net_vanna": self.net_vanna,
            "net_charm": self.net_charm,
            "counts": self.counts,
            "source": self.source,
            "event_time": self.event_time.isoformat(),
            "computed_at": self.computed_at.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "input_ids": list(self.input_ids),
        }


@dataclass(frozen=True)
class ChainGreeks:
    """Everything computed from one snapshot: the serialized document and its summary."""

    summary: ExpirySummary
    document: bytes
    columns: dict[str, NDArray[Any]]
    compute_ms: float


def settlement(expiry: date, config: AnalyticsConfig) -> datetime:
    """The UTC instant an expiry date settles (its ET settlement time)."""
    return datetime.combine(expiry, config.settlement_time_et, tzinfo=ET).astimezone(UTC)


def expiry_years(event_time: datetime, expiry: date, config: AnalyticsConfig) -> float:
    """Calendar time (ACT/365) from ``event_time`` to the settlement of ``expiry``, in years."""
    return (settlement(expiry, config) - event_time).total_seconds() / SECONDS_PER_YEAR


def horizon_of(event_time: datetime, expiry: date) -> Horizon:
    """``0dte``, ``1dte`` or ``swing``: business days from the ET date of ``event_time`` to ``expiry``."""
    days = int(np.busday_count(event_time.astimezone(ET).date(), expiry))
    return "0dte" if days <= 0 else "1dte" if days == 1 else "swing"


def valid_until(event_time: datetime, horizon: Horizon, config: AnalyticsConfig) -> datetime:
    """Results describe the market at their input's event time, and expire a validity later.

    An input stamped while the regular session is closed (a chain polled after 16:00 ET
    carries the close as its event time; a night, a weekend, a holiday) describes the
    market until the next open: nothing newer can exist before it. Its results stay valid
    until a validity after that open, so an evening's Greeks are served, not dropped as
    stale, and expire once the next session has had time to produce fresh ones.
    """
    reopens = regular_open_after_close(event_time)
    return (reopens or event_time) + timedelta(seconds=config.validity_s(horizon))


def input_lag_s(event_time: datetime, ingest_time: datetime | None, now: datetime) -> float:
    """How far behind the newest possible input a computation at ``now`` runs, in seconds.

    In the regular session that is the age of the input's event time. An input stamped
    while the session is closed (a chain polled after 16:00 ET carries the close) is the
    newest there can be until the next open, so until then only our own delay counts: the
    time since the platform received it (its ingest time; its event time if it has none).
    After that open it lags from the open: fresher data exists by then. Without this an
    evening's Greeks reported hours of lag and the 0DTE/1DTE lag alert fired every night.
    """
    reopens = regular_open_after_close(event_time)
    if reopens is None:
        since = event_time
    elif now >= reopens:
        since = reopens
    else:
        since = ingest_time if ingest_time is not None else event_time
    return max((now - since).total_seconds(), 0.0)


def mid_prices(bid: NDArray[np.float64], ask: NDArray[np.float64]) -> NDArray[np.float64]:
    """(bid + ask) / 2 where both sides exist and are not crossed, else NaN."""
    with np.errstate(invalid="ignore"):
        quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0.0) & (ask >= bid)
    return np.where(quoted, 0.5 * (bid + ask), math.nan)


def parity_spot(
    strike: NDArray[np.float64],
    is_call: NDArray[np.bool_],
    mid: NDArray[np.float64],
    years: float,
    rate: float,
    dividend_yield: float,
    pairs: int,
) -> tuple[float, float] | None:
    """Spot and forward implied by put-call parity at the strikes nearest the money.

    ``C - P = e^{-rT} (F - K)`` at each strike quoted on both sides; the median forward of the
    ``pairs`` strikes with the smallest ``|C - P|`` is taken, and ``S = F e^{-(r-q)T}``.

    Returns:
        ``(spot, forward)``, or None when no strike has both a call and a put mid.
    """
    calls = np.flatnonzero(is_call & np.isfinite(mid))
    puts = np.flatnonzero(~is_call & np.isfinite(mid))
    common, ci, pi = np.intersect1d(strike[calls], strike[puts], return_indices=True)
    if common.size == 0:
        return None
    diff = mid[calls[ci]] - mid[puts[pi]]
    nearest = np.argsort(np.abs(diff))[: max(pairs, 1)]
    forward = float(np.median(common[nearest] + diff[nearest] * math.exp(rate * years)))
    if not forward > 0.0:
        return None
    return forward * math.exp(-(rate - dividend_yield) * years), forward


def _atm_iv(
    strike: NDArray[np.float64], is_call: NDArray[np.bool_], iv: NDArray[np.float64], forward: float
) -> float | None:
    """Out-of-the-money IV smile interpolated at the forward; None without points on both sides."""
    otm = np.isfinite(iv) & np.where(is_call, strike >= forward, strike < forward)
    k, v = strike[otm], iv[otm]
    if not (k.size and k.min() <= forward <= k.max()):
        return None
    order = np.argsort(k, kind="stable")
    return float(np.interp(forward, k[order], v[order]))


def _iv_at_delta(delta: NDArray[np.float64], iv: NDArray[np.float64], target: float) -> float | None:
    ok = np.isfinite(delta) & np.isfinite(iv)
    d, v = delta[ok], iv[ok]
    if d.size < 2 or not d.min() <= target <= d.max():
        return None
    order = np.argsort(d, kind="stable")
    return float(np.interp(target, d[order], v[order]))


def _skew_25d(is_call: NDArray[np.bool_], delta: NDArray[np.float64], iv: NDArray[np.float64]) -> float | None:
    """25-delta put IV minus 25-delta call IV (positive: puts richer, the usual equity skew)."""
    put = _iv_at_delta(np.where(is_call, math.nan, delta), iv, -0.25)
    call = _iv_at_delta(np.where(is_call, delta, math.nan), iv, 0.25)
    return None if put is None or call is None else put - call


def _spot_for(
    chain: OptionChainSnapshot,
    hint: Spot | None,
    parity: tuple[float, float] | None,
    years: float,
    rate: float,
    dividend_yield: float,
    config: AnalyticsConfig,
) -> tuple[Spot, float]:
    """The spot (and forward) the chain is priced with; see the module docstring for the order."""
    carry = math.exp((rate - dividend_yield) * years)
    if chain.underlying_price is not None and chain.underlying_price > 0.0:
        return Spot(chain.underlying_price, "chain", chain.event_time), chain.underlying_price * carry
    if parity is not None:
        return Spot(parity[0], "parity", chain.event_time), parity[1]
    if hint is not None and abs((hint.event_time - chain.event_time).total_seconds()) <= config.spot_max_age_s:
        return hint, hint.price * carry
    raise ChainNotComputable(
        "no_spot",
        f"{chain.symbol} {chain.expiry}: no underlying_price, no call/put pair quoted at one strike, "
        f"and no underlying quote within {config.spot_max_age_s} s of {chain.event_time.isoformat()}",
    )


def compute_chain_greeks(
    chain: OptionChainSnapshot,
    *,
    spot_hint: Spot | None,
    config: AnalyticsConfig,
    clock: Callable[[], datetime] = utc_now,
) -> ChainGreeks:
    """Implied vols, prices, Greeks, cross-check and summary of one snapshot, serialized.

    Args:
        chain: the snapshot (only its declared columns are read; added columns are ignored).
        spot_hint: the latest underlying quote or bar of the symbol, if any.
        config: rates, dividends, validity.
        clock: the time source of ``computed_at`` (taken when the kernels are done).

    Returns:
        The document (columnar bytes, :func:`greeks_document`) and the expiry summary.

    Raises:
        ChainNotComputable: no spot, the expiry has settled, or a strike is not positive.
    """
    t0 = time.perf_counter()
    strike = chain.strike
    if strike.size and not bool(np.all(strike > 0.0)):  # NaN fails the comparison too
        raise ChainNotComputable("invalid_strike", f"{chain.symbol} {chain.expiry}: a strike is not positive")
    years = expiry_years(chain.event_time, chain.expiry, config)
    if years <= 0.0:
        raise ChainNotComputable("expired", f"{chain.symbol} {chain.expiry} settled before {chain.event_time}")
    rate, div = config.risk_free_rate, config.dividend_yield(chain.symbol)
    is_call = np.asarray(chain.right) == "C"
    mid = mid_prices(chain.bid, chain.ask)
    parity = parity_spot(strike, is_call, mid, years, rate, div, config.parity_pairs)
    spot, forward = _spot_for(chain, spot_hint, parity, years, rate, div, config)

    vol_mid, status = implied_vol(mid, spot.price, strike, years, rate, div, is_call)
    provider_iv = chain.implied_vol
    from_mid = status == int(IVStatus.SOLVED)
    from_provider = ~from_mid & np.isfinite(provider_iv) & (provider_iv > 0.0)
    iv = np.where(from_mid, vol_mid, np.where(from_provider, provider_iv, math.nan))
    iv_source = np.where(from_mid, IV_FROM_MID, np.where(from_provider, IV_FROM_PROVIDER, IV_FROM_NONE)).astype(np.int8)

    priced = np.flatnonzero(np.isfinite(iv))
    n = strike.size
    out = {name: np.full(n, math.nan) for name in GREEK_NAMES}
    provider_flags = np.zeros(n, dtype=np.uint16)
    compared = disagree = missing = 0
    if priced.size:
        greeks = compute_greeks(spot.price, strike[priced], years, rate, div, iv[priced], is_call[priced])
        for name, values in greeks.as_dict().items():
            out[name][priced] = values
        provider = {name: getattr(chain, name)[priced] for name in PROVIDER_GREEKS}
        if any(bool(np.isfinite(v).any()) for v in provider.values()):
            check = crosscheck_provider_greeks(provider, greeks, years)
            provider_flags[priced] = check.reasons
            compared = int(priced.size)
            disagree = int(np.count_nonzero(check.reasons & _DISAGREE_BITS))
            missing = int(np.count_nonzero(check.reasons & int(Disagreement.NOT_A_NUMBER)))

    oi = np.nan_to_num(chain.open_interest, nan=0.0) * config.contract_multiplier
    sign = np.where(is_call, 1.0, -1.0)
    counts = {
        "contracts": int(n),
        "priced": int(priced.size),
        **{f"iv_{s.name.lower()}": int(np.count_nonzero(status == int(s))) for s in IVStatus},
        "iv_from_mid": int(np.count_nonzero(from_mid)),
        "iv_from_provider": int(np.count_nonzero(from_provider)),
        "provider_compared": compared,
        "provider_disagree": disagree,
        "provider_missing": missing,
    }
    horizon = horizon_of(chain.event_time, chain.expiry)
    computed_at = clock()
    summary = ExpirySummary(
        expiry=chain.expiry,
        horizon=horizon,
        spot=spot.price,
        spot_source=spot.source,
        forward=forward,
        expiry_years=years,
        atm_iv=_atm_iv(strike, is_call, iv, forward),
        skew_25d=_skew_25d(is_call, out["delta"], iv),
        net_gex=float(np.nansum(sign * out["gamma"] * oi)) * spot.price**2 * 0.01,
        net_vanna=float(np.nansum(sign * out["vanna"] * oi)) * spot.price * 0.01,
        net_charm=float(np.nansum(sign * out["charm"] * oi)) * spot.price / 365.0,
        counts=counts,
        source=chain.source,
        event_time=chain.event_time,
        computed_at=computed_at,
        valid_until=valid_until(chain.event_time, horizon, config),
        input_ids=tuple(i for i in (chain.record_id, spot.record_id) if i is not None),
    )
    columns: dict[str, NDArray[Any]] = {
        "strike": strike,
        "iv": iv,
        "iv_status": status,
        "iv_source": iv_source,
        **out,
        "provider_flags": provider_flags,
    }
    document = greeks_document(chain, summary, columns, rate, div)
    return ChainGreeks(summary, document, columns, (time.perf_counter() - t0) * 1000.0)


def greeks_document(
    chain: OptionChainSnapshot,
    summary: ExpirySummary,
    columns: dict[str, NDArray[Any]],
    rate: float,
    dividend_yield: float,
) -> bytes:
    """The ``analytics:greeks:{symbol}:{expiry}`` document: provenance and summary, then the columns.

    In the columnar wire form of ``schemas/columns.py``: a JSON header, then every number
    column as raw float64 (NaN where a contract has no value; the integer codes ``iv_status``,
    ``iv_source`` and ``provider_flags`` are exact in float64). ``right`` goes in the header
    under ``text_columns``. A 10k-contract chain is 1.1 MB instead of 2.2 MB of JSON and
    costs 0.2 ms to write instead of 3 ms; :func:`quanticity.storage.analytics_store.decode_result`
    reads it back with the columns under ``"columns"``.
    """
    header = {
        "schema": GREEKS_SCHEMA,
        "symbol": chain.symbol,
        "producer": "analytics",
        "rate": rate,
        "dividend_yield": dividend_yield,
        **summary.as_json(),
        "units": UNITS,
        "codes": {
            "iv_status": _IV_STATUS_CODES,
            "iv_source": _IV_SOURCE_CODES,
            "provider_flags": {str(flag.name).lower(): int(flag) for flag in Disagreement},
        },
        "text_columns": {"right": list(chain.right)},
    }
    numbers = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    return encode_columnar({**header, **numbers}, list(numbers))


SUMMARY_SCHEMA = "quanticity.analytics.greeks_summary/1"


class SummaryBook:
    """The fresh expiry summaries of each underlying, folded into one summary document.

    The summary is valid only as long as every part it adds up: its ``valid_until`` is the
    earliest of its parts', and parts past their validity are dropped before each rebuild.
    """

    def __init__(self) -> None:
        self._parts: dict[str, dict[date, ExpirySummary]] = {}

    def fresh(self, symbol: str, now: datetime) -> list[ExpirySummary]:
        """The parts of ``symbol`` still valid at ``now``, nearest expiry first."""
        return sorted((p for p in self._parts.get(symbol, {}).values() if p.valid_until > now), key=lambda p: p.expiry)

    def update(self, symbol: str, part: ExpirySummary, now: datetime) -> tuple[bytes, datetime]:
        """Replace ``part``'s expiry, drop expired parts and return ``(document, valid_until)``."""
        parts = self._parts.setdefault(symbol, {})
        parts[part.expiry] = part
        for expiry in [e for e, p in parts.items() if p.valid_until <= now]:
            del parts[expiry]
        fresh = sorted(parts.values(), key=lambda p: p.expiry) or [part]
        latest = max(fresh, key=lambda p: p.event_time)
        until = min(p.valid_until for p in fresh)
        document = {
            "schema": SUMMARY_SCHEMA,
            "symbol": symbol,
            "producer": "analytics",
            "source": latest.source,
            "computed_at": max(p.computed_at for p in fresh).isoformat(),
            "valid_until": until.isoformat(),
            "spot": latest.spot,
            "spot_source": latest.spot_source,
            "net_gex": sum(p.net_gex for p in fresh),
            "net_vanna": sum(p.net_vanna for p in fresh),
            "net_charm": sum(p.net_charm for p in fresh),
            "atm_iv": {p.expiry.isoformat(): p.atm_iv for p in fresh},
            "skew_25d": {p.expiry.isoformat(): p.skew_25d for p in fresh},
            "counts": {
                "expiries": len(fresh),
                "contracts": sum(p.counts["contracts"] for p in fresh),
                "priced": sum(p.counts["priced"] for p in fresh),
                "provider_disagree": sum(p.counts["provider_disagree"] for p in fresh),
            },
            "units": {k: UNITS[k] for k in ("net_gex", "net_vanna", "net_charm", "iv")},
            "expiries": {p.expiry.isoformat(): p.as_json() for p in fresh},
            "input_ids": sorted({i for p in fresh for i in p.input_ids}),
        }
        return orjson.dumps(document), until
