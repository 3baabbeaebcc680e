"""Structured logs: structlog JSON lines (or console) with correlation ids.

Our own log calls and the libraries' stdlib logging (faust, aiokafka, mode) go through
the same renderer, so one process writes one format. ``bind_correlation`` puts a
correlation id (and any other fields) on every line logged in the current task.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one handler in the chosen format.

    Args:
        level: minimum level name (DEBUG, INFO, WARNING, ERROR).
        fmt: ``json`` (one JSON object per line) or ``console`` (for people).
        stream: where lines go; stderr by default.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # mode/faust are chatty at INFO about internals (timers, fetcher states).
    for noisy in ("mode", "faust", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def set_level(level: str) -> None:
    """Change the root level at run time (config reload)."""
    logging.getLogger().setLevel(level)


def bind_correlation(correlation_id: str, **fields: Any) -> None:
    """Attach a correlation id (and fields) to every log line of the current context."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, **fields)


def clear_correlation() -> None:
    """Remove the fields bound by ``bind_correlation``."""
    structlog.contextvars.clear_contextvars()
