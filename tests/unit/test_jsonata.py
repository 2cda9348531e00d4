"""Unit tests of orchestrator.language.jsonata_eval (Step Functions JSONata semantics)."""

from __future__ import annotations

import re

import pytest

from orchestrator.errors import QueryEvaluationError, StatesRuntimeError
from orchestrator.language import jsonata_eval as J

CTX = {"Execution": {"Name": "e"}, "State": {"Name": "S"}, "Map": {"Item": {"Value": 7}}}


def b(state_input=None, variables=None, **kw):
    return J.bindings({} if state_input is None else state_input, CTX, variables or {}, **kw)


def test_is_expression():
    assert J.is_expression("{% 1 %}")
    assert J.is_expression("{%$x%}")
    assert not J.is_expression("{% 1")
    assert not J.is_expression("$.x")
    assert not J.is_expression(1)
    assert J.expression_of("{%  $x  %}") == "$x"


def test_states_input_context_result_error_output():
    bind = b({"a": [1, 2, 3]}, result={"r": 1}, error_output={"Error": "E", "Cause": "c"})
    assert J.evaluate("{% $sum($states.input.a) %}", bind) == 6
    assert J.evaluate("{% $states.context.Map.Item.Value %}", bind) == 7
    assert J.evaluate("{% $states.result.r %}", bind) == 1
    assert J.evaluate("{% $states.errorOutput.Error %}", bind) == "E"


def test_result_absent_unless_given():
    assert J.evaluate("{% $states.result %}", b()) is J.UNDEFINED


def test_variables_and_null_variables():
    bind = b(variables={"v": 1, "n": None, "o": {"k": [1]}})
    assert J.evaluate("{% $v + 1 %}", bind) == 2
    assert J.evaluate("{% $n %}", bind) is None
    assert J.evaluate("{% $o.k[0] %}", bind) == 1
    assert J.evaluate("{% $missing %}", bind) is J.UNDEFINED


def test_integral_numbers_are_ints():
    assert J.evaluate("{% 6 / 2 %}", b()) == 3
    assert type(J.evaluate("{% 6 / 2 %}", b())) is int
    assert J.evaluate("{% 1.5 * 2 %}", b()) == 3
    assert J.evaluate("{% 0.1 %}", b()) == 0.1


def test_null_is_a_value_undefined_fails():
    bind = b({"bar": None})
    assert J.evaluate_template({"v": "{% $states.input.bar %}"}, bind) == {"v": None}
    with pytest.raises(QueryEvaluationError) as info:
        J.evaluate_template({"v": "{% $states.input.absent %}"}, bind, "Output")
    assert info.value.error == "States.QueryEvaluationError"
    assert info.value.cause == (
        "The JSONata expression '$states.input.absent' specified for the field "
        "'Output/v' returned nothing (undefined)."
    )


def test_template_field_paths():
    with pytest.raises(QueryEvaluationError, match=re.escape("'Output/a/b[1]'")):
        J.evaluate_template({"a": {"b": [1, "{% $nope %}"]}}, b())
    with pytest.raises(QueryEvaluationError, match=re.escape("field 'Arguments' returned")):
        J.evaluate_template("{% $doesNotExist %}", b(), "Arguments")


def test_template_literals_verbatim():
    template = {"n": None, "i": 0, "f": 0.1, "s": "text", "p": "$.not.a.path", "l": [True]}
    assert J.evaluate_template(template, b()) == template
    assert J.evaluate_template("{% [1, 'two', 3] %}", b()) == [1, "two", 3]


def test_assign_sees_previous_values():
    bind = b({"x": 5}, variables={"a": 1})
    assert J.assign_jsonata({"a": "{% $a + 1 %}", "b": "{% $a %}"}, bind) == {"a": 2, "b": 1}
    with pytest.raises(QueryEvaluationError, match=re.escape("'Assign/c'")):
        J.assign_jsonata({"c": "{% $zz %}"}, bind)


def test_step_functions_functions():
    assert J.evaluate("{% $partition([1, 2, 3], 2) %}", b()) == [[1, 2], [3]]
    assert J.evaluate("{% $partition([0], 1) %}", b()) == [[0]]
    assert J.evaluate("{% $range(0, 10, 3) %}", b()) == [0, 3, 6, 9]
    assert J.evaluate("{% $range(1, 9, 9) %}", b()) == 1  # a single value collapses
    assert J.evaluate("{% $range(1, 9, -1) %}", b()) is J.UNDEFINED
    assert J.evaluate("{% $parse('{\"a\": [1, 2]}') %}", b()) == {"a": [1, 2]}
    assert J.evaluate("{% $parse('-0') %}", b()) == 0
    assert J.evaluate("{% $hash('a', 'SHA-256') %}", b()).startswith("ca978112")
    assert J.evaluate("{% $random(1) %}", b()) == J.evaluate("{% $random(1) %}", b())
    assert 0 <= J.evaluate("{% $random() %}", b()) < 1
    assert re.fullmatch(r"[0-9a-f-]{36}", J.evaluate("{% $uuid() %}", b()))


def test_eval_is_disabled():
    with pytest.raises(QueryEvaluationError, match="T1006"):
        J.evaluate("{% $eval('1') %}", b())


def test_regex_and_comparisons():
    assert J.evaluate('{% $contains("hello$world", /^hello\\$/) %}', b()) is True
    assert J.evaluate("{% $states.input = '\"' %}", b('"')) is True


def test_function_result_is_unsupported():
    with pytest.raises(QueryEvaluationError, match="returned an unsupported result type"):
        J.evaluate("{% $fn := function($x){$x} %}", b(), field="Items")


def test_typed_items():
    assert J.evaluate_typed("{% [1] %}", b(), "Items", "array") == [1]
    with pytest.raises(QueryEvaluationError) as info:
        J.evaluate_typed("{% {'foo': 'bar'} %}", b(), "Items", "array")
    assert info.value.cause == (
        "The JSONata expression '{'foo': 'bar'}' specified for the field 'Items' returned an "
        "unexpected result type. Expected 'array', but was 'object' for value: {\"foo\":\"bar\"}"
    )
    assert J.evaluate_typed("{% 2.0 %}", b(), "Seconds", "integer") == 2


def test_syntax_errors():
    assert J.validate("{% $x + 1 %}") is None
    assert "invalid JSONata" in (J.validate("{% 1 + %}") or "")
    with pytest.raises(QueryEvaluationError):
        J.evaluate("{% 1 + %}", b())


def test_jsonpath_variable_paths():
    variables = {"v": {"a": [1, 2]}, "s": "x"}
    assert J.is_variable_path("$v.a")
    assert not J.is_variable_path("$.v")
    assert not J.is_variable_path("$$.Execution")
    assert J.read_variable_path("$v.a[1]", variables) == 2
    assert J.read_variable_path("$s", variables) == "x"
    with pytest.raises(StatesRuntimeError):
        J.read_variable_path("$nope", variables)


def test_assign_jsonpath():
    out = J.evaluate_assign_jsonpath(
        {
            "a.$": "$v",
            "b.$": "$.x[1]",
            "c": {"lit": 1},
            "d.$": "$$.State.Name",
            "e.$": "States.Format('{}', $.x[0])",
            "v": 0,
        },
        {"x": [5, 6]},
        CTX,
        {"v": {"k": 1}, "keep": True},
    )
    assert out == {
        "v": 0,
        "keep": True,
        "a": {"k": 1},
        "b": 6,
        "c": {"lit": 1},
        "d": "S",
        "e": "5",
    }
