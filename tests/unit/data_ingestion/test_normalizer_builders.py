"""Payload builders for the normalizer tests, in AlphaVantage's exact shapes (reference §2–§7).

Verbatim reference examples live in ``payloads/``; these build bigger replies of the same
shapes (string numbers, newest first, US/Eastern naive keys) so one set of rows can be
rendered as JSON and as CSV. The tests at the bottom check the builders themselves.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from quanticity.data_ingestion.normalizer import NormalizeContext

PAYLOADS = Path(__file__).parent / "payloads"

OPTION_FIELDS = [
    "contractID", "symbol", "expiration", "strike", "type", "last", "mark", "bid", "bid_size", "ask", "ask_size",
    "volume", "open_interest", "date", "implied_volatility", "delta", "gamma", "theta", "vega", "rho",
]  # fmt: skip

# 2026-03-02 is a Monday; 18:00 UTC is 13:00 New York (EST), mid-session.
SESSION_DAY = date(2026, 3, 2)
MID_SESSION = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def context(ingest_time: datetime = MID_SESSION, **overrides: Any) -> NormalizeContext:
    """A normalize context for tests (run ``run-t``, sim mode)."""
    return NormalizeContext(run_id="run-t", mode="sim", ingest_time=ingest_time, **overrides)


def payload(name: str) -> bytes:
    """A stored fixture payload."""
    return (PAYLOADS / name).read_bytes()


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def option_rows(
    contracts: int, *, symbol: str = "SPY", spot: float = 600.0, day: date = SESSION_DAY, seed: int = 1
) -> list[dict[str, str]]:
    """A chain of ``contracts`` rows (calls and puts, ~30 expiries), priced with Black-Scholes.

    Values are AlphaVantage strings in its units (theta per day, vega and rho per point),
    ordered by expiration then strike, call before put, as AlphaVantage sends them.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    expiries = [day + timedelta(days=offset) for offset in (0, 1, 2, 3, 4, 7, 14, 21, 28, 35, 42, 49, 56, 63, 91)]
    expiries += [day + timedelta(days=91 + 30 * k) for k in range(1, 16)]
    per_expiry = max(2, math.ceil(contracts / (2 * len(expiries))))
    rows: list[dict[str, str]] = []
    for expiry in expiries:
        t = max((expiry - day).days, 1) / 365.0
        for k in range(per_expiry):
            strike = round(spot * (0.5 + k / per_expiry), 0)
            for kind in ("call", "put"):
                if len(rows) >= contracts:
                    return rows
                rows.append(_option_row(symbol, expiry, day, strike, kind, spot, t, 0.15 + 0.1 * rng.random()))
    return rows


def _option_row(
    symbol: str, expiry: date, day: date, strike: float, kind: str, spot: float, t: float, vol: float
) -> dict[str, str]:
    r, phi = 0.04, 1.0 if kind == "call" else -1.0
    sq = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (r + vol * vol / 2) * t) / sq
    d2 = d1 - sq
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    price = phi * (spot * _ncdf(phi * d1) - strike * math.exp(-r * t) * _ncdf(phi * d2))
    theta = -spot * pdf * vol / (2 * math.sqrt(t)) - phi * r * strike * math.exp(-r * t) * _ncdf(phi * d2)
    bid, ask = max(price - 0.05, 0.0), price + 0.05
    return {
        "contractID": f"{symbol}{expiry:%y%m%d}{kind[0].upper()}{int(strike * 1000):08d}",
        "symbol": symbol,
        "expiration": expiry.isoformat(),
        "strike": f"{strike:.2f}",
        "type": kind,
        "last": f"{price:.2f}",
        "mark": f"{(bid + ask) / 2:.2f}",
        "bid": f"{bid:.2f}",
        "bid_size": "12",
        "ask": f"{ask:.2f}",
        "ask_size": "30",
        "volume": "150",
        "open_interest": "2400",
        "date": day.isoformat(),
        "implied_volatility": f"{vol:.5f}",
        "delta": f"{phi * _ncdf(phi * d1):.5f}",
        "gamma": f"{pdf / (spot * sq):.5f}",
        "theta": f"{theta / 365:.5f}",
        "vega": f"{spot * pdf * math.sqrt(t) / 100:.5f}",
        "rho": f"{phi * strike * t * math.exp(-r * t) * _ncdf(phi * d2) / 100:.5f}",
    }


def options_json(rows: Sequence[Mapping[str, object]], *, endpoint: str = "Realtime Options") -> bytes:
    """The JSON envelope of an options reply."""
    return orjson.dumps({"endpoint": endpoint, "message": "success", "data": list(rows)})


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """CSV bytes as AlphaVantage writes them (CRLF line ends, minimal quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def options_csv(rows: Sequence[Mapping[str, str]]) -> bytes:
    """The CSV form of an options reply (the realtime-with-greeks header)."""
    return to_csv(OPTION_FIELDS, ([row.get(name, "") for name in OPTION_FIELDS] for row in rows))


def intraday_json(symbol: str, interval: str, bars: Mapping[str, Sequence[str]]) -> bytes:
    """A TIME_SERIES_INTRADAY JSON reply; ``bars`` maps a key to (open, high, low, close, volume)."""
    keys = sorted(bars, reverse=True)
    series = {
        key: dict(zip(("1. open", "2. high", "3. low", "4. close", "5. volume"), bars[key], strict=True))
        for key in keys
    }
    meta = {
        "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
        "2. Symbol": symbol,
        "3. Last Refreshed": keys[0] if keys else "",
        "4. Interval": interval,
        "5. Output Size": "Compact",
        "6. Time Zone": "US/Eastern",
    }
    return orjson.dumps({"Meta Data": meta, f"Time Series ({interval})": series})


def intraday_csv(bars: Mapping[str, Sequence[str]]) -> bytes:
    """The CSV form of an intraday reply, newest first."""
    header = ("timestamp", "open", "high", "low", "close", "volume")
    return to_csv(header, ([key, *bars[key]] for key in sorted(bars, reverse=True)))


def indicator_json(
    function: str,
    symbol: str,
    interval: str,
    meta_extra: Mapping[str, object],
    rows: Mapping[str, Mapping[str, str]],
    indicator_name: str = "",
) -> bytes:
    """A technical-indicator JSON reply with the ``N: Label`` Meta Data numbering."""
    keys = sorted(rows, reverse=True)
    meta: dict[str, object] = {
        "1: Symbol": symbol,
        "2: Indicator": indicator_name or function,
        "3: Last Refreshed": keys[0] if keys else "",
        "4: Interval": interval,
        **meta_extra,
    }
    return orjson.dumps({"Meta Data": meta, f"Technical Analysis: {function}": {key: rows[key] for key in keys}})


def indicator_csv(rows: Mapping[str, Mapping[str, str]], value_keys: Sequence[str]) -> bytes:
    """The CSV form of an indicator reply (``time,<value keys>``), newest first."""
    return to_csv(
        ("time", *value_keys),
        ([key, *(rows[key].get(v, "") for v in value_keys)] for key in sorted(rows, reverse=True)),
    )


def macro_json(name: str, interval: str, unit: str, observations: Mapping[str, str]) -> bytes:
    """A macro JSON reply, newest first."""
    data = [{"date": key, "value": observations[key]} for key in sorted(observations, reverse=True)]
    return orjson.dumps({"name": name, "interval": interval, "unit": unit, "data": data})


def macro_csv(observations: Mapping[str, str]) -> bytes:
    """The CSV form of a macro reply (``timestamp,value``), newest first."""
    return to_csv(("timestamp", "value"), ([key, observations[key]] for key in sorted(observations, reverse=True)))


# ---------------------------------------------------------------------- the builders' own tests


def test_option_rows_are_av_shaped() -> None:
    """Rows carry the 20 fields in AlphaVantage's order, all strings, calls before puts."""
    rows = option_rows(200)

    assert len(rows) == 200
    assert all(list(row) == OPTION_FIELDS for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row.values())
    assert [rows[0]["type"], rows[1]["type"]] == ["call", "put"]


def test_csv_and_json_carry_the_same_cells() -> None:
    """The two renderings of one chain hold identical cell text."""
    rows = option_rows(50)
    parsed = list(csv.DictReader(io.StringIO(options_csv(rows).decode())))

    assert parsed == orjson.loads(options_json(rows))["data"]
