"""VPIN, the volume-synchronised probability of informed trading (Easley, López de Prado, O'Hara).

Pipeline (RFS 25(5), 2012; formulas and sources in docs/module3_formulas.md, "VPIN"):

1. 1-minute bars (volume ``V_i``, close-to-close ``dP_i``); ``vpin_from_trades`` builds
   them from trades with ``bars.aggregate_ticks``.
2. Bulk volume classification: a bar's buy fraction is ``Z(dP_i / sigma)``, ``Z`` the
   standard normal cdf or a Student-t cdf with ``df`` degrees of freedom (ELO 2016).
   ``sigma`` is the standard deviation of ``dP`` over the full sample, a fixed value, or
   a trailing window of bars (``VPINConfig.sigma``).
3. Volume buckets of size ``V`` filled in sequence; a bar that straddles a boundary is
   split pro rata, each part keeping the bar's buy fraction.
4. ``VPIN_tau = sum_{last n buckets} |V_S - V_B| / (n V)``, and its CDF against the
   history of VPIN values (empirical, or a fitted lognormal).

One sequential numba kernel advances the bucket state bar by bar. ``compute_vpin``
(batch) and ``VPINStream`` (per bar, O(1) amortised: a bucket costs O(n), and there
are about 50 buckets per 390 bars at ``V = ADV/50``) both run it on the same state,
so fed the same bars they agree bit for bit, however the bars are chunked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._jit import kernel
from quanticity.analytics.bars import ONE_MINUTE_NS, aggregate_ticks
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "DEFAULT_BUCKETS_PER_DAY",
    "VPINConfig",
    "VPINResult",
    "VPINStatus",
    "VPINStream",
    "bucket_volume_from_adv",
    "bvc_buy_fraction",
    "compute_vpin",
    "vpin_cdf",
    "vpin_from_trades",
]

DEFAULT_BUCKETS_PER_DAY = 50  # V = ADV / 50 (ELO 2012)

Distribution = Literal["normal", "student_t"]
CdfMethod = Literal["empirical", "lognormal"]
SigmaMode = float | Literal["full_sample", "rolling"]

_POSITIVE = Bound(low=0.0)
_NON_NEGATIVE = Bound(low=0.0, low_inclusive=True)
_SQRT1_2 = 0.7071067811865476
_TINY = 1e-300  # modified Lentz: replaces an exact zero denominator
_CF_EPS = 2.220446049250313e-16
_CF_MAX_TERMS = 500

# Kernel state slots.
_PREV, _FILL, _BUY, _SIGMA, _S1, _S2, _V, _DF, _UNCLASSIFIED, _CLASSIFIED = range(10)
_N_BUCKETS, _DP_COUNT, _SIGMA_WINDOW, _MIN_PERIODS, _WINDOW, _DIST, _BARS = range(7)
_DIST_NORMAL, _DIST_T = 0, 1


class VPINStatus(StrEnum):
    """Whether a ``VPINResult`` carries a VPIN and its CDF."""

    OK = "ok"
    INSUFFICIENT_BUCKETS = "insufficient_buckets"  # fewer than `window` completed buckets: no VPIN yet
    INSUFFICIENT_CDF_HISTORY = "insufficient_cdf_history"  # VPIN known, the fitted CDF has too few values


@dataclass(frozen=True, slots=True)
class VPINConfig:
    """Parameters of VPIN, shared by the batch and the streaming form.

    Attributes:
        bucket_volume: ``V``, volume per bucket, > 0 (ELO: ``ADV / 50``, see
            ``bucket_volume_from_adv``).
        window: ``n``, buckets per VPIN value (ELO: 50).
        sigma: how ``sigma_dP`` is obtained: ``"full_sample"`` (standard deviation of all
            price changes of the batch, ELO 2012; batch only), ``"rolling"`` (trailing
            ``sigma_window`` bars, causal; batch and streaming), or a fixed positive value
            (e.g. yesterday's full-sample sigma).
        sigma_window: bars in the rolling window (default 390, one regular session).
        sigma_min_periods: price changes needed before the rolling sigma is used; bars
            before that are counted as unclassified volume, not bucketed.
        distribution: ``"normal"`` (ELO 2012) or ``"student_t"`` (ELO 2016).
        df: degrees of freedom of the Student-t, > 0; required with ``"student_t"`` only.
        cdf_method: ``"empirical"`` (rank among the VPIN history) or ``"lognormal"``
            (lognormal fitted to the history, as ELO 2012 do).
    """

    bucket_volume: float
    window: int = 50
    sigma: SigmaMode = "full_sample"
    sigma_window: int = 390
    sigma_min_periods: int = 30
    distribution: Distribution = "normal"
    df: float | None = None
    cdf_method: CdfMethod = "empirical"

    def __post_init__(self) -> None:
        if not _is_positive_finite(self.bucket_volume):
            raise AnalyticsInputError("bucket_volume", f"must be finite and > 0, got {self.bucket_volume!r}")
        if not _is_int(self.window) or self.window < 1:
            raise AnalyticsInputError("window", f"must be an integer >= 1, got {self.window!r}")
        self._check_sigma()
        self._check_distribution()

    def _check_sigma(self) -> None:
        if isinstance(self.sigma, str):
            if self.sigma not in ("full_sample", "rolling"):
                raise AnalyticsInputError("sigma", f"must be 'full_sample', 'rolling' or a number, got {self.sigma!r}")
        elif not _is_positive_finite(self.sigma):
            raise AnalyticsInputError("sigma", f"a fixed sigma must be finite and > 0, got {self.sigma!r}")
        if not _is_int(self.sigma_window) or self.sigma_window < 2:
            raise AnalyticsInputError("sigma_window", f"must be an integer >= 2, got {self.sigma_window!r}")
        if not _is_int(self.sigma_min_periods) or not 2 <= self.sigma_min_periods <= self.sigma_window:
            raise AnalyticsInputError(
                "sigma_min_periods", f"must be an integer in [2, sigma_window], got {self.sigma_min_periods!r}"
            )

    def _check_distribution(self) -> None:
        if self.distribution not in ("normal", "student_t"):
            raise AnalyticsInputError("distribution", f"must be 'normal' or 'student_t', got {self.distribution!r}")
        if self.distribution == "student_t":
            if self.df is None or not _is_positive_finite(self.df):
                raise AnalyticsInputError("df", f"the Student-t needs finite df > 0, got {self.df!r}")
        elif self.df is not None:
            raise AnalyticsInputError("df", "applies to distribution='student_t' only")
        if self.cdf_method not in ("empirical", "lognormal"):
            raise AnalyticsInputError("cdf_method", f"must be 'empirical' or 'lognormal', got {self.cdf_method!r}")


@dataclass(frozen=True, slots=True)
class VPINResult:
    """VPIN state after a sequence of bars.

    Attributes:
        status: ``OK``; ``INSUFFICIENT_BUCKETS`` (then ``latest_vpin`` and ``cdf`` are
            None and ``vpin`` is empty); or ``INSUFFICIENT_CDF_HISTORY`` (VPIN known,
            ``cdf`` None: the lognormal fit needs two distinct positive values).
        latest_vpin: VPIN of the last ``window`` completed buckets, in [0, 1].
        cdf: CDF of ``latest_vpin`` against the history (prior history + this series).
        vpin: one value per completed bucket from the ``window``-th on; ``vpin[j]`` covers
            buckets ``j .. j + window - 1``.
        bucket_buy_volume: ``V_B`` per completed bucket.
        bucket_sell_volume: ``V_S = V - V_B`` per completed bucket.
        bucket_end_bar: index (0-based, over all bars fed) of the bar that completed each bucket.
        bucket_count: completed buckets.
        enough_buckets: ``bucket_count >= window``.
        bucket_volume: ``V``.
        window: ``n``.
        sigma: sigma in use: the fixed or full-sample value, or the latest rolling one;
            None while undefined (fewer than two price changes, rolling warm-up).
        open_bucket_volume: volume in the bucket being filled (not in any VPIN yet).
        open_bucket_buy_volume: its buy part so far.
        classified_volume: volume of classified bars (in buckets or the open bucket).
        unclassified_volume: volume of bars without a usable price change or sigma (the
            first bar without ``previous_close``, rolling-sigma warm-up).
        bar_count: bars fed.
    """

    status: VPINStatus
    latest_vpin: float | None
    cdf: float | None
    vpin: NDArray[np.float64]
    bucket_buy_volume: NDArray[np.float64]
    bucket_sell_volume: NDArray[np.float64]
    bucket_end_bar: NDArray[np.int64]
    bucket_count: int
    enough_buckets: bool
    bucket_volume: float
    window: int
    sigma: float | None
    open_bucket_volume: float
    open_bucket_buy_volume: float
    classified_volume: float
    unclassified_volume: float
    bar_count: int


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_positive_finite(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and (math.isfinite(float(value)) and float(value) > 0.0)
    )


# ----------------------------------------------------------------------------- kernels
@kernel(inline=True)
def _beta_cf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function, modified Lentz (Numerical Recipes
    # 3rd ed., 6.4); converges fast for x < (a + 1) / (a + b + 2), the caller ensures it.
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAX_TERMS):
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) <= _CF_EPS:
            break
    return h


@kernel(inline=True)
def _student_t_cdf(x: float, df: float) -> float:
    # P(T <= x) = 1 - I_w(df/2, 1/2) / 2 for x >= 0, w = df / (df + x^2); with
    # 1 - w = x^2 / (df + x^2) computed directly (no cancellation near x = 0).
    if x == math.inf:
        return 1.0
    if x == -math.inf:
        return 0.0
    x2 = x * x
    w = df / (df + x2)
    wc = x2 / (df + x2)
    a = 0.5 * df
    b = 0.5
    if wc == 0.0:
        return 0.5
    if w == 0.0:
        return 1.0 if x > 0.0 else 0.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(w) + b * math.log(wc)
    front = math.exp(log_front)
    # Evaluate the continued fraction on the side where it converges fast (NR 6.4).
    direct = w < (a + 1.0) / (a + b + 2.0)
    ibeta = front * _beta_cf(a, b, w) / a if direct else 1.0 - front * _beta_cf(b, a, wc) / b
    tail = 0.5 * ibeta  # P(T > |x|)
    return 1.0 - tail if x > 0.0 else tail


@kernel(inline=True)
def _buy_fraction(dp: float, sigma: float, dist: int, df: float) -> float:
    if not sigma > 0.0:
        # sigma == 0 (all price changes equal): the limit of Z(dP / sigma) is the sign rule.
        return 1.0 if dp > 0.0 else (0.0 if dp < 0.0 else 0.5)
    x = dp / sigma
    if dist == _DIST_T:
        return _student_t_cdf(x, df)
    return 0.5 * math.erfc(-x * _SQRT1_2)


@kernel()
def _buy_fraction_array(dp: NDArray[np.float64], sigma: float, dist: int, df: float, out: NDArray[np.float64]) -> None:
    for i in range(dp.shape[0]):
        out[i] = _buy_fraction(dp[i], sigma, dist, df)


@kernel(inline=True)
def _rolling_sigma(dp: float, fst: NDArray[np.float64], ist: NDArray[np.int64], dp_ring: NDArray[np.float64]) -> float:
    # Sample standard deviation of the last `w` price changes from running sums, re-summed
    # exactly once per window to cap their drift; NaN during the warm-up.
    w = ist[_SIGMA_WINDOW]
    count = ist[_DP_COUNT]
    slot = count % w
    if count >= w:
        old = dp_ring[slot]
        fst[_S1] -= old
        fst[_S2] -= old * old
    dp_ring[slot] = dp
    fst[_S1] += dp
    fst[_S2] += dp * dp
    count += 1
    ist[_DP_COUNT] = count
    if count % w == 0:
        s1 = 0.0
        s2 = 0.0
        for j in range(w):
            s1 += dp_ring[j]
            s2 += dp_ring[j] * dp_ring[j]
        fst[_S1] = s1
        fst[_S2] = s2
    m = min(count, w)
    if m < ist[_MIN_PERIODS]:
        return math.nan
    return math.sqrt(max(fst[_S2] - fst[_S1] * fst[_S1] / m, 0.0) / (m - 1))


@kernel(inline=True)
def _close_bucket(
    buy: float,
    bar: int,
    fst: NDArray[np.float64],
    ist: NDArray[np.int64],
    oi_ring: NDArray[np.float64],
    out_buy: NDArray[np.float64],
    out_end_bar: NDArray[np.int64],
    out_vpin: NDArray[np.float64],
) -> None:
    # Outputs are indexed by bucket number: the caller keeps them large enough.
    big_v = fst[_V]
    n = ist[_WINDOW]
    b = ist[_N_BUCKETS]
    out_buy[b] = buy
    out_end_bar[b] = bar
    oi_ring[b % n] = abs(big_v - 2.0 * buy)  # |V_S - V_B| with V_S = V - V_B
    b += 1
    ist[_N_BUCKETS] = b
    vpin = math.nan
    if b >= n:
        # Summed oldest to newest on every bucket, not as a running sum: O(n) per bucket
        # (about n * 50 / 390 adds per 1-minute bar at V = ADV/50), and VPIN is then a
        # pure function of its n buckets, bit for bit.
        oldest = b % n
        total = 0.0
        for j in range(oldest, n):
            total += oi_ring[j]
        for j in range(oldest):
            total += oi_ring[j]
        vpin = min(total / (n * big_v), 1.0)  # each term <= V; min() guards rounding
    out_vpin[b - 1] = vpin
    fst[_FILL] = 0.0
    fst[_BUY] = 0.0


@kernel()
def _vpin_advance(
    volume: NDArray[np.float64],
    close: NDArray[np.float64],
    fst: NDArray[np.float64],
    ist: NDArray[np.int64],
    dp_ring: NDArray[np.float64],
    oi_ring: NDArray[np.float64],
    out_buy: NDArray[np.float64],
    out_end_bar: NDArray[np.int64],
    out_vpin: NDArray[np.float64],
) -> int:
    big_v = fst[_V]
    k = 0
    for i in range(volume.shape[0]):
        bar = ist[_BARS]
        ist[_BARS] = bar + 1
        v = volume[i]
        prev = fst[_PREV]
        fst[_PREV] = close[i]
        dp = close[i] - prev  # NaN for the first bar without a previous close
        if dp == dp and ist[_SIGMA_WINDOW] > 0:
            fst[_SIGMA] = _rolling_sigma(dp, fst, ist, dp_ring)
        # The constant (fixed or full-sample) or latest rolling sigma; NaN while undefined
        # (fewer than two price changes, rolling warm-up).
        sigma = fst[_SIGMA]
        if dp != dp or sigma != sigma:
            fst[_UNCLASSIFIED] += v
            continue
        z = _buy_fraction(dp, sigma, ist[_DIST], fst[_DF])
        fst[_CLASSIFIED] += v
        rest = v
        while rest > 0.0:
            room = big_v - fst[_FILL]
            if rest < room:
                fst[_FILL] += rest
                fst[_BUY] += rest * z
                break
            # The bar straddles the boundary: `room` of it closes this bucket with the
            # bar's buy fraction, the rest carries on into the next bucket(s).
            buy = min(max(fst[_BUY] + room * z, 0.0), big_v)
            _close_bucket(buy, bar, fst, ist, oi_ring, out_buy, out_end_bar, out_vpin)
            k += 1
            rest -= room
    return k


# ------------------------------------------------------------------------------ public
def bucket_volume_from_adv(adv: float, buckets_per_day: int = DEFAULT_BUCKETS_PER_DAY) -> float:
    """Bucket size ``V = ADV / buckets_per_day`` (ELO 2012 use 50 buckets per day).

    Args:
        adv: average daily volume, > 0.
        buckets_per_day: buckets per average day, >= 1.

    Returns:
        the bucket volume.

    Raises:
        AnalyticsInputError: a non-positive ``adv`` or ``buckets_per_day``.
    """
    if not _is_positive_finite(adv):
        raise AnalyticsInputError("adv", f"must be finite and > 0, got {adv!r}")
    if not _is_int(buckets_per_day) or buckets_per_day < 1:
        raise AnalyticsInputError("buckets_per_day", f"must be an integer >= 1, got {buckets_per_day!r}")
    return float(adv) / int(buckets_per_day)


def bvc_buy_fraction(
    delta_p: ArrayLike, sigma: float, *, distribution: Distribution = "normal", df: float | None = None
) -> NDArray[np.float64]:
    """Bulk-volume-classification buy fraction ``Z(dP / sigma)`` per bar.

    Args:
        delta_p: price changes, finite.
        sigma: their scale, >= 0 (0 gives the sign rule: 1, 0.5 or 0).
        distribution: ``"normal"`` or ``"student_t"``.
        df: Student-t degrees of freedom, > 0 (``"student_t"`` only).

    Returns:
        buy fractions in [0, 1], shape of ``delta_p``.

    Raises:
        AnalyticsInputError: a non-finite price change, a negative sigma, a bad ``df``.
    """
    config = VPINConfig(1.0, distribution=distribution, df=df)  # validates distribution and df
    if not (isinstance(sigma, int | float | np.integer | np.floating) and math.isfinite(sigma) and sigma >= 0.0):
        raise AnalyticsInputError("sigma", f"must be finite and >= 0, got {sigma!r}")
    prepared = prepare_inputs({"delta_p": (delta_p, Bound())}, {})
    out = np.empty(prepared.size, dtype=np.float64)
    dist = _DIST_T if config.distribution == "student_t" else _DIST_NORMAL
    _buy_fraction_array(prepared.floats["delta_p"], float(sigma), dist, float(config.df or 0.0), out)
    return out.reshape(prepared.shape)


def vpin_cdf(value: float, history: ArrayLike, method: CdfMethod = "empirical") -> float | None:
    """CDF of a VPIN value against a history of VPIN values.

    ``"empirical"``: ``#{h <= value} / N``. ``"lognormal"``: ``Phi((ln value - mu) / s)``
    with ``mu``, ``s`` the mean and sample standard deviation of ``ln h`` over the
    positive history values (VPIN = 0 has CDF 0).

    Args:
        value: the VPIN value, in [0, 1].
        history: past VPIN values, in [0, 1] (usually including ``value``).
        method: ``"empirical"`` or ``"lognormal"``.

    Returns:
        the CDF in [0, 1]; None when the history is empty, or (lognormal) has fewer than
        two positive values or no spread.

    Raises:
        AnalyticsInputError: a value outside [0, 1] or an unknown method.
    """
    if method not in ("empirical", "lognormal"):
        raise AnalyticsInputError("method", f"must be 'empirical' or 'lognormal', got {method!r}")
    if not (isinstance(value, int | float | np.integer | np.floating) and 0.0 <= value <= 1.0):
        raise AnalyticsInputError("value", f"must be a VPIN in [0, 1], got {value!r}")
    h = _history("history", history)
    if h.size == 0:
        return None
    if method == "empirical":
        return float(np.count_nonzero(h <= value)) / h.size
    logs = np.log(h[h > 0.0])
    if logs.size < 2:
        return None
    s = float(np.std(logs, ddof=1))
    if not s > 0.0:
        return None
    if value == 0.0:
        return 0.0
    return 0.5 * math.erfc(-(math.log(value) - float(np.mean(logs))) / s * _SQRT1_2)


def _history(name: str, history: ArrayLike | None) -> NDArray[np.float64]:
    if history is None:
        return np.empty(0, dtype=np.float64)
    h = np.ravel(np.asarray(history, dtype=np.float64))
    bad = np.flatnonzero(~((h >= 0.0) & (h <= 1.0)))
    if bad.size:
        raise AnalyticsInputError(name, f"VPIN values must lie in [0, 1], got {h[bad[0]]!r}", index=int(bad[0]))
    return h


class _VPINState:
    """Bucket state, ring buffers and growing outputs; shared by batch and stream."""

    def __init__(
        self, config: VPINConfig, sigma: float | None, history: ArrayLike | None, previous_close: float | None
    ) -> None:
        self.config = config
        self.history = _history("history", history)
        self.fst = np.zeros(10, dtype=np.float64)
        self.ist = np.zeros(7, dtype=np.int64)
        self.fst[_PREV] = math.nan
        if previous_close is not None:
            if not _is_positive_finite(previous_close):
                raise AnalyticsInputError("previous_close", f"must be finite and > 0, got {previous_close!r}")
            self.fst[_PREV] = float(previous_close)
        rolling = sigma is None  # a constant sigma (fixed or full-sample) is passed in, else rolling
        self.fst[_SIGMA] = math.nan if sigma is None else float(sigma)
        self.fst[_V] = float(config.bucket_volume)
        self.fst[_DF] = float(config.df or 0.0)
        self.ist[_SIGMA_WINDOW] = config.sigma_window if rolling else 0
        self.ist[_MIN_PERIODS] = config.sigma_min_periods
        self.ist[_WINDOW] = config.window
        self.ist[_DIST] = _DIST_T if config.distribution == "student_t" else _DIST_NORMAL
        self.dp_ring = np.zeros(config.sigma_window if rolling else 1, dtype=np.float64)
        self.oi_ring = np.zeros(config.window, dtype=np.float64)
        self.buy = np.empty(64, dtype=np.float64)
        self.end_bar = np.empty(64, dtype=np.int64)
        self.vpin_all = np.empty(64, dtype=np.float64)  # per bucket, NaN before the window-th

    @property
    def bucket_count(self) -> int:
        return int(self.ist[_N_BUCKETS])

    def advance(self, volume: NDArray[np.float64], close: NDArray[np.float64], total: float) -> int:
        b = self.bucket_count
        # Upper bound on the buckets this call can complete (+2 covers rounding of the fill).
        most = int((self.fst[_FILL] + total) / self.fst[_V]) + 2
        if b + most > self.buy.size:
            size = max(2 * self.buy.size, b + most)
            self.buy = np.resize(self.buy, size)
            self.end_bar = np.resize(self.end_bar, size)
            self.vpin_all = np.resize(self.vpin_all, size)
        return int(
            _vpin_advance(
                volume,
                close,
                self.fst,
                self.ist,
                self.dp_ring,
                self.oi_ring,
                self.buy,
                self.end_bar,
                self.vpin_all,
            )
        )

    def latest_vpin(self) -> float | None:
        b = self.bucket_count
        return float(self.vpin_all[b - 1]) if b >= self.config.window else None

    def result(self) -> VPINResult:
        cfg = self.config
        b = self.bucket_count
        big_v = float(self.fst[_V])
        buy = self.buy[:b].copy()
        vpin = self.vpin_all[cfg.window - 1 : b].copy() if b >= cfg.window else np.empty(0, dtype=np.float64)
        latest = float(vpin[-1]) if vpin.size else None
        cdf: float | None = None
        if latest is None:
            status = VPINStatus.INSUFFICIENT_BUCKETS
        else:
            cdf = vpin_cdf(latest, np.concatenate([self.history, vpin]), cfg.cdf_method)
            status = VPINStatus.OK if cdf is not None else VPINStatus.INSUFFICIENT_CDF_HISTORY
        sigma = float(self.fst[_SIGMA])
        return VPINResult(
            status=status,
            latest_vpin=latest,
            cdf=cdf,
            vpin=vpin,
            bucket_buy_volume=buy,
            bucket_sell_volume=big_v - buy,
            bucket_end_bar=self.end_bar[:b].copy(),
            bucket_count=b,
            enough_buckets=b >= cfg.window,
            bucket_volume=big_v,
            window=cfg.window,
            sigma=sigma if math.isfinite(sigma) else None,
            open_bucket_volume=float(self.fst[_FILL]),
            open_bucket_buy_volume=float(self.fst[_BUY]),
            classified_volume=float(self.fst[_CLASSIFIED]),
            unclassified_volume=float(self.fst[_UNCLASSIFIED]),
            bar_count=int(self.ist[_BARS]),
        )


def _bar_columns(volume: ArrayLike, close: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n_volume, n_close = np.size(volume), np.size(close)
    if n_volume != n_close:
        raise AnalyticsInputError("close", f"has {n_close} elements but volume has {n_volume}; one per bar")
    prepared = prepare_inputs({"volume": (volume, _NON_NEGATIVE), "close": (close, _POSITIVE)}, {})
    if len(prepared.shape) > 1:
        raise AnalyticsInputError("volume", f"must be one-dimensional (one value per bar), got {prepared.shape}")
    v = np.atleast_1d(prepared.floats["volume"])
    c = np.atleast_1d(prepared.floats["close"])
    return v, c


def _full_sample_sigma(close: NDArray[np.float64], previous_close: float | None) -> float:
    prices = close if previous_close is None else np.concatenate([[float(previous_close)], close])
    dp = np.diff(prices)
    return float(np.std(dp, ddof=1)) if dp.size >= 2 else math.nan


def compute_vpin(
    volume: ArrayLike,
    close: ArrayLike,
    config: VPINConfig,
    *,
    history: ArrayLike | None = None,
    previous_close: float | None = None,
) -> VPINResult:
    """VPIN of a sequence of (1-minute) bars.

    Args:
        volume: bar volumes, finite and >= 0, one per bar in time order.
        close: bar closes, finite and > 0, same length.
        config: the VPIN parameters.
        history: earlier VPIN values for the CDF (e.g. previous sessions), in [0, 1].
        previous_close: close of the bar before the first one; without it the first
            bar has no price change and its volume is unclassified.

    Returns:
        buckets, the VPIN series, the latest VPIN, its CDF and a status.

    Raises:
        AnalyticsInputError: a bad volume, close, history or previous close, or lengths
            that differ.
    """
    v, c = _bar_columns(volume, close)
    if isinstance(config.sigma, str):
        sigma = _full_sample_sigma(c, previous_close) if config.sigma == "full_sample" else None
    else:
        sigma = float(config.sigma)
    state = _VPINState(config, sigma, history, previous_close)
    state.advance(v, c, float(v.sum()))
    return state.result()


def vpin_from_trades(
    time_ns: ArrayLike,
    price: ArrayLike,
    size: ArrayLike,
    config: VPINConfig,
    *,
    history: ArrayLike | None = None,
) -> VPINResult:
    """VPIN from trades: 1-minute epoch-aligned bars (``bars.aggregate_ticks``), then ``compute_vpin``.

    Minutes without trades produce no bar; the next bar's price change runs from the
    last close before the gap.

    Args:
        time_ns: trade times, int64 ns since the epoch (UTC), non-decreasing.
        price: trade prices, finite and > 0.
        size: trade sizes, finite and > 0.
        config: the VPIN parameters.
        history: earlier VPIN values for the CDF.

    Returns:
        as ``compute_vpin``.

    Raises:
        AnalyticsInputError: malformed trades or history.
    """
    bars = aggregate_ticks(time_ns, price, size, interval_ns=ONE_MINUTE_NS)
    return compute_vpin(bars.volume, bars.close, config, history=history)


class VPINStream:
    """Incremental VPIN: feed 1-minute bars as they complete; O(1) amortised per bar.

    Fed the same bars, in any chunking, it ends in exactly the state of
    ``compute_vpin`` with the same config (``sigma="full_sample"`` needs the whole
    sample and is batch only: pass a fixed sigma or use ``"rolling"``). ``update`` and
    ``update_many`` only advance the buckets; ``result()`` builds the full result
    (copies and the CDF, O(buckets)).

    Args:
        config: the VPIN parameters; ``sigma`` a fixed value or ``"rolling"``.
        history: earlier VPIN values for the CDF, in [0, 1].
        previous_close: close of the bar before the first one fed.

    Raises:
        AnalyticsInputError: ``sigma="full_sample"``, a bad history or previous close.
    """

    def __init__(
        self, config: VPINConfig, *, history: ArrayLike | None = None, previous_close: float | None = None
    ) -> None:
        if config.sigma == "full_sample":
            raise AnalyticsInputError(
                "sigma", "'full_sample' needs the whole sample: stream with a fixed sigma or 'rolling'"
            )
        sigma = None if config.sigma == "rolling" else float(config.sigma)
        self._state = _VPINState(config, sigma, history, previous_close)
        self._one_volume = np.empty(1, dtype=np.float64)
        self._one_close = np.empty(1, dtype=np.float64)

    @property
    def config(self) -> VPINConfig:
        """The parameters."""
        return self._state.config

    @property
    def bucket_count(self) -> int:
        """Completed buckets."""
        return self._state.bucket_count

    @property
    def latest_vpin(self) -> float | None:
        """VPIN of the last ``window`` buckets, or None while there are fewer."""
        return self._state.latest_vpin()

    def update(self, volume: float, close: float) -> int:
        """Feed one bar.

        Args:
            volume: its volume, finite and >= 0.
            close: its close, finite and > 0.

        Returns:
            buckets completed by this bar.

        Raises:
            AnalyticsInputError: a bad volume or close (nothing is fed then).
        """
        # The per-bar path of an agent: scalar checks instead of the array validation.
        try:
            v = float(volume)
            c = float(close)
        except (TypeError, ValueError) as exc:
            raise AnalyticsInputError("volume", f"volume and close must be numbers ({exc})") from exc
        if not 0.0 <= v < math.inf:
            raise AnalyticsInputError("volume", f"must be finite and >= 0, got {volume!r}")
        if not 0.0 < c < math.inf:
            raise AnalyticsInputError("close", f"must be finite and > 0, got {close!r}")
        self._one_volume[0] = v
        self._one_close[0] = c
        return self._state.advance(self._one_volume, self._one_close, v)

    def update_many(self, volume: ArrayLike, close: ArrayLike) -> int:
        """Feed several bars in time order.

        Args:
            volume: bar volumes, finite and >= 0.
            close: bar closes, finite and > 0.

        Returns:
            buckets completed by these bars.

        Raises:
            AnalyticsInputError: a bad volume or close, or lengths that differ (nothing is fed).
        """
        v, c = _bar_columns(volume, close)
        return self._state.advance(v, c, float(v.sum()))

    def result(self) -> VPINResult:
        """Everything computed so far, as ``compute_vpin`` would return it."""
        return self._state.result()
