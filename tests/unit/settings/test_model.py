"""Tests of quanticity.settings.model: field validation, shorthands and immutability."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from quanticity.settings import Settings
from quanticity.settings.model import DemoSettings, KafkaSettings, RedisSettings

_hosts = st.from_regex(r"[a-z][a-z0-9\-]{0,20}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
_ports = st.integers(min_value=1, max_value=65535)


@given(st.lists(st.tuples(_hosts, _ports), min_size=1, max_size=4), st.booleans())
def test_bootstrap_accepts_any_host_port_list(servers: list[tuple[str, int]], scheme: bool) -> None:
    """Every comma-separated host:port list (optionally kafka://) is accepted with its servers intact."""
    value = ",".join(("kafka://" if scheme else "") + f"{h}:{p}" for h, p in servers)

    bootstrap = KafkaSettings(bootstrap=value).bootstrap

    assert bootstrap is not None
    assert [part.removeprefix("kafka://") for part in bootstrap.split(",")] == [f"{h}:{p}" for h, p in servers]


@pytest.mark.parametrize(
    "value", ["localhost", "localhost:", ":9092", "host:0", "host:65536", "host:port", "a:1,b", "a:1,,b:2"]
)
def test_bootstrap_rejects_malformed_lists(value: str) -> None:
    """A bootstrap entry without a host or a port in 1..65535 is rejected."""
    with pytest.raises(ValidationError):
        KafkaSettings(bootstrap=value)


def test_empty_bootstrap_and_url_mean_embedded() -> None:
    """An empty string (e.g. `QUANTICITY_REDIS_URL=`) means unset, i.e. the embedded server."""
    assert KafkaSettings(bootstrap="").bootstrap is None
    assert RedisSettings(url="").url is None


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/1", "unix:///tmp/redis.sock"])
def test_redis_url_accepts_redis_schemes(url: str) -> None:
    """redis://, rediss:// and unix:// URLs are accepted unchanged."""
    assert RedisSettings(url=url).url == url


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "redis:h:6379"])
def test_redis_url_rejects_other_schemes(url: str) -> None:
    """Anything but the three Redis schemes is rejected."""
    with pytest.raises(ValidationError):
        RedisSettings(url=url)


def test_demo_symbols_are_upper_cased_and_checked() -> None:
    """Ticker symbols are normalised to upper case; non-tickers and empty lists are rejected."""
    assert DemoSettings(symbols=["spy", "brk.b", "bf-b"]).symbols == ["SPY", "BRK.B", "BF-B"]
    with pytest.raises(ValidationError):
        DemoSettings(symbols=["SPY", "no spaces"])
    with pytest.raises(ValidationError):
        DemoSettings(symbols=[])


def test_sections_reject_unknown_keys_and_are_frozen() -> None:
    """A section refuses a misspelt key and cannot be modified after construction."""
    with pytest.raises(ValidationError, match="partition"):
        KafkaSettings(partition=3)  # type: ignore[call-arg]
    kafka = KafkaSettings()
    with pytest.raises(ValidationError):
        kafka.partitions = 8  # type: ignore[misc]


def test_settings_read_the_shorthand_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() maps QUANTICITY_KAFKA_BOOTSTRAP / QUANTICITY_REDIS_URL onto the nested keys."""
    monkeypatch.setenv("QUANTICITY_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("QUANTICITY_REDIS_URL", "redis://cache:6379/0")

    settings = Settings()

    assert settings.kafka.bootstrap == "broker:9092"
    assert settings.redis.url == "redis://cache:6379/0"


def test_nested_variable_beats_the_shorthand(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUANTICITY_KAFKA__BOOTSTRAP has precedence over QUANTICITY_KAFKA_BOOTSTRAP."""
    monkeypatch.setenv("QUANTICITY_KAFKA_BOOTSTRAP", "short:1")
    monkeypatch.setenv("QUANTICITY_KAFKA__BOOTSTRAP", "nested:2")

    assert Settings().kafka.bootstrap == "nested:2"


def test_run_id_defaults_to_a_fresh_id() -> None:
    """Each Settings() without a run_id gets its own non-empty run id."""
    first, second = Settings(), Settings()

    assert first.run_id and second.run_id
    assert first.run_id != second.run_id
