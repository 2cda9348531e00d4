"""`orchestrator schedule create|list|describe|pause|resume|trigger|delete` against the
session's Redis, as an operator would run them (in process, with the session's settings in
force: a subprocess per command made this test take 36 s)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import ExecutionHandle, describe_schedule
from orchestrator import cli as cli_module

pytestmark = pytest.mark.usefixtures("orchestrator")


@dataclass(frozen=True)
class Ran:
    """What a command printed and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def cli(orchestrator: Any, *args: str) -> Ran:
    result = CliRunner().invoke(cli_module.app, ["schedule", *args], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_the_schedule_commands(orchestrator: Any, tag: str) -> None:
    name = f"cli-{tag}"
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    created = cli(
        orchestrator,
        "create",
        name,
        definition,
        "cron(0 2 * * ? *)",
        "--input",
        '{"a": 1}',
        "--timezone",
        "Europe/Paris",
        "--overlap",
        "BUFFER_ONE",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    value = json.loads(created.stdout)
    assert value["name"] == name and value["overlap"] == "BUFFER_ONE" and value["enabled"]
    assert len(value["next_fire_times"]) == 5 and value["input"] == {"a": 1}

    listed = cli(orchestrator, "list")
    assert listed.returncode == 0 and name in listed.stdout and "ENABLED" in listed.stdout

    paused = cli(orchestrator, "pause", name, "--json")
    assert paused.returncode == 0 and json.loads(paused.stdout)["enabled"] is False
    resumed = cli(orchestrator, "resume", name)
    assert resumed.returncode == 0 and "ENABLED" in resumed.stdout

    triggered = cli(orchestrator, "trigger", name, "--json")
    assert triggered.returncode == 0, triggered.stderr
    (execution,) = json.loads(triggered.stdout)["executions"]
    assert ExecutionHandle(execution).result(10).output == {"a": 1}

    described = cli(orchestrator, "describe", name)
    assert described.returncode == 0
    assert "cron(0 2 * * ? *)" in described.stdout and execution in described.stdout
    assert "STARTED" in described.stdout and "Europe/Paris" in described.stdout

    taken = cli(orchestrator, "create", name, definition, "rate(1 minute)")
    assert taken.returncode == 2 and "exists already" in taken.stderr
    bad = cli(orchestrator, "create", f"{name}-x", definition, "rate(5 weeks)")
    assert bad.returncode == 2 and "rate(" in bad.stderr

    deleted = cli(orchestrator, "delete", name)
    assert deleted.returncode == 0 and f"deleted schedule {name}" in deleted.stdout
    missing = cli(orchestrator, "describe", name)
    assert missing.returncode == 1 and "no schedule named" in missing.stderr
    with pytest.raises(KeyError):
        describe_schedule(name)
