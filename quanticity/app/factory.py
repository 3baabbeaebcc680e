"""The Faust app factory: one app (one consumer group) per role, built from settings."""

from __future__ import annotations

from typing import Any

import faust

from quanticity.agents import heartbeat
from quanticity.app.context import RoleContext
from quanticity.app.roles import RoleSpec
from quanticity.topology.broker_profile import faust_app_options, faust_broker_url


def app_id(ctx: RoleContext, role: RoleSpec) -> str:
    """The app id, which is also the consumer group and the changelog topic prefix."""
    return f"{ctx.registry.prefix}quanticity-{role.name}"


def build_app(role: RoleSpec, ctx: RoleContext) -> Any:
    """Build the Faust app of ``role`` with its agents, tables and heartbeat declared.

    Args:
        role: which role.
        ctx: settings, metrics, topics and Redis for the agents.

    Returns:
        A finalized ``faust.App``, not started.
    """
    settings = ctx.settings.current
    datadir = settings.embedded.home.resolve() / "faust" / role.name
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id(ctx, role),
        broker=faust_broker_url(settings.kafka, ctx.bootstrap),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.kafka.partitions,
        topic_allow_declare=True,
        **faust_app_options(settings.kafka),
    )
    heartbeat.install(app, ctx, role.name)
    role.install(app, ctx, role.name)
    app.finalize()
    return app
