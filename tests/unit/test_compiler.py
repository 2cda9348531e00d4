"""Compilation of straight Task runs into flat Celery canvas (no Redis, no app)."""

from __future__ import annotations

from celery.canvas import Signature, _chain, group

from orchestrator.engine.compiler import (
    MAX_RUN_LENGTH,
    RunStep,
    compile_run,
    fan_out,
    run_signature,
)
from orchestrator.language.definition import parse_definition


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
    run = compile_run(states(LINEAR), "", "A", "a", resolve)
    assert run == [RunStep("A", "a"), RunStep("B", "b")]


def test_run_stops_before_a_task_whose_activity_is_known_only_at_run_time() -> None:
    run = compile_run(states(LINEAR), "", "D", "d", resolve)
    assert run == [RunStep("D", "d")]


def test_run_keeps_scope_prefix_and_given_first_activity() -> None:
    run = compile_run(states(LINEAR), "P[1]/", "A", "override", resolve)
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
    assert compile_run(states(callback), "", "A", "a", resolve) == [RunStep("A", "a")]
    assert compile_run(states(callback), "", "CB", "cb", resolve) == [RunStep("CB", "cb")]


def test_run_is_bounded_and_stops_on_loops() -> None:
    many = {f"S{i}": {"Type": "Task", "Resource": "x", "Next": f"S{i + 1}"} for i in range(40)}
    many["S40"] = {"Type": "Task", "Resource": "x", "Next": "S0"}
    run = compile_run(states({"StartAt": "S0", "States": many}), "", "S0", "x", resolve)
    assert len(run) == MAX_RUN_LENGTH
    loop = {
        "A": {"Type": "Task", "Resource": "x", "Next": "B"},
        "B": {"Type": "Task", "Resource": "x", "Next": "A"},
    }
    assert len(compile_run(states({"StartAt": "A", "States": loop}), "", "A", "x", resolve)) == 2


def test_run_signature_is_a_flat_chain_with_input_first() -> None:
    sig = run_signature([RunStep("A", "a"), RunStep("B", "b")], {"in": 1}, "exec", "q")
    assert isinstance(sig, _chain)
    first, second = sig.tasks
    assert (first.task, tuple(first.args)) == ("a", ({"in": 1}, "exec", "A"))
    assert (second.task, tuple(second.args)) == ("b", ("exec", "B"))
    assert all(t.options["queue"] == "q" for t in sig.tasks)
    assert not any(isinstance(t, _chain | group) for t in sig.tasks)


def test_single_step_is_a_plain_signature_and_fan_out_a_flat_group() -> None:
    one = run_signature([RunStep("A", "a")], 1, "exec", "q")
    assert type(one) is Signature
    assert fan_out([one]) is one
    many = fan_out([one, run_signature([RunStep("B", "b")], 2, "exec", "q")])
    assert isinstance(many, group) and len(many.tasks) == 2
