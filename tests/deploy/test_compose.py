"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

* The compose file is validated against the Compose Specification's JSON schema, the
  copy that the ``check-jsonschema`` package ships (``vendor/compose-spec.json``, from
  https://github.com/compose-spec/compose-spec, Apache-2.0; the licence is in the same
  package, ``vendor/licenses/LICENSE.compose-spec``): no network needed. It is validated
  as written and after Compose-style ``${VAR}`` interpolation.
* Each service's command is the Procfile's process of the same name (``${VAR:-default}``
  taken as its default), so ``honcho start`` and ``docker compose up`` run the same thing.
* The shape the deployment relies on: Redis durable and never evicting, scalable workers,
  everything waiting for a healthy Redis, secrets required, RabbitMQ behind a profile.

What this cannot check: that the image builds and the containers start (no engine here).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from honcho.environ import parse_procfile

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROCFILE = REPO / "Procfile"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
#: Services running the project's image, each also a Procfile process.
PROJECT_SERVICES = ("worker", "worker-gpu", "beat", "flower", "ui")
#: What the compose file requires from the shell or .env (no default, on purpose).
SECRETS = {"flower": "FLOWER_BASIC_AUTH", "ui": "ORCHESTRATOR_UI_TOKEN"}


# ------------------------------------------------------------------------- helpers


@cache
def compose_schema() -> dict[str, Any]:
    resource = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(resource.read_text(encoding="utf-8"))


def schema_errors(document: Any) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset (or empty), or a malformed ``$``."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)"
    r"|\{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<invalid>))"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (``$$``, ``$V``, ``${V}``, ``:-``, ``-``, ``:?``,
    ``?``, ``:+``, ``+``) applied to every string value, as ``docker compose`` does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("invalid") is not None:
            raise InterpolationError(f"invalid interpolation in {value!r}")
        name = match.group("named") or match.group("braced")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        filled = present and env[name] != ""
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            return env[name] if (filled if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (filled if op == ":?" else present):
                raise InterpolationError(f"{name}: {arg}")
            return env[name]
        return arg if (filled if op == ":+" else present) else ""  # :+ and +

    return _VARIABLE.sub(substitute, value)


_DEFAULTED = re.compile(r"\$\{[_a-zA-Z][_a-zA-Z0-9]*:?-([^}]*)\}")


def normalise(command: str | list[str]) -> list[str]:
    """A command as argv: ``${VAR:-default}`` -> ``default``, ``--opt=v`` -> ``--opt v``."""
    if isinstance(command, str):
        command = shlex.split(_DEFAULTED.sub(lambda m: m.group(1), command))
    else:
        command = [_DEFAULTED.sub(lambda m: m.group(1), part) for part in command]
    argv: list[str] = []
    for part in command:
        if part.startswith("--") and "=" in part:
            argv.extend(part.split("=", 1))
        else:
            argv.append(part)
    return argv


def procfile() -> dict[str, str]:
    return dict(parse_procfile(PROCFILE.read_text(encoding="utf-8")).processes)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    pairs = []
    for line in joined:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def env_with_secrets(**extra: str) -> dict[str, str]:
    return {name: "x:y" for name in SECRETS.values()} | extra


# ------------------------------------------------------------------ schema validity


def test_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema.get("title") == "Compose Specification"
    # Recent enough for what the file uses (optional dependencies need `required`).
    depends_on = schema["$defs"]["workload_spec"]["properties"]["depends_on"]
    assert '"required"' in json.dumps(depends_on)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(load_compose()) == []


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(env_with_secrets(), id="redis-broker"),
        pytest.param(
            env_with_secrets(BROKER_URL="amqp://guest:guest@rabbitmq:5672//"), id="rabbitmq"
        ),
    ],
)
def test_compose_file_is_valid_after_interpolation(env: dict[str, str]) -> None:
    document = interpolate(load_compose(), env)
    assert schema_errors(document) == []
    for service in PROJECT_SERVICES:
        environment = document["services"][service]["environment"]
        assert environment["BROKER_URL"] == env.get("BROKER_URL", "")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"


def test_schema_validation_catches_mistakes() -> None:
    broken = copy.deepcopy(load_compose())
    broken["services"]["worker"]["comand"] = ["typo"]
    broken["services"]["redis"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["beat"]["depends_on"]["redis"]["condition"] = "service_ready"
    errors = "\n".join(schema_errors(broken))
    assert "comand" in errors
    assert "intervall" in errors
    assert "service_ready" in errors


@pytest.mark.parametrize("service, variable", sorted(SECRETS.items()))
def test_secrets_have_no_default(service: str, variable: str) -> None:
    environment = load_compose()["services"][service]["environment"]
    assert re.fullmatch(rf"\$\{{{variable}:\?.+\}}", environment[variable]), environment
    env = env_with_secrets()
    del env[variable]
    with pytest.raises(InterpolationError, match=variable):
        interpolate(load_compose(), env)
    env[variable] = ""
    with pytest.raises(InterpolationError, match=variable):
        interpolate(load_compose(), env)


# ------------------------------------------------------------- same as the Procfile


def test_procfile_defines_every_project_service() -> None:
    assert set(procfile()) == set(PROJECT_SERVICES)


#: The one intended difference: in its container Flower listens on every interface (only
#: the published port reaches it, and compose requires FLOWER_BASIC_AUTH); on a host the
#: Procfile keeps it on the loopback unless FLOWER_ADDRESS says otherwise.
LISTEN_ADDRESS = {"flower": ("--address", "0.0.0.0", "127.0.0.1")}


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_compose_command_is_the_procfile_process(name: str) -> None:
    service = load_compose()["services"][name]
    in_compose, in_procfile = normalise(service["command"]), normalise(procfile()[name])
    if name in LISTEN_ADDRESS:
        option, container, host = LISTEN_ADDRESS[name]
        assert in_compose[in_compose.index(option) + 1] == container
        assert in_procfile[in_procfile.index(option) + 1] == host
        in_compose[in_compose.index(option) + 1] = host
    assert in_compose == in_procfile


def test_procfile_flower_listens_on_the_loopback_by_default() -> None:
    command = procfile()["flower"]
    assert "${FLOWER_ADDRESS:-127.0.0.1}" in command
    argv = normalise(command)
    assert argv[argv.index("--address") + 1] == "127.0.0.1"


def test_normalise() -> None:
    assert normalise("flower --port=${FLOWER_PORT:-5555} --x ${A-b}") == [
        "flower",
        "--port",
        "5555",
        "--x",
        "b",
    ]
    assert normalise(["flower", "--port=5555"]) == ["flower", "--port", "5555"]


def test_published_ports_are_the_ones_the_commands_listen_on() -> None:
    services = load_compose()["services"]
    for name, option in (("flower", "--port"), ("ui", "--port")):
        argv = normalise(services[name]["command"])
        port = argv[argv.index(option) + 1]
        targets = [str(p).rsplit(":", 1)[-1] for p in services[name]["ports"]]
        assert targets == [port], (name, services[name]["ports"])
        argv = normalise(procfile()[name])
        assert argv[argv.index(option) + 1] == port


# -------------------------------------------------------------------- compose shape


def test_redis_is_durable_and_never_evicts() -> None:
    redis = load_compose()["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1] == "7"
    command = normalise(redis["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    named = str(redis["volumes"][0]).split(":")[0]
    assert named in load_compose()["volumes"]


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_worker_scales(name: str) -> None:
    worker = load_compose()["services"][name]
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker, f"`{key}` on {name} breaks `--scale {name}=N`"


def test_the_gpu_worker_consumes_one_queue_only() -> None:
    argv = normalise(load_compose()["services"]["worker-gpu"]["command"])
    assert argv[argv.index("--queues") + 1] == "gpu"
    assert "-n" not in argv and "--hostname" not in argv  # unique default node names


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_project_services_are_configured_by_environment(name: str) -> None:
    service = load_compose()["services"][name]
    assert "build" in service and service["image"] == load_compose()["services"]["worker"]["image"]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    rabbit = service["depends_on"]["rabbitmq"]
    assert rabbit["condition"] == "service_healthy" and rabbit["required"] is False
    environment = service["environment"]
    for variable in ("REDIS_URL", "BROKER_URL", "ORCHESTRATOR_TASK_MODULES"):
        assert variable in environment, (name, variable)
    assert "container_name" not in service
    if name in SECRETS:
        assert SECRETS[name] in environment


def test_rabbitmq_is_an_optional_profile() -> None:
    services = load_compose()["services"]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:")
    assert "healthcheck" in rabbitmq
    for name, service in services.items():
        if name != "rabbitmq" and name not in SENTINEL_SERVICES:
            assert "profiles" not in service, f"{name} must run without any profile"
    # The broker switch: BROKER_URL from the shell or .env, empty (= Redis) by default.
    env = interpolate(load_compose(), env_with_secrets())
    assert env["services"]["worker"]["environment"]["BROKER_URL"] == ""


#: The services of the Sentinel profile: a replica of ``redis`` and three sentinels.
SENTINEL_SERVICES = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")


def test_sentinel_is_an_optional_profile_watching_the_redis_service() -> None:
    services = load_compose()["services"]
    for name in SENTINEL_SERVICES:
        assert services[name]["profiles"] == ["sentinel"], name
        assert services[name]["image"] == services["redis"]["image"]
        assert "healthcheck" in services[name]
    replica = normalise(services["redis-replica"]["command"])
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    assert replica[replica.index("--maxmemory-policy") + 1] == "noeviction"
    sentinels = [services[f"sentinel-{n}"] for n in (1, 2, 3)]
    for sentinel in sentinels:
        script = " ".join(sentinel["command"])
        assert "sentinel monitor orchmaster redis 6379 2" in script
        assert "--sentinel" in script and "resolve-hostnames yes" in script
    # Each sentinel rewrites its own config file: one volume each.
    assert len({str(s["volumes"][0]).split(":")[0] for s in sentinels}) == 3
    # Without the profile the store is the one Redis; the profile's URL is a variable.
    default = interpolate(load_compose(), env_with_secrets())
    assert default["services"]["worker"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    url = "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/orchmaster/0"
    assert url in COMPOSE.read_text(encoding="utf-8")
    chosen = interpolate(load_compose(), {**env_with_secrets(), "REDIS_URL": url})
    for name in PROJECT_SERVICES:
        assert chosen["services"][name]["environment"]["REDIS_URL"] == url


# --------------------------------------------------------------- Dockerfile, ignore


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for kind, args in instructions if kind == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(args for kind, args in instructions if kind == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), runs
    assert "flower" in runs, "the flower service runs `celery flower` from this image"
    cmd = json.loads(next(args for kind, args in reversed(instructions) if kind == "CMD"))
    assert normalise(cmd) == normalise(load_compose()["services"]["worker"]["command"])
    # USER comes after the installation, which needs root.
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")


def test_dockerignore_keeps_the_build_context_small_but_complete() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".env"):
        assert excluded in patterns
    copied = [
        part
        for kind, args in dockerfile_instructions()
        if kind == "COPY"
        for part in shlex.split(args)[:-1]
        if not part.startswith("--")
    ]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert source not in patterns, f"{source} is COPYed but .dockerignore excludes it"
