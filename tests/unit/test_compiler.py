"""Compilation of straight Task runs into flat Celery canvas (no Redis, no app)."""

from __future__ import annotations

from celery.canvas import Signature, _chain, group

from orchestrator.engine.compiler import fan_out, run_signature
from orchestrator.language.runs import RunStep


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
