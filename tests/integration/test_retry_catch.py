"""Retry, Catch and task timeouts, through real Redis timers and a real worker."""

from __future__ import annotations

import pytest

from tests.activities import counter
from tests.helpers import count_events, event_types, machine, run_workflow, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

#: Scheduling slack allowed on top of a retry delay (timer tick + dispatch), in seconds.
SLACK = 1.5


def retrier(*errors: str, interval: int = 1, attempts: int = 3, rate: float = 1.0) -> dict:
    return {
        "ErrorEquals": list(errors),
        "IntervalSeconds": interval,
        "MaxAttempts": attempts,
        "BackoffRate": rate,
    }


def flaky_task(tag: str, fail: int, *, errors: list[str] | None = None, **fields) -> dict:
    params = {"tag": tag, "fail": fail, "retry.$": "$$.State.RetryCount"}
    if errors:
        params["errors"] = errors
    return task("flaky", Parameters=params, **fields)


def test_retry_interval_backoff_and_retry_count(tag):
    definition = machine(
        {
            "Flaky": flaky_task(
                tag, 2, Retry=[retrier("Transient", interval=1, attempts=3, rate=2.0)]
            )
        }
    )
    handle, result = run_workflow(definition, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output["attempt"] == 3
    assert result.output["retry"] == 2  # $$.State.RetryCount on the third attempt
    assert counter("calls", tag) == 3
    history = handle.history()
    assert count_events(history, "TaskScheduled", "Flaky") == 3
    assert count_events(history, "TaskStarted", "Flaky") == 3
    assert count_events(history, "TaskFailed", "Flaky") == 2
    assert count_events(history, "TaskSucceeded", "Flaky") == 1
    # Backoff: 1 s before the second attempt, 1 * 2.0 = 2 s before the third.
    failed = [e.timestamp for e in history if e.type == "TaskFailed"]
    scheduled = [e.timestamp for e in history if e.type == "TaskScheduled"][1:]
    gaps = [(s - f).total_seconds() for f, s in zip(failed, scheduled, strict=True)]
    assert 1.0 - 0.05 <= gaps[0] < 1.0 + SLACK, gaps
    assert 2.0 - 0.05 <= gaps[1] < 2.0 + SLACK, gaps
    # Retry parameters are re-evaluated per attempt: RetryCount 0, 1, 2.
    params = [e.details["parameters"]["retry"] for e in history if e.type == "TaskScheduled"]
    assert params == [0, 1, 2]


def test_retries_exhausted_fail_the_execution(tag):
    definition = machine({"Flaky": flaky_task(tag, 10, Retry=[retrier("Transient", attempts=2)])})
    handle, result = run_workflow(definition, timeout=30)
    assert (result.status, result.error) == ("FAILED", "Transient")
    assert result.cause == "attempt 3 failed"
    assert counter("calls", tag) == 3
    assert count_events(handle.history(), "TaskFailed") == 3


def test_max_attempts_zero_never_retries(tag):
    definition = machine({"Flaky": flaky_task(tag, 1, Retry=[retrier("Transient", attempts=0)])})
    handle, result = run_workflow(definition)
    assert (result.status, result.error) == ("FAILED", "Transient")
    assert counter("calls", tag) == 1
    assert count_events(handle.history(), "TaskScheduled") == 1


def test_retrier_for_other_errors_does_not_retry(tag):
    definition = machine({"Flaky": flaky_task(tag, 1, Retry=[retrier("SomethingElse")])})
    _, result = run_workflow(definition)
    assert (result.status, result.error) == ("FAILED", "Transient")
    assert counter("calls", tag) == 1


def test_first_matching_retrier_wins(tag):
    # "A" matches both retriers; the first (MaxAttempts 1) decides, so the second "A"
    # failure is not retried although the second retrier would allow 5 attempts.
    definition = machine(
        {
            "Flaky": flaky_task(
                tag,
                5,
                errors=["A", "A", "A", "A", "A"],
                Retry=[retrier("A", attempts=1), retrier("A", "B", attempts=5)],
            )
        }
    )
    _, result = run_workflow(definition, timeout=30)
    assert (result.status, result.error) == ("FAILED", "A")
    assert counter("calls", tag) == 2


def test_retriers_count_their_attempts_separately(tag):
    # Four retries in all, but each retrier only makes two: separate counters succeed.
    definition = machine(
        {
            "Flaky": flaky_task(
                tag,
                4,
                errors=["A", "B", "A", "B"],
                Retry=[retrier("A", attempts=2), retrier("B", attempts=2)],
            )
        }
    )
    handle, result = run_workflow(definition, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output["retry"] == 4
    assert counter("calls", tag) == 5
    assert count_events(handle.history(), "TaskFailed") == 4


def test_states_all_retrier_after_specific_one(tag):
    definition = machine(
        {
            "Flaky": flaky_task(
                tag,
                2,
                errors=["Other", "Other"],
                Retry=[retrier("Transient", attempts=0), retrier("States.ALL", attempts=2)],
            )
        }
    )
    _, result = run_workflow(definition, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert counter("calls", tag) == 3


@pytest.mark.parametrize(
    ("result_path", "expected"),
    [
        ("$.error", {"keep": 1, "error": {"Error": "Declined", "Cause": "no funds"}}),
        ("$.a.b", {"keep": 1, "a": {"b": {"Error": "Declined", "Cause": "no funds"}}}),
        ("$", {"Error": "Declined", "Cause": "no funds"}),
        (None, {"keep": 1}),
        ("absent", {"Error": "Declined", "Cause": "no funds"}),
    ],
)
def test_catch_result_path(result_path, expected):
    catcher = {"ErrorEquals": ["Declined"], "Next": "Handler"}
    if result_path != "absent":
        catcher["ResultPath"] = result_path
    definition = machine(
        {
            "Charge": task(
                "fail",
                Parameters={"error": "Declined", "cause": "no funds"},
                Catch=[catcher],
                Next="Unreached",
            ),
            "Unreached": {"Type": "Fail", "Error": "Unreached"},
            "Handler": task("echo"),
        }
    )
    handle, result = run_workflow(definition, {"keep": 1})
    assert result.status == "SUCCEEDED", result
    assert result.output == expected
    history = handle.history()
    assert count_events(history, "TaskFailed", "Charge") == 1
    assert count_events(history, "TaskSucceeded", "Handler") == 1
    entered = [e for e in history if e.type == "TaskStateEntered" and e.state == "Handler"]
    assert entered[0].details["input"] == expected


@pytest.mark.parametrize("wildcard", ["States.ALL", "States.TaskFailed"])
def test_wildcard_catchers_catch_activity_errors(wildcard):
    definition = machine(
        {
            "Boom": task(
                "fail",
                Parameters={"error": "WhateverError", "cause": "x"},
                Catch=[{"ErrorEquals": [wildcard], "ResultPath": "$.e", "Next": "Recover"}],
            ),
            "Recover": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(definition, {})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"e": {"Error": "WhateverError", "Cause": "x"}}


def test_first_matching_catcher_wins():
    definition = machine(
        {
            "Boom": task(
                "fail",
                Parameters={"error": "Specific"},
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["Specific"], "Next": "Right"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
                ],
            ),
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "Right": {"Type": "Succeed"},
        }
    )
    _, result = run_workflow(definition, {})
    assert result.status == "SUCCEEDED", result


def test_retries_exhausted_then_caught(tag):
    definition = machine(
        {
            "Flaky": flaky_task(
                tag,
                10,
                Retry=[retrier("Transient", attempts=1)],
                Catch=[{"ErrorEquals": ["Transient"], "ResultPath": "$.err", "Next": "Done"}],
            ),
            "Done": {"Type": "Succeed"},
        }
    )
    handle, result = run_workflow(definition, {"in": True}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"in": True, "err": {"Error": "Transient", "Cause": "attempt 2 failed"}}
    assert counter("calls", tag) == 2
    assert count_events(handle.history(), "TaskFailed") == 2


def test_timeout_fails_with_states_timeout_and_discards_the_late_result(tag, task_log):
    definition = machine(
        {
            "Slow": task(
                "sleep",
                Parameters={"seconds": 2.5, "tag": tag},
                TimeoutSeconds=1,
                # States.TaskFailed does not match States.Timeout.
                Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"}],
            ),
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
        }
    )
    handle, result = run_workflow(definition, timeout=20)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    # It timed out while the activity was still running...
    assert counter("started", tag) == 1
    assert counter("finished", tag) == 0
    history = handle.history()
    assert count_events(history, "TaskTimedOut", "Slow") == 1
    timed_out = [e for e in history if e.type == "TaskTimedOut"][0]
    assert timed_out.details["error"] == "States.Timeout"
    elapsed = (timed_out.timestamp - history[0].timestamp).total_seconds()
    assert 1.0 <= elapsed < 1.0 + SLACK, elapsed
    scheduled = [e for e in history if e.type == "TaskScheduled"][0]
    assert scheduled.details["timeoutInSeconds"] == 1
    # ...and its result, arriving later, changes nothing.
    wait_until(
        lambda: task_log.step_messages(handle.execution_id, "Slow") == 1,
        timeout=10,
        message="the timed-out activity finished and tried to commit",
    )
    assert counter("finished", tag) == 1
    after = handle.history()
    assert [e.type for e in after] == [e.type for e in history]
    assert "TaskSucceeded" not in event_types(after)
    assert handle.describe().status == "FAILED"
    assert handle.result(1).error == "States.Timeout"


def test_timeout_is_retried_and_the_first_attempts_late_result_is_discarded(tag, task_log):
    definition = machine(
        {
            "Slow": task(
                "sleep",
                Parameters={"seconds": [2.5, 0], "tag": tag, "retry.$": "$$.State.RetryCount"},
                TimeoutSeconds=1,
                Retry=[retrier("States.Timeout", attempts=2)],
                Next="Done",
            ),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    handle, result = run_workflow(definition, timeout=20)
    assert result.status == "SUCCEEDED", result
    assert result.output["retry"] == 1
    wait_until(
        lambda: task_log.step_messages(handle.execution_id, "Slow") == 2,
        timeout=10,
        message="both attempts ended",
    )
    assert counter("finished", tag) == 2
    history = handle.history()
    assert count_events(history, "TaskTimedOut", "Slow") == 1
    assert count_events(history, "TaskSucceeded", "Slow") == 1
    assert count_events(history, "ExecutionSucceeded") == 1
    assert handle.result(1).output == result.output


def test_timeout_caught_by_states_timeout_catcher(tag):
    definition = machine(
        {
            "Slow": task(
                "sleep",
                Parameters={"seconds": 2, "tag": tag},
                TimeoutSeconds=1,
                Catch=[{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.t", "Next": "Done"}],
            ),
            "Done": {"Type": "Succeed"},
        }
    )
    _, result = run_workflow(definition, {}, timeout=20)
    assert result.status == "SUCCEEDED", result
    assert result.output["t"]["Error"] == "States.Timeout"


def test_timeout_seconds_path(tag):
    definition = machine(
        {
            "Slow": task(
                "sleep",
                Parameters={"seconds.$": "$.sleep", "tag": tag},
                TimeoutSecondsPath="$.limit",
            )
        }
    )
    handle, result = run_workflow(definition, {"sleep": 2.5, "limit": 1}, timeout=20)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert count_events(handle.history(), "TaskTimedOut") == 1

    _, result = run_workflow(definition, {"sleep": 0.1, "limit": 5}, timeout=20)
    assert result.status == "SUCCEEDED", result


def test_timeout_seconds_path_to_a_non_number_fails_with_states_runtime():
    definition = machine({"Slow": task("echo", TimeoutSecondsPath="$.limit")})
    _, result = run_workflow(definition, {"limit": "soon"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_task_finishing_within_its_timeout_succeeds(tag):
    definition = machine(
        {"Quick": task("sleep", Parameters={"seconds": 0.1, "tag": tag}, TimeoutSeconds=5)}
    )
    handle, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    assert "TaskTimedOut" not in event_types(handle.history())
