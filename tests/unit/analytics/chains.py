"""Synthetic option chains shared by the analytics tests (and mirrored in bench/)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MINUTE = 1.0 / (365.0 * 24.0 * 60.0)


@dataclass(frozen=True)
class Chain:
    """Flat arrays describing one contract per element."""

    spot: NDArray[np.float64]
    strike: NDArray[np.float64]
    expiry: NDArray[np.float64]
    rate: NDArray[np.float64]
    div: NDArray[np.float64]
    vol: NDArray[np.float64]
    call: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.spot.size)

    def take(self, index: NDArray[np.intp]) -> Chain:
        return Chain(*(getattr(self, f)[index] for f in ("spot", "strike", "expiry", "rate", "div", "vol", "call")))


def random_chain(n: int, seed: int, *, min_vol: float = 0.05, max_vol: float = 1.5) -> Chain:
    """Strikes 0.5x-1.5x spot, expiries log-uniform from one minute to three years."""
    rng = np.random.default_rng(seed)
    spot = 100.0 * np.exp(rng.uniform(-0.1, 0.1, n))
    return Chain(
        spot=spot,
        strike=spot * rng.uniform(0.5, 1.5, n),
        expiry=np.exp(rng.uniform(np.log(MINUTE), np.log(3.0), n)),
        rate=rng.uniform(-0.01, 0.08, n),
        div=rng.uniform(0.0, 0.05, n),
        vol=rng.uniform(min_vol, max_vol, n),
        call=rng.random(n) < 0.5,
    )


def grid_chain(
    moneyness: list[float], expiries: list[float], vols: list[float], rates: list[float], divs: list[float]
) -> Chain:
    """Every combination, calls and puts, spot 100."""
    mesh = np.meshgrid(moneyness, expiries, vols, rates, divs, [True, False], indexing="ij")
    flat = [m.ravel() for m in mesh]
    n = flat[0].size
    return Chain(
        spot=np.full(n, 100.0),
        strike=100.0 * flat[0],
        expiry=flat[1].astype(np.float64),
        rate=flat[3].astype(np.float64),
        div=flat[4].astype(np.float64),
        vol=flat[2].astype(np.float64),
        call=flat[5].astype(bool),
    )


HARD_GRID = {
    "moneyness": [0.5, 0.6, 0.75, 0.9, 0.97, 0.995, 1.0, 1.005, 1.03, 1.1, 1.25, 1.5],
    "expiries": [MINUTE, 5 * MINUTE, 30 * MINUTE, 60 * MINUTE, 1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 3.0],
    "vols": [0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0],
    "rates": [-0.01, 0.05],
    "divs": [0.0, 0.03],
}
