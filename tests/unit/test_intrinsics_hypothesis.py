"""Property tests: parse/evaluate fail only with StatesError, whatever the input."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import StatesError
from orchestrator.language.intrinsics import FUNCTION_NAMES, evaluate, parse, validate

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)

# Grammar-shaped expressions, so that many examples parse and reach the functions.
ESCAPED_TEXT = st.text(max_size=12).map(
    lambda text: "".join("\\" + c if c in "'{}\\" else c for c in text)
)
ARGUMENTS = st.recursive(
    st.sampled_from(["$", "$.a", "$.b", "$.s", "$.n", "$.l", "$.o", "$.l[0]", "$var", "$.x"])
    | st.sampled_from(["true", "false", "null", "0", "-1", "2.5", "1e3", "'SHA-256'", "'{}'"])
    | ESCAPED_TEXT.map(lambda text: f"'{text}'")
    | st.integers(-1100, 1100).map(str),
    lambda children: st.builds(
        lambda name, args: f"{name}({', '.join(args)})",
        st.sampled_from(sorted(FUNCTION_NAMES)),
        st.lists(children, max_size=3),
    ),
    max_leaves=8,
)
# Valid argument counts, so that most generated calls get past the parser.
ARITY = {name: (1, 1) for name in FUNCTION_NAMES}
ARITY.update(
    {
        "States.Format": (1, 3),
        "States.Array": (0, 3),
        "States.UUID": (0, 0),
        "States.MathRandom": (2, 3),
        "States.ArrayRange": (3, 3),
        "States.JsonMerge": (3, 3),
    }
)
ARITY.update(
    (f"States.{name}", (2, 2))
    for name in "ArrayPartition ArrayContains ArrayGetItem Hash MathAdd StringSplit".split()
)
CALLS = st.sampled_from(sorted(FUNCTION_NAMES)).flatmap(
    lambda name: st.lists(ARGUMENTS, min_size=ARITY[name][0], max_size=ARITY[name][1]).map(
        lambda args: f"{name}({', '.join(args)})"
    )
)
# The same, with one random edit, to probe the parser's error paths near valid input.
NEAR_INTRINSICS = st.builds(
    lambda call, at, junk, cut: call[:at] + junk + call[at + cut :],
    CALLS,
    st.integers(0, 60),
    st.sampled_from(["", "(", ")", ",", "'", "\\", "$", "[", "]", " ", "States.", "-"]),
    st.integers(0, 3),
)

DATA = st.fixed_dictionaries(
    {
        "a": JSON,
        "b": JSON,
        "s": st.text(max_size=30),
        "n": st.integers(-5, 5) | st.floats(-5, 5),
        "l": st.lists(JSON, max_size=5),
        "o": st.dictionaries(st.text(max_size=5), JSON, max_size=4),
    }
)


def _run(expression: str, data: Any) -> None:
    try:
        parse(expression)
    except StatesError:
        pass
    assert validate(expression) is None or isinstance(validate(expression), str)
    try:
        evaluate(expression, data, {"Execution": {"Id": "x"}}, variables={"var": data})
    except StatesError:
        pass


@given(st.text(max_size=80), DATA)
def test_arbitrary_text_only_raises_states_errors(expression: str, data: Any) -> None:
    _run(expression, data)


@given(st.text(max_size=60).map(lambda tail: "States." + tail), DATA)
def test_arbitrary_calls_only_raise_states_errors(expression: str, data: Any) -> None:
    _run(expression, data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(CALLS, DATA)
def test_generated_calls_only_raise_states_errors(expression: str, data: Any) -> None:
    _run(expression, data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(NEAR_INTRINSICS, DATA)
def test_near_intrinsics_only_raise_states_errors(expression: str, data: Any) -> None:
    _run(expression, data)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(FUNCTION_NAMES)),
    st.lists(st.sampled_from(["$.a", "$.b"]), max_size=3),
    DATA,
)
def test_every_function_on_arbitrary_json_only_raises_states_errors(
    name: str, args: list[str], data: Any
) -> None:
    _run(f"{name}({', '.join(args)})", data)


@given(JSON)
def test_json_to_string_round_trips(value: Any) -> None:
    text = evaluate("States.JsonToString($.v)", {"v": value}, {})
    assert evaluate("States.StringToJson($.t)", {"t": text}, {}) == value


@given(st.text(max_size=50))
def test_base64_round_trips(text: str) -> None:
    encoded = evaluate("States.Base64Encode($.s)", {"s": text}, {})
    decoded = evaluate("States.Base64Decode($.s)", {"s": encoded}, {})
    assert decoded == text.encode("utf-8", "replace").decode("utf-8")


@given(st.text(max_size=40))
def test_string_literals_round_trip(text: str) -> None:
    escaped = "".join("\\" + c if c in "'{}\\" else c for c in text)
    assert evaluate(f"States.Array('{escaped}')", None, {}) == [text]
