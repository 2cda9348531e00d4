"""The listing indexes' key names (orchestrator/engine/keys.py)."""

from __future__ import annotations

import pytest

from orchestrator.engine.keys import EXECUTION_STATUSES, Keys


def test_each_filter_names_its_index() -> None:
    keys = Keys("orch")
    assert keys.executions_index(0) == keys.executions(0) == "orch:{0.0}:executions"
    assert keys.executions_index(0, "FAILED") == "orch:{0.0}:executions:status:FAILED"
    assert keys.executions_index(0, workflow="order-flow") == "orch:{0.0}:executions:wf:order-flow"
    assert (
        keys.executions_index(0, "RUNNING", "order-flow")
        == "orch:{0.0}:executions:wf:order-flow:status:RUNNING"
    )


def test_a_workflow_name_that_could_break_a_key_is_hashed() -> None:
    keys = Keys("orch")
    for name in ("my flow{x}", "a:status:FAILED", "é"):
        key = keys.executions_index(0, "FAILED", name)
        tail = key.removeprefix("orch:{0.0}:")
        assert "{" not in tail and "}" not in tail and tail.count(":") == 4, key
        assert key != keys.executions_index(0, "FAILED", name + "!")


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        Keys("orch").executions_index(0, "PENDING")


def test_an_expired_execution_is_dropped_from_every_index_it_can_be_in() -> None:
    keys = Keys("orch", 4)
    anywhere = keys.listing_indexes(2, None)
    assert keys.executions(2) in anywhere
    assert {keys.executions_index(2, s) for s in EXECUTION_STATUSES} <= set(anywhere)
    of_workflow = keys.listing_indexes(2, "w")
    assert set(anywhere) < set(of_workflow)
    assert keys.executions_index(2, workflow="w") in of_workflow
    assert {keys.executions_index(2, s, "w") for s in EXECUTION_STATUSES} <= set(of_workflow)
