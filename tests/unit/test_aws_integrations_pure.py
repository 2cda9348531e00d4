"""The AWS integrations' pure parts: names, errors, conversions, resolution. No AWS, no
Redis (botocore's models are read from the installed package)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.engine import integrations
from orchestrator.engine.integrations import aws_sdk
from orchestrator.errors import StatesError
from orchestrator.language import awssdk

ARN = "arn:aws:states:::"


@pytest.mark.parametrize(
    ("service_id", "prefix", "name"),
    [
        ("DynamoDB", "DynamoDb", "dynamodb"),
        ("S3", "S3", "s3"),
        ("EventBridge", "EventBridge", "eventbridge"),
        ("ACM PCA", "AcmPca", "acmpca"),
        ("SFN", "Sfn", "sfn"),
        ("CloudWatch Logs", "CloudWatchLogs", "cloudwatchlogs"),
        ("Database Migration Service", "DatabaseMigration", "databasemigration"),
        ("IoT Data Plane", "IotDataPlane", "iotdataplane"),
        ("Elastic Load Balancing v2", "ElasticLoadBalancingV2", "elasticloadbalancingv2"),
        ("Secrets Manager", "SecretsManager", "secretsmanager"),
        ("SQS", "Sqs", "sqs"),
        ("API Gateway", "ApiGateway", "apigateway"),
    ],
)
def test_service_names_as_step_functions_spells_them(service_id, prefix, name):
    assert awssdk.sdk_error_prefix(service_id) == prefix
    assert awssdk.sdk_service_name(service_id) == name


def test_error_names_append_exception_once():
    assert awssdk.error_name("S3", "NoSuchKey") == "S3.NoSuchKeyException"
    assert awssdk.error_name("DynamoDb", "ResourceNotFoundException") == (
        "DynamoDb.ResourceNotFoundException"
    )
    assert awssdk.error_name("AcmPca", "com.amazonaws#InvalidStateException") == (
        "AcmPca.InvalidStateException"
    )


def test_sdk_targets():
    assert awssdk.sdk_target("aws-sdk:s3:getObject") == awssdk.SdkTarget("s3", "getObject")
    assert awssdk.sdk_target("aws-sdk:sqs:sendMessage.waitForTaskToken") == awssdk.SdkTarget(
        "sqs", "sendMessage", ".waitForTaskToken"
    )
    assert awssdk.sdk_target("aws-sdk:s3") is None
    assert awssdk.sdk_target("sqs:sendMessage") is None


def test_timestamps_and_values_as_json():
    utc = dt.UTC
    assert awssdk.timestamp(dt.datetime(2024, 5, 1, 12, 0, 5, tzinfo=utc)) == (
        "2024-05-01T12:00:05Z"
    )
    assert awssdk.timestamp(dt.datetime(2024, 5, 1, 12, 0, 5, 120000, tzinfo=utc)) == (
        "2024-05-01T12:00:05.120Z"
    )
    assert awssdk.timestamp(dt.datetime(2024, 5, 1, 12, 0, 5, 123456)) == (
        "2024-05-01T12:00:05.123456Z"
    )
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert awssdk.timestamp(dt.datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == (
        "2024-05-01T12:00:00Z"
    )
    value = {"b": b"\x00\xff", "n": Decimal("3"), "f": Decimal("1.5"), "l": ({"x": 1},)}
    assert awssdk.to_json(value) == {"b": "AP8=", "n": 3, "f": 1.5, "l": [{"x": 1}]}


def test_sdk_http_metadata_from_boto3_response_metadata():
    meta = {"RequestId": "R1", "HTTPStatusCode": 200, "HTTPHeaders": {"x-amzn-requestid": "R1"}}
    assert awssdk.sdk_http_metadata(meta) == {
        "SdkHttpMetadata": {
            "AllHttpHeaders": {"x-amzn-requestid": ["R1"]},
            "HttpHeaders": {"x-amzn-requestid": "R1"},
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": "R1"},
    }


def _label(resource: str) -> str | None:
    found = integrations.for_resource(resource)
    return found.label if found is not None else None


def test_resolution_of_aws_resources():
    sdk = "aws-sdk:*[.waitForTaskToken]"
    assert _label(f"{ARN}aws-sdk:s3:getObject") == sdk
    assert _label("arn:aws:states:us-east-1:123456789012:aws-sdk:s3:getObject") == sdk
    assert _label(f"{ARN}aws-sdk:s3:getObject.waitForTaskToken") == sdk
    assert _label(f"{ARN}aws-sdk:s3:getObject.sync") is None
    assert _label(f"{ARN}aws-sdk:sfn:startExecution") is None  # a child workflow
    assert _label(f"{ARN}dynamodb:getItem") == "dynamodb:getItem"
    assert _label(f"{ARN}dynamodb:getItem.waitForTaskToken") is None
    assert _label("arn:aws:states:eu-west-1:1:sqs:sendMessage.waitForTaskToken") == (
        "sqs:sendMessage[.waitForTaskToken]"
    )
    assert _label(f"{ARN}sns:publish.waitForTaskToken") == "sns:publish[.waitForTaskToken]"
    assert _label(f"{ARN}events:putEvents.waitForTaskToken") == (
        "events:putEvents[.waitForTaskToken]"
    )
    assert _label(f"{ARN}dynamodb:query") is None  # the SDK integration has it
    message = integrations.unsupported(f"{ARN}dynamodb:query")
    assert "aws-sdk:*" in message and "dynamodb:getItem" in message


def test_sdk_checks_name_service_action_and_fields():
    check = integrations.for_resource(f"{ARN}aws-sdk:eventbridge:putEvents")
    assert check is not None and check.check is not None
    assert check.check({"Entries": []}) is None
    assert check.check({"entries.$": "$.e"}) is None  # any case, as Step Functions writes it
    assert "does not take Entry" in (check.check({"Entry": []}) or "")
    sqs = integrations.for_resource(f"{ARN}sqs:sendMessage")
    assert sqs is not None and sqs.check is not None
    assert sqs.check({"QueueUrl": "u", "MessageBody.$": "$"}) is None
    assert "does not take Body" in (sqs.check({"QueueUrl": "u", "Body": "x"}) or "")


def test_operations_map_camel_case_actions_to_boto3_methods():
    op = aws_sdk.operation("s3", "listObjectsV2")
    assert isinstance(op, aws_sdk.Operation)
    assert (op.service, op.name, op.method, op.prefix) == (
        "s3",
        "ListObjectsV2",
        "list_objects_v2",
        "S3",
    )
    events = aws_sdk.operation("eventbridge", "putEvents")
    assert isinstance(events, aws_sdk.Operation) and events.service == "events"
    logs = aws_sdk.operation("cloudwatchlogs", "putLogEvents")
    assert isinstance(logs, aws_sdk.Operation) and logs.service == "logs"
    by_boto3_name = aws_sdk.operation("logs", "putLogEvents")  # boto3's name works too
    assert isinstance(by_boto3_name, aws_sdk.Operation) and by_boto3_name.prefix == "CloudWatchLogs"
    assert "no action" in str(aws_sdk.operation("s3", "fetchObject"))


def test_parameters_are_adapted_to_the_request_shape():
    apigw = aws_sdk.operation("apigateway", "getResource")
    assert isinstance(apigw, aws_sdk.Operation)
    # Step Functions writes PascalCase; API Gateway's members are camelCase.
    request = aws_sdk.to_shape(apigw.model.input_shape, {"RestApiId": "a", "ResourceId": "r"})
    assert request == {"restApiId": "a", "resourceId": "r"}
    put = aws_sdk.operation("s3", "putObject")
    assert isinstance(put, aws_sdk.Operation)
    shaped = aws_sdk.to_shape(put.model.input_shape, {"Bucket": "b", "Key": "k", "Body": "hé"})
    assert shaped["Body"] == "hé".encode()
    kms = aws_sdk.operation("kms", "decrypt")
    assert isinstance(kms, aws_sdk.Operation)
    shaped = aws_sdk.to_shape(kms.model.input_shape, {"CiphertextBlob": "AP8="})
    assert shaped["CiphertextBlob"] == b"\x00\xff"


def test_results_are_capitalized_and_converted():
    apigw = aws_sdk.operation("apigateway", "getRestApis")
    assert isinstance(apigw, aws_sdk.Operation)
    created = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    answer = {"items": [{"id": "a1", "name": "orders", "createdDate": created, "tags": {"k": "v"}}]}
    assert aws_sdk.from_shape(apigw.model.output_shape, answer, True) == {
        "Items": [
            {
                "Id": "a1",
                "Name": "orders",
                "CreatedDate": "2024-01-02T03:04:05Z",
                "Tags": {"k": "v"},
            }
        ]
    }


class _ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "R9"},
        }


class NoSuchKey(_ClientError):
    """As botocore names a modeled error's class: after its shape."""


_ClientError.__name__ = "ClientError"


def test_errors_are_named_as_step_functions_names_them():
    with pytest.raises(StatesError) as raised:
        aws_sdk.raise_as_states_error(NoSuchKey("NoSuchKey", "The key does not exist"), "S3", None)
    assert raised.value.error == "S3.NoSuchKeyException"
    assert raised.value.cause == (
        "The key does not exist (Service: S3, Status Code: 400, Request ID: R9)"
    )
    with pytest.raises(StatesError) as raised:
        aws_sdk.raise_as_states_error(_ClientError("ValidationException", "bad"), "DynamoDb", None)
    assert raised.value.error == "DynamoDb.DynamoDbException"
    with pytest.raises(StatesError) as raised:
        aws_sdk.raise_as_states_error(
            _ClientError("ValidationException", "bad"), "DynamoDB", "AmazonDynamoDBException"
        )
    assert raised.value.error == "DynamoDB.AmazonDynamoDBException"


def test_failures_that_are_no_service_error_are_task_failed():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    for exc in (NoCredentialsError(), EndpointConnectionError(endpoint_url="http://x")):
        with pytest.raises(StatesError) as raised:
            aws_sdk.raise_as_states_error(exc, "S3", None)
        assert raised.value.error == "States.TaskFailed"
        assert type(exc).__name__ in raised.value.cause
    with pytest.raises(KeyError):  # not botocore's: raised as it is
        aws_sdk.raise_as_states_error(KeyError("x"), "S3", None)
