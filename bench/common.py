"""What the benchmarks share: the project root and the embedded stack on free loopback ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.process import ChildProcess, free_loopback_port
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


def start_worker(
    runtime: EmbeddedRuntime, home: Path, name: str, roles: Sequence[str], *, topic_prefix: str, key_prefix: str
) -> ChildProcess:
    """``quanticity worker --role …`` on the embedded servers with the shipped config, in a process of its own.

    A ``ChildProcess`` like the embedded servers: it dies with this process, and ``stop`` is
    SIGTERM (the worker stops its roles and simulator) then SIGKILL. Its log is ``home/{name}.log``;
    AlphaVantage calls go to the simulator, never the real service.
    """
    env = {
        "QUANTICITY_KAFKA__BOOTSTRAP": runtime.bootstrap,
        "QUANTICITY_KAFKA__TOPIC_PREFIX": topic_prefix,
        "QUANTICITY_REDIS__URL": runtime.redis_url,
        "QUANTICITY_REDIS__KEY_PREFIX": key_prefix,
        "QUANTICITY_EMBEDDED__HOME": str(home / name),
        "QUANTICITY_OBSERVABILITY__METRICS_PORT": "0",
        "QUANTICITY_OBSERVABILITY__TEXTFILE_DIR": str(home / f"{name}-metrics"),
        "QUANTICITY_DEMO__ENABLED": "false",
        "ALPHA_VANTAGE_API_KEY": "",
    }
    argv = [sys.executable, "-m", "quanticity.cli.main", "--config-dir", str(ROOT / "config")]
    argv += ["--env-file", str(home / "none.env"), "worker"]
    for role in roles:
        argv += ["--role", role]
    worker = ChildProcess(name, argv, home / f"{name}.log", env)
    worker.start()
    return worker
