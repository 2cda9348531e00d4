"""Definition validation: every problem is reported, with its path, in one DefinitionError."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.errors import DefinitionError
from orchestrator.language.definition import TaskState, parse_definition


def machine(*states: tuple[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    """Build a definition whose StartAt is the first state."""
    return {"StartAt": states[0][0], "States": dict(states), **top}


def issues(definition: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(definition, **kwargs)
    return [str(issue) for issue in raised.value.issues]


def end(state_type: str = "Pass", **fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": state_type, **fields}
    if state_type not in ("Succeed", "Fail", "Choice") and "Next" not in fields:
        state.setdefault("End", True)
    return state


def test_valid_minimal() -> None:
    parse_definition(machine(("A", end())))


def test_bad_next_is_reported_with_path_and_message() -> None:
    found = issues(
        machine(
            ("Charge", {"Type": "Pass", "Next": "Chrage"}),
            ("Done", end("Succeed")),
        )
    )
    assert "$.States.Charge.Next: no state named 'Chrage' (did you mean 'Charge'?)" in found


def test_all_issues_are_collected() -> None:
    definition = {
        "StartAt": "Nope",
        "Extra": 1,
        "States": {
            "A": {"Type": "Pass", "Next": "Missing", "Foo": 1},
            "B": {"Type": "Teleport"},
            "C": {"Type": "Task", "End": True},
        },
    }
    found = issues(definition)
    assert "$.Extra: unknown field 'Extra'" in found
    assert "$.StartAt: no state named 'Nope'" in found
    assert "$.States.A.Next: no state named 'Missing'" in found
    assert "$.States.A.Foo: unknown field 'Foo'" in found
    assert "$.States.B.Type: unknown state type 'Teleport'" in found
    assert "$.States.C: missing required field 'Resource'" in found


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"States": {"A": end()}}, "$: missing required field 'StartAt'"),
        ({"StartAt": "A"}, "$: missing required field 'States'"),
        ({"StartAt": 3, "States": {"A": end()}}, "$.StartAt: must be a string, not number"),
        ({"StartAt": "A", "States": []}, "$.States: must be an object, not array"),
        ({"StartAt": "A", "States": {}}, "$.States: must contain at least one state"),
        (
            {"StartAt": "A", "States": {"A": end()}, "TimeoutSeconds": 0},
            "$.TimeoutSeconds: must be >= 1, not 0",
        ),
        (
            {"StartAt": "A", "States": {"A": end()}, "QueryLanguage": "XPath"},
            "$.QueryLanguage: must be 'JSONPath' or 'JSONata'",
        ),
        (
            {"StartAt": "A", "States": {"A": end()}, "Comment": 5},
            "$.Comment: must be a string, not number",
        ),
        (
            {"StartAt": "A", "States": {"A": "Pass"}},
            "$.States.A: a state must be an object, not string",
        ),
        (
            {"StartAt": "A", "States": {"A": {"End": True}}},
            "$.States.A: missing required field 'Type'",
        ),
    ],
)
def test_top_level_structure(definition: dict[str, Any], expected: str) -> None:
    assert expected in issues(definition)


def test_unreachable_state() -> None:
    found = issues(machine(("A", end()), ("Orphan", end())))
    assert found == ["$.States.Orphan: state is not reachable from StartAt"]


def test_reachability_follows_choice_and_catch() -> None:
    parse_definition(
        machine(
            (
                "T",
                {
                    "Type": "Task",
                    "Resource": "arn:t",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}],
                    "Next": "C",
                },
            ),
            (
                "C",
                {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "X"}],
                    "Default": "D",
                },
            ),
            ("X", end("Succeed")),
            ("D", end("Succeed")),
            ("Handler", end("Fail")),
        )
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Type": "Pass"}, "$.States.A: a state must have either 'Next' or 'End': true"),
        (
            {"Type": "Pass", "Next": "B", "End": True},
            "$.States.A: 'Next' and 'End' are mutually exclusive",
        ),
        ({"Type": "Pass", "End": "yes"}, "$.States.A.End: must be a boolean, not string"),
        (
            {"Type": "Succeed", "Next": "B"},
            "$.States.A.Next: field 'Next' is not allowed in a Succeed state",
        ),
        (
            {"Type": "Fail", "End": True},
            "$.States.A.End: field 'End' is not allowed in a Fail state",
        ),
        (
            {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "B"}],
                "End": True,
            },
            "$.States.A.End: field 'End' is not allowed in a Choice state",
        ),
        (
            {"Type": "Pass", "End": True, "Resource": "x"},
            "$.States.A.Resource: field 'Resource' is not allowed in a Pass state",
        ),
    ],
)
def test_transitions(state: dict[str, Any], expected: str) -> None:
    assert expected in issues(machine(("A", state), ("B", end("Succeed"))))


def test_long_state_name() -> None:
    name = "N" * 81
    assert f"$.States.{name}: state name is longer than 80 characters" in issues(
        machine((name, end()))
    )
    parse_definition(machine(("N" * 80, end())))


@pytest.mark.parametrize(
    "name", ["Check A/B", "Item[1]", "a|s", "x]", "Parallel w/ UUID", "100%", "/" * 80]
)
def test_state_names_with_step_key_separators_are_accepted(name: str) -> None:
    # Step Functions allows them; step keys escape them (orchestrator/language/stepkeys.py).
    assert name in parse_definition(machine((name, end()))).states


def test_state_names_in_branches_may_hold_separators_too_and_spaces_are_fine() -> None:
    inner = {"StartAt": "x/y", "States": {"x/y": end()}}
    parse_definition(machine(("Fan out", {"Type": "Parallel", "Branches": [inner], "End": True})))


def test_empty_state_name() -> None:
    assert "$.States.: state name must not be empty" in issues(machine(("", end())))


def test_branches_are_their_own_scope() -> None:
    definition = machine(
        (
            "P",
            end(
                "Parallel",
                Branches=[
                    {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Outside"}}},
                    {"StartAt": "Nope", "States": {"Y": end(), "Z": end()}},
                ],
                Next="Outside",
            ),
        ),
        ("Outside", end("Succeed")),
    )
    found = issues(definition)
    assert "$.States.P.Branches[0].States.X.Next: no state named 'Outside'" in found
    assert "$.States.P.Branches[1].StartAt: no state named 'Nope'" in found


def test_parallel_needs_branches() -> None:
    assert "$.States.P.Branches: must contain at least one branch" in issues(
        machine(("P", end("Parallel", Branches=[])))
    )
    assert "$.States.P: missing required field 'Branches'" in issues(
        machine(("P", end("Parallel")))
    )


def test_map_processor_paths() -> None:
    found = issues(
        machine(
            (
                "M",
                end(
                    "Map",
                    ItemProcessor={
                        "StartAt": "Y",
                        "States": {
                            "Y": end(
                                "Task",
                                Resource="arn:y",
                                Retry=[{"ErrorEquals": ["A"]}, {"ErrorEquals": []}],
                            )
                        },
                    },
                ),
            )
        )
    )
    assert found == ["$.States.M.ItemProcessor.States.Y.Retry[1].ErrorEquals: must not be empty"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "$.States.M: missing required field 'ItemProcessor'"),
        (
            {
                "ItemProcessor": {"StartAt": "Y", "States": {"Y": end()}},
                "Iterator": {"StartAt": "Y", "States": {"Y": end()}},
            },
            "$.States.M: 'ItemProcessor' and 'Iterator' are mutually exclusive",
        ),
        (
            {"ItemSelector": {}, "Parameters": {}},
            "$.States.M: 'ItemSelector' and 'Parameters' are mutually exclusive",
        ),
        ({"MaxConcurrency": -1}, "$.States.M.MaxConcurrency: must be >= 0, not -1"),
        ({"MaxConcurrency": "5"}, "$.States.M.MaxConcurrency: must be an integer, not string"),
        (
            {"ToleratedFailurePercentage": 101},
            "$.States.M.ToleratedFailurePercentage: must be between 0 and 100, not 101",
        ),
        (
            {"ItemsPath": "items"},
            "$.States.M.ItemsPath: invalid JSONPath 'items': must start with '$'",
        ),
        (
            {
                "ItemProcessor": {
                    "StartAt": "Y",
                    "States": {"Y": end()},
                    "ProcessorConfig": {"Mode": "FAST"},
                }
            },
            "$.States.M.ItemProcessor.ProcessorConfig.Mode: must be one of INLINE, DISTRIBUTED",
        ),
    ],
)
def test_map(fields: dict[str, Any], expected: str) -> None:
    state = end("Map", **fields)
    if "Iterator" not in fields:
        state.setdefault("ItemProcessor", {"StartAt": "Y", "States": {"Y": end()}})
    if not fields:
        del state["ItemProcessor"]
    assert expected in issues(machine(("M", state)))


def test_legacy_iterator_paths() -> None:
    found = issues(
        machine(("M", end("Map", Iterator={"StartAt": "Y", "States": {"Y": {"Type": "Pass"}}})))
    )
    assert found == ["$.States.M.Iterator.States.Y: a state must have either 'Next' or 'End': true"]


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        (
            [{"ErrorEquals": ["States.ALL", "X"]}],
            "$.States.T.Retry[0].ErrorEquals: 'States.ALL' must appear alone in ErrorEquals",
        ),
        (
            [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}],
            "$.States.T.Retry[0].ErrorEquals: 'States.ALL' must only appear in the last rule",
        ),
        ([{}], "$.States.T.Retry[0]: missing required field 'ErrorEquals'"),
        ([{"ErrorEquals": "X"}], "$.States.T.Retry[0].ErrorEquals: must be an array, not string"),
        (
            [{"ErrorEquals": ["X"], "IntervalSeconds": 0}],
            "$.States.T.Retry[0].IntervalSeconds: must be >= 1, not 0",
        ),
        (
            [{"ErrorEquals": ["X"], "MaxAttempts": -1}],
            "$.States.T.Retry[0].MaxAttempts: must be >= 0, not -1",
        ),
        (
            [{"ErrorEquals": ["X"], "BackoffRate": 0.5}],
            "$.States.T.Retry[0].BackoffRate: must be >= 1.0, not 0.5",
        ),
        (
            [{"ErrorEquals": ["X"], "MaxDelaySeconds": 0}],
            "$.States.T.Retry[0].MaxDelaySeconds: must be >= 1, not 0",
        ),
        (
            [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}],
            "$.States.T.Retry[0].JitterStrategy: must be 'FULL' or 'NONE'",
        ),
        ([{"ErrorEquals": ["X"], "Delay": 1}], "$.States.T.Retry[0].Delay: unknown field 'Delay'"),
        ({"ErrorEquals": ["X"]}, "$.States.T.Retry: must be an array, not object"),
    ],
)
def test_retry(retry: Any, expected: str) -> None:
    assert expected in issues(machine(("T", end("Task", Resource="arn:t", Retry=retry))))


@pytest.mark.parametrize(
    ("catch", "expected"),
    [
        ([{"ErrorEquals": ["X"]}], "$.States.T.Catch[0]: missing required field 'Next'"),
        (
            [{"ErrorEquals": ["X"], "Next": "Nope"}],
            "$.States.T.Catch[0].Next: no state named 'Nope'",
        ),
        (
            [{"ErrorEquals": ["States.ALL"], "Next": "H"}, {"ErrorEquals": ["X"], "Next": "H"}],
            "$.States.T.Catch[0].ErrorEquals: 'States.ALL' must only appear in the last rule",
        ),
        (
            [{"ErrorEquals": ["X"], "Next": "H", "ResultPath": "$.a[*]"}],
            "$.States.T.Catch[0].ResultPath: invalid reference path '$.a[*]': "
            "wildcards, filters and slices are not allowed",
        ),
    ],
)
def test_catch(catch: Any, expected: str) -> None:
    found = issues(
        machine(("T", end("Task", Resource="arn:t", Catch=catch)), ("H", end("Succeed")))
    )
    assert expected in found


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"TimeoutSeconds": 0}, "$.States.T.TimeoutSeconds: must be >= 1, not 0"),
        ({"TimeoutSeconds": 1.5}, "$.States.T.TimeoutSeconds: must be an integer, not number"),
        (
            {"TimeoutSeconds": "{% 5 %}"},
            "$.States.T.TimeoutSeconds: must be an integer, not string",
        ),
        (
            {"TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"},
            "$.States.T: 'TimeoutSeconds' and 'TimeoutSecondsPath' are mutually exclusive",
        ),
        (
            {"TimeoutSeconds": 5, "HeartbeatSeconds": 5},
            "$.States.T.HeartbeatSeconds: must be smaller than TimeoutSeconds",
        ),
        (
            {"HeartbeatSecondsPath": "nope"},
            "$.States.T.HeartbeatSecondsPath: invalid JSONPath 'nope': must start with '$'",
        ),
        ({"Resource": 5}, "$.States.T.Resource: must be a string, not number"),
        ({"Credentials": "x"}, "$.States.T.Credentials: must be an object, not string"),
        (
            {"Output": "{% 1 %}"},
            "$.States.T.Output: field 'Output' is only supported in JSONata states",
        ),
        (
            {"Arguments": {}},
            "$.States.T.Arguments: field 'Arguments' is only supported in JSONata states",
        ),
    ],
)
def test_task(fields: dict[str, Any], expected: str) -> None:
    state = end("Task", **{"Resource": "arn:t", **fields})
    assert expected in issues(machine(("T", state)))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {},
            "$.States.W: a Wait state needs exactly one of 'Seconds', 'SecondsPath', "
            "'Timestamp', 'TimestampPath' (found 0)",
        ),
        ({"Seconds": 1, "SecondsPath": "$.s"}, "(found 2)"),
        ({"Seconds": -1}, "$.States.W.Seconds: must be >= 0, not -1"),
        (
            {"Timestamp": "yesterday"},
            "$.States.W.Timestamp: invalid RFC 3339 timestamp 'yesterday'",
        ),
        ({"TimestampPath": "$..t"}, None),
    ],
)
def test_wait(fields: dict[str, Any], expected: str | None) -> None:
    definition = machine(("W", end("Wait", **fields)))
    if expected is None:
        parse_definition(definition)
    else:
        assert any(expected in issue for issue in issues(definition))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"Error": "E", "ErrorPath": "$.e"},
            "$.States.F: 'Error' and 'ErrorPath' are mutually exclusive",
        ),
        (
            {"Cause": "C", "CausePath": "$.c"},
            "$.States.F: 'Cause' and 'CausePath' are mutually exclusive",
        ),
        ({"Error": 5}, "$.States.F.Error: must be a string, not number"),
        ({"CausePath": "c"}, "$.States.F.CausePath: invalid JSONPath 'c': must start with '$'"),
    ],
)
def test_fail(fields: dict[str, Any], expected: str) -> None:
    assert expected in issues(machine(("F", end("Fail", **fields))))


def test_fail_path_may_be_an_intrinsic() -> None:
    parse_definition(machine(("F", end("Fail", CausePath="States.Format('x {}', $.a)"))))


def choice(*rules: Any, **fields: Any) -> dict[str, Any]:
    return machine(
        ("C", {"Type": "Choice", "Choices": list(rules), **fields}),
        ("X", end("Succeed")),
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"Variable": "$.x", "StringEquals": "a"},
            "$.States.C.Choices[0]: missing required field 'Next'",
        ),
        (
            {"StringEquals": "a", "Next": "X"},
            "$.States.C.Choices[0]: missing required field 'Variable'",
        ),
        (
            {"Variable": "$.x", "Next": "X"},
            "$.States.C.Choices[0]: a rule needs one comparison operator, or 'And', 'Or' or 'Not'",
        ),
        (
            {"Variable": "$.x", "StringEquals": "a", "IsNull": True, "Next": "X"},
            "$.States.C.Choices[0]: a rule must have exactly one operator, "
            "found 'StringEquals', 'IsNull'",
        ),
        (
            {"Variable": "$.x", "StringEquals": 1, "Next": "X"},
            "$.States.C.Choices[0].StringEquals: must be a string, not number",
        ),
        (
            {"Variable": "$.x", "StringMatches": 1, "Next": "X"},
            "$.States.C.Choices[0].StringMatches: must be a string, not number",
        ),
        (
            {"Variable": "$.x", "NumericEquals": "1", "Next": "X"},
            "$.States.C.Choices[0].NumericEquals: must be a number, not string",
        ),
        (
            {"Variable": "$.x", "NumericLessThan": True, "Next": "X"},
            "$.States.C.Choices[0].NumericLessThan: must be a number, not boolean",
        ),
        (
            {"Variable": "$.x", "BooleanEquals": "true", "Next": "X"},
            "$.States.C.Choices[0].BooleanEquals: must be a boolean, not string",
        ),
        (
            {"Variable": "$.x", "IsPresent": 1, "Next": "X"},
            "$.States.C.Choices[0].IsPresent: must be a boolean, not number",
        ),
        (
            {"Variable": "$.x", "TimestampEquals": "2020", "Next": "X"},
            "$.States.C.Choices[0].TimestampEquals: invalid RFC 3339 timestamp '2020'",
        ),
        (
            {"Variable": "$.x", "StringEqualsPath": "y", "Next": "X"},
            "$.States.C.Choices[0].StringEqualsPath: invalid JSONPath 'y': must start with '$'",
        ),
        (
            {"Variable": "x", "IsNull": True, "Next": "X"},
            "$.States.C.Choices[0].Variable: invalid JSONPath 'x': must start with '$'",
        ),
        (
            {"Variable": "$.x", "Equals": 1, "Next": "X"},
            "$.States.C.Choices[0].Equals: "
            "unknown comparison operator 'Equals' (did you mean 'StringEquals'?)",
        ),
        (
            {"Variable": "$.x", "IsNull": True, "Next": "Nope"},
            "$.States.C.Choices[0].Next: no state named 'Nope'",
        ),
        ({"And": [], "Next": "X"}, "$.States.C.Choices[0].And: must contain at least one rule"),
        (
            {"And": [{"Variable": "$.x", "IsNull": True, "Next": "X"}], "Next": "X"},
            "$.States.C.Choices[0].And[0].Next: field 'Next' is not allowed in a nested rule",
        ),
        (
            {
                "Or": [
                    {"Variable": "$.x", "IsNull": True},
                    {"And": [{"Variable": 5, "IsNull": True}]},
                ],
                "Next": "X",
            },
            "$.States.C.Choices[0].Or[1].And[0].Variable: must be a JSONPath string, not number",
        ),
        (
            {"Not": {"Variable": "$.x"}, "Next": "X"},
            "$.States.C.Choices[0].Not: "
            "a rule needs one comparison operator, or 'And', 'Or' or 'Not'",
        ),
        (
            {"Condition": "{% true %}", "Next": "X"},
            "$.States.C.Choices[0].Condition: field 'Condition' is only supported in JSONata rules",
        ),
        ("rule", "$.States.C.Choices[0]: a Choice rule must be an object, not string"),
    ],
)
def test_choice_rules(rule: Any, expected: str) -> None:
    assert expected in issues(choice(rule))


def test_choice_and_variable_paths_in_nested_rules() -> None:
    found = issues(
        choice(
            {"Variable": "$.a", "IsNull": True, "Next": "X"},
            {"Variable": "$.a", "IsNull": True, "Next": "X"},
            {
                "And": [{"Variable": "$.a", "IsNull": True}, {"Variable": "bad", "IsNull": True}],
                "Next": "X",
            },
        )
    )
    assert found == [
        "$.States.C.Choices[2].And[1].Variable: invalid JSONPath 'bad': must start with '$'"
    ]


def test_choice_needs_choices() -> None:
    assert "$.States.C.Choices: must contain at least one rule" in issues(choice())
    assert "$.States.C.Default: no state named 'Nope'" in issues(
        choice({"Variable": "$.a", "IsNull": True, "Next": "X"}, Default="Nope")
    )


def test_choice_accepts_context_and_variable_paths() -> None:
    parse_definition(
        choice(
            {"Variable": "$$.Execution.Name", "StringEquals": "x", "Next": "X"},
            {"Variable": "$counter", "NumericGreaterThanPath": "$limit.max", "Next": "X"},
            {"Variable": "$.a", "StringMatches": "log-*", "Next": "X"},
            {"Variable": "$.a", "IsTimestamp": True, "Next": "X"},
            {"Variable": "$.t", "TimestampLessThan": "2020-01-01T00:00:00.123+02:00", "Next": "X"},
        )
    )


def test_jsonata_choice_rules() -> None:
    definition = choice(
        {"Condition": "{% $states.input.x > 1 %}", "Next": "X"},
        {"Variable": "$.x", "IsNull": True, "Next": "X"},
        {"Next": "X"},
        QueryLanguage="JSONata",
    )
    found = issues(definition)
    assert (
        "$.States.C.Choices[1].Variable: "
        "field 'Variable' is not supported in JSONata rules (use 'Condition')" in found
    )
    assert (
        "$.States.C.Choices[1].IsNull: "
        "field 'IsNull' is not supported in JSONata rules (use 'Condition')" in found
    )
    assert "$.States.C.Choices[2]: missing required field 'Condition'" in found


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"InputPath": "a.b"}, "$.States.A.InputPath: invalid JSONPath 'a.b': must start with '$'"),
        ({"OutputPath": "$.["}, "$.States.A.OutputPath: invalid JSONPath '$.['"),
        ({"ResultPath": "$..a"}, "$.States.A.ResultPath: invalid reference path '$..a'"),
        ({"ResultPath": "$.a[1:2]"}, "$.States.A.ResultPath: invalid reference path"),
        ({"ResultPath": "$.a[?(@.b)]"}, "$.States.A.ResultPath: invalid reference path"),
        ({"ResultPath": "$$.a"}, "$.States.A.ResultPath: invalid"),
        (
            {"Parameters": {"a": {"b.$": "nope"}}},
            "$.States.A.Parameters.a.b.$: invalid JSONPath 'nope': must start with '$'",
        ),
        (
            {"Parameters": {"a.$": 5}},
            "$.States.A.Parameters.a.$: must be a JSONPath string, not number",
        ),
        (
            {"Parameters": {"l": [{"x.$": "$["}]}},
            "$.States.A.Parameters.l[0].x.$: invalid JSONPath",
        ),
        ({"Parameters": None}, "$.States.A.Parameters: must not be null"),
        ({"Assign": {"v.$": "bad"}}, "$.States.A.Assign.v.$: invalid JSONPath 'bad'"),
        ({"Assign": []}, "$.States.A.Assign: must be an object, not array"),
        ({"InputPath": 3}, "$.States.A.InputPath: must be a JSONPath string, not number"),
    ],
)
def test_paths(fields: dict[str, Any], expected: str) -> None:
    assert any(issue.startswith(expected) for issue in issues(machine(("A", end(**fields)))))


@pytest.mark.parametrize(
    "fields",
    [
        {"InputPath": "$.a[0].b", "OutputPath": "$['x y']", "ResultPath": "$.r['k'][2]"},
        {"Parameters": {"a.$": "States.Format('{}', $.x)", "b.$": "$$.Execution.Id", "c.$": "$v"}},
        {"Parameters": {"a.$": "$.items[?(@.n > 1)]", "b.$": "$..id", "c.$": "$.l[-1:]"}},
        {"InputPath": None, "OutputPath": None, "ResultPath": None},
        {"Assign": {"x.$": "$.a", "y": 1}},
    ],
)
def test_valid_paths(fields: dict[str, Any]) -> None:
    parse_definition(machine(("A", end(**fields))))


def test_jsonata_mode_rejects_jsonpath_fields() -> None:
    found = issues(
        machine(
            (
                "T",
                end(
                    "Task",
                    Resource="arn:t",
                    InputPath="$",
                    ResultSelector={},
                    TimeoutSecondsPath="$.t",
                ),
            ),
            QueryLanguage="JSONata",
        )
    )
    assert "$.States.T.InputPath: field 'InputPath' is not supported in JSONata states" in found
    assert (
        "$.States.T.ResultSelector: field 'ResultSelector' is not supported in JSONata states"
        in found
    )
    assert (
        "$.States.T.TimeoutSecondsPath: "
        "field 'TimeoutSecondsPath' is not supported in JSONata states" in found
    )


def test_per_state_query_language_overrides_machine() -> None:
    parse_definition(
        machine(
            ("A", {"Type": "Pass", "QueryLanguage": "JSONata", "Output": 1, "Next": "B"}),
            ("B", end(ResultPath="$.x")),
        )
    )
    found = issues(machine(("A", end(QueryLanguage="JSONPath", Output=1)), QueryLanguage="JSONata"))
    assert found == ["$.States.A.Output: field 'Output' is only supported in JSONata states"]


def test_jsonata_expressions_for_numbers() -> None:
    parse_definition(
        machine(
            ("W", {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "T"}),
            ("T", end("Task", Resource="arn:t", TimeoutSeconds="{% 5 %}", HeartbeatSeconds=1)),
            QueryLanguage="JSONata",
        )
    )


def test_resource_check_runs_on_nested_tasks() -> None:
    seen: list[str] = []

    def check(task: TaskState) -> str | None:
        seen.append(task.resource)
        return None if task.resource.startswith("arn:ok") else f"unknown resource {task.resource!r}"

    definition = machine(
        ("T", end("Task", Resource="arn:ok:1", Next="P")),
        (
            "P",
            end(
                "Parallel",
                Branches=[{"StartAt": "B", "States": {"B": end("Task", Resource="arn:bad:b")}}],
                Next="M",
            ),
        ),
        (
            "M",
            end(
                "Map", Iterator={"StartAt": "I", "States": {"I": end("Task", Resource="arn:bad:i")}}
            ),
        ),
    )
    found = issues(definition, resource_check=check)
    assert found == [
        "$.States.P.Branches[0].States.B.Resource: unknown resource 'arn:bad:b'",
        "$.States.M.Iterator.States.I.Resource: unknown resource 'arn:bad:i'",
    ]
    assert seen == ["arn:ok:1", "arn:bad:b", "arn:bad:i"]


def test_resource_check_reported_with_other_issues_but_not_when_unbuildable() -> None:
    calls: list[TaskState] = []

    def check(task: TaskState) -> str:
        calls.append(task)
        return "nope"

    found = issues(
        machine(("T", end("Task", Resource="arn:t")), ("Orphan", end())), resource_check=check
    )
    assert found == [
        "$.States.Orphan: state is not reachable from StartAt",
        "$.States.T.Resource: nope",
    ]
    calls.clear()
    issues(machine(("T", end("Task", Resource="arn:t", Foo=1))), resource_check=check)
    assert calls == []


def test_issues_never_mutate_the_source() -> None:
    definition = machine(("M", end("Map", Iterator={"StartAt": "I", "States": {"I": end()}})))
    before = copy.deepcopy(definition)
    parse_definition(definition)
    assert definition == before


# -- everything is found before anything runs ---------------------------------------------


def pass_with(**fields: Any) -> dict[str, Any]:
    return machine(("A", end(**fields)))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "States.ArraySum($.x)",
            "unknown function 'States.ArraySum' (did you mean 'States.Array'?)",
        ),
        ("States.Format($.x", "expected ')', found end of input"),
        ("States.ArrayLength($.x, 3)", "States.ArrayLength takes 1 argument(s) but 2 were given"),
        ("States.Hash('x', 'SHA-3')", "argument 2 must be one of MD5"),
        ("States.Format('{}', States.Nope())", "unknown function 'States.Nope'"),
    ],
)
def test_intrinsic_problems_are_definition_errors(expression: str, expected: str) -> None:
    for key in ("Parameters", "ResultSelector"):
        state = end("Task", Resource="arn:t", **{key: {"x.$": expression}})
        (found,) = issues(machine(("A", state)))
        assert found.startswith(f"$.States.A.{key}.x.$: Invalid intrinsic function")
        assert expected in found


def test_intrinsics_are_checked_everywhere_they_may_appear() -> None:
    bad = "States.ArrayLength()"
    definition = machine(
        ("P", end(Parameters={"deep": [{"x.$": bad}]}, Assign={"v.$": bad}, Next="T")),
        (
            "T",
            end(
                "Task",
                Resource="arn:t",
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "F", "Assign": {"w.$": bad}}],
                Next="M",
            ),
        ),
        (
            "M",
            end(
                "Map",
                ItemSelector={"i.$": bad},
                ItemProcessor={"StartAt": "I", "States": {"I": end(Parameters={"y.$": bad})}},
                Next="C",
            ),
        ),
        (
            "C",
            {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.x", "IsNull": True, "Next": "F", "Assign": {"z.$": bad}}
                ],
                "Default": "F",
            },
        ),
        ("F", {"Type": "Fail", "ErrorPath": bad, "CausePath": "$.cause"}),
    )
    paths = [found.split(": ")[0] for found in issues(definition)]
    assert paths == [
        "$.States.P.Parameters.deep[0].x.$",
        "$.States.P.Assign.v.$",
        "$.States.T.Catch[0].Assign.w.$",
        "$.States.M.ItemSelector.i.$",
        "$.States.M.ItemProcessor.States.I.Parameters.y.$",
        "$.States.C.Choices[0].Assign.z.$",
        "$.States.F.ErrorPath",
    ]


def jsonata(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return machine(*states, QueryLanguage="JSONata")


def test_jsonata_syntax_errors_in_every_expression_field() -> None:
    bad = "{% $x + %}"
    definition = jsonata(
        ("P", end(Output={"a": [bad]}, Assign={"v": bad}, Next="T")),
        (
            "T",
            end(
                "Task",
                Resource="arn:t",
                Arguments=bad,
                TimeoutSeconds=bad,
                HeartbeatSeconds="{% ( %}",
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "F", "Output": bad}],
                Next="W",
            ),
        ),
        ("W", end("Wait", Seconds=bad, Next="W2")),
        ("W2", end("Wait", Timestamp=bad, Next="M")),
        (
            "M",
            end(
                "Map",
                Items=bad,
                ItemSelector={"i": bad},
                MaxConcurrency=bad,
                ItemProcessor={"StartAt": "I", "States": {"I": end(Output=bad)}},
                Next="C",
            ),
        ),
        ("C", {"Type": "Choice", "Choices": [{"Condition": bad, "Next": "F"}], "Default": "F"}),
        ("F", {"Type": "Fail", "Error": bad, "Cause": "{%%}"}),
    )
    found = issues(definition)
    paths = [issue.split(": ")[0] for issue in found]
    assert paths == [
        "$.States.P.Output.a[0]",
        "$.States.P.Assign.v",
        "$.States.T.Arguments",
        "$.States.T.TimeoutSeconds",
        "$.States.T.HeartbeatSeconds",
        "$.States.T.Catch[0].Output",
        "$.States.W.Seconds",
        "$.States.W2.Timestamp",
        "$.States.M.Items",
        "$.States.M.ItemSelector.i",
        "$.States.M.MaxConcurrency",
        "$.States.M.ItemProcessor.States.I.Output",
        "$.States.C.Choices[0].Condition",
        "$.States.F.Error",
        "$.States.F.Cause",
    ]
    assert "invalid JSONata expression '$x +': S0207" in found[0]
    assert found[-1] == "$.States.F.Cause: empty JSONata expression"


def test_valid_jsonata_and_jsonata_looking_text_in_jsonpath_states_pass() -> None:
    parse_definition(
        jsonata(("A", end(Output="{% $states.input.x ~> $map(function($v){$v * 2}) %}")))
    )
    # In a JSONPath state "{% ... %}" is plain text.
    parse_definition(machine(("A", end(Result="{% $x + %}"))))


def test_jsonata_nested_absurdly_deep_is_an_issue_not_a_crash() -> None:
    (found,) = issues(jsonata(("A", end(Output="{% " + "[" * 30000 + "]" * 30000 + " %}"))))
    assert found.endswith("nested too deeply")


def test_misspelled_choice_operator_gives_one_message_and_hides_nothing() -> None:
    definition = machine(
        (
            "Check",
            {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "NumberEqualz": 1, "Next": "Done"}],
                "Default": "Dnoe",
            },
        ),
        ("Done", end("Task", Resource="arn:missing")),
    )
    found = issues(definition, resource_check=lambda task: "no registered activity")
    assert found == [
        "$.States.Check.Choices[0].NumberEqualz: "
        "unknown comparison operator 'NumberEqualz' (did you mean 'NumericEquals'?)",
        "$.States.Check.Default: no state named 'Dnoe' (did you mean 'Done'?)",
        "$.States.Done.Resource: no registered activity",
    ]


def test_misspelled_operator_still_checks_its_variable() -> None:
    rule = {"Variable": "$.x[", "StringEqualz": "a", "Next": "X"}
    found = issues(machine(("C", {"Type": "Choice", "Choices": [rule]}), ("X", end("Succeed"))))
    assert len(found) == 2
    assert any(
        f.startswith("$.States.C.Choices[0].Variable: invalid JSONPath '$.x['") for f in found
    )
    assert any("did you mean 'StringEquals'?" in f for f in found)


def test_suggestions_for_fields_and_start_at() -> None:
    found = issues(
        {"StartAt": "Frist", "States": {"First": {"Type": "Pass", "End": True, "Nxt": "X"}}}
    )
    assert "$.StartAt: no state named 'Frist' (did you mean 'First'?)" in found
    assert "$.States.First.Nxt: unknown field 'Nxt' (did you mean 'Next'?)" in found


def test_reference_paths_and_jsonpath_syntax() -> None:
    found = issues(machine(("A", end(ResultPath="$.a[*]", InputPath="$.[", OutputPath=3))))
    assert found == [
        "$.States.A.InputPath: invalid JSONPath '$.[': "
        + found[0].split("invalid JSONPath '$.[': ")[1],
        "$.States.A.OutputPath: must be a JSONPath string, not number",
        "$.States.A.ResultPath: invalid reference path '$.a[*]': "
        "wildcards, filters and slices are not allowed",
    ]


# -- hostile definitions ------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [300, 50_000])
def test_deep_nesting_is_refused_with_its_path(depth: int) -> None:
    (found,) = issues(pass_with(Result=nested(depth)))
    assert found.startswith("$.States.A.Result.a.a.")
    assert found.endswith(": nested more than 100 levels deep")


def test_nesting_just_under_the_limit_is_fine() -> None:
    parse_definition(pass_with(Result=nested(90)))


def test_lone_surrogates_and_non_json_values_are_issues_with_printable_paths() -> None:
    found = issues(
        pass_with(Result={"\ud800": "x", "s": "ok \udfff", 1: 2, "f": float("nan"), "t": {1, 2}})
    )
    assert found == [
        "$.States.A.Result.\\ud800: contains a lone surrogate (U+D800-U+DFFF), which UTF-8 "
        "and JSON text cannot carry",
        "$.States.A.Result.s: contains a lone surrogate (U+D800-U+DFFF), which UTF-8 and JSON "
        "text cannot carry",
        "$.States.A.Result.1: keys must be strings, not int",
        "$.States.A.Result.f: nan is not a JSON number",
        "$.States.A.Result.t: a set is not a JSON value",
    ]
    for issue in found:
        issue.encode("utf-8")  # printable anywhere


def test_cycles_and_shared_expansion_are_measured_not_walked() -> None:
    cyclic: dict[str, Any] = pass_with()
    cyclic["States"]["A"]["Result"] = {"me": cyclic}
    (found,) = issues(cyclic)
    assert found == "$.States.A.Result.me: the document contains itself (a cycle)"
    # A billion laughs built from shared lists: 9**9 leaves, a few dozen objects.
    laugh: Any = ["lol"] * 9
    for _ in range(8):
        laugh = [laugh] * 9
    (found,) = issues(pass_with(Result=laugh))
    assert found.startswith("$: the definition is about ")
    assert found.endswith("bytes as JSON, over the limit of 1048576 bytes")


@pytest.mark.parametrize("source", [[1], 3, None, 2.5, True, ("StartAt",)])
def test_sources_that_are_not_definitions(source: Any) -> None:
    (found,) = issues(source)
    assert found.startswith("$: a definition is a dict, ASL text (JSON or YAML) or a file path")


def test_missing_file_is_said_so() -> None:
    assert issues("nosuchfile.json") == [
        "$: no file 'nosuchfile.json' exists (and the text is neither a workflow name nor "
        "ASL JSON or YAML)"
    ]
    assert issues("just words") == [
        "$: 'just words' is neither a file, nor a workflow name, nor ASL JSON or YAML text"
    ]


def test_malformed_json_is_reported_as_json() -> None:
    assert issues('{"StartAt": "A",\n "States": {,}}') == [
        "$: invalid JSON: Expecting property name enclosed in double quotes (line 2, column 13)"
    ]
    (found,) = issues("StartAt: [A\nStates: {}")
    assert found.startswith("$: invalid YAML: ")


def test_yaml_aliases_are_refused() -> None:
    bomb = "\n".join(
        [
            'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
            *(
                f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
                for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "StartAt: A",
            "States: {A: {Type: Pass, Result: *i, End: true}}",
        ]
    )
    (found,) = issues(bomb)
    assert "YAML aliases (*name) are not accepted" in found
    parse_definition("StartAt: A\nStates: {A: {Type: Pass, End: true}}\n")


def test_definition_text_size_and_surrogates() -> None:
    big = '{"StartAt": "A", "Comment": "' + "x" * 1_048_576 + '", "States": {}}'
    (found,) = issues(big)
    assert found.startswith("$: the definition text is 1048") and "over the limit" in found
    (found,) = issues('{"StartAt": "A\ud800"}')
    assert found.startswith("$: the definition text holds a lone surrogate (U+D800)")
    # An escaped surrogate is valid JSON text, and an unusable string.
    (found,) = issues(
        '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "\\ud800", "End": true}}}'
    )
    assert found.startswith("$.States.A.Result: contains a lone surrogate")


def test_no_activities_registered_says_how_to_register_them(monkeypatch) -> None:
    from orchestrator.engine import activities

    monkeypatch.setattr(activities, "_registry", {})
    monkeypatch.setattr(activities, "_advertised", dict)
    with pytest.raises(DefinitionError) as raised:
        parse_definition(
            {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "x", "End": True}}},
            resource_check=activities.resource_problem,
        )
    (issue,) = raised.value.issues
    assert "none is registered in this process" in issue.message
    assert "--tasks MODULE" in issue.message and "local_orchestrator" in issue.message


@pytest.mark.parametrize(
    "state, field",
    [
        (end("Wait", Seconds=100_000_000), "Seconds"),
        (end("Task", Resource="w", TimeoutSeconds=100_000_000), "TimeoutSeconds"),
        (end("Task", Resource="w", HeartbeatSeconds=100_000_000), "HeartbeatSeconds"),
    ],
)
def test_timer_literals_over_the_step_functions_maximum(state: dict[str, Any], field: str) -> None:
    assert issues(machine(("S", state))) == [
        f"$.States.S.{field}: must be <= 99999999, not 100000000"
    ]
    state[field] = 99_999_999
    if field == "HeartbeatSeconds":
        state["TimeoutSeconds"] = 99_999_999
        state[field] = 99_999_998
    assert parse_definition(machine(("S", state))).states["S"].type == state["Type"]
