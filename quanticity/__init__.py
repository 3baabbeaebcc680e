"""Quanticity: an options-trading platform built as a Faust stream topology."""

from __future__ import annotations

__version__ = "0.1.0"
