"""Child workflows: the Step Functions ``startExecution`` integrations, pure parts.

A Task whose Resource is one of

* ``arn:aws:states:::states:startExecution`` (start the child and go on: the output is
  ``{"ExecutionArn", "StartDate"}``),
* ``...states:startExecution.sync`` (wait for the child's end: the output is its
  DescribeExecution, ``Input`` and ``Output`` as JSON text),
* ``...states:startExecution.sync:2`` (the same, ``Input`` and ``Output`` as JSON),
* ``...states:startExecution.waitForTaskToken`` (start the child, wait for the task
  token, which the child receives through the parameters, e.g. ``$$.Task.Token``),
* ``arn:aws:states:::aws-sdk:sfn:startExecution`` (and its ``.waitForTaskToken``): the
  SDK's form, its output as the SDK returns it (``StartDate`` an ISO 8601 text),

starts another workflow as an execution of its own. Region-qualified forms
(``arn:aws:states:us-east-1:123456789012:states:startExecution.sync``) are the same.
``StateMachineArn`` names the workflow: its last part is a workflow name, looked up as
``start_workflow`` looks names up (the workflows folder, then the packaged examples).

The interpreter hands the start to the engine (orchestrator/engine/children.py) with a
timer; this module holds what needs no Redis: the modes, the request, the child's id and
the outputs' shapes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import StatesRuntimeError

__all__ = [
    "CHILD_FIELD",
    "CHILD_TIMERS",
    "STOPPED_WITH_PARENT",
    "ChildRequest",
    "ChildTimer",
    "child_execution_id",
    "child_failure_cause",
    "child_mode",
    "child_request",
    "children_of",
    "described",
    "start_output",
    "workflow_of",
]

_RESOURCE = re.compile(
    r"^arn:aws[a-z-]*:states:[^:]*:[^:]*:"
    r"(?P<api>states:startExecution|aws-sdk:sfn:startExecution)"
    r"(?P<suffix>\.sync:2|\.sync|\.waitForTaskToken)?$"
)


class ChildTimer:
    """Kinds of a child workflow's timers (both fired by orchestrator/engine/children.py)."""

    START = "childstart"
    """Start the child a Task scheduled: ``[childstart, parent, step key, attempt]``, set
    by the transition that schedules the Task, removed by the guarded commit that records
    the start."""
    ENDED = "childend"
    """A ``.sync`` child ended: ``[childend, parent, "<step key>|<child id>", attempt]``,
    added by the child's final commit (its record's ``notify``)."""


CHILD_TIMERS = (ChildTimer.START, ChildTimer.ENDED)

#: Modes: ``start`` (fire and forget), ``sync``, ``sync2``, ``token``, ``sdk``; those
#: whose Task waits for the child's end:
WAITING_MODES = frozenset({"sync", "sync2"})
#: Modes whose child a stop of the parent stops (the Task waits on it).
STOPPED_WITH_PARENT = frozenset({*WAITING_MODES, "token"})
#: The parent's record field prefix naming a child (``child:<id>`` -> ``[key, mode]``).
CHILD_FIELD = "child:"


def children_of(record: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(child id, step key, mode)`` of the children an execution's record links."""
    out = []
    for name, value in record.items():
        if name.startswith(CHILD_FIELD):
            key, mode = json.loads(value)
            out.append((name[len(CHILD_FIELD) :], str(key), str(mode)))
    return out


def child_mode(resource: str) -> str | None:
    """The mode of a ``startExecution`` Resource, or None if it is not one (the SDK form
    has no ``.sync``: None, so it is refused as any unknown Resource is)."""
    match = _RESOURCE.match(resource or "")
    if match is None:
        return None
    suffix = match.group("suffix")
    if match.group("api").startswith("aws-sdk"):
        if suffix is None:
            return "sdk"
        return "token" if suffix == ".waitForTaskToken" else None
    return {None: "start", ".sync": "sync", ".sync:2": "sync2", ".waitForTaskToken": "token"}[
        suffix
    ]


def workflow_of(state_machine_arn: str) -> str:
    """The workflow a ``StateMachineArn`` names: the name after ``stateMachine:`` (a
    version or alias after it is ignored), else the text after its last colon."""
    parts = state_machine_arn.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "stateMachine":
        return parts[6]
    return parts[-1]


@dataclass(frozen=True)
class ChildRequest:
    """What a ``startExecution`` Task asks for, from its effective parameters."""

    workflow: str
    state_machine_arn: str
    input: Any
    name: str | None = None


def child_request(params: Any) -> ChildRequest:
    """The request in a Task's effective parameters (``StateMachineArn``, ``Input`` as an
    object or JSON text, ``Name``); :class:`StatesRuntimeError` when they are unusable."""
    if not isinstance(params, dict):
        raise StatesRuntimeError("startExecution needs an object of Parameters")
    arn = params.get("StateMachineArn")
    if not isinstance(arn, str) or not workflow_of(arn):
        raise StatesRuntimeError("startExecution needs a StateMachineArn parameter (a text)")
    value = params.get("Input", {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise StatesRuntimeError(
                f"startExecution: Input is not JSON text: {value[:200]!r}"
            ) from None
    name = params.get("Name")
    if name is not None and not isinstance(name, str):
        raise StatesRuntimeError("startExecution: Name must be a text")
    return ChildRequest(workflow_of(arn), arn, value, name or None)


def child_execution_id(parent: str, run: str) -> str:
    """The id of the child a Task's attempt starts (``run``: derived from the step and the
    transition that scheduled it): ``<parent>.<run>``, the parent cut and hashed when that
    would pass 80 characters. The same for every computation of that start, so a
    redelivered start finds its child there."""
    suffix = f".{run}"
    if len(parent) + len(suffix) <= 80:
        return parent + suffix
    digest = hashlib.sha1(parent.encode()).hexdigest()[:8]
    return f"{parent[: 80 - len(suffix) - 9]}.{digest}{suffix}"


def _millis(epoch: float) -> int:
    return int(round(epoch * 1000))


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def start_output(mode: str, execution_arn: str, start: float) -> dict[str, Any]:
    """The output of a start that does not wait: ``{"ExecutionArn", "StartDate"}``, the
    date in epoch milliseconds (the optimized integration) or ISO 8601 (the SDK's)."""
    return {
        "ExecutionArn": execution_arn,
        "StartDate": _iso(start) if mode == "sdk" else _millis(start),
    }


def described(
    *,
    execution_arn: str,
    state_machine_arn: str,
    name: str,
    status: str,
    input_text: str | None,
    output_text: str | None,
    error: str | None,
    cause: str | None,
    start: float,
    stop: float | None,
    parsed: bool = False,
) -> dict[str, Any]:
    """A child's DescribeExecution, as ``.sync`` returns it (``parsed``: ``.sync:2``'s,
    ``Input`` and ``Output`` as JSON rather than JSON text). Dates in epoch milliseconds."""
    out: dict[str, Any] = {"ExecutionArn": execution_arn}
    if input_text is not None:
        out["Input"] = json.loads(input_text) if parsed else input_text
        out["InputDetails"] = {"Included": True}
    out["Name"] = name
    if output_text is not None:
        out["Output"] = json.loads(output_text) if parsed else output_text
        out["OutputDetails"] = {"Included": True}
    out["StartDate"] = _millis(start)
    out["StateMachineArn"] = state_machine_arn
    out["Status"] = status
    if stop is not None:
        out["StopDate"] = _millis(stop)
    if error is not None:
        out["Error"] = error
    if cause is not None:
        out["Cause"] = cause
    return out


def child_failure_cause(description: dict[str, Any]) -> str:
    """The cause of the ``States.TaskFailed`` of a ``.sync`` Task whose child did not
    succeed: the child's description as JSON text, as Step Functions gives it."""
    return json.dumps(description, separators=(",", ":"), ensure_ascii=False)
