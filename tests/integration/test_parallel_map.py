"""Parallel and Map states end to end: real Redis, real worker, real timers."""

from __future__ import annotations

import time

import pytest

import tests.control_activities  # noqa: F401 - registers the ctl_* activities before the worker starts
from orchestrator.language.interpreter import MAP_REFILL, MAP_WINDOW
from tests.control_activities import cget
from tests.helpers import count_events, machine, run_workflow, task

pytestmark = pytest.mark.usefixtures("orchestrator")


def branch(states: dict, start: str | None = None) -> dict:
    return {"StartAt": start or next(iter(states)), "States": states}


def pass_state(result, **fields) -> dict:
    state = {"Type": "Pass", "Result": result, **fields}
    if "Next" not in state:
        state["End"] = True
    return state


# -- Parallel ---------------------------------------------------------------------------


def test_parallel_output_in_branch_order(tag):
    # The first branch is the slowest: the output order must still be branch order.
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    branch(
                        {
                            "Slow": task(
                                "ctl_concurrent",
                                Parameters={"tag": tag, "seconds": 0.5, "item": "a"},
                            )
                        }
                    ),
                    branch({"B": pass_state("b")}),
                    branch({"C": task("echo", Parameters={"v": "c"})}),
                ],
            }
        }
    )
    _, result = run_workflow(definition, {"x": 1}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == ["a", "b", {"v": "c"}]


def test_parallel_failing_branch_is_caught(tag):
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "Next": "Done",
                "Branches": [
                    branch({"Ok": task("echo")}),
                    branch(
                        {"Bad": task("fail", Parameters={"error": "BranchBoom", "cause": "b2"})}
                    ),
                ],
                "Catch": [
                    {"ErrorEquals": ["BranchBoom"], "ResultPath": "$.err", "Next": "Handled"}
                ],
            },
            "Done": pass_state("not reached"),
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    handle, result = run_workflow(definition, {"in": 1}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output["in"] == 1
    assert result.output["err"]["Error"] == "BranchBoom"
    assert result.output["err"]["Cause"] == "b2"


def test_parallel_failing_branch_uncaught_fails_with_its_error():
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    branch({"Ok": pass_state(1)}),
                    branch({"Bad": {"Type": "Fail", "Error": "BranchFail", "Cause": "c"}}),
                ],
            }
        }
    )
    _, result = run_workflow(definition, timeout=30)
    assert (result.status, result.error, result.cause) == ("FAILED", "BranchFail", "c")


def test_parallel_retry(tag):
    # The branch fails once; the Parallel (not the Task) retries and its second run succeeds.
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [branch({"F": task("flaky", Parameters={"tag": tag, "fail": 1})})],
                "Retry": [{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            }
        }
    )
    handle, result = run_workflow(definition, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output[0]["attempt"] == 2
    from tests.activities import counter

    assert counter("calls", tag) == 2


def test_parallel_with_nested_choice_wait_map(tag):
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    branch(
                        {
                            "C": {
                                "Type": "Choice",
                                "Choices": [
                                    {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}
                                ],
                                "Default": "Small",
                            },
                            "Big": pass_state("big"),
                            "Small": pass_state("small"),
                        }
                    ),
                    branch(
                        {
                            "W": {"Type": "Wait", "Seconds": 1, "Next": "After"},
                            "After": pass_state("waited"),
                        }
                    ),
                    branch(
                        {
                            "M": {
                                "Type": "Map",
                                "ItemsPath": "$.items",
                                "ItemProcessor": branch({"Add": task("add")}),
                                "End": True,
                            }
                        }
                    ),
                ],
            }
        }
    )
    handle, result = run_workflow(
        definition, {"n": 2, "items": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}, timeout=30
    )
    assert result.status == "SUCCEEDED", result
    assert result.output == ["big", "waited", [3, 7]]
    history = handle.history()
    assert count_events(history, "WaitStateExited") == 1


# -- Map --------------------------------------------------------------------------------


def test_map_items_path_and_item_selector(tag):
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.data.things",
                "ItemSelector": {
                    "value.$": "$$.Map.Item.Value",
                    "index.$": "$$.Map.Item.Index",
                    "ctx.$": "$.ctx",
                },
                "ItemProcessor": branch({"E": task("echo")}),
                "End": True,
            }
        }
    )
    things = ["x", {"k": 1}, 3]
    _, result = run_workflow(definition, {"data": {"things": things}, "ctx": "C"}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == [{"value": v, "index": i, "ctx": "C"} for i, v in enumerate(things)]


def test_map_legacy_parameters_and_iterator():
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "Parameters": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "Iterator": branch({"E": task("echo")}),
                "End": True,
            }
        }
    )
    _, result = run_workflow(definition, {"items": [10, 20]}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == [{"v": 10, "i": 0}, {"v": 20, "i": 1}]


def test_map_output_in_item_order(tag):
    # Early items sleep longest, so they finish last.
    items = [{"tag": tag, "item": i, "seconds": 0.05 * (6 - i)} for i in range(6)]
    definition = machine(
        {"M": {"Type": "Map", "ItemProcessor": branch({"S": task("ctl_concurrent")}), "End": True}}
    )
    _, result = run_workflow(definition, items, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == list(range(6))


def test_map_empty_array():
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": branch({"E": task("echo")}),
                "Next": "After",
            },
            "After": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(definition, {"items": []}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == []


def test_map_max_concurrency_2(tag):
    # The first two items wait for each other: two must run together, never three.
    items = [{"tag": tag, "item": i, "seconds": 0.1, "rendezvous": 2 * (i < 2)} for i in range(8)]
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemProcessor": branch({"S": task("ctl_concurrent")}),
                "End": True,
            }
        }
    )
    _, result = run_workflow(definition, items, timeout=60)
    assert result.status == "SUCCEEDED", result
    assert result.output == list(range(8))
    assert cget("calls", tag) == 8
    assert cget("peak", tag) == 2, "never more than 2 items at once (and 2 did run together)"


def counted_map(tag: str, *, max_concurrency: int) -> dict:
    """A Map whose items each run ``ctl_concurrent`` once (it counts calls and the peak)."""
    return machine(
        {
            "M": {
                "Type": "Map",
                "MaxConcurrency": max_concurrency,
                "ItemSelector": {"tag": tag, "item.$": "$$.Map.Item.Value", "seconds": 0},
                "ItemProcessor": branch({"S": task("ctl_concurrent")}),
                "End": True,
            }
        }
    )


def test_map_1000_items_max_concurrency_50(tag):
    items = list(range(1000))
    definition = counted_map(tag, max_concurrency=50)
    started = time.monotonic()
    _, result = run_workflow(definition, items, timeout=300)
    wall = time.monotonic() - started
    print(f"\n1000-item Map (MaxConcurrency 50): {wall:.2f} s wall")
    assert result.status == "SUCCEEDED", result
    assert result.output == items
    assert cget("calls", tag) == 1000
    assert cget("peak", tag) <= 50


def test_unbounded_map_beyond_its_window_runs_every_item_once(tag):
    # 500 start with the Map; the rest start in batches of 50 as iterations end, with
    # sibling iterations racing to start the same batch (the "|next" guard decides).
    items = list(range(MAP_WINDOW + 3 * MAP_REFILL + 7))
    definition = counted_map(tag, max_concurrency=0)
    _, result = run_workflow(definition, items, timeout=300)
    assert result.status == "SUCCEEDED", result
    assert result.output == items
    assert cget("calls", tag) == len(items)


def _tolerant_map(tag: str, fail: list[int], n: int, **tolerance) -> dict:
    return machine(
        {
            "M": {
                "Type": "Map",
                "ItemSelector": {"tag": tag, "item.$": "$$.Map.Item.Value", "fail": fail},
                "ItemProcessor": branch({"I": task("ctl_item")}),
                "End": True,
                **tolerance,
            }
        }
    )


def test_map_tolerated_failure_count(tag):
    ok = _tolerant_map(tag, [1, 3], 5, ToleratedFailureCount=2)
    _, result = run_workflow(ok, list(range(5)), timeout=30)
    assert result.status == "SUCCEEDED", result
    assert len(result.output) == 5
    assert result.output[0] == {"item": 0, "index": None}

    too_many = _tolerant_map(tag + "b", [1, 3], 5, ToleratedFailureCount=1)
    _, result = run_workflow(too_many, list(range(5)), timeout=30)
    assert result.status == "FAILED", result
    assert result.error == "States.ExceedToleratedFailureThreshold"


def test_map_tolerated_failure_percentage(tag):
    ok = _tolerant_map(tag, [0], 4, ToleratedFailurePercentage=25)
    _, result = run_workflow(ok, list(range(4)), timeout=30)
    assert result.status == "SUCCEEDED", result

    too_many = _tolerant_map(tag + "b", [0, 1], 4, ToleratedFailurePercentage=25)
    _, result = run_workflow(too_many, list(range(4)), timeout=30)
    assert result.status == "FAILED", result
    assert result.error == "States.ExceedToleratedFailureThreshold"


def test_map_in_parallel_in_map():
    inner_map = {
        "Type": "Map",
        "ItemsPath": "$.xs",
        "ItemProcessor": branch({"E": task("echo")}),
        "End": True,
    }
    definition = machine(
        {
            "Outer": {
                "Type": "Map",
                "ItemsPath": "$.groups",
                "ItemProcessor": branch(
                    {
                        "P": {
                            "Type": "Parallel",
                            "End": True,
                            "Branches": [
                                branch({"Inner": inner_map}),
                                branch(
                                    {"Name": {"Type": "Pass", "InputPath": "$.name", "End": True}}
                                ),
                            ],
                        }
                    }
                ),
                "End": True,
            }
        }
    )
    groups = [{"name": "g0", "xs": [1, 2]}, {"name": "g1", "xs": []}, {"name": "g2", "xs": [3]}]
    _, result = run_workflow(definition, {"groups": groups}, timeout=60)
    assert result.status == "SUCCEEDED", result
    assert result.output == [[[1, 2], "g0"], [[], "g1"], [[3], "g2"]]
