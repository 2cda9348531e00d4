"""Evaluation of Choice state rules (JSONPath comparison operators).

Semantics follow AWS Step Functions: comparing a value of the wrong type is simply false,
``IsPresent`` is false for a missing variable, and any other operator whose ``Variable`` (or
``...Path`` operand) matches nothing fails with ``States.Runtime``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from orchestrator.errors import NoChoiceMatched, QueryEvaluationError
from orchestrator.language.definition import ChoiceRule, ChoiceState, parse_timestamp
from orchestrator.language.paths import PathNotFound, read_path

__all__ = ["choose", "evaluate_rule", "string_matches"]


def choose(state: ChoiceState, data: Any, context: Mapping[str, Any]) -> str:
    """Return the name of the state a Choice state transitions to.

    Args:
        state: The Choice state.
        data: The state's effective input (after InputPath).
        context: The context object (``$$``).

    Returns:
        The ``Next`` of the first matching rule, else the state's ``Default``.

    Raises:
        NoChoiceMatched: No rule matched and there is no Default.
        PathNotFound: A rule's variable or path operand matched nothing (``States.Runtime``).
        QueryEvaluationError: A rule uses a JSONata ``Condition`` (not supported yet).
    """
    for rule in state.choices:
        if evaluate_rule(rule, data, context):
            if rule.next is None:
                # Validation guarantees top-level rules have a Next; this guards hand-built models.
                raise ValueError("a top-level Choice rule has no Next")
            return rule.next
    if state.default is not None:
        return state.default
    raise NoChoiceMatched("No Matches!")


def evaluate_rule(rule: ChoiceRule, data: Any, context: Mapping[str, Any]) -> bool:
    """Return whether ``rule`` matches ``data``.

    Args:
        rule: A top-level or nested Choice rule.
        data: The state's effective input.
        context: The context object (``$$``).

    Returns:
        Whether the rule matches.

    Raises:
        PathNotFound: The variable or a path operand matched nothing (except for
            ``IsPresent``).
        QueryEvaluationError: The rule uses a JSONata ``Condition``.
        ValueError: The rule has no operator (only possible for hand-built models).
    """
    if rule.condition is not None:
        raise QueryEvaluationError("JSONata is not supported yet")
    if rule.and_ is not None:
        return all(evaluate_rule(sub, data, context) for sub in rule.and_)
    if rule.or_ is not None:
        return any(evaluate_rule(sub, data, context) for sub in rule.or_)
    if rule.not_ is not None:
        return not evaluate_rule(rule.not_, data, context)
    operator, variable = rule.operator, rule.variable
    if operator is None or variable is None:
        raise ValueError("a Choice rule needs a Variable and an operator, or And/Or/Not")
    if operator == "IsPresent":
        try:
            read_path(data, variable, context)
        except PathNotFound:
            return rule.operand is False
        return rule.operand is True
    value = read_path(data, variable, context)
    operand = rule.operand
    if operator.endswith("Path"):
        operator = operator[: -len("Path")]
        operand = read_path(data, operand, context)
    test = _TYPE_TESTS.get(operator)
    if test is not None:
        return test(value) == operand
    return _compare(operator, value, operand)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": _is_number,
    "IsString": lambda value: isinstance(value, str),
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": lambda value: parse_timestamp(value) is not None,
}

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}


def _compare(operator: str, value: Any, operand: Any) -> bool:
    if operator == "StringMatches":
        return (
            isinstance(value, str) and isinstance(operand, str) and string_matches(value, operand)
        )
    if operator == "BooleanEquals":
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    for kind in ("String", "Numeric", "Timestamp"):
        if operator.startswith(kind):
            ordering = _ORDERINGS.get(operator[len(kind) :])
            if ordering is None:
                break
            if kind == "String":
                ok = isinstance(value, str) and isinstance(operand, str)
            elif kind == "Numeric":
                ok = _is_number(value) and _is_number(operand)
            else:
                value, operand = parse_timestamp(value), parse_timestamp(operand)
                ok = value is not None and operand is not None
            return ok and ordering(value, operand)
    raise ValueError(f"unknown Choice operator {operator!r}")


def string_matches(value: str, pattern: str) -> bool:
    """Match ``value`` against a ``StringMatches`` pattern.

    ``*`` matches any run of characters (including none); ``\\*`` is a literal asterisk and
    ``\\\\`` a literal backslash (a backslash before any other character stands for that
    character; a trailing lone backslash for itself).

    Runs in linear time: the pattern is split at its wildcards into literal segments, the
    first must be a prefix and the last a suffix, and each one between is found at its
    leftmost position after the previous one (leftmost is always the best choice, so nothing
    is ever retried). A regex translation backtracks: ``log-*-*-*.txt`` against 6,000
    dashes took 11.7 s.

    Args:
        value: The string tested.
        pattern: The pattern.

    Returns:
        Whether the whole of ``value`` matches.
    """
    segments = _pattern_segments(pattern)
    first = segments[0]
    if len(segments) == 1:
        return value == first
    last = segments[-1]
    end = len(value) - len(last)
    if end < len(first) or not value.startswith(first) or not value.endswith(last):
        return False
    position = len(first)
    for segment in segments[1:-1]:
        found = value.find(segment, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True


@lru_cache(maxsize=1024)
def _pattern_segments(pattern: str) -> tuple[str, ...]:
    """The literal text between the pattern's unescaped ``*`` wildcards (escapes resolved)."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            # A trailing lone backslash has nothing to escape; it stands for itself.
            current.append(next(chars, "\\"))
        elif char == "*":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return tuple(segments)
