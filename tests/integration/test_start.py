"""The public start/describe/history/list API against a real Redis and worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import (
    DefinitionError,
    ExecutionAlreadyExists,
    ExecutionHandle,
    ExecutionNotFound,
    ExecutionStatus,
    InvalidInputError,
    describe_execution,
    get_execution_history,
    list_executions,
    start_workflow,
    validate_definition,
)
from tests.activities import counter, release
from tests.helpers import count_events, machine, run_workflow, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

MAX_INPUT = 256 * 1024
ECHO = machine({"Echo": task("echo")})


def started_count(orchestrator) -> int:
    """How many executions the store knows (the index list_executions reads)."""
    store = orchestrator.store
    return store.execution_index_size()


# -- names and idempotency ----------------------------------------------------------------


def test_same_name_and_input_returns_the_existing_execution(orchestrator, unique_name, tag):
    definition = machine({"Count": task("count")})
    first = start_workflow(definition, {"tag": tag}, name=unique_name)
    second = start_workflow(definition, {"tag": tag}, name=unique_name)
    assert first.execution_id == second.execution_id == unique_name
    assert first.result(10).status == "SUCCEEDED"
    # Also after it ended: nothing runs again.
    third = start_workflow(definition, {"tag": tag}, name=unique_name)
    assert third.execution_id == unique_name
    assert third.result(1).output == {"tag": tag, "calls": 1}
    assert counter("calls", tag) == 1
    history = first.history()
    assert count_events(history, "ExecutionStarted") == 1
    assert count_events(history, "TaskStarted") == 1
    assert [e.name for e in list_executions(limit=1000)].count(unique_name) == 1


def test_same_name_with_other_input_raises_already_exists(orchestrator, unique_name):
    handle = start_workflow(ECHO, {"v": 1}, name=unique_name)
    with pytest.raises(ExecutionAlreadyExists) as info:
        start_workflow(ECHO, {"v": 2}, name=unique_name)
    assert info.value.execution_id == unique_name
    result = handle.result(10)
    assert result.output == {"v": 1}
    assert handle.describe().input == {"v": 1}


def test_unnamed_executions_get_distinct_ids():
    a, b = start_workflow(ECHO, {"v": 1}), start_workflow(ECHO, {"v": 1})
    assert a.execution_id != b.execution_id
    assert a.result(10).status == b.result(10).status == "SUCCEEDED"


@pytest.mark.parametrize(
    "name", ["has space", "a" * 81, "colon:name", "slash/name", "", "tab\tname", "star*"]
)
def test_invalid_execution_names_start_nothing(orchestrator, name):
    before = started_count(orchestrator)
    with pytest.raises(InvalidInputError):
        start_workflow(ECHO, {}, name=name)
    assert started_count(orchestrator) == before


# -- unknown executions -------------------------------------------------------------------


def test_unknown_execution_raises_not_found():
    with pytest.raises(ExecutionNotFound) as info:
        describe_execution("no-such-execution")
    assert info.value.execution_id == "no-such-execution"
    with pytest.raises(ExecutionNotFound):
        get_execution_history("no-such-execution")
    handle = ExecutionHandle("no-such-execution")
    with pytest.raises(ExecutionNotFound):
        handle.result(1)
    with pytest.raises(ExecutionNotFound):
        handle.describe()
    with pytest.raises(LookupError):  # ExecutionNotFound is a LookupError too
        handle.history()


# -- input validation ---------------------------------------------------------------------


def test_input_at_the_size_limit_is_accepted():
    value = "x" * (MAX_INPUT - 2)  # JSON adds the two quotes
    assert len(json.dumps(value).encode()) == MAX_INPUT
    definition = machine({"Done": {"Type": "Pass", "Result": "ok", "End": True}})
    _, result = run_workflow(definition, value)
    assert result.status == "SUCCEEDED"


@pytest.mark.parametrize(
    "value",
    [
        "x" * (MAX_INPUT - 1),
        {"blob": "y" * MAX_INPUT},
        # Counted in UTF-8 bytes, not characters.
        "é" * (MAX_INPUT // 2),
    ],
    ids=["one-byte-over", "nested", "utf8-bytes"],
)
def test_input_over_the_size_limit_starts_nothing(orchestrator, unique_name, value):
    before = started_count(orchestrator)
    with pytest.raises(InvalidInputError, match="limit"):
        start_workflow(ECHO, value, name=unique_name)
    assert started_count(orchestrator) == before
    with pytest.raises(ExecutionNotFound):
        describe_execution(unique_name)


@pytest.mark.parametrize(
    "value",
    [object(), {"when": {1, 2}}, b"bytes", float("nan"), {"x": float("inf")}],
    ids=["object", "set", "bytes", "nan", "inf"],
)
def test_non_json_input_starts_nothing(orchestrator, unique_name, value):
    before = started_count(orchestrator)
    ids_before = {e.execution_id for e in list_executions(limit=1000)}
    with pytest.raises(InvalidInputError):
        start_workflow(ECHO, value, name=unique_name)
    assert started_count(orchestrator) == before
    assert {e.execution_id for e in list_executions(limit=1000)} == ids_before
    with pytest.raises(ExecutionNotFound):
        describe_execution(unique_name)


def test_invalid_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        start_workflow(ECHO, object())


# -- definitions --------------------------------------------------------------------------


def test_definition_error_lists_every_issue(orchestrator, unique_name):
    bad = {
        "StartAt": "Missing",
        "States": {
            "A": {"Type": "Task", "Resource": "no-such-activity", "Next": "Nowhere"},
            "B": {"Type": "Bogus", "End": True},
            "C": {"Type": "Pass", "Next": "A", "End": True},
        },
    }
    before = started_count(orchestrator)
    with pytest.raises(DefinitionError) as info:
        start_workflow(bad, {}, name=unique_name)
    issues = info.value.issues
    assert len(issues) >= 4, issues
    text = "\n".join(str(issue) for issue in issues)
    for fragment in ("Missing", "Nowhere", "Bogus", "mutually exclusive"):
        assert fragment in text, text
    assert all(issue.path.startswith("$") for issue in issues)
    assert started_count(orchestrator) == before
    with pytest.raises(ExecutionNotFound):
        describe_execution(unique_name)
    with pytest.raises(DefinitionError):
        validate_definition(bad)


def test_unknown_resources_are_all_reported(orchestrator):
    bad = machine(
        {
            "A": task("no-such-activity", Next="B"),
            "B": task("arn:aws:lambda:us-east-1:123:function:nope", Next="C"),
            "C": task("echo"),
        }
    )
    before = started_count(orchestrator)
    with pytest.raises(DefinitionError) as info:
        start_workflow(bad, {})
    paths = sorted(issue.path for issue in info.value.issues)
    assert paths == ["$.States.A.Resource", "$.States.B.Resource"], info.value.issues
    assert "no-such-activity" in str(info.value)
    assert started_count(orchestrator) == before


@pytest.mark.parametrize(
    "bad",
    ["{not json", "StartAt: [unclosed", "", {"States": {}}],
    ids=["bad-json", "bad-yaml", "empty", "no-start"],
)
def test_unparseable_definitions_raise_definition_error(bad):
    with pytest.raises(DefinitionError) as info:
        start_workflow(bad, {})
    assert info.value.issues


YAML_FLOW = """\
Comment: yaml-flow
StartAt: Echo
States:
  Echo:
    Type: Task
    Resource: echo
    Parameters:
      from: yaml
      value.$: $.v
      machine.$: $$.StateMachine.Name
    End: true
"""


def test_definition_from_yaml_text():
    handle, result = run_workflow(YAML_FLOW, {"v": 3})
    assert result.output == {"from": "yaml", "value": 3, "machine": "yaml-flow"}


def test_definition_from_json_text():
    _, result = run_workflow(json.dumps(ECHO), {"v": "json"})
    assert result.output == {"v": "json"}


@pytest.mark.parametrize("suffix", [".asl.json", ".asl.yaml", ".yml"])
def test_definition_from_file(tmp_path: Path, suffix):
    path = tmp_path / f"my-flow{suffix}"
    if suffix == ".asl.json":
        path.write_text(
            json.dumps(machine({"Echo": task("echo", Parameters={"m.$": "$$.StateMachine.Name"})}))
        )
    else:
        path.write_text(YAML_FLOW.replace("Comment: yaml-flow\n", ""))
    for source in (path, str(path)):
        handle, result = run_workflow(source, {"v": 1})
        assert result.status == "SUCCEEDED", result
        assert handle.describe().workflow == "my-flow"
        machine_name = result.output.get("m", result.output.get("machine"))
        assert machine_name == "my-flow"


def test_definition_from_workflow_name():
    order = {
        "order_id": "o-9",
        "items": [{"sku": "pen", "quantity": 2, "price": 1.5}],
        "flaky_payment": 0,
    }
    handle, result = run_workflow("order_fulfillment", order)
    assert result.status == "SUCCEEDED", result
    assert result.output["validation"] == {"valid": True, "total": 3.0, "item_count": 1}
    assert result.output["shipping"]["method"] == "standard"
    assert handle.describe().workflow == "order_fulfillment"


def test_unknown_workflow_name_is_a_definition_error():
    with pytest.raises(DefinitionError):
        start_workflow("no_such_workflow_anywhere", {})


# -- describe, history, list --------------------------------------------------------------


def test_describe_history_and_list_with_status_filter(tag, unique_name):
    ok = start_workflow(ECHO, {"k": "ok"})
    failed = start_workflow(machine({"Boom": task("fail", Parameters={"error": "Nope"})}), {})
    running = start_workflow(
        machine(
            {"Wait": task("block", Parameters={"tag": tag}, Next="Done"), "Done": task("echo")}
        ),
        {"k": "running"},
        name=unique_name,
    )
    try:
        assert ok.result(10).status == "SUCCEEDED"
        assert failed.result(10).status == "FAILED"
        wait_until(lambda: counter("started", tag) == 1, timeout=10)

        description = running.describe()
        assert description.status == ExecutionStatus.RUNNING
        assert description.name == unique_name
        assert description.input == {"k": "running"}
        assert description.output is None and description.stop_time is None
        assert description.workflow
        with pytest.raises(TimeoutError):
            running.result(0.2)
        types = [e.type for e in running.history()]
        assert types[-1] == "TaskStarted" and "ExecutionSucceeded" not in types

        def ids(status=None, limit=1000):
            return [d.execution_id for d in list_executions(status, limit=limit)]

        running_ids = ids("RUNNING")
        assert running.execution_id in running_ids
        assert ok.execution_id not in running_ids and failed.execution_id not in running_ids
        assert failed.execution_id in ids(ExecutionStatus.FAILED)
        assert ok.execution_id not in ids(ExecutionStatus.FAILED)
        assert ok.execution_id in ids("SUCCEEDED")
        everything = ids()
        # Newest first.
        positions = [everything.index(h.execution_id) for h in (running, failed, ok)]
        assert positions == sorted(positions), positions
        assert len(ids(limit=2)) == 2
        assert all(d.status == "FAILED" for d in list_executions("FAILED", limit=5))
        with pytest.raises(InvalidInputError):
            list_executions(limit=0)
        with pytest.raises(ValueError):
            list_executions("NOT_A_STATUS")
    finally:
        release(tag)
    result = running.result(10)
    assert result.status == "SUCCEEDED"
    assert running.execution_id in [d.execution_id for d in list_executions("SUCCEEDED", 1000)]
    final = running.describe()
    assert final.output == result.output == {"tag": tag, "released": True}
    assert final.stop_time is not None and final.stop_time >= final.start_time
    history = get_execution_history(running.execution_id)
    assert history == running.history()
    assert history[0].type == "ExecutionStarted"
    assert history[0].details["input"] == {"k": "running"}
    assert history[-1].type == "ExecutionSucceeded"
    assert history[-1].details["output"] == result.output
    assert [e.state for e in history if e.type == "TaskStateEntered"] == ["Wait", "Done"]


def test_a_definition_is_parsed_once_per_content(monkeypatch, tmp_path: Path):
    from orchestrator.client import api

    parses: list[object] = []
    real = api.load_definition

    def counting(definition):
        parses.append(definition)
        return real(definition)

    monkeypatch.setattr(api, "load_definition", counting)
    definition = machine({"Echo": task("echo"), "Tag": {"Type": "Pass", "End": True}})
    definition["States"]["Echo"]["Next"] = "Tag"
    del definition["States"]["Echo"]["End"]
    for _ in range(3):
        run_workflow(definition, {"a": 1})
    assert len(parses) == 1  # the same content again: parsed and validated once
    path = tmp_path / "flow.asl.json"
    path.write_text(json.dumps(ECHO))
    assert run_workflow(str(path), {"a": 1})[1].status == "SUCCEEDED"
    assert run_workflow(str(path), {"a": 1})[1].status == "SUCCEEDED"
    assert len(parses) == 2
    changed = machine({"Other": task("echo")})
    path.write_text(json.dumps(changed) + "\n")  # another size: parsed again
    handle, result = run_workflow(str(path), {"a": 1})
    assert result.status == "SUCCEEDED" and len(parses) == 3
    assert [e.state for e in get_execution_history(handle.execution_id) if e.state][0] == "Other"


def test_an_invalid_definition_is_never_cached():
    bad = machine({"T": task("no-such-activity")})
    for _ in range(2):
        with pytest.raises(DefinitionError):
            start_workflow(bad, {})
