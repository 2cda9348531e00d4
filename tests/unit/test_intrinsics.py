"""Tests of orchestrator.language.intrinsics: AWS-recorded conformance cases, then each function."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orchestrator.conformance import require_corpus
from orchestrator.errors import IntrinsicFailure, StatesError, StatesRuntimeError
from orchestrator.language import intrinsics
from orchestrator.language.intrinsics import (
    Call,
    Literal,
    PathRef,
    evaluate,
    is_intrinsic,
    parse,
    validate,
)
from orchestrator.language.paths import read_path

CONFORMANCE = require_corpus()
INTRINSIC_CASES = CONFORMANCE / "intrinsic"


# --------------------------------------------------------------------------- conformance


def _is_jsonata(definition: dict[str, Any]) -> bool:
    if definition.get("QueryLanguage") == "JSONata":
        return True
    return any(s.get("QueryLanguage") == "JSONata" for s in definition["States"].values())


def _jsonpath_cases() -> list[str]:
    return sorted(
        case.name
        for case in INTRINSIC_CASES.iterdir()
        if (case / "definition.json").is_file()
        and not _is_jsonata(json.loads((case / "definition.json").read_text()))
    )


def _template(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """Resolve a Parameters template: ``.$`` keys take an intrinsic or a path."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                resolve = evaluate if is_intrinsic(value) else read_path
                out[key[:-2]] = resolve(value, data, context)
            else:
                out[key] = _template(value, data, context)
        return out
    if isinstance(template, list):
        return [_template(item, data, context) for item in template]
    return template


def _set_path(data: Any, path: str, value: Any) -> Any:
    """Minimal ResultPath: ``$`` replaces, ``$.a.b`` sets nested keys on a copy."""
    if path == "$":
        return value
    result = json.loads(json.dumps(data))
    target = result
    keys = path[2:].split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return result


def _run_pass_states(definition: dict[str, Any], execution_input: Any) -> Any:
    """Run a chain of Pass states (InputPath, Parameters, ResultPath, OutputPath)."""
    context = {"Execution": {"Input": execution_input}}
    data = execution_input
    name = definition["StartAt"]
    while True:
        state = definition["States"][name]
        assert state["Type"] == "Pass", f"helper only runs Pass states, got {state['Type']}"
        effective = read_path(data, state.get("InputPath", "$"), context)
        result = _template(state.get("Parameters", effective), effective, context)
        data = _set_path(data, state.get("ResultPath", "$"), result)
        data = read_path(data, state.get("OutputPath", "$"), context)
        if state.get("End"):
            return data
        name = state["Next"]


@pytest.mark.parametrize("case", _jsonpath_cases())
def test_conformance_case(case: str) -> None:
    folder = INTRINSIC_CASES / case
    definition = json.loads((folder / "definition.json").read_text())
    execution_input = json.loads((folder / "input.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())
    if expected["status"] == "SUCCEEDED":
        assert _run_pass_states(definition, execution_input) == expected["output"]
    else:
        with pytest.raises(StatesError) as info:
            _run_pass_states(definition, execution_input)
        assert info.value.error == expected["error"]
        assert expected["cause"].endswith(info.value.cause)


def test_conformance_corpus_has_the_jsonpath_cases() -> None:
    assert len(_jsonpath_cases()) == 124


# --------------------------------------------------------------------------- parsing


def test_is_intrinsic() -> None:
    assert is_intrinsic("States.Array()")
    assert not is_intrinsic("$.States")
    assert not is_intrinsic(" States.Array()")


def test_parse_builds_ast() -> None:
    call = parse("States.Array('a', -1, 2.5, true, false, null, $.x[0], $$.Execution.Id, $v.k)")
    assert call == Call(
        "States.Array",
        (
            Literal("a", ("a",)),
            Literal(-1),
            Literal(2.5),
            Literal(True),
            Literal(False),
            Literal(None),
            PathRef("$.x[0]"),
            PathRef("$$.Execution.Id"),
            PathRef("$v.k", "v"),
        ),
    )


def test_parse_is_cached() -> None:
    assert parse("States.UUID()") is parse("States.UUID()")


def test_parse_tolerates_whitespace() -> None:
    assert evaluate(" States.Array ( 1 ,\n\t$.a )  ", {"a": 2}, {}) == [1, 2]


def test_parse_nested_call() -> None:
    assert evaluate("States.ArrayLength(States.Array(1, 2, 3))", None, {}) == 3


def test_bracket_path_with_comma_and_paren() -> None:
    call = parse("States.Array($['a,b)'])")
    assert call.args == (PathRef("$['a,b)']"),)
    assert evaluate("States.Array($['a,b)'])", {"a,b)": 7}, {}) == [7]


def test_filter_path_with_parentheses() -> None:
    data = {"l": [{"x": 1}, {"x": 2}]}
    assert evaluate("States.ArrayLength($.l[?(@.x > 1)])", data, {}) == 1


def test_exponent_numbers_are_floats() -> None:
    assert evaluate("States.Array(1e3, -2.5E-1, 0)", None, {}) == [1000.0, -0.25, 0]


@pytest.mark.parametrize(
    "expression",
    [
        "States.Array(",
        "States.Array(1,)",
        "States.Array(1 2)",
        "States.Array('unterminated)",
        "States.Array(01)",
        "States.Array(1.)",
        "States.Array(-)",
        "States.Array(truex)",
        "States.Array($.a[0)",
        "States.Array($.a])",
        "States.Array($1)",
        "States.Array($$x)",
        "States.Array() extra",
        "States.Array(1e999)",
        "Array()",
        "States.()",
        "States.Array",
        "States.Array(@)",
    ],
)
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(IntrinsicFailure) as info:
        parse(expression)
    assert info.value.error == "States.IntrinsicFailure"
    assert validate(expression) == info.value.cause


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("States.Foo()", "unknown function 'States.Foo'"),
        ("States.format('x')", "unknown function 'States.format'"),
        ("States.UUID(1)", "takes 0 argument(s) but 1 were given"),
        ("States.ArrayRange(1, 2)", "takes 3 argument(s) but 2 were given"),
        ("States.MathRandom(1)", "takes 2 to 3 argument(s)"),
        ("States.Format()", "takes at least 1 argument(s) but 0 were given"),
        ("States.Format(1)", "argument 1 must be a string"),
        ("States.Hash('x', 'SHA-3')", "argument 2 must be one of MD5, SHA-1"),
        ("States.JsonMerge($.a, $.b, true)", "argument 3 must be false"),
        ("States.ArrayRange(1, 2, 0)", "argument 3 must be a non-zero integer"),
        ("States.ArrayLength('abc')", "argument 1 must be an array"),
    ],
)
def test_validate_reports_problems(expression: str, problem: str) -> None:
    message = validate(expression)
    assert message is not None and problem in message


def test_validate_accepts_valid_expressions() -> None:
    assert validate("States.Format('{} {}', $.a, States.UUID())") is None
    assert validate("States.Format($.template, $.a, $.b)") is None  # count unknown statically


def test_validate_limits_calls_per_field() -> None:
    # The AWS documentation's own example: nine calls in one field is fine, eleven is not.
    nine = (
        "States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
        "States.StringSplit($.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit("
        "States.ArrayGetItem(States.StringSplit($.Arn, '/'), 2), '.'), 1))"
    )
    # (That example has three placeholders and two values: the count is a runtime check.)
    assert validate(nine) is None
    with pytest.raises(IntrinsicFailure, match="3 placeholder"):
        evaluate(nine, {"Arn": "arn:aws:imagebuilder:r:1:image-recipe/a.b/1.0.0"}, {})
    eleven = "States.Array(" + ", ".join(["States.UUID()"] * 10) + ")"
    message = validate(eleven)
    assert message is not None and "11 function calls" in message


def test_deep_nesting_is_a_states_error() -> None:
    expression = "States.Array(" * 200 + ")" * 200
    with pytest.raises(IntrinsicFailure, match="nested too deeply"):
        parse(expression)


# --------------------------------------------------------------------------- string literals


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'it\'s'", "it's"),
        (r"'a\\b'", "a\\b"),
        (r"'\{\}'", "{}"),
        (r"'{\"a\": 1}'", '{\\"a\\": 1}'),  # unknown escapes keep their backslash
        ("'{\"a\": 1}'", '{"a": 1}'),  # lone braces need no escape
        ("'line\nbreak'", "line\nbreak"),
        ("''", ""),
    ],
)
def test_string_literal_escapes(literal: str, value: str) -> None:
    assert evaluate(f"States.Array({literal})", None, {}) == [value]


def test_escaped_braces_are_not_placeholders() -> None:
    result = evaluate(r"States.Format('\{\} is literal, {} is not', $.x)", {"x": 1}, {})
    assert result == "{} is literal, 1 is not"


def test_escaped_backslash_before_placeholder() -> None:
    assert evaluate(r"States.Format('\\{}', 'x')", None, {}) == "\\x"


def test_escaped_quote_inside_json_literal() -> None:
    expression = 'States.StringToJson(\'{"text":"An \\"escaped\\" quote"}\')'
    assert evaluate(expression, None, {}) == {"text": 'An "escaped" quote'}


# --------------------------------------------------------------------------- paths


def test_context_and_data_paths() -> None:
    context = {"Execution": {"Id": "exec-1"}}
    assert evaluate("States.Array($.a.b, $$.Execution.Id, $)", {"a": {"b": 1}}, context) == [
        1,
        "exec-1",
        {"a": {"b": 1}},
    ]


def test_missing_path_is_states_runtime() -> None:
    with pytest.raises(StatesRuntimeError) as info:
        evaluate("States.Array($.missing)", {}, {})
    assert info.value.error == "States.Runtime"


def test_variables() -> None:
    variables = {"template": "It's {}!", "obj": {"k": [1, 2]}}
    assert (
        evaluate("States.Format($template, $.name)", {"name": "Pikachu"}, {}, variables=variables)
        == "It's Pikachu!"
    )
    assert evaluate("States.ArrayLength($obj.k)", {}, {}, variables=variables) == 2


def test_undefined_variable_is_states_runtime() -> None:
    with pytest.raises(StatesRuntimeError, match="'nope' is not defined"):
        evaluate("States.Array($nope)", {}, {}, variables={})


def test_runtime_format_template_from_path() -> None:
    assert evaluate("States.Format($.t, 1, 'b')", {"t": "{}-{}"}, {}) == "1-b"
    with pytest.raises(IntrinsicFailure, match="1 placeholder"):
        evaluate("States.Format($.t)", {"t": "{}"}, {})
    with pytest.raises(IntrinsicFailure, match="must be a string"):
        evaluate("States.Format($.t)", {"t": 5}, {})


# --------------------------------------------------------------------------- Format / JSON


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (None, "null"),
        (True, "true"),
        (1, "1"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (1.1, "1.1"),
        (100.5, "100.5"),
        (1234567.0, "1234567.0"),
        (1e7, "1.0E7"),
        (1e20, "1.0E20"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1.5e-5, "1.5E-5"),
        (-2.5e300, "-2.5E300"),
        (12345678901234567890, "12345678901234567890"),
        ([1, "a", None, [True]], "[1, a, null, [true]]"),
        ({"Arg1": 1, "Arg2": [], "o": {"k": "v"}}, "{Arg1=1, Arg2=[], o={k=v}}"),
    ],
)
def test_format_renders_values_like_java(value: Any, text: str) -> None:
    assert evaluate("States.Format('<{}>', $.v)", {"v": value}, {}) == f"<{text}>"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        ("HelloWorld", '"HelloWorld"'),
        ([1, 2, "x"], '[1,2,"x"]'),
        ({"Arg1": 1, "Arg2": []}, '{"Arg1":1,"Arg2":[]}'),
        ({"f": 1.0, "big": 1e20}, '{"f":1.0,"big":1.0E20}'),
        ('q"\\\n\t\x01é/', '"q\\"\\\\\\n\\t\\u0001é/"'),
    ],
)
def test_json_to_string_is_compact(value: Any, text: str) -> None:
    assert evaluate("States.JsonToString($.v)", {"v": value}, {}) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None),
        ("   ", None),
        ("null", None),
        ("-0", 0),
        ("1.5", 1.5),
        ('{"a": [1, "b"]}', {"a": [1, "b"]}),
    ],
)
def test_string_to_json(text: str, value: Any) -> None:
    assert evaluate("States.StringToJson($.s)", {"s": text}, {}) == value


@pytest.mark.parametrize("text", ["{", "NaN", "Infinity", "1e999", "[1,]", "'a'"])
def test_string_to_json_rejects_invalid_json(text: str) -> None:
    with pytest.raises(IntrinsicFailure, match="not valid JSON"):
        evaluate("States.StringToJson($.s)", {"s": text}, {})


def test_string_to_json_requires_a_string() -> None:
    with pytest.raises(IntrinsicFailure, match="argument 1 must be a string, but was number"):
        evaluate("States.StringToJson($.s)", {"s": 1}, {})


def test_json_round_trip() -> None:
    data = {"v": {"a": [1, 2.5, None, True, "x"], "b": {}}}
    assert evaluate("States.StringToJson(States.JsonToString($.v))", data, {}) == data["v"]


# --------------------------------------------------------------------------- arrays


def test_array() -> None:
    assert evaluate("States.Array()", None, {}) == []
    assert evaluate("States.Array($.a, 'b', States.Array())", {"a": {"x": 1}}, {}) == [
        {"x": 1},
        "b",
        [],
    ]


@pytest.mark.parametrize(
    ("array", "size", "chunks"),
    [
        ([], 1, []),
        ([1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]),
        ([1, 2, 3], 5, [[1, 2, 3]]),
        ([1, 2, 3], 1.5, [[1, 2], [3]]),  # sizes are rounded
    ],
)
def test_array_partition(array: list[Any], size: float, chunks: list[Any]) -> None:
    data = {"a": array, "n": size}
    assert evaluate("States.ArrayPartition($.a, $.n)", data, {}) == chunks


@pytest.mark.parametrize("size", [0, -1, 0.4, "2", None])
def test_array_partition_rejects_bad_sizes(size: Any) -> None:
    with pytest.raises(IntrinsicFailure, match="argument 2 must be"):
        evaluate("States.ArrayPartition($.a, $.n)", {"a": [1], "n": size}, {})


def test_array_partition_rejects_non_arrays() -> None:
    with pytest.raises(IntrinsicFailure, match="argument 1 must be an array, but was object"):
        evaluate("States.ArrayPartition($.a, 1)", {"a": {}}, {})


@pytest.mark.parametrize(
    ("array", "value", "found"),
    [
        ([], None, False),
        ([[1, 2, 3], 2], [1, 2, 3], True),
        ([{"1": 2, "2": []}], {"2": [], "1": 2}, True),
        ([True, False], False, True),
        ([1, 2], True, False),  # JSON types differ even where Python says 1 == True
        ([0], False, False),
        ([1.0], 1, False),  # Java compares 1.0 and 1 as different nodes
        ([None], None, True),
    ],
)
def test_array_contains(array: list[Any], value: Any, found: bool) -> None:
    data = {"a": array, "v": value}
    assert evaluate("States.ArrayContains($.a, $.v)", data, {}) is found


@pytest.mark.parametrize(
    ("start", "end", "step", "result"),
    [
        (1, 9, 2, [1, 3, 5, 7, 9]),
        (0, 10, 3, [0, 3, 6, 9]),
        (1, 9, 9, [1]),
        (9, 1, -2, [9, 7, 5, 3, 1]),
        (0, 5, -1, []),
        (3, 3, 1, [3]),
        (0.0, 2.0, 1.0, [0, 1, 2]),
        (0, 999, 1, list(range(1000))),
    ],
)
def test_array_range(start: float, end: float, step: float, result: list[int]) -> None:
    data = {"s": start, "e": end, "t": step}
    assert evaluate("States.ArrayRange($.s, $.e, $.t)", data, {}) == result


def test_array_range_limit_is_1000_items() -> None:
    with pytest.raises(IntrinsicFailure, match="1001 items, more than the maximum of 1000"):
        evaluate("States.ArrayRange(0, 1000, 1)", None, {})
    with pytest.raises(IntrinsicFailure, match="more than the maximum"):
        evaluate("States.ArrayRange(0, 1000000000000, 1)", None, {})


@pytest.mark.parametrize("args", ["1.5, 2, 1", "1, 'x', 1", "1, 2, $.zero"])
def test_array_range_rejects_bad_arguments(args: str) -> None:
    with pytest.raises(IntrinsicFailure, match="Invalid arguments in States.ArrayRange"):
        evaluate(f"States.ArrayRange({args})", {"zero": 0}, {})


def test_array_get_item() -> None:
    data = {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}
    assert evaluate("States.ArrayGetItem($.a, 5)", data, {}) == 6
    assert evaluate("States.ArrayGetItem($.a, 0.0)", data, {}) == 1
    with pytest.raises(IntrinsicFailure, match="index 9 is out of bounds"):
        evaluate("States.ArrayGetItem($.a, 9)", data, {})
    with pytest.raises(IntrinsicFailure, match="non-negative integer"):
        evaluate("States.ArrayGetItem($.a, $.i)", {"a": [1], "i": -1}, {})
    with pytest.raises(IntrinsicFailure, match="an integer"):
        evaluate("States.ArrayGetItem($.a, $.i)", {"a": [1], "i": 0.5}, {})


def test_array_length() -> None:
    assert evaluate("States.ArrayLength($.a)", {"a": [None, None]}, {}) == 2
    with pytest.raises(IntrinsicFailure, match="must be an array, but was string"):
        evaluate("States.ArrayLength($.a)", {"a": "abc"}, {})


def test_array_unique() -> None:
    array = [None, None, True, 1, 1, 1.0, 0, False, "a", "a", [], [], {"a": 1}, {"a": 1}]
    expected = [None, True, 1, 1.0, 0, False, "a", [], {"a": 1}]
    assert evaluate("States.ArrayUnique($.a)", {"a": array}, {}) == expected


# --------------------------------------------------------------------------- encoding, hash


@pytest.mark.parametrize(
    ("text", "encoded"),
    [("", ""), ("Data to encode", "RGF0YSB0byBlbmNvZGU="), ("é✓", "w6ninJM=")],
)
def test_base64_round_trip(text: str, encoded: str) -> None:
    assert evaluate("States.Base64Encode($.s)", {"s": text}, {}) == encoded
    assert evaluate("States.Base64Decode($.s)", {"s": encoded}, {}) == text


def test_base64_decode_accepts_missing_padding() -> None:
    assert evaluate("States.Base64Decode('YWI')", None, {}) == "ab"


@pytest.mark.parametrize("text", ["not base64!", "a", "YW=I"])
def test_base64_decode_rejects_invalid_input(text: str) -> None:
    with pytest.raises(IntrinsicFailure, match="not valid base64"):
        evaluate("States.Base64Decode($.s)", {"s": text}, {})


@pytest.mark.parametrize("function", ["Base64Encode", "Base64Decode"])
def test_base64_input_limit(function: str) -> None:
    assert evaluate(f"States.{function}($.s)", {"s": "A" * 10_000}, {})
    with pytest.raises(IntrinsicFailure, match="maximum length of 10000 characters"):
        evaluate(f"States.{function}($.s)", {"s": "A" * 10_001}, {})


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
    ],
)
def test_hash(algorithm: str, digest: str) -> None:
    assert evaluate("States.Hash('input data', $.alg)", {"alg": algorithm}, {}) == digest


def test_hash_rejects_unknown_algorithm_and_long_input() -> None:
    with pytest.raises(IntrinsicFailure, match="must be one of MD5"):
        evaluate("States.Hash('x', $.alg)", {"alg": "sha-256"}, {})
    with pytest.raises(IntrinsicFailure, match="maximum length of 10000"):
        evaluate("States.Hash($.s, 'MD5')", {"s": "x" * 10_001}, {})
    with pytest.raises(IntrinsicFailure, match="argument 1 must be a string"):
        evaluate("States.Hash($.s, 'MD5')", {"s": {"a": 1}}, {})
    # Found by the property tests: an unhashable algorithm value once leaked a TypeError.
    with pytest.raises(IntrinsicFailure, match="must be one of MD5"):
        evaluate("States.Hash('x', $.alg)", {"alg": {}}, {})


# --------------------------------------------------------------------------- JsonMerge


def test_json_merge_is_shallow() -> None:
    data = {"a": {"x": {"k": 1}, "b": 2}, "b": {"x": {"j": 2}, "c": 3}}
    assert evaluate("States.JsonMerge($.a, $.b, false)", data, {}) == {
        "x": {"j": 2},
        "b": 2,
        "c": 3,
    }


def test_json_merge_rejects_deep_and_non_objects() -> None:
    with pytest.raises(IntrinsicFailure, match="argument 3 must be false"):
        evaluate("States.JsonMerge($.a, $.a, $.deep)", {"a": {}, "deep": True}, {})
    with pytest.raises(IntrinsicFailure, match="argument 2 must be an object, but was array"):
        evaluate("States.JsonMerge($.a, $.b, false)", {"a": {}, "b": []}, {})


# --------------------------------------------------------------------------- math


@pytest.mark.parametrize(
    ("left", "right", "total"),
    [
        (-9, 3, -6),
        (1.49, 1.5, 3),
        (0.5, 0, 1),
        (2.5, 0, 3),
        (-0.5, 0, 0),
        (-0.5, 0.5, 1),
        (-2.5, 0, -2),
        (-1.51, 0, -2),
        (0.49999999999999994, 0, 0),
        (2147483647, -2147483648, -1),
    ],
)
def test_math_add_rounds_like_java(left: float, right: float, total: int) -> None:
    assert evaluate("States.MathAdd($.a, $.b)", {"a": left, "b": right}, {}) == total


@pytest.mark.parametrize("value", [2147483648, -2147483649, "1", None, True])
def test_math_add_rejects_bad_operands(value: Any) -> None:
    with pytest.raises(IntrinsicFailure, match="Invalid arguments in States.MathAdd"):
        evaluate("States.MathAdd($.a, 1)", {"a": value}, {})


def test_math_random_range() -> None:
    results = {evaluate("States.MathRandom(1, 4)", None, {}) for _ in range(300)}
    assert results == {1, 2, 3}  # end is exclusive
    assert evaluate("States.MathRandom(5, 6)", None, {}) == 5
    rounded = evaluate("States.MathRandom($.s, $.e)", {"s": 12.5, "e": 14.4}, {})
    assert rounded == 13


def test_math_random_seed_is_deterministic() -> None:
    first = evaluate("States.MathRandom(0, 1000, 7)", None, {})
    assert all(evaluate("States.MathRandom(0, 1000, 7)", None, {}) == first for _ in range(5))
    assert isinstance(first, int) and 0 <= first < 1000


def test_math_random_rejects_empty_range() -> None:
    with pytest.raises(IntrinsicFailure, match="must be greater than the start"):
        evaluate("States.MathRandom(5, 5)", None, {})


# --------------------------------------------------------------------------- strings, UUID


@pytest.mark.parametrize(
    ("text", "delimiters", "parts"),
    [
        ("1,2,3", ",", ["1", "2", "3"]),
        (", , ,", ",", [" ", " "]),
        (",,,,", ",", []),
        ("This.is+a,test=string", ".+,=", ["This", "is", "a", "test", "string"]),
        ("split on T and \nnew line", "T\n", ["split on ", " and ", "new line"]),
        ("a]b\\c", "]\\", ["a", "b", "c"]),
        ("abc", "", ["abc"]),
        ("", ",", []),
    ],
)
def test_string_split_like_string_tokenizer(text: str, delimiters: str, parts: list[str]) -> None:
    data = {"s": text, "d": delimiters}
    assert evaluate("States.StringSplit($.s, $.d)", data, {}) == parts


def test_string_split_rejects_non_strings() -> None:
    with pytest.raises(IntrinsicFailure, match="argument 2 must be a string"):
        evaluate("States.StringSplit('a', $.d)", {"d": 1}, {})


def test_uuid_is_random_v4() -> None:
    first = evaluate("States.UUID()", None, {})
    second = evaluate("States.UUID()", None, {})
    pattern = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second)
    assert first != second


def test_every_function_is_covered() -> None:
    assert intrinsics.FUNCTION_NAMES == {
        f"States.{name}"
        for name in (
            "Format StringToJson JsonToString Array ArrayPartition ArrayContains ArrayRange "
            "ArrayGetItem ArrayLength ArrayUnique Base64Encode Base64Decode Hash JsonMerge "
            "MathRandom MathAdd StringSplit UUID"
        ).split()
    }
