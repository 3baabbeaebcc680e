"""The ``quanticity`` command line.

Exit codes: 0 success, 1 runtime failure (a server did not start, the broker is down),
2 bad configuration or usage.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
import orjson
import structlog

from quanticity.errors import ConfigError, QuanticityError
from quanticity.observability.logging import configure_logging
from quanticity.observability.metrics import Metrics
from quanticity.settings import Settings, SettingsHolder, load_settings

T = TypeVar("T")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works too
        return
    uvloop.install()


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj["settings"]
    assert isinstance(settings, Settings)
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _bootstrap(settings: Settings) -> str:
    """The configured broker, else the embedded one `make run` starts."""
    return settings.kafka.bootstrap or f"127.0.0.1:{settings.embedded.kafka_port}"


@click.group()
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    default=Path("config"),
    show_default=True,
    help="directory with system.yaml and modules/",
)
@click.option("--env-file", type=click.Path(path_type=Path), default=Path(".env"), show_default=True)
@click.pass_context
def cli(ctx: click.Context, config_dir: Path, env_file: Path) -> None:
    """Quanticity: options analytics, signals and execution on a Faust topology."""
    loader: Callable[..., Settings] = lambda **kw: load_settings(config_dir, env_file=env_file, **kw)  # noqa: E731
    try:
        settings = loader()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    configure_logging(settings.observability.log_level, settings.observability.log_format)
    ctx.obj = {"settings": settings, "loader": loader}


def _serve(ctx: click.Context, role_names: list[str] | None) -> None:
    from quanticity.app.platform import Platform, run_until_signalled
    from quanticity.app.roles import enabled_roles, role

    settings = _settings(ctx)
    try:
        roles = [role(n) for n in role_names] if role_names else enabled_roles(settings)
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    metrics = Metrics()
    run_id = settings.run_id
    holder = SettingsHolder(settings, lambda: ctx.obj["loader"](run_id=run_id), metrics)
    _install_uvloop()
    _run(run_until_signalled(Platform(holder, metrics, roles)))
    _exit_despite_lingering_threads()


def _exit_despite_lingering_threads() -> None:
    """Exit now even if a library thread is still alive after a clean stop.

    Faust runs each consumer in a non-daemon thread; if one outlives its app (a Ctrl-C in
    the middle of start-up), the interpreter would wait for it forever. Everything we own
    (role apps, embedded servers, the endpoint) is stopped by now, so leave without it.
    """
    lingering = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if lingering:
        structlog.get_logger(__name__).warning("exiting_with_lingering_threads", threads=lingering)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@cli.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Run every enabled role in this process (starts the embedded broker/Redis if needed)."""
    _serve(ctx, None)


@cli.command()
@click.option("--role", "roles", multiple=True, required=True, help="role to run (repeatable)")
@click.pass_context
def worker(ctx: click.Context, roles: tuple[str, ...]) -> None:
    """Run one role (or a few) as its own worker."""
    _serve(ctx, list(roles))


@cli.command()
@click.option("--all", "include_internal", is_flag=True, help="also list changelog/internal topics")
@click.pass_context
def topics(ctx: click.Context, include_internal: bool) -> None:
    """List topics with partitions, end offsets and consumer-group lag."""
    from quanticity.topology.admin import describe_topics
    from quanticity.topology.registry import TopicRegistry

    settings = _settings(ctx)
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    infos = _run(
        describe_topics(
            _bootstrap(settings),
            registry,
            include_internal=include_internal,
            timeout_s=settings.kafka.request_timeout_s,
        )
    )
    click.echo(f"{'TOPIC':<40} {'PARTS':>5} {'MESSAGES':>10}  END OFFSETS / GROUP LAG")
    for info in infos:
        ends = ",".join(f"{p}:{o}" for p, o in sorted(info.end_offsets.items()))
        lag = "  ".join(f"{g}={n}" for g, n in sorted(info.group_lag.items()))
        lag_note = f"  lag {lag}" if lag else ""
        click.echo(f"{info.name:<40} {info.partitions:>5} {info.messages:>10}  [{ends}]{lag_note}")
    declared = {spec.name for spec in registry}
    missing = declared - {i.logical for i in infos if i.logical}
    if missing:
        click.echo(f"declared but absent on the broker: {', '.join(sorted(missing))}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="start at the oldest record instead of the newest")
@click.option("--limit", type=int, default=None, help="stop after this many records")
@click.option("--timeout", "timeout_s", type=float, default=None, help="stop after this many idle seconds")
@click.pass_context
def tail(ctx: click.Context, topic: str, from_beginning: bool, limit: int | None, timeout_s: float | None) -> None:
    """Print a topic's records, decoded and validated, one JSON object per line."""
    from quanticity.topology.registry import TopicRegistry
    from quanticity.topology.tail import tail_topic

    settings = _settings(ctx)
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)
    try:
        registry.spec(topic)
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    def emit(line: dict[str, Any]) -> None:
        click.echo(orjson.dumps(line, default=str).decode())

    _run(
        tail_topic(
            _bootstrap(settings),
            registry,
            topic,
            emit,
            from_beginning=from_beginning,
            limit=limit,
            idle_timeout_s=timeout_s,
        )
    )


@cli.group()
def av() -> None:
    """AlphaVantage ingestion: the cadence matrix and single calls."""


@av.command("schedule")
@click.pass_context
def av_schedule(ctx: click.Context) -> None:
    """Print the effective cadence matrix: calls/min per bucket and the total against the quota."""
    from quanticity.data_ingestion.stream_scheduler import build_plan, describe_plan

    settings = _settings(ctx)
    try:
        plan = build_plan(settings.alphavantage.cadence, settings.watchlists)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for line in describe_plan(plan):
        click.echo(line)


@cli.group()
def sim() -> None:
    """Local simulators of outside services."""


@sim.command("alphavantage")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--key", default=None, help="accept only this API key (default: any non-empty key but 'demo')")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--throttle-key", type=click.Choice(["Information", "Note"]), default="Information", show_default=True)
@click.option("--per-minute", type=int, default=600, show_default=True, help="the key's per-minute quota")
@click.option("--symbols", default=None, help="comma-separated symbols it knows (default: every watchlist)")
@click.pass_context
def sim_alphavantage(
    ctx: click.Context,
    port: int,
    host: str,
    key: str,
    seed: int,
    throttle_key: str,
    per_minute: int,
    symbols: str | None,
) -> None:
    """Serve the AlphaVantage simulator (GET /query) until Ctrl-C."""
    from datetime import UTC, datetime

    from quanticity.simulation.alphavantage.config import SimulatorConfig
    from quanticity.simulation.alphavantage.server import run_forever
    from quanticity.simulation.market import SimulatedMarket

    settings = _settings(ctx)
    known = (
        sorted(s.strip().upper() for s in symbols.split(",") if s.strip())
        if symbols
        else sorted({s for watchlist in settings.watchlists.values() for s in watchlist})
    )
    if key:
        config = SimulatorConfig.single_key(key, per_minute=per_minute, seed=seed, throttle_key=throttle_key)
    else:
        config = SimulatorConfig.any_key_premium(per_minute, seed=seed, throttle_key=throttle_key)
    accepted = repr(key) if key else "any key"
    click.echo(f"AlphaVantage simulator on http://{host}:{port}/query ({accepted}, {per_minute}/min); Ctrl-C stops it")
    try:
        _install_uvloop()
        asyncio.run(run_forever(host, port, config, SimulatedMarket(seed, datetime.now(UTC), known)))
    except KeyboardInterrupt:
        click.echo("stopped")
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(1)


@sim.command("tws")
@click.option("--port", type=int, default=7497, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--symbols", default=None, help="comma-separated symbols it lists (default: every watchlist)")
@click.option("--account", default="DU1234567", show_default=True, help="the managed (paper) account code")
@click.option("--tick-interval-ms", type=click.IntRange(min=10), default=250, show_default=True)
@click.option("--control-port", type=int, default=None, help="loopback HTTP port for fault injection")
@click.option("--not-entitled", default="", help="comma-separated symbols without live data (354 → delayed)")
@click.pass_context
def sim_tws(
    ctx: click.Context,
    port: int,
    host: str,
    seed: int,
    symbols: str | None,
    account: str,
    tick_interval_ms: int,
    control_port: int | None,
    not_entitled: str,
) -> None:
    """Serve the TWS-protocol simulator (what ib_insync connects to) until Ctrl-C."""
    from datetime import UTC, datetime

    from quanticity.simulation.market import SimulatedMarket
    from quanticity.simulation.tws.config import TwsSimConfig
    from quanticity.simulation.tws.server import run_forever

    settings = _settings(ctx)
    known = (
        sorted(s.strip().upper() for s in symbols.split(",") if s.strip())
        if symbols
        else sorted({s for watchlist in settings.watchlists.values() for s in watchlist})
    )
    try:
        config = TwsSimConfig(
            accounts=(account,),
            tick_interval_s=tick_interval_ms / 1000.0,
            not_entitled=frozenset(s.strip().upper() for s in not_entitled.split(",") if s.strip()),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    control = f", fault control on http://{host}:{control_port}" if control_port else ""
    click.echo(f"TWS simulator on {host}:{port} (server version {config.server_version}, account {account}{control})")
    try:
        _install_uvloop()
        asyncio.run(run_forever(host, port, config, SimulatedMarket(seed, datetime.now(UTC), known), control_port))
    except KeyboardInterrupt:
        click.echo("stopped")


def _host_port(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` split, or a usage error naming ``option``."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint=option)
    return host, int(port)


@sim.command("tws-record")
@click.option("--listen-port", type=int, default=7498, show_default=True, help="loopback port clients connect to")
@click.option("--upstream", required=True, help="HOST:PORT of the TWS / IB Gateway (or `sim tws`) to record")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the .ibkr file")
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
def sim_tws_record(listen_port: int, upstream: str, out: Path, overwrite: bool) -> None:
    """Forward TWS API clients to --upstream and record every message to a .ibkr file until Ctrl-C."""
    from quanticity.simulation.tws.recording import RecordingError
    from quanticity.simulation.tws.recording_proxy import RecordingProxy, serve_recorder

    upstream_host, upstream_port = _host_port(upstream, "--upstream")
    proxy = RecordingProxy(upstream_host, upstream_port, out, overwrite=overwrite)
    # Loopback only: the proxy passes orders through to a real account unauthenticated.
    click.echo(f"recording 127.0.0.1:{listen_port} -> {upstream_host}:{upstream_port} into {out}; Ctrl-C stops it")
    try:
        asyncio.run(serve_recorder(proxy, "127.0.0.1", listen_port))
    except KeyboardInterrupt:
        pass
    except RecordingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot listen on 127.0.0.1:{listen_port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    click.echo(f"stopped: {proxy.connections} connections, {proxy.records} records in {out}")


@sim.command("tws-replay")
@click.argument("recording", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--port", type=int, default=7497, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="1 = recorded pace, 2 = twice as fast, 0 = as fast as possible",
)
@click.option(
    "--on-divergence",
    type=click.Choice(["continue", "stop"]),
    default="continue",
    show_default=True,
    help="after a client message that differs from the recording: go on, or close the connection",
)
@click.option(
    "--ignore-field",
    "ignore_fields",
    multiple=True,
    metavar="MSGID:FIELD",
    help="a client message field allowed to differ (repeatable), e.g. 3:5",
)
@click.option("--allow-truncated", is_flag=True, help="accept a recording whose last record was cut off")
def sim_tws_replay(
    recording: Path,
    port: int,
    host: str,
    speed: float,
    on_divergence: Literal["continue", "stop"],
    ignore_fields: tuple[str, ...],
    allow_truncated: bool,
) -> None:
    """Serve a .ibkr recording to TWS API clients (deterministic replay) until Ctrl-C."""
    from quanticity.simulation.tws.recording import RecordingError
    from quanticity.simulation.tws.replay import ReplayServer, serve_replay

    lenient: dict[int, set[int]] = {}
    for item in ignore_fields:
        msg_id, _, position = item.partition(":")
        if not (msg_id.isdigit() and position.isdigit()):
            raise click.BadParameter(f"expected MSGID:FIELD, got {item!r}", param_hint="--ignore-field")
        lenient.setdefault(int(msg_id), set()).add(int(position))
    try:
        server = ReplayServer(
            recording,
            speed=speed,
            on_divergence=on_divergence,
            lenient_fields=lenient,
            allow_truncated=allow_truncated,
        )
    except RecordingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    scripts = len(server.scripts)
    click.echo(f"replaying {recording} ({scripts} connections, speed {speed:g}) on {host}:{port}; Ctrl-C stops it")
    try:
        asyncio.run(serve_replay(server, host, port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    divergences = len(server.divergences)
    click.echo(f"stopped: {len(server.reports)} client connections replayed, {divergences} divergences")


@cli.group()
def archive() -> None:
    """The Parquet cold archive: export a day, verify against the manifest, upload."""


def _redis_url(settings: Settings) -> str:
    return settings.redis.url or f"redis://127.0.0.1:{settings.embedded.redis_port}/0"


def _from_redis(url: str, read: Callable[[Any], Awaitable[T]]) -> T:
    """``read(client)`` on a client of ``url``, closed after; an unreachable Redis exits 1 naming it."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    async def run() -> T:
        redis = Redis.from_url(url)
        try:
            return await read(redis)
        finally:
            await redis.aclose()

    try:
        return _run(run())
    except RedisError as exc:
        click.echo(f"error: Redis at {url}: {exc}", err=True)
        sys.exit(1)


@cli.command("chain")
@click.argument("symbol")
@click.argument("expiry", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="EXPIRY")
@click.pass_context
def chain_show(ctx: click.Context, symbol: str, expiry: Any) -> None:
    """Print the latest stored option chain snapshot of SYMBOL and EXPIRY (YYYY-MM-DD) as JSON.

    The ``chains:{symbol}:{expiry}`` document is the record's binary columnar form; this
    prints it as the record's JSON (``null`` where the source gave no value).
    """
    from quanticity.observability.metrics import Metrics
    from quanticity.storage.option_store import OptionChainStore, chain_key
    from quanticity.storage.redis_timeseries import TimeSeriesWriter

    settings = _settings(ctx)
    url = _redis_url(settings)
    key = settings.redis.key_prefix + chain_key(symbol.upper(), expiry.date().isoformat())

    async def read(redis: Any) -> bytes | None:
        store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), settings.redis.key_prefix))
        snapshot = await store.latest(symbol.upper(), expiry.date())
        return None if snapshot is None else snapshot.model_dump_json().encode()

    document = _from_redis(url, read)
    if document is None:
        click.echo(f"error: no chain stored at {key} (Redis {url})", err=True)
        sys.exit(1)
    click.echo(document.decode())


@cli.command("greeks")
@click.argument("symbol")
@click.argument("expiry", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="EXPIRY")
@click.pass_context
def greeks_show(ctx: click.Context, symbol: str, expiry: Any) -> None:
    """Print the Greeks document of SYMBOL and EXPIRY (YYYY-MM-DD) as JSON.

    ``analytics:greeks:{symbol}:{expiry}`` is stored in the binary columnar form while it is
    valid; this prints it as JSON, ``null`` where a contract has no value.
    """
    import orjson

    from quanticity.storage.analytics_store import decode_result, greeks_key

    settings = _settings(ctx)
    url = _redis_url(settings)
    key = greeks_key(symbol.upper(), expiry.date().isoformat())

    async def read(redis: Any) -> bytes | None:
        raw = await redis.get(settings.redis.key_prefix + key)
        return raw.encode() if isinstance(raw, str) else raw

    raw = _from_redis(url, read)
    if raw is None:
        where = settings.redis.key_prefix + key
        click.echo(f"error: no Greeks stored at {where} (none yet, or past their validity; Redis {url})", err=True)
        sys.exit(1)
    try:
        document = decode_result(raw, key)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY).decode())


@archive.command("export")
@click.option(
    "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="UTC day to export (default: today)"
)
@click.option("--root", type=click.Path(path_type=Path), default=Path(".quanticity/archive"), show_default=True)
@click.pass_context
def archive_export(ctx: click.Context, day: Any, root: Path) -> None:
    """Write one day of the hot store to Parquet and update the manifest."""
    from datetime import UTC, datetime

    from redis.asyncio import Redis

    from quanticity.storage.archive import export_day

    settings = _settings(ctx)
    target_day = (day or datetime.now(UTC)).date()

    async def run() -> dict[str, Any]:
        redis = Redis.from_url(_redis_url(settings))
        try:
            return await export_day(redis, root, target_day, key_prefix=settings.redis.key_prefix)
        finally:
            await redis.aclose()

    written = _run(run())
    for relative, entry in written.items():
        click.echo(f"{entry['rows']:>10} rows  {relative}")
    click.echo(f"{len(written)} files for {target_day.isoformat()} under {root}")


@archive.command("verify")
@click.option("--root", type=click.Path(path_type=Path), default=Path(".quanticity/archive"), show_default=True)
def archive_verify(root: Path) -> None:
    """Check every archived file's sha256 and row count against the manifest (exit 1 on any problem)."""
    from quanticity.storage.archive import load_manifest, verify

    try:
        problems = verify(root)
        count = len(load_manifest(root))
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for problem in problems:
        click.echo(f"PROBLEM {problem.path}: {problem.reason}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{count} files verified under {root}")


@archive.command("upload")
@click.argument("url")
@click.option("--root", type=click.Path(path_type=Path), default=Path(".quanticity/archive"), show_default=True)
def archive_upload(url: str, root: Path) -> None:
    """Copy the archive to an fsspec URL (file://…, s3://… with s3fs, gs://… with gcsfs)."""
    from quanticity.storage.archive import upload

    try:
        copied = upload(root, url)
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{len(copied)} files copied")


@cli.group()
def runtime() -> None:
    """The embedded runtime (Tansu broker, Redis Stack)."""


@runtime.command("install")
@click.pass_context
def runtime_install(ctx: click.Context) -> None:
    """Install what the embedded servers need (the private OpenSSL 1.1); idempotent."""
    from quanticity.runtime.embedded import openssl_dir, redis_stack_dir, tansu_binary
    from quanticity.runtime.openssl import ensure_libssl11

    settings = _settings(ctx)
    try:
        broker = tansu_binary()
        redis_dir = redis_stack_dir()
        lib_dir = ensure_libssl11(openssl_dir(settings.embedded), settings.embedded.debian_mirror)
    except QuanticityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"broker binary   {broker}")
    click.echo(f"redis stack     {redis_dir}")
    click.echo(f"openssl 1.1     {lib_dir or 'provided by the system'}")
    # numba compiles the analytics kernels on first use, holding the GIL for tens of seconds
    # on a fresh machine: do it here, once, into numba's on-disk cache, so the first
    # `make run` starts its roles without that stall.
    started = time.monotonic()
    from quanticity.agents.analytics import warm_kernels
    from quanticity.agents.analytics_chains import warm_chain_kernels

    warm_kernels()
    warm_chain_kernels()
    click.echo(f"analytics       kernels compiled into numba's cache ({time.monotonic() - started:.0f} s)")


@cli.group()
def order() -> None:
    """Paper orders through the execution role's router."""


@order.command("submit")
@click.option("--symbol", required=True)
@click.option("--side", type=click.Choice(["buy", "sell"]), required=True)
@click.option("--qty", "quantity", type=click.IntRange(min=1), required=True)
@click.option("--limit", "limit_price", default=None, help="limit price (default: a market order)")
@click.option("--signal-id", default=None, help="idempotency: the same signal id never creates a second order")
@click.option("--wait", "wait_s", type=float, default=30.0, show_default=True, help="seconds to wait for a final state")
@click.pass_context
def order_submit(
    ctx: click.Context,
    symbol: str,
    side: str,
    quantity: int,
    limit_price: str | None,
    signal_id: str | None,
    wait_s: float,
) -> None:
    """Publish an order intent on `orders` and follow it in orders:{id} until it is final."""
    import uuid
    from datetime import UTC, datetime
    from decimal import Decimal, InvalidOperation

    from aiokafka import AIOKafkaProducer
    from redis.asyncio import Redis

    from quanticity.execution.order_router import DONE, OrderRequest
    from quanticity.schemas import OrderEvent
    from quanticity.schemas.codec import encode_record
    from quanticity.storage.ibkr_events import OrderLedger
    from quanticity.topology.registry import TopicRegistry

    settings = _settings(ctx)
    try:
        limit = Decimal(limit_price) if limit_price is not None else None
    except InvalidOperation:
        raise click.BadParameter(f"not a price: {limit_price!r}", param_hint="--limit") from None
    sid = signal_id or f"cli-{uuid.uuid4().hex[:12]}"
    order_side: Literal["buy", "sell"] = "buy" if side == "buy" else "sell"
    request = OrderRequest(signal_id=sid, symbol=symbol.upper(), side=order_side, quantity=quantity, limit_price=limit)
    intent = OrderEvent(
        symbol=request.symbol,
        order_id=request.token,
        signal_id=sid,
        side=request.side,
        quantity=quantity,
        limit_price=limit,
        status="pending",
        record_id=sid,
        event_time=datetime.now(UTC),
        source="platform",
        run_id=settings.run_id,
        mode=settings.mode,
    )
    registry = TopicRegistry(settings.kafka.topic_prefix, settings.kafka.partitions)

    async def run() -> dict[str, str]:
        producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(settings), max_batch_size=1)
        await producer.start()
        try:
            await producer.send_and_wait(registry.broker_name("orders"), encode_record(intent), key=intent.key.encode())
        finally:
            await producer.stop()
        redis = Redis.from_url(_redis_url(settings))
        ledger = OrderLedger(redis, settings.redis.key_prefix)
        try:
            deadline = asyncio.get_running_loop().time() + wait_s
            order: dict[str, str] = {}
            while asyncio.get_running_loop().time() < deadline:
                order = await ledger.load(request.token)
                if order.get("status") in DONE:
                    break
                await asyncio.sleep(0.2)
            return order
        finally:
            await redis.aclose()

    click.echo(f"intent {sid} → orders (order id {request.token})")
    order_state = _run(run())
    if not order_state:
        click.echo(
            f"error: no order {request.token} in Redis after {wait_s:.0f} s: is the execution role running?", err=True
        )
        sys.exit(1)
    for key in ("order_id", "status", "symbol", "side", "quantity", "filled", "avg_price", "broker_order_id"):
        click.echo(f"{key:16}{order_state.get(key, '')}")
    sys.exit(0 if order_state.get("status") in DONE else 1)


@cli.command("config")
@click.pass_context
def show_config(ctx: click.Context) -> None:
    """Validate the configuration and print it (secrets masked)."""
    click.echo(_settings(ctx).model_dump_json(indent=2))


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
