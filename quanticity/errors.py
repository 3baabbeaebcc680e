"""The exception tree of Quanticity.

Every error the platform raises on purpose derives from ``QuanticityError``::

    QuanticityError
    ├── ConfigError                  a setting is missing, malformed or out of range
    ├── RuntimeStartError            an embedded server could not start
    │   ├── PortInUseError           its port is taken by another process
    │   └── DependencyInstallError   a private install step (OpenSSL 1.1) failed
    ├── BrokerUnavailableError       the Kafka-API broker does not answer
    ├── RedisUnavailableError        Redis does not answer
    ├── UnknownTopicError            a topic name that the registry does not declare
    ├── UnknownRoleError             a role name that the role registry does not declare
    ├── RecordDecodeError            a payload that is not a valid record of its topic
    ├── AlphaVantageError            an AlphaVantage reply class (tree in data_ingestion/errors.py)
    ├── AnalyticsInputError          bad kernel input, names the argument (analytics/inputs.py)
    ├── ArchiveError                 the archive disagrees with its manifest (storage/archive.py)
    ├── MarketHorizonError           a simulated-market request outside its horizon (simulation/errors.py)
    └── SimulationRequestError       a malformed request to a simulator (simulation/errors.py)

Subtrees live next to the code that raises them; each still derives from this root.

Errors carry structured fields and, where a person must act, an ``operator_action``
that ``str()`` appends as an "Operator action:" line.
"""

from __future__ import annotations

from pathlib import Path


class QuanticityError(Exception):
    """Root of every error Quanticity raises on purpose."""

    def __init__(self, message: str, *, operator_action: str | None = None) -> None:
        self.message = message
        self.operator_action = operator_action
        super().__init__(message)

    def __str__(self) -> str:
        if self.operator_action:
            return f"{self.message}\nOperator action: {self.operator_action}"
        return self.message


class ConfigError(QuanticityError):
    """A configuration value is missing, malformed or out of range.

    Attributes:
        problems: one ``(source, key, problem)`` triple per bad value; ``source`` names the
            file (or ``environment``/``.env``/``defaults``) the value came from.
    """

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [f"{source}: {key}: {problem}" for source, key, problem in problems]
        super().__init__(
            "invalid configuration:\n  " + "\n  ".join(lines),
            operator_action="fix the values named above and start again",
        )


class RuntimeStartError(QuanticityError):
    """An embedded server (broker, Redis) could not be started or did not become healthy."""

    def __init__(
        self, service: str, reason: str, *, log_file: Path | None = None, operator_action: str | None = None
    ) -> None:
        self.service = service
        self.reason = reason
        self.log_file = log_file
        where = f" (its log: {log_file})" if log_file else ""
        super().__init__(f"{service} did not start: {reason}{where}", operator_action=operator_action)


class PortInUseError(RuntimeStartError):
    """The port an embedded server must listen on is already taken."""

    def __init__(self, service: str, port: int, setting: str, host: str = "127.0.0.1") -> None:
        self.port = port
        super().__init__(
            service,
            f"{host}:{port} is already in use",
            operator_action=f"stop what listens on port {port} or choose another port with {setting}",
        )


class DependencyInstallError(RuntimeStartError):
    """A private install step for an embedded server failed."""


class BrokerUnavailableError(QuanticityError):
    """The Kafka-API broker does not answer."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        self.bootstrap = bootstrap
        super().__init__(
            f"Kafka broker at {bootstrap} is unavailable: {reason}",
            operator_action="start the broker (make run starts an embedded one) or fix QUANTICITY_KAFKA_BOOTSTRAP",
        )


class RedisUnavailableError(QuanticityError):
    """Redis does not answer."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        super().__init__(
            f"Redis at {where} is unavailable: {reason}",
            operator_action="start Redis Stack (make run starts an embedded one) or fix QUANTICITY_REDIS_URL",
        )


class UnknownTopicError(QuanticityError):
    """A topic name that the topic registry does not declare."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown topic {name!r}; declared topics: {', '.join(known)}")


class UnknownRoleError(QuanticityError):
    """A role name that the role registry does not declare."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown role {name!r}; declared roles: {', '.join(known)}")


class RecordDecodeError(QuanticityError):
    """A payload that is not a valid record of its topic.

    Attributes:
        topic: the logical topic the payload arrived on.
        reason: a short machine-friendly reason (``not_json``, ``validation``, ``unknown_type``…).
        detail: a human-readable description of what was wrong.
    """

    def __init__(self, topic: str, reason: str, detail: str) -> None:
        self.topic = topic
        self.reason = reason
        self.detail = detail
        super().__init__(f"bad record on topic {topic!r} ({reason}): {detail}")
