"""Job integrations with ``.sync`` ("Run a Job"): the pure parts.

A Task whose Resource is one of

* ``arn:aws:states:::athena:startQueryExecution.sync``,
* ``arn:aws:states:::glue:startJobRun.sync``,
* ``arn:aws:states:::batch:submitJob.sync``,
* ``arn:aws:states:::ecs:runTask.sync``,
* ``arn:aws:states:::codebuild:startBuild.sync``

(any region and account) starts a job on a worker, then waits for its end without a
worker: the start's commit makes the step WAITING and sets a ``jobpoll`` timer; each
firing describes the job once (on a worker, orchestrator/engine/jobs.py) and either sets
the next poll or ends the Task with the job's description, as Step Functions returns it.

This module holds what needs neither boto3 nor Redis: which jobs exist, how a start's
response names the job (its *handle*), how a description maps to running, succeeded or
failed, the poll timers' members and the polling intervals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.language.interpreter import Interpreter, StepRecord, StepStatus, Transition
from orchestrator.language.resources import resource_fields

__all__ = [
    "JOBS",
    "JOB_TIMERS",
    "FAILED",
    "RUNNING",
    "SUCCEEDED",
    "Job",
    "JobTimer",
    "ended",
    "failure_cause",
    "handle_of",
    "job_for",
    "named",
    "outcome",
    "parse_poll_tag",
    "poll_delay",
    "poll_tag",
    "polled",
    "started",
]

RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"


class JobTimer:
    """Kinds of a job's timers (fired by orchestrator/engine/jobs.py)."""

    POLL = "jobpoll"
    """Describe the job once: ``[jobpoll, execution, <tag>, attempt]``, the tag
    (:func:`poll_tag`) naming the step, the poll's number and the job itself, so a firing
    whose step moved on (a stop, a timeout) still knows which job to stop."""


JOB_TIMERS = (JobTimer.POLL,)


def poll_tag(key: str, poll: int, job: Mapping[str, Any]) -> str:
    """The step-key part of a poll timer's member: ``[step key, poll number, job]``."""
    return json.dumps([key, poll, dict(job)], separators=(",", ":"), sort_keys=True)


def parse_poll_tag(tag: str) -> tuple[str, int, dict[str, Any]]:
    """``(step key, poll number, job)`` of a poll timer's tag."""
    key, poll, job = json.loads(tag)
    return str(key), int(poll), dict(job)


def poll_delay(poll: int, first: float, most: float) -> float:
    """Seconds before poll number ``poll`` (0: the first, after the start): ``first``,
    growing by half each poll up to ``most`` — a short job is seen ending soon, and a
    long one costs a describe call a ``most`` seconds."""
    return float(min(most, first * 1.5 ** max(0, poll)))


@dataclass(frozen=True)
class Job:
    """A job integration: its boto3 calls and how its statuses read."""

    name: str
    """The integration name (``glue:startJobRun.sync``)."""
    service: str
    """The service, as boto3 names it (``glue``)."""
    error_prefix: str
    """How Step Functions names this service's errors (``Glue``: ``Glue.<Exception>``)."""
    start: str
    """The API operation that starts it (``StartJobRun``)."""
    describe: str
    """The API operation that describes it (``GetJobRun``)."""
    stop: str
    """The API operation that stops it (``BatchStopJobRun``)."""
    handle: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
    """(the request, the start's response) -> what names the job (JSON)."""
    describe_args: Callable[[Mapping[str, Any]], dict[str, Any]]
    """handle -> the describe call's arguments."""
    stop_args: Callable[[Mapping[str, Any]], dict[str, Any]]
    """handle -> the stop call's arguments."""
    description: Callable[[Mapping[str, Any]], Any]
    """The describe call's response -> the Task's output (None: the job is not there)."""
    status: Callable[[Any], str]
    """A description -> :data:`RUNNING`, :data:`SUCCEEDED` or :data:`FAILED`."""


def _athena_status(description: Any) -> str:
    state = description["QueryExecution"]["Status"]["State"]
    if state == "SUCCEEDED":
        return SUCCEEDED
    return FAILED if state in ("FAILED", "CANCELLED") else RUNNING


def _glue_status(description: Any) -> str:
    state = description.get("JobRunState")
    if state == "SUCCEEDED":
        return SUCCEEDED
    ended = ("FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED")
    return FAILED if state in ended else RUNNING


def _batch_status(description: Any) -> str:
    state = description.get("Status")
    return {"SUCCEEDED": SUCCEEDED, "FAILED": FAILED}.get(state, RUNNING)


#: How an ECS task that stopped on its own reads (any other stop code failed it).
_ECS_DONE = frozenset({"EssentialContainerExited"})


def _ecs_status(description: Any) -> str:
    if description.get("LastStatus") != "STOPPED":
        return RUNNING
    if description.get("StopCode") not in _ECS_DONE:
        return FAILED
    containers = description.get("Containers") or []
    return SUCCEEDED if all(c.get("ExitCode") == 0 for c in containers) else FAILED


def _codebuild_status(description: Any) -> str:
    state = description["Build"].get("BuildStatus")
    if state == "SUCCEEDED":
        return SUCCEEDED
    return RUNNING if state == "IN_PROGRESS" else FAILED


def _first(items: Any) -> Any:
    return items[0] if items else None


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            name="athena:startQueryExecution.sync",
            service="athena",
            error_prefix="Athena",
            start="StartQueryExecution",
            describe="GetQueryExecution",
            stop="StopQueryExecution",
            handle=lambda _req, out: {"QueryExecutionId": out["QueryExecutionId"]},
            describe_args=lambda h: {"QueryExecutionId": h["QueryExecutionId"]},
            stop_args=lambda h: {"QueryExecutionId": h["QueryExecutionId"]},
            # GetQueryExecution's response, as the Task's output.
            description=lambda out: out if "QueryExecution" in out else None,
            status=_athena_status,
        ),
        Job(
            name="glue:startJobRun.sync",
            service="glue",
            error_prefix="Glue",
            start="StartJobRun",
            describe="GetJobRun",
            stop="BatchStopJobRun",
            handle=lambda req, out: {"JobName": req["JobName"], "RunId": out["JobRunId"]},
            describe_args=lambda h: {"JobName": h["JobName"], "RunId": h["RunId"]},
            stop_args=lambda h: {"JobName": h["JobName"], "JobRunIds": [h["RunId"]]},
            # GetJobRun's JobRun.
            description=lambda out: out.get("JobRun"),
            status=_glue_status,
        ),
        Job(
            name="batch:submitJob.sync",
            service="batch",
            error_prefix="Batch",
            start="SubmitJob",
            describe="DescribeJobs",
            stop="TerminateJob",
            handle=lambda _req, out: {"JobId": out["JobId"]},
            describe_args=lambda h: {"Jobs": [h["JobId"]]},
            stop_args=lambda h: {"JobId": h["JobId"], "Reason": "Step Functions stopped it"},
            # DescribeJobs' job.
            description=lambda out: _first(out.get("Jobs")),
            status=_batch_status,
        ),
        Job(
            name="ecs:runTask.sync",
            service="ecs",
            error_prefix="ECS",
            start="RunTask",
            describe="DescribeTasks",
            stop="StopTask",
            handle=lambda req, out: {
                "Cluster": req.get("Cluster") or "default",
                "TaskArn": out["Tasks"][0]["TaskArn"],
            },
            describe_args=lambda h: {"Cluster": h["Cluster"], "Tasks": [h["TaskArn"]]},
            stop_args=lambda h: {
                "Cluster": h["Cluster"],
                "Task": h["TaskArn"],
                "Reason": "Step Functions stopped it",
            },
            # DescribeTasks' task.
            description=lambda out: _first(out.get("Tasks")),
            status=_ecs_status,
        ),
        Job(
            name="codebuild:startBuild.sync",
            service="codebuild",
            error_prefix="CodeBuild",
            start="StartBuild",
            describe="BatchGetBuilds",
            stop="StopBuild",
            handle=lambda _req, out: {"Id": out["Build"]["Id"]},
            describe_args=lambda h: {"Ids": [h["Id"]]},
            stop_args=lambda h: {"Id": h["Id"]},
            # BatchGetBuilds' build, as StartBuild returns it: {"Build": ...}.
            description=lambda out: {"Build": out["Builds"][0]} if out.get("Builds") else None,
            status=_codebuild_status,
        ),
    )
}


def job_for(name: str | None) -> Job | None:
    """The job integration of an integration name (``glue:startJobRun.sync``), or None."""
    return JOBS.get(name or "")


def named(job: Job, handle: Mapping[str, Any]) -> dict[str, Any]:
    """What the step's record and the poll timers hold of a started job: its handle
    and its integration's name (``integration``)."""
    return {**handle, "integration": job.name}


def handle_of(named_job: Mapping[str, Any]) -> dict[str, Any]:
    """The handle (the service's names for the job) of what :func:`named` made."""
    return {key: value for key, value in named_job.items() if key != "integration"}


def outcome(job: Job, description: Any) -> str:
    """:data:`RUNNING`, :data:`SUCCEEDED` or :data:`FAILED`: what a job's description says
    (a description that lacks its status reads as still running)."""
    try:
        return job.status(description)
    except (KeyError, TypeError, AttributeError):
        return RUNNING


def failure_cause(description: Any) -> str:
    """The cause of the ``States.TaskFailed`` of a job that did not succeed: its
    description as JSON text (its status and status reason included)."""
    return json.dumps(description, separators=(",", ":"), ensure_ascii=False, default=str)


# -- the Task's transitions (the interpreter's Retry, Catch and next states do the rest) --


def _new(interp: Interpreter, now: float) -> Transition:
    return Transition(now, base=interp.history_base, express=interp.info.express)


def started(
    interp: Interpreter,
    key: str,
    record: StepRecord,
    job: dict[str, Any],
    submitted: Any,
    now: float,
    first_poll: float,
) -> Transition:
    """A ``.sync`` job integration started its job (``job``: :func:`named`;
    ``submitted``: the start call's response): ``TaskSubmitted``, and the Task waits —
    its worker released — for its first poll at ``first_poll``."""
    tr = _new(interp, now)
    scope, name = interp.scope_of(key)
    resource = getattr(scope.states[name], "resource", "")
    tr.event("TaskSubmitted", key, output=submitted, **resource_fields(resource))
    record.run = {"job": job, "poll": 0}
    tr.records[key] = record
    tr.statuses[key] = StepStatus.WAITING
    tr.released.append(key)
    tr.timers.append((first_poll, [JobTimer.POLL, poll_tag(key, 0, job), record.attempt]))
    return tr


def polled(interp: Interpreter, key: str, record: StepRecord, now: float, due: float) -> Transition:
    """A poll found the job still running: the next poll at ``due`` (its timer replaces
    the fired one in the same commit; the record counts the polls)."""
    tr = _new(interp, now)
    run = dict(record.run or {})
    run["poll"] = int(run.get("poll", 0)) + 1
    record.run = run
    tr.records[key] = record
    tr.timers.append((due, [JobTimer.POLL, poll_tag(key, run["poll"], run["job"]), record.attempt]))
    return tr


def ended(
    interp: Interpreter,
    key: str,
    record: StepRecord,
    description: Any,
    succeeded: bool,
    now: float,
) -> Transition:
    """The job ended: the Task succeeds with its description, or fails with
    ``States.TaskFailed``, the description as its cause."""
    if succeeded:
        return interp.task_succeeded(key, record, description, now)
    return interp.task_failed(key, record, "States.TaskFailed", failure_cause(description), now)
