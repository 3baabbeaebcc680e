"""A real Prometheus scrapes the app's /metrics and answers a query for one of its metrics."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from quanticity.app.platform import Platform
from quanticity.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _query(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
        return json.load(response)["data"]["result"]  # type: ignore[no-any-return]


async def test_prometheus_scrapes_the_running_app_and_returns_redis_connected(
    tmp_path: Path, make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """Prometheus (Debian package) scrapes a running platform; /api/v1/query returns redis_connected 1."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed: run `bash scripts/install-system-deps.sh` (Debian package)"
    settings = make_settings(
        demo={"enabled": False}, observability={"metrics_port": free_port(), "metrics_host": "127.0.0.1"}
    )
    platform = platform_factory(settings, ["store"])
    await platform.start()
    assert platform.server is not None
    server = platform.server
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: quanticity\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        query = urllib.parse.urlencode({"query": 'redis_connected{job="quanticity"}'})
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?{query}"
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                result = await asyncio.to_thread(_query, url)
            except OSError:
                result = []
            if result:
                break
            await asyncio.sleep(0.5)
        assert result, "Prometheus never returned redis_connected"
        assert result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        proc.terminate()
        proc.wait(20)
