"""Tests for orchestrator.language.dataflow, with cases mirrored from the AWS corpus."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from orchestrator.conformance import require_corpus
from orchestrator.errors import (
    IntrinsicFailure,
    ResultPathMatchFailure,
    StatesError,
    StatesRuntimeError,
)
from orchestrator.language import intrinsics
from orchestrator.language.dataflow import (
    apply_template,
    build_context,
    effective_input,
    format_timestamp,
    pass_result,
    select_input,
    select_output,
    state_output,
)
from orchestrator.language.paths import PathNotFound

CORPUS = require_corpus()
CTX: dict[str, Any] = {"Execution": {"Id": "e-1", "Input": {"in": 1}}}


# --- InputPath / OutputPath --------------------------------------------------------------


def test_select_input_default_null_and_path() -> None:
    raw = {"a": {"b": 1}}
    assert select_input(raw, "$", CTX) is raw
    assert select_input(raw, None, CTX) == {}
    assert select_input(raw, "$.a", CTX) == {"b": 1}
    assert select_input(raw, "$$.Execution.Input", CTX) == {"in": 1}


def test_select_output_default_null_and_path() -> None:
    data = {"a": 1}
    assert select_output(data, "$", CTX) is data
    assert select_output(data, None, CTX) == {}
    assert select_output(data, "$.a", CTX) == 1


# --- payload templates ---------------------------------------------------------------------


def test_apply_template_paths_literals_and_nesting() -> None:
    template = {
        "literal": "text",
        "num": 3,
        "fromInput.$": "$.a",
        "fromContext.$": "$$.Execution.Id",
        "nested": {"deep.$": "$.b[1]", "list": [{"x.$": "$.a"}, "plain", 1]},
        "all.$": "$",
    }
    data = {"a": "A", "b": [0, 1]}
    original = copy.deepcopy(template)
    out = apply_template(template, data, CTX)
    assert out == {
        "literal": "text",
        "num": 3,
        "fromInput": "A",
        "fromContext": "e-1",
        "nested": {"deep": 1, "list": [{"x": "A"}, "plain", 1]},
        "all": data,
    }
    assert template == original  # the definition is never modified
    assert out["nested"] is not template["nested"]


def test_apply_template_scalar_and_list_templates() -> None:
    assert apply_template("x", {}, CTX) == "x"
    assert apply_template([{"a.$": "$.v"}], {"v": 2}, CTX) == [{"a": 2}]


def test_apply_template_indefinite_path_gives_list() -> None:
    out = apply_template({"item.$": "$.items[*]"}, {}, CTX)
    assert out == {"item": []}


def test_apply_template_missing_path_wording() -> None:
    with pytest.raises(PathNotFound) as info:
        apply_template({"value.$": "$.no_such_jsonpath"}, {"int-literal": 0}, CTX)
    assert info.value.error == "States.Runtime"
    assert info.value.cause == (
        "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be "
        "found in the input '{\"int-literal\":0}'"
    )


@pytest.mark.parametrize("bad", [3, None, "not a path", ["$.a"]])
def test_apply_template_rejects_bad_dollar_values(bad: object) -> None:
    with pytest.raises(StatesRuntimeError):
        apply_template({"k.$": bad}, {"a": 1}, CTX)


@pytest.fixture
def fake_intrinsics(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    calls: list[tuple[str, Any, Any]] = []

    def evaluate(expression: str, data: Any, context: Any) -> Any:
        calls.append((expression, data, context))
        if "Fail" in expression:
            raise IntrinsicFailure("boom")
        return f"evaluated:{expression}"

    monkeypatch.setattr(intrinsics, "evaluate", evaluate)
    return calls


def test_apply_template_delegates_intrinsics(fake_intrinsics: list[tuple[str, Any, Any]]) -> None:
    data = {"a": 1}
    out = apply_template({"f.$": "States.Format('{}', $.a)", "x": 1}, data, CTX)
    assert out == {"f": "evaluated:States.Format('{}', $.a)", "x": 1}
    assert fake_intrinsics == [("States.Format('{}', $.a)", data, CTX)]


def test_apply_template_propagates_intrinsic_errors(
    fake_intrinsics: list[tuple[str, Any, Any]],
) -> None:
    with pytest.raises(IntrinsicFailure):
        apply_template({"f.$": "States.Fail()"}, {}, CTX)


# --- effective input / output --------------------------------------------------------------


def test_effective_input() -> None:
    raw = {"a": {"b": 1}}
    assert effective_input(raw, input_path="$.a", parameters=None, context=CTX) == {"b": 1}
    assert effective_input(raw, input_path="$.a", parameters={"v.$": "$.b"}, context=CTX) == {
        "v": 1
    }
    assert effective_input(raw, input_path=None, parameters={"all.$": "$"}, context=CTX) == {
        "all": {}
    }


def test_state_output_result_path_variants() -> None:
    raw = {"in": 1}
    result = {"r": 2}
    assert state_output(raw, result, context=CTX) == result
    assert state_output(raw, result, result_path=None, context=CTX) == raw
    out = state_output(raw, result, result_path="$.res", context=CTX)
    assert out == {"in": 1, "res": {"r": 2}}
    assert raw == {"in": 1}
    assert state_output(raw, result, result_path="$.res", output_path="$.res.r", context=CTX) == 2
    assert state_output(raw, result, output_path=None, context=CTX) == {}


def test_state_output_result_selector() -> None:
    out = state_output(
        {"in": 1},
        {"Payload": {"x": 5}, "Meta": "drop"},
        result_selector={"x.$": "$.Payload.x", "id.$": "$$.Execution.Id"},
        result_path="$.sel",
        context=CTX,
    )
    assert out == {"in": 1, "sel": {"x": 5, "id": "e-1"}}


def test_state_output_result_path_failure() -> None:
    with pytest.raises(ResultPathMatchFailure):
        state_output("a string", 1, result_path="$.x", context=CTX)


def test_state_output_missing_output_path() -> None:
    with pytest.raises(PathNotFound) as info:
        state_output({}, {}, output_path="$.no.such.result.path", context=CTX)
    assert info.value.cause.endswith("Missing property in path $['no']")


def test_pass_result_uses_result_verbatim() -> None:
    result = {"unsupported1.$": "$.jsonpath", "unsupported2.$": "$$"}
    assert pass_result({}, result=result, has_result=True, context=CTX) == result


def test_pass_result_without_result_uses_effective_input() -> None:
    out = pass_result(
        {"a": 1}, parameters={"b.$": "$.a"}, result_path="$.p", output_path="$", context=CTX
    )
    assert out == {"a": 1, "p": {"b": 1}}
    assert pass_result({"a": 1}, has_result=True, result=None, context=CTX) is None


# --- context object ------------------------------------------------------------------------


def test_format_timestamp() -> None:
    assert format_timestamp(1704067200) == "2024-01-01T00:00:00.000Z"
    assert format_timestamp(1704067200.123) == "2024-01-01T00:00:00.123Z"
    assert format_timestamp(1704067200.9999) == "2024-01-01T00:00:00.999Z"
    assert format_timestamp(0.5) == "1970-01-01T00:00:00.500Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", format_timestamp(1.7e9))


def test_build_context_minimal() -> None:
    ctx = build_context(
        "exec-id",
        "exec-name",
        {"k": 1},
        "2024-01-01T00:00:00.000Z",
        "State1",
        "2024-01-01T00:00:01.000Z",
        2,
        "sm-id",
        "sm-name",
    )
    assert ctx == {
        "Execution": {
            "Id": "exec-id",
            "Input": {"k": 1},
            "Name": "exec-name",
            "StartTime": "2024-01-01T00:00:00.000Z",
        },
        "State": {"EnteredTime": "2024-01-01T00:00:01.000Z", "Name": "State1", "RetryCount": 2},
        "StateMachine": {"Id": "sm-id", "Name": "sm-name"},
    }


def test_build_context_optional_parts() -> None:
    ctx = build_context(
        "e", "n", {}, "t0", "S", "t1", 0, "sm", "smn",
        task_token="tok", map_item=(3, {"v": 1}), role_arn="arn:role",
    )  # fmt: skip
    assert ctx["Task"] == {"Token": "tok"}
    assert ctx["Map"] == {"Item": {"Index": 3, "Value": {"v": 1}}}
    assert ctx["Execution"]["RoleArn"] == "arn:role"


# --- cases mirrored from the recorded AWS corpus ------------------------------------------


def _case(name: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    folder = CORPUS / name
    if not folder.is_dir():
        pytest.fail(f"conformance corpus case missing: {folder}")
    return (
        json.loads((folder / "definition.json").read_text()),
        json.loads((folder / "input.json").read_text()),
        json.loads((folder / "expected.json").read_text()),
    )


def _context_for(execution_input: Any) -> dict[str, Any]:
    return build_context("arn:exec", "exec", execution_input, "t0", "S", "t1", 0, "arn:sm", "sm")


def _run_single_pass(name: str) -> tuple[Any, dict[str, Any]]:
    """Run a one-Pass-state definition through the data-flow helpers."""
    definition, execution_input, expected = _case(name)
    state = definition["States"][definition["StartAt"]]
    assert state["Type"] == "Pass"
    ctx = _context_for(execution_input)
    output = pass_result(
        execution_input,
        input_path=state.get("InputPath", "$"),
        parameters=state.get("Parameters"),
        result=state.get("Result"),
        has_result="Result" in state,
        result_path=state.get("ResultPath", "$"),
        output_path=state.get("OutputPath", "$"),
        context=ctx,
    )
    return output, expected


@pytest.mark.parametrize(
    "name",
    [
        "base/json_path_array_access_items_0",
        "base/json_path_array_access_items_10",
        "base/json_path_array_wildcard_or_slice_with_no_input",
        "base/json_path_array_wildcard_or_slice_with_no_input_item_items_1_5_itemValue",
        "base/json_path_array_wildcard_or_slice_with_no_input_items_itemValue",
        "base/state_pass_regex_json_path_base",
        "base/state_pass_result",
        "base/state_pass_result_jsonpaths",
        "base/comment_in_parameters",
        "context_object/input_path_Execution_Input",
        "context_object/output_path_Execution_Input",
    ],
)
def test_corpus_pass_state_outputs(name: str) -> None:
    output, expected = _run_single_pass(name)
    assert expected["status"] == "SUCCEEDED"
    assert output == expected["output"]


def test_corpus_null_input_output_paths() -> None:
    definition, execution_input, expected = _case("base/state_pass_result_null_input_output_paths")
    ctx = _context_for(execution_input)
    data = execution_input
    name = definition["StartAt"]
    while True:
        state = definition["States"][name]
        data = pass_result(
            data,
            input_path=state.get("InputPath", "$"),
            parameters=state.get("Parameters"),
            result_path=state.get("ResultPath", "$"),
            output_path=state.get("OutputPath", "$"),
            context=ctx,
        )
        if state.get("End"):
            break
        name = state["Next"]
    assert data == expected["output"]


def _aws_cause_suffix(expected: dict[str, Any]) -> str:
    """Strip the engine's "An error occurred while executing the state ..." prefix."""
    cause: str = expected["cause"]
    prefix = (
        r"^An error occurred while executing the state '[^']*' "
        r"\(entered at the event id #\d+\)\. "
    )
    return re.sub(prefix, "", cause)


def _matches(cause: str, expected: dict[str, Any]) -> bool:
    pattern = _aws_cause_suffix(expected)
    if expected.get("cause_compare") == "template":
        parts = re.split(r"<json-input:\d+>", pattern)
        return re.fullmatch(".*".join(re.escape(p) for p in parts), cause) is not None
    return cause == pattern


@pytest.mark.parametrize(
    "name",
    [
        "scenarios/invalid_jsonpath_ST_INVALID_JSONPATH_IN_INPUTPATH",
        "scenarios/invalid_jsonpath_ST_INVALID_JSONPATH_IN_OUTPUTPATH",
        "scenarios/invalid_jsonpath_INVALID_JSONPATH_IN_STRING_EXPR_JSONPATH",
        "scenarios/invalid_jsonpath_INVALID_JSONPATH_IN_STRING_EXPR_CONTEXTPATH",
    ],
)
def test_corpus_invalid_jsonpath_errors(name: str) -> None:
    with pytest.raises(StatesError) as info:
        _run_single_pass(name)
    _, _, expected = _case(name)
    assert info.value.error == expected["error"] == "States.Runtime"
    assert _matches(info.value.cause, expected), info.value.cause


def test_corpus_output_path_missing_parent_wording() -> None:
    # catch_states_runtime: OutputPath '$.no.such.result.path' applied to the task result.
    _, _, expected = _case("scenarios/catch_states_runtime")
    with pytest.raises(PathNotFound) as info:
        state_output({}, {}, output_path="$.no.such.result.path", context=CTX)
    assert info.value.error == expected["error"]
    assert _matches(info.value.cause, expected)
