"""VPIN: a worked example checked by hand, bucket splitting, batch == streaming, properties, statuses."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics.bars import ONE_MINUTE_NS, aggregate_ticks
from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.vpin import (
    VPINConfig,
    VPINResult,
    VPINStatus,
    VPINStream,
    bucket_volume_from_adv,
    bvc_buy_fraction,
    compute_vpin,
    vpin_cdf,
    vpin_from_trades,
)
from tests.unit.analytics.microstructure_reference import vpin_reference
from tests.unit.analytics.microstructure_samples import random_minute_bars, random_trades

PHI_1 = 0.8413447460685429  # standard normal cdf at 1 (any normal table: 0.84134)

# ----------------------------------------------------------------- the worked example
# In the spirit of Abad & Yagüe (2012)'s step-by-step tables. Previous close 100, five
# 1-minute bars, bucket volume V = 500, window n = 2.
#
#   bar  volume  close  dP    dP/sigma  Z = buy fraction
#    1     400    101   +1      +1      a = Phi(1) = 0.841345
#    2     300    100   -1      -1      1 - a      = 0.158655
#    3    1200    101   +1      +1      a
#    4     200    101    0       0      0.5
#    5     400    100   -1      -1      1 - a
#
# sigma over the sample: dP = (1, -1, 1, 0, -1) has mean 0 and sum of squares 4, so the
# sample standard deviation (ddof = 1) is sqrt(4 / 4) = 1.
#
# Buckets (bar 3 straddles two boundaries and is split 300 / 500 / 400 pro rata, every
# part keeping Z = a):
#
#   bucket  parts (bar: volume)      V_B                           |V_S - V_B| = |V - 2 V_B|
#    1      1: 400, 2: 100           400a + 100(1-a) = 100 + 300a   600a - 300  = 204.806848
#    2      2: 200, 3: 300           200(1-a) + 300a = 200 + 100a   200a - 100  =  68.268949
#    3      3: 500                   500a                           1000a - 500 = 341.344746
#    4      3: 400, 4: 100           400a + 50                      800a - 400  = 273.075797
#    5      4: 100, 5: 400           50 + 400(1-a) = 450 - 400a     800a - 400  = 273.075797
#
# VPIN_tau = (OI_{tau-1} + OI_tau) / (n V) = (OI_{tau-1} + OI_tau) / 1000:
#   tau 2: (800a - 400)/1000 = 0.8a - 0.4 = 0.273075797
#   tau 3: 1.2a - 0.6 = 0.409613695
#   tau 4: 1.8a - 0.9 = 0.614420543
#   tau 5: 1.6a - 0.8 = 0.546151594
# Empirical CDF of the latest (0.546) among {0.273, 0.410, 0.614, 0.546}: 3 / 4.
EXAMPLE_VOLUME = [400.0, 300.0, 1200.0, 200.0, 400.0]
EXAMPLE_CLOSE = [101.0, 100.0, 101.0, 101.0, 100.0]
EXAMPLE_CONFIG = VPINConfig(bucket_volume=500.0, window=2)


def test_worked_example_by_hand() -> None:
    a = PHI_1
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, EXAMPLE_CONFIG, previous_close=100.0)
    assert r.status is VPINStatus.OK
    assert r.sigma == pytest.approx(1.0, rel=1e-15)
    expected_buy = [100 + 300 * a, 200 + 100 * a, 500 * a, 400 * a + 50, 450 - 400 * a]
    np.testing.assert_allclose(r.bucket_buy_volume, expected_buy, rtol=1e-14)
    np.testing.assert_allclose(r.bucket_sell_volume, 500.0 - np.array(expected_buy), rtol=1e-13)
    assert r.bucket_end_bar.tolist() == [1, 2, 2, 3, 4]  # bars counted from 0: bar 3 above is index 2
    np.testing.assert_allclose(r.vpin, [0.8 * a - 0.4, 1.2 * a - 0.6, 1.8 * a - 0.9, 1.6 * a - 0.8], rtol=1e-13)
    assert r.latest_vpin == pytest.approx(0.546151594, abs=1e-9)
    assert r.cdf == 0.75
    assert (r.bucket_count, r.enough_buckets, r.bar_count) == (5, True, 5)
    assert (r.open_bucket_volume, r.classified_volume, r.unclassified_volume) == (0.0, 2500.0, 0.0)


def test_worked_example_with_student_t_one_degree_of_freedom() -> None:
    # t with 1 df is the Cauchy distribution: Z(1) = 1/2 + atan(1)/pi = 3/4, Z(-1) = 1/4, so
    # the table above holds with a = 3/4: V_B = 325, 275, 375, 350, 150 and
    # VPIN = 0.8a - 0.4, 1.2a - 0.6, 1.8a - 0.9, 1.6a - 0.8 = 0.2, 0.3, 0.45, 0.4.
    config = VPINConfig(bucket_volume=500.0, window=2, distribution="student_t", df=1.0)
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, config, previous_close=100.0)
    np.testing.assert_allclose(r.bucket_buy_volume, [325, 275, 375, 350, 150], rtol=1e-14)
    np.testing.assert_allclose(r.vpin, [0.2, 0.3, 0.45, 0.4], rtol=1e-13)


def test_without_previous_close_the_first_bar_is_unclassified() -> None:
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, EXAMPLE_CONFIG)
    assert r.unclassified_volume == 400.0 and r.classified_volume == 2100.0
    assert r.bucket_count == 4 and r.open_bucket_volume == pytest.approx(100.0)


# --------------------------------------------------------------- bucket splitting
def test_a_bar_spanning_several_buckets_is_split_pro_rata_with_its_own_z() -> None:
    # One bar of 2.5 V after a previous close: two full buckets and half of a third, all at
    # the bar's buy fraction Z(+2 / 1) = Phi(2).
    phi_2 = 0.9772498680518208
    config = VPINConfig(bucket_volume=1_000.0, window=1, sigma=1.0)
    r = compute_vpin([2_500.0], [102.0], config, previous_close=100.0)
    np.testing.assert_allclose(r.bucket_buy_volume, [1_000 * phi_2] * 2, rtol=1e-15)
    assert r.bucket_end_bar.tolist() == [0, 0]
    assert r.open_bucket_volume == 500.0
    assert r.open_bucket_buy_volume == pytest.approx(500 * phi_2, rel=1e-15)
    np.testing.assert_allclose(r.vpin, [2 * phi_2 - 1] * 2, rtol=1e-14)


def test_bar_ending_exactly_on_a_boundary_closes_the_bucket_and_carries_nothing() -> None:
    config = VPINConfig(bucket_volume=100.0, window=1, sigma=1.0)
    r = compute_vpin([60.0, 40.0, 30.0], [101.0, 100.0, 100.0], config, previous_close=100.0)
    # bucket 1 = 60 at Z(+1) + 40 at Z(-1); bar 3 starts bucket 2 from empty
    assert r.bucket_buy_volume == pytest.approx([60 * PHI_1 + 40 * (1 - PHI_1)], rel=1e-15)
    assert r.bucket_end_bar.tolist() == [1]
    assert (r.open_bucket_volume, r.open_bucket_buy_volume) == (30.0, 15.0)


def test_matches_the_plain_python_reference_on_a_month_of_bars() -> None:
    volume, close = random_minute_bars(21 * 390, seed=2)
    big_v = float(volume.sum()) / (21 * 50)  # ADV / 50
    r = compute_vpin(volume, close, VPINConfig(bucket_volume=big_v), previous_close=100.0)
    buys, vpin = vpin_reference(volume.tolist(), close.tolist(), big_v, 50, 100.0)
    assert r.bucket_count == len(buys) >= 1000
    np.testing.assert_allclose(r.bucket_buy_volume, buys, rtol=1e-12)
    np.testing.assert_allclose(r.vpin, vpin, rtol=1e-12)


# ------------------------------------------------------------- batch == streaming
def assert_same_result(a: VPINResult, b: VPINResult) -> None:
    for field in VPINResult.__slots__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field
        else:
            assert x == y, field


@pytest.mark.parametrize(
    "config",
    [
        VPINConfig(bucket_volume=40_000.0, sigma=0.05),
        VPINConfig(bucket_volume=40_000.0, sigma="rolling", sigma_window=120, sigma_min_periods=20),
        VPINConfig(bucket_volume=25_000.0, window=30, sigma="rolling", distribution="student_t", df=0.25),
        VPINConfig(bucket_volume=40_000.0, sigma=0.05, cdf_method="lognormal"),
    ],
)
def test_streaming_bar_by_bar_and_in_chunks_equals_batch_exactly(config: VPINConfig) -> None:
    volume, close = random_minute_bars(2_000, seed=3)
    history = np.linspace(0.05, 0.6, 40)
    batch = compute_vpin(volume, close, config, history=history, previous_close=100.0)
    assert batch.status is VPINStatus.OK
    one_by_one = VPINStream(config, history=history, previous_close=100.0)
    completed = 0
    for v, c in zip(volume.tolist(), close.tolist(), strict=True):
        completed += one_by_one.update(v, c)
    assert completed == batch.bucket_count == one_by_one.bucket_count
    assert one_by_one.latest_vpin == batch.latest_vpin
    assert_same_result(one_by_one.result(), batch)
    chunked = VPINStream(config, history=history, previous_close=100.0)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, 2_000), 37, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, 2_000], strict=True):
        chunked.update_many(volume[lo:hi], close[lo:hi])
    assert_same_result(chunked.result(), batch)


def test_full_sample_batch_equals_a_stream_given_that_sigma() -> None:
    volume, close = random_minute_bars(1_500, seed=4)
    batch = compute_vpin(volume, close, VPINConfig(bucket_volume=30_000.0))
    assert batch.sigma == pytest.approx(float(np.std(np.diff(close), ddof=1)), rel=1e-15)
    assert batch.sigma is not None
    stream = VPINStream(VPINConfig(bucket_volume=30_000.0, sigma=batch.sigma))
    stream.update_many(volume, close)
    assert_same_result(stream.result(), batch)


def test_rolling_sigma_is_the_trailing_sample_std_and_warm_up_is_unclassified() -> None:
    volume, close = random_minute_bars(700, seed=5)
    config = VPINConfig(bucket_volume=30_000.0, sigma="rolling", sigma_window=100, sigma_min_periods=25)
    r = compute_vpin(volume, close, config)
    dp = np.diff(close)
    assert r.sigma == pytest.approx(float(np.std(dp[-100:], ddof=1)), rel=1e-12)
    # bar 0 has no price change; bars 1..24 hold 1..24 price changes (< 25)
    assert r.unclassified_volume == pytest.approx(float(volume[:25].sum()), rel=1e-15)
    assert r.classified_volume + r.unclassified_volume == pytest.approx(float(volume.sum()), rel=1e-15)


# ------------------------------------------------------------------------ properties
bar_lists = st.lists(
    st.tuples(st.floats(0.0, 50_000.0), st.floats(-0.5, 0.5)),
    min_size=1,
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(bar_lists, st.floats(500.0, 60_000.0), st.integers(1, 60), st.floats(0.001, 1.0), st.booleans())
def test_vpin_invariants(bars: list[tuple[float, float]], big_v: float, n: int, sigma: float, t_dist: bool) -> None:
    volume = np.array([b[0] for b in bars])
    close = 100.0 + np.cumsum([b[1] for b in bars])
    config = VPINConfig(
        bucket_volume=big_v,
        window=n,
        sigma=sigma,
        distribution="student_t" if t_dist else "normal",
        df=3.0 if t_dist else None,
    )
    r = compute_vpin(volume, close, config, previous_close=100.0)
    assert np.all((r.vpin >= 0.0) & (r.vpin <= 1.0))
    assert np.all((r.bucket_buy_volume >= 0.0) & (r.bucket_buy_volume <= big_v))
    np.testing.assert_allclose(r.bucket_buy_volume + r.bucket_sell_volume, big_v, rtol=1e-12)
    # volume is conserved: every classified unit is in exactly one bucket or the open one
    assert r.bucket_count * big_v + r.open_bucket_volume == pytest.approx(volume.sum(), rel=1e-9, abs=1e-6)
    assert 0.0 <= r.open_bucket_volume < big_v
    assert r.classified_volume == pytest.approx(volume.sum(), rel=1e-12)
    assert r.vpin.size == max(0, r.bucket_count - n + 1)
    assert r.enough_buckets == (r.bucket_count >= n)
    if r.enough_buckets:
        assert r.status is VPINStatus.OK and r.latest_vpin == r.vpin[-1] and r.cdf is not None
    else:
        assert r.status is VPINStatus.INSUFFICIENT_BUCKETS and r.latest_vpin is None and r.cdf is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1.0, 10_000.0), min_size=30, max_size=120), st.floats(0.001, 0.5))
def test_all_up_moves_with_tiny_sigma_give_vpin_one(volumes: list[float], step: float) -> None:
    close = 100.0 + step * np.arange(1, len(volumes) + 1)
    big_v = float(np.sum(volumes)) / 25
    r = compute_vpin(volumes, close, VPINConfig(bucket_volume=big_v, window=5, sigma=1e-9), previous_close=100.0)
    np.testing.assert_allclose(r.bucket_buy_volume, big_v, rtol=1e-12)
    assert r.latest_vpin is not None and r.latest_vpin >= 1.0 - 1e-12


def test_balanced_flow_gives_vpin_zero() -> None:
    # No price change anywhere: every bar splits 50/50 (sigma == 0 falls back to the sign rule).
    r = compute_vpin([100.0] * 40, [100.0] * 40, VPINConfig(bucket_volume=100.0, window=10), previous_close=100.0)
    assert r.sigma == 0.0
    np.testing.assert_array_equal(r.vpin, 0.0)


# ------------------------------------------------------------------------- statuses
def test_fewer_than_n_buckets_is_an_explicit_insufficient_status() -> None:
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, VPINConfig(bucket_volume=500.0, window=50), previous_close=100.0)
    assert r.status is VPINStatus.INSUFFICIENT_BUCKETS
    assert (r.latest_vpin, r.cdf, r.enough_buckets, r.bucket_count) == (None, None, False, 5)
    assert r.vpin.size == 0 and r.bucket_buy_volume.size == 5
    stream = VPINStream(VPINConfig(bucket_volume=500.0, window=50, sigma=1.0), previous_close=100.0)
    stream.update_many(EXAMPLE_VOLUME, EXAMPLE_CLOSE)
    assert stream.latest_vpin is None and stream.result().status is VPINStatus.INSUFFICIENT_BUCKETS


def test_empty_and_single_bar_inputs() -> None:
    r = compute_vpin([], [], EXAMPLE_CONFIG)
    assert r.status is VPINStatus.INSUFFICIENT_BUCKETS and r.bar_count == 0 and r.sigma is None
    r = compute_vpin([1_000.0], [100.0], EXAMPLE_CONFIG)
    assert r.unclassified_volume == 1_000.0 and r.bucket_count == 0


def test_lognormal_cdf_needs_two_distinct_positive_values() -> None:
    config = VPINConfig(bucket_volume=500.0, window=5, cdf_method="lognormal")
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, config, previous_close=100.0)
    assert r.bucket_count == 5 and r.vpin.size == 1
    assert r.status is VPINStatus.INSUFFICIENT_CDF_HISTORY and r.latest_vpin is not None and r.cdf is None
    r = compute_vpin(EXAMPLE_VOLUME, EXAMPLE_CLOSE, config, previous_close=100.0, history=[0.2, 0.3, 0.4])
    assert r.status is VPINStatus.OK and r.cdf is not None


def test_cdf_methods_by_hand() -> None:
    history = [0.1, 0.2, 0.2, 0.4]
    assert vpin_cdf(0.2, history) == 0.75
    assert vpin_cdf(0.05, history) == 0.0
    logs = np.log(history)
    mu, s = logs.mean(), logs.std(ddof=1)
    expected = 0.5 * math.erfc(-(math.log(0.3) - mu) / s / math.sqrt(2))
    assert vpin_cdf(0.3, history, "lognormal") == pytest.approx(expected, rel=1e-14)
    assert vpin_cdf(0.0, history, "lognormal") == 0.0
    assert vpin_cdf(0.3, [], "empirical") is None


# ---------------------------------------------------------------- BVC distributions
def test_student_t_cdf_closed_forms_and_oracle() -> None:
    x = np.array([-50.0, -3.0, -1.0, -0.1, 0.0, 1e-8, 0.7, 2.0, 30.0])
    cauchy = 0.5 + np.arctan(x) / np.pi
    np.testing.assert_allclose(bvc_buy_fraction(x, 1.0, distribution="student_t", df=1.0), cauchy, rtol=1e-13)
    root = np.sqrt(2 + x * x)
    two_df = np.where(x < 0, 1 / (root * (root - x)), 0.5 + x / (2 * root))  # 1/2 + x / (2 root), no cancellation
    np.testing.assert_allclose(bvc_buy_fraction(x, 1.0, distribution="student_t", df=2.0), two_df, rtol=1e-13)
    for df in (0.25, 4.5, 30.0):
        got = bvc_buy_fraction(x, 1.0, distribution="student_t", df=df)
        for xi, gi in zip(x.tolist(), got.tolist(), strict=True):
            with mpmath.workdps(40):  # P(T > |x|) = I_w(df/2, 1/2) / 2, w = df / (df + x^2)
                w = mpmath.mpf(df) / (df + mpmath.mpf(xi) ** 2)
                tail = mpmath.betainc(mpmath.mpf(df) / 2, 0.5, 0, w, regularized=True) / 2
                ref = float(1 - tail) if xi > 0 else float(tail)
            assert gi == pytest.approx(ref, rel=1e-12, abs=1e-15), (df, xi)
    normal = bvc_buy_fraction(x, 2.0)
    np.testing.assert_allclose(normal, [0.5 * math.erfc(-v / 2 / math.sqrt(2)) for v in x], rtol=1e-12)
    np.testing.assert_array_equal(bvc_buy_fraction([-1.0, 0.0, 1.0], 0.0), [0.0, 0.5, 1.0])


# ------------------------------------------------------------------- trades and errors
def test_vpin_from_trades_uses_epoch_aligned_minute_bars() -> None:
    trades = random_trades(40_000, seed=8)
    bars = aggregate_ticks(trades.time_ns, trades.price, trades.size, interval_ns=ONE_MINUTE_NS)
    config = VPINConfig(bucket_volume=float(bars.volume.sum()) / 60, window=20)
    direct = vpin_from_trades(trades.time_ns, trades.price, trades.size, config)
    assert_same_result(direct, compute_vpin(bars.volume, bars.close, config))
    assert direct.status is VPINStatus.OK


def test_bucket_volume_from_adv() -> None:
    assert bucket_volume_from_adv(5_000_000.0) == 100_000.0
    assert bucket_volume_from_adv(1_000.0, 8) == 125.0
    with pytest.raises(AnalyticsInputError) as err:
        bucket_volume_from_adv(0.0)
    assert err.value.argument == "adv"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"bucket_volume": 0.0}, "bucket_volume"),
        ({"bucket_volume": 1.0, "window": 0}, "window"),
        ({"bucket_volume": 1.0, "sigma": -1.0}, "sigma"),
        ({"bucket_volume": 1.0, "sigma": "daily"}, "sigma"),
        ({"bucket_volume": 1.0, "sigma_window": 1}, "sigma_window"),
        ({"bucket_volume": 1.0, "sigma_min_periods": 400}, "sigma_min_periods"),
        ({"bucket_volume": 1.0, "distribution": "laplace"}, "distribution"),
        ({"bucket_volume": 1.0, "distribution": "student_t"}, "df"),
        ({"bucket_volume": 1.0, "df": 3.0}, "df"),
        ({"bucket_volume": 1.0, "cdf_method": "gamma"}, "cdf_method"),
    ],
)
def test_bad_config_names_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as err:
        VPINConfig(**kwargs)  # type: ignore[arg-type]  # deliberately wrong types and values
    assert err.value.argument == argument


def test_bad_bars_name_the_argument() -> None:
    with pytest.raises(AnalyticsInputError) as err:
        compute_vpin([1.0, -1.0], [100.0, 100.0], EXAMPLE_CONFIG)
    assert err.value.argument == "volume" and err.value.index == 1
    with pytest.raises(AnalyticsInputError) as err:
        compute_vpin([1.0, 1.0], [100.0, math.nan], EXAMPLE_CONFIG)
    assert err.value.argument == "close"
    with pytest.raises(AnalyticsInputError) as err:
        compute_vpin([1.0], [100.0, 101.0], EXAMPLE_CONFIG)
    assert err.value.argument == "close"
    with pytest.raises(AnalyticsInputError) as err:
        compute_vpin([1.0], [100.0], EXAMPLE_CONFIG, history=[0.5, 1.5])
    assert err.value.argument == "history" and err.value.index == 1
    with pytest.raises(AnalyticsInputError) as err:
        VPINStream(VPINConfig(bucket_volume=1.0))
    assert err.value.argument == "sigma"
    stream = VPINStream(VPINConfig(bucket_volume=1.0, sigma=1.0))
    with pytest.raises(AnalyticsInputError):
        stream.update(-5.0, 100.0)
    assert stream.result().bar_count == 0  # nothing was fed
