"""activity_context(), heartbeats from an activity's code, and cancellation on a threads
worker (the in-process one): real Redis, real worker, real timers.

A thread cannot be killed: here a cancelled activity sees ``cancelled`` and its
``heartbeat()`` raises; the prefork pool's termination is tests/e2e/test_cancellation.py's.
"""

from __future__ import annotations

import json
import time

import pytest

import tests.cancel_activities  # noqa: F401 - registers the cx_* activities before the worker starts
from orchestrator import activity_context, send_task_success, start_workflow
from orchestrator.engine.context import ActivityContext, running
from tests.control_activities import ctext
from tests.helpers import count_events, event_types, machine, task, wait_until


def _seen(tag: str, state: str) -> dict:
    text = str(wait_until(lambda: ctext("ctx", tag, state), 10, message=f"{state}'s context"))
    return json.loads(text)


def test_activity_context_fields(orchestrator, tag):
    params = {"tag": tag, "fail_first": True}
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Probe",
                        "States": {
                            "Probe": task(
                                "cx_probe",
                                Parameters=params,
                                HeartbeatSeconds=30,
                                TimeoutSeconds=60,
                                Retry=[
                                    {
                                        "ErrorEquals": ["Flaky"],
                                        "IntervalSeconds": 1,
                                        "MaxAttempts": 1,
                                    }
                                ],
                            )
                        },
                    }
                ],
                "Next": "Callback",
            },
            "Callback": task(
                "cx_probe.waitForTaskToken",
                Parameters={"tag": tag, "token.$": "$$.Task.Token"},
            ),
        }
    )
    handle = start_workflow(definition, {})
    callback = _seen(tag, "Callback")
    assert callback["task_token"] and callback["step_key"] == "Callback"
    assert callback["attempt"] == 0 and callback["heartbeat_seconds"] is None
    send_task_success(callback["task_token"], {"answered": True})
    result = handle.result(30)
    assert result.status.value == "SUCCEEDED", result
    assert result.output == {"answered": True}
    probe = _seen(tag, "Probe")  # the second attempt's (the first failed)
    assert probe == {
        "execution_id": handle.execution_id,
        "state": "Probe",
        "step_key": "Fan[0]/Probe",
        "attempt": 1,
        "task_token": None,
        "cancelled": False,
        "heartbeat_seconds": 30,
    }


def test_activity_context_outside_an_activity():
    with pytest.raises(RuntimeError, match="only available inside an activity"):
        activity_context()
    context = ActivityContext("e", "S", 0)
    with running(context):
        assert activity_context() is context
        context.heartbeat({"n": 1})  # no Redis, no HeartbeatSeconds: nothing to push
        assert context.heartbeat_details == {"n": 1}
        with pytest.raises(TypeError, match="not JSON-serializable"):
            context.heartbeat({1, 2})


def test_heartbeats_keep_an_ordinary_task_alive(orchestrator, tag):
    # HeartbeatSeconds 1, an activity that runs 3 s heartbeating every 0.2 s.
    alive = start_workflow(
        machine({"T": task("cx_heartbeat", Parameters={"seconds": 3}, HeartbeatSeconds=1)})
    )
    # The same without heartbeats: it times out after 1 s, and the activity sees it.
    silent = start_workflow(
        machine({"T": task("cx_poll_cancelled", Parameters={"tag": tag}, HeartbeatSeconds=1)})
    )
    result = silent.result(10)
    assert (result.status.value, result.error) == ("FAILED", "States.HeartbeatTimeout")
    reason = str(wait_until(lambda: ctext("cancelled", tag), 5, message="the activity cancelled"))
    assert "no longer this attempt's" in reason
    result = alive.result(15)
    assert result.status.value == "SUCCEEDED", result
    assert result.output["beats"] >= 10
    # What the cancelled activity returned afterwards was not recorded.
    assert count_events(silent.history(), "TaskSucceeded") == 0


def test_timeout_cancels_a_running_activity(orchestrator, tag):
    started = time.monotonic()
    handle = start_workflow(
        machine({"T": task("cx_until_cancelled", Parameters={"tag": tag}, TimeoutSeconds=1)})
    )
    result = handle.result(10)
    assert (result.status.value, result.error) == ("FAILED", "States.Timeout")
    wait_until(lambda: ctext("cancelled", tag), 5, message="the activity cancelled")
    # Timed out at 1 s, seen by the worker within its watch interval (0.5 s) and a tick.
    assert time.monotonic() - started < 4
    assert float(ctext("cancelled_after", tag) or 99) < 2.5
    types = event_types(handle.history())
    assert types.count("TaskTimedOut") == 1 and "TaskFailed" not in types


def test_a_failed_sibling_cancels_a_parallel_branch(orchestrator, tag):
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Long",
                        "States": {"Long": task("cx_until_cancelled", Parameters={"tag": tag})},
                    },
                    {
                        "StartAt": "Wait",
                        "States": {
                            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Boom"},
                            "Boom": {"Type": "Fail", "Error": "Boom"},
                        },
                    },
                ],
                "End": True,
            }
        }
    )
    handle = start_workflow(definition, {})
    result = handle.result(10)
    assert (result.status.value, result.error) == ("FAILED", "Boom")
    reason = str(wait_until(lambda: ctext("cancelled", tag), 5, message="the branch cancelled"))
    assert "'Fan' it runs in ended" in reason or "execution is FAILED" in reason
    assert count_events(handle.history(), "TaskFailed") == 0


def test_the_step_lease_is_renewed_while_its_result_commits(orchestrator, monkeypatch):
    # A commit retried through a Redis hiccup can outlast the lease: the lease keeper
    # still renews the step's lease then, or the reconciler would run the step again.
    from orchestrator.engine import steps
    from orchestrator.engine.leases import leases
    from orchestrator.engine.records import lease_member

    held_during_commit: list[bool] = []
    commit = steps.run_transition

    def observed(store, execution_id, interp, compute, **options):  # type: ignore[no-untyped-def]
        member = lease_member(execution_id, options["step_key"])
        held_during_commit.append(member in leases._held)
        return commit(store, execution_id, interp, compute, **options)

    monkeypatch.setattr(steps, "run_transition", observed)
    handle = start_workflow(machine({"Only": task("echo")}), {"x": 1})
    assert handle.result(30).output == {"x": 1}
    assert held_during_commit == [True]
