"""The AWS service integrations (issue 14 item 3) through a real worker, against moto's
server (``tests.aws.local_aws``): the optimized DynamoDB, SNS, SQS and EventBridge ones,
``aws-sdk:SERVICE:ACTION``, ``.waitForTaskToken``, region-qualified Resources, the error
names Retry and Catch match, and the definition errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import send_task_success, start_workflow
from orchestrator.engine.activities import activity
from orchestrator.engine.items import aws
from orchestrator.errors import DefinitionError
from tests.aws import local_aws
from tests.helpers import machine, run_workflow, task, wait_until

boto3 = pytest.importorskip("boto3")  # the dev extra installs it; see pyproject.toml

pytestmark = pytest.mark.usefixtures("orchestrator")

TABLE = "orders"
BUCKET = "order-documents"
ARN = "arn:aws:states:::"


# Registered at collection, before the session's worker starts: a bound activity wins over
# the built-in aws-sdk integration.
@activity("test-aws-bound-send-email", resources=[f"{ARN}aws-sdk:ses:sendEmail"])
def bound_send_email(params: Any) -> Any:
    return {"MessageId": "bound", "To": params["Destination"]["ToAddresses"]}


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with local_aws() as url:
        dynamodb = aws.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "OrderId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "OrderId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        aws.client("s3").create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
def queue(moto: str) -> str:
    """A new SQS queue's URL."""
    return str(aws.client("sqs").create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"])


def receive(queue_url: str, timeout: float = 15) -> dict[str, Any]:
    """The next message of a queue (its body parsed)."""
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []

    def got() -> bool:
        answer = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
        found.extend(answer.get("Messages", []))
        return bool(found)

    wait_until(got, timeout)
    return json.loads(found[0]["Body"])


def test_dynamodb_put_get_update_delete(moto):
    key = {"OrderId": {"S.$": "$.id"}}
    definition = machine(
        {
            "Put": task(
                f"{ARN}dynamodb:putItem",
                Parameters={
                    "TableName": TABLE,
                    "Item": {"OrderId": {"S.$": "$.id"}, "Total": {"N": "12"}},
                },
                ResultPath="$.put",
                Next="Get",
            ),
            "Get": task(
                "arn:aws:states:eu-west-1:111122223333:dynamodb:getItem",  # region-qualified
                Parameters={"TableName": TABLE, "Key": key},
                ResultSelector={
                    "total.$": "$.Item.Total.N",
                    "status.$": "$.SdkHttpMetadata.HttpStatusCode",
                },
                ResultPath="$.got",
                Next="Update",
            ),
            "Update": task(
                f"{ARN}dynamodb:updateItem",
                Parameters={
                    "TableName": TABLE,
                    "Key": key,
                    "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "Status"},
                    "ExpressionAttributeValues": {":s": {"S": "SHIPPED"}},
                    "ReturnValues": "UPDATED_NEW",
                },
                ResultSelector={"attributes.$": "$.Attributes"},
                ResultPath="$.updated",
                Next="Delete",
            ),
            "Delete": task(
                f"{ARN}dynamodb:deleteItem",
                Parameters={"TableName": TABLE, "Key": key, "ReturnValues": "ALL_OLD"},
                ResultSelector={"old.$": "$.Attributes"},
                ResultPath="$.deleted",
                Next="GetAgain",
            ),
            "GetAgain": task(
                f"{ARN}dynamodb:getItem",
                Parameters={"TableName": TABLE, "Key": key},
                ResultPath="$.again",
            ),
        }
    )
    handle, result = run_workflow(definition, {"id": "o-1"})
    assert result.status == "SUCCEEDED", result
    out = result.output
    assert set(out["put"]) == {"SdkHttpMetadata", "SdkResponseMetadata"}
    assert out["put"]["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert out["got"] == {"total": "12", "status": 200}
    assert out["updated"] == {"attributes": {"Status": {"S": "SHIPPED"}}}
    assert out["deleted"]["old"] == {
        "OrderId": {"S": "o-1"},
        "Total": {"N": "12"},
        "Status": {"S": "SHIPPED"},
    }
    assert "Item" not in out["again"]
    scheduled = [e for e in handle.history() if e.type == "TaskScheduled"]
    assert scheduled[1].details["resourceType"] == "dynamodb"
    assert scheduled[1].details["resource"] == "getItem"


def test_optimized_dynamodb_errors_are_named_and_caught(moto):
    definition = machine(
        {
            "Insert": task(
                f"{ARN}dynamodb:putItem",
                Parameters={
                    "TableName": TABLE,
                    "Item": {"OrderId": {"S": "dup"}},
                    "ConditionExpression": "attribute_not_exists(OrderId)",
                },
                Catch=[
                    {
                        "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
                        "ResultPath": "$.duplicate",
                        "Next": "Missing",
                    }
                ],
                Next="Insert",  # the second pass fails the condition
            ),
            "Missing": task(
                f"{ARN}dynamodb:getItem",
                Parameters={"TableName": "no-such-table", "Key": {"OrderId": {"S": "x"}}},
                Catch=[
                    {
                        "ErrorEquals": ["DynamoDB.ResourceNotFoundException"],
                        "ResultPath": "$.missing",
                        "Next": "Done",
                    }
                ],
            ),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(definition, {})
    assert result.status == "SUCCEEDED", result
    assert result.output["duplicate"]["Error"] == "DynamoDB.ConditionalCheckFailedException"
    assert result.output["missing"]["Error"] == "DynamoDB.ResourceNotFoundException"
    cause = result.output["missing"]["Cause"]
    assert "(Service: DynamoDB, Status Code: 400, Request ID: " in cause


def test_sdk_error_is_retried_then_caught_by_its_step_functions_name(moto):
    definition = machine(
        {
            "Read": task(
                f"{ARN}aws-sdk:dynamodb:getItem",
                Parameters={"TableName": "no-such-table", "Key": {"OrderId": {"S": "x"}}},
                Retry=[
                    {
                        "ErrorEquals": ["DynamoDb.ResourceNotFoundException"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 2,
                        "BackoffRate": 1,
                    }
                ],
                Catch=[
                    {
                        "ErrorEquals": ["DynamoDb.ResourceNotFoundException"],
                        "ResultPath": "$.error",
                        "Next": "Caught",
                    }
                ],
            ),
            "Caught": {"Type": "Pass", "End": True},
        }
    )
    handle, result = run_workflow(definition, {}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output["error"]["Error"] == "DynamoDb.ResourceNotFoundException"
    failed = [e for e in handle.history() if e.type == "TaskFailed"]
    assert len(failed) == 3  # the attempt and its two retries
    assert all(e.details["error"] == "DynamoDb.ResourceNotFoundException" for e in failed)


def test_s3_put_and_get_object_through_the_sdk_integration(moto):
    definition = machine(
        {
            "Write": task(
                f"{ARN}aws-sdk:s3:putObject",
                Parameters={"Bucket": BUCKET, "Key.$": "$.key", "Body.$": "$.text"},
                ResultSelector={"etag.$": "$.ETag"},
                ResultPath="$.written",
                Next="Read",
            ),
            "Read": task(
                "arn:aws:states:us-east-1:123456789012:aws-sdk:s3:getObject",
                Parameters={"Bucket": BUCKET, "Key.$": "$.key"},
                ResultPath="$.read",
                Next="List",
            ),
            "List": task(
                f"{ARN}aws-sdk:s3:listObjectsV2",
                Parameters={"Bucket": BUCKET, "Prefix": "invoices/"},
                ResultPath="$.listed",
                Next="Missing",
            ),
            "Missing": task(
                f"{ARN}aws-sdk:s3:getObject",
                Parameters={"Bucket": BUCKET, "Key": "invoices/none.txt"},
                Catch=[
                    {
                        "ErrorEquals": ["States.TaskFailed"],
                        "ResultPath": "$.missing",
                        "Next": "Done",
                    }
                ],
            ),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(
        definition, {"key": "invoices/o-7.txt", "text": "Invoice 7: 12.50 EUR"}
    )
    assert result.status == "SUCCEEDED", result
    out = result.output
    assert out["written"]["etag"].strip('"')
    assert out["read"]["Body"] == "Invoice 7: 12.50 EUR"
    assert out["read"]["ContentLength"] == len("Invoice 7: 12.50 EUR")
    assert "ResponseMetadata" not in out["read"]
    assert out["read"]["LastModified"].endswith("Z")  # ISO 8601 in UTC, as Step Functions
    contents = out["listed"]["Contents"]
    assert [c["Key"] for c in contents] == ["invoices/o-7.txt"]
    assert contents[0]["LastModified"][:4].isdigit() and contents[0]["LastModified"][4] == "-"
    assert out["missing"]["Error"] == "S3.NoSuchKeyException"


def test_generic_sdk_call_with_pascal_case_parameters(moto):
    """Any service boto3 knows: Secrets Manager here, under Step Functions' names."""
    definition = machine(
        {
            "Create": task(
                f"{ARN}aws-sdk:secretsmanager:createSecret",
                Parameters={"Name.$": "$.name", "SecretString": "s3cr3t"},
                ResultPath=None,
                Next="Read",
            ),
            "Read": task(
                f"{ARN}aws-sdk:secretsmanager:getSecretValue",
                Parameters={"SecretId.$": "$.name"},
                ResultSelector={"value.$": "$.SecretString", "created.$": "$.CreatedDate"},
            ),
        }
    )
    _, result = run_workflow(definition, {"name": f"db-{uuid.uuid4().hex[:6]}"})
    assert result.status == "SUCCEEDED", result
    assert result.output["value"] == "s3cr3t"
    assert result.output["created"].endswith("Z")


def test_sqs_send_message_and_its_callback_form(moto, queue):
    definition = machine(
        {
            "Notify": task(
                f"{ARN}sqs:sendMessage",
                Parameters={
                    "QueueUrl": queue,
                    "MessageBody": {"order.$": "$.id", "step": "notify"},
                },
                ResultSelector={"id.$": "$.MessageId", "md5.$": "$.MD5OfMessageBody"},
                ResultPath="$.sent",
                Next="Approve",
            ),
            "Approve": task(
                f"{ARN}sqs:sendMessage.waitForTaskToken",
                Parameters={
                    "QueueUrl": queue,
                    "MessageBody": {"order.$": "$.id", "TaskToken.$": "$$.Task.Token"},
                },
                ResultPath="$.approval",
                TimeoutSeconds=60,
            ),
        }
    )
    handle = start_workflow(definition, {"id": "o-9"})
    assert receive(queue) == {"order": "o-9", "step": "notify"}
    asked = receive(queue)
    assert asked["order"] == "o-9"
    send_task_success(asked["TaskToken"], {"approved": True})
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output["approval"] == {"approved": True}
    assert len(result.output["sent"]["md5"]) == 32 and result.output["sent"]["id"]


def test_sns_publish_and_its_callback_form(moto, queue):
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"orders-{uuid.uuid4().hex[:6]}")["TopicArn"]
    queue_arn = aws.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    definition = machine(
        {
            "Announce": task(
                f"{ARN}sns:publish",
                Parameters={"TopicArn": topic, "Message": {"order.$": "$.id"}, "Subject": "new"},
                ResultSelector={"id.$": "$.MessageId"},
                ResultPath="$.published",
                Next="Wait",
            ),
            "Wait": task(
                f"{ARN}sns:publish.waitForTaskToken",
                Parameters={
                    "TopicArn": topic,
                    "Message": {"order.$": "$.id", "TaskToken.$": "$$.Task.Token"},
                },
                ResultPath="$.answer",
                TimeoutSeconds=60,
            ),
        }
    )
    handle = start_workflow(definition, {"id": "o-3"})
    assert receive(queue) == {"order": "o-3"}
    asked = receive(queue)
    send_task_success(asked["TaskToken"], "packed")
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output["answer"] == "packed" and result.output["published"]["id"]


def test_eventbridge_put_events(moto):
    definition = machine(
        {
            "Emit": task(
                f"{ARN}events:putEvents",
                Parameters={
                    "Entries": [
                        {
                            "Source": "shop.orders",
                            "DetailType": "OrderPlaced",
                            "Detail": {"order.$": "$.id"},
                        }
                    ]
                },
            )
        }
    )
    _, result = run_workflow(definition, {"id": "o-5"})
    assert result.status == "SUCCEEDED", result
    assert result.output["FailedEntryCount"] == 0
    assert len(result.output["Entries"]) == 1 and result.output["Entries"][0]["EventId"]


def test_eventbridge_failed_entries_fail_the_task(moto):
    definition = machine(
        {
            "Emit": task(
                f"{ARN}events:putEvents",
                Parameters={"Entries": [{"Source": "shop.orders", "Detail": {"order": 1}}]},
                Catch=[{"ErrorEquals": ["EventBridge.FailedEntry"], "Next": "Failed"}],
            ),
            "Failed": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(definition, {})
    assert result.status == "SUCCEEDED", result
    assert result.output["Error"] == "EventBridge.FailedEntry"
    answer = json.loads(result.output["Cause"])
    assert answer["FailedEntryCount"] == 1 and answer["Entries"][0]["ErrorCode"]


def test_sdk_callback_form(moto, queue):
    definition = machine(
        {
            "Ask": task(
                f"{ARN}aws-sdk:sqs:sendMessage.waitForTaskToken",
                Parameters={"QueueUrl": queue, "MessageBody.$": "States.JsonToString($$.Task)"},
                TimeoutSeconds=60,
            )
        }
    )
    handle = start_workflow(definition, {})
    asked = receive(queue)
    send_task_success(asked["Token"], {"done": True})
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"done": True}


def test_a_bound_activity_wins_over_the_sdk_integration(moto):
    definition = machine(
        {
            "Mail": task(
                f"{ARN}aws-sdk:ses:sendEmail",
                Parameters={"Destination": {"ToAddresses": ["a@example.com"]}},
            )
        }
    )
    _, result = run_workflow(definition, {})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"MessageId": "bound", "To": ["a@example.com"]}


@pytest.mark.parametrize(
    ("resource", "parameters", "expected"),
    [
        (f"{ARN}aws-sdk:nosuchservice:getThing", {}, "knows no service 'nosuchservice'"),
        (f"{ARN}aws-sdk:s3:getObjekt", {}, "s3 has no action 'getObjekt'"),
        (f"{ARN}aws-sdk:s3:getObject", {"Bucket": "b", "Kee": "k"}, "does not take Kee"),
        (f"{ARN}dynamodb:getItem", {"Table": "t"}, "dynamodb:getItem does not take Table"),
        (f"{ARN}aws-sdk:s3:getObject.sync", {}, "not supported"),
        (f"{ARN}dynamodb:getItem.waitForTaskToken", {}, "not supported"),
        (f"{ARN}sagemaker:createTransformJob.sync", {}, "not supported"),
        ("arn:aws:states:us-east-1:123456789012:activity:approve", {}, "not supported"),
    ],
)
def test_definition_errors(resource, parameters, expected):
    with pytest.raises(DefinitionError) as raised:
        start_workflow(machine({"T": task(resource, Parameters=parameters)}), {})
    message = str(raised.value)
    assert expected in message, message
    if expected == "not supported":
        assert "@activity(" in message and "ORCHESTRATOR_RESOURCE_ALIASES" in message


def test_without_boto3_the_definition_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(aws, "aws_available", lambda: False)
    for resource in (f"{ARN}aws-sdk:s3:getObject", f"{ARN}sqs:sendMessage"):
        with pytest.raises(DefinitionError) as raised:
            start_workflow(machine({"T": task(resource, Parameters={})}), {})
        assert "pip install 'orchestrator[aws]'" in str(raised.value)
