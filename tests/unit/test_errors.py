"""Tests of quanticity.errors: the exception tree, structured fields and operator actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from quanticity import errors
from quanticity.errors import (
    BrokerUnavailableError,
    ConfigError,
    PortInUseError,
    QuanticityError,
    RecordDecodeError,
    RedisUnavailableError,
    RuntimeStartError,
    UnknownRoleError,
    UnknownTopicError,
)


def test_operator_action_line_is_appended_when_given() -> None:
    """str() is the message plus an 'Operator action:' line when an action is set."""
    error = QuanticityError("disk full", operator_action="free some space")

    assert str(error) == "disk full\nOperator action: free some space"
    assert error.message == "disk full"
    assert error.operator_action == "free some space"


@pytest.mark.parametrize("action", [None, ""])
def test_no_operator_action_line_without_an_action(action: str | None) -> None:
    """Without an action (or with an empty one) str() is just the message."""
    error = QuanticityError("just a message", operator_action=action)

    assert str(error) == "just a message"
    assert "Operator action" not in str(error)


def test_config_error_lists_every_problem() -> None:
    """Every (source, key, problem) triple appears as its own line, plus an operator action."""
    problems = [
        ("config/system.yaml", "kafka.partitions", "must be >= 1"),
        ("environment", "QUANTICITY_MODE (mode)", "not one of live, paper, sim, replay"),
        (".env", "redis.url", "bad scheme"),
    ]

    error = ConfigError(problems)
    lines = str(error).splitlines()

    assert error.problems == problems
    assert lines[0] == "invalid configuration:"
    assert lines[1:4] == [
        "  config/system.yaml: kafka.partitions: must be >= 1",
        "  environment: QUANTICITY_MODE (mode): not one of live, paper, sim, replay",
        "  .env: redis.url: bad scheme",
    ]
    assert lines[4].startswith("Operator action: ")


def test_runtime_start_error_names_service_reason_and_log() -> None:
    """A start failure says which service, why, and where its log is."""
    error = RuntimeStartError(
        "redis", "exited with code 1", log_file=Path("/var/log/redis.log"), operator_action="read the log"
    )

    assert (error.service, error.reason) == ("redis", "exited with code 1")
    assert error.log_file == Path("/var/log/redis.log")
    assert str(error).splitlines() == [
        "redis did not start: exited with code 1 (its log: /var/log/redis.log)",
        "Operator action: read the log",
    ]


def test_port_in_use_error_tells_the_operator_which_setting_to_change() -> None:
    """PortInUseError is a RuntimeStartError naming the port and the setting that moves it."""
    error = PortInUseError("embedded broker", 19092, "QUANTICITY_EMBEDDED__KAFKA_PORT")

    assert isinstance(error, RuntimeStartError)
    assert error.port == 19092
    assert "19092 is already in use" in str(error)
    assert "Operator action:" in str(error) and "QUANTICITY_EMBEDDED__KAFKA_PORT" in str(error)


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (BrokerUnavailableError("127.0.0.1:19092", "connection refused"), "QUANTICITY_KAFKA_BOOTSTRAP"),
        (RedisUnavailableError("redis://127.0.0.1:16379/0", "timeout"), "QUANTICITY_REDIS_URL"),
    ],
)
def test_unavailable_errors_carry_an_operator_action(error: QuanticityError, needle: str) -> None:
    """Broker and Redis outages tell the operator which variable to fix."""
    assert "Operator action:" in str(error)
    assert needle in str(error)


def test_unknown_name_errors_list_the_known_names() -> None:
    """Unknown topic and role errors keep the bad name and list the declared ones."""
    topic = UnknownTopicError("qoutes", ["quotes", "ticks"])
    role = UnknownRoleError("stroe", ["store", "ingest"])

    assert topic.name == "qoutes" and "'qoutes'" in str(topic) and "quotes, ticks" in str(topic)
    assert role.name == "stroe" and "'stroe'" in str(role) and "store, ingest" in str(role)


def test_record_decode_error_keeps_topic_reason_and_detail() -> None:
    """RecordDecodeError exposes its fields and mentions them in its message."""
    error = RecordDecodeError("quotes", "not_json", "unexpected character at 0")

    assert (error.topic, error.reason, error.detail) == ("quotes", "not_json", "unexpected character at 0")
    assert str(error) == "bad record on topic 'quotes' (not_json): unexpected character at 0"


def test_every_error_class_derives_from_the_root() -> None:
    """Every exception class the module defines is a QuanticityError (one root)."""
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]

    assert len(classes) >= 10
    assert all(issubclass(cls, QuanticityError) for cls in classes)


def test_module_docstring_draws_every_error_class() -> None:
    """The tree in the module docstring names every exception class the module defines."""
    names = [name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, QuanticityError)]

    assert errors.__doc__ is not None
    assert [name for name in names if name not in errors.__doc__] == []
