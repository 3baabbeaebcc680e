"""REALTIME_OPTIONS and HISTORICAL_OPTIONS payloads → one ``OptionChainSnapshot`` per expiry.

Both the JSON envelope (``{"endpoint", "message", "data": [...]}``) and the CSV form are
read into the same text columns and go through one columnar pass, so the two give
identical snapshots. The pass is vectorised (``option_chain_arrow``) when pyarrow is
installed and every cell is text, and pure Python (``option_chain_rows``) otherwise; the
row rules themselves live in ``option_chain_rows``.

Greek units. AlphaVantage quotes vega per 1 volatility point, rho per 1 rate point and
theta per calendar day; ours (docs analytics.md) are per 1.00 vol, per 1.00 rate and per
year. The reference's 0DTE IBM row pins this down: with S ≈ 235.1 (strike 115 + mark
120.10), σ = 5.98546 and T = 1/365, Black-Scholes gives vega/100 = 0.00252, rho/100 =
0.00310 and annual theta/365 = -0.7655 (AV: 0.00252, 0.00310, -0.76550), while /252 would
be -1.11. So we multiply vega and rho by 100 and theta by 365; delta, gamma and IV (a
decimal, not a percentage) are already in our units. ``tests/.../test_normalizer_options``
re-derives the row with the analytics formulas.

Junk greeks (IV outside (0, max_implied_vol], |delta| > 1, a delta of the wrong sign,
negative gamma or vega, or an unparseable greek) null all six greek values of that row;
its prices stay, the row is listed in ``NormalizeResult.row_flags`` and its snapshot is
flagged ``junk_greeks``. A row dated before the newest row of its snapshot (a quote from an
earlier session) keeps its values and is flagged ``stale``. The snapshot carries each
row's flags in its ``row_flags`` column (empty when no row is flagged), next to the
source's contract id, mark and sizes. Rows within one expiry are sorted by strike, calls
first; a repeated (strike, right) keeps the row AlphaVantage listed first.

Speed (a 10k-contract SPY chain every 12 s): the CSV is read with its number columns typed
(``option_chain_arrow.read_typed_csv``, falling back to text columns and the cell rules at
the first doubtful cell), and the snapshots are built from columns whose cell types the
passes guarantee (``OptionChainSnapshot.from_typed_columns``) instead of being validated
cell by cell again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from quanticity.data_ingestion import option_chain_arrow
from quanticity.data_ingestion.av_csv import CsvShapeError, read_csv_columns
from quanticity.data_ingestion.av_values import Column, parse_date, session_close_utc
from quanticity.data_ingestion.normalize_contract import NormalizeContext, NormalizeResult, RowFlag, decode_error
from quanticity.data_ingestion.option_chain_rows import (
    GREEKS,
    NUMBERS,
    TEXT,
    ChainGroup,
    contract_label,
    group_rows_python,
)
from quanticity.schemas.base import stable_id
from quanticity.schemas.market import OptionChainSnapshot

OPTION_FUNCTIONS = frozenset({"REALTIME_OPTIONS", "HISTORICAL_OPTIONS"})

_FIELDS = (*TEXT, *NUMBERS)
_REQUIRED_COLUMNS = ("symbol", "expiration", "strike", "type")


def normalize_options_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize the JSON form of an options reply.

    Raises:
        RecordDecodeError: the reply is AlphaVantage's artificial premium sample, or has no
            ``data`` list.
    """
    message = payload.get("message")
    if isinstance(message, str) and ("premium" in message.lower() or "artificial" in message.lower()):
        raise decode_error(function, "not_entitled", f"artificial sample, not data: {message}")
    data = payload.get("data")
    if not isinstance(data, list):
        raise decode_error(function, "missing_section", f"no 'data' list (keys: {sorted(map(str, payload))[:8]})")
    result = NormalizeResult(function, rows_in=len(data))
    if message is not None and message != "success":
        result.flag("unexpected_message")
    rows: list[Mapping[str, Any]] = []
    row_ids: list[int] = []
    for index, row in enumerate(data):
        if isinstance(row, dict):
            rows.append(row)
            row_ids.append(index)
        else:
            result.reject("not_an_object", f"contract row is {type(row).__name__}", index)
    columns: dict[str, Column] = {name: [row.get(name) for row in rows] for name in _FIELDS}
    if rows and all(all(cell is None for cell in columns[name]) for name in GREEKS):
        result.flag("no_greeks")
    _normalize_chain(function, params, columns, row_ids, context, result)
    return result


def normalize_options_csv(
    function: str, params: Mapping[str, str], body: bytes, context: NormalizeContext, *, typed: bool = True
) -> NormalizeResult:
    """Normalize the CSV form of an options reply.

    Args:
        typed: try the typed reader first (``option_chain_arrow.read_typed_csv``); tests
            turn it off to check that both readers give the same result.

    Raises:
        RecordDecodeError: the header is unreadable or lacks a required column.
    """
    table = option_chain_arrow.read_typed_csv(body) if typed else None
    try:
        table = table or read_csv_columns(body)
    except CsvShapeError as exc:
        raise decode_error(function, "bad_csv", str(exc)) from exc
    missing = [name for name in _REQUIRED_COLUMNS if name not in table.header]
    if missing:
        raise decode_error(function, "missing_column", f"CSV header lacks {missing}: {list(table.header)[:20]}")
    result = NormalizeResult(function, rows_in=table.rows_in)
    for index, detail in table.ragged:
        result.reject("ragged_row", detail, index)
    if table.rows and not any(name in table.header for name in GREEKS):
        result.flag("no_greeks")
    _normalize_chain(function, params, table.columns, table.row_ids, context, result)
    return result


def _normalize_chain(
    function: str,
    params: Mapping[str, str],
    columns: Mapping[str, Column],
    row_ids: Sequence[int],
    context: NormalizeContext,
    result: NormalizeResult,
    *,
    vectorised: bool = True,
) -> None:
    """Check, group and emit the rows; one snapshot per (symbol, expiry)."""
    if result.rows_in == 0:
        result.mark_empty("no_contracts")
        return
    groups = None
    if vectorised and option_chain_arrow.available():
        groups = option_chain_arrow.group_rows_arrow(columns, row_ids, context.max_implied_vol, result)
    if groups is None:
        groups = group_rows_python(columns, row_ids, context.max_implied_vol, result)
    flagged = _row_flags(groups, result)
    for group in groups:
        event_time = _event_time(function, params, group, context)
        flags = [
            flag
            for flag, present in (
                ("stale", context.is_stale(function, event_time)),
                ("partial", group.partial),
                ("junk_greeks", group.junk),
            )
            if present
        ]
        try:
            # The columns are typed by construction (ChainGroup): validated as columns, not cell by cell.
            snapshot = OptionChainSnapshot.from_typed_columns(
                {**group.columns, "row_flags": _group_row_flags(group, flagged)},
                **context.envelope(),
                record_id=stable_id("alphavantage", function, group.symbol, group.expiry, event_time.isoformat()),
                event_time=event_time,
                symbol=group.symbol,
                expiry=group.expiry,
                flags=flags,
            )
        except (ValidationError, ValueError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            for row in group.row_ids:
                result.reject("invalid_record", f"{group.symbol} {group.expiry}: {detail}", row)
            continue
        if "stale" in flags:
            result.flag("stale")
        result.records.append(snapshot)
        result.rows_out += len(group.row_ids)
    if result.rejected_rows:
        result.flag("partial")


def _row_flags(groups: Sequence[ChainGroup], result: NormalizeResult) -> dict[int, tuple[str, ...]]:
    """Flags by payload row: the row rules' (``result.row_flags``) plus ``stale`` for a row
    dated before the newest row of its snapshot. Stale rows join ``result.row_flags``."""
    flagged = {flag.row_index: flag.flags for flag in result.row_flags}
    stale = {group.row_ids[i]: (group, i) for group in groups for i in group.stale_rows}
    if not stale:
        return flagged
    labels = {flag.row_index: flag.key for flag in result.row_flags}
    for row, (group, i) in stale.items():
        flagged[row] = (*flagged.get(row, ()), "stale")
        columns = group.columns
        name = contract_label(
            columns["contract_id"][i], group.symbol, group.expiry, float(columns["strike"][i]), columns["right"][i]
        )
        labels.setdefault(row, name)
    result.row_flags[:] = [RowFlag(row, labels[row], flagged[row]) for row in sorted(flagged)]
    return flagged


def _group_row_flags(group: ChainGroup, flagged: Mapping[int, tuple[str, ...]]) -> list[list[str]]:
    """The snapshot's ``row_flags`` column: empty when none of its rows is flagged."""
    if not flagged or flagged.keys().isdisjoint(group.row_ids):
        return []
    return [list(flagged.get(row, ())) for row in group.row_ids]


def _event_time(function: str, params: Mapping[str, str], group: ChainGroup, context: NormalizeContext) -> datetime:
    """When the snapshot's data is from.

    The rows carry only a trading date. A historical snapshot is as of that session's
    close. A realtime snapshot is as of receipt, but never later than the close of its
    own date: Friday's chain fetched on Saturday is Friday-close data, and gets tagged
    stale accordingly.
    """
    newest = group.newest_day
    if newest is None and function == "HISTORICAL_OPTIONS":
        try:
            newest = parse_date(params.get("date"))
        except ValueError:
            newest = None
    if newest is None:
        return context.ingest_time
    close = session_close_utc(newest)
    return close if function == "HISTORICAL_OPTIONS" else min(close, context.ingest_time)
