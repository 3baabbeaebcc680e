"""What the simulated market knows about each symbol: price level, volatility, listing style.

Known symbols (the index ETFs, the S&P 500 family and the extended watchlist) have
hand-set parameters near their 2025 levels. Any other symbol gets parameters derived
from a hash of its name, so it is priced the same way in every run and every process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_UNIVERSE",
    "INDEX_NAMES",
    "InstrumentSpec",
    "OptionStyle",
    "instrument_spec",
    "stable_key",
]

Kind = Literal["etf", "stock", "index", "vol_index"]
OptionStyle = Literal["etf", "spx", "single", "none"]


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Parameters of one simulated instrument.

    Attributes:
        symbol: the ticker.
        kind: ETF, stock, cash index or volatility index.
        start_price: price at the start of the market's first simulated day.
        vol: long-run annualised volatility.
        market_corr: correlation of its returns with the market factor (SPY).
        dividend_yield: continuous dividend yield used to price its options.
        avg_volume: average shares per day (0 for indices, which have no volume).
        option_style: which expiration and strike rules its options follow.
        base: for a derived index, the symbol whose path it scales (SPX from SPY).
        ratio: the scale applied to ``base``.
        name: display name (news, index data).
    """

    symbol: str
    kind: Kind
    start_price: float
    vol: float
    market_corr: float
    dividend_yield: float
    avg_volume: float
    option_style: OptionStyle
    base: str | None = None
    ratio: float = 1.0
    name: str = ""

    @property
    def path_symbol(self) -> str:
        """The symbol whose random path this instrument follows."""
        return self.base or self.symbol


def _spec(
    symbol: str,
    kind: Kind,
    price: float,
    vol: float,
    corr: float,
    q: float,
    volume: float,
    style: OptionStyle,
    name: str,
) -> InstrumentSpec:
    return InstrumentSpec(symbol, kind, price, vol, corr, q, volume, style, name=name)


_TABLE: dict[str, InstrumentSpec] = {
    s.symbol: s
    for s in (
        _spec("SPY", "etf", 600.0, 0.16, 1.0, 0.012, 60e6, "etf", "SPDR S&P 500 ETF Trust"),
        _spec("QQQ", "etf", 520.0, 0.20, 0.92, 0.006, 40e6, "etf", "Invesco QQQ Trust"),
        _spec("IWM", "etf", 230.0, 0.22, 0.85, 0.012, 30e6, "etf", "iShares Russell 2000 ETF"),
        _spec("AAPL", "stock", 230.0, 0.26, 0.65, 0.0045, 50e6, "single", "Apple Inc."),
        _spec("MSFT", "stock", 430.0, 0.24, 0.65, 0.008, 20e6, "single", "Microsoft Corporation"),
        _spec("NVDA", "stock", 180.0, 0.45, 0.60, 0.0003, 200e6, "single", "NVIDIA Corporation"),
        _spec("AMZN", "stock", 220.0, 0.32, 0.60, 0.0, 40e6, "single", "Amazon.com Inc."),
        _spec("GOOGL", "stock", 190.0, 0.30, 0.60, 0.0045, 25e6, "single", "Alphabet Inc."),
        _spec("META", "stock", 700.0, 0.36, 0.55, 0.003, 12e6, "single", "Meta Platforms Inc."),
        _spec("TSLA", "stock", 350.0, 0.60, 0.45, 0.0, 90e6, "single", "Tesla Inc."),
        _spec("COST", "stock", 950.0, 0.22, 0.45, 0.005, 2e6, "single", "Costco Wholesale Corporation"),
        _spec("WMT", "stock", 95.0, 0.20, 0.40, 0.010, 15e6, "single", "Walmart Inc."),
        _spec("DIS", "stock", 115.0, 0.28, 0.50, 0.008, 8e6, "single", "The Walt Disney Company"),
        _spec("V", "stock", 340.0, 0.20, 0.55, 0.007, 6e6, "single", "Visa Inc."),
        _spec("NFLX", "stock", 1200.0, 0.35, 0.45, 0.0, 3e6, "single", "Netflix Inc."),
        _spec("HOOD", "stock", 50.0, 0.70, 0.40, 0.0, 30e6, "single", "Robinhood Markets Inc."),
        _spec("HIMS", "stock", 40.0, 0.85, 0.30, 0.0, 20e6, "single", "Hims & Hers Health Inc."),
        _spec("ORCL", "stock", 180.0, 0.35, 0.50, 0.009, 10e6, "single", "Oracle Corporation"),
    )
}

# Cash indices follow an ETF's path scaled by a constant: the simulator then tells one
# story (SPX moves exactly with SPY), which is what the put-call-parity derivation of SPX
# from SPXW options in the real pipeline relies on.
_DERIVED: dict[str, tuple[str, float, OptionStyle, str]] = {
    "SPX": ("SPY", 10.03, "spx", "S&P 500 Index"),
    "SPXW": ("SPY", 10.03, "spx", "S&P 500 Index (weekly options root)"),
    "NDX": ("QQQ", 41.0, "none", "NASDAQ-100 Index"),
    "RUT": ("IWM", 10.05, "none", "Russell 2000 Index"),
}

INDEX_NAMES: dict[str, str] = {
    "SPX": "S&P 500 Index",
    "NDX": "NASDAQ-100 Index",
    "RUT": "Russell 2000 Index",
    "VIX": "CBOE Volatility Index",
}

DEFAULT_UNIVERSE: tuple[str, ...] = (*_TABLE, "SPX", "SPXW", "NDX", "RUT", "VIX")


def stable_key(*parts: str) -> int:
    """A 63-bit integer from text, identical across processes (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _unit(symbol: str, field: str) -> float:
    return stable_key(symbol, field) / float(1 << 63)


def instrument_spec(symbol: str) -> InstrumentSpec:
    """The parameters of ``symbol``; unknown symbols get stable hash-derived ones."""
    symbol = symbol.upper()
    if symbol in _TABLE:
        return _TABLE[symbol]
    if symbol in _DERIVED:
        base, ratio, style, name = _DERIVED[symbol]
        b = _TABLE[base]
        return InstrumentSpec(
            symbol,
            "index",
            b.start_price * ratio,
            b.vol,
            b.market_corr,
            b.dividend_yield,
            0.0,
            style,
            base=base,
            ratio=ratio,
            name=name,
        )
    if symbol == "VIX":
        return InstrumentSpec(symbol, "vol_index", 16.0, 0.8, -0.7, 0.0, 0.0, "none", name=INDEX_NAMES["VIX"])
    price = 10.0 * 50.0 ** _unit(symbol, "price")  # log-uniform in [10, 500)
    return InstrumentSpec(
        symbol,
        "stock",
        round(price, 2),
        0.25 + 0.35 * _unit(symbol, "vol"),
        0.3 + 0.3 * _unit(symbol, "corr"),
        round(0.02 * _unit(symbol, "dividend"), 4),
        1e6 * (1.0 + 19.0 * _unit(symbol, "volume")),
        "single",
        name=symbol,
    )
