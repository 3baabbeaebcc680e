"""Synthetic trades, 1-minute bars and L2 books for the bars, VPIN and liquidity tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SESSION_OPEN_NS = 1_717_594_200_000_000_000  # 2024-06-05 09:30:00 America/New_York (13:30 UTC)


@dataclass(frozen=True)
class Trades:
    time_ns: NDArray[np.int64]
    price: NDArray[np.float64]
    size: NDArray[np.float64]


def random_trades(n: int, seed: int, *, start_ns: int = SESSION_OPEN_NS, mean_gap_ms: float = 300.0) -> Trades:
    """Time-sorted trades: exponential gaps (with ties), a random-walk price, integer sizes."""
    rng = np.random.default_rng(seed)
    gaps = np.floor(rng.exponential(mean_gap_ms * 1e6, n)).astype(np.int64)
    gaps[rng.random(n) < 0.05] = 0  # same-nanosecond prints
    time_ns = start_ns + np.cumsum(gaps)
    price = np.round(100.0 + np.cumsum(rng.normal(0.0, 0.01, n)), 2)
    size = rng.integers(1, 500, n).astype(np.float64)
    return Trades(time_ns.astype(np.int64), price, size)


def random_minute_bars(n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(volume, close) of ``n`` 1-minute bars: lognormal volumes, a random-walk close."""
    rng = np.random.default_rng(seed)
    volume = np.round(rng.lognormal(np.log(5_000.0), 0.8, n))
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.05, n))
    return volume, np.round(close, 2)


@dataclass(frozen=True)
class Books:
    bid_px: NDArray[np.float64]
    bid_sz: NDArray[np.float64]
    ask_px: NDArray[np.float64]
    ask_sz: NDArray[np.float64]


def random_books(m: int, levels: int, seed: int, *, tick: float = 0.01) -> Books:
    """``m`` uncrossed books with ``levels`` levels per side, gaps of 1-3 ticks between levels."""
    rng = np.random.default_rng(seed)
    mid = np.round(rng.uniform(20.0, 600.0, m), 2)
    half = tick * rng.integers(1, 4, m)
    bid_steps = tick * rng.integers(1, 4, (m, levels))
    ask_steps = tick * rng.integers(1, 4, (m, levels))
    bid_steps[:, 0] = 0.0
    ask_steps[:, 0] = 0.0
    bid_px = (mid - half)[:, None] - np.cumsum(bid_steps, axis=1)
    ask_px = (mid + half)[:, None] + np.cumsum(ask_steps, axis=1)
    bid_sz = np.round(rng.lognormal(np.log(400.0), 0.7, (m, levels)))
    ask_sz = np.round(rng.lognormal(np.log(400.0), 0.7, (m, levels)))
    return Books(bid_px, np.maximum(bid_sz, 1.0), ask_px, np.maximum(ask_sz, 1.0))
