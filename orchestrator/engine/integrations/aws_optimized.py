"""Step Functions' optimized integrations with DynamoDB, SNS, SQS and EventBridge.

=================================  ============================  ====================
Resource (``arn:aws:states:::``)   boto3 call                    ``.waitForTaskToken``
=================================  ============================  ====================
``dynamodb:getItem``               ``dynamodb.get_item``         no
``dynamodb:putItem``               ``dynamodb.put_item``         no
``dynamodb:updateItem``            ``dynamodb.update_item``      no
``dynamodb:deleteItem``            ``dynamodb.delete_item``      no
``sns:publish``                    ``sns.publish``               yes
``sqs:sendMessage``                ``sqs.send_message``          yes
``events:putEvents``               ``events.put_events``         yes
=================================  ============================  ====================

The Parameters are the API's request as it is (DynamoDB's items in its typed JSON,
``{"S": "x"}``), with the conveniences Step Functions adds: SNS ``Message``, SQS
``MessageBody`` and each EventBridge entry's ``Detail`` may be any JSON value, sent as
its JSON text. With ``.waitForTaskToken`` the call is made and the step then waits for
``send_task_success``/``send_task_failure`` with the token the Parameters passed on
(``"TaskToken.$": "$$.Task.Token"`` inside the message).

Results as Step Functions gives them: the API's response (DynamoDB's ``Item`` typed, SQS's
``MessageId`` and ``MD5OfMessageBody``, SNS's ``MessageId``) with, for DynamoDB, SNS and
SQS, ``SdkHttpMetadata`` (``HttpStatusCode``, ``HttpHeaders``, ``AllHttpHeaders``) and
``SdkResponseMetadata`` (``RequestId``); EventBridge's ``{"Entries", "FailedEntryCount"}``.

Errors: ``DynamoDB.<Name>Exception`` (``DynamoDB.ConditionalCheckFailedException``,
``DynamoDB.ResourceNotFoundException``; one botocore does not model is
``DynamoDB.AmazonDynamoDBException``), likewise ``SNS.``, ``SQS.`` and ``EventBridge.``;
a ``putEvents`` with failed entries is ``EventBridge.FailedEntry``; any other failure of
the call ``States.TaskFailed``. The client is :func:`orchestrator.engine.items.aws.client`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.engine.integrations import integration
from orchestrator.engine.integrations.aws_sdk import (
    Operation,
    from_shape,
    invoke,
    members_problem,
    operation,
)
from orchestrator.engine.items import aws
from orchestrator.errors import StatesError
from orchestrator.language import awssdk

#: A ``putEvents`` whose answer counts failed entries.
FAILED_ENTRY = "EventBridge.FailedEntry"


@dataclass(frozen=True)
class Optimized:
    """One optimized integration."""

    name: str
    """Its integration name (``dynamodb:getItem``)."""
    service: str
    """boto3's name of the service."""
    action: str
    """The API action (camelCase)."""
    prefix: str
    """The service part of its error names (``DynamoDB``)."""
    base_error: str
    """The name of a service error botocore does not model."""
    callback: bool
    """It also serves ``.waitForTaskToken``."""
    metadata: bool
    """Its result carries ``SdkHttpMetadata`` and ``SdkResponseMetadata``."""
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _message(field: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def prepare(params: dict[str, Any]) -> dict[str, Any]:
        if field in params:
            params = {**params, field: _json_text(params[field])}
        return params

    return prepare


def _entries(params: dict[str, Any]) -> dict[str, Any]:
    entries = params.get("Entries")
    if not isinstance(entries, list):
        return params
    fixed = [
        {**entry, "Detail": _json_text(entry["Detail"])}
        if isinstance(entry, dict) and "Detail" in entry
        else entry
        for entry in entries
    ]
    return {**params, "Entries": fixed}


OPTIMIZED = [
    *(
        Optimized(
            f"dynamodb:{action}",
            "dynamodb",
            action,
            "DynamoDB",
            "AmazonDynamoDBException",
            callback=False,
            metadata=True,
        )
        for action in ("getItem", "putItem", "updateItem", "deleteItem")
    ),
    Optimized(
        "sns:publish",
        "sns",
        "publish",
        "SNS",
        "AmazonSNSException",
        True,
        True,
        _message("Message"),
    ),
    Optimized(
        "sqs:sendMessage",
        "sqs",
        "sendMessage",
        "SQS",
        "AmazonSQSException",
        True,
        True,
        _message("MessageBody"),
    ),
    Optimized(
        "events:putEvents",
        "events",
        "putEvents",
        "EventBridge",
        "AmazonEventBridgeException",
        True,
        False,
        _entries,
    ),
]


def _operation(spec: Optimized) -> Operation:
    found = operation(spec.service, spec.action, spec.prefix)
    if isinstance(found, str):  # botocore always models these
        raise StatesError(found, error="States.Runtime")
    return found


def _register(spec: Optimized) -> None:
    def check(params: Mapping[str, Any] | None) -> str | None:
        missing = aws.requires_aws("$", f"the integration {spec.name}")
        if missing:
            return missing[0].message
        return members_problem(_operation(spec), params, spec.name)

    def run(params: Any) -> Any:
        if params is None:
            params = {}
        if isinstance(params, dict) and spec.prepare is not None:
            params = spec.prepare(params)
        op = _operation(spec)
        response = invoke(op, params, spec.name, base_error=spec.base_error)
        result = from_shape(op.model.output_shape, awssdk.without_metadata(response), False)
        if spec.metadata:
            result.update(awssdk.sdk_http_metadata(response.get("ResponseMetadata") or {}))
        if spec.name == "events:putEvents" and result.get("FailedEntryCount"):
            raise StatesError(json.dumps(result, separators=(",", ":")), error=FAILED_ENTRY)
        return result

    run.__name__ = spec.name.replace(":", "_")
    run.__doc__ = f"One attempt of the optimized integration {spec.name}."
    integration(spec.name, check=check, callback=spec.callback)(run)


for _spec in OPTIMIZED:
    _register(_spec)
