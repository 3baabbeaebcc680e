"""The typed topology: topic registry, topic administration and the Faust app factory."""

from __future__ import annotations

from quanticity.topology.registry import DEADLETTER, TOPICS, TopicRegistry, TopicSpec

__all__ = ["DEADLETTER", "TOPICS", "TopicRegistry", "TopicSpec"]
