"""Distributed Map: each item (or batch) runs as a child execution of its own.

Real workers run the children's Tasks; the parent's history holds the Map Run's start and
end, not its items; ``MaxConcurrency`` bounds the children in flight; failures end the
run past their tolerance; a stop stops the children and a redrive re-runs only the
failed ones; S3 items and results go through moto's server (``tests/aws.local_s3``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import (
    describe_execution,
    describe_map_run,
    get_execution_history,
    list_map_run_children,
    list_map_runs,
    redrive_execution,
    start_workflow,
    stop_execution,
)
from orchestrator.engine import maprun
from orchestrator.engine.store import get_store
from orchestrator.errors import DefinitionError, MissingOptionalDependency
from tests.activities import peak, release
from tests.aws import local_s3
from tests.helpers import wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")


def _dmap(processor_states: dict[str, Any], start: str, **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": start,
                    "States": processor_states,
                },
                "End": True,
                **fields,
            }
        },
    }


def _gauge(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "gauge", "End": True, **fields}


def _events(execution_id: str) -> list[str]:
    return [event.type for event in get_execution_history(execution_id)]


def test_a_few_hundred_items_run_as_child_executions_in_order(tag: str) -> None:
    items = [{"i": i, "tag": tag} for i in range(300)]
    handle = start_workflow(
        _dmap({"T": _gauge()}, "T", ItemsPath="$.items", MaxConcurrency=40, Label="Fan"),
        {"items": items},
    )
    result = handle.result(60)
    assert result.status == "SUCCEEDED", result
    assert result.output == [i * 2 for i in range(300)]
    assert 1 <= peak(tag) <= 40
    events = _events(handle.execution_id)
    assert "MapRunStarted" in events and "MapRunSucceeded" in events
    assert "MapIterationStarted" not in events
    assert len(events) < 12  # the parent's history does not grow with the items
    (run,) = list_map_runs(handle.execution_id)
    assert run.status == "SUCCEEDED" and run.label == "Fan" and run.max_concurrency == 40
    assert run.counts.succeeded == run.counts.total == 300 and run.counts.running == 0
    assert describe_map_run(run.map_run_arn) == run
    children = list_map_run_children(run.map_run_arn, start=295, limit=10)
    assert [c.index for c in children] == [295, 296, 297, 298, 299]
    child = describe_execution(children[0].execution_id)
    assert child.status == "SUCCEEDED" and child.output == 590
    assert child.parent_execution_id == handle.execution_id
    assert child.map_run_arn == run.map_run_arn and child.map_index == 295
    assert child.input == {"i": 295, "tag": tag}
    assert "TaskSucceeded" in _events(child.execution_id)


def test_item_selector_and_item_batcher(tag: str) -> None:
    definition = _dmap(
        {"T": {"Type": "Pass", "End": True}},
        "T",
        ItemsPath="$.items",
        ItemSelector={"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatch": 4, "BatchInput": {"run.$": "$.run"}},
    )
    handle = start_workflow(definition, {"items": list(range(10)), "run": tag})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output == [
        {
            "BatchInput": {"run": tag},
            "Items": [{"value": i, "index": i} for i in range(first, min(first + 4, 10))],
        }
        for first in (0, 4, 8)
    ]
    (run,) = list_map_runs(handle.execution_id)
    assert run.counts.total == 3


def test_tolerated_failures(tag: str) -> None:
    items = [{"i": i, "tag": tag, "fail": i % 10 == 0} for i in range(50)]  # 5 fail
    tolerated = start_workflow(
        _dmap({"T": _gauge()}, "T", ItemsPath="$.items", ToleratedFailureCount=5),
        {"items": items},
    ).result(30)
    assert tolerated.status == "SUCCEEDED", tolerated
    assert tolerated.output == [None if i % 10 == 0 else i * 2 for i in range(50)]
    handle = start_workflow(
        _dmap(
            {"T": _gauge()},
            "T",
            ItemsPath="$.items",
            ToleratedFailurePercentagePath="$.pct",
            MaxConcurrency=5,
        ),
        {"items": items, "pct": 8},
    )
    failed = handle.result(30)
    assert failed.status == "FAILED"
    assert failed.error == "States.ExceedToleratedFailureThreshold"
    assert "MapRunFailed" in _events(handle.execution_id)
    (run,) = list_map_runs(handle.execution_id)
    assert run.status == "FAILED" and run.counts.failed >= 5


def test_stop_stops_the_children_and_redrive_reruns_only_the_failed(tag: str) -> None:
    block = {"Type": "Task", "Resource": "block", "End": True}
    items = [{"tag": tag, "i": i} for i in range(6)]
    handle = start_workflow(_dmap({"B": block}, "B", ItemsPath="$.items"), {"items": items})
    run = wait_until(lambda: (list_map_runs(handle.execution_id) or [None])[0], 10)
    wait_until(lambda: describe_map_run(run.map_run_arn).counts.total == 6, 10)
    stop_execution(handle.execution_id)
    children = list_map_run_children(run.map_run_arn)
    wait_until(
        lambda: all(describe_execution(c.execution_id).status == "ABORTED" for c in children),
        10,
    )
    assert describe_map_run(run.map_run_arn).status == "ABORTED"
    # The redrive runs the aborted children again (now released) and ends the run.
    release(tag)
    redrive_execution(handle.execution_id)
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert [o["i"] for o in result.output] == list(range(6))
    assert describe_execution(children[0].execution_id).redrive_count == 1
    assert _events(handle.execution_id).count("MapRunRedriven") == 1


def test_redrive_reruns_only_failed_children(tag: str) -> None:
    flaky = {
        "Type": "Task",
        "Resource": "flaky",
        "Parameters": {"tag.$": "$.tag", "fail.$": "$.fail"},
        "End": True,
    }
    items = [{"tag": f"{tag}-{i}", "fail": 1 if i == 3 else 0} for i in range(8)]
    handle = start_workflow(_dmap({"F": flaky}, "F", ItemsPath="$.items"), {"items": items})
    first = handle.result(30)
    assert first.status == "FAILED" and first.error == "States.ExceedToleratedFailureThreshold"
    redrive_execution(handle.execution_id)
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert [o["attempt"] for o in result.output] == [1, 1, 1, 2, 1, 1, 1, 1]
    (run,) = list_map_runs(handle.execution_id)
    assert run.counts.succeeded == 8 and run.counts.failed == 0 and run.redrive_count == 1


def test_a_lost_advance_loses_nothing(tag: str) -> None:
    """The Map Run moves only through the timers set: drop every advance a process was
    about to make (as if it died before committing) and the next tick makes it."""
    store = get_store()
    real = maprun.advance
    dropped = []

    def dying(*args: Any, **kwargs: Any) -> None:
        if len(dropped) < 5:
            dropped.append(args[2])
            raise RuntimeError("the process died here")
        real(*args, **kwargs)

    maprun.RETRY_BROKEN_S, old_retry = 0.1, maprun.RETRY_BROKEN_S
    maprun.advance = dying  # type: ignore[assignment]
    try:
        items = [{"i": i, "tag": tag} for i in range(20)]
        handle = start_workflow(
            _dmap({"T": _gauge()}, "T", ItemsPath="$.items", MaxConcurrency=3), {"items": items}
        )
        result = handle.result(30)
    finally:
        maprun.advance = real  # type: ignore[assignment]
        maprun.RETRY_BROKEN_S = old_retry
    assert len(dropped) == 5
    assert result.status == "SUCCEEDED", result
    assert result.output == [i * 2 for i in range(20)]
    assert not [m for m in store.due_timers(time.time() + 60, 1000) if handle.execution_id in m]


def test_a_child_end_timer_fired_twice_counts_once(tag: str) -> None:
    """A child's end timer can fire twice: beat moves it to its parent's partition with a
    ZADD there, then a ZREM from the child's (two slots), and a beat dying between leaves
    it in both; the copy moved again fires after the first. Every firing is doubled
    here: the run still counts each child once."""
    real = maprun.fire
    doubled: list[str] = []

    def twice(store: Any, members: list[str], now: float) -> None:
        real(store, members, now)
        ends = [m for m in members if json.loads(m)[0] == maprun.MapRunTimer.CHILD_ENDED]
        doubled.extend(ends)
        if ends:
            real(store, ends, now)

    maprun.fire = twice  # type: ignore[assignment]
    try:
        items = [{"i": i, "tag": tag, "fail": i == 3} for i in range(12)]
        handle = start_workflow(
            _dmap(
                {"T": _gauge()}, "T", ItemsPath="$.items", MaxConcurrency=3, ToleratedFailureCount=1
            ),
            {"items": items},
        )
        result = handle.result(30)
    finally:
        maprun.fire = real  # type: ignore[assignment]
    assert doubled, "no child end timer was fired"
    assert result.status == "SUCCEEDED", result
    (run,) = list_map_runs(handle.execution_id)
    assert (run.counts.succeeded, run.counts.failed, run.counts.total) == (11, 1, 12)
    assert run.counts.running == 0


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    with local_s3():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="dmap")
        yield client


def test_s3_jsonl_reader_and_result_writer(s3: Any, tag: str) -> None:
    lines = "\n".join(json.dumps({"i": i, "tag": tag}) for i in range(25))
    s3.put_object(Bucket="dmap", Key=f"{tag}/in.jsonl", Body=lines.encode())
    definition = _dmap(
        {"T": _gauge()},
        "T",
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL", "MaxItems": 20},
            "Parameters": {"Bucket": "dmap", "Key.$": "$.key"},
        },
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "dmap", "Prefix": f"{tag}/out"},
        },
        MaxConcurrency=7,
    )
    handle = start_workflow(definition, {"key": f"{tag}/in.jsonl"})
    result = handle.result(60)
    assert result.status == "SUCCEEDED", result
    (run,) = list_map_runs(handle.execution_id)
    run_id = run.map_run_arn.rsplit(":", 1)[-1]
    manifest_key = f"{tag}/out/{run_id}/manifest.json"
    assert result.output == {
        "MapRunArn": run.map_run_arn,
        "ResultWriterDetails": {"Bucket": "dmap", "Key": manifest_key},
    }
    manifest = json.loads(s3.get_object(Bucket="dmap", Key=manifest_key)["Body"].read())
    assert manifest["MapRunArn"] == run.map_run_arn
    (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
    entries = json.loads(s3.get_object(Bucket="dmap", Key=succeeded["Key"])["Body"].read())
    assert [json.loads(e["Output"]) for e in entries] == [i * 2 for i in range(20)]
    assert json.loads(entries[0]["Input"]) == {"i": 0, "tag": tag}
    assert entries[0]["Status"] == "SUCCEEDED" and entries[0]["Name"].startswith(
        handle.execution_id
    )
    # Each child's ARN as AWS forms it (the configured region and account; its workflow
    # <parent's>/<label>, as in the Map Run's ARN), and it names the child.
    children = run.map_run_arn.split(":mapRun:")[1].rpartition(":")[0]
    child_arn = entries[0]["ExecutionArn"]
    assert child_arn == (
        f"arn:aws:states:us-east-1:123456789012:execution:{children}:{entries[0]['Name']}"
    )
    assert describe_execution(child_arn).execution_id == entries[0]["Name"]
    assert manifest["ResultFiles"]["FAILED"] == [] and run.counts.total == 20


def test_a_failed_run_still_writes_its_results(s3: Any, tag: str) -> None:
    """As Step Functions: a Map Run that exceeds its tolerance writes the manifest with
    its SUCCEEDED and FAILED files all the same."""
    items = [{"i": i, "tag": tag, "fail": i == 3} for i in range(6)]
    definition = _dmap(
        {"T": _gauge()},
        "T",
        ItemsPath="$.items",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "dmap", "Prefix": f"{tag}/out"},
        },
        MaxConcurrency=1,
    )
    handle = start_workflow(definition, {"items": items})
    result = handle.result(20)
    assert result.status == "FAILED", result
    assert result.error == "States.ExceedToleratedFailureThreshold"
    # The run failed (it was not aborted by the execution's end that its failure made).
    assert _events(handle.execution_id)[-4:] == [
        "MapRunStarted",
        "MapRunFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]
    (run,) = list_map_runs(handle.execution_id)
    run_id = run.map_run_arn.rsplit(":", 1)[-1]
    manifest_key = f"{tag}/out/{run_id}/manifest.json"

    def read_manifest() -> Any:
        listed = s3.list_objects_v2(Bucket="dmap", Prefix=manifest_key).get("Contents")
        return listed and json.loads(s3.get_object(Bucket="dmap", Key=manifest_key)["Body"].read())

    manifest = wait_until(read_manifest, 5)  # written just after the commit that failed the Map
    assert manifest["MapRunArn"] == run.map_run_arn
    files = manifest["ResultFiles"]

    def entries(group: str) -> list[dict[str, Any]]:
        return [
            entry
            for file in files[group]
            for entry in json.loads(s3.get_object(Bucket="dmap", Key=file["Key"])["Body"].read())
        ]

    # One child at a time: items 0-2 succeeded, 3 failed, and the run ended there.
    assert [json.loads(e["Input"])["i"] for e in entries("SUCCEEDED")] == [0, 1, 2]
    (failed,) = entries("FAILED")
    assert json.loads(failed["Input"])["i"] == 3 and failed["Status"] == "FAILED"


def test_without_boto3_a_definition_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("orchestrator.engine.items.aws.aws_available", lambda: False)
    definition = _dmap(
        {"P": {"Type": "Pass", "End": True}},
        "P",
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": "b", "Key": "k"},
        },
    )
    with pytest.raises(MissingOptionalDependency) as raised:
        start_workflow(definition, {})
    assert "orchestrator[aws]" in str(raised.value)
    assert isinstance(raised.value, DefinitionError)
    assert raised.value.issues[0].path == "$.States.M.ItemReader"


def test_a_child_stopped_on_its_own_counts_as_aborted(tag: str) -> None:
    """A child that ends however it ends (here stopped by hand) moves its parent: its
    final commit adds the parent's timer."""
    block = {"Type": "Task", "Resource": "block", "End": True}
    handle = start_workflow(
        _dmap({"B": block}, "B", ItemsPath="$.items", ToleratedFailureCount=1),
        {"items": [{"tag": tag, "i": i} for i in range(3)]},
    )
    run = wait_until(lambda: (list_map_runs(handle.execution_id) or [None])[0], 10)
    wait_until(lambda: describe_map_run(run.map_run_arn).counts.total == 3, 10)
    stop_execution(list_map_run_children(run.map_run_arn)[1].execution_id)
    wait_until(lambda: describe_map_run(run.map_run_arn).counts.aborted == 1, 10)
    release(tag)
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert [o and o["i"] for o in result.output] == [0, None, 2]


def test_the_cli_lists_and_shows_map_runs(orchestrator: Any) -> None:
    import os
    import subprocess
    import sys

    handle = start_workflow(
        _dmap({"P": {"Type": "Pass", "End": True}}, "P", ItemsPath="$.items", Label="Cli"),
        {"items": [1, 2, 3]},
    )
    assert handle.result(20).status == "SUCCEEDED"
    env = {
        **os.environ,
        "REDIS_URL": orchestrator.settings.redis_url,
        "ORCHESTRATOR_KEY_PREFIX": orchestrator.settings.key_prefix,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "orchestrator", "map-runs", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    listed = cli("list", handle.execution_id, "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert run["label"] == "Cli" and run["counts"]["succeeded"] == 3
    shown = cli("show", run["map_run_arn"], "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert [c["status"] for c in body["children"]] == ["SUCCEEDED"] * 3
    assert cli("show", "arn:nothing").returncode == 1


def test_every_call_of_a_map_run_touches_one_slot(monitor: Any, tag: str) -> None:
    """A Map Run moves its parent and its children in separate calls, each on one slot: a
    child's end adds the parent's timer in its own partition, and beat moves the timer
    to the parent's (a ZADD there, then a ZREM from the child's partition)."""
    from tests.redis_monitor import grouped_calls, named_keys, slots

    items = [{"i": i, "tag": tag, "fail": i == 2} for i in range(6)]
    handle = start_workflow(
        _dmap({"T": _gauge()}, "T", ItemsPath="$.items", MaxConcurrency=2), {"items": items}
    )
    assert handle.result(30).status == "FAILED"
    calls = grouped_calls(monitor.stop())
    keys = get_store().keys
    seen: set[str] = set()
    for call in calls:
        named = named_keys(call, keys.prefix)
        seen |= named
        if keys.machines in named:
            continue  # the registry: not this test's
        assert len(slots(named)) <= 1, call.commands
    children = list_map_run_children(list_map_runs(handle.execution_id)[0].map_run_arn)
    executions = [handle.execution_id, *(c.execution_id for c in children)]
    assert {keys.execution(execution_id) for execution_id in executions} <= seen


def test_a_parent_that_times_out_aborts_its_children(tag: str) -> None:
    block = {"Type": "Task", "Resource": "block", "End": True}
    definition = _dmap({"B": block}, "B", ItemsPath="$.items")
    definition["TimeoutSeconds"] = 1
    handle = start_workflow(definition, {"items": [{"tag": tag, "i": i} for i in range(3)]})
    assert handle.result(20).status == "TIMED_OUT"
    (run,) = list_map_runs(handle.execution_id)
    # Aborted in the end's own write, as a stop writes it: MapRunAborted before the end.
    history = get_execution_history(handle.execution_id)
    assert [e.type for e in history[-2:]] == ["MapRunAborted", "ExecutionTimedOut"]
    assert history[-2].details["mapRunArn"] == run.map_run_arn
    children = list_map_run_children(run.map_run_arn)
    release(tag)  # a child that finished its task first ends and moves the stale run
    wait_until(lambda: describe_map_run(run.map_run_arn).status == "ABORTED", 15)

    def children_ended() -> set[str]:
        statuses = {describe_execution(c.execution_id).status for c in children}
        return statuses if "RUNNING" not in statuses else set()

    # The run reads ABORTED first; its children are stopped one by one after it (each a
    # commit of its own execution).
    assert wait_until(children_ended, 15) <= {"ABORTED", "SUCCEEDED"}


def test_a_stop_records_map_run_aborted_with_the_run_in_one_write(tag: str) -> None:
    """As Step Functions: the parent's history holds MapRunAborted (its ARN) before
    ExecutionAborted, and the run reads ABORTED as soon as the stop returns."""
    block = {"Type": "Task", "Resource": "block", "End": True}
    items = [{"tag": tag, "i": i} for i in range(2)]
    handle = start_workflow(_dmap({"B": block}, "B", ItemsPath="$.items"), {"items": items})
    run = wait_until(lambda: (list_map_runs(handle.execution_id) or [None])[0], 10)
    wait_until(lambda: describe_map_run(run.map_run_arn).counts.total == 2, 10)
    try:
        stop_execution(handle.execution_id)
        assert describe_map_run(run.map_run_arn).status == "ABORTED"
        history = get_execution_history(handle.execution_id)
        assert [e.type for e in history[-2:]] == ["MapRunAborted", "ExecutionAborted"]
        assert history[-2].state == "M"
        assert history[-2].details["mapRunArn"] == run.map_run_arn
    finally:
        release(tag)


def test_a_parent_failed_by_another_branch_aborts_its_children_at_once(tag: str) -> None:
    """The parent's end (here a Parallel whose other branch fails) aborts the running
    children without waiting for one of them to end."""
    block = {"Type": "Task", "Resource": "block", "End": True}
    dmap = _dmap({"B": block}, "B", ItemsPath="$.items")["States"]["M"]
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "M", "States": {"M": dmap}},
                    {
                        "StartAt": "W",
                        "States": {
                            "W": {"Type": "Wait", "Seconds": 1, "Next": "F"},
                            "F": {"Type": "Fail", "Error": "Other", "Cause": "boom"},
                        },
                    },
                ],
            }
        },
    }
    handle = start_workflow(definition, {"items": [{"tag": tag, "i": i} for i in range(3)]})
    try:
        result = handle.result(10)
        assert result.status == "FAILED" and result.error == "Other", result
        (run,) = list_map_runs(handle.execution_id)
        history = get_execution_history(handle.execution_id)
        assert [e.type for e in history[-2:]] == ["MapRunAborted", "ExecutionFailed"]
        assert history[-2].details["mapRunArn"] == run.map_run_arn
        assert describe_map_run(run.map_run_arn).status == "ABORTED"
        children = list_map_run_children(run.map_run_arn)
        assert children
        # No child has ended (their tasks still block): the parent's end alone aborts them.
        wait_until(lambda: describe_map_run(run.map_run_arn).status == "ABORTED", 3)
        wait_until(
            lambda: all(describe_execution(c.execution_id).status == "ABORTED" for c in children),
            3,
        )
    finally:
        release(tag)


def test_an_item_reader_that_cannot_read_fails_the_map(s3: Any, tag: str) -> None:
    definition = _dmap(
        {"P": {"Type": "Pass", "End": True}},
        "P",
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": "dmap", "Key": f"{tag}/missing.jsonl"},
        },
        Catch=[{"ErrorEquals": ["States.ItemReaderFailed"], "Next": "Caught"}],
    )
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    handle = start_workflow(definition, {})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output["Error"] == "States.ItemReaderFailed"
    assert "MapRunFailed" in _events(handle.execution_id)


def test_a_jsonata_distributed_map() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Items": "{% $states.input.values %}",
                "ItemSelector": {
                    "v": "{% $states.context.Map.Item.Value %}",
                    "at": "{% $states.context.Map.Item.Index %}",
                },
                "MaxConcurrency": "{% $states.input.limit %}",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                    "StartAt": "P",
                    "States": {
                        "P": {
                            "Type": "Pass",
                            "Output": "{% $states.input.v * 10 + $states.input.at %}",
                            "End": True,
                        }
                    },
                },
                "Output": "{% $sum($states.result) %}",
                "End": True,
            }
        },
    }
    result = start_workflow(definition, {"values": [1, 2, 3], "limit": 2}).result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output == 10 + 21 + 32


def _result_files(s3: Any, manifest_key: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The manifest at ``manifest_key`` (waited for) and each group's entries in order."""

    def read_manifest() -> Any:
        listed = s3.list_objects_v2(Bucket="dmap", Prefix=manifest_key).get("Contents")
        return listed and json.loads(s3.get_object(Bucket="dmap", Key=manifest_key)["Body"].read())

    manifest = wait_until(read_manifest, 10)
    groups = {
        group: [
            entry
            for file in files
            for entry in json.loads(s3.get_object(Bucket="dmap", Key=file["Key"])["Body"].read())
        ]
        for group, files in manifest["ResultFiles"].items()
    }
    return manifest, groups


def test_a_failed_run_writes_the_items_it_never_started_as_pending(
    s3: Any, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Step Functions: the items a failed Map Run never started are PENDING entries
    (their Input as the child would have had it, ItemSelector applied), in PENDING_n.json
    files the manifest lists; read a page at a time, also when a Catch of the failure has
    taken the Map's stored items away."""
    monkeypatch.setattr(maprun, "READ_PAGE", 3)  # the pending items in several pages
    items = [{"i": i, "tag": tag, "fail": i == 1} for i in range(9)]
    definition = _dmap(
        {"T": _gauge()},
        "T",
        ItemsPath="$.items",
        ItemSelector={
            "i.$": "$$.Map.Item.Value.i",
            "tag.$": "$.tag",
            "fail.$": "$$.Map.Item.Value.fail",
        },
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "dmap", "Prefix": f"{tag}/out"},
        },
        MaxConcurrency=1,
        Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
    )
    definition["States"]["M"].pop("End")
    definition["States"]["M"]["Next"] = "Done"
    definition["States"]["Done"] = {"Type": "Pass", "End": True}
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    handle = start_workflow(definition, {"items": items, "tag": tag})
    result = handle.result(20)
    assert result.status == "SUCCEEDED" and result.output["Error"] == (
        "States.ExceedToleratedFailureThreshold"
    ), result
    (run,) = list_map_runs(handle.execution_id)
    run_id = run.map_run_arn.rsplit(":", 1)[-1]
    manifest, groups = _result_files(s3, f"{tag}/out/{run_id}/manifest.json")
    assert [f["Key"] for f in manifest["ResultFiles"]["PENDING"]] == [
        f"{tag}/out/{run_id}/PENDING_0.json"
    ]
    assert [json.loads(e["Input"])["i"] for e in groups["SUCCEEDED"]] == [0]
    assert [json.loads(e["Input"])["i"] for e in groups["FAILED"]] == [1]
    pending = groups["PENDING"]
    assert [json.loads(e["Input"]) for e in pending] == [
        {"i": i, "tag": tag, "fail": False} for i in range(2, 9)
    ]
    assert {e["Status"] for e in pending} == {"PENDING"}
    assert not any("ExecutionArn" in e or "StartDate" in e for e in pending)


def test_a_stopped_run_writes_its_results_with_the_pending_items(
    s3: Any, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aborted Map Run (here a stop) writes its results too: the aborted children as
    FAILED entries, the items of the S3 reader it never started as PENDING batches."""
    monkeypatch.setattr(maprun, "READ_PAGE", 2)
    lines = "\n".join(json.dumps({"i": i, "tag": tag}) for i in range(11))
    s3.put_object(Bucket="dmap", Key=f"{tag}/in.jsonl", Body=lines.encode())
    definition = _dmap(
        {"B": {"Type": "Task", "Resource": "block", "Parameters": {"tag": tag}, "End": True}},
        "B",
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": "dmap", "Key": f"{tag}/in.jsonl"},
        },
        ItemBatcher={"MaxItemsPerBatch": 2},
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "dmap", "Prefix": f"{tag}/out"},
        },
        MaxConcurrency=2,
    )
    handle = start_workflow(definition, {})
    try:
        run = wait_until(lambda: (list_map_runs(handle.execution_id) or [None])[0], 10)
        wait_until(lambda: describe_map_run(run.map_run_arn).counts.running == 2, 10)
        stop_execution(handle.execution_id)
    finally:
        release(tag)
    run_id = run.map_run_arn.rsplit(":", 1)[-1]
    manifest, groups = _result_files(s3, f"{tag}/out/{run_id}/manifest.json")
    assert manifest["MapRunArn"] == run.map_run_arn
    assert groups["SUCCEEDED"] == []
    assert [json.loads(e["Input"])["Items"] for e in groups["FAILED"]] == [
        [{"i": 0, "tag": tag}, {"i": 1, "tag": tag}],
        [{"i": 2, "tag": tag}, {"i": 3, "tag": tag}],
    ]
    assert {e["Status"] for e in groups["FAILED"]} == {"ABORTED"}
    assert [[item["i"] for item in json.loads(e["Input"])["Items"]] for e in groups["PENDING"]] == [
        [4, 5],
        [6, 7],
        [8, 9],
        [10],
    ]


def test_a_map_run_in_an_abandoned_branch_is_aborted(tag: str) -> None:
    """A Parallel whose other branch fails, caught: the execution goes on, and the Map
    Run in the branch it left behind is aborted at once (MapRunAborted, children
    stopped), as the inline steps of that branch are abandoned."""
    block = {"Type": "Task", "Resource": "block", "End": True}
    dmap = _dmap({"B": block}, "B", ItemsPath="$.items")["States"]["M"]
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Next": "Done",
                "Catch": [{"ErrorEquals": ["Other"], "ResultPath": "$.error", "Next": "After"}],
                "Branches": [
                    {"StartAt": "M", "States": {"M": dmap}},
                    {
                        "StartAt": "W",
                        "States": {
                            "W": {"Type": "Wait", "Seconds": 1, "Next": "F"},
                            "F": {"Type": "Fail", "Error": "Other", "Cause": "boom"},
                        },
                    },
                ],
            },
            # The execution goes on after the Catch, until the test lets it end.
            "After": {"Type": "Task", "Resource": "block", "InputPath": "$.after", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    items = [{"tag": tag, "i": i} for i in range(3)]
    handle = start_workflow(definition, {"items": items, "after": {"tag": f"{tag}-after"}})
    try:
        run = wait_until(lambda: (list_map_runs(handle.execution_id) or [None])[0], 10)
        wait_until(lambda: "MapRunAborted" in _events(handle.execution_id), 5)
        assert describe_execution(handle.execution_id).status == "RUNNING"
        assert describe_map_run(run.map_run_arn).status == "ABORTED"
        (aborted,) = [
            e for e in get_execution_history(handle.execution_id) if e.type == "MapRunAborted"
        ]
        assert aborted.details["mapRunArn"] == run.map_run_arn
        children = list_map_run_children(run.map_run_arn)
        assert children
        wait_until(
            lambda: all(describe_execution(c.execution_id).status == "ABORTED" for c in children),
            5,
        )
    finally:
        release(tag)
        release(f"{tag}-after")
    assert handle.result(20).status == "SUCCEEDED"
    assert _events(handle.execution_id).count("MapRunAborted") == 1


def test_a_stop_before_the_first_advance_records_map_run_aborted_once(tag: str) -> None:
    """A stop between MapRunStarted and the run's first advance (no advance is let
    through here) aborts the run in its write, MapRunAborted once; the advance that
    comes later finds the parent stopped and writes nothing more."""
    real = maprun.advance
    held: list[str] = []

    def holding(store: Any, parent: str, *args: Any, **kwargs: Any) -> Any:
        if parent == handle_id[0] and not released:
            held.append(parent)
            raise RuntimeError("held back by the test")
        return real(store, parent, *args, **kwargs)

    handle_id = [f"held-{tag}"]
    released = False
    maprun.RETRY_BROKEN_S, old_retry = 0.2, maprun.RETRY_BROKEN_S
    maprun.advance = holding  # type: ignore[assignment]
    try:
        items = [{"tag": tag, "i": i} for i in range(3)]
        definition = _dmap({"B": {"Type": "Task", "Resource": "block", "End": True}}, "B")
        definition["States"]["M"]["ItemsPath"] = "$.items"
        handle = start_workflow(definition, {"items": items}, name=handle_id[0])
        wait_until(lambda: "MapRunStarted" in _events(handle.execution_id), 5)
        stop_execution(handle.execution_id)
        history = get_execution_history(handle.execution_id)
        assert [e.type for e in history[-2:]] == ["MapRunAborted", "ExecutionAborted"]
        (run,) = list_map_runs(handle.execution_id)
        assert history[-2].details["mapRunArn"] == run.map_run_arn
        assert describe_map_run(run.map_run_arn).status == "ABORTED"
    finally:
        released = True
        maprun.advance = real  # type: ignore[assignment]
        maprun.RETRY_BROKEN_S = old_retry
        release(tag)
    store = get_store()
    # The advance held back comes due again and finds the parent stopped.
    wait_until(
        lambda: (
            not [m for m in store.due_timers(time.time() + 60, 1000) if handle.execution_id in m]
        ),
        10,
    )
    assert _events(handle.execution_id).count("MapRunAborted") == 1
    assert list_map_run_children(run.map_run_arn) == []


def _express(definition: dict[str, Any]) -> dict[str, Any]:
    config = definition["States"]["M"]["ItemProcessor"]["ProcessorConfig"]
    config["ExecutionType"] = "EXPRESS"
    return definition


def test_express_children_keep_no_state_history(tag: str) -> None:
    """As Step Functions' Express executions: an EXPRESS child's history holds its own
    start and end (input, output), none of its states' events; describe says so."""
    items = [{"i": i, "tag": tag} for i in range(4)]
    states = {
        "T": {"Type": "Task", "Resource": "gauge", "Next": "P"},
        "P": {"Type": "Pass", "End": True},
    }
    definition = _express(_dmap(states, "T", ItemsPath="$.items"))
    handle = start_workflow(definition, {"items": items})
    result = handle.result(30)
    assert result.status == "SUCCEEDED", result
    assert result.output == [i * 2 for i in range(4)]
    (run,) = list_map_runs(handle.execution_id)
    assert describe_map_run(run.map_run_arn).execution_type == "EXPRESS"
    children = list_map_run_children(run.map_run_arn)
    assert len(children) == 4
    for index, child in enumerate(children):
        history = get_execution_history(child.execution_id)
        assert [e.type for e in history] == ["ExecutionStarted", "ExecutionSucceeded"]
        described = describe_execution(child.execution_id)
        assert described.execution_type == "EXPRESS"
        assert described.input == items[index] and described.output == index * 2
    # The parent keeps its own history as ever.
    assert "MapRunSucceeded" in _events(handle.execution_id)
    assert describe_execution(handle.execution_id).execution_type == "STANDARD"


def test_an_express_child_over_its_time_limit_times_out(
    tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EXPRESS child runs at most 5 minutes (here 1 s): past it, it times out with
    States.Timeout and its Map Run counts it as timed out."""
    monkeypatch.setattr(maprun, "EXPRESS_MAX_SECONDS", 1)
    block = {"Type": "Task", "Resource": "block", "End": True}
    definition = _express(_dmap({"B": block}, "B", ItemsPath="$.items"))
    definition["States"]["M"]["ToleratedFailurePercentage"] = 100
    items = [{"tag": tag, "i": i} for i in range(2)]
    handle = start_workflow(definition, {"items": items})
    try:
        result = handle.result(20)
    finally:
        release(tag)
    assert result.status == "SUCCEEDED", result
    (run,) = list_map_runs(handle.execution_id)
    assert describe_map_run(run.map_run_arn).counts.timed_out == 2
    for child in list_map_run_children(run.map_run_arn):
        described = describe_execution(child.execution_id)
        assert described.status == "TIMED_OUT" and described.error == "States.Timeout"
        assert [e.type for e in get_execution_history(child.execution_id)] == [
            "ExecutionStarted",
            "ExecutionTimedOut",
        ]


class _HeldAdvances:
    """Hold back every Map Run advance of one execution (as if beat had not come to it
    yet) until :meth:`release`; the advances held are tried again soon after."""

    def __init__(self, execution_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.execution_id, self.held = execution_id, True
        real = maprun.advance

        def holding(store: Any, parent: str, *args: Any, **kwargs: Any) -> Any:
            if parent == self.execution_id and self.held:
                raise RuntimeError("held back by the test")
            return real(store, parent, *args, **kwargs)

        monkeypatch.setattr(maprun, "RETRY_BROKEN_S", 0.2)
        monkeypatch.setattr(maprun, "advance", holding)

    def release(self) -> None:
        self.held = False


def _parallel_around_dmap(tag: str, catch: bool) -> dict[str, Any]:
    block = {"Type": "Task", "Resource": "block", "End": True}
    dmap = _dmap({"B": block}, "B", ItemsPath="$.items")["States"]["M"]
    parallel: dict[str, Any] = {
        "Type": "Parallel",
        "Branches": [
            {"StartAt": "M", "States": {"M": dmap}},
            {
                "StartAt": "W",
                "States": {
                    "W": {"Type": "Wait", "Seconds": 1, "Next": "F"},
                    "F": {"Type": "Fail", "Error": "Other", "Cause": "boom"},
                },
            },
        ],
    }
    states: dict[str, Any] = {"P": parallel}
    if catch:
        parallel["Catch"] = [{"ErrorEquals": ["Other"], "ResultPath": "$.error", "Next": "After"}]
        parallel["End"] = True
        states["After"] = {"Type": "Task", "Resource": "block", "InputPath": "$.after", "End": True}
    else:
        parallel["End"] = True
    return {"StartAt": "P", "States": states}


def test_a_parent_failing_before_the_first_advance_aborts_the_run(
    tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent fails (another branch) before its Map Run's first advance: its end's
    write still aborts the run, MapRunAborted before ExecutionFailed; no child starts."""
    name = f"unadvanced-failed-{tag}"
    held = _HeldAdvances(name, monkeypatch)
    items = [{"tag": tag, "i": i} for i in range(2)]
    handle = start_workflow(_parallel_around_dmap(tag, catch=False), {"items": items}, name=name)
    result = handle.result(10)
    assert result.status == "FAILED" and result.error == "Other", result
    history = get_execution_history(handle.execution_id)
    assert [e.type for e in history[-2:]] == ["MapRunAborted", "ExecutionFailed"]
    (run,) = list_map_runs(handle.execution_id)
    assert history[-2].details["mapRunArn"] == run.map_run_arn
    assert describe_map_run(run.map_run_arn).status == "ABORTED"
    held.release()
    store = get_store()
    wait_until(lambda: not [m for m in store.due_timers(time.time() + 60, 1000) if name in m], 10)
    assert list_map_run_children(run.map_run_arn) == []
    assert _events(handle.execution_id).count("MapRunAborted") == 1


def test_a_run_abandoned_before_its_first_advance_is_aborted(
    tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The branch of a Map Run not advanced yet is abandoned (the Parallel's failure is
    caught, the execution goes on): the run is aborted (MapRunAborted), no child starts."""
    name = f"unadvanced-abandoned-{tag}"
    held = _HeldAdvances(name, monkeypatch)
    items = [{"tag": tag, "i": i} for i in range(2)]
    definition = _parallel_around_dmap(tag, catch=True)
    handle = start_workflow(
        definition, {"items": items, "after": {"tag": f"{tag}-after"}}, name=name
    )
    try:
        wait_until(lambda: "ParallelStateFailed" in _events(handle.execution_id), 10)
        held.release()
        wait_until(lambda: "MapRunAborted" in _events(handle.execution_id), 10)
        assert describe_execution(handle.execution_id).status == "RUNNING"
        (run,) = list_map_runs(handle.execution_id)
        assert describe_map_run(run.map_run_arn).status == "ABORTED"
        assert list_map_run_children(run.map_run_arn) == []
    finally:
        release(f"{tag}-after")
        release(tag)
    assert handle.result(20).status == "SUCCEEDED"
    assert _events(handle.execution_id).count("MapRunAborted") == 1
