"""Build ``Settings`` from YAML files, the environment and ``.env``; name bad values.

Layers, highest precedence first::

    arguments > environment (QUANTICITY_…) > shorthands > .env > config/credentials.yaml
      > config/modules/*.yaml (alphabetical, later wins) > config/*.yaml (alphabetical)
      > config/system.yaml > defaults

A bad value raises ``ConfigError`` naming the file (or env var) it came from, the dotted
key, and pydantic's description of the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from quanticity.errors import ConfigError
from quanticity.settings.model import ENV_PREFIX, ENV_SHORTHANDS, Settings, ShorthandEnvSource

DEFAULT_CONFIG_DIR = Path("config")


class YamlLayer(PydanticBaseSettingsSource):
    """One YAML file's content as a settings source."""

    def __init__(self, settings_cls: type[BaseSettings], name: str, data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.name = name
        self.data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


def read_yaml_layers(config_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Read the YAML files of ``config_dir`` in precedence order, lowest first.

    Raises:
        ConfigError: a file is not valid YAML or its top level is not a mapping.
    """
    files: list[Path] = []
    system = config_dir / "system.yaml"
    if system.is_file():
        files.append(system)
    # Module files at the top level (alpha_vantage.yaml, watchlists.yaml…), then modules/.
    files.extend(p for p in sorted(config_dir.glob("*.yaml")) if p.name not in ("system.yaml", "credentials.yaml"))
    modules = config_dir / "modules"
    if modules.is_dir():
        files.extend(sorted(modules.glob("*.yaml")))
    credentials = config_dir / "credentials.yaml"
    if credentials.is_file():
        files.append(credentials)
    layers: list[tuple[str, dict[str, Any]]] = []
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            # Only the problem and its position: PyYAML's full message quotes the offending
            # line, which in credentials.yaml is a secret.
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(unknown position)"
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError([(str(path), where, f"not valid YAML: {problem}")]) from None
        except OSError as exc:
            raise ConfigError([(str(path), "(file)", f"cannot read: {exc.strerror}")]) from exc
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError([(str(path), "(top level)", "must be a mapping of settings")])
        layers.append((str(path), data))
    return layers


def _flatten(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in data.items():
        path = (*prefix, str(key))
        flat[path] = value
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path))
    return flat


_SECRET_PARTS = ("password", "api_key", "token", "secret")


def _redact(loc: tuple[str, ...], value: Any) -> str:
    """Show a rejected value unless it may be a credential; drop userinfo from URLs."""
    if any(part in key for key in loc for part in _SECRET_PARTS):
        return "(value hidden)"
    text = repr(value)
    if "@" in text and "://" in text:
        scheme, _, rest = text.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return text


def _env_name(path: tuple[str, ...], shorthand: bool) -> str:
    if shorthand:
        for name, target in ENV_SHORTHANDS.items():
            if target == path:
                return name
    return ENV_PREFIX + "__".join(part.upper() for part in path)


class _DotEnvSource(DotEnvSettingsSource):
    """``.env`` with the documented shorthands, ignoring variables that are not ours.

    The same ``.env`` feeds docker compose (TWS_USERID, GRAFANA_…), so foreign names are
    skipped; a misspelt ``QUANTICITY_…`` name is still rejected.
    """

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        fields = set(self.settings_cls.model_fields)
        kept: dict[str, Any] = {}
        shorthands = {name.lower(): target for name, target in ENV_SHORTHANDS.items()}
        for key, value in data.items():
            if key in shorthands:
                continue
            if key in fields or key.startswith(ENV_PREFIX.lower()):
                kept[key] = value
        for name, (section, field) in shorthands.items():
            value = self.env_vars.get(name)
            if value is not None:
                section_values = kept.setdefault(section, {})
                if isinstance(section_values, dict):
                    section_values.setdefault(field, value)  # the nested form wins over the shorthand
        return kept


def _unknown_env_names(settings_cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """``QUANTICITY_*`` variables that name no top-level setting (pydantic would ignore them)."""
    fields = set(settings_cls.model_fields)
    shorthands = {name.lower() for name in ENV_SHORTHANDS}
    problems = []
    for name in EnvSettingsSource(settings_cls).env_vars:
        if not name.startswith(ENV_PREFIX.lower()) or name in shorthands:
            continue
        top = name[len(ENV_PREFIX) :].split("__", 1)[0]
        if top not in fields:
            problems.append(
                ("environment", name.upper(), "unknown setting (check the spelling and the section it is in)")
            )
    return problems


def load_settings(
    config_dir: Path | None = None, *, env_file: Path | str | None = ".env", **overrides: Any
) -> Settings:
    """Build the settings from every layer.

    Args:
        config_dir: directory holding ``system.yaml`` and ``modules/``; default ``./config``.
        env_file: the dotenv file to read, or ``None`` for none.
        **overrides: values that win over every file and variable (tests use these).

    Returns:
        The validated, frozen settings.

    Raises:
        ConfigError: any value is invalid; every bad value is listed with its source.
    """
    layers = read_yaml_layers(config_dir if config_dir is not None else DEFAULT_CONFIG_DIR)
    seen_sources: list[tuple[str, PydanticBaseSettingsSource]] = []

    class _LayeredSettings(Settings):
        model_config = SettingsConfigDict(env_file=env_file)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            yaml_sources = [YamlLayer(settings_cls, name, data) for name, data in reversed(layers)]
            ordered: list[tuple[str, PydanticBaseSettingsSource]] = [
                ("arguments", init_settings),
                ("environment", env_settings),
                ("shorthand", ShorthandEnvSource(settings_cls)),
                (
                    str(env_file) if env_file else ".env",
                    _DotEnvSource(settings_cls, env_file=env_file) if env_file else dotenv_settings,
                ),
                *((source.name, source) for source in yaml_sources),
            ]
            seen_sources[:] = ordered
            return tuple(source for _, source in ordered)

    unknown = _unknown_env_names(Settings)
    try:
        settings = _LayeredSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(unknown + _describe(exc, seen_sources)) from None
    if unknown:
        raise ConfigError(unknown)
    return settings


def _describe(
    exc: ValidationError, sources: list[tuple[str, PydanticBaseSettingsSource]]
) -> list[tuple[str, str, str]]:
    """Turn a ValidationError into (source, key, problem) triples."""
    claimed: dict[tuple[str, ...], str] = {}
    for name, source in sources:  # highest precedence first: the first claim wins
        try:
            values = source()
        except Exception as source_exc:  # noqa: BLE001 - best effort: only used to name the culprit
            values = {}
            claimed.setdefault(("<source>",), f"{name} (unreadable: {source_exc})")
        for path in _flatten(values):
            claimed.setdefault(path, name)
    problems: list[tuple[str, str, str]] = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        origin = "defaults"
        key_label = ".".join(loc)
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in claimed:
                origin = claimed[loc[:depth]]
                break
        if origin in ("environment", "shorthand"):
            key_label = f"{_env_name(loc, origin == 'shorthand')} ({'.'.join(loc)})"
            origin = "environment"
        problem = error["msg"]
        if error["type"] == "extra_forbidden":
            problem = "unknown setting (check the spelling and the section it is in)"
        elif "input" in error and not isinstance(error["input"], dict | list):
            problem = f"{problem} (got {_redact(loc, error['input'])})"
        problems.append((origin, key_label, problem))
    return problems
