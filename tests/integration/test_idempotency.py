"""Duplicate step messages, duplicate timer firings and false lease expiries: the workflow
moves once.

Every activity message is ``(input, execution_id, step_key)``; these tests send copies of
real messages (same arguments, fresh Celery task ids) at the worst moments and check that
the history holds one TaskStarted/TaskSucceeded per state and that side effects ran once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from orchestrator.engine.activities import get_activity
from orchestrator.engine.timers import fire_timer, recover_step
from tests.activities import counter, release
from tests.helpers import count_events, machine, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")


def resend(orchestrator, activity: str, input, execution_id: str, step_key: str) -> str:
    """Send one more copy of a step's message; return its Celery task id."""
    task_id = f"dup-{uuid.uuid4().hex}"
    get_activity(activity).task.apply_async(
        args=(input, execution_id, step_key), queue=orchestrator.settings.queue, task_id=task_id
    )
    return task_id


def scheduled_params(handle, state: str) -> object:
    """The effective input of a state's (last) TaskScheduled event."""
    events = [e for e in handle.history() if e.type == "TaskScheduled" and e.state == state]
    return events[-1].details.get("parameters")


def assert_moved_once(history, states) -> None:
    for state in states:
        assert count_events(history, "TaskStarted", state) == 1, (state, history)
        assert count_events(history, "TaskSucceeded", state) == 1, (state, history)
        assert count_events(history, "TaskStateExited", state) == 1, (state, history)
    assert count_events(history, "ExecutionSucceeded") == 1


def two_counts(tag: str) -> dict:
    return machine(
        {
            "First": task("count", Parameters={"tag": f"{tag}-1"}, Next="Second"),
            "Second": task("count", Parameters={"tag": f"{tag}-2"}),
        }
    )


def test_duplicate_after_the_step_ran_changes_nothing(orchestrator, task_log, tag):
    from orchestrator import start_workflow

    handle = start_workflow(two_counts(tag), {})
    result = handle.result(10)
    assert result.status == "SUCCEEDED"
    before = handle.history()
    duplicates = [
        resend(orchestrator, "count", {"tag": f"{tag}-1"}, handle.execution_id, "First"),
        resend(orchestrator, "count", {"tag": f"{tag}-2"}, handle.execution_id, "Second"),
    ]
    for task_id in duplicates:
        wait_until(lambda t=task_id: task_log.finished(t), timeout=10, message="duplicate ran")
    assert counter("calls", f"{tag}-1") == 1
    assert counter("calls", f"{tag}-2") == 1
    after = handle.history()
    assert after == before
    assert_moved_once(after, ["First", "Second"])
    assert handle.result(1) == result


def test_duplicate_while_the_step_runs_is_dropped(orchestrator, task_log, tag):
    from orchestrator import start_workflow

    definition = machine(
        {
            "Block": task("block", Parameters={"tag": tag}, Next="After"),
            "After": task("count", Parameters={"tag": tag}),
        }
    )
    handle = start_workflow(definition, {})
    try:
        wait_until(lambda: counter("started", tag) == 1, timeout=10, message="block started")
        params = scheduled_params(handle, "Block")
        assert params == {"tag": tag}
        duplicates = [
            resend(orchestrator, "block", params, handle.execution_id, "Block") for _ in range(3)
        ]
        for task_id in duplicates:
            wait_until(lambda t=task_id: task_log.finished(t), timeout=10, message="duplicate ran")
        assert counter("started", tag) == 1
        assert handle.describe().status == "RUNNING"
    finally:
        release(tag)
    result = handle.result(10)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"tag": tag, "calls": 1}
    assert counter("started", tag) == 1 and counter("finished", tag) == 1
    assert counter("calls", tag) == 1
    assert_moved_once(handle.history(), ["Block", "After"])


def test_concurrent_copies_of_a_fresh_message_run_the_step_once(orchestrator, task_log, tag):
    from orchestrator import start_workflow

    handle = start_workflow(two_counts(tag), {})
    # Race the original message with copies sent right away (several worker threads).
    duplicates = [
        resend(orchestrator, "count", {"tag": f"{tag}-1"}, handle.execution_id, "First")
        for _ in range(6)
    ]
    result = handle.result(10)
    assert result.status == "SUCCEEDED", result
    for task_id in duplicates:
        wait_until(lambda t=task_id: task_log.finished(t), timeout=10, message="duplicate ran")
    assert counter("calls", f"{tag}-1") == 1
    assert counter("calls", f"{tag}-2") == 1
    assert result.output == {"tag": f"{tag}-2", "calls": 1}
    assert_moved_once(handle.history(), ["First", "Second"])


def test_duplicate_during_retry_backoff_does_not_run_early(orchestrator, task_log, tag):
    from orchestrator import start_workflow

    definition = machine(
        {
            "Flaky": task(
                "flaky",
                Parameters={"tag": tag, "fail": 1},
                Retry=[{"ErrorEquals": ["Transient"], "IntervalSeconds": 3, "MaxAttempts": 1}],
                Next="After",
            ),
            "After": task("count", Parameters={"tag": f"{tag}-after"}),
        }
    )
    handle = start_workflow(definition, {})
    wait_until(
        lambda: count_events(handle.history(), "TaskFailed", "Flaky") == 1,
        timeout=10,
        message="first attempt failed",
    )
    failed_at = time.monotonic()
    task_id = resend(orchestrator, "flaky", {"tag": tag, "fail": 1}, handle.execution_id, "Flaky")
    wait_until(lambda: task_log.finished(task_id), timeout=10, message="duplicate ran")
    assert time.monotonic() - failed_at < 3, "too slow to test the backoff window"
    assert counter("calls", tag) == 1  # the copy did not start the retry early
    result = handle.result(15)
    assert result.status == "SUCCEEDED", result
    assert counter("calls", tag) == 2
    assert counter("calls", f"{tag}-after") == 1
    history = handle.history()
    assert count_events(history, "TaskStarted", "Flaky") == 2
    assert count_events(history, "TaskSucceeded", "Flaky") == 1
    assert_moved_once(history, ["After"])


def test_a_retry_timer_fired_by_two_beats_at_once_fires_once(orchestrator, tag):
    from orchestrator import start_workflow

    store = orchestrator.store
    definition = machine(
        {
            "Flaky": task(
                "flaky",
                Parameters={"tag": tag, "fail": 1},
                # Long enough that the session's own timer loop does not fire it first.
                Retry=[{"ErrorEquals": ["Transient"], "IntervalSeconds": 30, "MaxAttempts": 1}],
            )
        }
    )
    handle = start_workflow(definition, {})

    def retry_timer():
        timers = store.keys.timers(store.keys.partition_of(handle.execution_id))
        for member, due in store.client.zrange(timers, 0, -1, withscores=True):
            decoded = json.loads(member)
            if decoded[0] == "retry" and decoded[1] == handle.execution_id:
                return member, due
        return None

    member, due = wait_until(retry_timer, timeout=10, message="retry timer set")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def beat():
        try:
            barrier.wait(5)
            fire_timer(store, member, due + 0.001)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors, errors
    result = handle.result(10)
    assert result.status == "SUCCEEDED", result
    assert counter("calls", tag) == 2
    history = handle.history()
    assert count_events(history, "TaskScheduled", "Flaky") == 2
    assert count_events(history, "TaskStarted", "Flaky") == 2
    assert count_events(history, "TaskSucceeded", "Flaky") == 1
    assert retry_timer() is None


def test_falsely_lapsed_lease_runs_the_activity_again_but_moves_once(orchestrator, task_log, tag):
    """A worker presumed dead (its lease lapsed) that was only slow: its late result is
    discarded, the re-dispatched copy's result wins, downstream runs once."""
    from orchestrator import start_workflow
    from orchestrator.engine.store import lease_member

    store = orchestrator.store
    definition = machine(
        {
            "Block": task("block", Parameters={"tag": tag}, Next="After"),
            "After": task("count", Parameters={"tag": tag}),
        }
    )
    handle = start_workflow(definition, {})
    try:
        wait_until(lambda: counter("started", tag) == 1, timeout=10, message="block started")
        # What the reconciler does when a lease lapses, while the first worker still runs.
        recover_step(store, lease_member(handle.execution_id, "Block"), time.time())
        wait_until(lambda: counter("started", tag) == 2, timeout=10, message="re-dispatched")
    finally:
        release(tag)
    result = handle.result(10)
    assert result.status == "SUCCEEDED", result
    wait_until(
        lambda: task_log.step_messages(handle.execution_id, "Block") == 2,
        timeout=10,
        message="both copies ended",
    )
    assert counter("finished", tag) == 2  # at-least-once: both copies ran...
    assert counter("calls", tag) == 1  # ...but the workflow moved once
    history = handle.history()
    assert count_events(history, "TaskStarted", "Block") == 2
    assert count_events(history, "TaskSucceeded", "Block") == 1
    assert_moved_once(history, ["After"])
