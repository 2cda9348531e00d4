"""The definition model: loading sources, defaults, aliases, round-tripping and walking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from orchestrator.conformance import require_corpus
from orchestrator.errors import DefinitionError
from orchestrator.language.definition import (
    Branch,
    Catcher,
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    Retrier,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
    parse_definition,
)

CONFORMANCE = require_corpus()

FULL: dict[str, Any] = {
    "Comment": "every state type",
    "StartAt": "Charge",
    "TimeoutSeconds": 300,
    "Version": "1.0",
    "States": {
        "Charge": {
            "Type": "Task",
            "Resource": "arn:aws:states:::activity:charge",
            "Parameters": {"amount.$": "$.amount", "fixed": 1},
            "ResultSelector": {"id.$": "$.id"},
            "ResultPath": "$.charge",
            "TimeoutSeconds": 30,
            "HeartbeatSeconds": 10,
            "Retry": [
                {"ErrorEquals": ["Timeout"], "IntervalSeconds": 2, "JitterStrategy": "FULL"},
                {"ErrorEquals": ["States.ALL"], "MaxAttempts": 0},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed", "ResultPath": None}],
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.charge.id", "IsPresent": True, "Next": "Wait"},
                {
                    "And": [
                        {"Variable": "$.amount", "NumericGreaterThan": 0},
                        {"Not": {"Variable": "$.kind", "StringMatches": "test-*"}},
                    ],
                    "Next": "Fan",
                },
            ],
            "Default": "Failed",
        },
        "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": None, "End": True}}},
                {
                    "StartAt": "B",
                    "States": {"B": {"Type": "Task", "Resource": "arn:b", "End": True}},
                },
            ],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Y",
                "States": {"Y": {"Type": "Task", "Resource": "arn:y", "End": True}},
            },
            "ToleratedFailurePercentage": 10,
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "OutputPath": None},
        "Failed": {"Type": "Fail", "Error": "Charge.Failed", "Cause": "it broke"},
    },
}


def test_full_definition_is_modelled() -> None:
    machine = parse_definition(FULL)
    assert machine.start_at == "Charge"
    assert machine.timeout_seconds == 300
    assert machine.version == "1.0"
    assert machine.query_language == "JSONPath"
    charge = machine.state("Charge")
    assert isinstance(charge, TaskState)
    assert charge.type == "Task"
    assert charge.resource == "arn:aws:states:::activity:charge"
    assert charge.parameters == {"amount.$": "$.amount", "fixed": 1}
    assert charge.result_path == "$.charge"
    assert charge.input_path == "$"
    assert charge.timeout_seconds == 30
    assert charge.heartbeat_seconds == 10
    assert charge.retry[0] == Retrier(
        error_equals=("Timeout",), interval_seconds=2, jitter_strategy="FULL"
    )
    assert charge.retry[1].max_attempts == 0
    assert charge.retry[1].backoff_rate == 2.0
    assert charge.catch == (Catcher(error_equals=("States.ALL",), next="Failed", result_path=None),)
    decide = machine.state("Decide")
    assert isinstance(decide, ChoiceState)
    first, second = decide.choices
    assert (first.variable, first.operator, first.operand, first.next) == (
        "$.charge.id",
        "IsPresent",
        True,
        "Wait",
    )
    assert second.and_ is not None and second.and_[1].not_ is not None
    assert second.and_[1].not_.operator == "StringMatches"
    assert decide.default == "Failed"
    assert isinstance(machine.state("Wait"), WaitState)
    fan = machine.state("Fan")
    assert isinstance(fan, ParallelState)
    assert len(fan.branches) == 2
    branch_a = fan.branches[0].state("A")
    assert isinstance(branch_a, PassState) and branch_a.has_result and branch_a.result is None
    each = machine.state("Each")
    assert isinstance(each, MapState)
    assert each.item_processor.processor_mode == "DISTRIBUTED"
    assert each.max_concurrency == 4
    assert each.tolerated_failure_percentage == 10
    done = machine.state("Done")
    assert isinstance(done, SucceedState) and done.output_path is None
    failed = machine.state("Failed")
    assert isinstance(failed, FailState) and failed.error == "Charge.Failed"


def test_round_trip() -> None:
    machine = parse_definition(FULL)
    asl = machine.to_asl()
    assert json.loads(json.dumps(asl)) == asl
    assert parse_definition(asl) == machine


def test_to_asl_only_contains_fields_that_were_set() -> None:
    asl = parse_definition(FULL).to_asl()
    assert asl["States"]["Wait"] == {"Type": "Wait", "Seconds": 5, "Next": "Fan"}
    assert asl["States"]["Decide"]["Choices"][0] == {
        "Variable": "$.charge.id",
        "IsPresent": True,
        "Next": "Wait",
    }
    assert asl["States"]["Charge"]["Catch"][0]["ResultPath"] is None
    assert "QueryLanguage" not in asl


def test_models_are_frozen() -> None:
    machine = parse_definition(FULL)
    with pytest.raises(pydantic.ValidationError):
        machine.start_at = "Other"  # type: ignore[misc]


def test_defaults_and_null_paths() -> None:
    machine = parse_definition(
        {
            "StartAt": "P",
            "States": {
                "P": {"Type": "Pass", "InputPath": None, "ResultPath": None, "Next": "Q"},
                "Q": {"Type": "Pass", "End": True},
            },
        }
    )
    p, q = machine.state("P"), machine.state("Q")
    assert isinstance(p, PassState) and isinstance(q, PassState)
    assert (p.input_path, p.result_path, p.output_path) == (None, None, "$")
    assert (q.input_path, q.result_path, q.output_path) == ("$", "$", "$")
    assert not q.has_result and q.parameters is None and q.end and q.next is None


def test_legacy_iterator_becomes_item_processor() -> None:
    machine = parse_definition(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "Parameters": {"item.$": "$$.Map.Item.Value"},
                    "Iterator": {"StartAt": "T", "States": {"T": {"Type": "Succeed"}}},
                    "End": True,
                }
            },
        }
    )
    state = machine.state("M")
    assert isinstance(state, MapState)
    assert isinstance(state.item_processor, Branch)
    assert state.item_processor.processor_mode == "INLINE"
    assert state.parameters == {"item.$": "$$.Map.Item.Value"}
    assert parse_definition(machine.to_asl()) == machine


def test_walk_visits_every_state_with_its_path_and_scope() -> None:
    machine = parse_definition(FULL)
    walked = [(path, name, scope) for path, name, _state, scope in machine.walk()]
    paths = [path for path, _, _ in walked]
    assert paths == [
        "$.States.Charge",
        "$.States.Decide",
        "$.States.Wait",
        "$.States.Fan",
        "$.States.Fan.Branches[0].States.A",
        "$.States.Fan.Branches[1].States.B",
        "$.States.Each",
        "$.States.Each.ItemProcessor.States.Y",
        "$.States.Done",
        "$.States.Failed",
    ]
    fan = machine.state("Fan")
    assert isinstance(fan, ParallelState)
    assert walked[4][2] is fan.branches[0]
    assert walked[0][2] is machine


def test_jsonata_fields() -> None:
    machine = parse_definition(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": "arn:t",
                    "Arguments": {"x": "{% $states.input.x %}"},
                    "Output": "{% $states.result %}",
                    "Assign": {"seen": True},
                    "TimeoutSeconds": "{% $states.input.timeout %}",
                    "Next": "C",
                },
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $seen %}", "Next": "S"}],
                    "Default": "S",
                },
                "S": {"Type": "Succeed"},
            },
        }
    )
    task = machine.state("T")
    assert isinstance(task, TaskState)
    assert task.arguments == {"x": "{% $states.input.x %}"}
    assert task.timeout_seconds == "{% $states.input.timeout %}"
    choice = machine.state("C")
    assert isinstance(choice, ChoiceState)
    assert choice.choices[0].condition == "{% $seen %}"
    assert machine.query_language == "JSONata"


def test_sources_dict_json_yaml_and_files(tmp_path: Path) -> None:
    expected = parse_definition(FULL)
    text = json.dumps(FULL)
    assert parse_definition(text) == expected
    import yaml

    yaml_text = yaml.safe_dump(FULL)
    assert parse_definition(yaml_text) == expected
    for name, content in [
        ("m.json", text),
        ("m.asl.json", text),
        ("m.yaml", yaml_text),
        ("m.yml", yaml_text),
    ]:
        file = tmp_path / name
        file.write_text(content)
        assert parse_definition(file) == expected
        assert parse_definition(str(file)) == expected


def test_yaml_timestamps_stay_strings() -> None:
    machine = parse_definition(
        "StartAt: W\nStates:\n  W:\n    Type: Wait\n    Timestamp: 2016-03-14T01:59:00Z\n"
        "    End: true\n"
    )
    wait = machine.state("W")
    assert isinstance(wait, WaitState) and wait.timestamp == "2016-03-14T01:59:00Z"


@pytest.mark.parametrize("text", ["{not json", "StartAt: [unclosed", "a: b: c"])
def test_unparseable_text(text: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text)
    assert [issue.path for issue in raised.value.issues] == ["$"]


def test_bad_json_file_is_one_issue(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text("{")
    with pytest.raises(DefinitionError) as raised:
        parse_definition(file)
    assert [issue.path for issue in raised.value.issues] == ["$"]


def test_missing_file_path_object_is_one_issue(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(tmp_path / "absent.json")
    assert [issue.path for issue in raised.value.issues] == ["$"]


@pytest.mark.parametrize("source", [[], 3, None, "just a string"])
def test_non_object_sources(source: Any) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(source)
    assert raised.value.issues[0].path == "$"


DEFINITIONS = sorted(CONFORMANCE.glob("*/*/definition.json"))


@pytest.mark.parametrize(
    "file", DEFINITIONS, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in DEFINITIONS]
)
def test_every_conformance_definition_parses_and_round_trips(file: Path) -> None:
    # Every one of these was accepted by AWS CreateStateMachine.
    machine = parse_definition(file)
    assert parse_definition(machine.to_asl()) == machine


def test_state_machine_type_is_exported() -> None:
    assert isinstance(parse_definition(FULL), StateMachine)
