"""Property tests: any input either parses or raises DefinitionError, and models round-trip."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DefinitionError
from orchestrator.language.definition import parse_definition

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 200)
    | st.floats(-10, 10, allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["$", "$.a", "$$.x", "$v", "$[", "States.ALL", "{% 1 %}"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

SEED: dict[str, Any] = {
    "Comment": "seed",
    "StartAt": "T",
    "States": {
        "T": {
            "Type": "Task",
            "Resource": "arn:t",
            "Parameters": {"a.$": "$.a"},
            "TimeoutSeconds": 10,
            "HeartbeatSeconds": 2,
            "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 1, "BackoffRate": 1.5}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F", "ResultPath": "$.err"}],
            "Next": "C",
        },
        "C": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericLessThan": 3, "Next": "W"},
                {
                    "And": [
                        {"Variable": "$.s", "StringMatches": "a*"},
                        {"Not": {"Variable": "$.b", "IsPresent": True}},
                    ],
                    "Next": "P",
                },
            ],
            "Default": "M",
        },
        "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
        "P": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "X", "States": {"X": {"Type": "Pass", "Result": {"k": 1}, "End": True}}}
            ],
            "Next": "M",
        },
        "M": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "Y",
                "States": {"Y": {"Type": "Task", "Resource": "arn:y", "End": True}},
            },
            "Next": "S",
        },
        "S": {"Type": "Succeed"},
        "F": {"Type": "Fail", "Error": "E", "Cause": "c"},
    },
}


def _locations(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside ``value``."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _locations(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _locations(item, (*prefix, index))
    return found


@st.composite
def mangled(draw: st.DrawFn) -> Any:
    """The seed definition with a few random deletions, replacements and insertions."""
    definition: Any = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        locations = _locations(definition)
        location = draw(st.sampled_from(locations))
        if not location:
            definition = draw(json_values)
            continue
        parent = definition
        for part in location[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        key = location[-1]
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif isinstance(parent, dict):
            parent[
                draw(
                    st.sampled_from(
                        [
                            "Next",
                            "End",
                            "Type",
                            "Foo",
                            "ResultPath",
                            "Iterator",
                            "Default",
                            "And",
                            "Seconds",
                        ]
                    )
                )
            ] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    return definition


def _parse_or_definition_error(source: Any) -> None:
    try:
        machine = parse_definition(source)
    except DefinitionError as exc:
        assert exc.issues
        assert all(issue.path.startswith("$") for issue in exc.issues)
        return
    assert parse_definition(machine.to_asl()) == machine
    json.dumps(machine.to_asl())


def test_seed_is_valid() -> None:
    parse_definition(SEED)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_mangled_definitions_only_raise_definition_error(definition: Any) -> None:
    _parse_or_definition_error(definition)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_raises_definition_error(value: Any) -> None:
    _parse_or_definition_error(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_random_text_only_raises_definition_error(text: str) -> None:
    _parse_or_definition_error(text)


@settings(max_examples=200, deadline=None)
@given(mangled())
def test_mangled_definitions_as_json_text(definition: Any) -> None:
    _parse_or_definition_error(json.dumps(definition))


BAD_FIELDS: list[tuple[tuple[Any, ...], Any, str]] = [
    # (where, bad value, what its issue says)
    (("States", "T", "Parameters", "a.$"), "States.Nope($.a)", "unknown function"),
    (("States", "T", "Parameters", "a.$"), "States.Format($.a", "expected ')'"),
    (("States", "T", "Parameters", "a.$"), "States.ArrayLength($.a, 1)", "takes 1 argument"),
    (("States", "T", "Parameters", "a.$"), "$.a[", "invalid JSONPath"),
    (("States", "T", "ResultPath"), "$.a[*]", "invalid reference path"),
    (("States", "C", "Choices", 0, "Variable"), "$..", "invalid JSONPath"),
    (("States", "W", "Next"), "Pp", "no state named 'Pp'"),
    (("States", "T", "Catch", 0, "ResultPath"), 7, "must be a JSONPath string"),
    (("States", "F", "Cause"), "ok \ud800", "lone surrogate"),
]


def _put(definition: Any, where: tuple[Any, ...], value: Any) -> str:
    parent = definition
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = value
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(BAD_FIELDS))), min_size=1, max_size=4, unique=True))
def test_no_problem_hides_another(chosen: list[int]) -> None:
    # Problems put in different places are each reported, at their own path.
    expected: dict[str, str] = {}
    definition = copy.deepcopy(SEED)
    for index in chosen:
        where, value, message = BAD_FIELDS[index]
        # A later problem at the same place replaces the earlier one.
        expected[_put(definition, where, value)] = message
    try:
        parse_definition(definition)
    except DefinitionError as exc:
        found = [str(issue) for issue in exc.issues]
    else:
        raise AssertionError("an invalid definition was accepted")
    for path, message in expected.items():
        assert any(f.startswith(f"{path}: ") and message in f for f in found), (path, found)
