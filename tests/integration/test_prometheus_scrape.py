"""A real Prometheus scrapes the app's /metrics and answers a query for one of its metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from quanticity.observability.http import MetricsServer
from quanticity.observability.metrics import Metrics
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_prometheus_scrapes_the_app_and_returns_redis_connected(tmp_path: Path) -> None:
    """Prometheus (Debian package) scrapes our endpoint; /api/v1/query returns the value we set."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed: run `bash scripts/install-system-deps.sh` (Debian package)"
    metrics = Metrics()
    metrics.redis_connected.set(1)
    metrics.system_module_up.labels(module="store").set(1)
    server = MetricsServer(metrics, "127.0.0.1", 0)
    server.start()
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
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    result = json.load(response)["data"]["result"]
            except OSError:
                result = []
            if result:
                break
            time.sleep(0.5)
        assert result, "Prometheus never returned redis_connected"
        assert result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        proc.terminate()
        proc.wait(20)
        server.stop()
