"""Every call that takes an execution id takes its ARN too (issue 14 item 5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import (
    ExecutionStatus,
    describe_execution,
    get_execution_history,
    redrive_execution,
    start_workflow,
    stop_execution,
)
from orchestrator.cli import app as cli_app
from orchestrator.client.api import ExecutionHandle, get_execution_definition
from orchestrator.client.mapruns import list_map_runs
from orchestrator.errors import ExecutionNotFound
from tests.helpers import machine, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

#: Waits long enough to be stopped (the test never waits for it to end).
WAITING = machine({"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}, Comment="arn-flow")


def arn(name: str, region: str = "us-east-1", account: str = "123456789012") -> str:
    return f"arn:aws:states:{region}:{account}:execution:arn-flow:{name}"


def cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args))


def test_the_api_takes_an_execution_arn(unique_name: str) -> None:
    handle = start_workflow(WAITING, {"a": 1}, name=unique_name)
    full = arn(unique_name)
    description = describe_execution(full)
    assert description.execution_id == unique_name
    assert description.execution_arn == full
    # An ARN formed elsewhere (another region, account, partition) names the same one.
    other = describe_execution(arn(unique_name, "eu-west-1", "000000000000"))
    assert other.execution_id == unique_name
    assert [e.type for e in get_execution_history(full)][:1] == ["ExecutionStarted"]
    assert get_execution_definition(full)["StartAt"] == "Hold"
    assert list_map_runs(full) == []
    assert ExecutionHandle(full).execution_id == unique_name
    assert ExecutionHandle(full).describe().status is ExecutionStatus.RUNNING

    stop_execution(full, "Stopped", "by its ARN")
    assert handle.describe().status is ExecutionStatus.ABORTED
    redriven = redrive_execution(full)
    assert redriven.execution_id == unique_name
    wait_until(
        lambda: (
            handle.describe().redrive_count == 1
            and handle.describe().status is ExecutionStatus.RUNNING
        ),
        15,
        message="redriven",
    )
    stop_execution(full)


def test_an_unknown_or_foreign_arn_is_not_found(unique_name: str) -> None:
    with pytest.raises(ExecutionNotFound):
        describe_execution(arn(unique_name))
    # A state machine's ARN names no execution.
    with pytest.raises(ExecutionNotFound):
        describe_execution("arn:aws:states:us-east-1:123456789012:stateMachine:arn-flow")


def test_the_cli_takes_an_execution_arn(unique_name: str) -> None:
    start_workflow(WAITING, {}, name=unique_name)
    full = arn(unique_name)
    described = cli("describe", full, "--json")
    assert described.exit_code == 0, described.output
    body = json.loads(described.output)
    assert body["execution_id"] == unique_name and body["execution_arn"] == full
    table = cli("describe", full)
    # A narrow terminal (80 columns without COLUMNS) folds the ARN over lines padded to
    # the column's width: read it back without the layout's whitespace.
    assert table.exit_code == 0 and full in "".join(table.output.split())
    history = cli("history", full)
    assert history.exit_code == 0 and "ExecutionStarted" in history.output
    assert cli("map-runs", "list", full).exit_code == 0
    stopped = cli("stop", full)
    assert stopped.exit_code == 0, stopped.output
    assert describe_execution(unique_name).status is ExecutionStatus.ABORTED
    redriven = cli("redrive", full)
    assert redriven.exit_code == 0, redriven.output
    assert describe_execution(unique_name).redrive_count == 1
    stop_execution(unique_name)
