"""Risk attribution: PCA factors, portfolio factor exposures, betas and a VaR decomposition.

For each return window (5 m and 60 m bars in production; any name works) the kernel
estimates a covariance matrix (sample, or RiskMetrics EWMA with lambda = 0.94), takes its
eigen decomposition (of the covariance, or of the correlation matrix), and reports:

* eigenvalues, explained variance, loadings with a fixed sign convention (each
  eigenvector's entries sum to a positive number, so the first factor is "the market"
  with positive loadings), factor return series, and per-asset idiosyncratic variance
  (the variance the retained factors leave);
* the portfolio's factor exposures and the exact split of its variance into the factors'
  contributions plus a residual;
* betas to a benchmark (SPY) and the portfolio's beta-weighted exposure;
* delta-normal VaR with marginal and component (Euler) contributions that add up to it.

Weights are dollar exposures per underlying (the sum of delta x spot x multiplier x
quantity of its positions), so variances are in dollars squared per bar and VaR is in
dollars over ``horizon`` bars; fractional weights give fractional VaR. The flat
:meth:`RiskAttribution.to_table` feeds the daily Parquet snapshot the agent writes.

Formulas and sources: docs/module3_formulas_part2.md, "Risk attribution".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "RISKMETRICS_LAMBDA",
    "CovarianceMethod",
    "PCAResult",
    "PortfolioExposure",
    "RiskAttribution",
    "VaRDecomposition",
    "WindowAttribution",
    "betas",
    "estimate_covariance",
    "ewma_covariance",
    "factor_exposures",
    "pca_factors",
    "risk_attribution",
    "var_decomposition",
]

CovarianceMethod = Literal["sample", "ewma"]
RISKMETRICS_LAMBDA = 0.94  # RiskMetrics (1996) daily decay factor
TableRow = dict[str, str | float]
_FINITE = Bound()


def _array(name: str, value: ArrayLike, ndim: int) -> NDArray[np.float64]:
    prepared = prepare_inputs({name: (value, _FINITE)}, {})
    if len(prepared.shape) != ndim:
        raise AnalyticsInputError(name, f"must be {ndim}-dimensional, got shape {prepared.shape}")
    return prepared.floats[name].reshape(prepared.shape)


def _returns(name: str, value: ArrayLike, min_rows: int = 2) -> NDArray[np.float64]:
    r = _array(name, value, 2)
    if r.shape[0] < min_rows or r.shape[1] < 1:
        raise AnalyticsInputError(name, f"needs at least {min_rows} rows (bars) and 1 column, got shape {r.shape}")
    return r


def _check_lambda(lam: float) -> None:
    if not 0.0 < lam < 1.0:
        raise AnalyticsInputError("lam", f"must lie in (0, 1), got {lam!r}")


# --------------------------------------------------------------------------- covariance
def ewma_covariance(returns: ArrayLike, lam: float = RISKMETRICS_LAMBDA) -> NDArray[np.float64]:
    """RiskMetrics exponentially weighted covariance (zero mean), weights normalised to 1.

    ``Sigma = sum_s w_s r_s r_s'`` with ``w_s = (1 - lam) lam^(T-1-s) / (1 - lam^T)`` for
    rows ``s = 0..T-1`` (oldest first); the recursion ``Sigma_t = lam Sigma_{t-1} +
    (1 - lam) r_t r_t'`` with the finite-sample normalisation.

    Args:
        returns: T x N returns, oldest first, T >= 1.
        lam: decay factor in (0, 1).

    Raises:
        AnalyticsInputError: bad returns or ``lam``.
    """
    r = _returns("returns", returns, min_rows=1)
    _check_lambda(lam)
    t = r.shape[0]
    w = (1.0 - lam) * lam ** np.arange(t - 1, -1, -1, dtype=np.float64) / (1.0 - lam**t)
    return np.asarray((r * w[:, None]).T @ r, dtype=np.float64)


def estimate_covariance(
    returns: ArrayLike, method: CovarianceMethod = "sample", lam: float = RISKMETRICS_LAMBDA
) -> NDArray[np.float64]:
    """Sample covariance (demeaned, ``ddof=1``) or :func:`ewma_covariance`.

    Raises:
        AnalyticsInputError: bad returns, method or ``lam``.
    """
    if method == "ewma":
        return ewma_covariance(returns, lam)
    if method != "sample":
        raise AnalyticsInputError("method", f"must be 'sample' or 'ewma', got {method!r}")
    r = _returns("returns", returns)
    return np.atleast_2d(np.cov(r, rowvar=False, ddof=1)).astype(np.float64)


def betas(covariance: ArrayLike, benchmark_index: int) -> NDArray[np.float64]:
    """``beta_i = Sigma[i, b] / Sigma[b, b]`` for every asset against column ``b``.

    Raises:
        AnalyticsInputError: the covariance is not square, the index is out of range,
            or the benchmark has zero variance.
    """
    cov = _square(covariance)
    if not 0 <= benchmark_index < cov.shape[0]:
        raise AnalyticsInputError("benchmark_index", f"must lie in [0, {cov.shape[0]}), got {benchmark_index!r}")
    var_b = cov[benchmark_index, benchmark_index]
    if not var_b > 0.0:
        raise AnalyticsInputError("benchmark_index", "the benchmark has zero variance")
    return np.asarray(cov[:, benchmark_index] / var_b, dtype=np.float64)


def _square(covariance: ArrayLike) -> NDArray[np.float64]:
    cov = _array("covariance", covariance, 2)
    if cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise AnalyticsInputError("covariance", f"must be square and non-empty, got shape {cov.shape}")
    return cov


# --------------------------------------------------------------------------- PCA
@dataclass(frozen=True, slots=True, eq=False)
class PCAResult:
    """Eigen decomposition of a covariance (or correlation) matrix, largest first.

    Attributes:
        symbols: asset names, one per column.
        use_correlation: True if the correlation matrix was decomposed.
        covariance: the covariance matrix the decomposition came from (N x N).
        scale: per asset, the standard deviation used to standardise (1.0 without correlation).
        eigenvalues: all N eigenvalues, descending, >= 0.
        explained_variance_ratio: eigenvalues over their sum.
        eigenvectors: all N unit eigenvectors as columns (N x N), sign convention applied.
        n_factors: K, the retained factors (``loadings`` are the first K eigenvectors).
        factor_returns: T x K factor series: standardised demeaned returns times ``loadings``.
        idiosyncratic_variance: per asset, the variance the K factors leave (return units^2).
    """

    symbols: tuple[str, ...]
    use_correlation: bool
    covariance: NDArray[np.float64]
    scale: NDArray[np.float64]
    eigenvalues: NDArray[np.float64]
    explained_variance_ratio: NDArray[np.float64]
    eigenvectors: NDArray[np.float64]
    n_factors: int
    factor_returns: NDArray[np.float64]
    idiosyncratic_variance: NDArray[np.float64]

    @property
    def loadings(self) -> NDArray[np.float64]:
        """The first K eigenvectors as columns (N x K)."""
        return self.eigenvectors[:, : self.n_factors]

    @property
    def factor_names(self) -> tuple[str, ...]:
        """``pc1``, ``pc2``..."""
        return tuple(f"pc{k + 1}" for k in range(self.n_factors))


def _orient(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    # Eigenvectors are defined up to sign; fix it so that a rerun on new data keeps the
    # meaning of each factor: entries sum to > 0, else the largest |entry| is positive.
    out = vectors.copy()
    for k in range(out.shape[1]):
        v = out[:, k]
        total = float(v.sum())
        pivot = float(v[int(np.argmax(np.abs(v)))])
        if total < -1e-12 * float(np.abs(v).max()) or (abs(total) <= 1e-12 * float(np.abs(v).max()) and pivot < 0.0):
            out[:, k] = -v
    return out


def _symbols(symbols: Sequence[str] | None, n: int) -> tuple[str, ...]:
    names = tuple(symbols) if symbols is not None else tuple(f"asset{i}" for i in range(n))
    if len(names) != n or len(set(names)) != n:
        raise AnalyticsInputError("symbols", f"must be {n} unique names (one per column), got {len(names)}")
    return names


def pca_factors(
    returns: ArrayLike,
    *,
    symbols: Sequence[str] | None = None,
    n_factors: int = 3,
    use_correlation: bool = False,
    method: CovarianceMethod = "sample",
    lam: float = RISKMETRICS_LAMBDA,
) -> PCAResult:
    """Principal components of a T x N return window.

    Args:
        returns: T x N returns (bars x assets), oldest first, T >= 2.
        symbols: N unique asset names (default ``asset0``...).
        n_factors: K factors to retain, capped at N, >= 1.
        use_correlation: decompose the correlation matrix (assets on equal footing)
            instead of the covariance (dominated by the most volatile assets).
        method: ``sample`` or ``ewma`` covariance.
        lam: the EWMA decay.

    Returns:
        eigenvalues, loadings, factor returns and idiosyncratic variances.

    Raises:
        AnalyticsInputError: bad returns, a zero-variance asset with ``use_correlation``,
            or another argument out of its domain.
    """
    r = _returns("returns", returns)
    names = _symbols(symbols, r.shape[1])
    if n_factors < 1:
        raise AnalyticsInputError("n_factors", f"must be >= 1, got {n_factors!r}")
    cov = estimate_covariance(r, method, lam)
    n = cov.shape[0]
    k = min(n_factors, n)
    scale = np.sqrt(np.diag(cov)) if use_correlation else np.ones(n)
    if use_correlation and not np.all(scale > 0.0):
        raise AnalyticsInputError("returns", f"column {int(np.argmin(scale))} has zero variance (correlation PCA)")
    m = cov / np.outer(scale, scale)
    values, vectors = np.linalg.eigh(m)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    vectors = _orient(vectors[:, order])
    total = float(values.sum())
    ratio = values / total if total > 0.0 else np.zeros(n)
    # Residual diagonal = sum over the dropped components of lambda_j v_ij^2: exact and >= 0.
    idio = (vectors[:, k:] ** 2 @ values[k:]) * scale**2
    z = (r - r.mean(axis=0)) / scale
    return PCAResult(
        symbols=names,
        use_correlation=use_correlation,
        covariance=cov,
        scale=scale,
        eigenvalues=values,
        explained_variance_ratio=ratio,
        eigenvectors=vectors,
        n_factors=k,
        factor_returns=z @ vectors[:, :k],
        idiosyncratic_variance=idio,
    )


@dataclass(frozen=True, slots=True, eq=False)
class PortfolioExposure:
    """The portfolio on the PCA factors.

    ``total_variance == factor_variance.sum() + residual_variance`` exactly (up to rounding).

    Attributes:
        factor_exposures: ``e = V_K' (w * scale)``, one per factor.
        factor_variance: ``e_k^2 lambda_k``, each factor's share of the variance.
        residual_variance: ``w~' (M - V_K Lambda_K V_K') w~``, what the factors leave.
        total_variance: ``w' Sigma w``.
    """

    factor_exposures: NDArray[np.float64]
    factor_variance: NDArray[np.float64]
    residual_variance: float
    total_variance: float

    @property
    def systematic_share(self) -> float:
        """Factor variance over total variance (NaN for a flat book)."""
        return float(self.factor_variance.sum() / self.total_variance) if self.total_variance > 0.0 else math.nan


def _weights(weights: ArrayLike, n: int) -> NDArray[np.float64]:
    w = _array("weights", weights, 1)
    if w.shape[0] != n:
        raise AnalyticsInputError("weights", f"must have {n} entries (one per asset), got {w.shape[0]}")
    return w


def factor_exposures(pca: PCAResult, weights: ArrayLike) -> PortfolioExposure:
    """Project the portfolio onto the retained factors.

    Args:
        pca: a :func:`pca_factors` result.
        weights: N dollar exposures (or fractions), in the column order of the returns.

    Raises:
        AnalyticsInputError: ``weights`` has the wrong length or is not finite.
    """
    w = _weights(weights, len(pca.symbols))
    k = pca.n_factors
    all_exposures = pca.eigenvectors.T @ (w * pca.scale)
    exposures = all_exposures[:k]
    factor_var = exposures**2 * pca.eigenvalues[:k]
    residual = float(np.sum(all_exposures[k:] ** 2 * pca.eigenvalues[k:]))
    total = float(w @ pca.covariance @ w)
    return PortfolioExposure(
        factor_exposures=exposures, factor_variance=factor_var, residual_variance=residual, total_variance=total
    )


# --------------------------------------------------------------------------- VaR
@dataclass(frozen=True, slots=True, eq=False)
class VaRDecomposition:
    """Delta-normal VaR and its Euler decomposition (``component.sum() == var``).

    Attributes:
        confidence: e.g. 0.99.
        z: the standard normal quantile of ``confidence``.
        horizon: in bars; VaR scales with its square root.
        portfolio_sigma: ``sqrt(w' Sigma w)`` per bar.
        var: ``z sigma_p sqrt(horizon)`` (a positive number is a loss).
        marginal: ``dVaR / dw_i = z sqrt(horizon) (Sigma w)_i / sigma_p`` (0 for a flat book).
        component: ``w_i * marginal_i``.
        percent: ``component / var`` (NaN for a flat book).
    """

    confidence: float
    z: float
    horizon: float
    portfolio_sigma: float
    var: float
    marginal: NDArray[np.float64]
    component: NDArray[np.float64]
    percent: NDArray[np.float64]


def var_decomposition(
    covariance: ArrayLike, weights: ArrayLike, *, confidence: float = 0.99, horizon: float = 1.0
) -> VaRDecomposition:
    """Parametric (delta-normal) VaR with marginal and component contributions.

    Args:
        covariance: N x N covariance of per-bar returns.
        weights: N exposures.
        confidence: in (0.5, 1).
        horizon: bars, > 0 (square-root-of-time scaling).

    Raises:
        AnalyticsInputError: shapes disagree, or an argument is out of its domain.
    """
    cov = _square(covariance)
    w = _weights(weights, cov.shape[0])
    if not 0.5 < confidence < 1.0:
        raise AnalyticsInputError("confidence", f"must lie in (0.5, 1), got {confidence!r}")
    if not (horizon > 0.0 and math.isfinite(horizon)):
        raise AnalyticsInputError("horizon", f"must be finite and > 0, got {horizon!r}")
    z = NormalDist().inv_cdf(confidence)
    sigma_w = cov @ w
    variance = float(w @ sigma_w)
    if variance < 0.0:
        raise AnalyticsInputError("covariance", f"is not positive semi-definite (w' Sigma w = {variance:g})")
    sigma = math.sqrt(variance)
    k = z * math.sqrt(horizon)
    if sigma > 0.0:
        marginal = k * sigma_w / sigma
        component = w * marginal
        var = k * sigma
        percent = component / var
    else:
        marginal = np.zeros_like(w)
        component = np.zeros_like(w)
        var = 0.0
        percent = np.full_like(w, math.nan)
    return VaRDecomposition(
        confidence=confidence,
        z=z,
        horizon=horizon,
        portfolio_sigma=sigma,
        var=var,
        marginal=marginal,
        component=component,
        percent=percent,
    )


# --------------------------------------------------------------------------- all together
@dataclass(frozen=True, slots=True, eq=False)
class WindowAttribution:
    """Attribution on one return window.

    Attributes:
        window: its name (``5m``, ``60m``).
        n_observations: bars in the window.
        pca: the factors.
        exposure: the portfolio on the factors.
        betas: per asset, beta to the benchmark (NaN without a benchmark).
        beta_exposure: ``sum_i w_i beta_i``, benchmark-equivalent exposure (NaN without one).
        var: the VaR decomposition on the same covariance.
    """

    window: str
    n_observations: int
    pca: PCAResult
    exposure: PortfolioExposure
    betas: NDArray[np.float64]
    beta_exposure: float
    var: VaRDecomposition


@dataclass(frozen=True, slots=True, eq=False)
class RiskAttribution:
    """Attribution per window for one portfolio.

    Attributes:
        symbols: asset names, the column order of every window.
        weights: the exposures used.
        benchmark: the beta benchmark symbol, or None.
        windows: per window name, its :class:`WindowAttribution`.
    """

    symbols: tuple[str, ...]
    weights: NDArray[np.float64]
    benchmark: str | None
    windows: Mapping[str, WindowAttribution]

    def to_table(self) -> list[TableRow]:
        """A long table, one number per row, for the daily Parquet snapshot.

        Every row has the keys ``window, kind, symbol, factor, metric, value``; ``kind`` is
        ``asset``, ``factor``, ``loading`` or ``portfolio`` and unused keys are ``""``. The
        schema does not depend on the number of assets or factors.
        """
        rows: list[TableRow] = []

        def add(window: str, kind: str, symbol: str, factor: str, metric: str, value: float) -> None:
            rows.append(
                {"window": window, "kind": kind, "symbol": symbol, "factor": factor, "metric": metric, "value": value}
            )

        for name, wa in self.windows.items():
            p = wa.pca
            for i, sym in enumerate(self.symbols):
                for metric, value in (
                    ("weight", self.weights[i]),
                    ("beta", wa.betas[i]),
                    ("volatility", math.sqrt(p.covariance[i, i])),
                    ("idiosyncratic_variance", p.idiosyncratic_variance[i]),
                    ("marginal_var", wa.var.marginal[i]),
                    ("component_var", wa.var.component[i]),
                    ("component_var_pct", wa.var.percent[i]),
                ):
                    add(name, "asset", sym, "", metric, float(value))
                for k, factor in enumerate(p.factor_names):
                    add(name, "loading", sym, factor, "loading", float(p.loadings[i, k]))
            for k, factor in enumerate(p.factor_names):
                for metric, value in (
                    ("eigenvalue", p.eigenvalues[k]),
                    ("explained_variance_ratio", p.explained_variance_ratio[k]),
                    ("exposure", wa.exposure.factor_exposures[k]),
                    ("variance_contribution", wa.exposure.factor_variance[k]),
                ):
                    add(name, "factor", "", factor, metric, float(value))
            for metric, value in (
                ("n_observations", float(wa.n_observations)),
                ("total_variance", wa.exposure.total_variance),
                ("residual_variance", wa.exposure.residual_variance),
                ("systematic_share", wa.exposure.systematic_share),
                ("beta_exposure", wa.beta_exposure),
                ("portfolio_sigma", wa.var.portfolio_sigma),
                ("var", wa.var.var),
                ("var_confidence", wa.var.confidence),
            ):
                add(name, "portfolio", "", "", metric, float(value))
        return rows


def risk_attribution(
    windows: Mapping[str, ArrayLike],
    symbols: Sequence[str],
    weights: ArrayLike,
    *,
    benchmark: str | None = "SPY",
    n_factors: int = 3,
    use_correlation: bool = False,
    method: CovarianceMethod = "sample",
    lam: float = RISKMETRICS_LAMBDA,
    confidence: float = 0.99,
    horizon: float = 1.0,
) -> RiskAttribution:
    """PCA factors, exposures, betas and VaR for one portfolio on each return window.

    Args:
        windows: per window name (``5m``, ``60m``), a T x N return matrix, columns in
            ``symbols`` order (T may differ between windows).
        symbols: N unique names; must include ``benchmark`` when one is given (give it a
            weight of 0 if the book does not hold it).
        weights: N dollar exposures (or fractions).
        benchmark: beta benchmark symbol, or None for no betas.
        n_factors: factors retained per window.
        use_correlation: PCA on correlations instead of covariances.
        method: ``sample`` or ``ewma`` covariance (used for PCA, betas and VaR alike).
        lam: the EWMA decay (RiskMetrics: 0.94).
        confidence: VaR confidence.
        horizon: VaR horizon in bars of each window.

    Raises:
        AnalyticsInputError: no windows, a window with the wrong number of columns, the
            benchmark not among the symbols, or an argument out of its domain.
    """
    if not windows:
        raise AnalyticsInputError("windows", "needs at least one return window")
    names = _symbols(symbols, len(tuple(symbols)))
    w = _weights(weights, len(names))
    if benchmark is not None and benchmark not in names:
        raise AnalyticsInputError("benchmark", f"{benchmark!r} is not among the symbols; include its returns")
    out: dict[str, WindowAttribution] = {}
    for name, returns in windows.items():
        r = _returns(f"windows[{name!r}]", returns)
        if r.shape[1] != len(names):
            raise AnalyticsInputError(f"windows[{name!r}]", f"has {r.shape[1]} columns, symbols has {len(names)}")
        pca = pca_factors(
            r, symbols=names, n_factors=n_factors, use_correlation=use_correlation, method=method, lam=lam
        )
        if benchmark is None:
            beta = np.full(len(names), math.nan)
            beta_exposure = math.nan
        else:
            beta = betas(pca.covariance, names.index(benchmark))
            beta_exposure = float(w @ beta)
        out[name] = WindowAttribution(
            window=name,
            n_observations=int(r.shape[0]),
            pca=pca,
            exposure=factor_exposures(pca, w),
            betas=beta,
            beta_exposure=beta_exposure,
            var=var_decomposition(pca.covariance, w, confidence=confidence, horizon=horizon),
        )
    return RiskAttribution(symbols=names, weights=w, benchmark=benchmark, windows=out)
