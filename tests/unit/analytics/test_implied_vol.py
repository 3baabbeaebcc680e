"""implied_vol: round trips (engine and oracle prices), statuses, robustness on a hard grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quanticity.analytics import IVStatus, compute_greeks, implied_vol
from tests.unit.analytics.chains import HARD_GRID, MINUTE, Chain, grid_chain, random_chain
from tests.unit.analytics.oracle import oracle_price

# A quote is "well conditioned" when a relative price error of 1e-12 moves sigma by at
# most 1e-10: price / vega <= 100. Deep in-the-money quotes, whose time value drowns
# in the rounding of the intrinsic value, are not; the solver still returns a volatility
# that reprices them.
WELL_CONDITIONED_PRICE_OVER_VEGA = 100.0


def _bounds(chain: Chain) -> tuple[np.ndarray, np.ndarray]:
    s_dq = chain.spot * np.exp(-chain.div * chain.expiry)
    k_dr = chain.strike * np.exp(-chain.rate * chain.expiry)
    phi = np.where(chain.call, 1.0, -1.0)
    intrinsic = np.maximum(phi * (s_dq - k_dr), 0.0)
    upper = np.where(chain.call, s_dq, k_dr)
    return intrinsic, upper


def _solvable(price: np.ndarray, chain: Chain) -> np.ndarray:
    # Clearly inside (intrinsic, upper bound) in double precision, in the normal range.
    intrinsic, upper = _bounds(chain)
    return (price > intrinsic * (1 + 1e-13)) & (price < upper * (1 - 1e-13)) & (price - intrinsic > 1e-250)


def _round_trip(chain: Chain, price: np.ndarray) -> None:
    vol, status = implied_vol(price, chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.call)
    solvable = _solvable(price, chain)
    assert solvable.sum() > 0.5 * len(chain)
    failures = solvable & (status != IVStatus.SOLVED)
    assert not failures.any(), f"{failures.sum()} solvable quotes not solved: statuses {status[failures][:10]}"
    assert np.all(np.isfinite(vol[status == IVStatus.SOLVED]))
    assert np.all(np.isnan(vol[status != IVStatus.SOLVED]))

    vega = compute_greeks(chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call).vega
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        well = solvable & (price / vega <= WELL_CONDITIONED_PRICE_OVER_VEGA)
    assert well.sum() > 0.4 * len(chain)
    err = np.abs(vol[well] - chain.vol[well])
    assert err.max() <= 1e-9, f"max |sigma_hat - sigma| {err.max():.3e} at {np.argmax(err)}"

    # Every solved quote in the normal range, well conditioned or not, is repriced by its
    # volatility (subnormal prices have too few digits to say more than "solved").
    solved = (status == IVStatus.SOLVED) & (price > 1e-250)
    repriced = compute_greeks(
        chain.spot[solved],
        chain.strike[solved],
        chain.expiry[solved],
        chain.rate[solved],
        chain.div[solved],
        vol[solved],
        chain.call[solved],
    ).price
    np.testing.assert_allclose(repriced, price[solved], rtol=1e-9)


def test_round_trip_on_hard_grid_with_minutes_to_expiry_and_deep_wings() -> None:
    # 7,680 quotes: strikes 0.5x-1.5x, one minute to three years, vol 2%-300%.
    chain = grid_chain(**HARD_GRID)
    price = compute_greeks(chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call).price
    _round_trip(chain, price)


def test_round_trip_on_random_chain() -> None:
    chain = random_chain(20000, seed=21)
    price = compute_greeks(chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call).price
    _round_trip(chain, price)


def test_round_trip_from_oracle_prices() -> None:
    # Prices from the 40-digit oracle: the solver is checked independently of our pricer.
    chain = grid_chain(
        [0.5, 0.8, 0.98, 1.0, 1.02, 1.2, 1.5],
        [MINUTE, 15 * MINUTE, 1 / 365, 0.5, 2.0],
        [0.05, 0.25, 1.0],
        [0.04],
        [0.01],
    )
    price = np.array(
        [
            oracle_price(
                float(chain.spot[i]),
                float(chain.strike[i]),
                float(chain.expiry[i]),
                float(chain.rate[i]),
                float(chain.div[i]),
                float(chain.vol[i]),
                bool(chain.call[i]),
            )
            for i in range(len(chain))
        ]
    )
    _round_trip(chain, price)


def test_solves_hull_example() -> None:
    vol, status = implied_vol(2.400527323, 49.0, 50.0, 20 / 52, 0.05, 0.0, True)
    assert status == IVStatus.SOLVED
    assert float(vol) == pytest.approx(0.2, abs=1e-9)


@pytest.mark.parametrize(
    ("price", "spot", "strike", "expiry", "is_call", "expected"),
    [
        (2.400527323, 49.0, 50.0, 20 / 52, True, IVStatus.SOLVED),
        (40.0, 100.0, 50.0, 0.5, True, IVStatus.BELOW_INTRINSIC),  # call intrinsic ~51
        (-0.01, 100.0, 120.0, 0.5, True, IVStatus.BELOW_INTRINSIC),
        (-math.inf, 100.0, 120.0, 0.5, False, IVStatus.BELOW_INTRINSIC),
        (100.0, 100.0, 120.0, 0.5, True, IVStatus.ABOVE_UPPER_BOUND),  # call <= S e^{-qT} < 100
        (125.0, 100.0, 120.0, 0.5, False, IVStatus.ABOVE_UPPER_BOUND),  # put <= K e^{-rT}
        (math.inf, 100.0, 120.0, 0.5, True, IVStatus.ABOVE_UPPER_BOUND),
        (0.0, 100.0, 120.0, 0.5, True, IVStatus.NO_TIME_VALUE),  # worthless OTM quote
        (3.0, 100.0, 100.0, 0.0, True, IVStatus.NO_TIME_VALUE),  # expired
        (math.nan, 100.0, 100.0, 0.5, True, IVStatus.MISSING_PRICE),
    ],
)
def test_each_status(
    price: float, spot: float, strike: float, expiry: float, is_call: bool, expected: IVStatus
) -> None:
    vol, status = implied_vol(price, spot, strike, expiry, 0.01, 0.0, is_call)
    assert IVStatus(int(status)) is expected
    assert math.isfinite(float(vol)) == (expected is IVStatus.SOLVED)


def test_price_exactly_at_intrinsic_has_no_time_value() -> None:
    # r = q = 0 makes the intrinsic value exact: 100 - 80 = 20.
    vol, status = implied_vol([20.0, 20.0 + 1e-9], 100.0, 80.0, 0.25, 0.0, 0.0, True)
    assert list(status) == [IVStatus.NO_TIME_VALUE, IVStatus.SOLVED]
    assert np.isnan(vol[0]) and np.isfinite(vol[1])


def test_minutes_to_expiry_far_wing_quote_is_solved() -> None:
    # A one-minute 0DTE call 1% out of the money quoted at a tenth of a cent.
    vol, status = implied_vol(0.001, 500.0, 505.0, MINUTE, 0.05, 0.0, True)
    assert status == IVStatus.SOLVED
    repriced = compute_greeks(500.0, 505.0, MINUTE, 0.05, 0.0, vol, True).price
    assert float(repriced) == pytest.approx(0.001, rel=1e-12)
