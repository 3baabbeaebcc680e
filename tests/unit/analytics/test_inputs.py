"""Broadcasting of scalars and arrays, and validation errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from quanticity.analytics import GREEK_NAMES, AnalyticsInputError, compute_greeks, implied_vol
from quanticity.errors import QuanticityError

GOOD = {
    "spot": 100.0,
    "strike": 105.0,
    "expiry_years": 0.5,
    "rate": 0.03,
    "dividend_yield": 0.01,
    "vol": 0.25,
    "is_call": True,
}


def test_all_scalars_give_zero_dimensional_arrays() -> None:
    g = compute_greeks(**GOOD)  # type: ignore[arg-type]
    for name in GREEK_NAMES:
        value = getattr(g, name)
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float64


def test_scalars_broadcast_against_arrays() -> None:
    strikes = np.array([[90.0], [100.0], [110.0]])  # (3, 1)
    vols = np.array([0.1, 0.2, 0.3, 0.4])  # (4,)
    g = compute_greeks(100.0, strikes, 0.5, 0.03, 0.01, vols, np.array([True, False, True, False]))
    assert g.price.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            one = compute_greeks(100.0, strikes[i, 0], 0.5, 0.03, 0.01, vols[j], j % 2 == 0)
            assert g.delta[i, j] == one.delta and g.price[i, j] == one.price


def test_implied_vol_broadcasts_and_keeps_shape() -> None:
    prices = compute_greeks(100.0, np.array([[95.0, 100.0], [105.0, 110.0]]), 0.25, 0.02, 0.0, 0.3, True).price
    vol, status = implied_vol(prices, 100.0, np.array([[95.0, 100.0], [105.0, 110.0]]), 0.25, 0.02, 0.0, True)
    assert vol.shape == status.shape == (2, 2) and status.dtype == np.int8
    np.testing.assert_allclose(vol, 0.3, atol=1e-12)


def test_integer_call_flags_are_accepted() -> None:
    a = compute_greeks(100.0, 100.0, 0.5, 0.0, 0.0, 0.2, np.array([1, 0]))
    b = compute_greeks(100.0, 100.0, 0.5, 0.0, 0.0, 0.2, np.array([True, False]))
    np.testing.assert_array_equal(a.price, b.price)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("spot", -1.0),
        ("spot", np.array([100.0, -5.0, 100.0])),
        ("strike", 0.0),
        ("expiry_years", 0.0),
        ("vol", np.array([0.2, np.nan])),
        ("rate", np.inf),
        ("dividend_yield", np.array([0.0, -np.inf])),
        ("is_call", np.array([0.5, 1.0])),
        ("strike", "abc"),
    ],
)
def test_bad_greeks_inputs_raise_naming_the_argument(argument: str, value: object) -> None:
    kwargs = dict(GOOD)
    kwargs[argument] = value
    with pytest.raises(AnalyticsInputError) as info:
        compute_greeks(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert repr(argument) in str(info.value)


def test_error_points_at_the_first_bad_element() -> None:
    with pytest.raises(AnalyticsInputError) as info:
        compute_greeks(np.array([100.0, 100.0, -5.0, -6.0]), 100.0, 0.5, 0.0, 0.0, 0.2, True)
    assert info.value.index == 2
    assert "-5.0" in str(info.value)


def test_mismatched_shapes_name_the_argument() -> None:
    with pytest.raises(AnalyticsInputError) as info:
        compute_greeks(np.ones(3) * 100.0, np.ones(4) * 100.0, 0.5, 0.0, 0.0, 0.2, True)
    assert info.value.argument == "strike"
    assert "(4,)" in str(info.value)


def test_implied_vol_validates_all_but_the_price() -> None:
    with pytest.raises(AnalyticsInputError) as info:
        implied_vol(1.0, 100.0, 100.0, -0.1, 0.0, 0.0, True)
    assert info.value.argument == "expiry_years"
    with pytest.raises(AnalyticsInputError) as info:
        implied_vol(np.ones(2), np.ones(3) * 100.0, 100.0, 0.1, 0.0, 0.0, True)
    assert info.value.argument == "spot"


def test_error_type_is_a_value_error_under_the_package_root() -> None:
    assert issubclass(AnalyticsInputError, ValueError)
    assert issubclass(AnalyticsInputError, QuanticityError)


def test_empty_inputs_give_empty_outputs() -> None:
    g = compute_greeks(np.empty(0), 100.0, 0.5, 0.0, 0.0, 0.2, True)
    assert g.price.shape == (0,)
    vol, status = implied_vol(np.empty(0), 100.0, 100.0, 0.5, 0.0, 0.0, True)
    assert vol.shape == status.shape == (0,)
