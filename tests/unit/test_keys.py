"""The key schema: its field rules, and one cluster slot per execution."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from orchestrator.engine.keys import Keys
from orchestrator.errors import ConfigurationError


@pytest.mark.parametrize(
    ("field", "fixed"),
    [
        ("M|t", True),
        ("M|c", True),
        ("M|i12", True),
        ("P[0]/M|i0", True),
        ("M|next", False),
        ("M|n", False),
        ("M|r3", False),
        ("M|s", False),
        ("M|i", False),
        ("M|ix", False),
        ("t", False),  # the record of a state named "t"
        ("M[0]/t", False),
    ],
)
def test_fields_fixed_while_a_container_runs_need_no_guard(field: str, fixed: bool) -> None:
    assert Keys.fixed_field(field) is fixed


def _execution_keys(keys: Keys, execution_id: str) -> list[str]:
    """Every key the schema holds for one execution."""
    return [
        keys.execution(execution_id),
        keys.steps(execution_id),
        keys.history(execution_id),
        keys.task_tokens(execution_id),
        keys.dead_letter(execution_id),
    ]


@pytest.mark.parametrize("execution_id", ["order-17", "0f3a9c2e" * 4, "é-ü", "a" * 80])
def test_every_key_of_an_execution_hashes_to_one_cluster_slot(execution_id: str) -> None:
    keys = Keys("orch")
    own = _execution_keys(keys, execution_id)
    assert len(set(own)) == len(own)
    assert all(f"{{{execution_id}}}" in key for key in own)
    assert {key_slot(key.encode()) for key in own} == {key_slot(execution_id.encode())}


def test_executions_spread_over_slots() -> None:
    keys = Keys("orch")
    slots = {key_slot(keys.execution(f"e-{n}").encode()) for n in range(200)}
    assert len(slots) > 150  # the tag is the id, not something shared like the prefix


def test_a_prefix_with_braces_is_refused() -> None:
    # Its braces would be every key's hash tag: all executions in one slot.
    with pytest.raises(ConfigurationError):
        Keys("orch{x}")
