"""No expression can hang or pin a worker, ``start_workflow`` or the UI.

Each bomb an attacker tried (issue 19) is evaluated directly with a small budget, then
through a real execution on the session's worker, and with the bomb in the first state that
``start_workflow`` evaluates. A bounded failure is ``EvaluationLimitExceeded``: the
``States.QueryEvaluationError`` (JSONata) or ``States.Runtime`` (JSONPath, intrinsics) of
the state, with a cause naming the limit. Time bounds are generous (the machine is shared):
they tell "stopped by the budget" from "ran for minutes", not how fast it stopped.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import start_workflow
from orchestrator.config import get_settings
from orchestrator.errors import EvaluationLimitExceeded, IntrinsicFailure
from orchestrator.language import intrinsics
from orchestrator.language import jsonata_eval as jsonata
from orchestrator.language.budget import (
    MAX_ARRAY_ITEMS,
    MAX_STRING_CHARS,
    MEMORY_SETTING,
    TIMEOUT_SETTING,
)
from orchestrator.language.choice import string_matches
from orchestrator.language.paths import read_path
from tests.activities import counter
from tests.helpers import machine, run_workflow, task

BUDGET_S = 0.5
#: A bounded evaluation returns within the budget plus this (a loaded 2-core machine).
MARGIN_S = 15.0
TIMEOUT_NAME = "ORCHESTRATOR_EVALUATION_TIMEOUT_SECONDS"
#: Backtracks exponentially in Python's re and in the regex package (which times it out).
EVIL_REGEX = "(a|aa)+$"
EVIL_TEXT = "a" * 60 + "!"
MEMORY_BUDGET_MB = 64
#: Sixty references to one 16 Mi string: each operation is under the size limit, the JSON
#: text of the array is 960 million characters (the red-team pass: 1.95 GB in 3.8 s).
SIXTY_STRINGS = "[" + ",".join(["$s"] * 60) + "]"
#: Each value under the size limits, their total past the memory budget (no pre-check sees
#: it): a thousand strings of a million characters (953 MB in 0.85 s without the budget).
MEMORY_BOMB = "{% $count([1..999].$pad('', 1000000, $string($ % 10))) %}"


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.5 s budget on the settings in force (the session worker reads the same object)."""
    monkeypatch.setattr(get_settings(), "evaluation_timeout_seconds", BUDGET_S)


def evaluate(expression: str, state_input: Any = None) -> Any:
    return jsonata.evaluate(expression, jsonata.bindings(state_input or {}, {}), field="Output")


def assert_bounded(call: Any, *, error: str, limit: str) -> EvaluationLimitExceeded:
    started = time.monotonic()
    with pytest.raises(EvaluationLimitExceeded) as info:
        call()
    assert time.monotonic() - started < BUDGET_S + MARGIN_S
    assert info.value.error == error
    assert limit in info.value.cause, info.value.cause
    return info.value


# -- JSONata, unit level ---------------------------------------------------------------------

TIME_BOMBS = {
    "tail-recursive loop": "{% ($f := function($n){ $f($n + 1) }; $f(0)) %}",
    "sort with a slow comparator": (
        "{% $count($sort([1..1000000], function($a, $b){ $a < $b })) %}"
    ),
    "$match backtracking": "{% $match($states.input.s, /" + EVIL_REGEX + "/) %}",
    "$contains backtracking": "{% $contains($states.input.s, /" + EVIL_REGEX + "/) %}",
    "$replace backtracking": "{% $replace($states.input.s, /" + EVIL_REGEX + "/, 'x') %}",
    "$split backtracking": "{% $split($states.input.s, /" + EVIL_REGEX + "/) %}",
}


@pytest.mark.parametrize("expression", TIME_BOMBS.values(), ids=TIME_BOMBS.keys())
def test_jsonata_time_bombs_stop_at_the_budget(small_budget: None, expression: str) -> None:
    error = assert_bounded(
        lambda: evaluate(expression, {"s": EVIL_TEXT}),
        error="States.QueryEvaluationError",
        limit=TIMEOUT_NAME,
    )
    assert error.cause.startswith("The JSONata expression '")


SIZE_BOMBS = {
    "$pad": ("{% $pad('', 100000000, 'x') %}", "string"),
    "range operator": ("{% $count([1..10000000]) %}", "array"),
    "doubling '&'": (
        "{% ($f := function($s, $n){ $n = 0 ? $s : $f($s & $s, $n - 1) }; $f('x', 40)) %}",
        "string",
    ),
    "doubling $append": (
        "{% ($f := function($a, $n){ $n = 0 ? $a : $f($append($a, $a), $n - 1) };"
        " $count($f([1], 40))) %}",
        "array",
    ),
    "$replace growth": (
        "{% $replace($pad('', 100000, 'a'), 'a', $pad('', 1000, 'b')) %}",
        "string",
    ),
    "$replace growth (regex)": (
        "{% $replace($pad('', 100000, 'a'), /a/, $pad('', 1000, 'b')) %}",
        "string",
    ),
    "$join": ("{% $join([1..20000].$pad('', 1000, 'x')) %}", "string"),
    "$string of many references": (
        "{% ($s := $pad('', 16000000, 'x'); $length($string(" + SIXTY_STRINGS + "))) %}",
        "string",
    ),
    "'&' of many references": (
        "{% ($s := $pad('', 16000000, 'x'); $length(" + SIXTY_STRINGS + " & '')) %}",
        "string",
    ),
    "path step mapping ranges": ("{% $count([1..999999].[1..999999]) %}", "array"),
    "$split into characters": ("{% $count($split($pad('', 2000000, 'x'), '')) %}", "array"),
    "$split": ("{% $count($split($pad('', 6000000, 'ab,'), ',')) %}", "array"),
}


@pytest.fixture
def long_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A time budget that only a hang reaches, so that the size limit is what stops a size
    bomb: on a loaded machine, building a bomb's parts can take longer than the default
    5 s, and the time limit would stop it first."""
    monkeypatch.setattr(get_settings(), "evaluation_timeout_seconds", 120.0)


@pytest.mark.parametrize(("expression", "kind"), SIZE_BOMBS.values(), ids=SIZE_BOMBS.keys())
def test_jsonata_size_bombs_fail_before_allocating(
    long_time_budget: None, expression: str, kind: str
) -> None:
    limit = MAX_STRING_CHARS if kind == "string" else MAX_ARRAY_ITEMS
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert_bounded(
        lambda: evaluate(expression),
        error="States.QueryEvaluationError",
        limit=f"more than the evaluation limit of {limit}",
    )
    # Stopped before building the big value: the process's peak grew by less than the
    # default memory budget (it did not grow at all if an earlier test peaked higher).
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert peak_growth_mb < 256


def test_sizes_under_the_limits_still_serialise() -> None:
    assert evaluate("{% $length($string([$pad('', 1000000, 'x'), 1, {'a': [true]}])) %}") == (
        1_000_000 + len('["",1,{"a":[true]}]')
    )
    # 900,000 items in all, in a thousand arrays of the step's result: under the limit.
    assert evaluate("{% $count([1..1000].[1..900]) %}") == 1000
    assert evaluate("{% $sum([1..1000].$count([1..900])) %}") == 900_000
    assert evaluate("{% [1..3].[$, $ * 10] %}") == [[1, 10], [2, 20], [3, 30]]
    assert evaluate("{% $states.input.a.b %}", {"a": [{"b": [1, 2]}, {"b": [3]}]}) == [1, 2, 3]
    assert evaluate("{% [1, 2] & '' %}") == "[1,2]"
    assert evaluate("{% $split('a,b,,c', ',') %}") == ["a", "b", "", "c"]
    assert evaluate("{% $split('abc', '') %}") == ["a", "b", "c"]
    assert evaluate("{% $split($pad('', 3000000, 'ab,'), ',', 2) %}") == ["ab", "ab"]
    assert evaluate("{% $split('a1b2c', /[0-9]/) %}") == ["a", "b", "c"]


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.fixture
def small_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64 MB memory budget and a time budget long enough that memory runs out first."""
    monkeypatch.setattr(get_settings(), "evaluation_max_memory_mb", MEMORY_BUDGET_MB)
    monkeypatch.setattr(get_settings(), "evaluation_timeout_seconds", 120.0)


@pytest.mark.parametrize("kind", ["JSONata", "JSONPath"])
def test_memory_bombs_stop_at_the_memory_budget_and_release_it(
    small_memory: None, kind: str
) -> None:
    deep: Any = list(range(20_000))
    for _ in range(400):
        deep = [deep]
    call, error = {
        "JSONata": (lambda: evaluate(MEMORY_BOMB), "States.QueryEvaluationError"),
        "JSONPath": (lambda: read_path(deep, "$..*..*"), "States.Runtime"),
    }[kind]
    evaluate("{% 1 %}")  # the watchdog thread exists from here on
    threads = threading.active_count()
    gc.collect()
    before = _resident_mb()
    failure = assert_bounded(call, error=error, limit=MEMORY_SETTING)
    assert f"memory limit of {MEMORY_BUDGET_MB} MB" in failure.cause
    # The evaluation's objects are gone with it (the failure does not hold its frames),
    # and the freed heap went back to the system.
    del failure
    gc.collect()
    assert _resident_mb() - before < MEMORY_BUDGET_MB / 2
    assert threading.active_count() == threads
    # The next evaluation has the whole budget again.
    assert evaluate("{% $count([1..100000].{'a': $}) %}") == 100_000


def test_jsonata_recursion_stops_at_the_depth_limit() -> None:
    expression = "{% ($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000)) %}"
    assert_bounded(
        lambda: evaluate(expression),
        error="States.QueryEvaluationError",
        limit="ORCHESTRATOR_EVALUATION_MAX_DEPTH",
    )
    # Recursion within the limit still works.
    assert evaluate("{% ($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(200)) %}") == 200


def test_ordinary_expressions_and_regexes_are_unchanged(small_budget: None) -> None:
    assert evaluate("{% $states.input.x + 1 %}", {"x": 1}) == 2
    assert evaluate("{% $match('abcabc', /b(c)/).groups %}") == ["c", "c"]
    assert evaluate("{% $replace('abcabc', /b(c)/, '[$1]') %}") == "a[c]a[c]"
    assert evaluate("{% $split('a1b22c', /[0-9]+/) %}") == ["a", "b", "c"]
    assert evaluate("{% $contains('Hello', /^h/i) %}") is True
    assert evaluate("{% $count([1..100000]) %}") == 100000
    assert len(evaluate("{% $pad('', 100000, 'x') %}")) == 100000


#: The evaluations stopped, again and again, by a budget so tiny that the deadline lands
#: everywhere in them; nothing may arrive after one returned, no thread may be left, and a
#: tracer set before (a debugger's, coverage's) is back afterwards.
_LEAK_CHECK = """
import sys, threading
from orchestrator.errors import StatesError
from orchestrator.language import jsonata_eval as jsonata
from orchestrator.language.budget import LimitExceeded

def outer(frame, event, arg):
    return None

sys.settrace(outer)
threads = threading.active_count()
expressions = [
    "{% $count($sort([1..20000], function($a, $b){ $a < $b })) %}",
    "{% ($f := function($n){ $f($n + 1) }; $f(0)) %}",
    "{% $count([1..3000].($string($) & 'x')) %}",
]
late = stopped = 0
for round_ in range(60):
    try:
        try:
            jsonata.evaluate(expressions[round_ % 3], jsonata.bindings({}, {}), field="Output")
        except StatesError:
            stopped += 1
        total = 0
        for number in range(20_000):  # Python code after the evaluation
            total += number
    except LimitExceeded:
        late += 1
tracer = sys.gettrace()
sys.settrace(None)
print(stopped, late, threading.active_count() - threads, tracer is outer)
"""


def test_a_bounded_failure_leaks_no_thread_and_no_late_exception() -> None:
    # In a fresh interpreter, as in a worker's pool process: each stopped evaluation
    # collects its garbage (run_bounded's gc.collect), which in this suite's process, with
    # the heap of thousands of tests, costs most of a second sixty times over.
    proc = subprocess.run(
        [sys.executable, "-c", _LEAK_CHECK],
        env={**os.environ, TIMEOUT_SETTING: "0.01"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stopped, late, threads_left, tracer_back = proc.stdout.split()
    assert int(stopped) > 0  # the budget did stop evaluations
    assert (int(late), int(threads_left), tracer_back) == (0, 0, "True"), proc.stdout


# -- JSONPath and intrinsic functions, unit level --------------------------------------------


def test_a_jsonpath_regex_filter_stops_at_the_budget(small_budget: None) -> None:
    data = {"items": [{"x": EVIL_TEXT}, {"x": "b"}]}
    path = '$.items[?(@.x =~ "' + EVIL_REGEX + '")]'
    assert_bounded(lambda: read_path(data, path), error="States.Runtime", limit=TIMEOUT_NAME)
    assert read_path({"items": [{"x": "abc"}, {"x": "b"}]}, '$.items[?(@.x =~ "^a")]') == [
        {"x": "abc"}
    ]


def test_nested_recursive_descents_stop_at_the_budget(small_budget: None) -> None:
    deep: Any = list(range(20_000))
    for _ in range(400):
        deep = [deep]
    assert len(json.dumps(deep)) < 256 * 1024
    assert_bounded(lambda: read_path(deep, "$..*..*"), error="States.Runtime", limit=TIMEOUT_NAME)


def test_intrinsic_array_range_is_capped() -> None:
    with pytest.raises(IntrinsicFailure, match="more than the maximum of 1000"):
        intrinsics.evaluate("States.ArrayRange(0, 1000000000, 1)", {}, {})


def test_intrinsic_format_with_many_placeholders_is_capped() -> None:
    text = "x" * 200_000
    expression = "States.Format('" + "{}" * 100 + "'" + ", $.t" * 100 + ")"
    assert_bounded(
        lambda: intrinsics.evaluate(expression, {"t": text}, {}),
        error="States.Runtime",
        limit=f"more than the evaluation limit of {MAX_STRING_CHARS}",
    )


def test_intrinsic_array_unique_is_linear() -> None:
    # Comparing each item with every kept one took 1.25e9 comparisons here.
    values = list(range(50_000)) * 2
    result = intrinsics.evaluate("States.ArrayUnique($.v)", {"v": values}, {})
    assert result == list(range(50_000))


def _quadratic_unique(array: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in array:
        if not any(intrinsics._json_equal(item, seen) for seen in unique):
            unique.append(item)
    return unique


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, -0.0, 1.0, 2.5]),
    st.sampled_from(["", "a", "1"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON, max_size=8))
def test_array_unique_keeps_java_equality(array: list[Any]) -> None:
    # 1, 1.0 and true stay distinct; objects compare regardless of key order.
    assert intrinsics._array_unique(array) == _quadratic_unique(array)


def test_string_matches_bomb_is_linear() -> None:
    started = time.monotonic()
    assert not string_matches("log-" + "-" * 200_000, "log-*-*-*.txt")
    assert time.monotonic() - started < MARGIN_S


# -- end to end: a real execution on the session's worker -----------------------------------


def jsonata_machine(states: dict[str, Any]) -> dict[str, Any]:
    return machine(states, QueryLanguage="JSONata")


LOOP = "{% ($f := function($n){ $f($n + 1) }; $f(0)) %}"


@pytest.mark.usefixtures("orchestrator", "small_budget")
def test_a_jsonata_bomb_after_a_task_fails_the_state_and_the_worker_keeps_serving(tag):
    bomb = jsonata_machine(
        {
            "Count": task("count", Arguments={"tag": tag}, Next="Bomb"),
            "Bomb": {"Type": "Pass", "Output": LOOP, "End": True},
        }
    )
    handle = start_workflow(bomb, {})
    # Meanwhile the worker runs other executions.
    _, other = run_workflow(machine({"Echo": task("echo")}), {"v": 1})
    assert other.status == "SUCCEEDED", other
    result = handle.result(BUDGET_S + MARGIN_S + 20)
    assert result.status == "FAILED", result
    assert result.error == "States.QueryEvaluationError"
    assert TIMEOUT_NAME in result.cause
    assert counter("calls", tag) == 1  # the Task ran once: no re-dispatch of a pinned step


@pytest.mark.usefixtures("orchestrator")
@pytest.mark.parametrize(
    ("output", "limits"),
    [
        (
            "{% ($s := $pad('', 16000000, 'x'); $length($string(" + SIXTY_STRINGS + "))) %}",
            [f"more than the evaluation limit of {MAX_STRING_CHARS}"],
        ),
        # Two materialised ranges already pass 64 MB: either limit may stop it first.
        (
            "{% $count([1..999999].[1..999999]) %}",
            [f"evaluation limit of {MAX_ARRAY_ITEMS}", MEMORY_SETTING],
        ),
        (MEMORY_BOMB, [MEMORY_SETTING]),
    ],
    ids=["string", "ranges", "memory"],
)
def test_a_memory_bomb_after_a_task_fails_the_state_and_the_worker_keeps_serving(
    small_memory: None, tag: str, output: str, limits: list[str]
):
    bomb = jsonata_machine(
        {
            "Count": task("count", Arguments={"tag": tag}, Next="Bomb"),
            "Bomb": {"Type": "Pass", "Output": output, "End": True},
        }
    )
    handle = start_workflow(bomb, {})
    result = handle.result(MARGIN_S + 60)
    assert result.status == "FAILED", result
    assert result.error == "States.QueryEvaluationError"
    assert any(limit in result.cause for limit in limits), result.cause
    assert counter("calls", tag) == 1
    _, other = run_workflow(machine({"Echo": task("echo")}), {"v": 1})
    assert other.status == "SUCCEEDED", other


@pytest.mark.usefixtures("orchestrator", "small_budget")
def test_a_regex_bomb_in_a_choice_condition_fails_the_state():
    definition = jsonata_machine(
        {
            "Decide": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $contains($states.input.s, /" + EVIL_REGEX + "/) %}",
                        "Next": "Done",
                    }
                ],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    _, result = run_workflow(definition, {"s": EVIL_TEXT}, timeout=BUDGET_S + MARGIN_S + 20)
    assert result.status == "FAILED", result
    assert result.error == "States.QueryEvaluationError"
    assert "time limit" in result.cause


@pytest.mark.usefixtures("orchestrator", "small_budget")
def test_a_jsonpath_bomb_fails_the_state_with_states_runtime():
    definition = machine(
        {
            "Filter": {
                "Type": "Pass",
                "Parameters": {"hits.$": '$.items[?(@.x =~ "' + EVIL_REGEX + '")]'},
                "End": True,
            }
        }
    )
    _, result = run_workflow(
        definition, {"items": [{"x": EVIL_TEXT}]}, timeout=BUDGET_S + MARGIN_S + 20
    )
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert TIMEOUT_NAME in result.cause


@pytest.mark.usefixtures("orchestrator", "small_budget")
@pytest.mark.parametrize(
    ("first_state", "state_input", "error"),
    [
        ({"Type": "Pass", "Output": LOOP, "Next": "Done"}, {}, "States.QueryEvaluationError"),
        (
            {"Type": "Pass", "Output": "{% $pad('', 100000000, 'x') %}", "Next": "Done"},
            {},
            "States.QueryEvaluationError",
        ),
        (
            {
                "Type": "Choice",
                "Choices": [
                    {"Condition": "{% $match($states.input.s, /(a|aa)+$/) %}", "Next": "Done"}
                ],
                "Default": "Done",
            },
            {"s": EVIL_TEXT},
            "States.QueryEvaluationError",
        ),
    ],
    ids=["loop", "pad", "regex"],
)
def test_start_workflow_returns_within_the_budget_when_the_first_state_is_a_bomb(
    first_state: dict[str, Any], state_input: Any, error: str
):
    definition = jsonata_machine({"First": first_state, "Done": {"Type": "Succeed"}})
    started = time.monotonic()
    handle = start_workflow(definition, state_input)
    assert time.monotonic() - started < BUDGET_S + MARGIN_S
    result = handle.result(BUDGET_S + MARGIN_S + 20)
    assert result.status == "FAILED", result
    assert result.error == error


@pytest.mark.usefixtures("orchestrator")
def test_string_matches_bomb_in_the_first_state_is_quick():
    definition = machine(
        {
            "Match": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.name", "StringMatches": "log-*-*-*.txt", "Next": "Yes"}
                ],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        }
    )
    started = time.monotonic()
    _, result = run_workflow(definition, {"name": "log-" + "-" * 200_000})
    assert time.monotonic() - started < MARGIN_S
    assert result.status == "SUCCEEDED", result
