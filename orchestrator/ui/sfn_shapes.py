"""The Step Functions API's translations, pure: errors to AWS error codes, history events
to Step Functions' ``HistoryEvent`` shapes, and paging tokens.

:mod:`orchestrator.ui.sfn` serves the AWS JSON 1.0 protocol with these; the shapes follow
botocore's service model of ``stepfunctions`` (field names, timestamps as epoch seconds,
JSON documents as strings), so SDKs read the answers as they read AWS's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.client.models import HistoryEvent
from orchestrator.errors import (
    DefinitionError,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidArn,
    InvalidExecutionState,
    InvalidInputError,
    InvalidName,
    OrchestratorError,
    RegistryConflict,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineNotFound,
    StoreUnavailable,
    TaskTokenError,
)
from orchestrator.language.tokens import execution_of

#: Step Functions' bounds on a page (``maxResults``; 0 or absent: the default).
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass
class SfnError(Exception):
    """An error answered as Step Functions answers it: ``{"__type": code, "message"}``
    with an HTTP status (400 for the caller's errors, as AWS; 5xx makes SDKs retry)."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, str]:
        """The JSON body of the answer."""
        return {"__type": self.code, "message": self.message}


def validation(message: str) -> SfnError:
    """A ``ValidationException``: a request field missing or out of its bounds."""
    return SfnError("ValidationException", message)


def error_for(exc: Exception, action: str = "") -> SfnError:
    """The Step Functions error an engine error becomes, in the answer to ``action``."""
    if isinstance(exc, SfnError):
        return exc
    message = str(exc)[:2000]
    if isinstance(exc, ExecutionNotFound):
        return SfnError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{exc.execution_id}'")
    if isinstance(exc, StateMachineNotFound):
        return SfnError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{exc.name}'")
    if isinstance(exc, StateMachineAlreadyExists):
        return SfnError("StateMachineAlreadyExists", message)
    if isinstance(exc, ExecutionAlreadyExists):
        return SfnError("ExecutionAlreadyExists", f"Execution Already Exists: '{exc.execution_id}'")
    if isinstance(exc, DefinitionError):
        issues = "; ".join(str(issue) for issue in exc.issues[:20])
        return SfnError("InvalidDefinition", f"Invalid State Machine Definition: '{issues}'")
    if isinstance(exc, InvalidName):
        return SfnError("InvalidName", message)
    if isinstance(exc, InvalidArn):
        return SfnError("InvalidArn", message)
    if isinstance(exc, InvalidExecutionState):
        if exc.operation == "redrive":
            return SfnError("ExecutionNotRedrivable", message)
        return validation(message)
    if isinstance(exc, TaskTokenError):
        return SfnError("TaskDoesNotExist", message)
    if isinstance(exc, ResourceNotFound):
        return SfnError("ResourceNotFound", message)
    if isinstance(exc, RegistryConflict):
        return SfnError("ConflictException", message)
    if isinstance(exc, StoreUnavailable):
        return SfnError("ServiceUnavailable", "The orchestrator's Redis cannot be reached.", 503)
    if isinstance(exc, InvalidInputError | OrchestratorError):
        return validation(message)
    return SfnError("InternalFailure", "Something went wrong; the server log has details.", 500)


def token_error(token: object) -> SfnError:
    """The error of a task token nothing waits for: ``InvalidToken`` when it is not a
    token at all, else ``TaskDoesNotExist``."""
    if not isinstance(token, str) or execution_of(token) is None:
        return SfnError("InvalidToken", "Invalid Token: not a task token of this orchestrator")
    return SfnError("TaskDoesNotExist", "Task Does Not Exist: the token's task is not waiting")


def epoch(moment: datetime | None) -> float | None:
    """A timestamp as the JSON 1.0 protocol carries it: epoch seconds."""
    return None if moment is None else moment.timestamp()


def json_text(value: Any) -> str:
    """A JSON document as Step Functions' string fields carry it (compact)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def page_size(value: object) -> int:
    """``maxResults``: 0 or absent is the default page, at most 1,000."""
    if value is None or value == 0:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PAGE:
        raise validation(f"maxResults: an integer from 0 to {MAX_PAGE}")
    return value


# -------------------------------------------------------------------------- paging tokens


def encode_token(kind: str, **where: Any) -> str:
    """An opaque ``nextToken``: where the next page starts, for a listing of ``kind``.

    Not a secret: it only says where to read, and every read checks what it may see.
    """
    text = json_text({"k": kind, **where})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: object, kind: str) -> dict[str, Any]:
    """What :func:`encode_token` put in ``token`` for ``kind``.

    Raises:
        SfnError: ``InvalidToken``, when it is not a token of such a listing.
    """
    # A listing's token holds a position per partition: up to 256 of them.
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise SfnError("InvalidToken", "Invalid Token: not a nextToken this API returned")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        where = json.loads(raw)
    except (binascii.Error, ValueError):
        raise SfnError("InvalidToken", "Invalid Token: not a nextToken this API returned") from None
    if not isinstance(where, dict) or where.get("k") != kind:
        raise SfnError("InvalidToken", "Invalid Token: a nextToken of another listing")
    return where


def history_page(
    length: int, max_results: int, reverse: bool, cursor: int | None
) -> tuple[int, int, int | None]:
    """Which events a page of GetExecutionHistory holds: ``(after, count, next_cursor)``
    to read ``count`` events with ids above ``after`` (ids are dense: 1 to ``length``).

    ``cursor`` is the previous page's: the last id it held, forward; the first, reversed.
    """
    if not reverse:
        after = cursor or 0
        count = max(0, min(max_results, length - after))
        end = after + count
        return after, count, end if end < length else None
    below = length + 1 if cursor is None else cursor
    first = max(1, below - max_results)
    count = max(0, below - first)
    return first - 1, count, first if first > 1 else None


# -------------------------------------------------------------------------- history events

_STATE_TYPES = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
_ERROR_DETAILS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "MapRunFailed": "mapRunFailedEventDetails",
    "ActivityFailed": "activityFailedEventDetails",
    "ActivityTimedOut": "activityTimedOutEventDetails",
}
_TASK_DETAILS = {
    "TaskStarted": "taskStartedEventDetails",
    "TaskSucceeded": "taskSucceededEventDetails",
    "TaskSubmitted": "taskSubmittedEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
}
_MAP_ITERATION = {
    "MapIterationStarted": "mapIterationStartedEventDetails",
    "MapIterationSucceeded": "mapIterationSucceededEventDetails",
    "MapIterationFailed": "mapIterationFailedEventDetails",
    "MapIterationAborted": "mapIterationAbortedEventDetails",
}


def task_resource(details: dict[str, Any]) -> tuple[str, str]:
    """``(resourceType, resource)`` of a Task as Step Functions names them: a service
    integration ``arn:aws:states:::lambda:invoke`` is ``("lambda", "invoke")``; an
    activity of this orchestrator is ``("activity", its name)``."""
    if isinstance(details.get("resourceType"), str) and isinstance(details.get("resource"), str):
        return details["resourceType"], details["resource"]
    resource = str(details.get("resource") or "")
    if resource.startswith("arn:aws:states:::"):
        service, _, action = resource[len("arn:aws:states:::") :].partition(":")
        return service, action
    return "activity", resource


class HistoryShaper:
    """Turns engine history events into Step Functions ``HistoryEvent`` dicts.

    A Task's later events (TaskStarted, TaskSucceeded...) name its resource as its
    TaskScheduled did: the shaper remembers it per step key across the events it is given
    (one page; an event whose scheduling is on another page names what its own event holds).
    """

    def __init__(self, include_data: bool = True, region: str = "") -> None:
        self.include_data = include_data
        self.region = region
        self._resources: dict[str, tuple[str, str]] = {}

    def _io(self, name: str | None, details: dict[str, Any], field: str) -> dict[str, Any]:
        shaped: dict[str, Any] = {} if name is None else {"name": name}
        if self.include_data:
            shaped[field] = json_text(details.get(field))
            shaped[f"{field}Details"] = {"truncated": False}
        return shaped

    def event(self, event: HistoryEvent) -> dict[str, Any]:
        """One event in Step Functions' shape (ids dense from 1: ``previousEventId`` is
        the event before it)."""
        kind = event.type
        details = event.details
        shaped: dict[str, Any] = {
            "timestamp": epoch(event.timestamp),
            "type": kind,
            "id": event.id,
            "previousEventId": event.id - 1,
        }
        extra = self._details(kind, event.state, event.key or event.state or "", details)
        if extra is not None:
            shaped[extra[0]] = extra[1]
        return shaped

    def _details(
        self, kind: str, state: str | None, key: str, details: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        name = state or ""
        error = {k: str(details[k]) for k in ("error", "cause") if details.get(k) is not None}
        for prefix in _STATE_TYPES:
            if kind == f"{prefix}StateEntered":
                return "stateEnteredEventDetails", self._io(name, details, "input")
            if kind == f"{prefix}StateExited":
                return "stateExitedEventDetails", self._io(name, details, "output")
        if kind == "ExecutionStarted":
            started = self._io(None, details, "input")
            for field in ("stateMachineVersionArn", "stateMachineAliasArn", "roleArn"):
                if isinstance(details.get(field), str):
                    started[field] = details[field]
            return "executionStartedEventDetails", started
        if kind == "ExecutionSucceeded":
            return "executionSucceededEventDetails", self._io(None, details, "output")
        if kind in _ERROR_DETAILS:
            return _ERROR_DETAILS[kind], error
        if kind == "ExecutionRedriven":
            return "executionRedrivenEventDetails", {
                "redriveCount": int(details.get("redriveCount") or 0)
            }
        if kind == "TaskScheduled":
            resource_type, resource = task_resource(details)
            self._resources[key] = (resource_type, resource)
            scheduled: dict[str, Any] = {
                "resourceType": resource_type,
                "resource": resource,
                "region": self.region,
                "parameters": json_text(details.get("parameters")) if self.include_data else "",
            }
            for field, name_ in (
                ("timeout", "timeoutInSeconds"),
                ("heartbeat", "heartbeatInSeconds"),
            ):
                for source in (field, name_):
                    if isinstance(details.get(source), int):
                        scheduled[name_] = details[source]
            return "taskScheduledEventDetails", scheduled
        if kind in _TASK_DETAILS:
            resource_type, resource = self._resources.get(key) or task_resource(details)
            task: dict[str, Any] = {"resourceType": resource_type, "resource": resource}
            if kind in ("TaskSucceeded", "TaskSubmitted") and self.include_data:
                task["output"] = json_text(details.get("output"))
                task["outputDetails"] = {"truncated": False}
            task.update(error)
            return _TASK_DETAILS[kind], task
        if kind == "MapStateStarted":
            return "mapStateStartedEventDetails", {"length": int(details.get("length") or 0)}
        if kind in _MAP_ITERATION:
            return _MAP_ITERATION[kind], {"name": name, "index": int(details.get("index") or 0)}
        if kind == "MapRunStarted":
            return "mapRunStartedEventDetails", {"mapRunArn": str(details.get("mapRunArn", ""))}
        if kind == "MapRunRedriven":
            return "mapRunRedrivenEventDetails", {
                "mapRunArn": str(details.get("mapRunArn", "")),
                "redriveCount": int(details.get("redriveCount") or 0),
            }
        if kind == "EvaluationFailed":
            return "evaluationFailedEventDetails", {**error, "state": name}
        return None

    def events(self, events: list[HistoryEvent]) -> list[dict[str, Any]]:
        """Several events, in the order given."""
        return [self.event(event) for event in events]
