"""Child workflows (states:startExecution in its four modes, and the SDK's form): real
Redis, real worker, real timers; the children are workflows of a workflows folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.activities  # noqa: F401 - registers echo, fail, flaky, block
from orchestrator import (
    describe_execution,
    get_execution_history,
    redrive_execution,
    send_task_success,
    start_workflow,
    stop_execution,
)
from orchestrator.engine import children
from orchestrator.engine.store import get_store
from orchestrator.language import arns
from orchestrator.testing import process_settings
from tests.activities import release
from tests.helpers import event_types, machine, task, wait_until

START = "arn:aws:states:::states:startExecution"


@pytest.fixture
def workflows(orchestrator, tmp_path: Path) -> Iterator[Path]:
    """A workflows folder of the children's definitions, in force in this process (the
    in-process timer loop starts the children)."""
    settings = orchestrator.settings.model_copy(update={"workflows_dir": str(tmp_path)})
    with process_settings(settings):
        yield tmp_path


def child(folder: Path, name: str, states: dict) -> str:
    (folder / f"{name}.asl.json").write_text(json.dumps(machine(states)))
    return f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"


def parent(resource: str, arn: str, **fields) -> dict:
    params = {"StateMachineArn": arn, "Input": {"n.$": "$.n", "tag.$": "$.tag"}}
    params.update(fields.pop("Parameters", {}))
    return machine({"Call": task(resource, Parameters=params, **fields)})


def children_of(execution_id: str) -> list:
    return describe_execution(execution_id).children


def test_start_and_go_on(workflows, tag):
    arn = child(workflows, "kid", {"Echo": task("echo")})
    handle = start_workflow(parent(START, arn), {"n": 1, "tag": tag})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    (linked,) = children_of(handle.execution_id)
    assert result.output == {
        "ExecutionArn": arns.execution_arn("kid", linked.execution_id),
        "StartDate": result.output["StartDate"],
    }
    assert isinstance(result.output["StartDate"], int)
    assert linked.state == "Call" and linked.mode == "start"
    kid = describe_execution(linked.execution_id)
    wait_until(lambda: describe_execution(linked.execution_id).status == "SUCCEEDED", 20)
    assert kid.parent_execution_id == handle.execution_id
    assert kid.parent_state == "Call"
    assert kid.input == {"n": 1, "tag": tag}
    history = get_execution_history(handle.execution_id)
    assert event_types(history) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


def test_sdk_form_region_qualified(workflows, tag):
    arn = child(workflows, "kid_sdk", {"Echo": task("echo")})
    resource = "arn:aws:states:eu-west-1:111122223333:aws-sdk:sfn:startExecution"
    handle = start_workflow(
        parent(resource, arn, Parameters={"Input": json.dumps({"n": 2}), "Name": f"sdk-{tag}"}),
        {"n": 2, "tag": tag},
    )
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output["ExecutionArn"] == arns.execution_arn("kid_sdk", f"sdk-{tag}")
    assert isinstance(result.output["StartDate"], str) and result.output["StartDate"].endswith("Z")
    assert describe_execution(f"sdk-{tag}").input == {"n": 2}


def test_sync_waits_for_the_output_as_text(workflows, tag):
    arn = child(workflows, "kid_sync", {"Echo": task("echo")})
    handle = start_workflow(parent(f"{START}.sync", arn), {"n": 3, "tag": tag})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    (linked,) = children_of(handle.execution_id)
    out = result.output
    assert out["ExecutionArn"] == arns.execution_arn("kid_sync", linked.execution_id)
    assert out["Status"] == "SUCCEEDED"
    assert json.loads(out["Output"]) == {"n": 3, "tag": tag}
    assert json.loads(out["Input"]) == {"n": 3, "tag": tag}
    assert out["StateMachineArn"] == arns.state_machine_arn("kid_sync")
    assert out["Name"] == linked.execution_id
    assert out["StopDate"] >= out["StartDate"]
    assert "TaskSubmitted" in event_types(get_execution_history(handle.execution_id))


def test_sync2_output_as_json_region_qualified(workflows, tag):
    arn = child(workflows, "kid_sync2", {"Echo": task("echo")})
    resource = "arn:aws:states:us-east-1:123456789012:states:startExecution.sync:2"
    handle = start_workflow(parent(resource, arn), {"n": 4, "tag": tag})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output["Output"] == {"n": 4, "tag": tag}
    assert result.output["Input"] == {"n": 4, "tag": tag}


def test_sync_child_failure_fails_the_task(workflows, tag):
    arn = child(
        workflows,
        "kid_fails",
        {"Boom": task("fail", Parameters={"error": "KidError", "cause": "kid broke"})},
    )
    handle = start_workflow(parent(f"{START}.sync", arn), {"n": 5, "tag": tag})
    result = handle.result(30)
    assert result.status == "FAILED", result
    assert result.error == "States.TaskFailed" and result.cause is not None
    cause = json.loads(result.cause)
    assert cause["Status"] == "FAILED"
    assert cause["Error"] == "KidError" and cause["Cause"] == "kid broke"
    (linked,) = children_of(handle.execution_id)
    assert cause["ExecutionArn"] == arns.execution_arn("kid_fails", linked.execution_id)


def test_sync_child_failure_caught(workflows, tag):
    arn = child(workflows, "kid_caught", {"Boom": task("fail", Parameters={"error": "KidError"})})
    definition = parent(
        f"{START}.sync:2",
        arn,
        Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Handled"}],
        Next="Handled",
    )
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    result = start_workflow(definition, {"n": 6, "tag": tag}).result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output["Error"] == "States.TaskFailed"
    assert json.loads(result.output["Cause"])["Error"] == "KidError"


def test_wait_for_task_token(workflows, tag):
    arn = child(workflows, "kid_token", {"Hold": {"Type": "Pass", "End": True}})
    definition = parent(
        f"{START}.waitForTaskToken",
        arn,
        Parameters={"Input": {"token.$": "$$.Task.Token", "tag.$": "$.tag"}},
    )
    handle = start_workflow(definition, {"n": 7, "tag": tag})
    linked = wait_until(lambda: children_of(handle.execution_id), 20)
    kid = describe_execution(linked[0].execution_id)
    assert kid.parent_execution_id == handle.execution_id
    # The child ended; the parent waits for the token, not for the child.
    wait_until(lambda: describe_execution(kid.execution_id).status == "SUCCEEDED", 20)
    assert describe_execution(handle.execution_id).status == "RUNNING"
    send_task_success(kid.input["token"], {"answer": 42})
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"answer": 42}


def test_stop_parent_stops_sync_child(workflows, tag):
    arn = child(workflows, "kid_block", {"Hold": task("block", Parameters={"tag.$": "$.tag"})})
    handle = start_workflow(parent(f"{START}.sync", arn), {"n": 8, "tag": tag})
    linked = wait_until(lambda: children_of(handle.execution_id), 20)
    kid_id = linked[0].execution_id
    try:
        stop_execution(handle.execution_id, "Stopped", "by the test")
        assert handle.result(20).status == "ABORTED"
        wait_until(lambda: describe_execution(kid_id).status == "ABORTED", 20)
    finally:
        release(tag)


def test_stop_parent_stops_token_child(workflows, tag):
    arn = child(workflows, "kid_tblock", {"Hold": task("block", Parameters={"tag.$": "$.tag"})})
    definition = parent(
        f"{START}.waitForTaskToken",
        arn,
        Parameters={"Input": {"token.$": "$$.Task.Token", "tag.$": "$.tag"}},
    )
    handle = start_workflow(definition, {"n": 9, "tag": tag})
    linked = wait_until(lambda: children_of(handle.execution_id), 20)
    try:
        stop_execution(handle.execution_id)
        wait_until(lambda: describe_execution(linked[0].execution_id).status == "ABORTED", 20)
    finally:
        release(tag)


def test_redrive_parent_starts_a_new_child(workflows, tag):
    # flaky fails its first call (counted by tag), then succeeds.
    arn = child(
        workflows, "kid_flaky", {"F": task("flaky", Parameters={"tag.$": "$.tag", "fail": 1})}
    )
    handle = start_workflow(parent(f"{START}.sync:2", arn), {"n": 10, "tag": tag})
    assert handle.result(30).status == "FAILED"
    (first,) = children_of(handle.execution_id)
    assert describe_execution(first.execution_id).status == "FAILED"
    redrive_execution(handle.execution_id)
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output["Output"]["attempt"] == 2
    linked = children_of(handle.execution_id)
    assert len(linked) == 2
    second = next(c for c in linked if c.execution_id != first.execution_id)
    assert describe_execution(second.execution_id).status == "SUCCEEDED"
    assert describe_execution(first.execution_id).status == "FAILED"


def test_a_start_fired_again_starts_no_second_child(workflows, tag):
    """The childstart timer fired twice (a redelivery: the first firing's parent commit
    lost) finds its child there and starts no other."""
    arn = child(workflows, "kid_twice", {"Hold": task("block", Parameters={"tag.$": "$.tag"})})
    handle = start_workflow(parent(f"{START}.sync", arn), {"n": 11, "tag": tag})
    try:
        linked = wait_until(lambda: children_of(handle.execution_id), 20)
        store = get_store()
        started = store.execution(linked[0].execution_id)["start"]
        # What a firing would do again: the start is guarded by the child's absence.
        from orchestrator.engine.machines import interpreter_from_record
        from orchestrator.language.interpreter import StepRecord

        interp = interpreter_from_record(store, handle.execution_id)
        _, text = store.step_state(handle.execution_id, "Call")
        assert interp is not None and text is not None
        record = StepRecord.loads(text)
        workflow, start = children.start_child(store, interp, "Call", record, 0.0)
        assert (workflow, repr(start)) == ("kid_twice", started)
        assert len(children_of(handle.execution_id)) == 1
        assert [
            i
            for _, i in store.list_execution_page(
                (0,) * store.keys.partitions, 10, workflow="kid_twice"
            )
        ] == [linked[0].execution_id]
    finally:
        release(tag)
    assert handle.result(30).status == "SUCCEEDED"


def test_missing_workflow_fails_the_task(workflows, tag):
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:no_such_kid"
    result = start_workflow(parent(f"{START}.sync", arn), {"n": 12, "tag": tag}).result(30)
    assert result.status == "FAILED"
    assert result.error == "StepFunctions.StateMachineDoesNotExistException"


def test_cli_describe_shows_both_links(workflows, tag):
    from rich.console import Console

    from orchestrator.cli import render_description

    arn = child(workflows, "kid_cli", {"Echo": task("echo")})
    handle = start_workflow(parent(f"{START}.sync", arn), {"n": 13, "tag": tag})
    assert handle.result(30).status == "SUCCEEDED"
    (linked,) = children_of(handle.execution_id)

    def shown(execution_id: str) -> str:
        console = Console(width=300, record=True)
        console.print(render_description(describe_execution(execution_id)))
        return " ".join(console.export_text().split())

    assert f"Child {linked.execution_id} (state Call, sync)" in shown(handle.execution_id)
    assert f"Parent {handle.execution_id} (state Call)" in shown(linked.execution_id)


def test_sdk_form_names_errors_as_the_sdk(workflows, tag):
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:no_such_sdk_kid"
    resource = "arn:aws:states:::aws-sdk:sfn:startExecution"
    result = start_workflow(parent(resource, arn), {"n": 14, "tag": tag}).result(30)
    assert result.status == "FAILED"
    assert result.error == "Sfn.StateMachineDoesNotExistException"


def test_a_registered_state_machine_version_and_alias(workflows, tag):
    """A StateMachineArn that names no workflow file names a registered state machine,
    one of its versions or an alias."""
    from orchestrator import (
        create_state_machine,
        create_state_machine_alias,
        publish_state_machine_version,
        update_state_machine,
    )

    def says(text: str) -> dict:
        return machine({"Say": {"Type": "Pass", "Result": text, "End": True}})

    name = f"reg_kid_{tag}"
    created = create_state_machine(name, says("one"))
    publish_state_machine_version(name)  # version 1
    update_state_machine(name, says("two"))
    create_state_machine_alias(name, "live", [(1, 100)])
    base = created.state_machine_arn
    for arn, expected in ((base, "two"), (f"{base}:1", "one"), (f"{base}:live", "one")):
        result = start_workflow(parent(f"{START}.sync:2", arn), {"n": 15, "tag": tag}).result(30)
        assert result.status == "SUCCEEDED", (arn, result)
        assert result.output["Output"] == expected, arn


# -- a .sync child stops when its Task no longer waits on it (issue 14) -----------------


def blocking_child(folder: Path, name: str) -> str:
    return child(folder, name, {"Hold": task("block", Parameters={"tag.$": "$.tag"})})


def sync_parent(arn: str, **fields) -> dict:
    return parent(f"{START}.sync", arn, Parameters={"Input": {"tag.$": "$.tag"}}, **fields)


def aborted(execution_id: str) -> bool:
    return describe_execution(execution_id).status == "ABORTED"


def test_task_timeout_stops_sync_child_and_redrive_starts_another(workflows, tag):
    arn = blocking_child(workflows, "kid_slow")
    handle = start_workflow(sync_parent(arn, TimeoutSeconds=2), {"tag": tag})
    try:
        result = handle.result(30)
        assert result.status == "FAILED" and result.error == "States.Timeout", result
        (first,) = children_of(handle.execution_id)
        wait_until(lambda: aborted(first.execution_id), 20)
        kid = describe_execution(first.execution_id)
        assert kid.error == "States.Aborted"
        # The Task's timeout failed the parent in the same transition.
        assert kid.cause == f"The parent execution {handle.execution_id} ended"
    finally:
        release(tag)
    # The redrive schedules the Task again: a new child, which now finishes in time.
    redrive_execution(handle.execution_id)
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    linked = children_of(handle.execution_id)
    assert len(linked) == 2
    second = next(c for c in linked if c.execution_id != first.execution_id)
    assert describe_execution(second.execution_id).status == "SUCCEEDED"
    assert aborted(first.execution_id)


def test_heartbeat_timeout_stops_sync2_child(workflows, tag):
    arn = blocking_child(workflows, "kid_silent")
    definition = parent(
        f"{START}.sync:2", arn, Parameters={"Input": {"tag.$": "$.tag"}}, HeartbeatSeconds=1
    )
    handle = start_workflow(definition, {"tag": tag})
    try:
        result = handle.result(30)
        assert result.status == "FAILED" and result.error == "States.HeartbeatTimeout", result
        (linked,) = children_of(handle.execution_id)
        wait_until(lambda: aborted(linked.execution_id), 20)
    finally:
        release(tag)


def test_caught_task_timeout_stops_the_child_and_the_parent_goes_on(workflows, tag):
    arn = blocking_child(workflows, "kid_caught_slow")
    definition = sync_parent(
        arn,
        TimeoutSeconds=1,
        Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Handled"}],
        Next="Handled",
    )
    # The parent still runs when its Task lets the child go.
    definition["States"]["Handled"] = {"Type": "Wait", "Seconds": 4, "End": True}
    handle = start_workflow(definition, {"tag": tag})
    try:
        (linked,) = wait_until(lambda: children_of(handle.execution_id), 20)
        wait_until(lambda: aborted(linked.execution_id), 20)
        result = handle.result(30)
        assert result.status == "SUCCEEDED", result
        assert result.output["Error"] == "States.Timeout"
        cause = describe_execution(linked.execution_id).cause
        assert cause == (
            f"The Task Call of the parent execution {handle.execution_id} no longer waits for it"
        )
    finally:
        release(tag)


def test_retried_task_timeout_stops_the_first_child(workflows, tag):
    arn = blocking_child(workflows, "kid_retried")
    definition = sync_parent(
        arn,
        TimeoutSeconds=1,
        Retry=[{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 1, "IntervalSeconds": 1}],
    )
    handle = start_workflow(definition, {"tag": tag})
    try:
        assert handle.result(30).status == "FAILED"
        linked = children_of(handle.execution_id)
        assert len(linked) == 2
        for kid in linked:
            wait_until(lambda kid=kid: aborted(kid.execution_id), 20)
    finally:
        release(tag)


def test_execution_timeout_stops_sync_child(workflows, tag):
    arn = blocking_child(workflows, "kid_outlived")
    handle = start_workflow(sync_parent(arn) | {"TimeoutSeconds": 2}, {"tag": tag})
    try:
        result = handle.result(30)
        assert result.status == "TIMED_OUT", result
        (linked,) = children_of(handle.execution_id)
        wait_until(lambda: aborted(linked.execution_id), 20)
        kid = describe_execution(linked.execution_id)
        assert kid.cause == f"The parent execution {handle.execution_id} ended"
    finally:
        release(tag)


def parallel_parent(arn: str, **fields) -> dict:
    waiting = {"StartAt": "Call", "States": {"Call": sync_parent(arn)["States"]["Call"]}}
    # The failing branch fails once the child runs (its Task waits for the child).
    failing = {
        "StartAt": "Later",
        "States": {
            "Later": {"Type": "Wait", "Seconds": 2, "Next": "Boom"},
            "Boom": {"Type": "Fail", "Error": "Boom", "Cause": "a branch failed"},
        },
    }
    return machine({"Both": {"Type": "Parallel", "Branches": [waiting, failing], **fields}})


def test_parent_failing_in_another_branch_stops_sync_child(workflows, tag):
    arn = blocking_child(workflows, "kid_branch")
    handle = start_workflow(parallel_parent(arn, End=True), {"tag": tag})
    try:
        result = handle.result(30)
        assert result.status == "FAILED" and result.error == "Boom", result
        (linked,) = children_of(handle.execution_id)
        wait_until(lambda: aborted(linked.execution_id), 20)
    finally:
        release(tag)


def test_abandoned_branch_stops_sync_child_while_the_parent_goes_on(workflows, tag):
    arn = blocking_child(workflows, "kid_abandoned")
    definition = parallel_parent(
        arn, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled"}], Next="Handled"
    )
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    handle = start_workflow(definition, {"tag": tag})
    try:
        assert handle.result(30).status == "SUCCEEDED"
        (linked,) = children_of(handle.execution_id)
        wait_until(lambda: aborted(linked.execution_id), 20)
    finally:
        release(tag)


def test_token_child_whose_task_succeeded_outlives_the_parent(workflows, tag):
    """A .waitForTaskToken child that answered goes on, even when its parent then fails:
    only a child its Task still waits on stops with the parent."""
    import time

    from orchestrator.engine import maprun
    from orchestrator.engine.records import timer_member
    from orchestrator.language.interpreter import MapRunTimer

    arn = child(
        workflows,
        "kid_answers",
        {"Hold": task("block", Parameters={"tag.$": "$.tag"})},
    )
    definition = parent(
        f"{START}.waitForTaskToken",
        arn,
        Parameters={"Input": {"token.$": "$$.Task.Token", "tag.$": "$.tag"}},
        Next="Boom",
    )
    definition["States"]["Boom"] = {"Type": "Fail", "Error": "Later"}
    handle = start_workflow(definition, {"tag": tag})
    try:
        linked = wait_until(lambda: children_of(handle.execution_id), 20)
        kid = wait_until(lambda: describe_execution(linked[0].execution_id), 20)
        send_task_success(kid.input["token"], {"ok": True})
        assert handle.result(20).status == "FAILED"
        store = get_store()
        member = timer_member(MapRunTimer.ADVANCE, handle.execution_id, "", 0)
        # The end's advance has fired (it stops what the parent still waited on).
        timers = store.keys.timers(store.keys.partition_of(handle.execution_id))
        wait_until(lambda: store.client.zscore(timers, member) is None, 20)
        # And what it does, once more, here: the child goes on.
        maprun.stop_children(store, handle.execution_id, time.time())
        assert describe_execution(kid.execution_id).status == "RUNNING"
    finally:
        release(tag)
    wait_until(lambda: describe_execution(kid.execution_id).status == "SUCCEEDED", 20)


def test_a_child_no_task_waits_on_is_stopped_by_a_stale_start_firing(workflows, tag):
    """A childstart firing that started its child and died before the parent's commit
    leaves a child linked to the parent whose Task has moved on; the timer fired again
    finds the Task moved on, and stops that child, not the one the Task waits on."""
    import time

    from orchestrator.engine.machines import interpreter_from_record
    from orchestrator.engine.records import timer_member
    from orchestrator.language.children import ChildTimer
    from orchestrator.language.interpreter import StepRecord

    arn = blocking_child(workflows, "kid_orphan")
    handle = start_workflow(sync_parent(arn), {"tag": tag})
    parent_id = handle.execution_id
    try:
        (waited,) = wait_until(lambda: children_of(parent_id), 20)
        store = get_store()
        # The parent committed the start (TaskSubmitted): the Task waits on its child.
        wait_until(lambda: (store.step_state(parent_id, "Call")[0] or "") == "WAITING", 20)
        interp = interpreter_from_record(store, parent_id)
        _, text = store.step_state(parent_id, "Call")
        assert interp is not None and text is not None
        record = StepRecord.loads(text)
        orphan = f"{parent_id}.lost"
        record.run = {**(record.run or {}), "id": "lost", "child": orphan}
        children.start_child(store, interp, "Call", record, time.time())
        assert describe_execution(orphan).status == "RUNNING"
        assert {c.execution_id for c in children_of(parent_id)} == {waited.execution_id, orphan}
        member = timer_member(ChildTimer.START, parent_id, "Call", 0)
        children.fire(store, [member], time.time())
        assert aborted(orphan)
        assert describe_execution(waited.execution_id).status == "RUNNING"
    finally:
        release(tag)
    assert handle.result(30).status == "SUCCEEDED"


def test_every_call_of_a_child_workflow_touches_one_slot(workflows, tag, monitor):
    """The parent's link and the child's start are two writes, each in its execution's
    slot; the child's end reaches the parent through a timer in its own slot."""
    from tests.redis_monitor import grouped_calls, named_keys, slots

    arn = child(workflows, "kid", {"Echo": task("echo")})
    handle = start_workflow(parent(f"{START}.sync:2", arn), {"n": 1, "tag": tag})
    assert handle.result(30).status == "SUCCEEDED"
    (linked,) = children_of(handle.execution_id)
    keys = get_store().keys
    seen: set[str] = set()
    for call in grouped_calls(monitor.stop()):
        named = named_keys(call, keys.prefix)
        seen |= named
        assert len(slots(named)) <= 1, call.commands
    assert {keys.execution(handle.execution_id), keys.execution(linked.execution_id)} <= seen
