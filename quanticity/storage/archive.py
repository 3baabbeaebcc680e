"""The cold archive: one day of the hot store → Parquet, with a manifest, a verifier and an upload hook.

Layout under the archive root (Hive-style partitions, the source for replays and research)::

    symbol=SPY/date=2026-11-24/function=options/part-0.parquet
    symbol=SPY/date=2026-11-24/function=quote/part-0.parquet
    _macro/date=…/function=TREASURY_YIELD/…          (series without a symbol)
    manifest.json                                     {path: {rows, sha256, created}}

Each file has one row per sample: ``key``, ``timestamp`` (UTC, ms), ``value`` and the
series' labels as columns. Raw series only (compactions are derivable). The verifier
recomputes every file's sha256 and row count against the manifest. Uploads go through
``fsspec`` URLs (``file://``, and ``s3://``/``gs://`` where s3fs/gcsfs are installed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from redis.asyncio import Redis

from quanticity.errors import QuanticityError
from quanticity.storage.redis_timeseries import epoch_ms

log = structlog.get_logger(__name__)

MANIFEST = "manifest.json"
#: family label → the ``function`` partition name (indicators/macro use their own function label)
_FUNCTION_OF_FAMILY = {"underlyings": "quote", "options": "options", "bars": "bars"}


class ArchiveError(QuanticityError):
    """The archive is missing, unreadable, or disagrees with its manifest."""


@dataclass(frozen=True)
class Problem:
    """One verification failure."""

    path: str
    reason: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_mrange(reply: Any) -> list[tuple[str, dict[str, str], list[tuple[int, float]]]]:
    """``TS.MRANGE … WITHLABELS`` as ``(key, labels, samples)``, from RESP2 or RESP3 replies."""
    rows: list[tuple[str, dict[str, str], list[tuple[int, float]]]] = []
    if isinstance(reply, dict):  # RESP3: {key: [labels, (aggregators,) samples]}
        items: Iterable[tuple[Any, Any]] = reply.items()
        for key, body in items:
            labels_raw, samples_raw = body[0], body[-1]
            labels = (
                {_text(k): _text(v) for k, v in labels_raw.items()}
                if isinstance(labels_raw, dict)
                else {_text(k): _text(v) for k, v in labels_raw}
            )
            rows.append((_text(key), labels, [(int(t), float(v)) for t, v in samples_raw]))
        return rows
    for key, labels_raw, samples_raw in reply:  # RESP2: [[key, [[k, v]…], [[t, v]…]]…]
        rows.append(
            (_text(key), {_text(k): _text(v) for k, v in labels_raw}, [(int(t), float(v)) for t, v in samples_raw])
        )
    return rows


def _partition(labels: dict[str, str], day: date) -> str:
    family = labels.get("family", "unknown")
    function = labels.get("function") or _FUNCTION_OF_FAMILY.get(family, family)
    symbol = labels.get("symbol") or f"_{family}"
    return f"symbol={symbol}/date={day.isoformat()}/function={function}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_LABEL_COLUMNS = ("family", "symbol", "field", "expiry", "strike", "right", "function", "source")
_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        *[(name, pa.string()) for name in _LABEL_COLUMNS],
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("value", pa.float64()),
    ]
)
#: A day is read in windows of this length, so memory follows one window of one partition
#: (a full SPY options day is tens of millions of samples; one window is a few hundred thousand).
EXPORT_WINDOW = timedelta(minutes=30)


@dataclass
class _Partition:
    family: str
    labels: dict[str, str]  # the filter that selects the partition's series
    keys: set[str]


def _partition_filter(family: str, labels: dict[str, str]) -> dict[str, str]:
    # A label filter selecting exactly the series of one partition ("name=" = label absent).
    return {"family": family, "symbol": labels.get("symbol", ""), "function": labels.get("function", "")}


async def _partitions(redis: Redis, day: date, families: Iterable[str], key_prefix: str) -> dict[str, _Partition]:
    found: dict[str, _Partition] = {}
    for family in families:
        reply = await redis.execute_command(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            "TS.MGET", "WITHLABELS", "FILTER", f"family={family}", "resolution="
        )
        for key, labels in parse_mget(reply):
            if key_prefix and not key.startswith(key_prefix):
                continue
            name = _partition(labels, day)
            part = found.setdefault(name, _Partition(family, _partition_filter(family, labels), set()))
            part.keys.add(key)
    return found


def parse_mget(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """``TS.MGET WITHLABELS`` as ``(key, labels)``, from RESP2 or RESP3 replies."""
    if isinstance(reply, dict):
        out = []
        for key, body in reply.items():
            raw = body[0]
            labels = {_text(k): _text(v) for k, v in (raw.items() if isinstance(raw, dict) else raw)}
            out.append((_text(key), labels))
        return out
    return [(_text(key), {_text(k): _text(v) for k, v in raw}) for key, raw, *_ in reply]


def _window_table(
    rows: list[tuple[str, dict[str, str], list[tuple[int, float]]]], keys: set[str], prefix: str
) -> pa.Table:
    columns: dict[str, list[Any]] = defaultdict(list)
    for key, labels, samples in rows:
        if key not in keys or not samples:
            continue
        n = len(samples)
        columns["key"].extend([key[len(prefix) :]] * n)
        for name in _LABEL_COLUMNS:
            columns[name].extend([labels.get(name)] * n)
        columns["timestamp"].extend(ts for ts, _ in samples)
        columns["value"].extend(v for _, v in samples)
    return pa.table({field.name: pa.array(columns[field.name], type=field.type) for field in _SCHEMA}, schema=_SCHEMA)


async def export_day(
    redis: Redis,
    root: Path,
    day: date,
    *,
    key_prefix: str = "",
    families: Iterable[str] = ("underlyings", "options", "bars", "indicators", "macro"),
    window: timedelta = EXPORT_WINDOW,
) -> dict[str, Any]:
    """Write every raw sample of ``day`` (UTC) to Parquet under ``root`` and update the manifest.

    Each partition (symbol, function) is read window by window and written as row groups,
    so a day of any size is exported in bounded memory. Re-exporting a day replaces its
    files (idempotent); a reader never sees half a file. Returns the manifest entries written.

    Raises:
        ArchiveError: a file could not be written (the path and the OS error are named).
    """
    start = datetime.combine(day, time(), UTC)
    t0 = epoch_ms(start)
    t_end = epoch_ms(start + timedelta(days=1)) - 1
    step = int(window / timedelta(milliseconds=1))
    written: dict[str, Any] = {}
    for name, part in sorted((await _partitions(redis, day, families, key_prefix)).items()):
        relative = f"{name}/part-0.parquet"
        target = root / relative
        staging = target.with_suffix(".parquet.tmp")
        rows_written = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(staging, _SCHEMA, compression="zstd") as out:
                for w0 in range(t0, t_end + 1, step):
                    filters = [f"{label}={value}" for label, value in part.labels.items()]
                    reply = await redis.execute_command(  # type: ignore[no-untyped-call]
                        "TS.MRANGE", w0, min(w0 + step - 1, t_end), "WITHLABELS", "FILTER", *filters, "resolution="
                    )
                    table = _window_table(parse_mrange(reply), part.keys, key_prefix)
                    if table.num_rows:
                        out.write_table(table)
                        rows_written += table.num_rows
            if rows_written == 0:
                staging.unlink()
                continue
            staging.replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
            raise ArchiveError(f"archive export of {day}: cannot write {target}: {exc}") from exc
        written[relative] = {
            "rows": rows_written,
            "sha256": sha256_of(target),
            "created": datetime.now(UTC).isoformat(),
        }
    manifest = load_manifest(root)
    manifest.update(written)
    _write_manifest(root, manifest)
    log.info("archive_exported", day=day.isoformat(), files=len(written), rows=sum(e["rows"] for e in written.values()))
    return written


def load_manifest(root: Path) -> dict[str, Any]:
    """The manifest of ``root`` (empty when there is none yet).

    Raises:
        ArchiveError: the manifest exists but is not valid JSON.
    """
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArchiveError(
            f"cannot read {path}: {exc}", operator_action="restore the manifest or re-export the affected days"
        ) from exc
    if not isinstance(data, dict):
        raise ArchiveError(f"{path} is not a JSON object")
    return data


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    staging = root / (MANIFEST + ".tmp")
    staging.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    staging.replace(root / MANIFEST)


def verify(root: Path) -> list[Problem]:
    """Check every manifest entry: the file exists, its sha256 and its row count match.

    Files present on disk but absent from the manifest are reported too.
    """
    manifest = load_manifest(root)
    problems: list[Problem] = []
    for relative, entry in sorted(manifest.items()):
        path = root / relative
        if not path.is_file():
            problems.append(Problem(relative, "missing"))
            continue
        digest = sha256_of(path)
        if digest != entry.get("sha256"):
            problems.append(Problem(relative, f"sha256 {digest[:12]}… differs from the manifest"))
            continue
        rows = pq.read_metadata(path).num_rows
        if rows != entry.get("rows"):
            problems.append(Problem(relative, f"{rows} rows, manifest says {entry.get('rows')}"))
    listed = set(manifest)
    for path in sorted(root.rglob("*.parquet")):
        relative = path.relative_to(root).as_posix()
        if relative not in listed:
            problems.append(Problem(relative, "not in the manifest"))
    return problems


def upload(root: Path, url: str) -> list[str]:
    """Copy the archive (files and manifest) to an fsspec URL; returns the relative paths copied.

    ``file:///some/dir`` works everywhere; ``s3://`` / ``gs://`` need ``s3fs`` / ``gcsfs``.

    Raises:
        ArchiveError: the URL's filesystem is not available or a copy failed.
    """
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ArchiveError(
            f"cannot open {url.split('?')[0]}: {exc}",
            operator_action="install the fsspec backend for this URL (s3fs, gcsfs)",
        ) from exc
    copied: list[str] = []
    for relative in [*sorted(load_manifest(root)), MANIFEST]:
        source = root / relative
        destination = f"{base.rstrip('/')}/{relative}"
        try:
            fs.makedirs(destination.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(source), destination)
        except OSError as exc:
            raise ArchiveError(f"upload of {relative} failed: {exc}") from exc
        copied.append(relative)
    return copied
