"""Task tokens, stop, dead letters and redrive: real Redis, real worker, real timers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.control_activities  # noqa: F401 - registers the ctl_* activities before the worker starts
from orchestrator import (
    InvalidExecutionState,
    TaskTokenError,
    get_dead_letter,
    list_dead_letters,
    redrive_execution,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
    start_workflow,
    stop_execution,
)
from tests.control_activities import cget, cset, ctext
from tests.helpers import count_events, event_types, machine, run_workflow, task, wait_until

ROOT = Path(__file__).resolve().parents[2]


def token_task(tag: str, **fields) -> dict:
    return task(
        "ctl_token_sink.waitForTaskToken",
        Parameters={"tag": tag, "token.$": "$$.Task.Token"},
        **fields,
    )


def wait_token(tag: str) -> str:
    return wait_until(lambda: ctext("token", tag), 10, message="task token stored")


# -- callbacks --------------------------------------------------------------------------


def test_send_task_success_from_another_process(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag, ResultPath="$.answer")}), {"in": 1})
    token = wait_token(tag)
    wait_until(
        lambda: (
            handle.describe().status == "RUNNING"
            and any(s.status.startswith("WAITING") for s in handle.describe().steps)
        ),
        10,
    )
    env = {
        **os.environ,
        "REDIS_URL": orchestrator.settings.redis_url,
        "ORCHESTRATOR_KEY_PREFIX": orchestrator.settings.key_prefix,
        "PYTHONPATH": str(ROOT),
    }
    code = (
        "import sys; from orchestrator import send_task_success; "
        "send_task_success(sys.argv[1], {'approved': True})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, token],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = handle.result(15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"in": 1, "answer": {"approved": True}}
    # The token is spent now.
    with pytest.raises(TaskTokenError):
        send_task_success(token, {})


def test_send_task_failure_is_caught(orchestrator, tag):
    definition = machine(
        {
            "T": token_task(
                tag,
                Catch=[{"ErrorEquals": ["Rejected"], "ResultPath": "$.err", "Next": "Handled"}],
                Next="Nope",
            ),
            "Nope": {"Type": "Pass", "End": True},
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    handle = start_workflow(definition, {})
    send = wait_token(tag)
    wait_until(lambda: _try(send_task_failure, send, "Rejected", "no way"), 10)
    result = handle.result(15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"err": {"Error": "Rejected", "Cause": "no way"}}
    assert "Handled" in [e.state for e in handle.history()]


def _try(fn, *args) -> bool:
    """Answer a token; a TaskTokenError means the task is not waiting *yet*."""
    try:
        fn(*args)
    except TaskTokenError:
        return False
    return True


def test_unknown_and_spent_tokens_raise(orchestrator, tag):
    with pytest.raises(TaskTokenError):
        send_task_success("no-such-token", {})
    with pytest.raises(TaskTokenError):
        send_task_failure("no-such-token", "E", "c")
    with pytest.raises(TaskTokenError):
        send_task_heartbeat("no-such-token")
    handle = start_workflow(machine({"T": token_task(tag)}))
    token = wait_token(tag)
    wait_until(lambda: _try(send_task_success, token, 1), 10)
    assert handle.result(15).status == "SUCCEEDED"
    with pytest.raises(TaskTokenError):
        send_task_success(token, 2)
    with pytest.raises(TaskTokenError):
        send_task_failure(token, "E", "c")


def test_an_answer_racing_the_step_into_waiting_is_not_refused(orchestrator, tag, monkeypatch):
    """The answer reads the step RUNNING (its worker has sent the token but not yet
    committed that it waits); the worker's commit lands before the answer's, whose guard
    then fails. The answer reads again and completes the task: the token was valid all
    along (CI saw this refused as "no longer waiting" with an SQS callback)."""
    from orchestrator.client import control

    handle = start_workflow(
        machine(
            {
                "T": task(
                    "ctl_token_then_hold.waitForTaskToken",
                    Parameters={"tag": tag, "token.$": "$$.Task.Token"},
                    ResultPath="$.answer",
                )
            }
        ),
        {"in": 1},
    )
    token = wait_token(tag)
    real = control.run_transition
    raced = []

    def racing(*args, **kwargs):
        if not raced:
            raced.append(kwargs["step_status"])
            cset("release", tag)  # the worker now commits "waiting" first
            wait_until(
                lambda: any(s.status.startswith("WAITING") for s in handle.describe().steps),
                10,
                message="the step committed as waiting",
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(control, "run_transition", racing)
    send_task_success(token, {"approved": True})
    assert raced and raced[0].startswith("RUNNING"), raced
    result = handle.result(15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"in": 1, "answer": {"approved": True}}
    assert count_events(handle.history(), "TaskSucceeded") == 1


def test_heartbeat_timeout(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag, HeartbeatSeconds=1, TimeoutSeconds=60)}))
    result = handle.result(15)
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout"), result


def test_heartbeats_keep_a_waiting_task_alive(orchestrator, tag):
    import time

    handle = start_workflow(machine({"T": token_task(tag, HeartbeatSeconds=2)}))
    token = wait_token(tag)
    wait_until(lambda: _try(send_task_heartbeat, token), 10)
    # Heartbeats every 0.1 s for over two periods: a beat may come 1.9 s late on a loaded
    # machine before the task times out, so only a heartbeat that moves nothing fails this.
    until = time.monotonic() + 5
    while time.monotonic() < until:
        send_task_heartbeat(token)
        time.sleep(0.1)
    assert handle.describe().status == "RUNNING"
    send_task_success(token, "ok")
    assert handle.result(15).status == "SUCCEEDED"


def test_timeout_seconds_on_waiting_task(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag, TimeoutSeconds=1)}))
    result = handle.result(15)
    assert (result.status, result.error) == ("FAILED", "States.Timeout"), result
    token = ctext("token", tag)
    with pytest.raises(TaskTokenError):
        send_task_success(token, {})


# -- stop -------------------------------------------------------------------------------


def test_stop_aborts_at_once_and_late_result_is_ignored(orchestrator, task_log, tag):
    definition = machine(
        {
            "S": task("ctl_slow", Parameters={"tag": tag}, Next="After"),
            "After": {"Type": "Pass", "End": True},
        }
    )
    handle = start_workflow(definition)
    wait_until(lambda: cget("started", tag) == 1, 10)
    stop_execution(handle.execution_id, "Operator", "stop now")
    desc = handle.describe()
    assert (desc.status, desc.error, desc.cause) == ("ABORTED", "Operator", "stop now")
    before = [e.model_dump() for e in handle.history()]
    assert before[-1]["type"] == "ExecutionAborted"
    cset("release", tag)
    wait_until(lambda: cget("finished", tag) == 1, 10)
    # The worker tried to commit the late result (its task finished) and was refused.
    wait_until(lambda: task_log.step_messages(handle.execution_id, "S") == 1, 10)
    assert handle.describe().status == "ABORTED"
    after = handle.history()
    assert [e.model_dump() for e in after] == before
    assert count_events(after, "TaskSucceeded") == 0
    with pytest.raises(InvalidExecutionState):
        stop_execution(handle.execution_id)


def _lease_gone(execution_id: str) -> bool:
    import json

    from orchestrator.engine.store import get_store

    store = get_store()
    leases = store.keys.leases(store.keys.partition_of(execution_id))
    return not any(json.loads(m)[0] == execution_id for m in store.client.zrange(leases, 0, -1))


def test_stop_finished_execution_raises(orchestrator):
    handle, result = run_workflow(machine({"P": {"Type": "Pass", "End": True}}))
    assert result.status == "SUCCEEDED"
    with pytest.raises(InvalidExecutionState):
        stop_execution(handle.execution_id)


# -- dead letters and redrive -----------------------------------------------------------


def test_dead_letter_and_redrive(orchestrator, tag):
    definition = machine(
        {
            "First": task(
                "ctl_count",
                Parameters={"tag": tag, "name": "first"},
                ResultPath=None,
                Next="Second",
            ),
            "Second": task(
                "ctl_until_flag", Parameters={"tag": tag}, ResultPath="$.second", Next="Third"
            ),
            "Third": task(
                "ctl_count", Parameters={"tag": tag, "name": "third"}, ResultPath=None, End=True
            ),
        }
    )
    handle, result = run_workflow(definition, {"tag": tag, "v": 1}, timeout=15)
    assert (result.status, result.error, result.cause) == ("FAILED", "FlagNotSet", "flag not set")

    letters = {d.execution_id: d for d in list_dead_letters(1000)}
    letter = letters[handle.execution_id]
    assert letter.state == "Second"
    assert (letter.error, letter.cause) == ("FlagNotSet", "flag not set")
    assert letter.input == {"tag": tag, "v": 1}
    assert get_dead_letter(letter.id).execution_id == handle.execution_id

    cset("flag", tag)
    redriven = redrive_execution(handle.execution_id)
    assert redriven.execution_id == handle.execution_id
    result = redriven.result(15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"tag": tag, "v": 1, "second": {"ok": True}}
    assert cget("calls", tag, "first") == 1, "succeeded step not re-run"
    assert cget("calls", tag) == 2
    assert cget("calls", tag, "third") == 1
    history = redriven.history()
    assert count_events(history, "ExecutionRedriven") == 1
    assert event_types(history)[-1] == "ExecutionSucceeded"
    assert handle.describe().redrive_count == 1
    assert handle.execution_id not in {d.execution_id for d in list_dead_letters(1000)}
    with pytest.raises(LookupError):
        get_dead_letter(handle.execution_id)
    with pytest.raises(InvalidExecutionState):
        redrive_execution(handle.execution_id)


def test_redrive_map_reruns_only_failed_items(orchestrator, task_log, tag):
    fail = [1, 3]
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemSelector": {
                    "tag": tag,
                    "item.$": "$$.Map.Item.Value",
                    "fail": fail,
                    "fail_delay": 0.5,
                },
                "ItemProcessor": {"StartAt": "I", "States": {"I": task("ctl_item")}},
                "End": True,
            }
        }
    )
    items = list(range(6))
    handle, result = run_workflow(definition, items, timeout=20)
    assert (result.status, result.error) == ("FAILED", "ItemFailed"), result
    # Every item's message was processed (failing items are the slowest, so all ran).
    wait_until(lambda: all(cget("item", tag, i) for i in items), 10)
    wait_until(
        lambda: all(task_log.step_messages(handle.execution_id, f"M[{i}]/I") for i in fail), 10
    )
    before = {i: cget("item", tag, i) for i in items}
    assert all(before[i] == 1 for i in items if i not in fail), before
    assert before[1] == 1

    cset("flag", tag)
    result = redrive_execution(handle.execution_id).result(20)
    assert result.status == "SUCCEEDED", result
    assert [o["item"] for o in result.output] == items
    after = {i: cget("item", tag, i) for i in items}
    for i in items:
        expected = before[i] + 1 if i in fail or before[i] == 0 else before[i]
        assert after[i] == expected, (i, before, after)


def test_redriven_wait_starts_over(orchestrator, tag):
    """A Wait interrupted by a stop runs again on redrive, as Step Functions runs an
    unsuccessful state again: its Seconds count from the redrive (it used to end at
    once, without a word)."""
    definition = machine(
        {
            "Pause": {"Type": "Wait", "Seconds": 2, "Next": "After"},
            "After": {"Type": "Pass", "End": True},
        }
    )
    handle = start_workflow(definition, {"v": 1})
    wait_until(lambda: any(s.status.startswith("WAITING") for s in handle.describe().steps), 10)
    stop_execution(handle.execution_id)
    redrive_execution(handle.execution_id)
    result = handle.result(20)
    assert result.status == "SUCCEEDED" and result.output == {"v": 1}, result
    history = handle.history()
    redriven = next(e for e in history if e.type == "ExecutionRedriven")
    after = [e for e in history if e.id > redriven.id]
    assert [e.type for e in after][:1] == ["WaitStateEntered"], after
    exited = next(e for e in after if e.type == "WaitStateExited")
    # The whole wait again, counted from the redrive (a lower bound: never early).
    assert (exited.timestamp - redriven.timestamp).total_seconds() >= 1.9
