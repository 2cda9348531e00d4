"""The key schema's field rules."""

from __future__ import annotations

import pytest

from orchestrator.engine.keys import Keys


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
