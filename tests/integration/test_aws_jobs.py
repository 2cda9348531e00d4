"""The job integrations with ``.sync`` (issue 14 item 3) against moto's server, through the
session's real worker and timer loop: start, polls on timers (no worker held), the end
as Step Functions reports it, a stop or a timeout stopping the job, a poll delivered twice.

moto runs every job offline: Athena queries and CodeBuild builds succeed at once, Glue
job runs move STARTING -> RUNNING -> SUCCEEDED, Batch jobs (moto's simple Batch, no
Docker) succeed or, with ``MOTO_SIMPLE_BATCH_FAIL_AFTER=0``, fail; ECS tasks are held
RUNNING here (moto's state manager, manual progression) until someone stops them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import tests.activities  # noqa: F401 - registers echo
from orchestrator import start_workflow, stop_execution
from orchestrator.engine import jobs
from orchestrator.engine.records import parse_timer_member
from orchestrator.engine.store import get_store
from orchestrator.language.interpreter import StepRecord
from orchestrator.language.jobs import JobTimer, parse_poll_tag
from tests.aws import _free_port
from tests.helpers import machine, run_workflow, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

ROLE = "arn:aws:iam::123456789012:role/job-role"
#: The session worker's threads (tests/conftest.py: concurrency=8).
SESSION_SLOTS = 8


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server on a free loopback port (in this process, as the worker is)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 (the worker's, the test's) pointed at moto, and quick polls."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL": moto_url,
        "ORCHESTRATOR_JOB_POLL_SECONDS": "0.2",
        "ORCHESTRATOR_JOB_POLL_MAX_SECONDS": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    return moto_url


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="us-east-1")


def sync_task(resource: str, **params: Any) -> dict[str, Any]:
    fields = {k: params.pop(k) for k in ("TimeoutSeconds", "Catch", "Retry") if k in params}
    return task(f"arn:aws:states:::{resource}", Parameters=params, **fields)


@pytest.fixture
def ecs_held(aws: str) -> Iterator[str]:
    """An ECS cluster whose tasks stay RUNNING until stopped; its name."""
    transition = {
        "model_name": "ecs::task",
        "transition": {"progression": "manual", "times": 10**6},
    }
    httpx.post(f"{aws}/moto-api/state-manager/set-transition", json=transition).raise_for_status()
    ecs = boto("ecs")
    ecs.create_cluster(clusterName="jobs")
    ecs.register_task_definition(
        family="work", containerDefinitions=[{"name": "w", "image": "busybox", "memory": 128}]
    )
    try:
        yield "jobs"
    finally:
        httpx.post(
            f"{aws}/moto-api/state-manager/unset-transition", json={"model_name": "ecs::task"}
        )


def ecs_task(**fields: Any) -> dict[str, Any]:
    return sync_task(
        "ecs:runTask.sync", Cluster="jobs", TaskDefinition="work", LaunchType="FARGATE", **fields
    )


def ecs_status(task_arn: str) -> str:
    return boto("ecs").describe_tasks(cluster="jobs", tasks=[task_arn])["tasks"][0]["lastStatus"]


def submitted(handle: Any) -> dict[str, Any] | None:
    for event in handle.history():
        if event.type == "TaskSubmitted":
            return dict(event.details)
    return None


def poll_timers(execution_id: str) -> list[str]:
    entries = get_store().due_timer_entries(time.time() + 10**6, 10_000)
    return [
        member
        for member, _ in entries
        if member.startswith(f'["{JobTimer.POLL}",')
        and parse_timer_member(member)[1] == execution_id
    ]


def test_athena_query_sync_returns_get_query_execution(aws):
    definition = machine(
        {
            "Query": sync_task(
                "athena:startQueryExecution.sync",
                QueryString="SELECT 1",
                ResultConfiguration={"OutputLocation": "s3://results/out"},
            )
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    execution = result.output["QueryExecution"]
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["Query"] == "SELECT 1"
    assert isinstance(execution["Status"]["SubmissionDateTime"], int)  # epoch millis
    types = [e.type for e in handle.history()]
    assert types.index("TaskStarted") < types.index("TaskSubmitted") < types.index("TaskSucceeded")
    details = submitted(handle)
    assert details is not None
    assert details["resourceType"] == "athena"
    assert details["resource"] == "startQueryExecution.sync"
    assert details["output"]["QueryExecutionId"] == execution["QueryExecutionId"]
    assert poll_timers(handle.execution_id) == []


def test_glue_job_run_sync_polls_until_it_ends(aws):
    boto("glue").create_job(
        Name="nightly", Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": "s3://s/a.py"}
    )
    # A region-qualified integration ARN is the same integration.
    state = task(
        "arn:aws:states:eu-west-1:123456789012:glue:startJobRun.sync",
        Parameters={"JobName": "nightly", "Arguments": {"--day": "1"}},
    )
    handle, result = run_workflow(machine({"Run": state}))
    assert result.status == "SUCCEEDED", result
    assert result.output["JobName"] == "nightly"
    assert result.output["JobRunState"] == "SUCCEEDED"
    assert result.output["Id"] == submitted(handle)["output"]["JobRunId"]  # type: ignore[index]


def _batch_queue() -> None:
    batch = boto("batch")
    if batch.describe_job_queues(jobQueues=["jobs"])["jobQueues"]:
        return
    iam = boto("iam")
    role = iam.create_role(RoleName="batch-jobs", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(
        computeEnvironmentName="jobs-env", type="UNMANAGED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName="jobs",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName="work",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["true"]},
    )


@pytest.fixture
def batch_jobs(aws: str) -> Iterator[None]:
    """moto's Batch without Docker (jobs end as MOTO_SIMPLE_BATCH_FAIL_AFTER says)."""
    httpx.post(f"{aws}/moto-api/config", json={"batch": {"use_docker": False}}).raise_for_status()
    _batch_queue()
    yield


def test_batch_submit_job_sync_succeeds_with_the_job(batch_jobs):
    state = sync_task(
        "batch:submitJob.sync",
        JobName="report",
        JobQueue="jobs",
        JobDefinition="work",
        Parameters={"day": "1"},
    )
    _, result = run_workflow(machine({"Submit": state}))
    assert result.status == "SUCCEEDED", result
    # DescribeJobs' job, its fields as Step Functions names them.
    assert result.output["Status"] == "SUCCEEDED"
    assert result.output["JobName"] == "report"
    assert result.output["Parameters"] == {"day": "1"}


def test_batch_job_that_fails_fails_the_task(batch_jobs, monkeypatch):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    state = sync_task(
        "batch:submitJob.sync", JobName="broken", JobQueue="jobs", JobDefinition="work"
    )
    _, result = run_workflow(machine({"Submit": state}))
    assert result.status == "FAILED", result
    assert result.error == "States.TaskFailed"
    cause = json.loads(result.cause or "")
    assert cause["Status"] == "FAILED" and cause["JobName"] == "broken"


def test_codebuild_start_build_sync_returns_the_build(aws):
    boto("codebuild").create_project(
        name="app",
        source={"type": "S3", "location": "src/app.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=ROLE,
    )
    _, result = run_workflow(
        machine({"Build": sync_task("codebuild:startBuild.sync", ProjectName="app")})
    )
    assert result.status == "SUCCEEDED", result
    assert result.output["Build"]["BuildStatus"] == "SUCCEEDED"
    assert result.output["Build"]["ProjectName"] == "app"


def test_a_service_error_at_the_start_is_named_after_the_service(aws):
    state = sync_task("glue:startJobRun.sync", JobName="no-such-job")
    _, result = run_workflow(machine({"Run": state}))
    assert result.status == "FAILED", result
    assert result.error == "Glue.EntityNotFoundException", result


def test_an_ecs_task_stopped_by_someone_else_fails_the_task(ecs_held):
    handle = start_workflow(machine({"Run": ecs_task()}))
    details = wait_until(lambda: submitted(handle), message="the task started")
    task_arn = details["output"]["Tasks"][0]["TaskArn"]
    assert ecs_status(task_arn) == "RUNNING"
    boto("ecs").stop_task(cluster="jobs", task=task_arn, reason="operator")
    result = handle.result(20)
    assert result.status == "FAILED" and result.error == "States.TaskFailed", result
    assert json.loads(result.cause or "")["LastStatus"] == "STOPPED"


def test_stopping_the_execution_stops_its_job(ecs_held):
    handle = start_workflow(machine({"Run": ecs_task()}))
    details = wait_until(lambda: submitted(handle), message="the task started")
    task_arn = details["output"]["Tasks"][0]["TaskArn"]
    # Polled a few times while it runs.
    wait_until(lambda: _polls(handle.execution_id) >= 2, message="polled twice")
    stop_execution(handle.execution_id, cause="enough")
    wait_until(lambda: ecs_status(task_arn) == "STOPPED", message="the ECS task stopped")
    wait_until(lambda: poll_timers(handle.execution_id) == [], message="polling ended")
    assert handle.describe().status == "ABORTED"


def test_a_task_timeout_stops_the_job_and_ends_the_polling(ecs_held):
    definition = machine({"Run": ecs_task(TimeoutSeconds=1)})
    handle, result = run_workflow(definition)
    assert result.status == "FAILED" and result.error == "States.Timeout", result
    task_arn = submitted(handle)["output"]["Tasks"][0]["TaskArn"]  # type: ignore[index]
    wait_until(lambda: ecs_status(task_arn) == "STOPPED", message="the ECS task stopped")
    wait_until(lambda: poll_timers(handle.execution_id) == [], message="polling ended")


def _polls(execution_id: str) -> int:
    _, text = get_store().step_state(execution_id, "Run")
    return int((StepRecord.loads(text).run or {}).get("poll", 0)) if text else 0


def test_a_poll_delivered_twice_moves_the_task_once(ecs_held, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_JOB_POLL_SECONDS", "30")  # beat leaves it to us
    monkeypatch.setenv("ORCHESTRATOR_JOB_POLL_MAX_SECONDS", "60")
    handle = start_workflow(machine({"Run": ecs_task()}))
    wait_until(lambda: submitted(handle), message="the task started")
    (member,) = wait_until(lambda: poll_timers(handle.execution_id), message="a poll timer")
    store = get_store()
    assert jobs.poll(store, member, time.time()) == "waiting"
    assert jobs.poll(store, member, time.time()) == "gone"  # the same message again
    assert _polls(handle.execution_id) == 1
    (following,) = poll_timers(handle.execution_id)
    assert parse_poll_tag(parse_timer_member(following)[2])[1] == 1
    stop_execution(handle.execution_id)
    # The next poll (made due now) stops the ECS task.
    store.push_back_timer(following, time.time())
    task_arn = submitted(handle)["output"]["Tasks"][0]["TaskArn"]  # type: ignore[index]
    wait_until(lambda: ecs_status(task_arn) == "STOPPED", message="the ECS task stopped")


def test_waiting_jobs_hold_no_worker(ecs_held):
    # More jobs waiting than the worker has threads: each started (a slot for its start
    # call only), and an activity still runs while they all wait.
    slots = SESSION_SLOTS
    handles = [start_workflow(machine({"Run": ecs_task()})) for _ in range(slots + 2)]
    for handle in handles:
        wait_until(lambda h=handle: submitted(h), timeout=20, message="every job started")
    _, result = run_workflow(machine({"Echo": task("echo")}), {"x": 1}, timeout=10)
    assert result.status == "SUCCEEDED" and result.output == {"x": 1}, result
    assert all(h.describe().status == "RUNNING" for h in handles)
    for handle in handles:
        stop_execution(handle.execution_id)
    arns = [submitted(h)["output"]["Tasks"][0]["TaskArn"] for h in handles]  # type: ignore[index]
    wait_until(
        lambda: all(ecs_status(arn) == "STOPPED" for arn in arns), timeout=20, message="stopped"
    )
