"""The settings tree: one root, nested sub-models, secrets as ``SecretStr``.

Values come from (highest precedence first): constructor arguments, ``QUANTICITY_…``
environment variables (``__`` separates nesting levels, plus the two documented
shorthands ``QUANTICITY_KAFKA_BOOTSTRAP`` and ``QUANTICITY_REDIS_URL``), the ``.env``
file, ``config/credentials.yaml``, ``config/modules/*.yaml``, ``config/system.yaml``,
then the defaults below. ``quanticity.settings.loader`` wires those sources.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from quanticity.data_ingestion.schedule_config import CadenceSettings
from quanticity.ibkr.settings import IbkrSettings

Mode = Literal["live", "paper", "sim", "replay"]
BrokerProfile = Literal["dev", "production"]


class _Section(BaseModel):
    # A typo in a YAML file or an env var name must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """The Kafka-API broker (Tansu embedded, Redpanda or Kafka elsewhere)."""

    bootstrap: str | None = Field(default=None, description="host:port list; unset = start the embedded broker")
    profile: BrokerProfile = Field(
        default="dev", description="dev applies the Tansu workarounds (one record per batch, short sessions)"
    )
    topic_prefix: str = Field(default="", description="namespace prepended to every topic name")
    partitions: int = Field(default=4, ge=1, le=256, description="partitions of every data topic")
    replication_factor: int = Field(default=1, ge=1, le=5)
    request_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for part in value.split(","):
            host, sep, port = part.strip().removeprefix("kafka://").rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("expected host:port[,host:port…]")
        # normalised to plain host:port: clients and the Faust URL add their own scheme
        return ",".join(part.strip().removeprefix("kafka://") for part in value.split(","))


class RedisSettings(_Section):
    """Redis Stack, the hot store."""

    url: str | None = Field(default=None, description="redis://host:port/db; unset = embedded Redis")
    password: SecretStr | None = None
    key_prefix: str = Field(default="", description="namespace prepended to every key")
    health_interval_s: float = Field(default=1.0, gt=0, le=60)
    socket_timeout_s: float = Field(default=2.0, gt=0, le=60)
    madd_max_samples: int = Field(
        default=2_000,
        ge=1,
        le=1_000_000,
        description="most samples in one TS.MADD; larger batches go out as several (Redis runs one command at a time)",
    )
    madd_max_samples_in_flight: int = Field(
        default=2_000,
        ge=1,
        le=1_000_000,
        description=(
            "most TS.MADD samples sent and not yet answered on one connection; Redis runs a client's"
            " pipelined commands back to back while other clients wait"
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value


class EmbeddedSettings(_Section):
    """The child processes the CLI starts when no external broker/Redis is configured."""

    kafka_port: int = Field(default=19092, ge=1, le=65535)
    redis_port: int = Field(default=16379, ge=1, le=65535)
    home: Path = Field(
        default=Path(".quanticity"), description="data, logs and private libraries of the embedded runtime"
    )
    start_timeout_s: float = Field(default=30.0, gt=0, le=600)
    openssl_dir: Path | None = Field(
        default=None, description="where the private OpenSSL 1.1 goes; unset = <home>/openssl1.1"
    )
    debian_mirror: str | None = Field(
        default=None, description="mirror for the private OpenSSL 1.1 step; unset = the apt sources'"
    )
    redis_aof_rewrite_min_mb: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description=(
            "the embedded Redis rewrites its append-only file only once it has grown past this size"
            " (Redis's own default, 64 MB, forks every few seconds under chain traffic)"
        ),
    )
    redis_aof_rewrite_percentage: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="... and past this percentage of its size after the last rewrite",
    )


class ObservabilitySettings(_Section):
    """Metrics endpoint and logs."""

    metrics_host: str = "0.0.0.0"  # noqa: S104 - Prometheus in compose scrapes from another container
    metrics_port: int = Field(default=9100, ge=0, le=65535, description="0 disables the endpoint")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    textfile_dir: Path = Field(
        default=Path(".quanticity/metrics"), description="*.prom files here are served on /metrics too (test telemetry)"
    )


class HeartbeatSettings(_Section):
    interval_s: float = Field(default=5.0, gt=0, le=300)


class DemoSettings(_Section):
    """The demo ingestion task: synthetic underlying quotes in sim mode."""

    enabled: bool = True
    symbols: list[str] = Field(default_factory=lambda: ["SPY", "QQQ", "IWM"], min_length=1)
    interval_s: float = Field(default=1.0, gt=0, le=3600)

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not symbol or not symbol.replace(".", "").replace("-", "").isalnum():
                raise ValueError(f"not a ticker symbol: {symbol!r}")
        return [s.upper() for s in value]


class RolesSettings(_Section):
    enabled: list[str] | None = Field(
        default=None, description="roles `quanticity up` runs; unset = every declared role"
    )


class AlphaVantageSimulatorSettings(_Section):
    """The local AlphaVantage simulator `quanticity up` starts when no API key is set."""

    port: int = Field(default=0, ge=0, le=65535, description="0 = a free loopback port")
    seed: int = 7
    per_minute_quota: int = Field(default=600, gt=0)


class AlphaVantageSettings(_Section):
    """AlphaVantage: credentials, endpoint and the cadence matrix (config/alpha_vantage.yaml).

    Without ``api_key`` (``ALPHA_VANTAGE_API_KEY``), the platform ingests from the local
    simulator instead of the real service.
    """

    api_key: SecretStr | None = None
    base_url: str = "https://www.alphavantage.co/query"
    cadence: CadenceSettings = Field(default_factory=CadenceSettings)
    simulator: AlphaVantageSimulatorSettings = Field(default_factory=AlphaVantageSimulatorSettings)

    @field_validator("api_key")
    @classmethod
    def _blank_key_is_no_key(cls, value: SecretStr | None) -> SecretStr | None:
        # ``ALPHA_VANTAGE_API_KEY=`` (an empty line in .env) means no key: the simulator, as when unset.
        return None if value is None or not value.get_secret_value().strip() else value


ENV_PREFIX = "QUANTICITY_"
# Documented single-underscore shorthands, kept for operators and compose files.
ENV_SHORTHANDS = {
    "QUANTICITY_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "QUANTICITY_REDIS_URL": ("redis", "url"),
    # the variable AlphaVantage's own docs and tools use
    "ALPHA_VANTAGE_API_KEY": ("alphavantage", "api_key"),
}


class ShorthandEnvSource(EnvSettingsSource):
    """Maps ``QUANTICITY_KAFKA_BOOTSTRAP`` / ``QUANTICITY_REDIS_URL`` onto their nested keys."""

    def __call__(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for name, (section, key) in ENV_SHORTHANDS.items():
            value = self.env_vars.get(name.lower() if not self.case_sensitive else name)
            if value is not None:
                found.setdefault(section, {})[key] = value  # type: ignore[index]
        return found


class Settings(BaseSettings):
    """The root of every setting.

    ``Settings()`` reads the environment and ``.env``; ``quanticity.settings.load_settings``
    adds the YAML files under ``config/`` and reports bad values with their file and key.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
    )

    mode: Mode = "sim"
    environment: str = Field(default="dev", description="name of the deployment (dev, ci, prod…)")
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    roles: RolesSettings = Field(default_factory=RolesSettings)
    alphavantage: AlphaVantageSettings = Field(default_factory=AlphaVantageSettings)
    ibkr: IbkrSettings = Field(default_factory=IbkrSettings)
    watchlists: dict[str, list[str]] = Field(default_factory=dict, description="config/watchlists.yaml")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence, highest first: arguments, environment, shorthands, ``.env``, secrets."""
        return (init_settings, env_settings, ShorthandEnvSource(settings_cls), dotenv_settings, file_secret_settings)
