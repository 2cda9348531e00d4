"""Listing cursors: one position per partition, as text a caller passes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.engine.cursors import CURSOR_MAX_LENGTH, CURSOR_PATTERN, ListingCursor
from orchestrator.errors import InvalidInputError


@given(st.lists(st.integers(0, 10**12 - 1), min_size=1, max_size=256))
def test_a_cursor_reads_back_as_it_was_written(positions: list[int]) -> None:
    cursor = ListingCursor(tuple(positions))
    text = cursor.text()
    assert CURSOR_PATTERN.fullmatch(text) and len(text) <= CURSOR_MAX_LENGTH
    assert ListingCursor.parse(text, len(positions)) == cursor
    assert cursor.passed == sum(positions)


def test_no_cursor_or_zero_starts_at_the_newest() -> None:
    for text in (None, "", "0", 0):
        assert ListingCursor.parse(text, 3) == ListingCursor((0, 0, 0))
    assert ListingCursor.parse(7, 1) == ListingCursor((7,))


@pytest.mark.parametrize("text", ["-1", "1..2", "a", "1.2.", " 1", "1" * 13, "9" * 3400])
def test_a_malformed_cursor_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not a listing's cursor"):
        ListingCursor.parse(text, 1)


def test_a_cursor_of_another_partition_count_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="this deployment has 4"):
        ListingCursor.parse("1.2", 4)
