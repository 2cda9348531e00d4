"""Child workflows, the pure parts: modes, requests, ids, output shapes, and what the
interpreter makes of a startExecution Task (a timer, no dispatch; a redrive, a new child)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import StatesRuntimeError
from orchestrator.language.children import (
    ChildTimer,
    child_execution_id,
    child_failure_cause,
    child_mode,
    child_request,
    described,
    start_output,
    workflow_of,
)
from orchestrator.language.definition import parse_definition
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
    MapRunTimer,
    RedriveView,
    StepRecord,
    StepStatus,
    TimerKind,
)


@pytest.mark.parametrize(
    ("resource", "mode"),
    [
        ("arn:aws:states:::states:startExecution", "start"),
        ("arn:aws:states:::states:startExecution.sync", "sync"),
        ("arn:aws:states:::states:startExecution.sync:2", "sync2"),
        ("arn:aws:states:::states:startExecution.waitForTaskToken", "token"),
        ("arn:aws:states:us-east-1:123456789012:states:startExecution.sync", "sync"),
        ("arn:aws-us-gov:states:us-gov-west-1:1:states:startExecution.sync:2", "sync2"),
        ("arn:aws:states:::aws-sdk:sfn:startExecution", "sdk"),
        ("arn:aws:states:::aws-sdk:sfn:startExecution.waitForTaskToken", "token"),
        ("arn:aws:states:::aws-sdk:sfn:startExecution.sync", None),
        ("arn:aws:states:::states:startExecution.sync:3", None),
        ("arn:aws:states:::lambda:invoke", None),
        ("startExecution", None),
    ],
)
def test_modes(resource: str, mode: str | None) -> None:
    assert child_mode(resource) == mode


def test_workflow_of() -> None:
    assert workflow_of("arn:aws:states:us-east-1:123456789012:stateMachine:Kid") == "Kid"
    assert workflow_of("arn:aws:states:us-east-1:123456789012:stateMachine:Kid:3") == "Kid"
    assert workflow_of("arn:aws:states:us-east-1:123456789012:stateMachine:Kid:prod") == "Kid"
    assert workflow_of("Kid") == "Kid"


def test_request_input_as_object_or_text() -> None:
    arn = "arn:aws:states:::stateMachine:x"
    assert child_request({"StateMachineArn": arn, "Input": {"a": 1}}).input == {"a": 1}
    assert child_request({"StateMachineArn": arn, "Input": '{"a": 1}'}).input == {"a": 1}
    assert child_request({"StateMachineArn": arn}).input == {}
    assert child_request({"StateMachineArn": arn, "Name": "n1"}).name == "n1"
    with pytest.raises(StatesRuntimeError):
        child_request({"StateMachineArn": arn, "Input": "{not json"})
    with pytest.raises(StatesRuntimeError):
        child_request({"Input": {}})
    with pytest.raises(StatesRuntimeError):
        child_request({"StateMachineArn": arn, "Name": 3})


def test_child_ids_are_deterministic_and_bounded() -> None:
    assert child_execution_id("parent", "abc") == "parent.abc"
    long = "p" * 80
    cid = child_execution_id(long, "0123456789ab")
    assert len(cid) == 80 and cid.endswith(".0123456789ab")
    assert cid == child_execution_id(long, "0123456789ab")
    assert cid != child_execution_id("q" + long[1:], "0123456789ab")


def test_start_outputs() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:kid:k1"
    assert start_output("start", arn, 1700000000.1234) == {
        "ExecutionArn": arn,
        "StartDate": 1700000000123,
    }
    assert start_output("sdk", arn, 1700000000.1234) == {
        "ExecutionArn": arn,
        "StartDate": "2023-11-14T22:13:20.123Z",
    }


def _described(parsed: bool, **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "execution_arn": "arn:x:execution:kid:k1",
        "state_machine_arn": "arn:x:stateMachine:kid",
        "name": "k1",
        "status": "SUCCEEDED",
        "input_text": '{"a":1}',
        "output_text": '{"b":2}',
        "error": None,
        "cause": None,
        "start": 10.0,
        "stop": 12.5,
        "parsed": parsed,
    }
    fields.update(over)
    return described(**fields)


def test_sync_output_is_describe_execution_with_text() -> None:
    assert _described(False) == {
        "ExecutionArn": "arn:x:execution:kid:k1",
        "Input": '{"a":1}',
        "InputDetails": {"Included": True},
        "Name": "k1",
        "Output": '{"b":2}',
        "OutputDetails": {"Included": True},
        "StartDate": 10000,
        "StateMachineArn": "arn:x:stateMachine:kid",
        "Status": "SUCCEEDED",
        "StopDate": 12500,
    }


def test_sync2_output_is_json() -> None:
    out = _described(True)
    assert out["Input"] == {"a": 1} and out["Output"] == {"b": 2}


def test_failure_cause_is_the_description() -> None:
    out = _described(False, status="FAILED", output_text=None, error="E", cause="c")
    assert "Output" not in out
    assert json.loads(child_failure_cause(out)) == out
    assert out["Error"] == "E" and out["Cause"] == "c"


def _interp() -> Interpreter:
    definition = parse_definition(
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync",
                    "Parameters": {"StateMachineArn": "kid", "Input": {"x.$": "$.x"}},
                    "End": True,
                }
            },
        }
    )
    info = ExecutionInfo("par", "par", "wf", 100.0, {"x": 1})
    return Interpreter(definition, info, lambda state: state.resource)


def test_schedule_sets_a_start_timer_and_dispatches_nothing() -> None:
    tr = _interp().start(100.0)
    assert tr.dispatches == []
    record = tr.records["Call"]
    assert record is not None and record.kind == "child"
    assert tr.statuses["Call"] == StepStatus.SCHEDULED
    assert record.run is not None and record.run["mode"] == "sync"
    assert record.run["child"] == child_execution_id("par", record.run["id"])
    assert (100.0, [ChildTimer.START, "Call", 0]) in tr.timers
    # computed again (a redelivery): the same child
    again = _interp().start(100.0).records["Call"]
    assert again is not None and again.run == record.run


def test_started_waits_then_ends_with_the_child() -> None:
    interp = _interp()
    record = interp.start(100.0).records["Call"]
    assert record is not None
    started = interp.child_started("Call", record, "arn:e", 101.0, 101.0)
    assert [e["type"] for e in started.events] == ["TaskStarted", "TaskSubmitted"]
    assert started.statuses["Call"] == StepStatus.WAITING
    failed = interp.child_ended("Call", record, {"Status": "FAILED", "Error": "E"}, 102.0)
    assert failed.end is not None and failed.end["error"] == "States.TaskFailed"
    assert json.loads(failed.end["cause"]) == {"Status": "FAILED", "Error": "E"}
    done = interp.child_ended("Call", record, {"Status": "SUCCEEDED"}, 102.0)
    assert done.end is not None and done.end["output"] == {"Status": "SUCCEEDED"}


def test_redrive_starts_a_new_child() -> None:
    interp = _interp()
    first = interp.start(100.0).records["Call"]
    assert first is not None and first.run is not None
    view = RedriveView(records={"Call": first.dumps()}, failures=[], redrives=0)
    tr = interp.redrive(view, 200.0)
    record = tr.records["Call"]
    assert isinstance(record, StepRecord) and record.run is not None
    assert record.run["child"] != first.run["child"]
    assert (200.0, [ChildTimer.START, "Call", 0]) in tr.timers
    assert tr.dispatches == []


#: The advance keyed by no Map that stops the children no Task waits on (and aborts the
#: Map Runs left behind): orchestrator/engine/maprun.py.
REAP = [MapRunTimer.ADVANCE, "", 0]


def _interp_of(resource: str, **task: Any) -> Interpreter:
    state = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": {"StateMachineArn": "kid"},
        "End": True,
        **task,
    }
    definition = parse_definition({"StartAt": "Call", "States": {"Call": state}})
    return Interpreter(definition, ExecutionInfo("par", "par", "wf", 100.0, {}), str)


@pytest.mark.parametrize("suffix", [".sync", ".sync:2"])
@pytest.mark.parametrize("kind", [TimerKind.TIMEOUT, TimerKind.HEARTBEAT])
def test_a_sync_task_timing_out_sets_the_advance_that_stops_its_child(
    suffix: str, kind: str
) -> None:
    interp = _interp_of(
        f"arn:aws:states:::states:startExecution{suffix}", TimeoutSeconds=10, HeartbeatSeconds=5
    )
    record = interp.start(100.0).records["Call"]
    assert record is not None
    tr = interp.timer_fired(kind, "Call", StepStatus.WAITING, record, 0, 105.0)
    assert tr is not None and tr.end is not None  # the Task's failure fails the execution
    assert (105.0, REAP) in tr.timers


def test_a_caught_sync_task_failure_sets_it_while_the_execution_goes_on() -> None:
    definition = parse_definition(
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync",
                    "Parameters": {"StateMachineArn": "kid"},
                    "TimeoutSeconds": 10,
                    "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Later"}],
                    "Next": "Later",
                },
                "Later": {"Type": "Wait", "Seconds": 5, "End": True},
            },
        }
    )
    interp = Interpreter(definition, ExecutionInfo("par", "par", "wf", 100.0, {}), str)
    record = interp.start(100.0).records["Call"]
    assert record is not None
    tr = interp.timer_fired(TimerKind.TIMEOUT, "Call", StepStatus.WAITING, record, 0, 110.0)
    assert tr is not None and tr.end is None
    assert (110.0, REAP) in tr.timers


def test_an_execution_timeout_sets_it_when_a_task_may_wait_on_a_child() -> None:
    for suffix, expected in ((".sync", True), (".waitForTaskToken", True), ("", False)):
        interp = _interp_of(f"arn:aws:states:::states:startExecution{suffix}")
        assert ((1.0, REAP) in interp.timed_out(1.0).timers) is expected, suffix


def test_a_token_task_timing_out_leaves_its_child_alone() -> None:
    interp = _interp_of(
        "arn:aws:states:::states:startExecution.waitForTaskToken",
        TimeoutSeconds=10,
        Retry=[{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 1}],
    )
    record = interp.start(100.0).records["Call"]
    assert record is not None
    tr = interp.timer_fired(TimerKind.TIMEOUT, "Call", StepStatus.WAITING, record, 0, 110.0)
    assert tr is not None and tr.statuses["Call"] == StepStatus.RETRYING
    assert (110.0, REAP) not in tr.timers
