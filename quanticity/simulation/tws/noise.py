"""Deterministic noise: a fast integer hash, so sizes, flicker and book shapes are pure functions of
(symbol, instant) and agree across processes."""

from __future__ import annotations

__all__ = ["mix"]

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A fast 64-bit hash of integers (splitmix64 rounds); deterministic across processes."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK
        h ^= h >> 29
    return h
