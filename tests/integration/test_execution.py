"""Task, Pass, Choice, Succeed and Fail workflows end to end: real Redis, real worker."""

from __future__ import annotations

import re
from datetime import UTC

import pytest

from orchestrator import ExecutionStatus
from orchestrator.config import get_settings
from tests.activities import counter
from tests.helpers import count_events, event_types, machine, run_workflow, task

pytestmark = pytest.mark.usefixtures("orchestrator")

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_single_task_round_trip():
    handle, result = run_workflow(machine({"Echo": task("echo")}), {"hello": ["world", 1]})
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"hello": ["world", 1]}
    assert result.execution_id == handle.execution_id
    assert result.error is None and result.cause is None
    history = handle.history()
    assert event_types(history) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert [e.id for e in history] == list(range(1, len(history) + 1))
    stamps = [e.timestamp for e in history]
    assert stamps == sorted(stamps)
    # Every event in milliseconds, as Step Functions has them (the worker's TaskStarted
    # too: at full precision it could sort after the events its step's commit wrote).
    assert all(stamp.microsecond % 1000 == 0 for stamp in stamps), stamps
    assert all(s.tzinfo is UTC for s in stamps)


def test_default_input_is_empty_object():
    _, result = run_workflow(machine({"Echo": task("echo")}))
    assert result.output == {}


@pytest.mark.parametrize("value", [[1, 2, 3], 42, "text", True, None, {"nested": {"a": [None]}}])
def test_any_json_value_flows_through(value):
    # None as input means "no input": {}.
    _, result = run_workflow(
        machine(
            {
                "Echo": task("echo"),
            }
        ),
        value,
    )
    assert result.status == "SUCCEEDED"
    assert result.output == ({} if value is None else value)


def test_chain_of_tasks_passes_results():
    definition = machine(
        {
            "Sum": task("add", Next="Again", ResultPath="$.a"),
            "Again": task("add", Next="Echo", ResultPath="$.a"),
            "Echo": task("echo"),
        }
    )
    handle, result = run_workflow(definition, {"a": 1, "b": 10})
    assert result.output == {"a": 21, "b": 10}
    history = handle.history()
    for state in ("Sum", "Again", "Echo"):
        assert count_events(history, "TaskSucceeded", state) == 1
        assert count_events(history, "TaskStarted", state) == 1


def test_input_path_parameters_result_selector_result_path_output_path():
    definition = machine(
        {
            "Work": task(
                "echo",
                InputPath="$.payload",
                Parameters={
                    "x.$": "$.value",
                    "list.$": "$.items",
                    "literal": "as-is",
                    "nested": {"y.$": "$.deep.y", "lit": [1, {"k": "v"}]},
                    "arr": [{"z.$": "$.value"}, 7, "plain"],
                    "filtered.$": "$.items[?(@.keep == true)].id",
                },
                ResultSelector={"first.$": "$.list[0]", "nested.$": "$.nested", "tag": "sel"},
                ResultPath="$.result.inner",
                OutputPath="$.result",
            )
        }
    )
    payload = {
        "value": 5,
        "items": [{"id": "a", "keep": True}, {"id": "b", "keep": False}, {"id": "c", "keep": True}],
        "deep": {"y": {"ok": 1}},
    }
    handle, result = run_workflow(definition, {"payload": payload, "other": "dropped"})
    assert result.status == "SUCCEEDED", result
    assert result.output == {
        "inner": {
            "first": {"id": "a", "keep": True},
            "nested": {"y": {"ok": 1}, "lit": [1, {"k": "v"}]},
            "tag": "sel",
        }
    }
    # The activity received the effective input (InputPath then Parameters).
    succeeded = [e for e in handle.history() if e.type == "TaskSucceeded"][0]
    assert succeeded.details["output"] == {
        "x": 5,
        "list": payload["items"],
        "literal": "as-is",
        "nested": {"y": {"ok": 1}, "lit": [1, {"k": "v"}]},
        "arr": [{"z": 5}, 7, "plain"],
        "filtered": ["a", "c"],
    }
    scheduled = [e for e in handle.history() if e.type == "TaskScheduled"][0]
    assert scheduled.details["parameters"] == succeeded.details["output"]


def test_result_path_null_keeps_input_and_output_path_null_gives_empty_object():
    definition = machine(
        {
            "Keep": task("add", ResultPath=None, Next="Drop"),
            "Drop": task("echo", OutputPath=None, Next="After"),
            "After": {"Type": "Pass", "ResultPath": "$.seen", "End": True},
        }
    )
    _, result = run_workflow(definition, {"a": 1, "b": 2})
    assert result.output == {"seen": {}}


def test_result_path_creates_missing_parents_and_overwrites():
    definition = machine(
        {
            "Deep": task("add", ResultPath="$.x.y.z", Next="Over"),
            "Over": task("add", ResultPath="$.a"),
        }
    )
    _, result = run_workflow(definition, {"a": 2, "b": 3, "x": {"keep": True}})
    assert result.output == {"a": 5, "b": 3, "x": {"keep": True, "y": {"z": 5}}}


def test_pass_state_result_parameters_and_paths():
    definition = machine(
        {
            "Literal": {
                "Type": "Pass",
                "Result": {"static.$": "not evaluated", "n": 1},
                "ResultPath": "$.lit",
                "Next": "Params",
            },
            "Params": {
                "Type": "Pass",
                "InputPath": "$.src",
                "Parameters": {"copy.$": "$.v", "fmt.$": "States.Format('v={}', $.v)"},
                "ResultPath": "$.params",
                "Next": "Out",
            },
            "Out": {"Type": "Pass", "OutputPath": "$.params", "End": True},
        }
    )
    handle, result = run_workflow(definition, {"src": {"v": 7}})
    assert result.output == {"copy": 7, "fmt": "v=7"}
    types = event_types(handle.history())
    assert types.count("PassStateEntered") == 3 and types.count("PassStateExited") == 3
    assert "TaskScheduled" not in types


def test_context_object(unique_name):
    definition = machine(
        {
            "First": {"Type": "Pass", "Next": "Ctx"},
            "Ctx": task(
                "echo",
                Parameters={
                    "id.$": "$$.Execution.Id",
                    "name.$": "$$.Execution.Name",
                    "input.$": "$$.Execution.Input",
                    "start.$": "$$.Execution.StartTime",
                    "state.$": "$$.State.Name",
                    "entered.$": "$$.State.EnteredTime",
                    "retries.$": "$$.State.RetryCount",
                    "machine.$": "$$.StateMachine.Name",
                    "machine_id.$": "$$.StateMachine.Id",
                    "split_id.$": (
                        "States.ArrayGetItem(States.StringSplit($$.Execution.Id, ':'), 7)"
                    ),
                    "whole_input_field.$": "$$.Execution.Input.order.id",
                },
                ResultPath="$.ctx",
                Next="PassCtx",
            ),
            "PassCtx": {
                "Type": "Pass",
                "Parameters": {"state.$": "$$.State.Name", "ctx.$": "$.ctx"},
                "End": True,
            },
        },
        Comment="context-flow",
    )
    execution_input = {"order": {"id": "o-1"}, "n": [1, 2]}
    handle, result = run_workflow(definition, execution_input, name=unique_name)
    assert result.status == "SUCCEEDED", result
    ctx = result.output["ctx"]
    assert result.output["state"] == "PassCtx"
    # ARNs as AWS forms them (the default region and account), the name after the last ':'.
    assert handle.execution_id == unique_name
    assert (
        ctx["id"] == f"arn:aws:states:us-east-1:123456789012:execution:context-flow:{unique_name}"
    )
    assert ctx["machine_id"] == "arn:aws:states:us-east-1:123456789012:stateMachine:context-flow"
    assert ctx["split_id"] == unique_name
    assert ctx["name"] == unique_name
    assert ctx["input"] == execution_input
    assert ctx["whole_input_field"] == "o-1"
    assert ctx["state"] == "Ctx"
    assert ctx["retries"] == 0
    assert ctx["machine"] == "context-flow"
    assert ISO_MS.match(ctx["start"]) and ISO_MS.match(ctx["entered"]), ctx
    description = handle.describe()
    assert description.workflow == "context-flow"
    assert description.execution_arn == ctx["id"]
    start = description.start_time
    assert (
        ctx["start"] == start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z"
    )
    assert ctx["entered"] >= ctx["start"]


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:lambda:us-east-1:123:function:echo",
        "arn:aws:lambda:us-east-1:123:function:echo:prod",
        "arn:aws:lambda:eu-west-3:123456789012:function:echo:$LATEST",
    ],
)
def test_lambda_arn_resources(resource):
    handle, result = run_workflow(machine({"Lambda": task(resource)}), {"via": resource})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"via": resource}
    scheduled = [e for e in handle.history() if e.type == "TaskScheduled"][0]
    assert scheduled.details["resource"] == resource


CHOICE = machine(
    {
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 100, "Next": "Big"},
                {
                    "And": [
                        {"Variable": "$.kind", "IsPresent": True},
                        {"Variable": "$.kind", "StringEquals": "special"},
                    ],
                    "Next": "Special",
                },
                {"Not": {"Variable": "$.n", "NumericGreaterThanEquals": 0}, "Next": "Negative"},
            ],
            "Default": "Normal",
        },
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.route", "Next": "Done"},
        "Special": task("echo", Parameters={"route": "special"}, ResultPath="$.r", Next="Fix"),
        "Fix": {"Type": "Pass", "InputPath": "$.r.route", "ResultPath": "$.route", "Next": "Done"},
        "Negative": {"Type": "Fail", "Error": "Negative", "Cause": "n < 0"},
        "Normal": {"Type": "Pass", "Result": "normal", "ResultPath": "$.route", "Next": "Done"},
        "Done": {"Type": "Succeed", "OutputPath": "$.route"},
    }
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"n": 1000}, "big"),
        ({"n": 5, "kind": "special"}, "special"),
        ({"n": 5, "kind": "other"}, "normal"),
        ({"n": 5}, "normal"),
    ],
)
def test_choice_routes(value, expected):
    handle, result = run_workflow(CHOICE, value)
    assert result.status == "SUCCEEDED", result
    assert result.output == expected
    history = handle.history()
    assert count_events(history, "ChoiceStateEntered", "Route") == 1
    assert count_events(history, "ChoiceStateExited", "Route") == 1


def test_choice_to_fail_state():
    handle, result = run_workflow(CHOICE, {"n": -1})
    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("Negative", "n < 0")
    assert event_types(handle.history())[-2:] == ["FailStateEntered", "ExecutionFailed"]


def test_choice_without_match_or_default_fails_no_choice_matched():
    definition = machine(
        {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
            },
            "One": {"Type": "Succeed"},
        }
    )
    handle, result = run_workflow(definition, {"n": 2})
    assert result.status == "FAILED"
    assert result.error == "States.NoChoiceMatched"
    assert handle.describe().status == ExecutionStatus.FAILED
    assert event_types(handle.history())[-1] == "ExecutionFailed"


def test_loop_through_choice_reenters_task_state(tag):
    definition = machine(
        {
            "Inc": task(
                "count",
                Parameters={"tag": tag, "i.$": "$.i"},
                ResultSelector={"i.$": "$.calls"},
                OutputPath="$",
                Next="More",
            ),
            "More": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThan": 5, "Next": "Inc"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    handle, result = run_workflow(definition, {"i": 0})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"i": 5}
    assert counter("calls", tag) == 5
    history = handle.history()
    assert count_events(history, "TaskSucceeded", "Inc") == 5
    assert count_events(history, "TaskStarted", "Inc") == 5


@pytest.mark.parametrize(
    "state",
    [
        task("echo", InputPath="$.missing"),
        task("echo", Parameters={"x.$": "$.missing.deeper"}),
        task("echo", OutputPath="$.missing"),
        task("echo", ResultSelector={"x.$": "$.missing"}),
        {"Type": "Pass", "InputPath": "$.missing", "End": True},
        {"Type": "Pass", "OutputPath": "$.missing", "End": True},
    ],
    ids=["input-path", "parameters", "output-path", "result-selector", "pass-in", "pass-out"],
)
def test_path_matching_nothing_fails_with_states_runtime(state):
    # A Catch on States.ALL does not catch States.Runtime.
    states = {"S": state}
    if state["Type"] == "Task":
        states["S"] = {**state, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}
        states["Caught"] = {"Type": "Succeed"}
    definition = machine(states, start="S")
    handle, result = run_workflow(definition, {"present": 1})
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert result.cause and "$.missing" in result.cause
    types = event_types(handle.history())
    assert types[-1] == "ExecutionFailed"
    assert "SucceedStateEntered" not in types


def test_fail_state_error_and_cause():
    definition = machine(
        {"Boom": {"Type": "Fail", "Error": "MyError", "Cause": "it was bad"}},
    )
    handle, result = run_workflow(definition, {})
    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("MyError", "it was bad")
    description = handle.describe()
    assert description.status == "FAILED"
    assert (description.error, description.cause) == ("MyError", "it was bad")
    assert description.output is None
    assert description.stop_time is not None and description.stop_time >= description.start_time
    failed = handle.history()[-1]
    assert failed.type == "ExecutionFailed"
    assert failed.details == {"error": "MyError", "cause": "it was bad"}


def test_fail_state_error_path_and_cause_path():
    definition = machine(
        {
            "Work": task("echo", Next="Boom"),
            "Boom": {"Type": "Fail", "ErrorPath": "$.err", "CausePath": "$.why"},
        }
    )
    _, result = run_workflow(definition, {"err": "FromInput", "why": "because"})
    assert (result.status, result.error, result.cause) == ("FAILED", "FromInput", "because")


def test_succeed_state_input_and_output_paths():
    definition = machine(
        {"Done": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}},
    )
    handle, result = run_workflow(definition, {"a": {"b": [1, 2]}, "c": 3})
    assert result.output == [1, 2]
    assert handle.describe().output == [1, 2]


def test_activity_error_fails_execution_with_class_name_and_message(tag):
    definition = machine(
        {"Boom": task("fail", Parameters={"error": "PaymentDeclined", "cause": "card expired"})}
    )
    handle, result = run_workflow(definition)
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "PaymentDeclined",
        "card expired",
    )
    failed = [e for e in handle.history() if e.type == "TaskFailed"]
    assert len(failed) == 1
    assert failed[0].details == {"error": "PaymentDeclined", "cause": "card expired"}


def test_order_fulfillment_demo_workflow():
    order = {
        "order_id": "o-42",
        "items": [{"sku": "book", "quantity": 1, "price": 12.5}],
        "express": True,
        "flaky_payment": 0,
    }
    handle, result = run_workflow("order_fulfillment", order)
    assert result.status == "SUCCEEDED", result
    assert result.output["payment"]["status"] == "captured"
    assert result.output["shipping"] == {"method": "express", "days": 1}
    assert handle.describe().workflow == "order_fulfillment"


@pytest.mark.parametrize("kind", ["nan", "infinity", "set", "object"])
def test_activity_result_json_cannot_carry_fails_the_task_with_states_runtime(kind):
    # NaN and Infinity are refused as at the start: JSON has no such values, and storing
    # them would change them (orjson writes NaN as null).
    handle, result = run_workflow(machine({"T": task("odd_result", Parameters={"kind": kind})}))
    assert (result.status, result.error) == ("FAILED", "States.Runtime"), result
    assert result.cause and "not JSON-serializable" in result.cause
    assert event_types(handle.history())[-1] == "ExecutionFailed"


def test_activity_result_over_the_size_limit_fails_with_data_limit_exceeded():
    limit = get_settings().max_input_bytes
    definition = machine({"T": task("odd_result", Parameters={"bytes": limit + 1})})
    _, result = run_workflow(definition, timeout=30)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded"), result
