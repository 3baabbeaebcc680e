"""Hold the live settings and swap them on reload (SIGHUP), keeping the old on failure."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from quanticity.errors import ConfigError
from quanticity.observability.metrics import Metrics
from quanticity.settings.model import Settings

log = structlog.get_logger(__name__)

Listener = Callable[[Settings, Settings], None]


class SettingsHolder:
    """The process's current settings, replaced atomically by ``reload``.

    Args:
        current: the settings the process started with.
        loader: builds fresh settings from the same sources (raises ``ConfigError``).
        metrics: where reload outcomes are counted.
    """

    def __init__(self, current: Settings, loader: Callable[[], Settings], metrics: Metrics) -> None:
        self.current = current
        self._loader = loader
        self._metrics = metrics
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after every successful reload."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Re-read every source; apply the result only if it is valid.

        Returns:
            True when the new settings were applied, False when they were rejected.
        """
        try:
            fresh = self._loader()
        except ConfigError as exc:
            self._metrics.config_reload_failure.inc()
            log.error(
                "config_reload_rejected",
                problems=[list(p) for p in exc.problems],
                action="the previous configuration stays in effect",
            )
            return False
        old, self.current = self.current, fresh
        self._metrics.config_reload_success.inc()
        changed = sorted(k for k in type(fresh).model_fields if getattr(old, k) != getattr(fresh, k))
        log.info("config_reloaded", changed_sections=changed)
        for listener in self._listeners:
            listener(old, fresh)
        return True
