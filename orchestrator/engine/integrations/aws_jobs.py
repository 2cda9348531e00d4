"""The job integrations with ``.sync``: their boto3 calls (start, describe, stop).

``athena:startQueryExecution.sync``, ``glue:startJobRun.sync``, ``batch:submitJob.sync``,
``ecs:runTask.sync`` and ``codebuild:startBuild.sync`` (any region and account). The
Task's attempt runs the start call on a worker and returns at once; the engine then polls
the job with timers, no worker held in between (orchestrator/engine/jobs.py), and ends the
Task with the job's description (orchestrator/language/jobs.py says which, and how each
service's statuses read).

Parameters are the API's request as Step Functions takes it: PascalCase field names
(``JobQueue``, ``TaskDefinition``, ``ProjectName``), which are matched to the boto3
operation's members through botocore's service model (map keys, such as a Batch job's
``Parameters``, stay as written); responses come back PascalCase too, dates as epoch
milliseconds (as Step Functions' optimized integrations give them). A failed call is
named as the ``aws-sdk`` integrations name it
(:func:`~orchestrator.engine.integrations.aws_sdk.raise_as_states_error`: a service error
``<Service>.<Name>Exception``, ``Glue.EntityNotFoundException``; no connection or
credentials ``States.TaskFailed``); Retry and Catch match them by name.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from orchestrator.engine.integrations import integration
from orchestrator.engine.integrations.aws_sdk import (
    operation,
    raise_as_states_error,
    to_shape,
)
from orchestrator.engine.items import aws
from orchestrator.errors import StatesError
from orchestrator.language.awssdk import without_metadata
from orchestrator.language.jobs import JOBS, Job, named


class Transient(Exception):
    """A describe call failed for a passing reason (throttling, the service's passing
    fault, no answer): the next poll tries again."""


#: Error codes of a call that pass.
TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        "InternalServiceException",
    }
)


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def to_output(shape: Any, value: Any) -> Any:
    """A boto3 response as Step Functions returns it: structure members PascalCase (map
    keys as they are), dates as epoch milliseconds, bytes as text, no
    ``ResponseMetadata``."""
    if isinstance(value, datetime.datetime):
        return int(round(value.timestamp() * 1000))
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        is_map = shape is not None and shape.type_name == "map"
        out = {}
        for key, item in value.items():
            if key == "ResponseMetadata" and shape is not None and not is_map:
                continue
            if is_map:
                out[key] = to_output(shape.value, item)
            else:
                sub = shape.members.get(key) if shape is not None else None
                out[_pascal(key)] = to_output(sub, item)
        return out
    if isinstance(value, list):
        member = shape.member if shape is not None and shape.type_name == "list" else None
        return [to_output(member, item) for item in value]
    return value


def call(job: Job, action: str, request: Any, *, transient: bool = False) -> dict[str, Any]:
    """One call of ``job``'s service: Step Functions' PascalCase ``request`` in (matched
    to the operation's members), the response out as Step Functions returns it
    (:func:`to_output`); a failure raised as Step Functions names it
    (``<Service>.<Name>Exception``, or ``States.TaskFailed`` for no answer at all), or as
    :class:`Transient` when ``transient`` and it may pass."""
    found = operation(job.service, action, job.error_prefix)
    if isinstance(found, str):  # botocore models every one of these
        raise StatesError(found, error="States.Runtime")
    if not isinstance(request, dict):
        raise StatesError(f"{job.name} needs an object of Parameters", error="States.Runtime")
    client = aws.client(found.service, feature=f"the integration {job.name}")
    try:
        response = getattr(client, found.method)(**to_shape(found.model.input_shape, request))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Step Functions error
        if transient and _passing(exc):
            raise Transient(f"{type(exc).__name__}: {exc}") from None
        raise_as_states_error(exc, found.prefix, None)
    out = to_output(found.model.output_shape, without_metadata(response))
    assert isinstance(out, dict)
    return out


def _passing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = str((response.get("Error") or {}).get("Code") or "")
        return code.rpartition("#")[2] in TRANSIENT
    return aws.is_aws_error(exc)  # no connection, a timeout: the service may come back


def describe(job: Job, handle: dict[str, Any]) -> Any:
    """The job's description (the Task's output when it ends), or None if it is gone;
    :class:`Transient` when the call failed for a reason that may pass."""
    return job.description(call(job, job.describe, job.describe_args(handle), transient=True))


def stop(job: Job, handle: dict[str, Any]) -> None:
    """Stop the job, as Step Functions does when the Task ends before it (raises)."""
    call(job, job.stop, job.stop_args(handle))


def _starter(job: Job) -> Callable[[Any], dict[str, Any]]:
    def start(params: Any) -> dict[str, Any]:
        response = call(job, job.start, params)
        try:
            handle = job.handle(params, response)
        except (KeyError, IndexError, TypeError):
            # ECS answers a task it could not place with Failures and no task.
            raise StatesError(
                f"{job.name} started nothing: {response}", error="States.TaskFailed"
            ) from None
        return {"job": named(job, handle), "submitted": response}

    start.__name__ = start.__qualname__ = job.start
    start.__doc__ = f"Start the job of {job.name} (its poll follows, with timers)."
    return start


for _job in JOBS.values():
    integration(_job.name)(_starter(_job))
