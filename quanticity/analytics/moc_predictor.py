"""Closing-auction (MOC) imbalance projection for SPY, QQQ, IWM and SPX, with a backtest.

Inputs per symbol and day, a time series over the last hour (oldest first): the IBKR
auction fields (tick 34 auction volume = paired shares, 35 auction price = indicative
clearing price, 36 auction imbalance, 61 regulatory imbalance), bars (last price,
session VWAP, cumulative volume against the usual volume profile) and depth (shares on
the top bid and ask levels). Imbalances are *signed* shares, + = buy; for an unsigned
feed, :func:`signed_imbalance` takes the side from the indicative price. SPX has no
auction of its own: it is projected from SPY's auction fields (``AUCTION_PROXY``), and the
projected move is applied to the SPX level through ``reference_price``.

Model: eight features scaled by average daily volume (ADV) or price, each also
multiplied by ``tau = minutes_to_close / 60`` so that coefficients vary linearly with
time to close; two ridge regressions on the standardised design, solved in closed form
(``beta = (Z'Z/n + lambda I)^-1 Z'y/n``, intercept unpenalised): final imbalance in ADV
units, and the close-to-now price move. Residual variance is modelled as
``s^2(tau) = a + b tau`` (a, b >= 0), so the uncertainty shrinks toward the close; the
confidence is ``2 Phi(|y_hat| / s(tau)) - 1``, the probability of the projected side
being right minus that of it being wrong under Gaussian errors.

Formulas: docs/module3_formulas_part2.md, "MOC predictor".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "AUCTION_PROXY",
    "DESIGN_NAMES",
    "FEATURE_NAMES",
    "MOC_SYMBOLS",
    "AuctionSeries",
    "CalibrationBucket",
    "MocBacktest",
    "MocModel",
    "MocPrediction",
    "MocProjection",
    "backtest_moc",
    "fit_moc_model",
    "moc_features",
    "project_close",
    "signed_imbalance",
]

MOC_SYMBOLS = ("SPY", "QQQ", "IWM", "SPX")
AUCTION_PROXY: Mapping[str, str] = {"SPX": "SPY"}  # the index's auction fields come from this ETF
FEATURE_NAMES = (
    "imbalance_adv",
    "imbalance_change_adv",
    "regulatory_imbalance_adv",
    "imbalance_to_paired",
    "indicative_gap",
    "drift_vs_vwap",
    "depth_imbalance",
    "volume_pace_signed",
)
DESIGN_NAMES = ("intercept", "tau", *FEATURE_NAMES, *(f"{n}_x_tau" for n in FEATURE_NAMES))
HORIZON_MINUTES = 60.0
CHANGE_LOOKBACK_MINUTES = 5.0
Side = Literal["buy", "sell", "none"]
_SCHEMA = 1

_ANY = Bound()
_NAN_OK = Bound(allow_nan=True)
_NONNEG = Bound(low=0.0, low_inclusive=True)
_NONNEG_NAN = Bound(low=0.0, low_inclusive=True, allow_nan=True)
_POSITIVE = Bound(low=0.0)


def _normal_cdf(z: NDArray[np.float64]) -> NDArray[np.float64]:
    # numpy has no erfc; the arrays here are one row live and a few thousand in a backtest.
    values = (0.5 * math.erfc(-v / math.sqrt(2.0)) for v in z.ravel().tolist())
    return np.fromiter(values, dtype=np.float64, count=z.size).reshape(z.shape)


def _vectors(spec: dict[str, tuple[ArrayLike, Bound]]) -> dict[str, NDArray[np.float64]]:
    prepared = prepare_inputs(spec, {})
    if len(prepared.shape) != 1:
        raise AnalyticsInputError(next(iter(spec)), f"must be one-dimensional, got shape {prepared.shape}")
    return prepared.floats


def signed_imbalance(imbalance: ArrayLike, auction_price: ArrayLike, reference_price: ArrayLike) -> NDArray[np.float64]:
    """Sign an unsigned imbalance feed: buy when the indicative price is above the reference.

    Args:
        imbalance: unsigned (or already signed) imbalance sizes; the magnitude is used.
        auction_price: indicative clearing price (NaN: unknown, result 0).
        reference_price: last trade or midquote, > 0.

    Raises:
        AnalyticsInputError: shapes do not broadcast or a value is out of its domain.
    """
    c = prepare_inputs(
        {
            "imbalance": (imbalance, _NAN_OK),
            "auction_price": (auction_price, _NONNEG_NAN),
            "reference_price": (reference_price, _POSITIVE),
        },
        {},
    )
    f = c.floats
    side = np.sign(np.nan_to_num(f["auction_price"] - f["reference_price"], nan=0.0))
    return np.asarray((np.abs(np.nan_to_num(f["imbalance"], nan=0.0)) * side).reshape(c.shape), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class AuctionSeries:
    """One symbol's last-hour time series, oldest first, all arrays of one length.

    Build with :meth:`create`, which validates and converts.

    Attributes:
        minutes_to_close: strictly decreasing, >= 0.
        auction_imbalance: signed shares (+ buy); NaN before the first publication (read as 0).
        regulatory_imbalance: signed shares; NaN before publication (read as 0).
        auction_volume: paired shares; NaN read as 0.
        auction_price: indicative clearing price; NaN when not published.
        last_price: last trade, > 0.
        vwap: session VWAP, > 0.
        cum_volume: session volume so far, >= 0.
        expected_cum_volume: the volume profile's usual cumulative volume at this time, > 0.
        bid_depth: shares on the top bid levels, >= 0.
        ask_depth: shares on the top ask levels, >= 0.
    """

    minutes_to_close: NDArray[np.float64]
    auction_imbalance: NDArray[np.float64]
    regulatory_imbalance: NDArray[np.float64]
    auction_volume: NDArray[np.float64]
    auction_price: NDArray[np.float64]
    last_price: NDArray[np.float64]
    vwap: NDArray[np.float64]
    cum_volume: NDArray[np.float64]
    expected_cum_volume: NDArray[np.float64]
    bid_depth: NDArray[np.float64]
    ask_depth: NDArray[np.float64]

    @classmethod
    def create(
        cls,
        *,
        minutes_to_close: ArrayLike,
        auction_imbalance: ArrayLike,
        regulatory_imbalance: ArrayLike,
        auction_volume: ArrayLike,
        auction_price: ArrayLike,
        last_price: ArrayLike,
        vwap: ArrayLike,
        cum_volume: ArrayLike,
        expected_cum_volume: ArrayLike,
        bid_depth: ArrayLike,
        ask_depth: ArrayLike,
    ) -> AuctionSeries:
        """Validate and broadcast the columns (scalars allowed for constant columns).

        Raises:
            AnalyticsInputError: a column is out of its domain, the shapes do not
                broadcast to one dimension, the series is empty, or ``minutes_to_close``
                is not strictly decreasing.
        """
        f = _vectors(
            {
                "minutes_to_close": (minutes_to_close, _NONNEG),
                "auction_imbalance": (auction_imbalance, _NAN_OK),
                "regulatory_imbalance": (regulatory_imbalance, _NAN_OK),
                "auction_volume": (auction_volume, _NONNEG_NAN),
                "auction_price": (auction_price, Bound(low=0.0, allow_nan=True)),
                "last_price": (last_price, _POSITIVE),
                "vwap": (vwap, _POSITIVE),
                "cum_volume": (cum_volume, _NONNEG),
                "expected_cum_volume": (expected_cum_volume, _POSITIVE),
                "bid_depth": (bid_depth, _NONNEG),
                "ask_depth": (ask_depth, _NONNEG),
            }
        )
        tau = f["minutes_to_close"]
        if tau.size == 0:
            raise AnalyticsInputError("minutes_to_close", "needs at least one observation")
        if np.any(np.diff(tau) >= 0.0):
            raise AnalyticsInputError("minutes_to_close", "must be strictly decreasing (oldest first)")
        return cls(**{name: np.array(col, dtype=np.float64) for name, col in f.items()})

    def __len__(self) -> int:
        return int(self.minutes_to_close.size)


def moc_features(series: AuctionSeries, adv: float) -> NDArray[np.float64]:
    """The eight features (``FEATURE_NAMES``) at every row of the series, shape (T, 8).

    Args:
        series: one symbol-day's last-hour series.
        adv: average daily volume in shares, > 0 (scales every share count).

    Raises:
        AnalyticsInputError: ``adv`` is not finite and > 0.
    """
    if not (adv > 0.0 and math.isfinite(adv)):
        raise AnalyticsInputError("adv", f"must be finite and > 0, got {adv!r}")
    s = series
    imb = np.nan_to_num(s.auction_imbalance, nan=0.0)
    paired = np.nan_to_num(s.auction_volume, nan=0.0)
    # Imbalance CHANGE_LOOKBACK_MINUTES earlier: the last row at least that far from the
    # close-relative time of row t (tau is decreasing), else the first row.
    earlier = np.searchsorted(-s.minutes_to_close, -(s.minutes_to_close + CHANGE_LOOKBACK_MINUTES), side="right") - 1
    earlier = np.maximum(earlier, 0)
    denom_paired = paired + np.abs(imb)
    depth = s.bid_depth + s.ask_depth
    out = np.empty((len(s), len(FEATURE_NAMES)))
    out[:, 0] = imb / adv
    out[:, 1] = (imb - imb[earlier]) / adv
    out[:, 2] = np.nan_to_num(s.regulatory_imbalance, nan=0.0) / adv
    out[:, 3] = np.divide(imb, denom_paired, out=np.zeros_like(imb), where=denom_paired > 0.0)
    out[:, 4] = np.nan_to_num((s.auction_price - s.last_price) / s.last_price, nan=0.0)
    out[:, 5] = (s.last_price - s.vwap) / s.vwap
    out[:, 6] = np.divide(s.bid_depth - s.ask_depth, depth, out=np.zeros_like(depth), where=depth > 0.0)
    out[:, 7] = (s.cum_volume / s.expected_cum_volume - 1.0) * np.sign(imb)
    return out


def _design(features: NDArray[np.float64], minutes_to_close: NDArray[np.float64]) -> NDArray[np.float64]:
    tau = minutes_to_close / HORIZON_MINUTES
    return np.column_stack([np.ones_like(tau), tau, features, features * tau[:, None]])


def _per_row(n: int, spec: dict[str, tuple[ArrayLike, Bound]]) -> dict[str, NDArray[np.float64]]:
    """Each column validated on its own, as n values (a scalar is repeated)."""
    out: dict[str, NDArray[np.float64]] = {}
    for name, (value, bound) in spec.items():
        prepared = prepare_inputs({name: (value, bound)}, {})
        if len(prepared.shape) > 1 or prepared.size not in (1, n):
            raise AnalyticsInputError(name, f"must be a scalar or {n} values (one per row), got shape {prepared.shape}")
        out[name] = np.asarray(np.broadcast_to(prepared.floats[name], (n,)), dtype=np.float64)
    return out


def _check_rows(features: ArrayLike, minutes_to_close: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    prepared = prepare_inputs({"features": (features, _ANY)}, {})
    if len(prepared.shape) != 2 or prepared.shape[1] != len(FEATURE_NAMES):
        raise AnalyticsInputError("features", f"must have shape (T, {len(FEATURE_NAMES)}), got {prepared.shape}")
    x = prepared.floats["features"].reshape(prepared.shape)
    tau = _vectors({"minutes_to_close": (minutes_to_close, _NONNEG)})["minutes_to_close"]
    if tau.shape[0] != x.shape[0]:
        raise AnalyticsInputError("minutes_to_close", f"must have {x.shape[0]} entries, got {tau.shape[0]}")
    return x, tau


@dataclass(frozen=True, slots=True, eq=False)
class MocPrediction:
    """Vectorised model output (one entry per row).

    Attributes:
        imbalance_adv: projected final imbalance in ADV units (signed).
        imbalance_sigma_adv: its residual standard deviation at the row's time to close.
        move: projected close-to-now return.
        move_sigma: its residual standard deviation.
        hit_probability: ``Phi(|imbalance_adv| / imbalance_sigma_adv)``.
        confidence: ``2 hit_probability - 1`` in [0, 1].
    """

    imbalance_adv: NDArray[np.float64]
    imbalance_sigma_adv: NDArray[np.float64]
    move: NDArray[np.float64]
    move_sigma: NDArray[np.float64]
    hit_probability: NDArray[np.float64]
    confidence: NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class MocModel:
    """Two ridge regressions on the standardised design, and their residual-variance lines.

    Attributes:
        mean: design column means (intercept column: 0), shape (18,).
        scale: design column standard deviations (1 where a column is constant).
        coef_imbalance: standardised coefficients, intercept first, for the imbalance.
        coef_move: the same for the price move.
        resid_imbalance: ``(a, b)`` of ``s^2(tau) = a + b tau`` for the imbalance (ADV units^2).
        resid_move: the same for the move.
        ridge: the penalty ``lambda``.
        n_train: rows fitted on.
    """

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef_imbalance: NDArray[np.float64]
    coef_move: NDArray[np.float64]
    resid_imbalance: tuple[float, float]
    resid_move: tuple[float, float]
    ridge: float
    n_train: int

    def __post_init__(self) -> None:
        d = len(DESIGN_NAMES)
        for name in ("mean", "scale", "coef_imbalance", "coef_move"):
            value = np.array(getattr(self, name), dtype=np.float64)  # a private, read-only copy
            if value.shape != (d,) or not np.all(np.isfinite(value)):
                raise AnalyticsInputError(name, f"must be {d} finite numbers, got shape {value.shape}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        if not np.all(self.scale > 0.0):
            raise AnalyticsInputError("scale", "must be > 0")
        for name in ("resid_imbalance", "resid_move"):
            a, b = getattr(self, name)
            if not (a > 0.0 and b >= 0.0 and math.isfinite(a) and math.isfinite(b)):
                raise AnalyticsInputError(name, f"needs a > 0 and b >= 0, got {(a, b)!r}")

    def raw_coefficients(self, target: Literal["imbalance", "move"]) -> dict[str, float]:
        """Coefficients on the unstandardised design (``DESIGN_NAMES``), intercept included."""
        coef = self.coef_imbalance if target == "imbalance" else self.coef_move
        raw = coef[1:] / self.scale[1:]
        intercept = float(coef[0] - raw @ self.mean[1:])
        return dict(zip(DESIGN_NAMES, [intercept, *raw.tolist()], strict=True))

    def predict(self, features: ArrayLike, minutes_to_close: ArrayLike) -> MocPrediction:
        """Project every row.

        Args:
            features: (T, 8) rows of :func:`moc_features`.
            minutes_to_close: T times to close, >= 0.

        Raises:
            AnalyticsInputError: wrong shapes or non-finite values.
        """
        x, tau = _check_rows(features, minutes_to_close)
        z = (_design(x, tau) - self.mean) / self.scale
        z[:, 0] = 1.0
        imb = z @ self.coef_imbalance
        move = z @ self.coef_move
        t = tau / HORIZON_MINUTES
        s_imb = np.sqrt(self.resid_imbalance[0] + self.resid_imbalance[1] * t)
        s_move = np.sqrt(self.resid_move[0] + self.resid_move[1] * t)
        hit = _normal_cdf(np.abs(imb) / s_imb)
        return MocPrediction(
            imbalance_adv=imb,
            imbalance_sigma_adv=s_imb,
            move=move,
            move_sigma=s_move,
            hit_probability=hit,
            confidence=np.clip(2.0 * hit - 1.0, 0.0, 1.0),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; :meth:`from_dict` restores it."""
        return {
            "schema": _SCHEMA,
            "design": list(DESIGN_NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef_imbalance": self.coef_imbalance.tolist(),
            "coef_move": self.coef_move.tolist(),
            "resid_imbalance": list(self.resid_imbalance),
            "resid_move": list(self.resid_move),
            "ridge": self.ridge,
            "n_train": self.n_train,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MocModel:
        """Restore a model written by :meth:`to_dict`.

        Raises:
            AnalyticsInputError: unknown schema or design, a missing key or a bad value.
        """
        if data.get("schema") != _SCHEMA or tuple(data.get("design", ())) != DESIGN_NAMES:
            raise AnalyticsInputError("data", "unknown schema or a design other than DESIGN_NAMES")
        try:
            ri, rm = data["resid_imbalance"], data["resid_move"]
            return cls(
                mean=np.array(data["mean"], dtype=np.float64),
                scale=np.array(data["scale"], dtype=np.float64),
                coef_imbalance=np.array(data["coef_imbalance"], dtype=np.float64),
                coef_move=np.array(data["coef_move"], dtype=np.float64),
                resid_imbalance=(float(ri[0]), float(ri[1])),
                resid_move=(float(rm[0]), float(rm[1])),
                ridge=float(data["ridge"]),
                n_train=int(data["n_train"]),
            )
        except KeyError as exc:
            raise AnalyticsInputError("data", f"missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise AnalyticsInputError("data", f"malformed value ({exc})") from None


def _variance_line(residuals: NDArray[np.float64], t: NDArray[np.float64]) -> tuple[float, float]:
    # Least squares of e^2 on [1, tau] under a > 0, b >= 0: clip b at 0 (then a = mean e^2),
    # or floor a (then b re-fitted through the floor).
    e2 = residuals**2
    mean_e2 = float(e2.mean())
    floor = max(1e-6 * mean_e2, 1e-300)
    tc = t - t.mean()
    var_t = float(tc @ tc)
    b = float(tc @ (e2 - mean_e2) / var_t) if var_t > 0.0 else 0.0
    a = mean_e2 - b * float(t.mean())
    if b <= 0.0:
        return max(mean_e2, floor), 0.0
    if a < floor:
        a = floor
        b = max(float(t @ (e2 - a) / (t @ t)), 0.0)
    return a, b


def _ridge(z: NDArray[np.float64], y: NDArray[np.float64], ridge: float) -> NDArray[np.float64]:
    n = z.shape[0]
    zc = z[:, 1:]  # centred columns; intercept = mean(y), unpenalised
    gram = zc.T @ zc / n + ridge * np.eye(zc.shape[1])
    beta = np.linalg.solve(gram, zc.T @ (y - y.mean()) / n)
    return np.concatenate([[y.mean()], beta])


def fit_moc_model(
    features: ArrayLike,
    minutes_to_close: ArrayLike,
    adv: ArrayLike,
    final_imbalance: ArrayLike,
    close_move: ArrayLike,
    *,
    ridge: float = 1e-3,
) -> MocModel:
    """Fit both ridge regressions on pooled history.

    Args:
        features: (T, 8) rows of :func:`moc_features` from past days (stacked).
        minutes_to_close: per row, time to close.
        adv: per row, the ADV used to scale that day (scalar broadcasts).
        final_imbalance: per row, that day's final published imbalance (signed shares).
        close_move: per row, ``close / last - 1`` (the row's last price to the closing price).
        ridge: ``lambda`` > 0 on the standardised coefficients.

    Returns:
        the model with standardisation, coefficients and residual-variance lines.

    Raises:
        AnalyticsInputError: fewer rows than design columns, mismatched lengths, or
            values out of their domains.
    """
    x, tau = _check_rows(features, minutes_to_close)
    if not (ridge > 0.0 and math.isfinite(ridge)):
        raise AnalyticsInputError("ridge", f"must be finite and > 0, got {ridge!r}")
    if x.shape[0] < len(DESIGN_NAMES):
        raise AnalyticsInputError("features", f"needs at least {len(DESIGN_NAMES)} rows, got {x.shape[0]}")
    n = x.shape[0]
    cols = _per_row(
        n, {"adv": (adv, _POSITIVE), "final_imbalance": (final_imbalance, _ANY), "close_move": (close_move, _ANY)}
    )
    design = _design(x, tau)
    mean = design.mean(axis=0)
    mean[0] = 0.0
    scale = design.std(axis=0)
    scale[0] = 1.0
    scale = np.where(scale > 0.0, scale, 1.0)
    z = (design - mean) / scale
    z[:, 0] = 1.0
    y_imb = cols["final_imbalance"] / cols["adv"]
    y_move = cols["close_move"]
    coef_imb = _ridge(z, y_imb, ridge)
    coef_move = _ridge(z, y_move, ridge)
    t = tau / HORIZON_MINUTES
    return MocModel(
        mean=mean,
        scale=scale,
        coef_imbalance=coef_imb,
        coef_move=coef_move,
        resid_imbalance=_variance_line(y_imb - z @ coef_imb, t),
        resid_move=_variance_line(y_move - z @ coef_move, t),
        ridge=ridge,
        n_train=n,
    )


@dataclass(frozen=True, slots=True)
class MocProjection:
    """The projection at the latest row of a series.

    Attributes:
        symbol: the symbol projected (SPX uses SPY's auction fields).
        minutes_to_close: time to close of the latest row.
        imbalance_shares: projected final imbalance, signed shares (of the auction traded).
        side: ``buy``, ``sell`` or ``none``.
        imbalance_sigma_shares: residual standard deviation at this time to close.
        close_move: projected ``close / reference_price - 1``.
        close_move_sigma: its residual standard deviation.
        projected_close: ``reference_price * (1 + close_move)``.
        hit_probability: probability the side is right under the model.
        confidence: ``2 hit_probability - 1`` in [0, 1].
    """

    symbol: str
    minutes_to_close: float
    imbalance_shares: float
    side: Side
    imbalance_sigma_shares: float
    close_move: float
    close_move_sigma: float
    projected_close: float
    hit_probability: float
    confidence: float


def project_close(
    model: MocModel, series: AuctionSeries, adv: float, *, symbol: str, reference_price: float | None = None
) -> MocProjection:
    """Project the close from the latest row of ``series``.

    Args:
        model: a fitted (or restored) model.
        series: the symbol's (for SPX: SPY's) last-hour series so far.
        adv: ADV of the symbol whose auction fields ``series`` carries, > 0.
        symbol: what is projected (one of ``MOC_SYMBOLS`` or any other).
        reference_price: price the projected move applies to (default the series' last
            price; for SPX pass the index level).

    Raises:
        AnalyticsInputError: ``adv`` or ``reference_price`` not finite and > 0.
    """
    ref = float(series.last_price[-1]) if reference_price is None else reference_price
    if not (ref > 0.0 and math.isfinite(ref)):
        raise AnalyticsInputError("reference_price", f"must be finite and > 0, got {ref!r}")
    feats = moc_features(series, adv)[-1:]
    tau = series.minutes_to_close[-1:]
    p = model.predict(feats, tau)
    imb = float(p.imbalance_adv[0]) * adv
    move = float(p.move[0])
    side: Side = "buy" if imb > 0.0 else ("sell" if imb < 0.0 else "none")
    return MocProjection(
        symbol=symbol,
        minutes_to_close=float(tau[0]),
        imbalance_shares=imb,
        side=side,
        imbalance_sigma_shares=float(p.imbalance_sigma_adv[0]) * adv,
        close_move=move,
        close_move_sigma=float(p.move_sigma[0]),
        projected_close=ref * (1.0 + move),
        hit_probability=float(p.hit_probability[0]),
        confidence=float(p.confidence[0]),
    )


# --------------------------------------------------------------------------- backtest
@dataclass(frozen=True, slots=True)
class CalibrationBucket:
    """Rows whose confidence fell in ``[low, high)`` (the last bucket includes 1).

    Attributes:
        low: lower confidence edge.
        high: upper confidence edge.
        count: rows in the bucket.
        mean_confidence: their mean confidence.
        predicted_hit_rate: their mean hit probability.
        realised_hit_rate: the share whose projected side was right (NaN if empty).
    """

    low: float
    high: float
    count: int
    mean_confidence: float
    predicted_hit_rate: float
    realised_hit_rate: float


@dataclass(frozen=True, slots=True)
class MocBacktest:
    """Accuracy of a model on historic rows.

    Attributes:
        n: rows evaluated.
        direction_hit_rate: share of rows with a non-zero realised imbalance whose side was right.
        mae_imbalance_shares: mean absolute error of the final imbalance, shares.
        mae_imbalance_adv: the same in ADV units.
        mae_move: mean absolute error of the close move (return units).
        move_direction_hit_rate: share of rows with a non-zero move whose sign was right.
        calibration: hit rate against predicted hit probability per confidence bucket.
        calibration_error: count-weighted mean of ``|predicted - realised|`` hit rate.
    """

    n: int
    direction_hit_rate: float
    mae_imbalance_shares: float
    mae_imbalance_adv: float
    mae_move: float
    move_direction_hit_rate: float
    calibration: tuple[CalibrationBucket, ...]
    calibration_error: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for the accuracy log."""
        return {
            "n": self.n,
            "direction_hit_rate": self.direction_hit_rate,
            "mae_imbalance_shares": self.mae_imbalance_shares,
            "mae_imbalance_adv": self.mae_imbalance_adv,
            "mae_move": self.mae_move,
            "move_direction_hit_rate": self.move_direction_hit_rate,
            "calibration": [
                {
                    "low": b.low,
                    "high": b.high,
                    "count": b.count,
                    "mean_confidence": b.mean_confidence,
                    "predicted_hit_rate": b.predicted_hit_rate,
                    "realised_hit_rate": b.realised_hit_rate,
                }
                for b in self.calibration
            ],
            "calibration_error": self.calibration_error,
        }


def _rate(hits: NDArray[np.bool_]) -> float:
    return float(hits.mean()) if hits.size else math.nan


def backtest_moc(
    model: MocModel,
    features: ArrayLike,
    minutes_to_close: ArrayLike,
    adv: ArrayLike,
    realised_imbalance: ArrayLike,
    realised_move: ArrayLike,
    *,
    n_buckets: int = 5,
) -> MocBacktest:
    """Score ``model`` on historic (features, realised) rows.

    Args:
        model: the model to score (fit it on other days than these).
        features: (T, 8) rows of :func:`moc_features`.
        minutes_to_close: per row, time to close.
        adv: per row (or scalar), the ADV used for the features.
        realised_imbalance: per row, the final imbalance that day, signed shares.
        realised_move: per row, ``close / last - 1``.
        n_buckets: equal-width confidence buckets on [0, 1], >= 1.

    Raises:
        AnalyticsInputError: mismatched lengths, no rows, or bad values.
    """
    x, tau = _check_rows(features, minutes_to_close)
    if n_buckets < 1:
        raise AnalyticsInputError("n_buckets", f"must be >= 1, got {n_buckets!r}")
    n = x.shape[0]
    if n == 0:
        raise AnalyticsInputError("features", "needs at least one row")
    cols = _per_row(
        n,
        {
            "adv": (adv, _POSITIVE),
            "realised_imbalance": (realised_imbalance, _ANY),
            "realised_move": (realised_move, _ANY),
        },
    )
    p = model.predict(x, tau)
    pred_shares = p.imbalance_adv * cols["adv"]
    real = cols["realised_imbalance"]
    has_side = real != 0.0
    hits = np.sign(p.imbalance_adv) == np.sign(real)
    move = cols["realised_move"]
    has_move = move != 0.0

    edges = np.linspace(0.0, 1.0, n_buckets + 1)
    which = np.clip(np.searchsorted(edges, p.confidence, side="right") - 1, 0, n_buckets - 1)
    buckets = []
    gap = 0.0
    counted = 0
    for b in range(n_buckets):
        rows = (which == b) & has_side
        count = int(rows.sum())
        predicted = float(p.hit_probability[rows].mean()) if count else math.nan
        realised = _rate(hits[rows])
        if count:
            gap += count * abs(predicted - realised)
            counted += count
        buckets.append(
            CalibrationBucket(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=count,
                mean_confidence=float(p.confidence[rows].mean()) if count else math.nan,
                predicted_hit_rate=predicted,
                realised_hit_rate=realised,
            )
        )
    return MocBacktest(
        n=n,
        direction_hit_rate=_rate(hits[has_side]),
        mae_imbalance_shares=float(np.mean(np.abs(pred_shares - real))),
        mae_imbalance_adv=float(np.mean(np.abs(p.imbalance_adv - real / cols["adv"]))),
        mae_move=float(np.mean(np.abs(p.move - move))),
        move_direction_hit_rate=_rate((np.sign(p.move) == np.sign(move))[has_move]),
        calibration=tuple(buckets),
        calibration_error=gap / counted if counted else math.nan,
    )
