"""What a role's agents get handed: settings, metrics, topics, Redis. No globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust
from pydantic import SecretStr
from redis.asyncio import Redis

from quanticity.errors import ConfigError
from quanticity.observability.metrics import Metrics
from quanticity.schemas.codec import CODEC_NAME
from quanticity.settings.reload import SettingsHolder
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from quanticity.topology.registry import TopicRegistry


@dataclass(frozen=True)
class AlphaVantageEndpoint:
    """Base URL and key the AlphaVantage client uses."""

    base_url: str
    api_key: SecretStr = field(repr=False)


@dataclass
class RoleContext:
    """Dependencies shared by the roles of one process.

    Attributes:
        settings: the live (reloadable) settings.
        metrics: the process's metric catalogue.
        registry: the topic registry with the deployment's prefix.
        bootstrap: the broker address in use (embedded or external).
        redis_url: the Redis URL in use (embedded or external).
    """

    settings: SettingsHolder
    metrics: Metrics
    registry: TopicRegistry
    bootstrap: str
    redis_url: str
    av_endpoint: AlphaVantageEndpoint | None = None
    tws_endpoint: tuple[str, int] | None = None
    _redis: Redis | None = field(default=None, repr=False)

    def alphavantage_endpoint(self) -> AlphaVantageEndpoint:
        """Where AlphaVantage calls go: the simulator the platform started, else the configured service.

        Raises:
            ConfigError: no simulator runs and no API key is configured.
        """
        if self.av_endpoint is not None:
            return self.av_endpoint
        av = self.settings.current.alphavantage
        if av.api_key is None or not av.api_key.get_secret_value():
            raise ConfigError(
                [
                    (
                        "settings",
                        "alphavantage.api_key",
                        "is not set; set ALPHA_VANTAGE_API_KEY or run in sim mode for the simulator",
                    )
                ]
            )
        return AlphaVantageEndpoint(av.base_url, av.api_key)

    def ibkr_address(self) -> tuple[str, int]:
        """Where the IBKR roles connect: the TWS simulator the platform started, else the configured TWS."""
        if self.tws_endpoint is not None:
            return self.tws_endpoint
        ibkr = self.settings.current.ibkr
        return ibkr.host, ibkr.port

    def redis(self) -> Redis:
        """The process's shared asyncio Redis client (bytes replies), created on first use."""
        if self._redis is None:
            cfg = self.settings.current.redis
            password = cfg.password.get_secret_value() if cfg.password else None
            self._redis = Redis.from_url(
                self.redis_url,
                password=password,
                socket_timeout=cfg.socket_timeout_s,
                socket_connect_timeout=cfg.socket_timeout_s,
                health_check_interval=10,
            )
        return self._redis

    def timeseries_writer(self) -> TimeSeriesWriter:
        """A TimeSeries writer on the shared client, with the configured prefix and command bounds."""
        cfg = self.settings.current.redis
        return TimeSeriesWriter(
            self.redis(),
            self.metrics,
            cfg.key_prefix,
            max_samples_per_command=cfg.madd_max_samples,
            max_samples_in_flight=cfg.madd_max_samples_in_flight,
        )

    async def close(self) -> None:
        """Release the Redis client."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def topic(self, app: faust.App, name: str) -> Any:
        """The Faust topic for logical topic ``name``, with its registry settings."""
        spec = self.registry.spec(name)
        return app.topic(
            self.registry.broker_name(name),
            key_serializer="raw",
            value_serializer=CODEC_NAME,
            partitions=self.registry.partitions(name),
            retention=spec.retention_ms / 1000.0,
            compacting=spec.cleanup_policy == "compact",
        )
