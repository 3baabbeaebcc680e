"""Tests of quanticity.observability.http: the /metrics endpoint over real HTTP and *.prom files."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from quanticity.errors import PortInUseError, RuntimeStartError
from quanticity.observability.http import MetricsServer, TextfileCollector
from quanticity.observability.metrics import Metrics

GOOD_PROM = (
    '# HELP demo_jobs_done_total Jobs done.\n# TYPE demo_jobs_done_total counter\ndemo_jobs_done_total{job="a"} 3\n'
)
BAD_PROM = "this is { not prometheus text\n"


@pytest.fixture
def servers() -> Iterator[list[MetricsServer]]:
    """Servers a test starts; every one is stopped afterwards."""
    started: list[MetricsServer] = []
    yield started
    for server in started:
        server.stop()


def _start(
    servers: list[MetricsServer], metrics: Metrics, port: int = 0, textfile_dir: Path | None = None
) -> MetricsServer:
    server = MetricsServer(metrics, "127.0.0.1", port, textfile_dir)
    servers.append(server)
    server.start()
    return server


def _scrape(server: MetricsServer) -> dict[str, float]:
    """GET /metrics and return {sample name{labels}: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:  # noqa: S310 - local test server
        assert response.status == 200
        return _parse(response.read().decode())


def _parse(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_ephemeral_port_serves_the_registry(servers: list[MetricsServer]) -> None:
    """Port 0 binds a free port, and GET /metrics returns the registry's current values."""
    metrics = Metrics()
    metrics.system_module_up.labels(module="store").set(1)
    metrics.config_reload_success.inc(2)

    server = _start(servers, metrics)

    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    samples = _scrape(server)
    assert samples['system_module_up{module="store"}'] == 1
    assert samples["config_reload_success_total{}"] == 2


def test_scrapes_see_updates(servers: list[MetricsServer]) -> None:
    """The endpoint serves live values, not a snapshot taken at start."""
    metrics = Metrics()
    server = _start(servers, metrics)
    metrics.broker_connected.set(0)
    assert _scrape(server)["broker_connected{}"] == 0

    metrics.broker_connected.set(1)

    assert _scrape(server)["broker_connected{}"] == 1


def test_textfile_families_are_served_and_bad_files_skipped(tmp_path: Path, servers: list[MetricsServer]) -> None:
    """A good *.prom file is served; an unparsable one is skipped and counted; other files are ignored."""
    (tmp_path / "good.prom").write_text(GOOD_PROM, encoding="utf-8")
    (tmp_path / "bad.prom").write_text(BAD_PROM, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored_metric 1\n", encoding="utf-8")
    server = _start(servers, Metrics(), textfile_dir=tmp_path)

    _scrape(server)
    samples = _scrape(server)

    assert samples['demo_jobs_done_total{job="a"}'] == 3
    assert samples['textfile_errors_total{file="bad.prom"}'] >= 1
    assert not any(name.startswith("ignored_metric") for name in samples)


def test_textfile_written_by_prometheus_client_is_served_unchanged(
    tmp_path: Path, servers: list[MetricsServer]
) -> None:
    """Every sample of a registry written to a .prom file is served with its name, labels and value."""
    source = CollectorRegistry()
    cases = Counter("suite_cases", "Cases.", ["suite"], registry=source)
    cases.labels(suite="unit").inc(5)
    duration = Histogram("suite_duration_seconds", "Duration.", buckets=(0.1, 1.0), registry=source)
    duration.observe(0.5)
    (tmp_path / "suite.prom").write_bytes(generate_latest(source))
    expected = _parse(generate_latest(source).decode())
    server = _start(servers, Metrics(), textfile_dir=tmp_path)

    served = _scrape(server)

    assert {name: served.get(name) for name in expected} == expected


def test_a_scrape_reports_the_bad_file_it_met(tmp_path: Path, servers: list[MetricsServer]) -> None:
    """The scrape that meets an unparsable file already shows it in textfile_errors_total."""
    (tmp_path / "bad.prom").write_text(BAD_PROM, encoding="utf-8")
    server = _start(servers, Metrics(), textfile_dir=tmp_path)

    samples = _scrape(server)

    assert samples.get('textfile_errors_total{file="bad.prom"}', 0) >= 1


def test_collector_counts_each_bad_file_once_per_collection(tmp_path: Path) -> None:
    """collect() yields the good families and increments textfile_errors once per bad file."""
    (tmp_path / "a_good.prom").write_text(GOOD_PROM, encoding="utf-8")
    (tmp_path / "b_bad.prom").write_text(BAD_PROM, encoding="utf-8")
    (tmp_path / "c_bad.prom").write_bytes(b"\xff\xfe not utf-8\n")
    metrics = Metrics()
    collector = TextfileCollector(tmp_path, metrics)

    families = [f.name for f in collector.collect() if f.name != "textfile_errors"]

    assert families == ["demo_jobs_done"]
    assert metrics.registry.get_sample_value("textfile_errors_total", {"file": "b_bad.prom"}) == 1
    assert metrics.registry.get_sample_value("textfile_errors_total", {"file": "c_bad.prom"}) == 1
    assert metrics.registry.get_sample_value("textfile_errors_total", {"file": "a_good.prom"}) is None


def test_missing_textfile_directory_serves_nothing_extra(tmp_path: Path) -> None:
    """A textfile directory that does not exist is not an error."""
    metrics = Metrics()

    families = [f.name for f in TextfileCollector(tmp_path / "absent", metrics).collect()]

    assert [name for name in families if name != "textfile_errors"] == []
    assert metrics.registry.get_sample_value("textfile_errors_total", {"file": "absent"}) is None


def test_second_server_on_a_taken_port_raises_port_in_use(servers: list[MetricsServer]) -> None:
    """Starting on a port another server holds raises PortInUseError naming the port and the setting."""
    first = _start(servers, Metrics())

    second = MetricsServer(Metrics(), "127.0.0.1", first.port)
    with pytest.raises(PortInUseError) as info:
        second.start()

    assert isinstance(info.value, RuntimeStartError)
    assert info.value.port == first.port
    assert str(first.port) in str(info.value)
    assert "Operator action:" in str(info.value)
    assert "QUANTICITY_OBSERVABILITY__METRICS_PORT" in str(info.value)
    assert "config_reload_failure_total{}" in _scrape(first)  # the first server is unaffected


def test_stop_releases_the_port(servers: list[MetricsServer]) -> None:
    """After stop(), the same port can be bound again."""
    first = _start(servers, Metrics())
    port = first.port
    first.stop()

    again = _start(servers, Metrics(), port=port)

    assert again.port == port
    assert "redis_connected{}" in _scrape(again)


def test_url_shows_localhost_for_the_wildcard_address() -> None:
    """A server bound to 0.0.0.0 advertises a localhost URL people can open."""
    assert MetricsServer(Metrics(), "0.0.0.0", 9100).url == "http://localhost:9100/metrics"
