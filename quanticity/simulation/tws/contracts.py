"""The simulator's contract universe: stocks, ETFs, indices, FX and listed options.

Every symbol the ``SimulatedMarket`` lists is a contract: ETFs and stocks are ``STK``
on ``SMART`` with a primary exchange, cash indices (SPX, NDX, RUT, VIX) are ``IND``.
Options are the market's listed contracts (``market.chain``): one ``OPT`` per OCC id,
trading classes ``SPY``, ``SPX``/``SPXW`` and so on. Three FX pairs on ``IDEALPRO``
exist so that the ib_insync Watchdog's ``Forex('EURUSD')`` probe has something to ask.

conIds: the well-known underlyings carry their real IB conIds (SPY 756733, SPX 416904...);
other underlyings and every option get a stable id derived with ``stable_key``, so a
conId means the same contract in every run and process. Option ids live in
[1e9, 2**31 - 1); should two listed options of one family share an id (rare), the
nearer expiry wins a lookup by conId.

Tick rules follow the market's quoting: stocks trade in pennies (0.0001 below $1),
index-ETF options in pennies, SPX options in 0.05/0.10 below/above $3, single-name
options in 0.01/0.05 below/above $3.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

import numpy as np

from quanticity.simulation.chains import OptionChainTable
from quanticity.simulation.instruments import stable_key
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.protocol import ContractQuery

__all__ = [
    "DEPTH_EXCHANGES",
    "STOCK_EXCHANGES",
    "ContractUniverse",
    "SimContract",
    "TickStyle",
    "price_increment",
    "to_tick",
]

TickStyle = Literal["stock", "index", "fx", "etf", "spx", "single"]

STOCK_EXCHANGES: tuple[str, ...] = (
    "SMART", "AMEX", "NYSE", "CBOE", "PHLX", "ISE", "CHX", "ARCA", "ISLAND", "DRCTEDGE", "BEX", "BATS", "EDGEA",
    "BYX", "IEX", "EDGX", "PEARL", "NYSENAT", "LTSE", "MEMX", "PSX",
)  # fmt: skip
DEPTH_EXCHANGES: tuple[str, ...] = ("ARCA", "ISLAND", "NYSE", "BATS", "IEX", "EDGX", "MEMX", "BYX")
OPTION_EXCHANGES: tuple[str, ...] = ("SMART", "CBOE", "AMEX", "ISE", "PHLX", "BOX", "ARCA", "MIAX", "PEARL", "C2")

_REAL_CON_IDS = {
    ("SPY", "STK"): 756733, ("QQQ", "STK"): 320227571, ("IWM", "STK"): 9579970, ("DIA", "STK"): 73128548,
    ("AAPL", "STK"): 265598, ("MSFT", "STK"): 272093, ("NVDA", "STK"): 4815747, ("AMZN", "STK"): 3691937,
    ("GOOGL", "STK"): 208813719, ("META", "STK"): 107113386, ("TSLA", "STK"): 76792991,
    ("SPX", "IND"): 416904, ("VIX", "IND"): 13455763, ("NDX", "IND"): 416843, ("RUT", "IND"): 416888,
    ("EUR", "CASH"): 12087792, ("GBP", "CASH"): 12087797, ("USD", "CASH"): 15016059,
}  # fmt: skip
_ETFS = {"SPY": "ARCA", "QQQ": "NASDAQ", "IWM": "ARCA", "DIA": "ARCA"}
_NYSE = {"DIS", "V", "ORCL", "HIMS", "JPM", "XOM", "BAC", "KO", "PG", "JNJ"}
_NASDAQ = {"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "COST", "NFLX", "HOOD", "WMT"}
_INDEX_EXCHANGE = {"SPX": "CBOE", "VIX": "CBOE", "NDX": "NASDAQ", "RUT": "RUSSELL"}
# symbol -> (currency, trading class, min tick)
FX_PAIRS: dict[str, tuple[str, str, float]] = {
    "EUR": ("USD", "EUR.USD", 0.00005),
    "GBP": ("USD", "GBP.USD", 0.00005),
    "USD": ("JPY", "USD.JPY", 0.005),
}
_OPTION_ID_BASE = 1_000_000_000
_OPTION_ID_SPAN = (1 << 31) - 1 - _OPTION_ID_BASE


@dataclass(frozen=True, slots=True)
class SimContract:
    """One contract as the simulator knows it.

    Attributes:
        con_id: IB contract id (never 0).
        symbol: underlying symbol (``SPX`` for both SPX and SPXW options).
        sec_type: ``STK``, ``IND``, ``OPT`` or ``CASH``.
        exchange: the exchange echoed back (the requested one, else the default).
        market_symbol: the market symbol whose prices drive it (the option family for options).
        tick_style: which tick-size rule applies.
        occ_id: the market's contract id for options (``SPY260320C00600000``).
        expiry: option expiration date.
        am_settled: SPX AM-settled monthlies (last traded the day before).
    """

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    market_symbol: str
    tick_style: TickStyle
    long_name: str = ""
    multiplier: str = ""
    expiry: date | None = None
    strike: float = 0.0
    right: str = ""
    under_con_id: int = 0
    under_sec_type: str = ""
    occ_id: str = ""
    am_settled: bool = False
    stock_type: str = ""

    @property
    def expiry_text(self) -> str:
        """``YYYYMMDD`` for options, ``''`` otherwise."""
        return self.expiry.strftime("%Y%m%d") if self.expiry else ""

    @property
    def multiplier_value(self) -> float:
        """The contract multiplier as a number (1 for stocks and FX)."""
        return float(self.multiplier) if self.multiplier else 1.0

    @property
    def tradable(self) -> bool:
        """Indices cannot be traded."""
        return self.sec_type != "IND"

    @property
    def entitlement_symbol(self) -> str:
        """The symbol whose market-data entitlement covers this contract."""
        return self.symbol

    def fields11(self, exchange_slot: str) -> list[str | int | float]:
        """conId, symbol, secType, lastTradeDate, strike, right, multiplier, <exchange_slot>, currency,
        localSymbol, tradingClass (the contract block of position, openOrder, execDetails...)."""
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.expiry_text,
            self.strike,
            self.right,
            self.multiplier,
            exchange_slot,
            self.currency,
            self.local_symbol,
            self.trading_class,
        ]

    def at(self, exchange: str) -> SimContract:
        """The same contract echoed on ``exchange``."""
        return self if exchange == self.exchange or not exchange else replace(self, exchange=exchange)


def price_increment(contract: SimContract, price: float) -> float:
    """The minimum price variation of ``contract`` at ``price``."""
    style = contract.tick_style
    if style == "stock":
        return 0.01 if price >= 1.0 else 0.0001
    if style == "index" or style == "etf":
        return 0.01
    if style == "fx":
        return FX_PAIRS.get(contract.symbol, ("", "", 0.00005))[2]
    if style == "spx":
        return 0.05 if price < 3.0 else 0.10
    return 0.01 if price < 3.0 else 0.05


def to_tick(price: float, increment: float) -> float:
    """``price`` rounded to the nearest multiple of ``increment``."""
    return round(round(price / increment) * increment, 10)


def option_con_id(occ_id: str) -> int:
    """The stable conId of the option with market id ``occ_id``."""
    return _OPTION_ID_BASE + stable_key("tws-conid", occ_id) % _OPTION_ID_SPAN


def occ_local_symbol(root: str, expiry: date, is_call: bool, strike: float) -> str:
    """The OCC/IB local symbol, e.g. ``SPY   260320C00600000``."""
    return f"{root:<6}{expiry:%y%m%d}{'C' if is_call else 'P'}{round(strike * 1000):08d}"


class ContractUniverse:
    """Resolves client contract descriptions against the simulated market.

    Option lookups price the market's chain (cached by the market per second), so call
    ``resolve`` and ``by_con_id`` from a worker thread, not the event loop.

    Args:
        market: the simulated market.
    """

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self._lock = threading.Lock()
        self._registry: dict[int, SimContract] = {}
        self._option_index: dict[tuple[str, date], dict[int, int]] = {}
        self._underlyings = {c.con_id: c for c in (self._underlying(s) for s in market.symbols) if c is not None}
        self._underlyings.update({c.con_id: c for c in (self._fx(s) for s in FX_PAIRS)})
        self._by_symbol = {(c.symbol, c.sec_type, c.currency): c for c in self._underlyings.values()}

    # ------------------------------------------------------------------ underlyings
    def _underlying(self, symbol: str) -> SimContract | None:
        spec = self.market.spec(symbol)
        if symbol == "SPXW":  # a trading class of SPX options, not an instrument of its own
            return None
        if spec.kind in ("index", "vol_index"):
            exchange = _INDEX_EXCHANGE.get(symbol, "CBOE")
            con_id = _REAL_CON_IDS.get((symbol, "IND")) or self._derived_id(symbol, "IND")
            return SimContract(
                con_id,
                symbol,
                "IND",
                exchange,
                exchange,
                "USD",
                symbol,
                symbol,
                symbol,
                "index",
                long_name=spec.name or symbol,
            )
        primary = _ETFS.get(symbol) or (
            "NYSE" if symbol in _NYSE else "NASDAQ" if symbol in _NASDAQ else self._hash_primary(symbol)
        )
        con_id = _REAL_CON_IDS.get((symbol, "STK")) or self._derived_id(symbol, "STK")
        trading_class = "NMS" if primary == "NASDAQ" and symbol not in _ETFS else symbol
        return SimContract(
            con_id,
            symbol,
            "STK",
            "SMART",
            primary,
            "USD",
            symbol,
            trading_class,
            symbol,
            "stock",
            long_name=spec.name or symbol,
            stock_type="ETF" if symbol in _ETFS else "COMMON",
        )

    @staticmethod
    def _hash_primary(symbol: str) -> str:
        return "NYSE" if stable_key("tws-primary", symbol) % 2 else "NASDAQ"

    @staticmethod
    def _derived_id(symbol: str, sec_type: str) -> int:
        return 100_000_000 + stable_key("tws-conid", symbol, sec_type) % 800_000_000

    @staticmethod
    def _fx(symbol: str) -> SimContract:
        currency, trading_class, _ = FX_PAIRS[symbol]
        con_id = _REAL_CON_IDS[(symbol, "CASH")]
        return SimContract(
            con_id,
            symbol,
            "CASH",
            "IDEALPRO",
            "",
            currency,
            trading_class,
            trading_class,
            trading_class.replace(".", ""),
            "fx",
            long_name=f"{symbol}/{currency}",
        )

    def underlyings(self) -> list[SimContract]:
        """Every stock, ETF, index and FX contract."""
        return list(self._underlyings.values())

    def underlying(self, symbol: str, sec_type: str = "") -> SimContract | None:
        """The stock/ETF/index contract of ``symbol`` (STK preferred when ``sec_type`` is empty)."""
        for st in (sec_type,) if sec_type else ("STK", "IND"):
            found = self._by_symbol.get((symbol.upper(), st, "USD"))
            if found is not None:
                return found
        return None

    def option_family(self, symbol: str) -> str | None:
        """The market symbol whose chain lists ``symbol``'s options, or None if it has none."""
        symbol = symbol.upper()
        if symbol == "SPXW":
            symbol = "SPX"
        if not self.market.is_listed(symbol) or self.market.spec(symbol).option_style == "none":
            return None
        return symbol

    # ------------------------------------------------------------------ resolution
    def resolve(self, q: ContractQuery, now: datetime) -> list[SimContract]:
        """Every contract matching ``q`` (one for a complete description; none when unknown)."""
        if q.con_id:
            found = self.by_con_id(q.con_id, now)
            return [found.at(self._echo_exchange(found, q.exchange))] if found and self._exchange_ok(found, q) else []
        if q.sec_type == "OPT":
            return self._options(q, now)
        if q.sec_type in ("", "STK", "IND", "CASH"):
            out = []
            for c in self._underlyings.values():
                if c.symbol == q.symbol and (not q.sec_type or c.sec_type == q.sec_type) and self._matches(c, q):
                    out.append(c.at(self._echo_exchange(c, q.exchange)))
            return out
        return []

    def _matches(self, c: SimContract, q: ContractQuery) -> bool:
        if q.currency and q.currency != c.currency:
            return False
        if q.local_symbol and q.local_symbol.upper() != c.local_symbol.upper():
            return False
        aliases = (c.primary_exchange, "ISLAND") if c.primary_exchange == "NASDAQ" else (c.primary_exchange,)
        if q.primary_exchange and q.primary_exchange not in aliases:
            return False
        return self._exchange_ok(c, q)

    @staticmethod
    def _exchange_ok(c: SimContract, q: ContractQuery) -> bool:
        ex = q.exchange
        if not ex:
            return True
        if c.sec_type == "STK":
            return ex in STOCK_EXCHANGES or ex == c.primary_exchange
        if c.sec_type == "OPT":
            return ex in (("SMART", "CBOE") if c.tick_style == "spx" else OPTION_EXCHANGES)
        return ex == c.exchange

    @staticmethod
    def _echo_exchange(c: SimContract, requested: str) -> str:
        return requested if requested and c.sec_type in ("STK", "OPT") else c.exchange

    def by_con_id(self, con_id: int, now: datetime) -> SimContract | None:
        """The contract with ``con_id`` (options listed at ``now``), or None."""
        found = self._underlyings.get(con_id)
        if found is not None:
            return found
        with self._lock:
            found = self._registry.get(con_id)
        if found is not None or con_id < _OPTION_ID_BASE:
            return found
        day = self.market.calendar.session_second(now)[0]
        for family in self._families():
            key = (family, self.market.calendar.day(day))
            chain = self.market.chain(family, now)
            with self._lock:
                index = self._option_index.get(key)
            if index is None:
                index = {}
                for i in range(len(chain) - 1, -1, -1):  # reversed: the nearest expiry wins a clash
                    index[option_con_id(str(chain.contract_id[i]))] = i
                with self._lock:
                    self._option_index[key] = index
            row = index.get(con_id)
            if row is not None and row < len(chain):
                return self._option_row(family, chain, row, "SMART")
        return None

    def _families(self) -> list[str]:
        return [s for s in self.market.symbols if s != "SPXW" and self.market.spec(s).option_style != "none"]

    def _options(self, q: ContractQuery, now: datetime) -> list[SimContract]:
        family = self.option_family(q.symbol)
        if family is None or (q.currency and q.currency != "USD") or (q.multiplier not in ("", "100")):
            return []
        chain = self.market.chain(family, now)
        mask = np.ones(len(chain), dtype=bool)
        if q.symbol == "SPXW" and not q.trading_class:
            mask &= chain.root == "SPXW"
        if q.trading_class:
            mask &= chain.root == q.trading_class
        if q.local_symbol:
            mask &= chain.contract_id == q.local_symbol.replace(" ", "").upper()
        if q.right in ("C", "P"):
            mask &= chain.is_call == (q.right == "C")
        if q.strike > 0:
            mask &= np.isclose(chain.strike, q.strike, rtol=0.0, atol=1e-6)
        expiry = q.expiry
        if len(expiry) == 8 and expiry.isdigit():
            mask &= chain.expiration == np.datetime64(f"{expiry[:4]}-{expiry[4:6]}-{expiry[6:]}", "D")
        elif len(expiry) == 6 and expiry.isdigit():
            mask &= chain.expiration.astype("datetime64[M]") == np.datetime64(f"{expiry[:4]}-{expiry[4:]}", "M")
        elif expiry:
            return []
        rows = np.flatnonzero(mask)
        exchange = q.exchange or "SMART"
        out = [self._option_row(family, chain, int(r), exchange) for r in rows]
        return [c for c in out if self._exchange_ok(c, q)]

    def _option_row(self, family: str, chain: OptionChainTable, row: int, exchange: str) -> SimContract:
        occ = str(chain.contract_id[row])
        root = str(chain.root[row])
        expiry: date = chain.expiration[row].astype(date)
        is_call = bool(chain.is_call[row])
        strike = float(chain.strike[row])
        underlying = self.underlying(family, "IND" if family == "SPX" else "")
        style = self.market.spec(family).option_style
        contract = SimContract(
            con_id=option_con_id(occ),
            symbol=family,
            sec_type="OPT",
            exchange=exchange,
            primary_exchange="",
            currency="USD",
            local_symbol=occ_local_symbol(root, expiry, is_call, strike),
            trading_class=root,
            market_symbol=family,
            tick_style="spx" if style == "spx" else ("etf" if style == "etf" else "single"),
            long_name=self.market.spec(family).name or family,
            multiplier="100",
            expiry=expiry,
            strike=strike,
            right="C" if is_call else "P",
            under_con_id=underlying.con_id if underlying else 0,
            under_sec_type=underlying.sec_type if underlying else "STK",
            occ_id=occ,
            am_settled=root == "SPX",
        )
        with self._lock:
            self._registry[contract.con_id] = replace(contract, exchange="SMART")
        return contract

    # ------------------------------------------------------------------ option parameters
    def option_parameters(
        self, symbol: str, now: datetime
    ) -> list[tuple[str, int, str, str, list[str], list[float]]] | None:
        """reqSecDefOptParams rows (exchange, underConId, tradingClass, multiplier, expirations, strikes).

        Returns None when the symbol is unknown; an empty list when it has no options.
        """
        underlying = self.underlying(symbol)
        family = self.option_family(symbol)
        if underlying is None:
            return None
        if family is None:
            return []
        chain = self.market.chain(family, now)
        rows: list[tuple[str, int, str, str, list[str], list[float]]] = []
        exchanges = ("SMART", "CBOE") if family == "SPX" else ("SMART", "CBOE", "AMEX", "ISE")
        for root in sorted(set(chain.root.tolist())):
            part = chain.take(chain.root == root)
            expirations = [str(d).replace("-", "") for d in np.unique(part.expiration)]
            strikes = [float(s) for s in np.unique(part.strike)]
            for exchange in exchanges:
                rows.append((exchange, underlying.con_id, root, "100", expirations, strikes))
        return rows
