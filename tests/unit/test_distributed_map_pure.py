"""The pure parts of the Distributed Map: validation, child ids, Map Run ARNs, the
tolerated-failure rule, the interpreter's Map Run start and end."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine.maprun import (
    check_definition,
    child_id,
    notify_member,
    parse_map_run_arn,
    tolerance_exceeded,
)
from orchestrator.errors import DefinitionError, MissingOptionalDependency
from orchestrator.language.definition import parse_definition
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
    MapRunTimer,
    Reader,
    StepRecord,
    map_run_arn,
)
from orchestrator.language.slots import Slot

EXECUTION_NAME = __import__("orchestrator.client.inputs", fromlist=["x"]).EXECUTION_NAME


def _dmap(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
                **fields,
            }
        },
    }


def _issues(definition: dict[str, Any]) -> list[str]:
    try:
        parse_definition(definition)
    except DefinitionError as exc:
        return [f"{issue.path}: {issue.message}" for issue in exc.issues]
    return []


def test_distributed_fields_need_a_distributed_map() -> None:
    inline = _dmap(ItemBatcher={"MaxItemsPerBatch": 2})
    del inline["States"]["M"]["ItemProcessor"]["ProcessorConfig"]
    assert _issues(inline) == [
        "$.States.M.ItemBatcher: field 'ItemBatcher' needs a Distributed Map "
        "(ItemProcessor.ProcessorConfig.Mode: DISTRIBUTED)"
    ]
    assert _issues(_dmap(ItemBatcher={"MaxItemsPerBatch": 2}, Label="Fan")) == []


def test_batcher_writer_label_and_concurrency_are_checked() -> None:
    issues = _issues(
        _dmap(
            ItemBatcher={"MaxItemsPerBatch": 0, "MaxItems": 3},
            ResultWriter={"Resource": "arn:aws:states:::s3:getObject", "Parameters": {}},
            Label="has space",
            MaxConcurrency=10_001,
        )
    )
    assert "$.States.M.ItemBatcher.MaxItemsPerBatch: must be >= 1, not 0" in issues
    assert any(i.startswith("$.States.M.ItemBatcher.MaxItems: unknown field") for i in issues)
    assert "$.States.M.ResultWriter.Resource: must be 'arn:aws:states:::s3:putObject'" in issues
    assert "$.States.M.ResultWriter: needs Parameters (Arguments) with a Bucket" in issues
    assert any(i.startswith("$.States.M.Label: must be 1-40 characters") for i in issues)
    assert "$.States.M.MaxConcurrency: must be at most 10000 in a Distributed Map" in issues


def test_the_engine_checks_the_reader_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "XML"},
        "Parameters": {"Bucket": "b", "Key": "k"},
    }
    machine = parse_definition(_dmap(ItemReader=reader))
    monkeypatch.setattr("orchestrator.engine.items.aws.aws_available", lambda: True)
    with pytest.raises(DefinitionError) as raised:
        check_definition(machine)
    assert raised.value.issues[0].path.startswith("$.States.M.ItemReader")
    monkeypatch.setattr("orchestrator.engine.items.aws.aws_available", lambda: False)
    with pytest.raises(MissingOptionalDependency, match=r"orchestrator\[aws\]"):
        check_definition(machine)


def test_child_ids_are_valid_execution_ids_of_at_most_80_characters() -> None:
    assert child_id("order-1", "abc123", 7) == "order-1.abc123.7"
    long = child_id("p" * 80, "abcdef012345", 123_456)
    assert len(long) == 80 and long.endswith(".abcdef012345.123456")
    assert long != child_id("p" * 79 + "q", "abcdef012345", 123_456)
    assert EXECUTION_NAME.match(long) and EXECUTION_NAME.match(child_id("a.b-c", "r", 0))


def test_a_map_run_arn_names_its_execution_and_run() -> None:
    arn = map_run_arn("orders", "Fan", "exec.1", "abc")
    assert arn.endswith(":mapRun:orders/Fan:exec.1.abc")
    assert parse_map_run_arn(arn) == ("exec.1", "abc")
    assert parse_map_run_arn("arn:aws:states:x:1:execution:y") is None


def test_each_end_of_a_redriven_child_is_its_own_timer() -> None:
    assert notify_member("p", "M", "r", 3, 0) != notify_member("p", "M", "r", 3, 1)
    assert notify_member("p", "M", "r", 3, 0).startswith(f'["{MapRunTimer.CHILD_ENDED}",')


@pytest.mark.parametrize(
    ("count", "percentage", "failures", "total", "exceeded"),
    [
        (None, None, 0, 10, False),
        (None, None, 1, 10, True),
        (2, None, 2, None, False),
        (2, None, 3, None, True),
        (None, 20, 2, 10, False),
        (None, 20, 3, 10, True),
        (None, 20, 3, None, False),  # a percentage waits for the total
        (5, 20, 3, 10, False),  # over the percentage, within the count
        (1, 50, 3, 10, False),
        (1, 20, 3, 10, True),
    ],
)
def test_tolerated_failures(
    count: float | None, percentage: float | None, failures: int, total: int | None, exceeded: bool
) -> None:
    assert tolerance_exceeded(count, percentage, failures, total) is exceeded


class _Empty(Reader):
    def get(self, slot: Slot) -> str | None:
        return None


def _interpreter(definition: dict[str, Any], execution_input: Any) -> Interpreter:
    machine = parse_definition(definition)
    info = ExecutionInfo("x", "x", "wf", 0.0, execution_input)
    interp = Interpreter(machine, info, lambda _: None)
    interp.reader = _Empty()
    return interp


def test_a_map_run_starts_with_its_items_stored_and_an_advance_timer() -> None:
    interp = _interpreter(
        _dmap(
            ItemsPath="$.items",
            MaxConcurrency=3,
            ToleratedFailurePercentage=10,
            ItemBatcher={"MaxItemsPerBatch": 2, "BatchInput": {"k.$": "$.k"}},
        ),
        {"items": [1, 2, 3], "k": 7},
    )
    tr = interp.start(1.0)
    assert [e["type"] for e in tr.events] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
    ]
    record = tr.records["M"]
    assert record is not None and record.kind == "maprun" and record.run is not None
    assert record.run["max"] == 3 and record.tolerated_percentage == 10
    assert record.run["batch"] == {"items": 2, "bytes": None, "input": {"k": 7}}
    assert tr.changes[Slot.item_input("M", 2)] == "3"  # the items, for the engine to page
    assert (1.0, [MapRunTimer.ADVANCE, "M", 0]) in tr.timers
    assert not tr.dispatches


def test_a_map_run_ends_through_the_map_state() -> None:
    interp = _interpreter(_dmap(ItemsPath="$.items", ResultPath="$.out"), {"items": [1, 2]})
    start = interp.start(1.0)
    record = start.records["M"]
    assert isinstance(record, StepRecord)
    done = interp.map_run_succeeded("M", record, [1, 2], 2.0)
    types = [e["type"] for e in done.events]
    assert types[:3] == ["MapRunSucceeded", "MapStateSucceeded", "MapStateExited"]
    assert done.end is not None and done.end["output"]["out"] == [1, 2]
    failed = interp.map_run_failed("M", record, "States.ExceedToleratedFailureThreshold", "x", 2.0)
    assert [e["type"] for e in failed.events][:2] == ["MapRunFailed", "MapStateFailed"]
    assert (
        failed.end is not None and failed.end["error"] == "States.ExceedToleratedFailureThreshold"
    )


def test_a_map_runs_timers_fire_in_one_process() -> None:
    """A batch of due timers split between the firing processes keeps each Map Run's
    timers (its advance and its children's ends) in one chunk, and the other timers in
    their order; no chunk is empty and nothing is lost or repeated."""
    from orchestrator.engine.records import timer_member
    from orchestrator.engine.timers import split_members

    runs = {
        ("p1", "Map"): [timer_member(MapRunTimer.ADVANCE, "p1", "Map", 0)]
        + [notify_member("p1", "Map", "r1", i, 0) for i in range(120)],
        ("p1", "Other"): [notify_member("p1", "Other", "r2", i, 0) for i in range(30)],
        ("p2", "Map"): [notify_member("p2", "Map", "r3", i, 1) for i in range(70)],
    }
    others = [timer_member("retry", f"e{i}", "Task", 1) for i in range(80)]
    members = [m for pair in zip(*runs.values(), strict=False) for m in pair]
    members += [m for timers in runs.values() for m in timers[30:]] + others
    members = list(dict.fromkeys(members))
    assert len(members) == 121 + 30 + 70 + 80
    for chunks in (1, 2, 3, 4):
        split = split_members(members, chunks)
        assert 1 <= len(split) <= chunks and all(split)
        assert sorted(m for chunk in split for m in chunk) == sorted(members)
        for timers in runs.values():
            assert sum(1 for chunk in split if set(timers) & set(chunk)) == 1
        assert [m for chunk in split for m in chunk if m in others] == others
    assert split_members([], 3) == []
