"""Market regime: a Gaussian Markov-switching model on returns plus a documented combination rule.

Two layers, both pure:

1. :func:`fit_markov_switching` fits a K-state (K = 2 or 3) Gaussian Markov-switching
   model (Hamilton 1989) to a one-dimensional series by EM (Baum-Welch; Dempster, Laird
   and Rubin 1977), from a deterministic start, and :meth:`MarkovSwitchingModel.filter`
   runs the Hamilton filter. States are ordered after fitting (by variance, or by mean for
   a level feature such as log realised volatility), so state 0 is always the calm one.
2. :func:`classify_regime` combines the filtered probability of the high-variance state
   with realised volatility on 5 s / 1 m / 5 m bars, breadth, the macro overlay score and
   implied-volatility spreads into one label (``calm_trend``, ``calm_range``,
   ``volatile_trend``, ``volatile_range``, ``stressed``) with a confidence in [0, 1].

The forward and backward recursions are numba loops (a Python loop per bar would cost
seconds per fit); everything else is numpy. Formulas, the rule and its thresholds:
docs/module3_formulas_part2.md, "Regime classifier".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._jit import kernel
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "REGIME_LABELS",
    "TRADING_SECONDS_PER_YEAR",
    "MarkovSwitchingModel",
    "RegimeFeatures",
    "RegimeLabel",
    "RegimeResult",
    "RegimeRules",
    "SwitchingFilter",
    "breadth_from_counts",
    "breadth_from_vwap",
    "classify_regime",
    "fit_markov_switching",
    "realized_vol",
]

RegimeLabel = Literal["calm_trend", "calm_range", "volatile_trend", "volatile_range", "stressed"]
REGIME_LABELS: tuple[RegimeLabel, ...] = ("calm_trend", "calm_range", "volatile_trend", "volatile_range", "stressed")
OrderBy = Literal["variance", "mean"]

TRADING_SECONDS_PER_YEAR = 252.0 * 6.5 * 3600.0  # regular-session seconds in a 252-day year
_LOG_2PI = math.log(2.0 * math.pi)
_FINITE = Bound()
_MIN_OBSERVATIONS = 20
_VAR_FLOOR = 1e-6  # times the sample variance: keeps EM away from a degenerate one-point state
_P_STAY = 0.95  # initial diagonal of the transition matrix
_SCHEMA = 1


def _vector(name: str, value: ArrayLike) -> NDArray[np.float64]:
    prepared = prepare_inputs({name: (value, _FINITE)}, {})
    if len(prepared.shape) != 1:
        raise AnalyticsInputError(name, f"must be one-dimensional, got shape {prepared.shape}")
    return prepared.floats[name]


def _check_unit(name: str, value: float, low: float = -1.0, high: float = 1.0) -> float:
    if math.isnan(value):
        return value
    if not low <= value <= high:
        raise AnalyticsInputError(name, f"must lie in [{low:g}, {high:g}] or be NaN, got {value!r}")
    return value


# --------------------------------------------------------------------------- simple features
def realized_vol(
    returns: ArrayLike, bar_seconds: float, *, seconds_per_year: float = TRADING_SECONDS_PER_YEAR
) -> float:
    """Annualised realised volatility of log returns on bars of ``bar_seconds``.

    ``sqrt(mean(r^2) * seconds_per_year / bar_seconds)`` (not demeaned: at intraday
    horizons the mean is noise; Andersen, Bollerslev, Diebold and Labys 2001).

    Args:
        returns: log returns of consecutive bars, oldest first (at least one).
        bar_seconds: bar length in seconds (5, 60, 300...), > 0.
        seconds_per_year: annualisation base (default: 252 sessions of 6.5 hours).

    Returns:
        the annualised volatility (0.20 = 20%).

    Raises:
        AnalyticsInputError: ``returns`` is empty or not finite, or a length is not positive.
    """
    r = _vector("returns", returns)
    if r.size == 0:
        raise AnalyticsInputError("returns", "needs at least one return")
    if not bar_seconds > 0.0 or not math.isfinite(bar_seconds):
        raise AnalyticsInputError("bar_seconds", f"must be finite and > 0, got {bar_seconds!r}")
    if not seconds_per_year > 0.0 or not math.isfinite(seconds_per_year):
        raise AnalyticsInputError("seconds_per_year", f"must be finite and > 0, got {seconds_per_year!r}")
    return math.sqrt(float(np.mean(r * r)) * seconds_per_year / bar_seconds)


def breadth_from_counts(advancers: int, decliners: int) -> float:
    """Breadth ``(A - D) / (A + D)`` in [-1, 1]; 0 when nothing moved.

    Raises:
        AnalyticsInputError: a count is negative.
    """
    for name, n in (("advancers", advancers), ("decliners", decliners)):
        if n < 0:
            raise AnalyticsInputError(name, f"must be >= 0, got {n!r}")
    total = advancers + decliners
    return 0.0 if total == 0 else (advancers - decliners) / total


def breadth_from_vwap(above: int, total: int) -> float:
    """Breadth from the watchlist: ``2 * above / total - 1`` in [-1, 1].

    Args:
        above: symbols trading above their session VWAP.
        total: symbols on the watchlist, > 0.

    Raises:
        AnalyticsInputError: ``total`` is not positive or ``above`` is outside [0, total].
    """
    if total <= 0:
        raise AnalyticsInputError("total", f"must be > 0, got {total!r}")
    if not 0 <= above <= total:
        raise AnalyticsInputError("above", f"must lie in [0, {total}], got {above!r}")
    return 2.0 * above / total - 1.0


# --------------------------------------------------------------------------- numba recursions
@kernel()
def _forward(
    log_b: NDArray[np.float64],
    trans: NDArray[np.float64],
    initial: NDArray[np.float64],
    filtered: NDArray[np.float64],
    predicted: NDArray[np.float64],
    scaled_b: NDArray[np.float64],
    scale: NDArray[np.float64],
) -> float:
    # Hamilton filter with Rabiner scaling: b~_t(j) = exp(log b_t(j) - m_t), c_t the normaliser.
    n, k = log_b.shape
    loglik = 0.0
    for t in range(n):
        m = log_b[t, 0]
        for j in range(1, k):
            m = max(m, log_b[t, j])
        c = 0.0
        for j in range(k):
            if t == 0:
                p = initial[j]
            else:
                p = 0.0
                for i in range(k):
                    p += filtered[t - 1, i] * trans[i, j]
            predicted[t, j] = p
            b = math.exp(log_b[t, j] - m)
            scaled_b[t, j] = b
            filtered[t, j] = p * b
            c += p * b
        if not c > 0.0:
            return -math.inf
        for j in range(k):
            filtered[t, j] /= c
        scale[t] = c
        loglik += math.log(c) + m
    return loglik


@kernel()
def _backward(
    trans: NDArray[np.float64],
    filtered: NDArray[np.float64],
    scaled_b: NDArray[np.float64],
    scale: NDArray[np.float64],
    smoothed: NDArray[np.float64],
    xi_sum: NDArray[np.float64],
) -> None:
    # Scaled backward variables (Baum-Welch): gamma_t = alpha^_t beta^_t, xi summed over t.
    n, k = filtered.shape
    beta = np.ones(k)
    nxt = np.empty(k)
    for i in range(k):
        smoothed[n - 1, i] = filtered[n - 1, i]
        for j in range(k):
            xi_sum[i, j] = 0.0
    for t in range(n - 2, -1, -1):
        for j in range(k):
            nxt[j] = scaled_b[t + 1, j] * beta[j] / scale[t + 1]
        for i in range(k):
            acc = 0.0
            for j in range(k):
                w = trans[i, j] * nxt[j]
                xi_sum[i, j] += filtered[t, i] * w
                acc += w
            beta[i] = acc
        total = 0.0
        for i in range(k):
            smoothed[t, i] = filtered[t, i] * beta[i]
            total += smoothed[t, i]
        for i in range(k):
            smoothed[t, i] /= total  # == 1 up to rounding; keeps rows on the simplex


def _log_density(x: NDArray[np.float64], means: NDArray[np.float64], variances: NDArray[np.float64]) -> Any:
    d = x[:, None] - means[None, :]
    return -0.5 * (_LOG_2PI + np.log(variances)[None, :] + d * d / variances[None, :])


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True, slots=True)
class SwitchingFilter:
    """Hamilton-filter output on one series.

    Attributes:
        filtered: ``P(s_t = j | x_1..x_t)``, shape (T, K).
        predicted: ``P(s_t = j | x_1..x_{t-1})``, shape (T, K).
        log_likelihood: ``ln L`` of the series under the model.
    """

    filtered: NDArray[np.float64]
    predicted: NDArray[np.float64]
    log_likelihood: float


def _check_probabilities(
    variances: NDArray[np.float64], transition: NDArray[np.float64], initial: NDArray[np.float64]
) -> None:
    if not np.all(variances > 0.0):
        raise AnalyticsInputError("variances", "must be > 0")
    for name, rows in (("transition", transition), ("initial", initial[None, :])):
        if np.any(rows < 0.0) or not np.allclose(rows.sum(axis=1), 1.0, atol=1e-9):
            raise AnalyticsInputError(name, "rows must be probabilities summing to 1")


@dataclass(frozen=True, slots=True, eq=False)
class MarkovSwitchingModel:
    """A fitted K-state Gaussian Markov-switching model ``x_t | s_t = j ~ N(mu_j, sigma_j^2)``.

    States are ordered by ``order_by`` (ascending), so state 0 is the calm one. Arrays are
    read-only. :meth:`to_dict` / :meth:`from_dict` persist it as plain JSON types.

    Attributes:
        means: ``mu_j``, shape (K,).
        variances: ``sigma_j^2``, shape (K,).
        transition: ``P[i, j] = P(s_t = j | s_{t-1} = i)``, rows sum to 1, shape (K, K).
        initial: ``P(s_1 = j)`` estimated for the start of the fitted sample, shape (K,).
        order_by: ``"variance"`` (a return feature) or ``"mean"`` (a level feature).
        log_likelihood: ``ln L`` of the fitted sample at these parameters.
        iterations: EM iterations (M-steps) taken.
        converged: the relative log-likelihood gain fell below the tolerance.
        n_observations: length of the fitted sample.
        log_likelihood_trace: ``ln L`` after each E-step, first at the initial parameters.
    """

    means: NDArray[np.float64]
    variances: NDArray[np.float64]
    transition: NDArray[np.float64]
    initial: NDArray[np.float64]
    order_by: OrderBy = "variance"
    log_likelihood: float = math.nan
    iterations: int = 0
    converged: bool = False
    n_observations: int = 0
    log_likelihood_trace: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("means", "variances", "transition", "initial"):
            try:
                value = np.array(getattr(self, name), dtype=np.float64)  # a private, read-only copy
            except (TypeError, ValueError) as exc:
                raise AnalyticsInputError(name, f"not convertible to float64 ({exc})") from None
            if not np.all(np.isfinite(value)):
                raise AnalyticsInputError(name, "must be finite")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        k = self.means.shape[0] if self.means.ndim == 1 else 0
        if k not in (2, 3):
            raise AnalyticsInputError("means", f"must hold 2 or 3 states, got shape {self.means.shape}")
        for name, shape in {"variances": (k,), "transition": (k, k), "initial": (k,)}.items():
            if getattr(self, name).shape != shape:
                raise AnalyticsInputError(name, f"must have shape {shape}, got {getattr(self, name).shape}")
        _check_probabilities(self.variances, self.transition, self.initial)
        if self.order_by not in ("variance", "mean"):
            raise AnalyticsInputError("order_by", f"must be 'variance' or 'mean', got {self.order_by!r}")

    @property
    def n_states(self) -> int:
        """K, the number of states."""
        return int(self.means.shape[0])

    def stationary(self) -> NDArray[np.float64]:
        """The ergodic distribution ``pi = pi P`` (least squares if P is reducible)."""
        k = self.n_states
        a = np.vstack([self.transition.T - np.eye(k), np.ones((1, k))])
        b = np.zeros(k + 1)
        b[-1] = 1.0
        pi = np.linalg.lstsq(a, b, rcond=None)[0]
        pi = np.clip(pi, 0.0, None)
        return np.asarray(pi / pi.sum(), dtype=np.float64)

    def expected_durations(self) -> NDArray[np.float64]:
        """Expected stay in each state, ``1 / (1 - P[j, j])`` observations."""
        stay = np.diag(self.transition)
        with np.errstate(divide="ignore"):
            return np.asarray(1.0 / (1.0 - stay), dtype=np.float64)

    def filter(self, x: ArrayLike, *, initial: ArrayLike | None = None) -> SwitchingFilter:
        """Run the Hamilton filter on ``x``.

        Args:
            x: the feature series, oldest first (at least one observation).
            initial: state probabilities before the first observation; default the
                stationary distribution (right for a window cut from a long history).

        Raises:
            AnalyticsInputError: ``x`` is empty or not finite; ``initial`` is not a
                probability vector of K entries.
        """
        xs = _vector("x", x)
        if xs.size == 0:
            raise AnalyticsInputError("x", "needs at least one observation")
        if initial is None:
            start = self.stationary()
        else:
            start = _vector("initial", initial)
            if start.shape != (self.n_states,) or np.any(start < 0.0) or not math.isclose(start.sum(), 1.0):
                raise AnalyticsInputError("initial", f"must be {self.n_states} probabilities summing to 1")
        out = _run_forward(xs, self.means, self.variances, self.transition, start)
        return SwitchingFilter(filtered=out[0], predicted=out[1], log_likelihood=out[4])

    def smooth(self, x: ArrayLike) -> NDArray[np.float64]:
        """Smoothed probabilities ``P(s_t = j | x_1..x_T)`` from the fitted ``initial``, shape (T, K).

        Raises:
            AnalyticsInputError: ``x`` is empty or not finite.
        """
        xs = _vector("x", x)
        if xs.size == 0:
            raise AnalyticsInputError("x", "needs at least one observation")
        smoothed, _, _ = _e_step(xs, self.means, self.variances, self.transition, self.initial)
        return smoothed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; :meth:`from_dict` restores an equal model."""
        return {
            "schema": _SCHEMA,
            "means": self.means.tolist(),
            "variances": self.variances.tolist(),
            "transition": self.transition.tolist(),
            "initial": self.initial.tolist(),
            "order_by": self.order_by,
            "log_likelihood": self.log_likelihood,
            "iterations": self.iterations,
            "converged": self.converged,
            "n_observations": self.n_observations,
            "log_likelihood_trace": list(self.log_likelihood_trace),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkovSwitchingModel:
        """Restore a model written by :meth:`to_dict`.

        Raises:
            AnalyticsInputError: a key is missing, the schema is unknown or a value is invalid.
        """
        if data.get("schema") != _SCHEMA:
            raise AnalyticsInputError("data", f"unknown schema {data.get('schema')!r} (expected {_SCHEMA})")
        try:
            return cls(
                means=np.array(data["means"], dtype=np.float64),
                variances=np.array(data["variances"], dtype=np.float64),
                transition=np.array(data["transition"], dtype=np.float64),
                initial=np.array(data["initial"], dtype=np.float64),
                order_by=data["order_by"],
                log_likelihood=float(data["log_likelihood"]),
                iterations=int(data["iterations"]),
                converged=bool(data["converged"]),
                n_observations=int(data["n_observations"]),
                log_likelihood_trace=tuple(float(v) for v in data["log_likelihood_trace"]),
            )
        except KeyError as exc:
            raise AnalyticsInputError("data", f"missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise AnalyticsInputError("data", f"malformed value ({exc})") from None


def _run_forward(
    x: NDArray[np.float64],
    means: NDArray[np.float64],
    variances: NDArray[np.float64],
    trans: NDArray[np.float64],
    initial: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    n, k = x.size, means.size
    log_b = np.ascontiguousarray(_log_density(x, means, variances))
    filtered = np.empty((n, k))
    predicted = np.empty((n, k))
    scaled_b = np.empty((n, k))
    scale = np.empty(n)
    loglik = _forward(
        log_b, np.ascontiguousarray(trans), np.ascontiguousarray(initial), filtered, predicted, scaled_b, scale
    )
    if not math.isfinite(loglik):
        raise AnalyticsInputError("x", "has zero likelihood under the model (a state with no support)")
    return filtered, predicted, scaled_b, scale, loglik


def _e_step(
    x: NDArray[np.float64],
    means: NDArray[np.float64],
    variances: NDArray[np.float64],
    trans: NDArray[np.float64],
    initial: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    filtered, _, scaled_b, scale, loglik = _run_forward(x, means, variances, trans, initial)
    smoothed = np.empty_like(filtered)
    xi_sum = np.empty((means.size, means.size))
    _backward(np.ascontiguousarray(trans), filtered, scaled_b, scale, smoothed, xi_sum)
    return smoothed, xi_sum, loglik


def _rolling_mean(v: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    kernel_ = np.ones(window) / window
    padded = np.pad(v, (window // 2, window - 1 - window // 2), mode="edge")
    return np.asarray(np.convolve(padded, kernel_, mode="valid"), dtype=np.float64)


def _initial_parameters(
    x: NDArray[np.float64], k: int, order_by: OrderBy, floor: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    # Deterministic start: rank the bars by a local statistic (centred rolling mean of the
    # squared deviation from the median, or of the level), cut the ranking into K equal
    # groups and take each group's sample mean and variance. Using a local statistic rather
    # than x itself puts whole episodes, not single outliers, into the high state.
    window = max(5, x.size // 50)
    local = _rolling_mean((x - np.median(x)) ** 2 if order_by == "variance" else x, window)
    groups = np.array_split(np.argsort(local, kind="stable"), k)
    means = np.array([x[g].mean() for g in groups])
    variances = np.maximum(np.array([x[g].var() for g in groups]), floor)
    trans = np.full((k, k), (1.0 - _P_STAY) / (k - 1))
    np.fill_diagonal(trans, _P_STAY)
    return means, variances, trans, np.full(k, 1.0 / k)


def _check_fit_arguments(xs: NDArray[np.float64], n_states: int, order_by: str, max_iter: int, tol: float) -> None:
    if n_states not in (2, 3):
        raise AnalyticsInputError("n_states", f"must be 2 or 3, got {n_states!r}")
    if order_by not in ("variance", "mean"):
        raise AnalyticsInputError("order_by", f"must be 'variance' or 'mean', got {order_by!r}")
    if xs.size < _MIN_OBSERVATIONS:
        raise AnalyticsInputError("x", f"needs at least {_MIN_OBSERVATIONS} observations, got {xs.size}")
    if max_iter < 1:
        raise AnalyticsInputError("max_iter", f"must be >= 1, got {max_iter!r}")
    if not (tol > 0.0 and math.isfinite(tol)):
        raise AnalyticsInputError("tol", f"must be finite and > 0, got {tol!r}")
    if not float(xs.var()) > 0.0:
        raise AnalyticsInputError("x", "is constant; a switching model needs variation")


def fit_markov_switching(
    x: ArrayLike,
    n_states: int = 2,
    *,
    order_by: OrderBy = "variance",
    max_iter: int = 500,
    tol: float = 1e-8,
    start: MarkovSwitchingModel | None = None,
) -> MarkovSwitchingModel:
    """Fit a Gaussian Markov-switching model by EM (Baum-Welch).

    Args:
        x: the feature series, oldest first: log returns (``order_by="variance"``) or a
            level such as log realised volatility (``order_by="mean"``); at least 20 values.
        n_states: K, 2 or 3.
        order_by: how states are ordered after the fit (ascending), and how the
            deterministic start is built.
        max_iter: the most EM iterations, >= 1.
        tol: stop when the log-likelihood gain is at most ``tol * max(1, |ln L|)``, > 0.
        start: a previous fit to start from (warm start) instead of the deterministic start.

    Returns:
        the fitted model, with the log-likelihood after every E-step.

    Raises:
        AnalyticsInputError: ``x`` is too short, not finite or constant; another argument
            is out of its domain; ``start`` has another number of states.
    """
    xs = _vector("x", x)
    _check_fit_arguments(xs, n_states, order_by, max_iter, tol)
    floor = _VAR_FLOOR * float(xs.var())

    if start is None:
        means, variances, trans, initial = _initial_parameters(xs, n_states, order_by, floor)
    elif start.n_states != n_states:
        raise AnalyticsInputError("start", f"has {start.n_states} states, n_states is {n_states}")
    else:
        means, variances = start.means.copy(), np.maximum(start.variances, floor)
        trans, initial = start.transition.copy(), start.initial.copy()

    smoothed, xi_sum, loglik = _e_step(xs, means, variances, trans, initial)
    trace = [loglik]
    converged = False
    iterations = 0
    for _ in range(max_iter):
        # M-step: closed-form maximisers of the expected complete-data log-likelihood.
        weight = smoothed.sum(axis=0)
        means = (smoothed * xs[:, None]).sum(axis=0) / weight
        dev = xs[:, None] - means[None, :]
        variances = np.maximum((smoothed * dev * dev).sum(axis=0) / weight, floor)
        trans = xi_sum / xi_sum.sum(axis=1, keepdims=True)
        initial = smoothed[0].copy()
        iterations += 1
        smoothed, xi_sum, new_loglik = _e_step(xs, means, variances, trans, initial)
        trace.append(new_loglik)
        gain = new_loglik - loglik
        loglik = new_loglik
        if gain <= tol * max(1.0, abs(loglik)):
            converged = True
            break

    order = np.argsort(variances if order_by == "variance" else means, kind="stable")
    return MarkovSwitchingModel(
        means=means[order],
        variances=variances[order],
        transition=trans[np.ix_(order, order)],
        initial=initial[order],
        order_by=order_by,
        log_likelihood=loglik,
        iterations=iterations,
        converged=converged,
        n_observations=int(xs.size),
        log_likelihood_trace=tuple(trace),
    )


# --------------------------------------------------------------------------- the regime rule
@dataclass(frozen=True, slots=True)
class RegimeFeatures:
    """Non-return inputs of the regime rule; NaN means "not available" (the component drops out).

    Attributes:
        rv_5s: annualised realised volatility on 5 s bars (:func:`realized_vol`).
        rv_1m: the same on 1 m bars.
        rv_5m: the same on 5 m bars.
        breadth: in [-1, 1] (:func:`breadth_from_counts` or :func:`breadth_from_vwap`).
        macro_score: the macro overlay's composite risk score in [-1, 1] (+1 = most risk).
        front_iv: front-expiry at-the-money implied volatility (0.20 = 20%).
        iv_0dte: same-day-expiry at-the-money implied volatility.
        iv_30d: 30-day at-the-money implied volatility.
    """

    rv_5s: float = math.nan
    rv_1m: float = math.nan
    rv_5m: float = math.nan
    breadth: float = math.nan
    macro_score: float = math.nan
    front_iv: float = math.nan
    iv_0dte: float = math.nan
    iv_30d: float = math.nan

    def __post_init__(self) -> None:
        for name in ("rv_5s", "rv_1m", "rv_5m", "front_iv", "iv_0dte", "iv_30d"):
            value = getattr(self, name)
            if not (math.isnan(value) or (0.0 <= value < math.inf)):
                raise AnalyticsInputError(name, f"must be finite and >= 0, or NaN; got {value!r}")
        _check_unit("breadth", self.breadth)
        _check_unit("macro_score", self.macro_score)

    def reference_rv(self) -> float:
        """Median of the available realised volatilities (NaN if none)."""
        values = [v for v in (self.rv_5s, self.rv_1m, self.rv_5m) if not math.isnan(v)]
        return float(np.median(values)) if values else math.nan


@dataclass(frozen=True, slots=True)
class RegimeRules:
    """Thresholds and weights of the combination rule (docs/module3_formulas_part2.md).

    Stress components, each in [0, 1], are weighted and summed (a missing input scores 0):
    the high-variance state's filtered probability; the reference realised volatility
    between ``rv_calm`` and ``rv_stress``; term-structure inversion ``iv_0dte - iv_30d``
    up to ``inversion_full``; realised over implied ``rv - front_iv`` up to
    ``iv_rv_full``; the positive part of the macro score; breadth below
    ``-breadth_start`` down to ``-breadth_full``.
    """

    w_state: float = 0.35
    w_rv: float = 0.15
    w_term: float = 0.15
    w_iv_rv: float = 0.10
    w_macro: float = 0.10
    w_breadth: float = 0.15
    rv_calm: float = 0.25
    rv_stress: float = 0.60
    inversion_full: float = 0.05
    iv_rv_full: float = 0.05
    breadth_start: float = 0.2
    breadth_full: float = 0.8
    stress_threshold: float = 0.5
    trend_t: float = 2.0
    trend_window: int = 30
    breadth_confirm: float = 0.5

    def __post_init__(self) -> None:
        weights = (self.w_state, self.w_rv, self.w_term, self.w_iv_rv, self.w_macro, self.w_breadth)
        if any(not (w >= 0.0 and math.isfinite(w)) for w in weights) or not math.isclose(sum(weights), 1.0):
            raise AnalyticsInputError("rules", "stress weights must be >= 0 and sum to 1")
        if not (0.0 <= self.rv_calm < self.rv_stress and self.inversion_full > 0.0 and self.iv_rv_full > 0.0):
            raise AnalyticsInputError("rules", "need 0 <= rv_calm < rv_stress and positive full-scale spreads")
        if not (0.0 <= self.breadth_start < self.breadth_full <= 1.0):
            raise AnalyticsInputError("rules", "need 0 <= breadth_start < breadth_full <= 1")
        if not (0.0 < self.stress_threshold <= 1.0 and self.trend_t > 0.0 and self.trend_window >= 2):
            raise AnalyticsInputError("rules", "need stress_threshold in (0, 1], trend_t > 0, trend_window >= 2")


@dataclass(frozen=True, slots=True)
class RegimeResult:
    """One classification.

    Attributes:
        label: one of ``REGIME_LABELS``.
        confidence: in [0, 1] (see the rule in the module docs).
        probabilities: filtered state probabilities at the last bar (state 0 calm).
        stress_score: the weighted stress score in [0, 1].
        stress_components: each component's score in [0, 1] before weighting.
        features: every number the rule used, by name (NaN where not available).
        model: the switching model the probabilities come from (persist it).
        changed_from: the previous label when it differs from ``label``, else None.
    """

    label: RegimeLabel
    confidence: float
    probabilities: tuple[float, ...]
    stress_score: float
    stress_components: Mapping[str, float]
    features: Mapping[str, float]
    model: MarkovSwitchingModel
    changed_from: RegimeLabel | None = None

    @property
    def changed(self) -> bool:
        """True when this result starts a new regime."""
        return self.changed_from is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (NaN stays a float NaN), the model included."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": list(self.probabilities),
            "stress_score": self.stress_score,
            "stress_components": dict(self.stress_components),
            "features": dict(self.features),
            "model": self.model.to_dict(),
            "changed_from": self.changed_from,
        }


def _ramp(value: float, start: float, full: float) -> float:
    """0 at or below ``start``, 1 at or above ``full``, linear between; NaN scores 0."""
    if math.isnan(value):
        return 0.0
    return min(max((value - start) / (full - start), 0.0), 1.0)


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def classify_regime(
    returns: ArrayLike,
    features: RegimeFeatures | None = None,
    *,
    model: MarkovSwitchingModel | None = None,
    n_states: int = 2,
    previous_label: RegimeLabel | None = None,
    rules: RegimeRules | None = None,
) -> RegimeResult:
    """Classify the current regime.

    Args:
        returns: log returns on 1 m bars (or the bar the model was fitted on), oldest first;
            the last value is "now".
        features: realised volatilities, breadth, macro score and implied volatilities.
        model: a fitted model (variance-ordered) to filter ``returns`` with; None fits one
            on ``returns`` (at least 20 values).
        n_states: K when fitting here.
        previous_label: the last published label, for ``changed_from``.
        rules: thresholds and weights (``RegimeRules()`` by default).

    Returns:
        the label, its confidence, the probabilities, the features used and the model.

    Raises:
        AnalyticsInputError: bad returns or features; ``model`` is ordered by mean;
            ``previous_label`` is not a label.
    """
    feats = features if features is not None else RegimeFeatures()
    rule = rules if rules is not None else RegimeRules()
    if previous_label is not None and previous_label not in REGIME_LABELS:
        raise AnalyticsInputError("previous_label", f"must be one of {', '.join(REGIME_LABELS)}")
    r = _vector("returns", returns)
    if r.size == 0:
        raise AnalyticsInputError("returns", "needs at least one return")
    if model is None:
        model = fit_markov_switching(r, n_states)
    elif model.order_by != "variance":
        raise AnalyticsInputError("model", "must be fitted on returns with order_by='variance'")
    probs = model.filter(r).filtered[-1]
    p_calm, p_high = float(probs[0]), float(probs[-1])

    recent = r[-rule.trend_window :]
    sd = float(recent.std(ddof=1)) if recent.size >= 2 else 0.0
    trend_t = float(recent.mean() * math.sqrt(recent.size) / sd) if sd > 0.0 else 0.0

    rv = feats.reference_rv()
    term_inversion = feats.iv_0dte - feats.iv_30d  # > 0: same-day options priced above the month
    rv_over_iv = rv - feats.front_iv  # > 0: the market moves more than options price
    components = {
        "state": p_high,
        "realized_vol": _ramp(rv, rule.rv_calm, rule.rv_stress),
        "term_inversion": _ramp(term_inversion, 0.0, rule.inversion_full),
        "rv_over_iv": _ramp(rv_over_iv, 0.0, rule.iv_rv_full),
        "macro": _ramp(feats.macro_score, 0.0, 1.0),
        "breadth": _ramp(-feats.breadth, rule.breadth_start, rule.breadth_full),
    }
    weights = {
        "state": rule.w_state,
        "realized_vol": rule.w_rv,
        "term_inversion": rule.w_term,
        "rv_over_iv": rule.w_iv_rv,
        "macro": rule.w_macro,
        "breadth": rule.w_breadth,
    }
    stress = min(sum(weights[n] * c for n, c in components.items()), 1.0)

    # Breadth on the side of the drift adds one unit of t: a broad move is a trend sooner.
    confirms = not math.isnan(feats.breadth) and abs(feats.breadth) >= rule.breadth_confirm
    confirms = confirms and feats.breadth * trend_t > 0.0
    trend_strength = abs(trend_t) + (1.0 if confirms else 0.0)
    trending = trend_strength >= rule.trend_t

    label: RegimeLabel
    if stress >= rule.stress_threshold:
        label = "stressed"
        confidence = stress
    else:
        calm = p_calm >= 0.5
        label = ("calm_" if calm else "volatile_") + ("trend" if trending else "range")  # type: ignore[assignment]
        p_class = p_calm if calm else 1.0 - p_calm
        confidence = p_class * _normal_cdf(abs(trend_strength - rule.trend_t))

    used = {
        "rv_5s": feats.rv_5s,
        "rv_1m": feats.rv_1m,
        "rv_5m": feats.rv_5m,
        "rv_reference": rv,
        "breadth": feats.breadth,
        "macro_score": feats.macro_score,
        "front_iv": feats.front_iv,
        "iv_0dte": feats.iv_0dte,
        "iv_30d": feats.iv_30d,
        "term_slope": feats.iv_30d - feats.iv_0dte,
        "front_iv_minus_rv": feats.front_iv - rv,
        "trend_t": trend_t,
        "trend_strength": trend_strength,
        "last_return": float(r[-1]),
        "n_returns": float(r.size),
    }
    return RegimeResult(
        label=label,
        confidence=float(min(max(confidence, 0.0), 1.0)),
        probabilities=tuple(float(p) for p in probs),
        stress_score=float(stress),
        stress_components=components,
        features=used,
        model=model,
        changed_from=previous_label if previous_label is not None and previous_label != label else None,
    )
