"""Time the option-chain normalizer on a synthetic 10k-contract SPY chain: JSON vs CSV vs a baseline.

Usage: ``python bench/normalize_chain.py [--contracts 10000] [--repeats 21]``

Prints the median (and min) wall time of, in one run on one machine:

- parse only: stdlib ``json.loads``, ``orjson.loads``, the CSV column reader;
- ``normalize`` on the JSON body and on the CSV body (pyarrow pass), and on the CSV body
  with the pure-Python pass (what runs where pyarrow is missing);
- a straightforward baseline: stdlib ``json`` + ``Decimal`` per cell + a per-row loop
  building the same ``OptionChainSnapshot`` records (no junk-greek checks, so it does less).

The machine is shared and noisy: read medians, and compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from quanticity.data_ingestion import normalize_options
from quanticity.data_ingestion.av_csv import read_csv_columns
from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.schemas import OptionChainSnapshot, stable_id

FIELDS = [
    "contractID", "symbol", "expiration", "strike", "type", "last", "mark", "bid", "bid_size", "ask", "ask_size",
    "volume", "open_interest", "date", "implied_volatility", "delta", "gamma", "theta", "vega", "rho",
]  # fmt: skip
DAY = date(2026, 3, 2)
INGEST = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def synthetic_chain(contracts: int, seed: int = 7) -> list[dict[str, str]]:
    """A SPY-like chain in AlphaVantage's row shape; ~3 % of rows carry junk greeks (IV > 3)."""
    rng = random.Random(seed)
    expiries = [DAY + timedelta(days=d) for d in (0, 1, 2, 3, 4, 7, 14, 21, 28, 35, 42, 49, 56, 63, 91)]
    expiries += [DAY + timedelta(days=91 + 30 * k) for k in range(1, 16)]
    per_expiry = -(-contracts // (2 * len(expiries)))
    rows: list[dict[str, str]] = []
    for expiry in expiries:
        for k in range(per_expiry):
            strike = 300.0 + k * (600.0 / per_expiry)
            for kind in ("call", "put"):
                if len(rows) == contracts:
                    return rows
                price = max(0.01, rng.gauss(8.0, 4.0))
                delta = rng.uniform(0.01, 0.99) * (1 if kind == "call" else -1)
                iv = rng.uniform(3.5, 6.0) if rng.random() < 0.03 else rng.uniform(0.1, 0.6)  # 3 % junk
                rows.append(
                    {
                        "contractID": f"SPY{expiry:%y%m%d}{kind[0].upper()}{int(strike * 1000):08d}",
                        "symbol": "SPY",
                        "expiration": expiry.isoformat(),
                        "strike": f"{strike:.2f}",
                        "type": kind,
                        "last": f"{price:.2f}",
                        "mark": f"{price:.2f}",
                        "bid": f"{price - 0.02:.2f}",
                        "bid_size": "12",
                        "ask": f"{price + 0.02:.2f}",
                        "ask_size": "30",
                        "volume": str(rng.randint(0, 5000)),
                        "open_interest": str(rng.randint(0, 90000)),
                        "date": DAY.isoformat(),
                        "implied_volatility": f"{iv:.5f}",
                        "delta": f"{delta:.5f}",
                        "gamma": f"{rng.uniform(0, 0.05):.5f}",
                        "theta": f"{-rng.uniform(0, 1):.5f}",
                        "vega": f"{rng.uniform(0, 0.9):.5f}",
                        "rho": f"{rng.uniform(-0.5, 0.5):.5f}",
                    }
                )
    return rows


def as_json(rows: list[dict[str, str]]) -> bytes:
    return orjson.dumps({"endpoint": "Realtime Options", "message": "success", "data": rows})


def as_csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    writer.writerows([row[name] for name in FIELDS] for row in rows)
    return buffer.getvalue().encode()


def baseline(body: bytes, context: NormalizeContext) -> list[OptionChainSnapshot]:
    """The obvious implementation: stdlib json, Decimal per cell, a dict of rows per expiry."""

    def number(text: Any) -> float | None:
        return None if text in (None, "", "None", "-", ".") else float(Decimal(text))

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in json.loads(body)["data"]:
        groups.setdefault(row["expiration"], []).append(row)
    snapshots = []
    for expiry, rows in sorted(groups.items()):
        rows.sort(key=lambda r: (number(r["strike"]), r["type"]))
        snapshots.append(
            OptionChainSnapshot(
                record_id=stable_id("baseline", expiry),
                event_time=context.ingest_time,
                ingest_time=context.ingest_time,
                source="alphavantage",
                run_id=context.run_id,
                mode=context.mode,
                symbol=rows[0]["symbol"],
                expiry=date.fromisoformat(expiry),
                strike=[number(r["strike"]) for r in rows],
                right=["C" if r["type"] == "call" else "P" for r in rows],
                bid=[number(r["bid"]) for r in rows],
                ask=[number(r["ask"]) for r in rows],
                last=[number(r["last"]) for r in rows],
                volume=[number(r["volume"]) for r in rows],
                open_interest=[number(r["open_interest"]) for r in rows],
                implied_vol=[number(r["implied_volatility"]) for r in rows],
                delta=[number(r["delta"]) for r in rows],
                gamma=[number(r["gamma"]) for r in rows],
                theta=[number(r["theta"]) * 365 for r in rows],
                vega=[number(r["vega"]) * 100 for r in rows],
                rho=[number(r["rho"]) * 100 for r in rows],
            )
        )
    return snapshots


def timed(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and minimum wall time in milliseconds, after one warm-up call."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    rows = synthetic_chain(args.contracts)
    json_body, csv_body = as_json(rows), as_csv(rows)
    context = NormalizeContext(run_id="bench", mode="sim", ingest_time=INGEST)
    params = {"symbol": "SPY", "require_greeks": "true"}
    result = normalize("REALTIME_OPTIONS", params, csv_body, context=context)
    assert normalize("REALTIME_OPTIONS", params, json_body, context=context).records == result.records

    def python_pass() -> None:
        table = read_csv_columns(csv_body)
        outcome = normalize_options.NormalizeResult("REALTIME_OPTIONS", rows_in=table.rows_in)
        normalize_options._normalize_chain(  # noqa: SLF001 - the bench times the fallback pass on purpose
            "REALTIME_OPTIONS", params, table.columns, table.row_ids, context, outcome, vectorised=False
        )

    cases: list[tuple[str, Callable[[], object]]] = [
        ("parse only: json.loads (stdlib)", lambda: json.loads(json_body)),
        ("parse only: orjson.loads", lambda: orjson.loads(json_body)),
        ("parse only: CSV → text columns", lambda: read_csv_columns(csv_body)),
        ("baseline: stdlib json + Decimal loop", lambda: baseline(json_body, context)),
        (
            "normalize JSON (orjson + pyarrow pass)",
            lambda: normalize("REALTIME_OPTIONS", params, json_body, context=context),
        ),
        ("normalize CSV (pyarrow pass)", lambda: normalize("REALTIME_OPTIONS", params, csv_body, context=context)),
        ("normalize CSV (pure-Python pass)", python_pass),
    ]
    print(
        f"{args.contracts} contracts, {len(result.records)} expiries, {len(result.row_flags)} flagged rows; "
        f"JSON {len(json_body) / 1e6:.2f} MB, CSV {len(csv_body) / 1e6:.2f} MB; median of {args.repeats}"
    )
    medians = {}
    for label, action in cases:
        median, best = timed(action, args.repeats)
        medians[label] = median
        print(f"  {label:<42} median {median:7.2f} ms   min {best:7.2f} ms")
    base = medians["baseline: stdlib json + Decimal loop"]
    for label in ("normalize JSON (orjson + pyarrow pass)", "normalize CSV (pyarrow pass)"):
        print(f"  speed-up vs baseline, {label}: {base / medians[label]:.1f}x")


if __name__ == "__main__":
    main()
