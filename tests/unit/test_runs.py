"""Straight runs: which Task states the interpreter plans to chain after a dispatched one."""

from __future__ import annotations

from orchestrator.language.definition import parse_definition
from orchestrator.language.runs import MAX_RUN_LENGTH, RunStep, straight_run


def states(definition: dict) -> dict:
    return dict(parse_definition(definition).states)


LINEAR = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Task", "Resource": "a", "Next": "B"},
        "B": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:b", "Next": "C"},
        "C": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "D"}],
            "Default": "D",
        },
        "D": {"Type": "Task", "Resource": "d", "Next": "E"},
        "E": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "e"},
            "End": True,
        },
    },
}


def resolve(state) -> str:  # type: ignore[no-untyped-def]
    return state.resource.rsplit(":", 1)[-1]


def test_run_follows_next_through_task_states_only() -> None:
    run = straight_run(states(LINEAR), "", "A", "a", resolve)
    assert run == [RunStep("A", "a"), RunStep("B", "b")]


def test_run_stops_before_a_task_whose_activity_is_known_only_at_run_time() -> None:
    run = straight_run(states(LINEAR), "", "D", "d", resolve)
    assert run == [RunStep("D", "d")]


def test_run_keeps_scope_prefix_and_given_first_activity() -> None:
    run = straight_run(states(LINEAR), "P[1]/", "A", "override", resolve)
    assert [s.step_key for s in run] == ["P[1]/A", "P[1]/B"]
    assert run[0].activity == "override"


def test_a_callback_task_runs_alone() -> None:
    # Chained, it would get its input (task token included) as the return value of the
    # task before it, which Celery's task-succeeded event shows.
    callback = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "a", "Next": "CB"},
            "CB": {"Type": "Task", "Resource": "cb.waitForTaskToken", "Next": "B"},
            "B": {"Type": "Task", "Resource": "b", "End": True},
        },
    }
    assert straight_run(states(callback), "", "A", "a", resolve) == [RunStep("A", "a")]
    assert straight_run(states(callback), "", "CB", "cb", resolve) == [RunStep("CB", "cb")]


def test_run_is_bounded_and_stops_on_loops() -> None:
    many = {f"S{i}": {"Type": "Task", "Resource": "x", "Next": f"S{i + 1}"} for i in range(40)}
    many["S40"] = {"Type": "Task", "Resource": "x", "Next": "S0"}
    run = straight_run(states({"StartAt": "S0", "States": many}), "", "S0", "x", resolve)
    assert len(run) == MAX_RUN_LENGTH
    loop = {
        "A": {"Type": "Task", "Resource": "x", "Next": "B"},
        "B": {"Type": "Task", "Resource": "x", "Next": "A"},
    }
    assert len(straight_run(states({"StartAt": "A", "States": loop}), "", "A", "x", resolve)) == 2
