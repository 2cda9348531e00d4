"""Ids, names, errors and causes a caller gives: one that cannot be used is a clear
OrchestratorError (and one line, exit 1 or 2, from the CLI), never a UnicodeEncodeError."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import (
    ExecutionNotFound,
    InvalidInputError,
    cli,
    describe_execution,
    get_dead_letter,
    get_execution_definition,
    get_execution_history,
    redrive_execution,
    send_task_failure,
    start_workflow,
    stop_execution,
)
from orchestrator.errors import TaskTokenError

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
#: What a shell hands Python for a byte that is not UTF-8 ($'\xff'), and a lone surrogate.
BAD_IDS = ["\udcff", "n\ud800", "", "x" * 81, "a b", "a/b"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    "call",
    [
        describe_execution,
        get_execution_history,
        get_execution_definition,
        stop_execution,
        redrive_execution,
    ],
)
def test_an_id_no_execution_can_have_is_not_found(orchestrator: Any, call: Any, bad: str) -> None:
    with pytest.raises(ExecutionNotFound):
        call(bad)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_dead_letter_id_that_cannot_exist_is_not_found(orchestrator: Any, bad: str) -> None:
    with pytest.raises(LookupError):
        get_dead_letter(bad)


@pytest.mark.parametrize("bad", ["n\ud800", "\udcff"])
def test_a_name_utf8_cannot_carry_starts_nothing(orchestrator: Any, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        start_workflow(PASS, {}, name=bad)


@pytest.mark.parametrize(
    "fields",
    [{"cause": "a\ud800"}, {"error": "\udcff"}, {"cause": "x" * 40000}, {"error": 5}],
)
def test_a_stop_cause_or_error_utf8_cannot_carry_is_refused(orchestrator: Any, fields) -> None:
    handle = start_workflow(WAIT, {})
    with pytest.raises(InvalidInputError):
        stop_execution(handle.execution_id, **fields)
    assert handle.describe().status == "RUNNING"
    stop_execution(handle.execution_id)


def test_a_task_failure_cause_utf8_cannot_carry_is_refused(orchestrator: Any) -> None:
    with pytest.raises(InvalidInputError):
        send_task_failure("tt1.eA.x", "E", "a\ud800")
    with pytest.raises(TaskTokenError):
        send_task_failure("tt1.eA.x", "E", "fine")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["describe", "\udcff"], 1),
        (["history", "\udcff"], 1),
        (["stop", "\udcff"], 1),
        (["redrive", "\udcff"], 1),
        (["dlq", "show", "\udcff"], 1),
        (["stop", "some-id", "--cause", "a\udcff"], 2),
    ],
)
def test_the_cli_says_so_in_one_line(orchestrator: Any, args: list[str], code: int) -> None:
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
