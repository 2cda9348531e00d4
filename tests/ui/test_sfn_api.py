"""The Step Functions API (AWS JSON 1.0 on ``POST /``) driven by real clients: boto3 and
the AWS CLI against the UI served by uvicorn on 127.0.0.1, the session's Redis and worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import tests.control_activities  # noqa: F401 - registers the ctl_* activities before the worker starts
from orchestrator.engine.store import get_store
from orchestrator.language.arns import state_machine_arn
from tests.control_activities import ctext
from tests.helpers import wait_until

ROLE = "arn:aws:iam::123456789012:role/sfn"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
ECHO = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "echo", "End": True}}}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sfn(live_server: str) -> Any:
    """A boto3 Step Functions client of the live server (no retries: an error is seen once;
    no ``sync-`` host prefix for StartSyncExecution and TestState)."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=live_server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )


def code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    """The error code of a ClientError."""
    return str(excinfo.value.response["Error"]["Code"])


def create(sfn: Any, definition: dict[str, Any] = PASS, **fields: Any) -> str:
    """Create a state machine; return its ARN."""
    name = fields.pop("name", None) or _name("sm")
    reply = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, **fields
    )
    return str(reply["stateMachineArn"])


def wait_status(sfn: Any, execution_arn: str, timeout: float = 20) -> dict[str, Any]:
    """DescribeExecution once the execution ended."""
    return wait_until(
        lambda: (
            (d := sfn.describe_execution(executionArn=execution_arn))["status"] != "RUNNING" and d
        ),
        timeout,
        message=f"{execution_arn} ended",
    )


# -------------------------------------------------------------------------- state machines


def test_state_machine_lifecycle_with_versions_aliases_and_tags(sfn) -> None:
    name = _name("life")
    created = sfn.create_state_machine(
        name=name,
        definition=json.dumps(PASS),
        roleArn=ROLE,
        tags=[{"key": "team", "value": "a"}],
        publish=True,
        versionDescription="first",
    )
    arn = created["stateMachineArn"]
    assert arn == state_machine_arn(name)  # the configured region and account
    assert created["stateMachineVersionArn"] == f"{arn}:1"
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["name"] == name and described["status"] == "ACTIVE"
    assert json.loads(described["definition"]) == PASS
    assert described["roleArn"] == ROLE and described["type"] == "STANDARD"
    assert described["loggingConfiguration"] == {"level": "OFF", "includeExecutionData": False}
    # What a client gives is answered back (as Terraform reads it), never used.
    logging = {
        "level": "ERROR",
        "includeExecutionData": True,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:x"}}],
    }
    sfn.update_state_machine(
        stateMachineArn=arn,
        roleArn=ROLE + "2",
        loggingConfiguration=logging,
        tracingConfiguration={"enabled": True},
    )
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["roleArn"] == ROLE + "2" and described["loggingConfiguration"] == logging
    assert described["tracingConfiguration"] == {"enabled": True}

    updated = sfn.update_state_machine(
        stateMachineArn=arn, definition=json.dumps(ECHO), publish=True
    )
    assert updated["stateMachineVersionArn"] == f"{arn}:2"
    assert updated["revisionId"] == sfn.describe_state_machine(stateMachineArn=arn)["revisionId"]
    version_1 = sfn.describe_state_machine(stateMachineArn=f"{arn}:1")
    assert json.loads(version_1["definition"]) == PASS
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == (
        f"{arn}:2"  # already the latest version's revision: idempotent
    )
    versions = sfn.list_state_machine_versions(stateMachineArn=arn, maxResults=1)
    assert [v["stateMachineVersionArn"] for v in versions["stateMachineVersions"]] == [f"{arn}:2"]
    rest = sfn.list_state_machine_versions(stateMachineArn=arn, nextToken=versions["nextToken"])
    assert [v["stateMachineVersionArn"] for v in rest["stateMachineVersions"]] == [f"{arn}:1"]
    assert "nextToken" not in rest

    alias = sfn.create_state_machine_alias(
        name="prod",
        description="canary",
        routingConfiguration=[
            {"stateMachineVersionArn": f"{arn}:1", "weight": 90},
            {"stateMachineVersionArn": f"{arn}:2", "weight": 10},
        ],
    )
    alias_arn = alias["stateMachineAliasArn"]
    assert alias_arn == f"{arn}:prod"
    got = sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    assert got["name"] == "prod" and got["description"] == "canary"
    assert {r["stateMachineVersionArn"]: r["weight"] for r in got["routingConfiguration"]} == {
        f"{arn}:1": 90,
        f"{arn}:2": 10,
    }
    sfn.update_state_machine_alias(
        stateMachineAliasArn=alias_arn,
        routingConfiguration=[{"stateMachineVersionArn": f"{arn}:2", "weight": 100}],
    )
    got = sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    assert got["routingConfiguration"] == [{"stateMachineVersionArn": f"{arn}:2", "weight": 100}]
    listed = sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
    assert [a["stateMachineAliasArn"] for a in listed] == [alias_arn]
    with pytest.raises(ClientError) as excinfo:  # an alias routes to it
        sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:2")
    assert code(excinfo) == "ConflictException"

    # An execution through the alias runs version 2 and is listed under its alias.
    started = sfn.start_execution(stateMachineArn=alias_arn, input=json.dumps({"v": 1}))
    done = wait_status(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"v": 1}
    assert done["stateMachineAliasArn"] == alias_arn
    assert done["stateMachineVersionArn"] == f"{arn}:2"
    through_alias = sfn.list_executions(stateMachineArn=alias_arn)["executions"]
    assert [e["executionArn"] for e in through_alias] == [started["executionArn"]]

    # Tags: set at creation, added, listed, removed.
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "test"}])
    tags = sfn.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("env", "test"), ("team", "a")]
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "test"}]

    sfn.delete_state_machine_alias(stateMachineAliasArn=alias_arn)
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    assert code(excinfo) == "ResourceNotFound"
    sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:1")
    remaining = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in remaining] == [f"{arn}:2"]
    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_state_machine(stateMachineArn=arn)
    assert code(excinfo) == "StateMachineDoesNotExist"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(excinfo.value.response["ResponseMetadata"]["RequestId"]) == 36
    with pytest.raises(ClientError) as excinfo:
        sfn.list_tags_for_resource(resourceArn=arn)
    assert code(excinfo) == "ResourceNotFound"
    sfn.delete_state_machine(stateMachineArn=arn)  # deleting none is no error, as AWS


def test_state_machine_errors(sfn) -> None:
    arn = create(sfn)
    name = arn.rpartition(":")[2]
    with pytest.raises(ClientError) as excinfo:
        sfn.create_state_machine(name=name, definition=json.dumps(ECHO), roleArn=ROLE)
    assert code(excinfo) == "StateMachineAlreadyExists"
    # The same again is idempotent.
    assert sfn.create_state_machine(name=name, definition=json.dumps(PASS), roleArn=ROLE)[
        "stateMachineArn"
    ] == (arn)
    with pytest.raises(ClientError) as excinfo:
        sfn.create_state_machine(name="bad name", definition=json.dumps(PASS), roleArn=ROLE)
    assert code(excinfo) == "InvalidName"
    bad = {"StartAt": "Nowhere", "States": {"P": {"Type": "Pass", "End": True}}}
    with pytest.raises(ClientError) as excinfo:
        sfn.create_state_machine(name=_name("bad"), definition=json.dumps(bad), roleArn=ROLE)
    assert code(excinfo) == "InvalidDefinition"
    with pytest.raises(ClientError) as excinfo:
        sfn.create_state_machine(name=_name("bad"), definition="{not json", roleArn=ROLE)
    assert code(excinfo) == "InvalidDefinition"
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_state_machine(stateMachineArn="not-an-arn")
    assert code(excinfo) == "InvalidArn"
    with pytest.raises(ClientError) as excinfo:
        sfn.update_state_machine(stateMachineArn=arn.replace(name, name + "x"), publish=True)
    assert code(excinfo) == "StateMachineDoesNotExist"
    with pytest.raises(ClientError) as excinfo:
        sfn.update_state_machine(stateMachineArn=arn)
    assert code(excinfo) == "MissingRequiredParameter"
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_state_machine(stateMachineArn=f"{arn}:7")
    assert code(excinfo) == "ResourceNotFound"
    with pytest.raises(ClientError) as excinfo:
        sfn.list_state_machines(nextToken="garbage!")
    assert code(excinfo) == "InvalidToken"
    with pytest.raises(ClientError) as excinfo:
        sfn.list_state_machines(maxResults=5000)
    assert code(excinfo) == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        sfn.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert code(excinfo) == "TooManyTags"


def test_list_state_machines_pages_through_all(sfn) -> None:
    arns = {create(sfn) for _ in range(3)}
    seen: list[str] = []
    token = None
    while True:
        page = sfn.list_state_machines(maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["stateMachines"]) <= 2
        seen += [m["stateMachineArn"] for m in page["stateMachines"]]
        token = page.get("nextToken")
        if not token:
            break
    assert arns <= set(seen) and len(seen) == len(set(seen))
    # botocore's paginator reads the same tokens.
    paginated = [
        m["stateMachineArn"]
        for page in sfn.get_paginator("list_state_machines").paginate(
            PaginationConfig={"PageSize": 2}
        )
        for m in page["stateMachines"]
    ]
    assert paginated == seen


def test_validate_state_machine_definition(sfn) -> None:
    assert sfn.validate_state_machine_definition(definition=json.dumps(PASS))["result"] == "OK"
    bad = {"StartAt": "Nowhere", "States": {"P": {"Type": "Pass"}}}
    reply = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert reply["result"] == "FAIL" and reply["diagnostics"]
    assert all(d["severity"] == "ERROR" and d["message"] for d in reply["diagnostics"])
    reply = sfn.validate_state_machine_definition(definition="[1")
    assert reply["result"] == "FAIL"
    assert reply["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION"


# -------------------------------------------------------------------------- executions


def test_start_describe_list_and_history(sfn) -> None:
    arn = create(sfn, ECHO)
    name = _name("run")
    started = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"a": 1}))
    execution_arn = started["executionArn"]
    assert execution_arn == arn.replace(":stateMachine:", ":execution:") + f":{name}"
    done = wait_status(sfn, execution_arn)
    assert done["status"] == "SUCCEEDED" and done["name"] == name
    assert json.loads(done["input"]) == {"a": 1} and json.loads(done["output"]) == {"a": 1}
    assert done["stateMachineArn"] == arn and done["stopDate"] >= done["startDate"]
    meta = sfn.describe_execution(executionArn=execution_arn, includedData="METADATA_ONLY")
    assert "input" not in meta and "output" not in meta

    # Starting the same name with the same input is idempotent; another input is not.
    again = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"a": 1}))
    assert again["executionArn"] == execution_arn
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"a": 2}))
    assert code(excinfo) == "ExecutionAlreadyExists"

    for_execution = sfn.describe_state_machine_for_execution(executionArn=execution_arn)
    assert (
        for_execution["stateMachineArn"] == arn and json.loads(for_execution["definition"]) == ECHO
    )

    history = sfn.get_execution_history(executionArn=execution_arn)["events"]
    types = [e["type"] for e in history]
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in history] == list(range(1, 8))
    assert [e["previousEventId"] for e in history] == list(range(0, 7))
    assert json.loads(history[0]["executionStartedEventDetails"]["input"]) == {"a": 1}
    entered = history[1]["stateEnteredEventDetails"]
    assert entered["name"] == "T" and json.loads(entered["input"]) == {"a": 1}
    scheduled = history[2]["taskScheduledEventDetails"]
    assert scheduled["resource"] == "echo" and json.loads(scheduled["parameters"]) == {"a": 1}
    assert history[3]["taskStartedEventDetails"]["resource"] == "echo"
    assert json.loads(history[4]["taskSucceededEventDetails"]["output"]) == {"a": 1}
    assert json.loads(history[6]["executionSucceededEventDetails"]["output"]) == {"a": 1}
    lean = sfn.get_execution_history(executionArn=execution_arn, includeExecutionData=False)
    assert "input" not in lean["events"][0]["executionStartedEventDetails"]
    assert "output" not in lean["events"][5]["stateExitedEventDetails"]
    newest = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=2)
    assert [e["type"] for e in newest["events"]] == ["ExecutionSucceeded", "TaskStateExited"]


def test_list_executions_filters_and_pages(sfn) -> None:
    arn = create(sfn, ECHO)
    arns = [
        sfn.start_execution(stateMachineArn=arn, input=json.dumps({"i": i}))["executionArn"]
        for i in range(5)
    ]
    for execution_arn in arns:
        wait_status(sfn, execution_arn)
    seen: list[str] = []
    token = None
    while True:
        page = sfn.list_executions(
            stateMachineArn=arn, maxResults=2, **({"nextToken": token} if token else {})
        )
        assert len(page["executions"]) <= 2
        seen += [e["executionArn"] for e in page["executions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == list(reversed(arns))  # newest first
    item = sfn.list_executions(stateMachineArn=arn, maxResults=1)["executions"][0]
    assert item["status"] == "SUCCEEDED" and item["stateMachineArn"] == arn
    assert item["stopDate"] >= item["startDate"]
    succeeded = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")
    assert len(succeeded["executions"]) == 5
    assert sfn.list_executions(stateMachineArn=arn, statusFilter="FAILED")["executions"] == []
    assert sfn.list_executions(stateMachineArn=arn, redriveFilter="REDRIVEN")["executions"] == []
    with pytest.raises(ClientError) as excinfo:
        sfn.list_executions(stateMachineArn=arn + "nope")
    assert code(excinfo) == "StateMachineDoesNotExist"
    with pytest.raises(ClientError) as excinfo:
        sfn.list_executions(stateMachineArn=arn, nextToken="bm9wZQ")
    assert code(excinfo) == "InvalidToken"


def test_execution_errors(sfn) -> None:
    arn = create(sfn)
    missing = arn.replace(":stateMachine:", ":execution:") + ":nobody"
    for call in (
        lambda: sfn.describe_execution(executionArn=missing),
        lambda: sfn.get_execution_history(executionArn=missing),
        lambda: sfn.stop_execution(executionArn=missing),
        lambda: sfn.describe_state_machine_for_execution(executionArn=missing),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert code(excinfo) == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_execution(executionArn="nope")
    assert code(excinfo) == "InvalidArn"
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn + "-none")
    assert code(excinfo) == "StateMachineDoesNotExist"
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn, input="{oops")
    assert code(excinfo) == "InvalidExecutionInput"
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn, name="a b")
    assert code(excinfo) == "InvalidName"
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn="stateMachine")
    assert code(excinfo) == "InvalidArn"


def test_history_of_2000_events_pages_both_ways(sfn) -> None:
    # A Map of 498 Pass items (4 events each) and a Pass after it: 2,000 events.
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
                "ResultPath": None,
                "Next": "Done",
            },
            "Done": {"Type": "Pass", "End": True},
        },
    }
    arn = create(sfn, definition)
    started = sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"items": list(range(498))})
    )
    assert wait_status(sfn, started["executionArn"], 60)["status"] == "SUCCEEDED"

    def pages(**fields: Any) -> tuple[list[dict[str, Any]], int]:
        events: list[dict[str, Any]] = []
        token, count = None, 0
        while True:
            page = sfn.get_execution_history(
                executionArn=started["executionArn"],
                **fields,
                **({"nextToken": token} if token else {}),
            )
            count += 1
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events, count

    forward, count = pages(maxResults=300)
    assert [e["id"] for e in forward] == list(range(1, 2001)) and count == 7
    assert forward[0]["type"] == "ExecutionStarted"
    assert forward[-1]["type"] == "ExecutionSucceeded"
    backward, count = pages(maxResults=1000, reverseOrder=True)
    assert [e["id"] for e in backward] == list(range(2000, 0, -1)) and count == 2
    assert backward == list(reversed(forward))
    everything, count = pages()  # the default page: 100 events
    assert count == 20 and everything == forward
    iterations = [e for e in forward if e["type"] == "MapIterationStarted"]
    assert [e["mapIterationStartedEventDetails"]["index"] for e in iterations] == list(range(498))
    assert all(e["mapIterationStartedEventDetails"]["name"] == "M" for e in iterations)
    # A token belongs to its listing and direction.
    first = sfn.get_execution_history(executionArn=started["executionArn"], maxResults=10)
    with pytest.raises(ClientError) as excinfo:
        sfn.get_execution_history(
            executionArn=started["executionArn"], reverseOrder=True, nextToken=first["nextToken"]
        )
    assert code(excinfo) == "InvalidToken"
    # botocore's paginator reads the same tokens.
    paginator = sfn.get_paginator("get_execution_history")
    ids = [
        e["id"]
        for page in paginator.paginate(
            executionArn=started["executionArn"], PaginationConfig={"PageSize": 500}
        )
        for e in page["events"]
    ]
    assert ids == list(range(1, 2001))


def token_machine(tag: str, **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "ctl_token_sink.waitForTaskToken",
                "Parameters": {"tag": tag, "token.$": "$$.Task.Token"},
                "End": True,
                **fields,
            }
        },
    }


def test_task_tokens_success_failure_heartbeat(sfn) -> None:
    tag = uuid.uuid4().hex[:10]
    arn = create(sfn, token_machine(tag, HeartbeatSeconds=30))
    started = sfn.start_execution(stateMachineArn=arn)
    token = wait_until(lambda: ctext("token", tag), 10, message="task token stored")
    wait_until(lambda: _heartbeat(sfn, token), 10, message="the task waits for its token")
    with pytest.raises(ClientError) as excinfo:
        sfn.send_task_success(taskToken=token, output="{not json")
    assert code(excinfo) == "InvalidOutput"
    sfn.send_task_success(taskToken=token, output=json.dumps({"ok": True}))
    done = wait_status(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"ok": True}
    for call in (
        lambda: sfn.send_task_success(taskToken=token, output="{}"),
        lambda: sfn.send_task_failure(taskToken=token, error="E"),
        lambda: sfn.send_task_heartbeat(taskToken=token),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert code(excinfo) == "TaskDoesNotExist"
    with pytest.raises(ClientError) as excinfo:
        sfn.send_task_success(taskToken="no-such-token", output="{}")
    assert code(excinfo) == "InvalidToken"

    tag = uuid.uuid4().hex[:10]
    arn = create(sfn, token_machine(tag))
    started = sfn.start_execution(stateMachineArn=arn)
    token = wait_until(lambda: ctext("token", tag), 10, message="task token stored")
    wait_until(
        lambda: _answered(lambda: sfn.send_task_failure(taskToken=token, error="Nope", cause="c")),
        10,
    )
    done = wait_status(sfn, started["executionArn"])
    assert (done["status"], done["error"], done["cause"]) == ("FAILED", "Nope", "c")
    failed = sfn.get_execution_history(executionArn=started["executionArn"], reverseOrder=True)
    assert failed["events"][0]["executionFailedEventDetails"] == {"error": "Nope", "cause": "c"}


def _answered(call: Any) -> bool:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "TaskDoesNotExist":
            return False  # not waiting yet
        raise
    return True


def _heartbeat(sfn: Any, token: str) -> bool:
    return _answered(lambda: sfn.send_task_heartbeat(taskToken=token))


def test_stop_and_redrive(sfn) -> None:
    tag = uuid.uuid4().hex[:10]
    arn = create(sfn, token_machine(tag))
    started = sfn.start_execution(stateMachineArn=arn)
    wait_until(lambda: ctext("token", tag), 10, message="task token stored")
    stopped = sfn.stop_execution(executionArn=started["executionArn"], error="Halt", cause="test")
    done = sfn.describe_execution(executionArn=started["executionArn"])
    assert done["status"] == "ABORTED" and done["stopDate"] == stopped["stopDate"]
    assert done["redriveStatus"] == "REDRIVABLE"
    with pytest.raises(ClientError) as excinfo:
        sfn.stop_execution(executionArn=started["executionArn"])
    assert code(excinfo) == "ValidationException"

    flaky_tag = uuid.uuid4().hex[:10]
    flaky = {
        "StartAt": "F",
        "States": {
            "F": {
                "Type": "Task",
                "Resource": "flaky",
                "Parameters": {"tag": flaky_tag, "fail": 1},
                "End": True,
            }
        },
    }
    arn = create(sfn, flaky)
    started = sfn.start_execution(stateMachineArn=arn)
    assert wait_status(sfn, started["executionArn"])["status"] == "FAILED"
    assert sfn.list_executions(stateMachineArn=arn, redriveFilter="REDRIVEN")["executions"] == []
    failed_at = sfn.describe_execution(executionArn=started["executionArn"])["stopDate"]
    redriven = sfn.redrive_execution(executionArn=started["executionArn"])
    assert redriven["redriveDate"] >= failed_at
    done = wait_status(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED" and done["redriveCount"] == 1
    listed = sfn.list_executions(stateMachineArn=arn, redriveFilter="REDRIVEN")["executions"]
    assert [e["executionArn"] for e in listed] == [started["executionArn"]]
    with pytest.raises(ClientError) as excinfo:
        sfn.redrive_execution(executionArn=started["executionArn"])
    assert code(excinfo) == "ExecutionNotRedrivable"
    types = [
        e["type"] for e in sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    ]
    assert "ExecutionRedriven" in types


def test_start_sync_execution(sfn) -> None:
    express = create(sfn, ECHO, type="EXPRESS")
    reply = sfn.start_sync_execution(stateMachineArn=express, input=json.dumps({"s": 1}))
    assert reply["status"] == "SUCCEEDED" and json.loads(reply["output"]) == {"s": 1}
    assert reply["stateMachineArn"] == express and reply["stopDate"] >= reply["startDate"]
    failing = create(
        sfn,
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "why"}}},
        type="EXPRESS",
    )
    reply = sfn.start_sync_execution(stateMachineArn=failing)
    assert (reply["status"], reply["error"], reply["cause"]) == ("FAILED", "Bad", "why")
    with pytest.raises(ClientError) as excinfo:
        sfn.start_sync_execution(stateMachineArn=create(sfn))
    assert code(excinfo) == "StateMachineTypeNotSupported"
    # Stopped by another caller while it waits: FAILED (a sync execution's statuses are
    # SUCCEEDED, FAILED and TIMED_OUT), with the stop's error.
    waiting = create(
        sfn,
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}},
        type="EXPRESS",
    )
    name = _name("sync")
    replies: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: replies.append(sfn.start_sync_execution(stateMachineArn=waiting, name=name))
    )
    thread.start()
    execution_arn = waiting.replace(":stateMachine:", ":execution:") + f":{name}"
    wait_until(
        lambda: sfn.list_executions(stateMachineArn=waiting)["executions"], 10, message="started"
    )
    sfn.stop_execution(executionArn=execution_arn, error="Halt", cause="enough")
    thread.join(30)
    assert [(r["status"], r["error"], r["executionArn"]) for r in replies] == [
        ("FAILED", "Halt", execution_arn)
    ]


# -------------------------------------------------------------------------- map runs

DMAP = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "Label": "Fan",
            "ItemsPath": "$.items",
            "MaxConcurrency": 5,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}


def test_map_runs(sfn) -> None:
    arn = create(sfn, DMAP)
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": list(range(12))}))
    assert wait_status(sfn, started["executionArn"], 60)["status"] == "SUCCEEDED"
    runs = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    assert len(runs) == 1 and runs[0]["executionArn"] == started["executionArn"]
    run = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    assert run["status"] == "SUCCEEDED" and run["maxConcurrency"] == 5
    assert run["executionCounts"]["succeeded"] == 12 and run["executionCounts"]["total"] == 12
    children: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.list_executions(
            mapRunArn=runs[0]["mapRunArn"], maxResults=5, **({"nextToken": token} if token else {})
        )
        children += page["executions"]
        token = page.get("nextToken")
        if not token:
            break
    assert len(children) == 12 and {c["status"] for c in children} == {"SUCCEEDED"}
    assert all(c["mapRunArn"] == runs[0]["mapRunArn"] for c in children)
    child = sfn.describe_execution(executionArn=children[0]["executionArn"])
    assert child["mapRunArn"] == runs[0]["mapRunArn"]
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    (run_started,) = [e for e in history if e["type"] == "MapRunStarted"]
    assert run_started["mapRunStartedEventDetails"]["mapRunArn"] == runs[0]["mapRunArn"]
    with pytest.raises(ClientError) as excinfo:
        sfn.update_map_run(mapRunArn=runs[0]["mapRunArn"], maxConcurrency=2)
    assert code(excinfo) == "ValidationException"
    missing = runs[0]["mapRunArn"][:-4] + "0000"
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_map_run(mapRunArn=missing)
    assert code(excinfo) == "ResourceNotFound"
    with pytest.raises(ClientError) as excinfo:
        sfn.describe_map_run(mapRunArn="nope")
    assert code(excinfo) == "InvalidArn"


# -------------------------------------------------------------------------- protocol


def test_unknown_action_and_the_page_beside_the_api(sfn, live_server) -> None:
    import httpx

    answer = httpx.post(
        live_server + "/",
        headers={
            "X-Amz-Target": "AWSStepFunctions.NoSuchAction",
            "Content-Type": "application/x-amz-json-1.0",
        },
        content=b"{}",
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "UnknownOperationException"
    assert answer.headers["content-type"] == "application/x-amz-json-1.0"
    assert httpx.get(live_server + "/").status_code == 200  # the UI's page is still there


def test_a_ui_token_without_api_keys_refuses_the_api(orchestrator) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.ui import create_app

    # The API takes no UI token (SDKs sign); with a token and no API keys it is closed,
    # so a guarded UI never has an open API beside it (tests/ui/test_sfn_auth.py).
    with TestClient(create_app(token="s3cret", api_keys={}), base_url="http://localhost") as client:
        for auth in ({}, {"Authorization": "Bearer s3cret"}):
            answer = client.post(
                "/",
                headers={
                    "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                    "Content-Type": "application/x-amz-json-1.0",
                    **auth,
                },
                content=b"{}",
            )
            assert answer.status_code == 403
            assert answer.json()["__type"] == "MissingAuthenticationTokenException"
        assert client.get("/api/executions").status_code == 401  # the UI's API: the token


# -------------------------------------------------------------------------- the AWS CLI


def aws(live_server: str, *args: str) -> Any:
    """Run ``aws stepfunctions ARGS`` against the live server; its JSON answer."""
    executable = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert executable, "the AWS CLI (awscli, a dev dependency) is not installed"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
    }
    done = subprocess.run(
        [executable, "stepfunctions", "--endpoint-url", live_server, "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if done.returncode != 0:
        return {"error": done.stderr, "returncode": done.returncode}
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_the_aws_cli(live_server, orchestrator) -> None:
    name = _name("cli")
    created = aws(
        live_server,
        "create-state-machine",
        "--name",
        name,
        "--role-arn",
        ROLE,
        "--definition",
        json.dumps(ECHO),
    )
    arn = created["stateMachineArn"]
    started = aws(
        live_server, "start-execution", "--state-machine-arn", arn, "--input", '{"cli": true}'
    )
    execution_arn = started["executionArn"]
    wait_until(
        lambda: (
            aws(live_server, "describe-execution", "--execution-arn", execution_arn)["status"]
            == "SUCCEEDED"
        ),
        30,
    )
    described = aws(live_server, "describe-execution", "--execution-arn", execution_arn)
    assert json.loads(described["output"]) == {"cli": True}
    # The CLI pages through the history itself (nextToken), two events at a time.
    history = aws(
        live_server, "get-execution-history", "--execution-arn", execution_arn, "--page-size", "2"
    )
    assert [e["id"] for e in history["events"]] == list(range(1, 8))
    listed = aws(live_server, "list-executions", "--state-machine-arn", arn)
    assert [e["executionArn"] for e in listed["executions"]] == [execution_arn]
    missing = aws(live_server, "describe-execution", "--execution-arn", execution_arn + "x")
    assert missing["returncode"] != 0 and "ExecutionDoesNotExist" in missing["error"]
    aws(live_server, "delete-state-machine", "--state-machine-arn", arn)
    gone = aws(live_server, "describe-state-machine", "--state-machine-arn", arn)
    assert "StateMachineDoesNotExist" in gone["error"]
    assert get_store().machine_record(arn.rpartition(":")[2]) == {}  # its tags went with it


# -------------------------------------------------------------------------- TestState


def test_test_state(sfn) -> None:
    pass_state = {
        "Type": "Pass",
        "InputPath": "$.in",
        "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"},
        "ResultPath": "$.out",
        "Next": "After",
    }
    reply = sfn.test_state(
        definition=json.dumps(pass_state),
        roleArn=ROLE,
        input=json.dumps({"in": {"n": 2}, "keep": True}),
        inspectionLevel="DEBUG",
    )
    assert reply["status"] == "SUCCEEDED" and reply["nextState"] == "After"
    assert json.loads(reply["output"]) == {"in": {"n": 2}, "keep": True, "out": {"doubled": 4}}
    data = reply["inspectionData"]
    assert json.loads(data["input"]) == {"in": {"n": 2}, "keep": True}
    assert json.loads(data["afterInputPath"]) == {"n": 2}
    assert json.loads(data["afterParameters"]) == {"doubled": 4}
    assert json.loads(data["result"]) == {"doubled": 4}
    assert json.loads(data["afterResultPath"]) == json.loads(reply["output"])
    info = sfn.test_state(definition=json.dumps(pass_state), roleArn=ROLE, input="{}")
    assert info["status"] == "FAILED" and "inspectionData" not in info  # $.in is missing

    choice = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.x", "NumericGreaterThan": 1, "Next": "Big"}],
        "Default": "Small",
    }
    big = sfn.test_state(definition=json.dumps(choice), roleArn=ROLE, input='{"x": 5}')
    assert (big["status"], big["nextState"]) == ("SUCCEEDED", "Big")
    small = sfn.test_state(definition=json.dumps(choice), roleArn=ROLE, input='{"x": 0}')
    assert small["nextState"] == "Small"
    fail = sfn.test_state(
        definition=json.dumps({"Type": "Fail", "Error": "E", "Cause": "c"}), roleArn=ROLE
    )
    assert (fail["status"], fail["error"], fail["cause"]) == ("FAILED", "E", "c")
    wait = sfn.test_state(
        definition=json.dumps({"Type": "Wait", "Seconds": 3600, "End": True}),
        roleArn=ROLE,
        input='{"w": 1}',
    )
    assert wait["status"] == "SUCCEEDED" and json.loads(wait["output"]) == {"w": 1}

    # A Task runs its activity when it is registered in the API's process (here: the
    # test process, which imports tests.activities), or takes a mock result.
    task_state = {
        "Type": "Task",
        "Resource": "echo",
        "ResultSelector": {"got.$": "$.v"},
        "End": True,
    }
    ran = sfn.test_state(
        definition=json.dumps(task_state), roleArn=ROLE, input='{"v": 7}', inspectionLevel="TRACE"
    )
    assert ran["status"] == "SUCCEEDED" and json.loads(ran["output"]) == {"got": 7}
    assert json.loads(ran["inspectionData"]["afterResultSelector"]) == {"got": 7}
    mocked = sfn.test_state(
        definition=json.dumps({**task_state, "Resource": "no-such-activity"}),
        roleArn=ROLE,
        input="{}",
        mock={"result": '{"v": 9}'},
    )
    assert json.loads(mocked["output"]) == {"got": 9}
    failing = {
        "Type": "Task",
        "Resource": "fail",
        "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "Handle"}],
        "End": True,
    }
    caught = sfn.test_state(
        definition=json.dumps(failing), roleArn=ROLE, input='{"error": "Boom", "cause": "bad"}'
    )
    assert (caught["status"], caught["nextState"], caught["error"]) == (
        "CAUGHT_ERROR",
        "Handle",
        "Boom",
    )
    assert json.loads(caught["output"])["err"] == {"Error": "Boom", "Cause": "bad"}
    # A state of a whole state machine, named.
    whole = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}}
    named = sfn.test_state(definition=json.dumps(whole), roleArn=ROLE, stateName="A")
    assert json.loads(named["output"]) == 1

    for definition, fields, expected in (
        ({**task_state, "Resource": "no-such-activity"}, {}, "ValidationException"),
        ({"Type": "Parallel", "Branches": [whole], "End": True}, {}, "ValidationException"),
        ({"Type": "Nope"}, {}, "InvalidDefinition"),
        (whole, {"stateName": "Z"}, "ValidationException"),
        (pass_state, {"input": "{bad"}, "InvalidExecutionInput"),
    ):
        with pytest.raises(ClientError) as excinfo:
            sfn.test_state(definition=json.dumps(definition), roleArn=ROLE, **fields)
        assert code(excinfo) == expected, definition


def test_the_sync_host_prefix_reaches_an_allowed_name(orchestrator, monkeypatch) -> None:
    """SDKs send StartSyncExecution and TestState to ``sync-<host>``: with that name
    resolving to the server (here: resolved in process, as an /etc/hosts line would) and
    allowed (ORCHESTRATOR_UI_ALLOWED_HOSTS), the default client configuration works."""
    import socket
    import time

    import uvicorn

    from orchestrator.ui import create_app
    from orchestrator.ui.security import allowed_hosts

    resolve = socket.getaddrinfo

    def hosts_file(host, *args, **kwargs):
        return resolve("127.0.0.1" if host == "sync-localhost" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hosts_file)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    app = create_app(token="", allowed_hosts=allowed_hosts(configured="sync-localhost"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, message="the server started")
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://localhost:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
            config=Config(retries={"max_attempts": 1}),
        )
        hosts: list[str] = []
        sfn.meta.events.register("before-send", lambda request, **_: hosts.append(request.url))
        reply = sfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE)
        assert reply["status"] == "SUCCEEDED"
        express = create(sfn, ECHO, type="EXPRESS")
        assert sfn.start_sync_execution(stateMachineArn=express)["status"] == "SUCCEEDED"
        assert [url.split("/")[2] for url in hosts] == [
            f"sync-localhost:{port}",  # TestState
            f"localhost:{port}",  # CreateStateMachine
            f"sync-localhost:{port}",  # StartSyncExecution
        ]
    finally:
        server.should_exit = True
        deadline = time.monotonic() + 15
        thread.join(max(0.0, deadline - time.monotonic()))
        listener.close()
