"""Choice rule evaluation: operator unit tests and the recorded AWS choice conformance cases."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.conformance import require_corpus
from orchestrator.errors import NoChoiceMatched, QueryEvaluationError, StatesRuntimeError
from orchestrator.language.choice import choose, evaluate_rule, string_matches
from orchestrator.language.definition import (
    ChoiceRule,
    ChoiceState,
    PassState,
    StateMachine,
    parse_definition,
)
from orchestrator.language.paths import PathNotFound, read_path

CONFORMANCE = require_corpus()
CHOICE_CASES = sorted(p for p in (CONFORMANCE / "choice").glob("*") if p.is_dir())


def rule(**asl: Any) -> ChoiceRule:
    return ChoiceRule.model_validate(asl)


def matches(data: Any, **asl: Any) -> bool:
    return evaluate_rule(rule(**asl), data, {})


# --- a tiny Pass + Choice interpreter, enough for the recorded choice cases ----------------


class Unsupported(Exception):
    """The case uses a Pass feature this test interpreter does not evaluate."""


def _set_path(data: Any, path: str, value: Any) -> Any:
    if path == "$":
        return value
    if not path.startswith("$.") or any(c in path for c in "[]*?'\" "):
        raise Unsupported(f"ResultPath {path!r}")
    result = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = result
    keys = path[2:].split(".")
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = child if isinstance(child, dict) else {}
        node = node[key]
    node[keys[-1]] = value
    return result


def _resolve_template(template: Any, data: Any) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str) or not value.startswith("$"):
                    raise Unsupported(f"template value {value!r}")
                out[key[:-2]] = read_path(data, value, {})
            else:
                out[key] = _resolve_template(value, data)
        return out
    if isinstance(template, list):
        return [_resolve_template(item, data) for item in template]
    return template


def run(machine: StateMachine, data: Any) -> Any:
    """Run a machine made only of Pass and Choice states; return its output."""
    name = machine.start_at
    for _ in range(1000):
        state = machine.state(name)
        if state.query_language == "JSONata" or machine.query_language == "JSONata":
            raise Unsupported("JSONata")
        if isinstance(state, ChoiceState):
            effective = data if state.input_path == "$" else read_path(data, state.input_path, {})
            name = choose(state, effective, {})
            continue
        if not isinstance(state, PassState):
            raise Unsupported(f"{state.type} state")
        if state.input_path is None:
            effective: Any = {}
        else:
            effective = read_path(data, state.input_path, {})
        if state.has_result:
            result = state.result
        elif state.parameters is not None:
            result = _resolve_template(state.parameters, effective)
        else:
            result = effective
        data = (
            data if state.result_path is None else _set_path(effective, state.result_path, result)
        )
        if state.output_path is None:
            data = {}
        elif state.output_path != "$":
            data = read_path(data, state.output_path, {})
        if state.end:
            return data
        assert state.next is not None
        name = state.next
    raise AssertionError("the machine did not terminate")


def test_conformance_data_is_available() -> None:
    assert len(CHOICE_CASES) == 491


@pytest.mark.parametrize("case", CHOICE_CASES, ids=[p.name for p in CHOICE_CASES])
def test_choice_conformance(case: Path) -> None:
    machine = parse_definition(case / "definition.json")
    data = json.loads((case / "input.json").read_text())
    expected = json.loads((case / "expected.json").read_text())
    try:
        if expected["status"] == "SUCCEEDED":
            assert run(machine, data) == expected["output"]
        else:
            with pytest.raises(StatesRuntimeError) as raised:
                run(machine, data)
            assert raised.value.error == expected["error"]
    except Unsupported as exc:
        pytest.skip(f"test interpreter cannot evaluate: {exc}")


# --- operators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "operand", "expected"),
    [
        ("StringEquals", "a", "a", True),
        ("StringEquals", "a", "b", False),
        ("StringEquals", 1, "1", False),
        ("StringLessThan", "a", "b", True),
        ("StringLessThan", "b", "a", False),
        ("StringGreaterThan", "b", "a", True),
        ("StringLessThanEquals", "a", "a", True),
        ("StringGreaterThanEquals", "a", "b", False),
        ("NumericEquals", 1, 1.0, True),
        ("NumericEquals", True, 1, False),
        ("NumericEquals", "1", 1, False),
        ("NumericLessThan", 1, 2, True),
        ("NumericLessThan", 2, 2, False),
        ("NumericLessThanEquals", 2, 2, True),
        ("NumericGreaterThan", 2.5, 2, True),
        ("NumericGreaterThanEquals", 1, 2, False),
        ("BooleanEquals", True, True, True),
        ("BooleanEquals", 1, True, False),
        ("BooleanEquals", False, True, False),
        ("TimestampEquals", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", True),
        ("TimestampLessThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.5Z", True),
        ("TimestampGreaterThan", "2021-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("TimestampLessThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("TimestampGreaterThanEquals", "2019-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
        ("TimestampEquals", "not a time", "2020-01-01T00:00:00Z", False),
        ("TimestampEquals", 5, "2020-01-01T00:00:00Z", False),
        ("IsNull", None, True, True),
        ("IsNull", 0, True, False),
        ("IsNull", 0, False, True),
        ("IsNumeric", 1.5, True, True),
        ("IsNumeric", True, True, False),
        ("IsString", "", True, True),
        ("IsString", 1, False, True),
        ("IsBoolean", False, True, True),
        ("IsBoolean", 0, True, False),
        ("IsTimestamp", "2020-01-01T00:00:00Z", True, True),
        ("IsTimestamp", "2020-01-01", True, False),
        ("IsTimestamp", 3, False, True),
    ],
)
def test_operator(operator: str, value: Any, operand: Any, expected: bool) -> None:
    assert matches({"v": value}, Variable="$.v", **{operator: operand}) is expected


@pytest.mark.parametrize(
    ("operator", "value", "other", "expected"),
    [
        ("StringEqualsPath", "x", "x", True),
        ("NumericLessThanPath", 1, 2, True),
        ("NumericLessThanPath", 1, "2", False),
        ("BooleanEqualsPath", False, False, True),
        ("TimestampGreaterThanPath", "2021-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("StringGreaterThanEqualsPath", "b", "b", True),
    ],
)
def test_path_operators(operator: str, value: Any, other: Any, expected: bool) -> None:
    data = {"v": value, "o": other}
    assert matches(data, Variable="$.v", **{operator: "$.o"}) is expected


def test_path_operand_missing_is_runtime_error() -> None:
    with pytest.raises(PathNotFound) as raised:
        matches({"v": 1}, Variable="$.v", NumericEqualsPath="$.missing")
    assert raised.value.error == "States.Runtime"


def test_missing_variable_is_runtime_error() -> None:
    with pytest.raises(StatesRuntimeError) as raised:
        matches({}, Variable="$.missing", StringEquals="x")
    assert raised.value.error == "States.Runtime"


def test_is_present() -> None:
    assert matches({"v": None}, Variable="$.v", IsPresent=True)
    assert not matches({}, Variable="$.v", IsPresent=True)
    assert matches({}, Variable="$.v", IsPresent=False)
    assert not matches({"v": 1}, Variable="$.v", IsPresent=False)


def test_context_variable() -> None:
    assert evaluate_rule(
        rule(Variable="$$.Execution.Name", StringEquals="run-1"),
        {},
        {"Execution": {"Name": "run-1"}},
    )


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("log-*.txt", "log-2020.txt", True),
        ("log-*.txt", "log-.txt", True),
        ("log-*.txt", "log-2020.csv", False),
        ("*", "", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXcYYb", False),
        (r"a\*b", "a*b", True),
        (r"a\*b", "aXb", False),
        (r"a\\*", "a\\anything", True),
        (r"a\\b", "a\\b", True),
        ("a.b", "aXb", False),
        ("line*", "line1\nline2", True),
        ("exact", "exact", True),
        ("exact", "exactly", False),
    ],
)
def test_string_matches(pattern: str, value: str, expected: bool) -> None:
    assert string_matches(value, pattern) is expected
    assert matches({"v": value}, Variable="$.v", StringMatches=pattern) is expected


def test_string_matches_wrong_type_is_false() -> None:
    assert not matches({"v": 5}, Variable="$.v", StringMatches="*")


def test_and_or_not() -> None:
    yes = {"Variable": "$.v", "NumericEquals": 1}
    no = {"Variable": "$.v", "NumericEquals": 2}
    data = {"v": 1}
    assert matches(data, And=[yes, yes])
    assert not matches(data, And=[yes, no])
    assert matches(data, Or=[no, yes])
    assert not matches(data, Or=[no, no])
    assert matches(data, Not=no)
    assert not matches(data, Not=yes)
    assert matches(data, And=[{"Not": no}, {"Or": [no, {"And": [yes]}]}])


def test_and_short_circuits_before_missing_path() -> None:
    # A later rule's missing variable is never read once the result is known, as in AWS.
    missing = {"Variable": "$.missing", "NumericEquals": 1}
    assert not matches({"v": 1}, And=[{"Variable": "$.v", "NumericEquals": 2}, missing])
    assert matches({"v": 1}, Or=[{"Variable": "$.v", "NumericEquals": 1}, missing])


def test_jsonata_condition_is_not_supported_yet() -> None:
    with pytest.raises(QueryEvaluationError) as raised:
        matches({}, Condition="{% true %}", Next="X")
    assert raised.value.error == "States.QueryEvaluationError"


def _choice_machine(default: str | None) -> ChoiceState:
    asl: dict[str, Any] = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericLessThan": 0, "Next": "Neg"},
                    {"Variable": "$.n", "NumericLessThan": 10, "Next": "Small"},
                ],
            },
            "Neg": {"Type": "Succeed"},
            "Small": {"Type": "Succeed"},
            "Other": {"Type": "Succeed"},
        },
    }
    if default is not None:
        asl["States"]["C"]["Default"] = default
    else:
        del asl["States"]["Other"]
    state = parse_definition(asl).state("C")
    assert isinstance(state, ChoiceState)
    return state


def test_choose_first_matching_rule_wins() -> None:
    state = _choice_machine("Other")
    assert choose(state, {"n": -5}, {}) == "Neg"
    assert choose(state, {"n": 5}, {}) == "Small"
    assert choose(state, {"n": 50}, {}) == "Other"


def test_choose_without_default_raises_no_choice_matched() -> None:
    state = _choice_machine(None)
    with pytest.raises(NoChoiceMatched) as raised:
        choose(state, {"n": 50}, {})
    assert raised.value.error == "States.NoChoiceMatched"
    assert raised.value.cause == "No Matches!"


def _reference_match(value: str, pattern: str) -> bool:
    """The regex translation of a StringMatches pattern: right, but it backtracks."""
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif char == "*":
            parts.append(".*")
        else:
            parts.append(re.escape(char))
    return re.fullmatch("".join(parts), value, re.DOTALL) is not None


# Few distinct characters, so that wildcards, escapes and near-misses meet often.
_GLOB_TEXT = st.text(alphabet="ab*\\\n-", max_size=12)


@settings(max_examples=2000, deadline=None)
@given(pattern=_GLOB_TEXT, value=st.text(alphabet="ab*\\\n-", max_size=16))
def test_string_matches_agrees_with_the_regex_translation(pattern: str, value: str) -> None:
    assert string_matches(value, pattern) is _reference_match(value, pattern)


@settings(max_examples=300, deadline=None)
@given(pattern=_GLOB_TEXT, value=st.text(alphabet="ab*\\\n-", max_size=16))
def test_string_matches_agrees_on_values_built_from_the_pattern(pattern: str, value: str) -> None:
    # The pattern with its wildcards filled in: values that should match, and near misses.
    filled = pattern.replace("*", value)
    assert string_matches(filled, pattern) is _reference_match(filled, pattern)


@pytest.mark.parametrize("length", [6_000, 12_000, 262_144])
def test_string_matches_takes_linear_time_on_backtracking_bombs(length: int) -> None:
    # The regex translation took 11.7 s on 6,000 dashes and over 40 s on 12,000.
    started = time.perf_counter()
    assert not string_matches("log-" + "-" * length, "log-*-*-*.txt")
    assert not string_matches("a" * length, "*a*a*a*a*a*b")
    assert string_matches("a" * length + "b", "*a*a*a*a*a*b")
    assert time.perf_counter() - started < 1.0
