"""Which Redis failures the store role waits out and which dead-letter the record (agents.store.failure_passes).

The errors are built by redis-py's own parser from the error lines Redis sends, as the role
meets them: redis-py maps some first words to classes and strips them from the message.
"""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from quanticity.agents.store import failure_passes


@pytest.mark.parametrize(
    "line",
    [
        "OOM command not allowed when used memory > 'maxmemory'.",
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "READONLY You can't write against a read only replica.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "NOREPLICAS Not enough good replicas to write.",
    ],
)
def test_refusals_that_pass_with_time_are_waited_out(line: str) -> None:
    assert failure_passes(BaseParser.parse_error(line))


@pytest.mark.parametrize(
    "line",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR wrong number of arguments for 'hset' command",
        "ERR TSDB: invalid value",
        "ERR syntax error",
    ],
)
def test_refusals_no_retry_changes_are_not(line: str) -> None:
    assert not failure_passes(BaseParser.parse_error(line))


def test_a_lost_or_slow_connection_is_waited_out() -> None:
    assert failure_passes(RedisConnectionError("Connection refused"))
    assert failure_passes(RedisTimeoutError("Timeout reading from socket"))
