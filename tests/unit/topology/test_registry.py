"""Tests of quanticity.topology.registry: the declared topics and name mapping."""

from __future__ import annotations

import pytest

from quanticity.errors import QuanticityError, UnknownTopicError
from quanticity.schemas import DeadLetter, Signal, UnderlyingQuote
from quanticity.topology.registry import DEADLETTER, TOPICS, TopicRegistry, TopicSpec

EXPECTED = [
    "quotes",
    "ticks",
    "depth",
    "analytics",
    "signals",
    "orders",
    "fills",
    "social",
    "reference",
    "deadletter",
]
_DAY_MS = 24 * 3_600_000


def test_exactly_the_declared_topics() -> None:
    """The registry declares the eight data-path topics, reference data and dead letters, each once."""
    assert [spec.name for spec in TOPICS] == EXPECTED
    assert [spec.name for spec in TopicRegistry()] == EXPECTED
    assert DEADLETTER == "deadletter"


@pytest.mark.parametrize("spec", TOPICS, ids=[s.name for s in TOPICS])
def test_record_types_are_unique_per_topic(spec: TopicSpec) -> None:
    """Each topic maps every record's `type` discriminator to exactly that record model."""
    discriminators = [model.model_fields["type"].default for model in spec.records]

    assert len(set(discriminators)) == len(discriminators) == len(spec.models)
    for discriminator, model in spec.models.items():
        assert model.model_fields["type"].default == discriminator


def test_record_types_are_unique_across_all_topics() -> None:
    """No record type is carried by two topics, so a type identifies its topic."""
    discriminators = [d for spec in TOPICS for d in spec.models]

    assert len(discriminators) == len(set(discriminators))


def test_duplicate_discriminator_is_refused() -> None:
    """Declaring a topic with the same record type twice fails at declaration time."""
    with pytest.raises(ValueError, match="underlying_quote"):
        TopicSpec("dup", "symbol", (UnderlyingQuote, UnderlyingQuote), 1, "twice")


def test_keys_match_the_records() -> None:
    """Social messages key by channel, dead letters by topic, the rest by symbol."""
    keys = {spec.name: spec.key for spec in TOPICS}

    assert keys.pop("social") == "channel"
    assert keys.pop("deadletter") == "topic"
    assert set(keys.values()) == {"symbol"}


def test_broker_and_logical_names_with_a_prefix() -> None:
    """Broker names are prefix + name; logical_name inverts that and ignores foreign topics."""
    registry = TopicRegistry(prefix="t-abc.")

    assert registry.broker_name("quotes") == "t-abc.quotes"
    assert registry.logical_name("t-abc.quotes") == "quotes"
    assert registry.logical_name("quotes") is None  # missing prefix
    assert registry.logical_name("t-abc.unknown") is None  # prefix but not ours
    assert registry.logical_name("t-xyz.quotes") is None  # another deployment's
    assert all(registry.logical_name(registry.broker_name(n)) == n for n in EXPECTED)


def test_names_without_a_prefix() -> None:
    """With no prefix, broker and logical names coincide."""
    registry = TopicRegistry()

    assert registry.broker_name("fills") == "fills"
    assert registry.logical_name("fills") == "fills"
    assert registry.logical_name("__consumer_offsets") is None


def test_partitions_default_and_override() -> None:
    """A topic without its own count gets the registry default; one with its own keeps it."""
    custom = (*TOPICS[:2], TopicSpec("single", "symbol", (Signal,), 1000, "one partition", partitions=1))
    registry = TopicRegistry(default_partitions=12, topics=custom)

    assert registry.partitions("quotes") == 12
    assert registry.partitions("single") == 1
    assert TopicRegistry(default_partitions=6).partitions("orders") == 6


@pytest.mark.parametrize("method", ["spec", "broker_name", "partitions"])
def test_unknown_topic_raises(method: str) -> None:
    """Looking up an undeclared topic raises UnknownTopicError listing the declared ones."""
    registry = TopicRegistry()

    with pytest.raises(UnknownTopicError) as info:
        getattr(registry, method)("qoutes")

    assert isinstance(info.value, QuanticityError)
    assert info.value.name == "qoutes"
    assert "qoutes" in str(info.value) and "quotes" in str(info.value)


def test_topic_config_values() -> None:
    """config() gives the broker retention.ms and cleanup.policy as strings."""
    registry = TopicRegistry()

    assert registry.spec("quotes").config() == {"retention.ms": str(7 * _DAY_MS), "cleanup.policy": "delete"}
    assert registry.spec("orders").config()["retention.ms"] == str(90 * _DAY_MS)
    compacted = TopicSpec("state", "symbol", (Signal,), -1, "forever", cleanup_policy="compact")
    assert compacted.config() == {"retention.ms": "-1", "cleanup.policy": "compact"}


def test_deadletter_carries_dead_letters_only() -> None:
    """The dead-letter topic accepts exactly the DeadLetter record."""
    assert dict(TopicRegistry().spec(DEADLETTER).models) == {"dead_letter": DeadLetter}
