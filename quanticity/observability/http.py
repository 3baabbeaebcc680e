"""The /metrics endpoint, plus a textfile collector for ``*.prom`` files (test telemetry)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from quanticity.errors import PortInUseError
from quanticity.observability.metrics import Metrics

log = structlog.get_logger(__name__)


class TextfileCollector(Collector):
    """Serves the metric families found in ``directory/*.prom`` (like node_exporter's).

    A file that does not parse is reported once per scrape in the log and counted in
    ``metrics.textfile_errors``; the other files are still served.
    """

    def __init__(self, directory: Path, metrics: Metrics) -> None:
        self.directory = directory
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.prom")):
            try:
                families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                self._metrics.textfile_errors.labels(file=path.name).inc()
                log.warning("textfile_unreadable", file=str(path), error=str(exc))
                continue
            yield from families
        # After the files, so a scrape reports the bad file it just met, not one scrape late.
        yield from self._metrics.textfile_errors.collect()


class MetricsServer:
    """The Prometheus HTTP endpoint of a process."""

    def __init__(self, metrics: Metrics, host: str, port: int, textfile_dir: Path | None = None) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: Any = None
        if textfile_dir is not None:
            metrics.registry.unregister(metrics.textfile_errors)  # served by the collector instead
            metrics.registry.register(TextfileCollector(textfile_dir, metrics))

    def start(self) -> None:
        """Listen on host:port.

        Raises:
            PortInUseError: the port is taken.
        """
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.metrics.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    "metrics endpoint", self.port, "QUANTICITY_OBSERVABILITY__METRICS_PORT", self.host
                ) from exc
            raise
        self.port = self._server.server_port

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104 - display only
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
