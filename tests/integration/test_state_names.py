"""State names as Step Functions allows them (issue 14 item 6): ``/``, ``[``, ``]``, ``|``
(and ``%``, the escape) through Task, Parallel, Map, Choice, Catch and redrive; history,
``$$.State.Name`` and descriptions show the names as the definition spells them."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import ExecutionStatus, redrive_execution, start_workflow
from tests.helpers import machine, run_workflow, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

TASK = "Create/Update VideoContentCatalog"
CHOICE = "Choice [go]?"
PARALLEL = "Parallel w/ UUID"
BRANCH_TASK = "B/1 [task]"
BRANCH_PASS = "B|2 100%"
MAP = "Map [items]/x"
ITEM_TASK = "In/ner[0]"
TRY = "Try|[it]"
HANDLED = "Handled/]"
CATCHER = "Catch|me"
CAUGHT = "Caught/%25"
NOT_TAKEN = "Not/taken|"


def definition() -> dict[str, Any]:
    named = {"s.$": "$$.State.Name", "n.$": "$"}
    return machine(
        {
            TASK: {
                "Type": "Task",
                "Resource": "echo",
                "Parameters": {"s.$": "$$.State.Name", "items.$": "$.items"},
                "ResultPath": "$.task",
                "Next": CHOICE,
            },
            CHOICE: {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": PARALLEL}],
                "Default": NOT_TAKEN,
            },
            NOT_TAKEN: {"Type": "Fail", "Error": "Wrong"},
            PARALLEL: {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": BRANCH_TASK,
                        "States": {
                            BRANCH_TASK: {
                                "Type": "Task",
                                "Resource": "echo",
                                "Parameters": {"s.$": "$$.State.Name"},
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": BRANCH_PASS,
                        "States": {
                            BRANCH_PASS: {
                                "Type": "Pass",
                                "Parameters": {"s.$": "$$.State.Name"},
                                "End": True,
                            }
                        },
                    },
                ],
                "ResultPath": "$.parallel",
                "Next": MAP,
            },
            MAP: {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": ITEM_TASK,
                    "States": {
                        ITEM_TASK: {
                            "Type": "Task",
                            "Resource": "echo",
                            "Parameters": named,
                            "Next": TRY,
                        },
                        TRY: {
                            "Type": "Task",
                            "Resource": "fail",
                            "Parameters": {"error": "Boom"},
                            "Catch": [
                                {"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": HANDLED}
                            ],
                            "End": True,
                        },
                        HANDLED: {
                            "Type": "Pass",
                            "Parameters": {"s.$": "$$.State.Name", "item.$": "$.s"},
                            "End": True,
                        },
                    },
                },
                "ResultPath": "$.mapped",
                "Next": CATCHER,
            },
            CATCHER: {
                "Type": "Task",
                "Resource": "fail",
                "Parameters": {"error": "Oops"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": CAUGHT}],
                "End": True,
            },
            CAUGHT: {
                "Type": "Pass",
                "Parameters": {
                    "s.$": "$$.State.Name",
                    "task.$": "$.task.s",
                    "parallel.$": "$.parallel",
                    "mapped.$": "$.mapped",
                },
                "End": True,
            },
        },
        Comment="special-names",
    )


def test_names_with_step_key_characters_run_through_every_kind_of_state() -> None:
    handle, result = run_workflow(definition(), {"go": True, "items": [1, 2, 3]})
    assert result.status is ExecutionStatus.SUCCEEDED, result
    assert result.output == {
        "s": CAUGHT,
        "task": TASK,
        "parallel": [{"s": BRANCH_TASK}, {"s": BRANCH_PASS}],
        "mapped": [{"s": HANDLED, "item": ITEM_TASK}] * 3,
    }
    history = handle.history()
    states = {event.state for event in history if event.state}
    assert states == {
        TASK,
        CHOICE,
        PARALLEL,
        BRANCH_TASK,
        BRANCH_PASS,
        MAP,
        ITEM_TASK,
        TRY,
        HANDLED,
        CATCHER,
        CAUGHT,
    }
    entered = [e.state for e in history if e.type.endswith("StateEntered")]
    assert entered.count(ITEM_TASK) == 3 and entered.count(HANDLED) == 3
    assert NOT_TAKEN not in states
    # Each item's events name their item: three distinct step keys for the item Task.
    keys = {e.key for e in history if e.state == ITEM_TASK}
    assert len(keys) == 3 and all(k is not None and "/" in k for k in keys)
    assert handle.describe().steps == []


def test_a_failed_step_with_such_a_name_inside_a_map_is_redriven(tag: str) -> None:
    name = "Flaky/[x]|%"
    spec = machine(
        {
            MAP: {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": name,
                    "States": {
                        name: {
                            "Type": "Task",
                            "Resource": "flaky",
                            "Parameters": {"fail": 1, "tag.$": "$"},
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        }
    )
    handle = start_workflow(spec, {"items": [f"{tag}-a"]})
    failed = handle.result(timeout=20)
    assert failed.status is ExecutionStatus.FAILED, failed
    redrive_execution(handle.execution_id)
    wait_until(
        lambda: handle.describe().status is ExecutionStatus.SUCCEEDED, 20, message="redriven"
    )
    history = handle.history()
    assert [e.state for e in history if e.type == "TaskSucceeded"] == [name]
    assert handle.describe().output == [{"fail": 1, "tag": f"{tag}-a", "attempt": 2}]
