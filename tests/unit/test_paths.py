"""Tests for orchestrator.language.paths (JSONPath with Step Functions semantics)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.errors import ResultPathMatchFailure, StatesError, StatesRuntimeError
from orchestrator.language.paths import (
    PathNotFound,
    is_reference_path,
    is_valid_path,
    read_path,
    to_json,
    write_path,
)

DATA: dict[str, Any] = {
    "a": {"b": [1, 2, {"c": "x"}]},
    "users": [{"name": "ann", "status": 0}, {"name": "bob", "status": 1}],
    "a b": 1,
    "input-value": 7,
    "n": None,
}
CONTEXT = {"Execution": {"Id": "exec-1", "Input": {"k": 1}}, "State": {"RetryCount": 0}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DATA),
        ("$.a", DATA["a"]),
        ("$.a.b[2].c", "x"),
        ("$.a.b[0]", 1),
        ("$.a.b[-1]", {"c": "x"}),
        ("$['a b']", 1),
        ('$["a b"]', 1),
        ("$['a']['b'][1]", 2),
        ("$.input-value", 7),
        ("$.n", None),
    ],
)
def test_definite_paths_return_single_value(path: str, expected: object) -> None:
    assert read_path(DATA, path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.a.b[*]", [1, 2, {"c": "x"}]),
        ("$.a.b[1:3]", [2, {"c": "x"}]),
        ("$.a.b[:1]", [1]),
        ("$.users[?(@.status == 0)]", [{"name": "ann", "status": 0}]),
        ("$.users[?(@.status > 0)].name", ["bob"]),
        ("$..c", ["x"]),
        ("$.users[*].name", ["ann", "bob"]),
        ("$.a.b[0,1]", [1, 2]),
        # Indefinite paths over missing data give an empty list (AWS base/ corpus cases).
        ("$.items[*]", []),
        ("$.item.items[1:5].itemValue", []),
        ("$.users[?(@.status == 'zzz')]", []),
    ],
)
def test_indefinite_paths_return_lists(path: str, expected: object) -> None:
    assert read_path(DATA, path) == expected


def test_filter_comparing_mixed_types_does_not_raise() -> None:
    data = {"xs": [{"v": "a"}, {"v": 2}, {"v": None}]}
    assert read_path(data, "$.xs[?(@.v > 1)]") == [{"v": 2}]


def test_context_paths() -> None:
    assert read_path(DATA, "$$", CONTEXT) == CONTEXT
    assert read_path(DATA, "$$.Execution.Id", CONTEXT) == "exec-1"
    assert read_path(DATA, "$$.Execution.Input.k", CONTEXT) == 1
    assert read_path(DATA, "$$", None) == {}


def test_missing_leaf_uses_jayway_wording() -> None:
    with pytest.raises(PathNotFound) as info:
        read_path({"int-literal": 0}, "$.NoSuchInputPath")
    assert info.value.error == "States.Runtime"
    assert info.value.cause == (
        "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
    )


def test_missing_intermediate_uses_jayway_wording() -> None:
    with pytest.raises(PathNotFound) as info:
        read_path({}, "$.no.such.result.path")
    assert info.value.cause == (
        "Invalid path '$.no.such.result.path' : Missing property in path $['no']"
    )


def test_missing_with_field_uses_template_wording() -> None:
    with pytest.raises(PathNotFound) as info:
        read_path({"int-literal": 0}, "$.ErrorX", field="ErrorPath")
    assert info.value.cause == (
        "The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found "
        "in the input '{\"int-literal\":0}'"
    )


@pytest.mark.parametrize(
    "path",
    ["$.a.b[9]", "$.a.b[-9]", "$.a.b.c", "$.a[0]", "$.users.name", "$.n.x", "$$.Nope"],
)
def test_definite_path_mismatches_raise(path: str) -> None:
    with pytest.raises(PathNotFound):
        read_path(DATA, path, CONTEXT)


def test_bool_is_not_an_index() -> None:
    with pytest.raises(PathNotFound):
        read_path({"a": True}, "$.a[0]")


def test_definite_jsonpath_ng_path_not_found() -> None:
    # Handled by jsonpath-ng (unusual bracket spacing), still definite.
    with pytest.raises(PathNotFound):
        read_path({"a": {}}, "$.a.`this`.b")


@pytest.mark.parametrize("path", ["", "a.b", "$[", "$.a[?(", "$..", "$.a[1:2:3:4]", "$.'"])
def test_invalid_paths(path: str) -> None:
    assert not is_valid_path(path)
    with pytest.raises(StatesRuntimeError):
        read_path(DATA, path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", True),
        ("$$", True),
        ("$.a.b", True),
        ("$['a b'].c[0]", True),
        ("$$.Execution.Input", True),
        ("$.a[*]", False),
        ("$.a[1:2]", False),
        ("$..a", False),
        ("$.a[?(@.x)]", False),
        ("$.a[-1]", False),
        ("$.a[0,1]", False),
        ("a", False),
    ],
)
def test_is_reference_path(path: str, expected: bool) -> None:
    assert is_reference_path(path) is expected


def test_is_valid_path() -> None:
    assert is_valid_path("$.a[?(@.x > 1)]")
    assert is_valid_path("$..x")
    assert not is_valid_path("x")


def test_read_shares_structure_without_copying() -> None:
    assert read_path(DATA, "$.a") is DATA["a"]


def test_escaped_quotes_in_bracket_names() -> None:
    data = {"it's": 1, 'say "hi"': 2}
    assert read_path(data, r"$['it\'s']") == 1
    assert read_path(data, '$["say \\"hi\\""]') == 2


# --- write_path ------------------------------------------------------------------------


def test_write_root_replaces_everything() -> None:
    assert write_path({"a": 1}, "$", [1, 2]) == [1, 2]


def test_write_creates_missing_parents_and_does_not_mutate() -> None:
    original = copy.deepcopy(DATA)
    out = write_path(DATA, "$.a.new.deep", 5)
    assert out["a"]["new"] == {"deep": 5}
    assert out["a"]["b"] is DATA["a"]["b"]  # untouched branches are shared
    assert out["users"] is DATA["users"]
    assert DATA == original


def test_write_replaces_existing_member_keeping_order() -> None:
    out = write_path({"x": 1, "y": 2, "z": 3}, "$.y", "new")
    assert list(out.items()) == [("x", 1), ("y", "new"), ("z", 3)]


def test_write_into_array_element() -> None:
    data = {"a": [{"v": 1}, {"v": 2}]}
    out = write_path(data, "$.a[1].v", 9)
    assert out == {"a": [{"v": 1}, {"v": 9}]}
    assert data == {"a": [{"v": 1}, {"v": 2}]}


def test_write_bracket_notation() -> None:
    assert write_path({}, "$['a b']['c']", 1) == {"a b": {"c": 1}}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"a": "text"}, "$.a.b"),
        ("not an object", "$.a"),
        ([1, 2], "$.a"),
        ({"a": None}, "$.a.b"),
        ({"a": [1]}, "$.a[3]"),
        ({"a": {}}, "$.a[0]"),
        ({}, "$.a[*]"),
        ({}, "$$.Execution"),
        ({}, "nope"),
    ],
)
def test_write_failures(data: object, path: str) -> None:
    with pytest.raises(ResultPathMatchFailure) as info:
        write_path(data, path, 1)
    assert info.value.error == "States.ResultPathMatchFailure"
    assert path in info.value.cause
    assert isinstance(info.value, StatesError)


def test_to_json_is_compact_and_never_fails() -> None:
    assert to_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert to_json({1, 2}) in {"{1, 2}", "{2, 1}"}


# Jayway forms jsonpath-ng's grammar lacks (found in public AWS sample definitions).


def test_a_number_without_its_leading_zero_in_a_filter() -> None:
    data = {"result": {"Entities": [{"Score": 0.9}, {"Score": 0.5}, {"Score": -0.3}]}}
    assert read_path(data, "$.result.Entities[?(@.Score > .85)]") == [{"Score": 0.9}]
    assert read_path(data, "$.result.Entities[?(@.Score<-.25)]") == [{"Score": -0.3}]


def test_a_bracket_step_after_a_dot() -> None:
    assert read_path([{"OU": 1}, {"OU": 0}], "$.[?(@.OU > 0)]") == [{"OU": 1}]
    assert read_path({"a": [{"b": 1}, {"b": 2}]}, "$.a.[*].b") == [1, 2]
    # Recursive descent keeps its two dots.
    assert read_path({"a": [7, 8], "c": {"d": [9]}}, "$..[0]") == [7, 9]


def test_quoted_text_is_not_rewritten() -> None:
    data = [{"n": ".[x] .5"}, {"n": "[x] 0.5"}]
    assert read_path(data, "$[?(@.n == '.[x] .5')]") == [{"n": ".[x] .5"}]
