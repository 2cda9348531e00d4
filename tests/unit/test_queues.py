"""Routing decisions of per-activity queues (issue 13 item 1) and worker node names
(item 6): no Redis, no broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import cli, config
from orchestrator.engine import activities
from orchestrator.engine.compiler import run_signature
from orchestrator.language.runs import RunStep
from orchestrator.testing import restoring_process_state


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names of activities a test registers, unregistered after it."""
    names: list[str] = []
    yield names
    for name in names:
        activities._registry.pop(name, None)


def register(names: list[str], queue: str | None) -> str:
    name = f"q-{uuid.uuid4().hex[:10]}"

    def echo(request: Any) -> Any:
        return request

    activities.activity(name, queue=queue)(echo)
    names.append(name)
    return name


def test_an_activity_s_queue_is_its_own_or_the_default(
    registered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = config.get_settings().queue
    gpu = register(registered, "gpu-x")
    plain = register(registered, None)
    assert activities.get_activity(gpu).queue == "gpu-x"
    assert activities.queue_for(gpu) == "gpu-x"
    assert activities.queue_for(plain) == default
    # Not imported here: where the workers running it advertised it, else the default.
    monkeypatch.setattr(activities, "_advertised", lambda: {"remote": "licensed", "old": ""})
    assert activities.queue_for("remote") == "licensed"
    assert activities.queue_for("old") == default
    assert activities.queue_for("unknown") == default
    # The local registration wins over what is advertised.
    monkeypatch.setattr(activities, "_advertised", lambda: {gpu: "elsewhere"})
    assert activities.queue_for(gpu) == "gpu-x"


@pytest.mark.parametrize("queue", ["", "a b", "a,b", "x" * 141])
def test_queue_names_are_checked(queue: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        activities.activity(f"bad-{uuid.uuid4().hex[:8]}", queue=queue)(print)


def test_a_worker_consumes_the_default_queue_and_its_activities_queues(
    registered: list[str],
) -> None:
    default = config.get_settings().queue
    register(registered, "gpu-y")
    register(registered, "gpu-y")
    register(registered, "licence-z")
    consumed = activities.worker_queues()
    assert consumed[0] == default
    assert {"gpu-y", "licence-z"} <= set(consumed)
    assert len(consumed) == len(set(consumed))
    # Named queues: only those.
    assert activities.worker_queues(["gpu-y", "gpu-y"]) == ["gpu-y"]


def test_a_chain_sends_each_task_to_its_activity_s_queue() -> None:
    queues = {"a": "default-q", "b": "gpu", "c": "default-q"}
    sig = run_signature(
        [RunStep("A", "a"), RunStep("B", "b"), RunStep("C", "c")], 1, "exec", queues.__getitem__
    )
    assert [task.options["queue"] for task in sig.tasks] == ["default-q", "gpu", "default-q"]
    one = run_signature([RunStep("A", "a")], 1, "exec", "q")
    assert one.options["queue"] == "q"


@pytest.fixture
def worker_argv(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The argv `orchestrator worker` hands to Celery (which is not started)."""
    from orchestrator.engine.celery_app import app as celery_app

    calls: list[list[str]] = []
    with restoring_process_state():
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
        config.configure(None)
        monkeypatch.setattr(celery_app, "worker_main", lambda argv: calls.append(list(argv)))
        yield calls


def option(argv: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return value


def test_worker_queues_and_node_names(worker_argv: list[list[str]], registered: list[str]) -> None:
    runner = CliRunner()
    default = config.get_settings().queue
    register(registered, "gpu-w")
    assert runner.invoke(cli.app, ["worker"]).exit_code == 0
    assert runner.invoke(cli.app, ["worker", "--queues", "gpu,b", "-Q", "c"]).exit_code == 0
    assert runner.invoke(cli.app, ["worker", "-n", "render-1@%h"]).exit_code == 0
    first, named, chosen = worker_argv
    queues = option(first, "queues").split(",")
    assert queues[0] == default and "gpu-w" in queues
    assert option(named, "queues") == "gpu,b,c"
    # A unique node name per process by default (several workers per host), or the given.
    assert option(first, "hostname") == cli.default_node_name()
    assert option(first, "hostname").startswith("orchestrator-")
    assert option(chosen, "hostname") == "render-1@%h"


def test_run_names_the_queue_nobody_consumes(
    registered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.client.models import StepInfo

    gpu = register(registered, "gpu-v")
    plain = register(registered, None)
    consumed: set[str] = {config.get_settings().queue}
    monkeypatch.setattr(activities, "consumed_queues", lambda: consumed)

    def step(activity: str, status: str = "SCHEDULED") -> Any:
        return StepInfo(key="S", state="S", status=status, attempts=1, activity=activity)

    assert cli.unserved_queues([step(plain), step(gpu)]) == ["gpu-v"]
    assert cli.unserved_queues([step(gpu, "RUNNING")]) == []
    consumed.add("gpu-v")
    assert cli.unserved_queues([step(gpu)]) == []
