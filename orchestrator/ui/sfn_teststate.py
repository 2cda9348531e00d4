"""TestState: one state evaluated against an input, with its inspection data, as Step
Functions' TestState API answers it.

Pure: the state's data flow is :mod:`orchestrator.language.dataflow`'s and a Choice's
rules :mod:`orchestrator.language.choice`'s, the interpreter's own functions. A Task
needs its result from somewhere: a ``mock`` result given with the request, or a
``run_task`` callable (the API passes one that calls an activity registered in its
process); without either it cannot be tested. Parallel and Map states, and JSONata
states, are not evaluated here (a ValidationException says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.errors import DefinitionError, StatesError
from orchestrator.language import intrinsics
from orchestrator.language.arns import execution_arn, state_machine_arn
from orchestrator.language.choice import choose
from orchestrator.language.dataflow import (
    apply_template,
    build_context,
    select_input,
    select_output,
    state_output,
)
from orchestrator.language.definition.model import (
    ChoiceState,
    FailState,
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
)
from orchestrator.language.definition.parser import parse_definition
from orchestrator.language.paths import read_path
from orchestrator.language.retry import error_matches
from orchestrator.ui.sfn_shapes import SfnError, json_text, validation

#: The name a lone state is tested under.
TESTED = "TestState"
NAME = "test"

RunTask = Callable[[TaskState, Any], Any]


class TaskFailure(Exception):
    """A tested Task's error (its activity raised, or the mock's ``errorOutput``)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def _targets(state: dict[str, Any]) -> set[str]:
    """The states a state names as its next (its Next, Default, rules' and catchers')."""
    names = {state.get("Next"), state.get("Default")}
    for rule in state.get("Choices") or ():
        if isinstance(rule, dict):
            names.add(rule.get("Next"))
    for catcher in state.get("Catch") or ():
        if isinstance(catcher, dict):
            names.add(catcher.get("Next"))
    return {name for name in names if isinstance(name, str)}


def state_under_test(
    definition: dict[str, Any], state_name: str | None
) -> tuple[StateMachine, str]:
    """The state machine holding the state under test, and that state's name.

    ``definition`` is a state machine (with ``stateName`` naming the state) or one
    state's definition alone; the states a lone state names as next are stand-ins.

    Raises:
        SfnError: ``InvalidDefinition`` (the issues say why) or ``ValidationException``.
    """
    if "States" in definition:
        if state_name is None:
            raise validation("stateName: name the state of the state machine to test")
        source = definition
        name = state_name
    else:
        if state_name is not None:
            raise validation("stateName is only given with a state machine's definition")
        name = TESTED
        others = {target: {"Type": "Succeed"} for target in _targets(definition) - {TESTED}}
        source = {"StartAt": TESTED, "States": {TESTED: definition, **others}}
    try:
        machine = parse_definition(source)
    except DefinitionError as exc:
        issues = "; ".join(str(issue) for issue in exc.issues[:20])
        raise SfnError(
            "InvalidDefinition", f"Invalid State Machine Definition: '{issues}'"
        ) from None
    if name not in machine.states:
        raise validation(f"stateName: no state {name!r} in the definition")
    return machine, name


def _read(data: Any, path: str, context: dict[str, Any], field: str) -> Any:
    """ErrorPath / CausePath: a path, or an intrinsic function call (as the interpreter)."""
    if path.startswith("States."):
        return intrinsics.evaluate(path, data, context)
    return read_path(data, path, context, field=field)


def _context(name: str, value: Any) -> dict[str, Any]:
    workflow = "TestStateMachine"
    return build_context(
        execution_arn(workflow, NAME),
        NAME,
        value,
        "1970-01-01T00:00:00Z",
        name,
        "1970-01-01T00:00:00Z",
        0,
        state_machine_arn(workflow),
        workflow,
    )


def evaluate_state(
    machine: StateMachine,
    name: str,
    value: Any,
    *,
    mock: Any = None,
    run_task: RunTask | None = None,
) -> dict[str, Any]:
    """Evaluate state ``name`` of ``machine`` on input ``value``: the TestState answer
    (``status``, ``output`` or ``error``/``cause``, ``nextState``, ``inspectionData``)."""
    state: State = machine.states[name]
    if (state.query_language or machine.query_language) != "JSONPath":
        raise validation("TestState evaluates JSONPath states here, not JSONata ones")
    context = _context(name, value)
    inspection: dict[str, Any] = {"input": json_text(value)}
    reply: dict[str, Any] = {"inspectionData": inspection}
    try:
        if isinstance(state, FailState):
            error = state.error
            cause = state.cause
            if state.error_path is not None:
                error = _read(value, state.error_path, context, "ErrorPath")
            if state.cause_path is not None:
                cause = _read(value, state.cause_path, context, "CausePath")
            reply.update(status="FAILED")
            if error is not None:
                reply["error"] = str(error)
            if cause is not None:
                reply["cause"] = str(cause)
            return reply
        selected = select_input(value, state.input_path, context)
        inspection["afterInputPath"] = json_text(selected)
        if isinstance(state, ChoiceState):
            reply["nextState"] = choose(state, selected, context)
            output = select_output(selected, state.output_path, context)
        elif isinstance(state, SucceedState | WaitState):
            output = select_output(selected, state.output_path, context)
            if isinstance(state, WaitState):
                reply["nextState"] = state.next
        elif isinstance(state, PassState | TaskState):
            effective = (
                selected
                if state.parameters is None
                else apply_template(state.parameters, selected, context)
            )
            inspection["afterParameters"] = json_text(effective)
            if isinstance(state, PassState):
                result = state.result if state.has_result else effective
            else:
                try:
                    result = _task_result(state, effective, mock, run_task)
                except TaskFailure as failure:
                    return _task_failed(state, reply, value, failure, context)
            inspection["result"] = json_text(result)
            selector = getattr(state, "result_selector", None)
            if selector is not None:
                result = apply_template(selector, result, context)
                inspection["afterResultSelector"] = json_text(result)
            combined = state_output(
                value, result, result_path=state.result_path, context=context, output_path="$"
            )
            inspection["afterResultPath"] = json_text(combined)
            output = select_output(combined, state.output_path, context)
            reply["nextState"] = state.next
        else:
            raise validation(f"TestState does not evaluate {state.type} states here")
    except StatesError as exc:
        return {**reply, "status": "FAILED", "error": exc.error, "cause": str(exc.cause)}
    reply["status"] = "SUCCEEDED"
    reply["output"] = json_text(output)
    if reply.get("nextState") is None:
        reply.pop("nextState", None)
    return reply


def _task_result(state: TaskState, effective: Any, mock: Any, run_task: RunTask | None) -> Any:
    if isinstance(mock, dict) and mock:
        if isinstance(mock.get("errorOutput"), dict):
            error = mock["errorOutput"]
            raise TaskFailure(
                str(error.get("error") or "States.TaskFailed"), str(error.get("cause") or "")
            )
        if isinstance(mock.get("result"), str):
            try:
                return json.loads(mock["result"])
            except ValueError:
                raise validation("mock.result: not a JSON document") from None
    if run_task is None:
        raise validation(
            f"cannot test Task {state.resource!r}: no activity of that name runs in the API's "
            "process; give a mock result"
        )
    return run_task(state, effective)


def _task_failed(
    state: TaskState,
    reply: dict[str, Any],
    value: Any,
    failure: TaskFailure,
    context: dict[str, Any],
) -> dict[str, Any]:
    """A tested Task's error: RETRIABLE if a retrier takes it, CAUGHT_ERROR if a catcher
    does (its output and next state), else FAILED."""
    reply.update(error=failure.error, cause=failure.cause)
    if any(error_matches(r.error_equals, failure.error) for r in state.retry):
        return {**reply, "status": "RETRIABLE"}
    for catcher in state.catch:
        if error_matches(catcher.error_equals, failure.error):
            error_output = {"Error": failure.error, "Cause": failure.cause}
            output = state_output(
                value, error_output, result_path=catcher.result_path, context=context
            )
            return {
                **reply,
                "status": "CAUGHT_ERROR",
                "nextState": catcher.next,
                "output": json_text(output),
            }
    return {**reply, "status": "FAILED"}
