"""A transition that cannot be computed or stored fails its state, once: it never loops.

Before, an exception while computing the next state (an unknown activity named at run
time, deep recursion, a lone surrogate in a JSONata result) escaped the worker: the step
stayed RUNNING and its activity ran again every lease period. Each case runs through a
real worker, timers and task tokens, and checks that the execution ends FAILED with the
state's error, that the activity before it ran once, and what the history records.
"""

from __future__ import annotations

import pytest

from orchestrator import send_task_success, start_workflow
from tests.activities import counter
from tests.control_activities import ctext
from tests.helpers import count_events, event_types, machine, run_workflow, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

SURROGATE = "{% $string('\\ud800') %}"


def jsonata(states: dict, **fields) -> dict:
    return machine(states, QueryLanguage="JSONata", **fields)


def test_a_dynamic_function_name_naming_no_activity_fails_the_state(tag):
    definition = machine(
        {
            "Count": task("count", Next="Invoke"),
            "Invoke": task(
                "arn:aws:states:::lambda:invoke",
                Parameters={"FunctionName.$": "$.function", "Payload": {}},
            ),
        }
    )
    _, result = run_workflow(definition, {"tag": tag, "function": "no-such-function"})
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert "no-such-function" in result.cause
    assert counter("calls", tag) == 1  # the Task before it ran once, and not again


def test_a_lone_surrogate_after_a_task_fails_the_next_state_once(tag):
    definition = jsonata(
        {
            "Count": task("count", Arguments={"tag": tag}, Next="Bad"),
            "Bad": {"Type": "Pass", "Output": SURROGATE, "End": True},
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert "cannot be stored as JSON" in result.cause
    assert counter("calls", tag) == 1
    history = handle.history()
    assert event_types(history)[-3:] == ["PassStateEntered", "EvaluationFailed", "ExecutionFailed"]


def test_a_poisoned_task_output_is_caught_by_its_catch(tag):
    definition = jsonata(
        {
            "Count": task(
                "count",
                Arguments={"tag": tag},
                Output="{% $error('no good') %}",
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
            ),
            "Handled": {"Type": "Pass", "Output": "{% $states.input %}", "End": True},
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    assert result.output["Error"] == "States.QueryEvaluationError"
    history = handle.history()
    assert count_events(history, "EvaluationFailed", "Count") == 1
    assert counter("calls", tag) == 1


def test_an_evaluation_failure_retried_is_in_the_history_each_time():
    definition = jsonata(
        {
            "T": task(
                "echo",
                Arguments="{% $error('boom') %}",
                Retry=[
                    {
                        "ErrorEquals": ["States.QueryEvaluationError"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 2,
                        "BackoffRate": 1.0,
                    }
                ],
            )
        }
    )
    handle, result = run_workflow(definition, timeout=30)
    assert result.status == "FAILED", result
    assert result.error == "States.QueryEvaluationError"
    history = handle.history()
    assert count_events(history, "EvaluationFailed", "T") == 3  # the first try and 2 retries
    assert count_events(history, "TaskScheduled", "T") == 0
    failed = next(e for e in history if e.type == "EvaluationFailed")
    assert failed.details["error"] == "States.QueryEvaluationError"
    assert "boom" in failed.details["cause"]


def test_deep_recursion_fails_the_state(tag):
    deep = "{% ($f := function($n) { $n = 0 ? [] : [$f($n - 1)] }; $f(20000)) %}"
    definition = jsonata(
        {
            "Count": task("count", Arguments={"tag": tag}, Next="Deep"),
            "Deep": {"Type": "Pass", "Output": deep, "End": True},
        }
    )
    _, result = run_workflow(definition, timeout=60)
    assert result.status == "FAILED", result
    assert result.error is not None and result.error.startswith("States.")
    assert counter("calls", tag) == 1


def test_a_poisoned_first_state_fails_the_execution_at_start():
    handle = start_workflow(jsonata({"Bad": {"Type": "Pass", "Output": SURROGATE, "End": True}}))
    result = handle.result(10)
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert event_types(handle.history()) == [
        "ExecutionStarted",
        "PassStateEntered",
        "EvaluationFailed",
        "ExecutionFailed",
    ]


def test_a_poisoned_transition_fired_by_a_timer_fails_once():
    definition = jsonata(
        {
            "Wait": {"Type": "Wait", "Seconds": 0, "Next": "Bad"},
            "Bad": {"Type": "Pass", "Output": SURROGATE, "End": True},
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert count_events(handle.history(), "EvaluationFailed", "Bad") == 1


def test_a_poisoned_transition_after_a_task_token_answer_fails_once(tag):
    definition = jsonata(
        {
            "Ask": task(
                "ctl_token_sink.waitForTaskToken",
                Arguments={"tag": tag, "token": "{% $states.context.Task.Token %}"},
                Output=SURROGATE,
            )
        }
    )
    handle = start_workflow(definition)
    token = wait_until(lambda: ctext("token", tag), message="task token stored")
    wait_until(lambda: any(s.status.startswith("WAITING") for s in handle.describe().steps))
    send_task_success(token, {"ok": True})
    result = handle.result(10)
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert count_events(handle.history(), "EvaluationFailed", "Ask") == 1
