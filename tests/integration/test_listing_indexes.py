"""The listing indexes (by status, by workflow, by both) follow every status change.

Each test runs executions of a workflow of its own (named by the definition's Comment),
so the indexes of that workflow hold only its executions; the global status indexes are
shared with the session's other tests, so only this test's ids are looked at there.
"""

from __future__ import annotations

from typing import Any

import pytest

import tests.control_activities  # noqa: F401 - registers the ctl_* activities before the worker starts
from orchestrator import (
    ExecutionStatus,
    list_dead_letters,
    list_executions,
    redrive_execution,
    send_task_failure,
    start_workflow,
    stop_execution,
)
from orchestrator.engine.keys import EXECUTION_STATUSES
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.ui.data import list_summaries
from tests.control_activities import ctext
from tests.helpers import machine, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")


def listed(store: RedisStore, execution_id: str, workflow: str) -> dict[str, Any]:
    """Where the execution is indexed: the statuses of the global and of the workflow's
    status indexes it is in, and its score in the start-time and workflow indexes."""
    keys = store.keys
    p = keys.partition_of(execution_id)

    def score(key: str) -> float | None:
        return store.client.zscore(key, execution_id)

    return {
        "all": score(keys.executions(p)),
        "workflow": score(keys.executions_index(p, workflow=workflow)),
        "status": {s for s in EXECUTION_STATUSES if score(keys.executions_index(p, s)) is not None},
        "workflow_status": {
            s
            for s in EXECUTION_STATUSES
            if score(keys.executions_index(p, s, workflow)) is not None
        },
    }


def assert_listed(store: RedisStore, execution_id: str, workflow: str, status: str) -> None:
    """Indexed under ``status`` only, everywhere scored by its start time."""
    start = float(store.execution(execution_id)["start"])
    where = listed(store, execution_id, workflow)
    assert where == {
        "all": start,
        "workflow": start,
        "status": {status},
        "workflow_status": {status},
    }
    p = store.keys.partition_of(execution_id)
    for key in (
        store.keys.executions_index(p, status),
        store.keys.executions_index(p, status, workflow),
    ):
        assert store.client.zscore(key, execution_id) == start


def assert_unlisted(store: RedisStore, execution_id: str, workflow: str) -> None:
    assert listed(store, execution_id, workflow) == {
        "all": None,
        "workflow": None,
        "status": set(),
        "workflow_status": set(),
    }


def pass_machine(workflow: str) -> dict[str, Any]:
    return machine({"P": {"Type": "Pass", "End": True}}, Comment=workflow)


def test_start_and_success_inline_and_through_a_worker(tag: str) -> None:
    store = get_store()
    workflow = f"wf-{tag}"
    inline = start_workflow(pass_machine(workflow))  # ends within its start write
    assert inline.result(10).status == "SUCCEEDED"
    assert_listed(store, inline.execution_id, workflow, "SUCCEEDED")

    worked = start_workflow(machine({"T": task("echo")}, Comment=workflow), {"x": 1})
    assert worked.result(20).status == "SUCCEEDED"
    assert_listed(store, worked.execution_id, workflow, "SUCCEEDED")

    ids = {inline.execution_id, worked.execution_id}
    rows, cursor = list_summaries(ExecutionStatus.SUCCEEDED, workflow)
    assert {r.execution_id for r in rows} == ids and cursor is None
    assert list_summaries(ExecutionStatus.FAILED, workflow) == ([], None)
    found = {d.execution_id for d in list_executions("SUCCEEDED", 1000)}
    assert ids <= found


def test_failure_stop_and_redrive_move_the_execution(tag: str) -> None:
    store = get_store()
    workflow = f"wf-{tag}"
    failed = start_workflow(machine({"F": task("fail")}, Comment=workflow))
    assert failed.result(20).status == "FAILED"
    assert_listed(store, failed.execution_id, workflow, "FAILED")
    assert failed.execution_id in {d.execution_id for d in list_executions("FAILED", 1000)}

    # A task that waits for its token: running until answered, stopped, or redriven.
    waiting = machine(
        {
            "T": task(
                "ctl_token_sink.waitForTaskToken",
                Parameters={"tag": tag, "token.$": "$$.Task.Token"},
            )
        },
        Comment=workflow,
    )
    handle = start_workflow(waiting)
    execution_id = handle.execution_id
    assert_listed(store, execution_id, workflow, "RUNNING")
    rows, _ = list_summaries(ExecutionStatus.RUNNING, workflow)
    assert [r.execution_id for r in rows] == [execution_id]

    token = wait_until(lambda: ctext("token", tag), 10, message="task token stored")
    send_task_failure(token, "Nope", "answered with a failure")
    assert handle.result(10).status == "FAILED"
    assert_listed(store, execution_id, workflow, "FAILED")

    store.client.delete(tests.control_activities.ckey("token", tag))
    redrive_execution(execution_id)
    assert_listed(store, execution_id, workflow, "RUNNING")
    assert execution_id not in {d.execution_id for d in list_executions("FAILED", 1000)}
    wait_until(lambda: ctext("token", tag), 10, message="task token stored again")

    stop_execution(execution_id, "Stopped", "by the test")
    assert handle.describe().status == "ABORTED"
    assert_listed(store, execution_id, workflow, "ABORTED")
    rows, _ = list_summaries(None, workflow)
    assert [r.execution_id for r in rows] == [execution_id, failed.execution_id]
    rows, _ = list_summaries(ExecutionStatus.ABORTED, workflow)
    assert [r.execution_id for r in rows] == [execution_id]


def expire(store: RedisStore, execution_id: str) -> None:
    """What the retention period does to an ended execution's keys."""
    keys = store.keys
    store.client.delete(
        keys.execution(execution_id), keys.steps(execution_id), keys.history(execution_id)
    )


def test_expired_executions_leave_every_index_they_are_met_in(tag: str) -> None:
    store = get_store()
    workflow = f"wf-{tag}"
    handles = [start_workflow(pass_machine(workflow)) for _ in range(4)]
    ids = [h.execution_id for h in handles]  # all SUCCEEDED at once
    for execution_id in ids[:3]:
        expire(store, execution_id)

    # A listing by workflow and status meets them: gone from every index (the workflow's
    # too: the listing names it, although their records no longer do).
    rows, cursor = list_summaries(ExecutionStatus.SUCCEEDED, workflow, limit=10)
    assert [r.execution_id for r in rows] == [ids[3]] and cursor is None
    for execution_id in ids[:3]:
        assert_unlisted(store, execution_id, workflow)
    assert_listed(store, ids[3], workflow, "SUCCEEDED")

    # Met by a listing that names no workflow: gone from the global indexes at once, and
    # from the workflow's when a listing of it meets it.
    expire(store, ids[3])
    assert ids[3] not in {d.execution_id for d in list_executions("SUCCEEDED", 100_000)}
    where = listed(store, ids[3], workflow)
    assert where["all"] is None and where["status"] == set()
    assert list_summaries(None, workflow) == ([], None)
    assert_unlisted(store, ids[3], workflow)


def test_a_name_started_again_after_expiry_is_listed_once(tag: str, unique_name: str) -> None:
    store = get_store()
    workflow = f"wf-{tag}"
    first = start_workflow(machine({"F": task("fail")}, Comment=workflow), name=unique_name)
    assert first.result(20).status == "FAILED"
    expire(store, unique_name)
    second = start_workflow(pass_machine(workflow), name=unique_name)
    assert second.result(10).status == "SUCCEEDED"
    assert_listed(store, unique_name, workflow, "SUCCEEDED")
    assert list_summaries(ExecutionStatus.FAILED, workflow) == ([], None)


def test_pages_of_a_filtered_listing(tag: str) -> None:
    workflow = f"wf-{tag}"
    ids = [start_workflow(pass_machine(workflow)).execution_id for _ in range(5)]
    seen: list[str] = []
    cursor: int | None = 0
    while cursor is not None:
        rows, cursor = list_summaries(ExecutionStatus.SUCCEEDED, workflow, 2, cursor)
        assert len(rows) <= 2
        seen += [r.execution_id for r in rows]
    assert seen == ids[::-1]


def test_dead_letters_page_with_a_cursor(tag: str) -> None:
    workflow = f"wf-{tag}"
    handles = [start_workflow(machine({"F": task("fail")}, Comment=workflow)) for _ in range(3)]
    for handle in handles:
        assert handle.result(20).status == "FAILED"
    letters = list_dead_letters(1000)
    ours = [letter.id for letter in letters if letter.id in {h.execution_id for h in handles}]
    assert len(ours) == 3
    paged: list[str] = []
    while len(paged) < len(letters):
        page = list_dead_letters(2, cursor=len(paged))
        assert page and len(page) <= 2
        paged += [letter.id for letter in page]
    assert paged == [letter.id for letter in letters]
