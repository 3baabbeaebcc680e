"""What the benchmarks share: the project root and the embedded stack on free loopback ports."""

from __future__ import annotations

import os
from pathlib import Path

from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.process import free_loopback_port
from quanticity.settings.model import EmbeddedSettings

ROOT = Path(__file__).resolve().parent.parent


def embedded_runtime(home: Path, *, with_broker: bool, with_redis: bool = True) -> EmbeddedRuntime:
    """The embedded Tansu broker and/or Redis Stack under ``home``, on free ports (not started).

    Uses the OpenSSL 1.1 libraries ``make install`` puts under ``.quanticity/`` (Redis Stack's
    modules need them), as ``quanticity up`` does.
    """
    settings = EmbeddedSettings(
        kafka_port=free_loopback_port(),
        redis_port=free_loopback_port(),
        home=home,
        openssl_dir=ROOT / ".quanticity" / "openssl1.1",
    )
    return EmbeddedRuntime(settings, Metrics(), with_broker=with_broker, with_redis=with_redis)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc.

    Raises:
        OSError: no such process (or no /proc).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
