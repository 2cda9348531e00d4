"""The Step Functions API's pure parts: error codes, history event shapes, paging tokens
and pages, and TestState's evaluation of one state."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.client.models import HistoryEvent
from orchestrator.errors import (
    DefinitionError,
    DefinitionIssue,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidArn,
    InvalidExecutionState,
    InvalidInputError,
    InvalidName,
    RegistryConflict,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineNotFound,
    StoreUnavailable,
    TaskTokenError,
)
from orchestrator.language.tokens import new_token
from orchestrator.ui.sfn_shapes import (
    HistoryShaper,
    SfnError,
    decode_token,
    encode_token,
    error_for,
    history_page,
    page_size,
    task_resource,
    token_error,
)
from orchestrator.ui.sfn_teststate import evaluate_state, state_under_test

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (ExecutionNotFound("x"), "ExecutionDoesNotExist", 400),
        (StateMachineNotFound("m"), "StateMachineDoesNotExist", 400),
        (StateMachineAlreadyExists("m"), "StateMachineAlreadyExists", 400),
        (ExecutionAlreadyExists("x"), "ExecutionAlreadyExists", 400),
        (DefinitionError([DefinitionIssue("$.States", "empty")]), "InvalidDefinition", 400),
        (InvalidName("bad"), "InvalidName", 400),
        (InvalidArn("bad"), "InvalidArn", 400),
        (InvalidExecutionState("x", "SUCCEEDED", "redrive"), "ExecutionNotRedrivable", 400),
        (InvalidExecutionState("x", "SUCCEEDED", "stop"), "ValidationException", 400),
        (TaskTokenError("spent"), "TaskDoesNotExist", 400),
        (ResourceNotFound("no alias"), "ResourceNotFound", 400),
        (RegistryConflict("routed"), "ConflictException", 400),
        (InvalidInputError("too long"), "ValidationException", 400),
        (StoreUnavailable("redis://h", "down"), "ServiceUnavailable", 503),
        (RuntimeError("bug"), "InternalFailure", 500),
    ],
)
def test_errors_become_step_functions_codes(error, code, status) -> None:
    shaped = error_for(error)
    assert (shaped.code, shaped.status) == (code, status)
    assert shaped.body() == {"__type": code, "message": shaped.message}
    assert "bug" not in shaped.message  # an unexpected error's text stays in the log


def test_definition_error_lists_its_issues() -> None:
    shaped = error_for(DefinitionError([DefinitionIssue("$.StartAt", "no such state 'X'")]))
    assert "no such state 'X'" in shaped.message


def test_token_errors() -> None:
    assert token_error("nonsense").code == "InvalidToken"
    assert token_error(None).code == "InvalidToken"
    assert token_error(new_token("run-1")).code == "TaskDoesNotExist"


def test_page_size_bounds() -> None:
    assert page_size(None) == page_size(0) == 100
    assert page_size(1000) == 1000
    for bad in (-1, 1001, True, "5", 2.5):
        with pytest.raises(SfnError) as excinfo:
            page_size(bad)
        assert excinfo.value.code == "ValidationException"


@given(st.text(max_size=30), st.integers(min_value=0, max_value=10**12), st.booleans())
def test_paging_tokens_round_trip(execution_id, position, reverse) -> None:
    token = encode_token("history", x=execution_id, r=reverse, at=position)
    assert decode_token(token, "history") == {
        "k": "history",
        "x": execution_id,
        "r": reverse,
        "at": position,
    }
    with pytest.raises(SfnError) as excinfo:
        decode_token(token, "executions")  # another listing's
    assert excinfo.value.code == "InvalidToken"


@pytest.mark.parametrize("token", ["", "!!!", "bm9wZQ", "W10", "x" * 5000, 7])
def test_foreign_tokens_are_invalid(token) -> None:
    with pytest.raises(SfnError) as excinfo:
        decode_token(token, "history")
    assert excinfo.value.code == "InvalidToken"


@given(
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=1, max_value=1000),
    st.booleans(),
)
def test_history_pages_cover_every_event_once(length, size, reverse) -> None:
    ids: list[int] = []
    cursor = None
    pages = 0
    while True:
        after, count, cursor = history_page(length, size, reverse, cursor)
        assert 0 <= count <= size
        page = list(range(after + 1, after + count + 1))
        ids += reversed(page) if reverse else page
        pages += 1
        if cursor is None:
            break
    expected = list(range(1, length + 1))
    assert ids == (expected[::-1] if reverse else expected)
    assert pages == max(1, -(-length // size))


def event(id_: int, type_: str, state: str | None = None, key: str | None = None, **details):
    return HistoryEvent(id=id_, type=type_, timestamp=T0, state=state, key=key, details=details)


def test_history_events_take_step_functions_shapes() -> None:
    shaper = HistoryShaper(region="eu-west-1")
    events = [
        event(1, "ExecutionStarted", input={"a": 1}),
        event(2, "TaskStateEntered", "T", input={"a": 1}),
        event(
            3, "TaskScheduled", "T", resource="arn:aws:states:::lambda:invoke", parameters={"p": 1}
        ),
        event(4, "TaskStarted", "T"),
        event(5, "TaskFailed", "T", error="E", cause="c"),
        event(6, "MapStateStarted", "M", length=3),
        event(7, "MapIterationStarted", "M", index=2),
        event(8, "PassStateExited", "P", key="M[2]/P", output=[1]),
        event(9, "MapRunStarted", "D", mapRunArn="arn:aws:states:r:a:mapRun:w/D:1"),
        event(10, "ExecutionRedriven", redriveCount=2),
        event(11, "EvaluationFailed", "C", error="States.Runtime", cause="bad path"),
        event(12, "ExecutionFailed", error="E", cause="c"),
        event(13, "ParallelStateSucceeded", "Par"),
    ]
    shaped = shaper.events(events)
    assert shaped[0] == {
        "timestamp": T0.timestamp(),
        "type": "ExecutionStarted",
        "id": 1,
        "previousEventId": 0,
        "executionStartedEventDetails": {"input": '{"a":1}', "inputDetails": {"truncated": False}},
    }
    assert shaped[1]["stateEnteredEventDetails"]["name"] == "T"
    assert shaped[2]["taskScheduledEventDetails"] == {
        "resourceType": "lambda",
        "resource": "invoke",
        "region": "eu-west-1",
        "parameters": '{"p":1}',
    }
    # Later events of the Task name its resource as its scheduling did.
    assert shaped[3]["taskStartedEventDetails"] == {"resourceType": "lambda", "resource": "invoke"}
    assert shaped[4]["taskFailedEventDetails"] == {
        "resourceType": "lambda",
        "resource": "invoke",
        "error": "E",
        "cause": "c",
    }
    assert shaped[5]["mapStateStartedEventDetails"] == {"length": 3}
    assert shaped[6]["mapIterationStartedEventDetails"] == {"name": "M", "index": 2}
    assert shaped[7]["stateExitedEventDetails"]["name"] == "P"
    assert json.loads(shaped[7]["stateExitedEventDetails"]["output"]) == [1]
    assert shaped[8]["mapRunStartedEventDetails"] == {
        "mapRunArn": "arn:aws:states:r:a:mapRun:w/D:1"
    }
    assert shaped[9]["executionRedrivenEventDetails"] == {"redriveCount": 2}
    assert shaped[10]["evaluationFailedEventDetails"] == {
        "error": "States.Runtime",
        "cause": "bad path",
        "state": "C",
    }
    assert shaped[11]["executionFailedEventDetails"] == {"error": "E", "cause": "c"}
    assert set(shaped[12]) == {"timestamp", "type", "id", "previousEventId"}


def test_history_without_execution_data() -> None:
    shaped = HistoryShaper(include_data=False).events(
        [
            event(1, "ExecutionStarted", input={"secret": 1}),
            event(2, "PassStateEntered", "P", input={"secret": 1}),
            event(3, "TaskScheduled", "T", resource="echo", parameters={"secret": 1}),
            event(4, "TaskSucceeded", "T", output={"secret": 1}),
        ]
    )
    assert "secret" not in json.dumps(shaped)
    assert shaped[1]["stateEnteredEventDetails"] == {"name": "P"}


def test_task_resources() -> None:
    assert task_resource({"resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken"}) == (
        "sqs",
        "sendMessage.waitForTaskToken",
    )
    assert task_resource({"resource": "charge"}) == ("activity", "charge")
    assert task_resource({"resourceType": "http", "resource": "invoke"}) == ("http", "invoke")


# -------------------------------------------------------------------------- TestState


def run(state: dict, value, **kwargs):
    machine, name = state_under_test(state, None)
    return evaluate_state(machine, name, value, **kwargs)


def test_a_pass_state_with_its_inspection_data() -> None:
    reply = run(
        {
            "Type": "Pass",
            "InputPath": "$.a",
            "Parameters": {"b.$": "$.b"},
            "ResultPath": "$.r",
            "OutputPath": "$.r",
            "Next": "N",
        },
        {"a": {"b": 1}},
    )
    assert reply["status"] == "SUCCEEDED" and reply["nextState"] == "N"
    assert json.loads(reply["output"]) == {"b": 1}
    data = {k: json.loads(v) for k, v in reply["inspectionData"].items()}
    assert data == {
        "input": {"a": {"b": 1}},
        "afterInputPath": {"b": 1},
        "afterParameters": {"b": 1},
        "result": {"b": 1},
        "afterResultPath": {"a": {"b": 1}, "r": {"b": 1}},
    }


def test_a_pass_result_and_a_failing_path() -> None:
    assert json.loads(run({"Type": "Pass", "Result": 5, "End": True}, {})["output"]) == 5
    failed = run({"Type": "Pass", "InputPath": "$.missing", "End": True}, {})
    assert failed["status"] == "FAILED" and failed["error"] == "States.Runtime"


def test_choice_wait_succeed_fail() -> None:
    choice = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
        "Default": "Other",
    }
    assert run(choice, {"n": 1})["nextState"] == "One"
    assert run(choice, {"n": 2})["nextState"] == "Other"
    no_default = {"Type": "Choice", "Choices": choice["Choices"]}
    assert run(no_default, {"n": 2})["error"] == "States.NoChoiceMatched"
    assert run({"Type": "Wait", "Seconds": 10, "Next": "W"}, 1) == {
        "inspectionData": {"input": "1", "afterInputPath": "1"},
        "nextState": "W",
        "status": "SUCCEEDED",
        "output": "1",
    }
    assert run({"Type": "Succeed"}, [1])["output"] == "[1]"
    fail = run(
        {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('x{}', $.c)"},
        {"e": "E", "c": 1},
    )
    assert (fail["status"], fail["error"], fail["cause"]) == ("FAILED", "E", "x1")


def test_a_task_with_a_result_a_failure_retry_and_catch() -> None:
    task = {
        "Type": "Task",
        "Resource": "work",
        "ResultSelector": {"v.$": "$.value"},
        "ResultPath": "$.out",
        "End": True,
    }
    reply = run(task, {"in": 1}, run_task=lambda state, value: {"value": value["in"] + 1})
    assert json.loads(reply["output"]) == {"in": 1, "out": {"v": 2}}
    assert json.loads(reply["inspectionData"]["afterResultSelector"]) == {"v": 2}
    mocked = run(task, {}, mock={"result": '{"value": 3}'})
    assert json.loads(mocked["output"]) == {"out": {"v": 3}}
    failing = {
        **task,
        "Retry": [{"ErrorEquals": ["Flaky"]}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}],
    }
    retriable = run(failing, {}, mock={"errorOutput": {"error": "Flaky", "cause": "c"}})
    assert retriable["status"] == "RETRIABLE"
    caught = run(failing, {"x": 1}, mock={"errorOutput": {"error": "Other", "cause": "c"}})
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "H")
    assert json.loads(caught["output"]) == {"Error": "Other", "Cause": "c"}
    with pytest.raises(SfnError) as excinfo:
        run(task, {})  # neither an activity nor a mock
    assert excinfo.value.code == "ValidationException"


def test_what_is_not_tested() -> None:
    branch = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    for state in (
        {"Type": "Parallel", "Branches": [branch], "End": True},
        {"Type": "Pass", "QueryLanguage": "JSONata", "End": True},
    ):
        with pytest.raises(SfnError) as excinfo:
            run(state, {})
        assert excinfo.value.code == "ValidationException"
    with pytest.raises(SfnError) as excinfo:
        state_under_test({"Type": "Pass", "Next": 3}, None)
    assert excinfo.value.code == "InvalidDefinition"
    with pytest.raises(SfnError) as excinfo:
        state_under_test({"StartAt": "P", "States": branch["States"]}, None)
    assert excinfo.value.code == "ValidationException"
