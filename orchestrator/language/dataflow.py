"""JSONPath data flow of a state: InputPath, Parameters, ResultSelector, ResultPath, OutputPath.

The functions take the relevant definition fields as explicit arguments so that they do not
depend on the definition model. Model convention: a path argument of ``None`` means the
field was JSON ``null`` in the definition; an absent field is passed as its default ``"$"``.

Processing order (AWS "input and output processing")::

    raw input --InputPath--> --Parameters--> effective input --(state work)--> result
    result --ResultSelector--> --ResultPath (merged into raw input)--> --OutputPath--> output

Returned values share structure with their inputs (see :mod:`orchestrator.language.paths`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import StatesRuntimeError
from orchestrator.language import intrinsics
from orchestrator.language.paths import read_path, write_path

__all__ = [
    "apply_template",
    "build_context",
    "effective_input",
    "format_timestamp",
    "pass_result",
    "select_input",
    "select_output",
    "state_output",
]


def select_input(raw_input: Any, input_path: str | None, context: Mapping[str, Any]) -> Any:
    """Apply ``InputPath`` to a state's raw input.

    Args:
        raw_input: The state's raw input.
        input_path: The ``InputPath`` (``"$"`` when absent, ``None`` when JSON null).
        context: The context object, for ``$$`` paths.

    Returns:
        The selected value; ``{}`` when ``input_path`` is ``None``.

    Raises:
        PathNotFound: A definite path matched nothing (``States.Runtime``).
    """
    if input_path is None:
        return {}
    if input_path == "$":
        return raw_input
    return read_path(raw_input, input_path, context)


def select_output(data: Any, output_path: str | None, context: Mapping[str, Any]) -> Any:
    """Apply ``OutputPath`` to the document built by ``ResultPath``.

    Args:
        data: The document after ``ResultPath``.
        output_path: The ``OutputPath`` (``"$"`` when absent, ``None`` when JSON null).
        context: The context object, for ``$$`` paths.

    Returns:
        The state's output; ``{}`` when ``output_path`` is ``None``.

    Raises:
        PathNotFound: A definite path matched nothing (``States.Runtime``).
    """
    if output_path is None:
        return {}
    if output_path == "$":
        return data
    return read_path(data, output_path, context)


def evaluate_path_field(key: str, expression: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate the value of a ``"key.$"`` template field: a path or an intrinsic call."""
    if not isinstance(expression, str):
        raise StatesRuntimeError(
            f"The value for the field '{key}' must be a JSONPath or an intrinsic function "
            f"call, got {type(expression).__name__}"
        )
    if expression.startswith("$"):  # "$..." reads data, "$$..." the context object
        return read_path(data, expression, context, field=key)
    if expression.startswith("States."):
        return intrinsics.evaluate(expression, data, context)
    raise StatesRuntimeError(
        f"The value for the field '{key}' must be a valid JSONPath or a valid intrinsic "
        f"function call: '{expression}'"
    )


def apply_template(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a JSONPath payload template (Parameters, ResultSelector, ItemSelector).

    Objects and arrays are walked recursively. A member whose key ends in ``.$`` is replaced
    by a member without that suffix whose value is the path's value (``$...`` reads
    ``data``, ``$$...`` reads ``context``) or the result of an intrinsic function call
    (``States.Format(...)``...). Every other value is copied as a literal.

    Args:
        template: The payload template from the definition (any JSON value).
        data: The value ``$`` refers to (effective input, or the task result for
            ResultSelector).
        context: The context object.

    Returns:
        A new value; the template itself is never modified.

    Raises:
        PathNotFound: A ``.$`` path matched nothing (``States.Runtime``, worded like AWS:
            "The JSONPath '$.x' specified for the field 'k.$' could not be found in the
            input '...'").
        StatesError: An intrinsic function failed (``States.IntrinsicFailure``...).
    """
    if isinstance(template, dict):
        result: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                result[key[:-2]] = evaluate_path_field(key, value, data, context)
            else:
                result[key] = apply_template(value, data, context)
        return result
    if isinstance(template, list):
        return [apply_template(item, data, context) for item in template]
    return template  # str, number, bool, None: immutable, safe to share


def effective_input(
    raw_input: Any,
    *,
    input_path: str | None,
    parameters: Any,
    context: Mapping[str, Any],
) -> Any:
    """Compute the input a state works on: ``InputPath`` then ``Parameters``.

    Args:
        raw_input: The state's raw input.
        input_path: ``InputPath`` (``"$"`` default, ``None`` for JSON null).
        parameters: The ``Parameters`` template, or ``None`` when absent.
        context: The context object.

    Returns:
        The effective input.
    """
    selected = select_input(raw_input, input_path, context)
    if parameters is None:
        return selected
    return apply_template(parameters, selected, context)


def state_output(
    raw_input: Any,
    result: Any,
    *,
    result_selector: Any = None,
    result_path: str | None = "$",
    output_path: str | None = "$",
    context: Mapping[str, Any],
) -> Any:
    """Compute a state's output from its raw input and its result.

    Args:
        raw_input: The state's raw input (before ``InputPath``).
        result: The state's result (task output, Pass ``Result``, branch outputs...).
        result_selector: The ``ResultSelector`` template, or ``None`` when absent.
        result_path: ``ResultPath``: ``"$"`` (default) makes the result the output,
            ``None`` (JSON null) discards the result and keeps the raw input, any other
            reference path writes the result into a copy of the raw input.
        output_path: ``OutputPath`` (``"$"`` default, ``None`` for JSON null → ``{}``).
        context: The context object.

    Returns:
        The state's output.

    Raises:
        PathNotFound: ``OutputPath`` or a ResultSelector path matched nothing.
        ResultPathMatchFailure: ``ResultPath`` cannot be applied to the raw input.
    """
    if result_selector is not None:
        result = apply_template(result_selector, result, context)
    if result_path is None:
        combined = raw_input
    elif result_path == "$":
        combined = result
    else:
        combined = write_path(raw_input, result_path, result)
    return select_output(combined, output_path, context)


def pass_result(
    raw_input: Any,
    *,
    input_path: str | None = "$",
    parameters: Any = None,
    result: Any = None,
    has_result: bool = False,
    result_path: str | None = "$",
    output_path: str | None = "$",
    context: Mapping[str, Any],
) -> Any:
    """Compute the output of a JSONPath ``Pass`` state.

    A Pass state's result is its ``Result`` field when present (used verbatim: ``.$`` keys
    inside ``Result`` are *not* evaluated, as AWS shows), otherwise its effective input.

    Args:
        raw_input: The state's raw input.
        input_path: ``InputPath``.
        parameters: ``Parameters`` template, or ``None`` when absent.
        result: The ``Result`` value (only meaningful when ``has_result``).
        has_result: Whether the definition has a ``Result`` field (it may be ``null``).
        result_path: ``ResultPath``.
        output_path: ``OutputPath``.
        context: The context object.

    Returns:
        The state's output.
    """
    if has_result:
        value = result
    else:
        value = effective_input(
            raw_input, input_path=input_path, parameters=parameters, context=context
        )
    return state_output(
        raw_input, value, result_path=result_path, output_path=output_path, context=context
    )


def format_timestamp(epoch_seconds: float) -> str:
    """Format a Unix timestamp like Step Functions does in the context object.

    Args:
        epoch_seconds: Seconds since the Unix epoch.

    Returns:
        ISO-8601 UTC text with millisecond precision and a ``Z`` suffix, e.g.
        ``"2024-01-01T00:00:00.000Z"``.
    """
    # Truncate to whole milliseconds (never move into the future), after rounding away the
    # binary float noise (1704067200.123 * 1000 == 1704067200122.9998...).
    millis = math.floor(round(epoch_seconds * 1000, 3))
    return _format_second(millis // 1000) + f".{millis % 1000:03d}Z"


@functools.lru_cache(maxsize=256)
def _format_second(second: int) -> str:
    # Every step formats a couple of timestamps, mostly of the same few seconds.
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def build_context(
    execution_id: str,
    execution_name: str,
    execution_input: Any,
    start_time: str,
    state_name: str,
    entered_time: str,
    retry_count: int,
    state_machine_id: str,
    state_machine_name: str,
    *,
    task_token: str | None = None,
    map_item: tuple[int, Any] | None = None,
    role_arn: str | None = None,
) -> dict[str, Any]:
    """Build the Step Functions context object (what ``$$`` refers to).

    Args:
        execution_id: ``$$.Execution.Id`` (the execution's ARN: ``orchestrator.language.arns``).
        execution_name: ``$$.Execution.Name``.
        execution_input: ``$$.Execution.Input`` (the execution's original input).
        start_time: ``$$.Execution.StartTime`` (see :func:`format_timestamp`).
        state_name: ``$$.State.Name``.
        entered_time: ``$$.State.EnteredTime``.
        retry_count: ``$$.State.RetryCount`` (0 on the first attempt).
        state_machine_id: ``$$.StateMachine.Id`` (the workflow's ARN).
        state_machine_name: ``$$.StateMachine.Name``.
        task_token: ``$$.Task.Token``, only for ``.waitForTaskToken`` tasks/activities.
        map_item: ``(index, value)`` for ``$$.Map.Item`` inside a Map iteration.
        role_arn: ``$$.Execution.RoleArn`` when known.

    Returns:
        The context object; ``Task`` and ``Map`` keys appear only when given.
    """
    execution: dict[str, Any] = {
        "Id": execution_id,
        "Input": execution_input,
        "Name": execution_name,
        "StartTime": start_time,
    }
    if role_arn is not None:
        execution["RoleArn"] = role_arn
    context: dict[str, Any] = {
        "Execution": execution,
        "State": {"EnteredTime": entered_time, "Name": state_name, "RetryCount": retry_count},
        "StateMachine": {"Id": state_machine_id, "Name": state_machine_name},
    }
    if task_token is not None:
        context["Task"] = {"Token": task_token}
    if map_item is not None:
        index, value = map_item
        context["Map"] = {"Item": {"Index": index, "Value": value}}
    return context
