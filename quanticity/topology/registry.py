"""The topic registry: every topic, its key, its record types, partitions and retention.

This is the contract between stages. Agents, the store, ``quanticity topics`` and the
topic-creation step all read it; nothing else declares a topic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from quanticity.errors import UnknownTopicError
from quanticity.schemas import (
    AnalyticsResult,
    AuctionState,
    Bar,
    DeadLetter,
    DepthSnapshot,
    Fill,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    OptionQuote,
    OptionQuoteBatch,
    OrderEvent,
    Record,
    Signal,
    SocialMessage,
    Tick,
    UnderlyingQuote,
)

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the topology.

    Attributes:
        name: logical name (the broker name is ``prefix + name``).
        key: what the partition key is.
        records: record models accepted on the topic.
        retention_ms: how long the broker keeps records (-1 = forever).
        cleanup_policy: ``delete`` or ``compact``.
        partitions: ``None`` = the configured default (``kafka.partitions``).
        description: one line for ``quanticity topics``.
    """

    name: str
    key: Literal["symbol", "account", "channel", "topic"]
    records: tuple[type[Record], ...]
    retention_ms: int
    description: str
    cleanup_policy: Literal["delete", "compact"] = "delete"
    partitions: int | None = None
    models: Mapping[str, type[Record]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_type = {}
        for model in self.records:
            discriminator = model.model_fields["type"].default
            if discriminator in by_type:
                raise ValueError(f"topic {self.name}: two records with type {discriminator!r}")
            by_type[discriminator] = model
        object.__setattr__(self, "models", by_type)

    def config(self) -> dict[str, str]:
        """Broker topic configs."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


DEADLETTER = "deadletter"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "quotes",
        "symbol",
        (UnderlyingQuote, OptionChainSnapshot, OptionQuote, OptionQuoteBatch, AuctionState),
        7 * _DAY_MS,
        "underlying L1 quotes, option chain snapshots (one message per underlying+expiry), option L1, auction state",
    ),
    TopicSpec("ticks", "symbol", (Tick, Bar), 2 * _DAY_MS, "tick-by-tick trades, bid/ask and bars"),
    TopicSpec("depth", "symbol", (DepthSnapshot,), 2 * _DAY_MS, "L2 order book snapshots per venue"),
    TopicSpec(
        "analytics", "symbol", (AnalyticsResult,), 7 * _DAY_MS, "analytics results with validity window and provenance"
    ),
    TopicSpec("signals", "symbol", (Signal,), 30 * _DAY_MS, "signal envelopes with idempotent ids"),
    TopicSpec(
        "orders", "symbol", (OrderEvent,), 90 * _DAY_MS, "order intents, acks and status changes with correlation ids"
    ),
    TopicSpec("fills", "symbol", (Fill,), 90 * _DAY_MS, "executions enriched with signal metadata"),
    TopicSpec(
        "social", "channel", (SocialMessage,), 7 * _DAY_MS, "outbound messages with tier, channel and release_at"
    ),
    TopicSpec(
        "reference",
        "symbol",
        (IndicatorSeries, MacroSeries, NewsItem),
        30 * _DAY_MS,
        "technical indicators, macro series and news (AlphaVantage reference data)",
    ),
    TopicSpec(
        DEADLETTER, "topic", (DeadLetter,), 30 * _DAY_MS, "records that failed validation or handling, with the reason"
    ),
)


class TopicRegistry:
    """The declared topics, with the deployment's prefix and default partition count."""

    def __init__(self, prefix: str = "", default_partitions: int = 4, topics: tuple[TopicSpec, ...] = TOPICS) -> None:
        self.prefix = prefix
        self.default_partitions = default_partitions
        self._specs = {spec.name: spec for spec in topics}

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self._specs.values())

    def spec(self, name: str) -> TopicSpec:
        """The spec of logical topic ``name``.

        Raises:
            UnknownTopicError: the registry does not declare it.
        """
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownTopicError(name, list(self._specs)) from None

    def broker_name(self, name: str) -> str:
        """The topic's name on the broker."""
        return self.prefix + self.spec(name).name

    def logical_name(self, broker_name: str) -> str | None:
        """The logical name of a broker topic, or None if it is not one of ours."""
        if not broker_name.startswith(self.prefix):
            return None
        name = broker_name[len(self.prefix) :]
        return name if name in self._specs else None

    def partitions(self, name: str) -> int:
        """Partition count of a topic (its own, else the default)."""
        spec = self.spec(name)
        return spec.partitions if spec.partitions is not None else self.default_partitions
