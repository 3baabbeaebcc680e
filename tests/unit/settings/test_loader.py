"""Tests of quanticity.settings.loader: layer precedence, error reports, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quanticity.errors import ConfigError
from quanticity.settings import load_settings
from quanticity.settings.loader import read_yaml_layers

SECRET = "s3cr3t-Value-9f8e7d"  # noqa: S105 - a fake secret that must never be printed


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _config_error(config_dir: Path, env_file: Path | None = None, **overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(config_dir, env_file=env_file, **overrides)
    return info.value


# --- precedence ------------------------------------------------------------------------------

# Every layer that can set kafka.bootstrap, highest precedence first, with its value.
_LAYERS = ("arguments", "environment", "shorthand", "dotenv", "credentials", "module_b", "module_a", "system")
_VALUES = {name: f"{name.replace('_', '-')}:{port}" for port, name in enumerate(_LAYERS, start=1001)}


def _set_layer(layer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]) -> None:
    value = _VALUES[layer]
    config = tmp_path / "config"
    if layer == "arguments":
        overrides["kafka"] = {"bootstrap": value}
    elif layer == "environment":
        monkeypatch.setenv("QUANTICITY_KAFKA__BOOTSTRAP", value)
    elif layer == "shorthand":
        monkeypatch.setenv("QUANTICITY_KAFKA_BOOTSTRAP", value)
    elif layer == "dotenv":
        _write(tmp_path / "test.env", f"QUANTICITY_KAFKA__BOOTSTRAP={value}\n")
    elif layer == "credentials":
        _write(config / "credentials.yaml", f"kafka:\n  bootstrap: {value}\n")
    elif layer == "module_b":
        _write(config / "modules" / "b.yaml", f"kafka:\n  bootstrap: {value}\n")
    elif layer == "module_a":
        _write(config / "modules" / "a.yaml", f"kafka:\n  bootstrap: {value}\n")
    elif layer == "system":
        _write(config / "system.yaml", f"kafka:\n  bootstrap: {value}\n")


@pytest.mark.parametrize("winner", range(len(_LAYERS) + 1), ids=[*_LAYERS, "defaults"])
def test_the_highest_layer_that_sets_a_value_wins(winner: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each layer overrides every layer below it and loses to every layer above it."""
    (tmp_path / "config").mkdir()
    overrides: dict[str, Any] = {}
    for layer in _LAYERS[winner:]:
        _set_layer(layer, tmp_path, monkeypatch, overrides)
    env_file = tmp_path / "test.env"

    settings = load_settings(tmp_path / "config", env_file=env_file, **overrides)

    expected = _VALUES[_LAYERS[winner]] if winner < len(_LAYERS) else None
    assert settings.kafka.bootstrap == expected


def test_layers_merge_per_key_inside_a_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys of one section set in different layers are all kept (deep merge, not replace)."""
    config = tmp_path / "config"
    _write(config / "system.yaml", "kafka:\n  topic_prefix: sys-\n  partitions: 2\n")
    _write(config / "modules" / "m.yaml", "kafka:\n  partitions: 8\n")
    monkeypatch.setenv("QUANTICITY_KAFKA__PROFILE", "production")

    settings = load_settings(config, env_file=None, kafka={"replication_factor": 3})

    assert settings.kafka.topic_prefix == "sys-"
    assert settings.kafka.partitions == 8
    assert settings.kafka.profile == "production"
    assert settings.kafka.replication_factor == 3


def test_module_files_apply_in_alphabetical_order_whatever_their_creation_order(tmp_path: Path) -> None:
    """modules/*.yaml are read alphabetically, so the last name alphabetically wins."""
    config = tmp_path / "config"
    _write(config / "modules" / "zeta.yaml", "heartbeat:\n  interval_s: 30\n")
    _write(config / "modules" / "alpha.yaml", "heartbeat:\n  interval_s: 10\n")
    _write(config / "modules" / "mid.yaml", "heartbeat:\n  interval_s: 20\n")

    assert load_settings(config, env_file=None).heartbeat.interval_s == 30


def test_read_yaml_layers_orders_system_modules_credentials(tmp_path: Path) -> None:
    """The YAML layers come lowest precedence first: system, modules A→Z, credentials."""
    config = tmp_path / "config"
    _write(config / "credentials.yaml", "mode: paper\n")
    _write(config / "modules" / "b.yaml", "mode: paper\n")
    _write(config / "modules" / "a.yaml", "mode: paper\n")
    _write(config / "system.yaml", "mode: sim\n")
    _write(config / "modules" / "empty.yaml", "# nothing here\n")

    names = [Path(name).relative_to(config).as_posix() for name, _ in read_yaml_layers(config)]

    assert names == ["system.yaml", "modules/a.yaml", "modules/b.yaml", "credentials.yaml"]


def test_missing_config_dir_gives_defaults(tmp_path: Path) -> None:
    """A config directory that does not exist contributes nothing; defaults apply."""
    settings = load_settings(tmp_path / "absent", env_file=None)

    assert settings.mode == "sim"
    assert settings.kafka.partitions == 4
    assert settings.kafka.bootstrap is None


def test_dotenv_file_sets_nested_values(tmp_path: Path) -> None:
    """QUANTICITY_<SECTION>__<KEY> lines in the .env file reach the nested setting."""
    env_file = _write(tmp_path / "x.env", "QUANTICITY_MODE=paper\nQUANTICITY_KAFKA__PARTITIONS=12\n")

    settings = load_settings(tmp_path / "config", env_file=env_file)

    assert settings.mode == "paper"
    assert settings.kafka.partitions == 12


def test_dotenv_file_accepts_the_documented_shorthands(tmp_path: Path) -> None:
    """.env.example documents QUANTICITY_KAFKA_BOOTSTRAP / QUANTICITY_REDIS_URL lines for .env."""
    env_file = _write(
        tmp_path / "x.env", "QUANTICITY_KAFKA_BOOTSTRAP=127.0.0.1:9092\nQUANTICITY_REDIS_URL=redis://127.0.0.1:6379/0\n"
    )

    settings = load_settings(tmp_path / "config", env_file=env_file)

    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.redis.url == "redis://127.0.0.1:6379/0"


def test_dotenv_file_shared_with_compose_may_hold_other_variables(tmp_path: Path) -> None:
    """Variables docker-compose.yml reads from .env (TWS_USERID, GRAFANA_…) do not break loading."""
    env_file = _write(tmp_path / "x.env", "QUANTICITY_MODE=paper\nTWS_USERID=someone\nGRAFANA_ADMIN_USER=admin\n")

    assert load_settings(tmp_path / "config", env_file=env_file).mode == "paper"


def test_arguments_override_a_whole_scalar(tmp_path: Path) -> None:
    """Keyword overrides win over YAML for top-level values too."""
    _write(tmp_path / "config" / "system.yaml", "mode: paper\nrun_id: from-yaml\n")

    settings = load_settings(tmp_path / "config", env_file=None, run_id="fixed-run")

    assert settings.run_id == "fixed-run"
    assert settings.mode == "paper"


# --- error reports ---------------------------------------------------------------------------


def test_bad_yaml_value_names_file_and_dotted_key(tmp_path: Path) -> None:
    """An out-of-range YAML value is reported with its file and dotted key."""
    system = _write(tmp_path / "config" / "system.yaml", "kafka:\n  partitions: 0\n")

    error = _config_error(tmp_path / "config")

    assert len(error.problems) == 1
    source, key, problem = error.problems[0]
    assert source == str(system)
    assert key == "kafka.partitions"
    assert "greater than or equal to 1" in problem
    assert str(system) in str(error) and "kafka.partitions" in str(error)


def test_bad_value_is_blamed_on_the_layer_that_supplied_it(tmp_path: Path) -> None:
    """When system.yaml is valid but a module overrides it badly, the module file is named."""
    config = tmp_path / "config"
    _write(config / "system.yaml", "observability:\n  log_level: INFO\n")
    module = _write(config / "modules" / "obs.yaml", "observability:\n  log_level: LOUD\n")

    error = _config_error(config)

    assert [(s, k) for s, k, _ in error.problems] == [(str(module), "observability.log_level")]


def test_every_bad_value_is_listed(tmp_path: Path) -> None:
    """Problems in several files are all reported at once, each with its own file."""
    config = tmp_path / "config"
    system = _write(config / "system.yaml", "mode: warp\nheartbeat:\n  interval_s: -1\n")
    module = _write(config / "modules" / "demo.yaml", "demo:\n  symbols: ['$$$']\n")

    error = _config_error(config)

    assert sorted((s, k) for s, k, _ in error.problems) == sorted(
        [
            (str(system), "mode"),
            (str(system), "heartbeat.interval_s"),
            (str(module), "demo.symbols"),
        ]
    )
    for source, key, _ in error.problems:
        assert f"{source}: {key}:" in str(error)


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad QUANTICITY_<SECTION>__<KEY> value names that variable and the dotted key."""
    monkeypatch.setenv("QUANTICITY_KAFKA__PARTITIONS", "many")

    error = _config_error(tmp_path / "config")

    assert len(error.problems) == 1
    source, key, _ = error.problems[0]
    assert source == "environment"
    assert "QUANTICITY_KAFKA__PARTITIONS" in key
    assert "kafka.partitions" in key


def test_bad_shorthand_value_names_the_shorthand_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad QUANTICITY_KAFKA_BOOTSTRAP is reported under that shorthand name."""
    monkeypatch.setenv("QUANTICITY_KAFKA_BOOTSTRAP", "no-port-here")

    error = _config_error(tmp_path / "config")

    named = [(s, k.split(" ")[0]) for s, k, _ in error.problems]
    assert named == [("environment", "QUANTICITY_KAFKA_BOOTSTRAP")]


def test_bad_nested_variable_is_not_blamed_on_the_shorthand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad QUANTICITY_REDIS__URL names QUANTICITY_REDIS__URL, the variable the operator set."""
    monkeypatch.setenv("QUANTICITY_REDIS__URL", "http://cache:6379/0")

    error = _config_error(tmp_path / "config")

    assert len(error.problems) == 1
    _, key, _ = error.problems[0]
    assert key.startswith("QUANTICITY_REDIS__URL")


def test_bad_dotenv_value_names_the_env_file(tmp_path: Path) -> None:
    """A bad value from the .env file is reported with that file's path."""
    env_file = _write(tmp_path / "x.env", "QUANTICITY_OBSERVABILITY__METRICS_PORT=70000\n")

    error = _config_error(tmp_path / "config", env_file=env_file)

    assert [s for s, _, _ in error.problems] == [str(env_file)]
    assert "observability.metrics_port" in error.problems[0][1]


def test_unknown_yaml_keys_are_rejected(tmp_path: Path) -> None:
    """A misspelt key, top level or inside a section, is an error naming file and key."""
    system = _write(tmp_path / "config" / "system.yaml", "modee: sim\nkafka:\n  partition: 3\n")

    error = _config_error(tmp_path / "config")

    assert sorted((s, k) for s, k, _ in error.problems) == [(str(system), "kafka.partition"), (str(system), "modee")]
    assert all("unknown setting" in p for _, _, p in error.problems)


def test_unknown_nested_environment_key_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QUANTICITY_KAFKA__PARTITION (a typo) fails loudly instead of being ignored."""
    monkeypatch.setenv("QUANTICITY_KAFKA__PARTITION", "3")

    error = _config_error(tmp_path / "config")

    named = [(s, k.split(" ")[0]) for s, k, _ in error.problems]
    assert named == [("environment", "QUANTICITY_KAFKA__PARTITION")]


def test_unknown_top_level_environment_key_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QUANTICITY_MDOE (a typo of QUANTICITY_MODE) fails loudly, as model.py promises for env names."""
    monkeypatch.setenv("QUANTICITY_MDOE", "live")

    error = _config_error(tmp_path / "config")

    assert any("QUANTICITY_MDOE" in key for _, key, _ in error.problems)


def test_invalid_yaml_is_reported_with_its_file(tmp_path: Path) -> None:
    """A file that is not YAML raises ConfigError naming the file and the line."""
    module = _write(tmp_path / "config" / "modules" / "broken.yaml", "kafka:\n  partitions: [1, 2\n")

    error = _config_error(tmp_path / "config")

    assert len(error.problems) == 1
    source, where, problem = error.problems[0]
    assert source == str(module)
    assert where.startswith("line ")
    assert "not valid YAML" in problem


@pytest.mark.parametrize("top_level", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_top_level_is_reported_with_its_file(top_level: str, tmp_path: Path) -> None:
    """A YAML file whose top level is a list or scalar is rejected, naming the file."""
    system = _write(tmp_path / "config" / "system.yaml", top_level)

    error = _config_error(tmp_path / "config")

    assert error.problems == [(str(system), "(top level)", "must be a mapping of settings")]


def test_empty_yaml_file_is_ignored(tmp_path: Path) -> None:
    """A file with only comments contributes nothing and is not an error."""
    _write(tmp_path / "config" / "system.yaml", "# all defaults\n")

    assert load_settings(tmp_path / "config", env_file=None).kafka.partitions == 4


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_are_secretstr_and_never_printed(tmp_path: Path) -> None:
    """api_key and redis.password are SecretStr, absent from str, repr and JSON dumps."""
    _write(
        tmp_path / "config" / "credentials.yaml",
        f"alphavantage:\n  api_key: {SECRET}-av\nredis:\n  password: {SECRET}-redis\n",
    )

    settings = load_settings(tmp_path / "config", env_file=None)

    assert settings.alphavantage.api_key is not None and settings.redis.password is not None
    assert settings.alphavantage.api_key.get_secret_value() == f"{SECRET}-av"
    assert settings.redis.password.get_secret_value() == f"{SECRET}-redis"
    for text in (str(settings), repr(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert SECRET not in text
        assert "**********" in text


def test_secret_from_environment_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key given as QUANTICITY_ALPHAVANTAGE__API_KEY is held as a SecretStr too."""
    monkeypatch.setenv("QUANTICITY_ALPHAVANTAGE__API_KEY", SECRET)

    settings = load_settings(tmp_path / "config", env_file=None)

    assert settings.alphavantage.api_key is not None
    assert settings.alphavantage.api_key.get_secret_value() == SECRET
    assert SECRET not in settings.model_dump_json()


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_api_key_means_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    """ALPHA_VANTAGE_API_KEY= (blank) is no key, as if unset: the platform then serves from the simulator."""
    (tmp_path / "config").mkdir()
    monkeypatch.setenv("ALPHA_VANTAGE_API_KEY", blank)

    assert load_settings(tmp_path / "config", env_file=None).alphavantage.api_key is None


def test_invalid_secret_value_is_not_echoed(tmp_path: Path) -> None:
    """A secret of the wrong type is reported without its value."""
    _write(tmp_path / "config" / "credentials.yaml", "alphavantage:\n  api_key: 987654321\n")

    error = _config_error(tmp_path / "config")

    assert [k for _, k, _ in error.problems] == ["alphavantage.api_key"]
    assert "987654321" not in str(error)


def test_invalid_redis_url_from_yaml_does_not_leak_its_password(tmp_path: Path) -> None:
    """A rejected redis URL with user:password@ is reported without the password."""
    _write(tmp_path / "config" / "system.yaml", f"redis:\n  url: http://user:{SECRET}@cache:6379/0\n")

    error = _config_error(tmp_path / "config")

    assert [k for _, k, _ in error.problems] == ["redis.url"]
    assert SECRET not in str(error)
    assert all(SECRET not in part for problem in error.problems for part in problem)


def test_invalid_redis_url_from_environment_does_not_leak_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same holds when the bad URL comes from QUANTICITY_REDIS_URL."""
    monkeypatch.setenv("QUANTICITY_REDIS_URL", f"tcp://:{SECRET}@cache:6379/0")

    error = _config_error(tmp_path / "config")

    assert len(error.problems) == 1
    assert SECRET not in str(error)


def test_invalid_yaml_in_credentials_does_not_leak_the_secret(tmp_path: Path) -> None:
    """A syntax error in credentials.yaml is reported without quoting the secret's line."""
    _write(tmp_path / "config" / "credentials.yaml", f'alphavantage:\n  api_key: "{SECRET}\n')

    error = _config_error(tmp_path / "config")

    assert error.problems[0][0].endswith("credentials.yaml")
    assert SECRET not in str(error)
