"""The embedded runtime: clear errors for taken ports and broken binaries, no orphans ever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from quanticity.errors import PortInUseError, RuntimeStartError
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.process import ChildProcess
from quanticity.settings.model import EmbeddedSettings
from tests.conftest import OPENSSL_DIR, ROOT, free_port

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_taken_port_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    """Starting Redis on a port something listens on raises PortInUseError naming port and setting."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = EmbeddedSettings(kafka_port=free_port(), redis_port=port, home=tmp_path, openssl_dir=OPENSSL_DIR)
        runtime = EmbeddedRuntime(settings, Metrics(), with_broker=True, with_redis=True)
        started = time.monotonic()
        with pytest.raises(PortInUseError) as caught:
            await runtime.start(watch=False)
        assert time.monotonic() - started < 5
    assert caught.value.port == port
    assert "QUANTICITY_EMBEDDED__REDIS_PORT" in str(caught.value)
    assert runtime.pids() == {"broker": None, "redis": None}  # nothing was started


async def test_redis_keeps_an_append_only_file_rewritten_at_the_configured_sizes(tmp_path: Path) -> None:
    """The embedded Redis logs every write (AOF, fsync each second) and rewrites the file only
    past the configured size and growth, not Redis's 64 MB default that forked every ~10 s
    under chain traffic."""
    settings = EmbeddedSettings(
        kafka_port=free_port(),
        redis_port=free_port(),
        home=tmp_path,
        openssl_dir=OPENSSL_DIR,
        redis_aof_rewrite_min_mb=300,
        redis_aof_rewrite_percentage=250,
    )
    runtime = EmbeddedRuntime(settings, Metrics(), with_broker=False, with_redis=True)
    await runtime.start(watch=False)
    redis = Redis.from_url(runtime.redis_url, decode_responses=True)
    try:
        names = ("appendonly", "appendfsync", "auto-aof-rewrite-min-size", "auto-aof-rewrite-percentage")
        config = {name: (await redis.config_get(name))[name] for name in names}
        assert config == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "auto-aof-rewrite-min-size": str(300 * 1024 * 1024),
            "auto-aof-rewrite-percentage": "250",
        }
    finally:
        await redis.aclose()
        await runtime.stop()


async def test_a_binary_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    """A server that dies at start-up raises RuntimeStartError quoting its log, within the timeout."""
    child = ChildProcess("broker", ["/bin/sh", "-c", "echo 'bad listener url' >&2; exit 3"], tmp_path / "broker.log")
    child.start()

    async def never() -> bool:
        return False

    with pytest.raises(RuntimeStartError) as caught:
        await child.wait_healthy(never, timeout_s=10)
    assert "exited with code 3" in str(caught.value)
    assert "bad listener url" in str(caught.value)


async def test_a_server_that_never_gets_healthy_times_out_and_is_stopped(tmp_path: Path) -> None:
    """A server that hangs is stopped after the start timeout, with a clear error."""
    child = ChildProcess("redis", ["/bin/sleep", "60"], tmp_path / "redis.log")
    child.start()

    async def never() -> bool:
        return False

    with pytest.raises(RuntimeStartError, match="not healthy after 1 s"):
        await child.wait_healthy(never, timeout_s=1)
    assert child.pid is not None and not _alive(child.pid)


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL of the process that started the servers still takes the servers down (PDEATHSIG)."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from quanticity.observability.metrics import Metrics
        from quanticity.runtime.embedded import EmbeddedRuntime
        from quanticity.settings.model import EmbeddedSettings
        s = EmbeddedSettings(kafka_port={free_port()}, redis_port={free_port()},
                             home=Path({str(tmp_path)!r}), openssl_dir=Path({str(OPENSSL_DIR)!r}))
        rt = EmbeddedRuntime(s, Metrics(), with_broker=True, with_redis=True)
        asyncio.run(rt.start(watch=False))
        print("PIDS", rt.pids()["broker"], rt.pids()["redis"], flush=True)
        sys.stdin.read()
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        while line and not line.startswith("PIDS"):  # skip the runtime's log lines
            line = parent.stdout.readline()
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(_alive(p) for p in pids), line
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert [p for p in pids if _alive(p)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
