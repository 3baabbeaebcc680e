"""The role registry: which agents each role (Faust app, consumer group) runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quanticity.agents import analytics, demo_ingest, execution, ingest_av, ingest_ibkr, store
from quanticity.app.context import RoleContext
from quanticity.errors import UnknownRoleError
from quanticity.settings.model import Settings

Installer = Callable[[Any, RoleContext, str], None]


@dataclass(frozen=True)
class RoleSpec:
    """One role.

    Attributes:
        name: role name (``quanticity worker --role NAME``).
        description: one line for ``--help`` and the start banner.
        install: declares the role's agents, tables and timers on its app.
        enabled_when: whether ``quanticity up`` runs it under the given settings.
    """

    name: str
    description: str
    install: Installer
    enabled_when: Callable[[Settings], bool] = lambda _settings: True


# Consumers first: `quanticity up` starts roles in this order, so the store has joined
# its group before the demo publishes.
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("store", "quotes, ticks, reference → Redis TimeSeries, JSON documents, ingestion index", store.install),
    RoleSpec(
        "ingest-av",
        "AlphaVantage cadence matrix → quotes, ticks, reference (the local simulator without a key)",
        ingest_av.install,
        lambda s: bool(s.alphavantage.cadence.buckets),
    ),
    RoleSpec(
        "ingest-ibkr",
        "TWS L1, option greeks, auction fields, tick-by-tick, bars, rotating depth → quotes, ticks, depth; "
        "account → Redis (the local TWS simulator in sim mode)",
        ingest_ibkr.install,
        lambda s: s.ibkr.enabled,
    ),
    RoleSpec(
        "execution",
        "order intents on orders → IBKR router (idempotent orderRef) → order events, fills, orders:{id} in Redis",
        execution.install,
        lambda s: s.ibkr.enabled,
    ),
    RoleSpec(
        "analytics",
        "quotes, ticks, depth, reference → Greeks/IV, VPIN, liquidity, regime, macro, risk, stress, MOC "
        "→ analytics:* in Redis + analytics topic",
        analytics.install,
    ),
    RoleSpec(
        "ingest-demo",
        "synthetic underlying quotes → quotes (sim mode, demo.enabled)",
        demo_ingest.install,
        lambda s: s.mode == "sim" and s.demo.enabled,
    ),
)


def role(name: str) -> RoleSpec:
    """The spec of role ``name``.

    Raises:
        UnknownRoleError: no such role.
    """
    for spec in ROLES:
        if spec.name == name:
            return spec
    raise UnknownRoleError(name, [r.name for r in ROLES])


def enabled_roles(settings: Settings) -> list[RoleSpec]:
    """Roles ``quanticity up`` runs: the configured list, else every role enabled by its rule."""
    if settings.roles.enabled is not None:
        return [role(name) for name in settings.roles.enabled]
    return [spec for spec in ROLES if spec.enabled_when(settings)]
