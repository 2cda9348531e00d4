"""Property tests for orchestrator.language.paths."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ResultPathMatchFailure, StatesError
from orchestrator.language.paths import is_reference_path, read_path, write_path

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)

# Names usable after a dot; anything else goes through bracket notation with escaping.
dot_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,7}", fullmatch=True)
any_names = st.text(max_size=8)


def _bracket(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{escaped}']"


name_steps = dot_names.map(lambda n: "." + n) | any_names.map(_bracket)
member_paths = st.lists(name_steps, min_size=0, max_size=5).map(lambda s: "$" + "".join(s))
steps_with_indexes = name_steps | st.integers(min_value=0, max_value=3).map(lambda i: f"[{i}]")
reference_paths = st.lists(steps_with_indexes, max_size=5).map(lambda s: "$" + "".join(s))


@given(data=json_values, path=member_paths, value=json_values)
@settings(max_examples=300)
def test_write_then_read_returns_value(data: Any, path: str, value: Any) -> None:
    assert is_reference_path(path)
    before = copy.deepcopy(data)
    try:
        written = write_path(data, path, value)
    except ResultPathMatchFailure:
        return  # a parent on the path is not an object: AWS fails the same way
    assert read_path(written, path) == value
    assert data == before  # the input is never mutated


@given(data=json_values, path=reference_paths, value=json_values)
@settings(max_examples=300)
def test_write_then_read_with_indexes(data: Any, path: str, value: Any) -> None:
    before = json.dumps(data, sort_keys=True)
    try:
        written = write_path(data, path, value)
    except ResultPathMatchFailure:
        return
    assert read_path(written, path) == value
    assert json.dumps(data, sort_keys=True) == before


@given(data=json_values, path=st.text(max_size=30))
@settings(max_examples=500)
def test_read_never_raises_unexpected_errors(data: Any, path: str) -> None:
    try:
        read_path(data, path)
    except StatesError:
        pass


jsonpathish = st.lists(
    st.sampled_from(["$", ".", "..", "[", "]", "*", "?(", ")", "@", "a", "0", ":", "'", ",", ">"]),
    max_size=12,
).map("".join)


@given(data=json_values, path=jsonpathish)
@settings(max_examples=500)
def test_read_never_raises_on_jsonpath_like_text(data: Any, path: str) -> None:
    try:
        read_path(data, "$" + path)
    except StatesError:
        pass
