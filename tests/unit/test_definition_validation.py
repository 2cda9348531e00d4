"""Definition validation: every problem is reported, with its path, in one DefinitionError."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.definition import TaskState, parse_definition
from orchestrator.errors import DefinitionError


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
    assert "$.States.Charge.Next: no state named 'Chrage'" in found


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


@pytest.mark.parametrize("name", ["Check A/B", "Item[1]", "a|s", "x]"])
def test_state_names_with_step_key_separators_are_refused(name: str) -> None:
    found = issues(machine((name, end())))
    assert any(issue.startswith(f"$.States.{name}: state name must not contain") for issue in found)


def test_state_names_in_branches_are_checked_too_and_spaces_are_fine() -> None:
    inner = {"StartAt": "x/y", "States": {"x/y": end()}}
    found = issues(machine(("Fan out", {"Type": "Parallel", "Branches": [inner], "End": True})))
    assert any("x/y: state name must not contain '/'" in issue for issue in found)
    assert not any("Fan out:" in issue for issue in found)


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
            "$.States.C.Choices[0].Equals: unknown field 'Equals'",
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
