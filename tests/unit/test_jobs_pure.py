"""The job integrations with ``.sync``, the pure parts: how each service's description
reads (running, succeeded, failed), the poll timers and intervals, the Task's transitions
(waiting with a poll timer, the next poll, the end), and the request/response shapes
through botocore's service models (no call is made)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.engine.integrations import aws_jobs
from orchestrator.language import jobs
from orchestrator.language.definition import parse_definition
from orchestrator.language.interpreter import ExecutionInfo, Interpreter, StepStatus
from orchestrator.language.resources import integration_name

ATHENA = jobs.JOBS["athena:startQueryExecution.sync"]
GLUE = jobs.JOBS["glue:startJobRun.sync"]
BATCH = jobs.JOBS["batch:submitJob.sync"]
ECS = jobs.JOBS["ecs:runTask.sync"]
CODEBUILD = jobs.JOBS["codebuild:startBuild.sync"]


def _athena(state: str) -> dict[str, Any]:
    return {"QueryExecution": {"QueryExecutionId": "q", "Status": {"State": state}}}


@pytest.mark.parametrize(
    ("job", "description", "expected"),
    [
        (ATHENA, _athena("QUEUED"), jobs.RUNNING),
        (ATHENA, _athena("RUNNING"), jobs.RUNNING),
        (ATHENA, _athena("SUCCEEDED"), jobs.SUCCEEDED),
        (ATHENA, _athena("FAILED"), jobs.FAILED),
        (ATHENA, _athena("CANCELLED"), jobs.FAILED),
        (GLUE, {"JobRunState": "STARTING"}, jobs.RUNNING),
        (GLUE, {"JobRunState": "RUNNING"}, jobs.RUNNING),
        (GLUE, {"JobRunState": "STOPPING"}, jobs.RUNNING),
        (GLUE, {"JobRunState": "WAITING"}, jobs.RUNNING),
        (GLUE, {"JobRunState": "SUCCEEDED"}, jobs.SUCCEEDED),
        (GLUE, {"JobRunState": "FAILED"}, jobs.FAILED),
        (GLUE, {"JobRunState": "ERROR"}, jobs.FAILED),
        (GLUE, {"JobRunState": "TIMEOUT"}, jobs.FAILED),
        (GLUE, {"JobRunState": "STOPPED"}, jobs.FAILED),
        (GLUE, {"JobRunState": "EXPIRED"}, jobs.FAILED),
        (BATCH, {"Status": "SUBMITTED"}, jobs.RUNNING),
        (BATCH, {"Status": "RUNNABLE"}, jobs.RUNNING),
        (BATCH, {"Status": "RUNNING"}, jobs.RUNNING),
        (BATCH, {"Status": "SUCCEEDED"}, jobs.SUCCEEDED),
        (BATCH, {"Status": "FAILED"}, jobs.FAILED),
        (ECS, {"LastStatus": "PROVISIONING"}, jobs.RUNNING),
        (ECS, {"LastStatus": "RUNNING"}, jobs.RUNNING),
        (ECS, {"LastStatus": "DEPROVISIONING"}, jobs.RUNNING),
        (
            ECS,
            {
                "LastStatus": "STOPPED",
                "StopCode": "EssentialContainerExited",
                "Containers": [{"ExitCode": 0}, {"ExitCode": 0}],
            },
            jobs.SUCCEEDED,
        ),
        # ECS gives every stopped task a stop code: one without is no clean exit.
        (ECS, {"LastStatus": "STOPPED", "Containers": [{"ExitCode": 0}]}, jobs.FAILED),
        (
            ECS,
            {
                "LastStatus": "STOPPED",
                "StopCode": "EssentialContainerExited",
                "Containers": [{"ExitCode": 0}, {"ExitCode": 2}],
            },
            jobs.FAILED,
        ),
        (ECS, {"LastStatus": "STOPPED", "StopCode": "UserInitiated"}, jobs.FAILED),
        (ECS, {"LastStatus": "STOPPED", "StopCode": "TaskFailedToStart"}, jobs.FAILED),
        (ECS, {"LastStatus": "STOPPED", "Containers": [{"Name": "never-ran"}]}, jobs.FAILED),
        (CODEBUILD, {"Build": {"BuildStatus": "IN_PROGRESS"}}, jobs.RUNNING),
        (CODEBUILD, {"Build": {"BuildStatus": "SUCCEEDED"}}, jobs.SUCCEEDED),
        (CODEBUILD, {"Build": {"BuildStatus": "FAILED"}}, jobs.FAILED),
        (CODEBUILD, {"Build": {"BuildStatus": "FAULT"}}, jobs.FAILED),
        (CODEBUILD, {"Build": {"BuildStatus": "TIMED_OUT"}}, jobs.FAILED),
        (CODEBUILD, {"Build": {"BuildStatus": "STOPPED"}}, jobs.FAILED),
        # A description without its status reads as running: the next poll looks again.
        (ATHENA, {"QueryExecution": {}}, jobs.RUNNING),
        (CODEBUILD, {}, jobs.RUNNING),
    ],
)
def test_statuses(job: jobs.Job, description: Any, expected: str) -> None:
    assert jobs.outcome(job, description) == expected


def test_every_job_is_a_region_qualified_integration_too() -> None:
    for name in jobs.JOBS:
        arn = f"arn:aws:states:eu-west-1:123456789012:{name}"
        assert jobs.job_for(integration_name(arn)) is jobs.JOBS[name]
        assert jobs.job_for(integration_name(f"arn:aws:states:::{name}")) is jobs.JOBS[name]
    # The request-response forms are not jobs.
    assert jobs.job_for(integration_name("arn:aws:states:::glue:startJobRun")) is None


def test_poll_delays_grow_to_the_most() -> None:
    delays = [jobs.poll_delay(n, 5.0, 60.0) for n in range(10)]
    assert delays[0] == 5.0 and delays[1] == 7.5
    assert delays == sorted(delays) and max(delays) == 60.0


@given(
    key=st.text(min_size=1, max_size=30),
    poll=st.integers(min_value=0, max_value=10**6),
    run_id=st.text(max_size=20),
)
def test_poll_tags_round_trip(key: str, poll: int, run_id: str) -> None:
    named = jobs.named(GLUE, {"JobName": "j|/[x]", "RunId": run_id})
    assert jobs.parse_poll_tag(jobs.poll_tag(key, poll, named)) == (key, poll, named)
    assert jobs.handle_of(named) == {"JobName": "j|/[x]", "RunId": run_id}


def test_handles_and_calls() -> None:
    assert ATHENA.handle({}, {"QueryExecutionId": "q1"}) == {"QueryExecutionId": "q1"}
    assert GLUE.handle({"JobName": "j"}, {"JobRunId": "r"}) == {"JobName": "j", "RunId": "r"}
    assert GLUE.stop_args({"JobName": "j", "RunId": "r"}) == {"JobName": "j", "JobRunIds": ["r"]}
    assert BATCH.describe_args({"JobId": "b"}) == {"Jobs": ["b"]}
    started = {"Tasks": [{"TaskArn": "arn:t"}], "Failures": []}
    assert ECS.handle({}, started) == {"Cluster": "default", "TaskArn": "arn:t"}
    assert ECS.handle({"Cluster": "c"}, started)["Cluster"] == "c"
    assert CODEBUILD.description({"Builds": [{"Id": "b"}]}) == {"Build": {"Id": "b"}}
    assert CODEBUILD.description({"Builds": []}) is None
    assert BATCH.description({"Jobs": []}) is None


def _interp(resource: str = "arn:aws:states:::glue:startJobRun.sync", **state: Any) -> Interpreter:
    definition = parse_definition(
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": resource,
                    "Parameters": {"JobName": "nightly"},
                    "End": True,
                    **state,
                }
            },
        }
    )
    info = ExecutionInfo("ex", "ex", "wf", 100.0, {})
    return Interpreter(definition, info, lambda s: "orchestrator.integration.glue")


def test_started_waits_with_a_poll_timer_and_no_worker() -> None:
    interp = _interp()
    record = interp.start(100.0).records["Run"]
    assert record is not None
    named = jobs.named(GLUE, {"JobName": "nightly", "RunId": "r1"})
    tr = jobs.started(interp, "Run", record, named, {"JobRunId": "r1"}, 101.0, 106.0)
    assert [e["type"] for e in tr.events] == ["TaskSubmitted"]
    assert tr.events[0]["resourceType"] == "glue"
    assert tr.events[0]["resource"] == "startJobRun.sync"
    assert tr.statuses["Run"] == StepStatus.WAITING
    assert tr.released == ["Run"]  # the lease goes: no worker holds it
    assert tr.dispatches == []
    assert tr.timers == [(106.0, [jobs.JobTimer.POLL, jobs.poll_tag("Run", 0, named), 0])]
    stored = tr.records["Run"]
    assert stored is not None and stored.run == {"job": named, "poll": 0}


def test_a_poll_sets_the_next_and_counts_it() -> None:
    interp = _interp()
    record = interp.start(100.0).records["Run"]
    assert record is not None
    named = jobs.named(GLUE, {"JobName": "nightly", "RunId": "r1"})
    jobs.started(interp, "Run", record, named, {}, 101.0, 106.0)
    tr = jobs.polled(interp, "Run", record, 106.0, 113.5)
    assert tr.events == [] and "Run" not in tr.statuses
    assert tr.timers == [(113.5, [jobs.JobTimer.POLL, jobs.poll_tag("Run", 1, named), 0])]
    stored = tr.records["Run"]
    assert stored is not None and stored.run == {"job": named, "poll": 1}


def test_the_end_succeeds_with_the_description_or_fails_with_it() -> None:
    interp = _interp()
    record = interp.start(100.0).records["Run"]
    assert record is not None
    done = jobs.ended(interp, "Run", record, {"JobRunState": "SUCCEEDED"}, True, 120.0)
    assert done.end is not None and done.end["output"] == {"JobRunState": "SUCCEEDED"}
    failed_run = {"JobRunState": "FAILED", "ErrorMessage": "out of memory"}
    failed = jobs.ended(interp, "Run", record, failed_run, False, 120.0)
    assert failed.end is not None and failed.end["error"] == "States.TaskFailed"
    assert json.loads(failed.end["cause"]) == failed_run


def test_a_failure_is_caught_like_any_task_error() -> None:
    interp = Interpreter(
        parse_definition(
            {
                "StartAt": "Run",
                "States": {
                    "Run": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::batch:submitJob.sync",
                        "Parameters": {"JobName": "j", "JobQueue": "q", "JobDefinition": "d"},
                        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Fallback"}],
                        "End": True,
                    },
                    "Fallback": {"Type": "Pass", "End": True},
                },
            }
        ),
        ExecutionInfo("ex", "ex", "wf", 100.0, {}),
        lambda s: "orchestrator.integration.batch",
    )
    record = interp.start(100.0).records["Run"]
    assert record is not None
    tr = jobs.ended(interp, "Run", record, {"Status": "FAILED"}, False, 120.0)
    assert tr.end is not None and tr.end["status"] == "SUCCEEDED"
    assert tr.end["output"]["Error"] == "States.TaskFailed"


def test_requests_and_responses_follow_the_service_models() -> None:
    """Step Functions' PascalCase request becomes botocore's members (map keys as
    written), and a response comes back PascalCase with dates as epoch milliseconds."""
    from orchestrator.engine.integrations.aws_sdk import operation, to_shape

    submit = operation("batch", "SubmitJob", "Batch")
    assert not isinstance(submit, str)
    request = {
        "JobName": "j",
        "JobQueue": "q",
        "JobDefinition": "d",
        "Parameters": {"InputKey": "v"},
        "ContainerOverrides": {"Environment": [{"Name": "A", "Value": "1"}]},
    }
    assert to_shape(submit.model.input_shape, request) == {
        "jobName": "j",
        "jobQueue": "q",
        "jobDefinition": "d",
        "parameters": {"InputKey": "v"},
        "containerOverrides": {"environment": [{"name": "A", "value": "1"}]},
    }
    described = operation("batch", "DescribeJobs", "Batch")
    assert not isinstance(described, str)
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)
    answer = {"jobs": [{"jobId": "b", "status": "FAILED", "parameters": {"inputKey": "v"}}]}
    assert aws_jobs.to_output(described.model.output_shape, answer) == {
        "Jobs": [{"JobId": "b", "Status": "FAILED", "Parameters": {"inputKey": "v"}}]
    }
    got = operation("glue", "GetJobRun", "Glue")
    assert not isinstance(got, str)
    run = aws_jobs.to_output(got.model.output_shape, {"JobRun": {"Id": "r", "StartedOn": when}})
    assert run == {"JobRun": {"Id": "r", "StartedOn": 1704164645678}}
