"""`make profile`: where the CPU goes on the store path, without a broker or Redis.

Profiles (cProfile) the per-message work of the store role for N underlying quotes:
JSON encode → codec loads → record validation → sample extraction → RESP TS.MADD encoding,
and prints the top functions plus the per-quote cost next to a reference loop measured
in the same run (this machine is shared and noisy: compare ratios, not absolute times).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime

from quanticity.data_ingestion.demo import DemoQuoteGenerator
from quanticity.schemas.codec import RecordCodec, decode_record, encode_record
from quanticity.storage.quote_store import quote_samples
from quanticity.storage.resp import encode_madd
from quanticity.topology.registry import TopicRegistry


def store_path(payloads: list[bytes]) -> int:
    codec = RecordCodec()
    models = TopicRegistry().spec("quotes").models
    encoded = 0
    for raw in payloads:
        record = decode_record("quotes", codec._loads(raw), models)  # noqa: SLF001 - the codec's hot call
        samples = [(k.encode(), ts, v) for k, ts, v in quote_samples(record)]  # type: ignore[arg-type]
        encoded += len(encode_madd(samples))
    return encoded


def reference(payloads: list[bytes]) -> int:
    """A floor: touching every payload byte once."""
    return sum(len(p) for p in payloads)


def main(n: int = 20_000) -> None:
    gen = DemoQuoteGenerator(["SPY", "QQQ", "IWM", "SPX"], run_id="profile")
    now = datetime.now(UTC)
    payloads = [encode_record(q) for _ in range(n // 4) for q in gen.next_quotes(now)]
    t0 = time.perf_counter()
    reference(payloads)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    store_path(payloads)
    t_store = time.perf_counter() - t0
    print(
        f"{len(payloads)} quotes: store path {t_store / len(payloads) * 1e6:.1f} µs/quote "
        f"({len(payloads) / t_store:,.0f} quotes/s); reference loop {t_ref / len(payloads) * 1e6:.2f} µs/quote; "
        f"ratio {t_store / t_ref:,.0f}x"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    store_path(payloads)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
