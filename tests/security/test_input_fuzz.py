"""Input fuzzing: hostile definitions and inputs only ever give the documented errors.

Thousands of generated definitions (mutations of valid ones: wrong types, unknown and
misspelled fields, bad paths, intrinsics and JSONata, lone surrogates, deep nesting,
non-JSON values; and arbitrary JSON) and inputs go through the Python API, the CLI and the
UI's JSON API. The only outcomes allowed are success, ``DefinitionError`` or
``InvalidInputError`` (CLI exit code 2; HTTP 400 or 422): never another exception, a
hang or a 500.

Real starts are kept few: once ``MAX_REAL_STARTS`` valid definitions have started, a
valid definition is started with an invalid execution name, which is checked after the
definition and the input, so the whole start path still runs and nothing is written.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.activities  # noqa: F401 - registers the "echo" activity the seeds run
from orchestrator import cli
from orchestrator.client.api import start_workflow, validate_definition
from orchestrator.client.control import send_task_success
from orchestrator.errors import DefinitionError, InvalidInputError, TaskTokenError
from orchestrator.testing import LocalOrchestrator

#: Valid definitions started for real in each test; later valid ones use ``NO_START``.
MAX_REAL_STARTS = 15
#: Refused by the execution-name check, which comes after the definition and input checks.
NO_START = "no start"

FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ECHO = "arn:aws:lambda:us-east-1:123456789012:function:echo"

SEEDS: list[dict[str, Any]] = [
    {
        "Comment": "fuzz-seed",
        "StartAt": "Prepare",
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Parameters": {
                    "n.$": "States.ArrayLength($.items)",
                    "id.$": "$$.Execution.Id",
                    "text.$": "States.Format('{} items', States.ArrayLength($.items))",
                },
                "ResultPath": "$.prepared",
                "Assign": {"count.$": "$.n"},
                "Next": "Check",
            },
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.prepared.n", "NumericGreaterThan": 2, "Next": "Many"},
                    {
                        "And": [
                            {"Variable": "$.flag", "IsPresent": True},
                            {"Variable": "$.flag", "BooleanEquals": True},
                        ],
                        "Next": "Work",
                    },
                ],
                "Default": "Work",
            },
            "Many": {"Type": "Fail", "Error": "TooMany", "CausePath": "$.prepared.text"},
            "Work": {
                "Type": "Task",
                "Resource": ECHO,
                "Parameters": {"value.$": "$.prepared"},
                "ResultSelector": {"echoed.$": "$"},
                "ResultPath": "$.work",
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done", "ResultPath": "$.e"}],
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"item.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "StartAt": "One",
                    "States": {"One": {"Type": "Pass", "End": True}},
                },
                "ResultPath": "$.each",
                "Next": "Both",
            },
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "L", "States": {"L": {"Type": "Pass", "End": True}}},
                    {"StartAt": "R", "States": {"R": {"Type": "Wait", "Seconds": 0, "End": True}}},
                ],
                "ResultPath": None,
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    },
    {
        "QueryLanguage": "JSONata",
        "StartAt": "Compute",
        "States": {
            "Compute": {
                "Type": "Pass",
                "Output": {"total": "{% $sum($states.input.items) %}", "fixed": 1},
                "Assign": {"seen": "{% $count($states.input.items) %}"},
                "Next": "Decide",
            },
            "Decide": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.total > 10 %}", "Next": "Call"}],
                "Default": "Stop",
            },
            "Call": {
                "Type": "Task",
                "Resource": ECHO,
                "Arguments": {"t": "{% $states.input.total %}"},
                "TimeoutSeconds": "{% 30 %}",
                "Next": "Stop",
            },
            "Stop": {"Type": "Succeed", "Output": "{% $seen %}"},
        },
    },
    {"StartAt": "Only", "States": {"Only": {"Type": "Pass", "Result": {"a": [1, 2]}, "End": True}}},
]


def nested(depth: int, leaf: Any = 1, *, as_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
surrogate_text = st.builds(
    lambda before, lone, after: before + lone + after,
    st.text(max_size=4),
    surrogates,
    st.text(max_size=4),
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Values that are wrong somewhere in ASL: wrong types, broken paths, intrinsics, JSONata.
BAD_TEXT = [
    "",
    "$",
    "$.",
    "$.[",
    "$..a",
    "$.a[*]",
    "$.a[?(@.b > 1)]",
    "a.b",
    "$$.",
    "$var.x",
    "States.ArraySum($.x)",
    "States.Format($.x",
    "States.ArrayLength($.x, 3)",
    "States.Hash('x', 'SHA-3')",
    "States.Format('{}', " * 80 + "1" + ")" * 80,
    "States.",
    "{% $x + %}",
    "{% ( %}",
    "{%%}",
    "{% " + "(" * 5000 + "1" + ")" * 5000 + " %}",
    "{% [" * 3000 + "] %}",
    "NumberEqualz",
    "Pass",
    "Tsk",
    "States.ALL",
    "2016-03-14T01:59:00Z",
    "x" * 300,
    "arn:aws:lambda:us-east-1:123456789012:function:ech0",
    "arn:aws:states:::lambda:invoke",
]
ASL_WORDS = sorted(
    {
        "Type",
        "Next",
        "End",
        "StartAt",
        "States",
        "Choices",
        "Default",
        "Variable",
        "StringEquals",
        "NumericEquals",
        "NumberEqualz",
        "And",
        "Or",
        "Not",
        "Resource",
        "Parameters",
        "x.$",
        "ResultPath",
        "InputPath",
        "OutputPath",
        "ItemsPath",
        "Branches",
        "ItemProcessor",
        "Iterator",
        "Retry",
        "Catch",
        "ErrorEquals",
        "Seconds",
        "Timestamp",
        "Arguments",
        "Output",
        "Assign",
        "Condition",
        "QueryLanguage",
        "TimeoutSeconds",
        "Nxt",
        "\ud800",
    }
)
bad_values = st.one_of(
    st.sampled_from(BAD_TEXT),
    json_values,
    surrogate_text,
    st.integers(101, 400).map(nested),
    st.integers(101, 400).map(lambda depth: nested(depth, as_list=True)),
    st.sampled_from([float("nan"), float("inf"), -1, 0, 99999999999, True, None, [], {}]),
)
#: Values no JSON text can carry (``json.dumps`` refuses them).
non_json_values = st.sampled_from(
    [{1, 2}, b"bytes", object(), 1j, (1, 2), frozenset()]
) | st.builds(
    lambda: 10**5000  # built, not sampled: its repr() raises ValueError
)
keys = st.sampled_from(ASL_WORDS) | st.text(max_size=8) | surrogate_text


def _spots(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a definition, parents first."""
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            _spots(item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            _spots(item, found)
    return found


@st.composite
def mutated_definitions(draw: Any, *, json_only: bool = False) -> Any:
    """A seed with one to three mutations (replace, delete, add or misspell a field)."""
    definition = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        spots = _spots(definition, [])
        container, key = draw(st.sampled_from(spots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "misspell"]))
        values = bad_values if json_only else bad_values | non_json_values
        if action == "replace":
            container[key] = draw(values)
        elif action == "delete":
            del container[key]
            if not _spots(definition, []):
                break
        elif isinstance(container, list):
            container.append(draw(values))
        elif action == "add":
            new_key = draw(keys if json_only else keys | st.integers())
            container[new_key] = draw(values)
        elif isinstance(key, str) and key:
            position = draw(st.integers(0, len(key) - 1))
            typo = key[:position] + draw(st.sampled_from("xeaz_")) + key[position + 1 :]
            container[typo] = container.pop(key)
    return definition


asl_json = st.recursive(
    json_scalars | st.sampled_from(BAD_TEXT),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(ASL_WORDS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)
#: Anything at all as a definition: ASL-flavoured JSON, any JSON, text, other objects.
arbitrary_definitions = st.one_of(
    asl_json,
    json_values,
    st.text(max_size=40),
    st.sampled_from(["nosuchfile.json", "no_such_workflow", "{", "[1]", "a: [", "\ud800"]),
    st.builds(lambda text: "{" + text, st.text(max_size=30)),
    non_json_values,
)

hostile_inputs = st.one_of(
    surrogate_text,
    st.dictionaries(surrogate_text, json_values, min_size=1, max_size=2),
    st.lists(surrogate_text, min_size=1, max_size=3),
    st.integers(101, 3000).map(nested),
    st.integers(101, 3000).map(lambda depth: nested(depth, as_list=True)),
    st.sampled_from([float("nan"), float("inf"), {"a": float("-inf")}]),
    st.integers(262_000, 270_000).map(lambda size: {"blob": "x" * size}),
    non_json_values,
    st.builds(lambda value: {"wrapped": value}, non_json_values),
)


class Starts:
    """Counts the real starts of one test, and says when to start for real."""

    def __init__(self) -> None:
        self.count = 0

    def name(self) -> str | None:
        if self.count < MAX_REAL_STARTS:
            self.count += 1
            return f"fuzz-{uuid.uuid4().hex[:16]}"
        return NO_START


def check_start(definition: Any, input: Any, starts: Starts, *, valid: bool) -> None:
    """start_workflow gives a handle, DefinitionError or InvalidInputError, nothing else."""
    name = starts.name() if valid else None
    try:
        start_workflow(definition, input, name=name)
    except DefinitionError as exc:
        assert not valid, exc
        assert exc.issues and all(str(issue).encode("utf-8") for issue in exc.issues)
    except InvalidInputError as exc:
        str(exc).encode("utf-8")
        if valid and name == NO_START:
            assert "execution name" in str(exc)
    else:
        assert valid and name != NO_START, "started with an invalid definition or name"


def validates(definition: Any) -> bool:
    try:
        validate_definition(definition)
    except DefinitionError as exc:
        assert exc.issues
        for issue in exc.issues:
            str(issue).encode("utf-8")  # every message can be printed and sent
        return False
    return True


@pytest.fixture(scope="module")
def starts(orchestrator: LocalOrchestrator) -> Starts:
    return Starts()


@pytest.fixture(scope="module")
def client(orchestrator: LocalOrchestrator) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from orchestrator.ui import create_app

    with TestClient(
        create_app(token=""), base_url="http://localhost", raise_server_exceptions=False
    ) as test_client:
        yield test_client


def test_seeds_are_valid_and_run(orchestrator: LocalOrchestrator) -> None:
    for seed in SEEDS:
        validate_definition(seed)
    handle = start_workflow(SEEDS[0], {"items": [1, 2], "flag": True})
    assert handle.result(timeout=30).status == "SUCCEEDED"


# -- definitions: 1,200 + 400 through the API, 700 through the CLI, 800 through the UI ----


@settings(FUZZ, max_examples=1200)
@given(definition=mutated_definitions())
def test_api_mutated_definitions(starts: Starts, definition: Any) -> None:
    valid = validates(definition)
    check_start(definition, {"items": [1]}, starts, valid=valid)


@settings(FUZZ, max_examples=400)
@given(definition=arbitrary_definitions)
def test_api_arbitrary_definitions(starts: Starts, definition: Any) -> None:
    valid = validates(definition)
    check_start(definition, None, starts, valid=valid)


def _definition_text(definition: Any) -> str:
    return definition if isinstance(definition, str) else json.dumps(definition)


@settings(FUZZ, max_examples=700)
@given(
    definition=mutated_definitions(json_only=True)
    | arbitrary_definitions.filter(
        lambda value: isinstance(value, str) or _json_text(value) is not None
    )
)
def test_cli_validate(orchestrator: LocalOrchestrator, definition: Any) -> None:
    from typer.testing import CliRunner

    text = _definition_text(definition)
    result = CliRunner().invoke(cli.app, ["validate", text])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.strip()


def _json_text(value: Any) -> str | None:
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None


@settings(FUZZ, max_examples=800)
@given(
    definition=mutated_definitions(json_only=True) | asl_json | st.text(max_size=30),
    as_text=st.booleans(),
)
def test_ui_start_definitions(client: Any, starts: Starts, definition: Any, as_text: bool) -> None:
    valid = validates(definition)
    name = starts.name() if valid else None
    payload = _definition_text(definition) if as_text else definition
    body = json.dumps({"definition": payload, "input": {"items": [1]}, "name": name})
    response = client.post(
        "/api/executions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (201, 400, 404, 422), response.text
    error = response.json().get("error")
    if response.status_code == 201:
        assert valid and name != NO_START
    else:
        assert error["code"] and error["message"]


# -- inputs: 900 through start_workflow, 300 as task outputs, 800 through the UI -----------


@settings(FUZZ, max_examples=900)
@given(value=hostile_inputs | json_values, real=st.integers(0, 9))
def test_api_inputs(starts: Starts, value: Any, real: int) -> None:
    # Most valid inputs are checked with a refused name, so that few start for real.
    name = starts.name() if real == 0 else NO_START
    try:
        start_workflow(SEEDS[2], value, name=name)
    except InvalidInputError as exc:
        message = str(exc)
        message.encode("utf-8")
        assert message.startswith(("execution input", "execution name"))
    else:
        assert name != NO_START


@settings(FUZZ, max_examples=300)
@given(value=hostile_inputs | json_values)
def test_task_outputs(orchestrator: LocalOrchestrator, value: Any) -> None:
    try:
        send_task_success("no-such-token", value)
    except InvalidInputError as exc:
        assert str(exc).startswith("task output ")
    except TaskTokenError:
        pass  # the output was fine: the token is what is refused


def _body(value: Any) -> bytes | None:
    """The request body carrying ``value`` as input (NaN and huge numbers included)."""
    try:
        return json.dumps({"definition": SEEDS[2], "input": value, "name": NO_START}).encode()
    except (TypeError, ValueError, RecursionError):
        return None


@settings(FUZZ, max_examples=800)
@given(value=hostile_inputs | json_values)
def test_ui_inputs(client: Any, value: Any) -> None:
    body = _body(value)
    if body is None:  # not JSON at all: what a broken client would send
        body = b'{"definition": {}, "input": {1, 2}}'
    response = client.post(
        "/api/executions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in (
        "invalid_input",
        "invalid_request",
        "invalid_definition",
        "http_error",
    )


# -- targeted cases the fuzzing stands for -------------------------------------------------


def test_reported_hostile_cases_give_clear_errors(orchestrator: LocalOrchestrator) -> None:
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        start_workflow(SEEDS[2], {"x": "\ud800"})
    with pytest.raises(InvalidInputError, match="nested more than 100 levels"):
        start_workflow(SEEDS[2], nested(5000))
    with pytest.raises(InvalidInputError, match="^task output is not JSON-serializable"):
        send_task_success("token", {1, 2})
    for source in ([SEEDS[2]], 3, None):
        with pytest.raises(DefinitionError, match="a definition is a dict"):
            start_workflow(source)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="keys must be strings"):
        start_workflow({**SEEDS[2], 1: 2})  # type: ignore[dict-item]
    with pytest.raises(DefinitionError, match="lone surrogate"):
        start_workflow({**SEEDS[2], "Comment": "\udfff"})
    deep = copy.deepcopy(SEEDS[2])
    deep["States"]["Only"]["Result"] = nested(300)
    with pytest.raises(DefinitionError, match="nested more than 100 levels deep"):
        start_workflow(deep)


def test_yaml_bomb_is_refused_at_once(orchestrator: LocalOrchestrator) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    bomb = "\n".join([*lines, "StartAt: A", "States: {A: {Type: Pass, Result: *i, End: true}}"])
    began = time.monotonic()
    for attempt in (validate_definition, start_workflow):
        with pytest.raises(DefinitionError, match="YAML aliases"):
            attempt(bomb)
    assert time.monotonic() - began < 5


def test_ui_refuses_hostile_bodies_with_400(client: Any) -> None:
    definition = copy.deepcopy(SEEDS[2])
    definition["States"]["Only"]["Result"] = nested(300)
    bodies = [
        json.dumps({"definition": definition}),
        json.dumps({"definition": SEEDS[2], "input": nested(300)}),
        json.dumps({"definition": SEEDS[2], "input": "\ud800"}),
        json.dumps({"definition": {**SEEDS[2], "Comment": "\ud800"}}),
        json.dumps({"definition": json.dumps({**SEEDS[2], "Comment": "\ud800"})}),
    ]
    for body in bodies:
        response = client.post(
            "/api/executions", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] in ("invalid_definition", "invalid_input")


def test_cli_reports_a_missing_file(orchestrator: LocalOrchestrator) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, ["validate", "nosuchfile.json"])
    assert result.exit_code == 2
    assert "no file 'nosuchfile.json' exists" in result.output


def test_misspelled_activity_gets_a_suggestion(orchestrator: LocalOrchestrator) -> None:
    definition = copy.deepcopy(SEEDS[0])
    definition["States"]["Work"]["Resource"] = ECHO.replace("echo", "ech0")
    definition["States"]["Check"]["Choices"][0] = {
        "Variable": "$.prepared.n",
        "NumberGreaterThen": 2,
        "Next": "Many",
    }
    with pytest.raises(DefinitionError) as raised:
        start_workflow(definition)
    found = [str(issue) for issue in raised.value.issues]
    assert len(found) == 2, found
    assert "unknown comparison operator 'NumberGreaterThen' (did you mean" in found[0]
    assert found[1].startswith("$.States.Work.Resource: no registered activity for ")
    assert "(did you mean 'echo'?)" in found[1]
