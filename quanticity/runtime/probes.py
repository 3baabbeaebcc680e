"""Health probes for the broker and Redis, used at start-up and by the monitors."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError


async def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request within ``timeout_s``."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:  # a plain connect first: aiokafka logs every refused bootstrap at ERROR level
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, int(port))
    except (OSError, TimeoutError):
        return False
    writer.close()
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        connections_max_idle_ms=int(timeout_s * 2000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


async def redis_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when Redis answers PING within ``timeout_s``."""
    client: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def http_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url`` answers 200 within ``timeout_s``."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def tcp_answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when something accepts a TCP connection on ``host:port``."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
