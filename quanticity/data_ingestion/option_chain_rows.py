"""The rules for one option-chain row, and the pure-Python pass that applies them to a chain.

A row is rejected (in this order) for a bad symbol, type, expiration or strike, or for
expiring before its own snapshot date. A kept row has unparseable or negative prices and
sizes withheld (``None``), and its six greek values nulled when they are junk: IV outside
(0, max], |delta| > 1, a delta of the wrong sign for its right, negative gamma or vega,
or an unparseable greek. What was withheld is named in the row's flags.

``option_chain_arrow`` applies the same rules vectorised; it hands every row that is not
plainly clean to ``ChainRows`` here, so this module alone defines the outcome, and a
property test checks that both passes give identical results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from quanticity.data_ingestion.av_values import (
    MISSING_MARKERS,
    Column,
    NumberColumn,
    describe,
    parse_date,
    parse_number_column,
    string_column,
)
from quanticity.data_ingestion.normalize_contract import NormalizeResult, RowFlag
from quanticity.schemas.market import Right

# Prices, sizes and counts: withheld when unparseable or negative.
PRICES = ("bid", "ask", "last", "volume", "open_interest", "mark", "bid_size", "ask_size")
GREEKS = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")
TEXT = ("contractID", "symbol", "expiration", "type", "date")
NUMBERS = ("strike", *PRICES, *GREEKS)
RIGHTS: dict[str, Right] = {"call": "C", "put": "P", "CALL": "C", "PUT": "P", "Call": "C", "Put": "P"}
SYMBOL = re.compile(r"[A-Z0-9.\-^]{1,16}")
_ABSENT = (None, *sorted(MISSING_MARKERS))

# Our units per AlphaVantage unit, by AlphaVantage column (normalize_options explains them).
GREEK_SCALE = {"implied_volatility": 1.0, "delta": 1.0, "gamma": 1.0, "theta": 365.0, "vega": 100.0, "rho": 100.0}
# AlphaVantage column → OptionChainSnapshot field.
OUR_NAME = {"implied_volatility": "implied_vol"}

# A rejection: (reason, detail, the (symbol, expiry) group it damaged if known).
Rejection = tuple[str, str, tuple[str, date] | None]


@dataclass(slots=True)
class ChainGroup:
    """The kept rows of one (symbol, expiry), in strike order, ready to become a snapshot.

    Attributes:
        columns: snapshot field → values (``strike``, ``right``, ``contract_id``, prices,
            greeks in our units): lists with ``None`` for absent values, or (number
            columns of the vectorised pass) float64 arrays with NaN.
        row_ids: the payload row of each value.
        newest_day: the latest snapshot date among the rows, if any row had one.
        partial: some row of this group was rejected.
        junk: some kept row had its greeks nulled.
        stale_rows: positions (within the group) of rows dated before ``newest_day``:
            their quotes are from an earlier session than the rest of the snapshot.
    """

    symbol: str
    expiry: date
    columns: dict[str, Any]
    row_ids: list[int]
    newest_day: date | None
    partial: bool
    junk: bool
    stale_rows: list[int]


class ChainRows:
    """Parsed cells of a chain (or of some rows of it) and the per-row rules."""

    def __init__(self, text: Mapping[str, list[object]], numbers: Mapping[str, NumberColumn], max_iv: float) -> None:
        self.text = text
        self.numbers = numbers
        self.prices = {name: list(numbers[name].values) for name in PRICES}
        self.max_iv = max_iv
        rows = len(numbers["strike"].values)
        self.greeks_ok = [True] * rows
        self.days: list[date | None] = [None] * rows
        self.strikes: list[float] = [0.0] * rows
        self.rights: list[Right] = ["C"] * rows
        self.nulled: dict[str, list[int]] = {name: [] for name in PRICES}
        self._symbols: dict[str, bool] = {}
        self._day_of = cached_date_parser()

    @classmethod
    def from_columns(cls, columns: Mapping[str, Column], rows: int, max_iv: float) -> ChainRows:
        """Parse whole raw columns (``None`` for a column the payload lacks)."""
        text = {name: string_column(columns.get(name), rows) for name in TEXT}
        numbers = {name: parse_number_column(columns.get(name), rows) for name in NUMBERS}
        return cls(text, numbers, max_iv)

    def identify(self, pos: int) -> tuple[str, date] | Rejection:
        """``(symbol, expiry)`` of a usable row, else why it is rejected."""
        text = self.text
        symbol, kind = text["symbol"][pos], text["type"][pos]
        if not isinstance(symbol, str) or not self._valid_symbol(symbol):
            return "bad_symbol", f"symbol {describe(symbol)}", None
        right = RIGHTS.get(kind) if isinstance(kind, str) else None
        if right is None:
            return "bad_type", f"type {describe(kind)}", None
        expiry = self._day_of(text["expiration"][pos])
        if expiry is None:
            return "bad_expiration", f"expiration {describe(text['expiration'][pos])}", None
        strike = self.numbers["strike"].values[pos]
        if strike is None or strike <= 0:
            cell = self.numbers["strike"].bad.get(pos, "missing" if strike is None else repr(strike))
            return "bad_strike", f"strike {cell}", (symbol, expiry)
        day = self.days[pos] = self._day_of(text["date"][pos])
        if day is not None and expiry < day:
            return "expired", f"expiration {expiry} before snapshot date {day}", (symbol, expiry)
        self.strikes[pos], self.rights[pos] = strike, right
        return symbol, expiry

    def _valid_symbol(self, symbol: str) -> bool:
        valid = self._symbols.get(symbol)
        if valid is None:
            valid = self._symbols[symbol] = SYMBOL.fullmatch(symbol) is not None
        return valid

    def flags(self, pos: int) -> list[str]:
        """What is withheld or doubtful in a usable row (after ``identify``); withholds it."""
        flags: list[str] = []
        for name in PRICES:
            value = self.prices[name][pos]
            if pos in self.numbers[name].bad:
                flags.append(f"bad_{name}")
            elif value is not None and value < 0:
                self.prices[name][pos] = None
                self.nulled[name].append(pos)
                flags.append(f"negative_{name}")
        bid, ask = self.prices["bid"][pos], self.prices["ask"][pos]
        if bid is not None and ask is not None and bid > ask:
            flags.append("crossed_quote")
        if self.days[pos] is None and self.text["date"][pos] not in _ABSENT:
            flags.append("bad_date")
        problems = self._greek_problems(pos)
        if problems:
            self.greeks_ok[pos] = False
            flags.extend(f"junk_greeks:{problem}" for problem in problems)
        return flags

    def _greek_problems(self, pos: int) -> list[str]:
        numbers = self.numbers
        problems = [f"bad_{name}" for name in GREEKS if pos in numbers[name].bad]
        iv = numbers["implied_volatility"].values[pos]
        if iv is not None and iv <= 0:
            problems.append("iv_not_positive")
        elif iv is not None and iv > self.max_iv:
            problems.append(f"iv_above_{self.max_iv:g}")
        delta = numbers["delta"].values[pos]
        if delta is not None and abs(delta) > 1:
            problems.append("delta_out_of_range")
        elif delta is not None and (delta < 0 if self.rights[pos] == "C" else delta > 0):
            problems.append("delta_sign")
        gamma, vega = numbers["gamma"].values[pos], numbers["vega"].values[pos]
        if gamma is not None and gamma < 0:
            problems.append("gamma_negative")
        if vega is not None and vega < 0:
            problems.append("vega_negative")
        return problems

    def label(self, pos: int, symbol: str, expiry: date) -> str:
        """The contract id, or a readable stand-in when the row has none."""
        return contract_label(self.text["contractID"][pos], symbol, expiry, self.strikes[pos], self.rights[pos])


def contract_label(contract_id: object, symbol: str, expiry: date, strike: float, right: str) -> str:
    """How rejections and flags name a contract."""
    return contract_id if isinstance(contract_id, str) else f"{symbol} {expiry} {strike:g} {right}"


def duplicate_detail(label: str, symbol: str, expiry: date, strike: float) -> str:
    """The detail of a ``duplicate_contract`` rejection."""
    return f"{label} repeats {symbol} {expiry} {strike:g}"


def cached_date_parser() -> Callable[[object], date | None]:
    """A date parser that remembers each distinct cell (a chain has a handful of dates)."""
    seen: dict[str, date | None] = {}

    def day_of(cell: object) -> date | None:
        if not isinstance(cell, str):
            return None
        if cell not in seen:
            try:
                seen[cell] = parse_date(cell)
            except ValueError:
                seen[cell] = None
        return seen[cell]

    return day_of


def group_rows_python(
    columns: Mapping[str, Column], row_ids: Sequence[int], max_iv: float, result: NormalizeResult
) -> list[ChainGroup]:
    """Apply the row rules to every row and group the kept ones (the pure-Python pass).

    Rejections and flags go to ``result``; the groups come back sorted by (symbol, expiry).
    """
    chain = ChainRows.from_columns(columns, len(row_ids), max_iv)
    groups: dict[tuple[str, date], list[int]] = {}
    damaged: set[tuple[str, date]] = set()
    for pos, row in enumerate(row_ids):
        identity = chain.identify(pos)
        if len(identity) == 3:
            reason, detail, group = identity
            result.reject(reason, detail, row)
            if group is not None:
                damaged.add(group)
            continue
        symbol, expiry = identity
        flags = chain.flags(pos)
        if flags:
            result.row_flags.append(RowFlag(row, chain.label(pos, symbol, expiry), tuple(flags)))
        groups.setdefault((symbol, expiry), []).append(pos)
    greeks = {
        OUR_NAME.get(name, name): scaled(chain.numbers[name].values, GREEK_SCALE[name], chain.greeks_ok)
        for name in GREEKS
    }
    out: list[ChainGroup] = []
    for (symbol, expiry), members in sorted(groups.items()):
        members.sort(key=lambda p: (chain.strikes[p], chain.rights[p], row_ids[p]))
        kept: list[int] = []
        repeats = 0
        for pos in members:
            if kept and (chain.strikes[kept[-1]], chain.rights[kept[-1]]) == (chain.strikes[pos], chain.rights[pos]):
                label = chain.label(pos, symbol, expiry)
                result.reject(
                    "duplicate_contract", duplicate_detail(label, symbol, expiry, chain.strikes[pos]), row_ids[pos]
                )
                repeats += 1
            else:
                kept.append(pos)
        contract_ids = chain.text["contractID"]
        columns_out: dict[str, list[Any]] = {
            "strike": [chain.strikes[p] for p in kept],
            "right": [chain.rights[p] for p in kept],
            "contract_id": [cell if isinstance(cell := contract_ids[p], str) else None for p in kept],
        }
        columns_out |= {name: [chain.prices[name][p] for p in kept] for name in PRICES}
        columns_out |= {name: [column[p] for p in kept] for name, column in greeks.items()}
        days = [chain.days[p] for p in kept]
        newest = max((day for day in days if day is not None), default=None)
        out.append(
            ChainGroup(
                symbol=symbol,
                expiry=expiry,
                columns=columns_out,
                row_ids=[row_ids[p] for p in kept],
                newest_day=newest,
                partial=bool(repeats) or (symbol, expiry) in damaged,
                junk=not all(chain.greeks_ok[p] for p in kept),
                stale_rows=[i for i, day in enumerate(days) if day is not None and newest is not None and day < newest],
            )
        )
    return out


def scaled(values: Sequence[float | None], factor: float, keep: Sequence[bool]) -> list[float | None]:
    """``values`` times ``factor`` where ``keep`` holds, ``None`` elsewhere."""
    if factor == 1.0:
        return [value if ok else None for value, ok in zip(values, keep, strict=True)]
    return [value * factor if ok and value is not None else None for value, ok in zip(values, keep, strict=True)]
