"""The listing indexes' key names (orchestrator/engine/keys.py)."""

from __future__ import annotations

import pytest

from orchestrator.engine.keys import EXECUTION_STATUSES, Keys


def test_each_filter_names_its_index() -> None:
    keys = Keys("orch")
    assert keys.executions_index() == keys.executions == "orch:executions"
    assert keys.executions_index("FAILED") == "orch:executions:status:FAILED"
    assert keys.executions_index(workflow="order-flow") == "orch:executions:wf:order-flow"
    assert (
        keys.executions_index("RUNNING", "order-flow")
        == "orch:executions:wf:order-flow:status:RUNNING"
    )


def test_a_workflow_name_that_could_break_a_key_is_hashed() -> None:
    keys = Keys("orch")
    for name in ("my flow{x}", "a:status:FAILED", "é"):
        key = keys.executions_index("FAILED", name)
        assert "{" not in key and "}" not in key and key.count(":") == 5, key
        assert key != keys.executions_index("FAILED", name + "!")


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        Keys("orch").executions_index("PENDING")


def test_an_expired_execution_is_dropped_from_every_index_it_can_be_in() -> None:
    keys = Keys("orch")
    anywhere = keys.listing_indexes(None)
    assert keys.executions in anywhere
    assert {keys.executions_index(s) for s in EXECUTION_STATUSES} <= set(anywhere)
    of_workflow = keys.listing_indexes("w")
    assert set(anywhere) < set(of_workflow)
    assert keys.executions_index(workflow="w") in of_workflow
    assert {keys.executions_index(s, "w") for s in EXECUTION_STATUSES} <= set(of_workflow)
