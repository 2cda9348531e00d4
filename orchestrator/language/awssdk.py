"""The AWS service integrations' names and data, as Step Functions has them: pure rules.

Nothing here calls AWS or imports boto3; :mod:`orchestrator.engine.integrations.aws_sdk`
and :mod:`~orchestrator.engine.integrations.aws_optimized` apply these rules to botocore's
models and answers.

* ``arn:aws:states:::aws-sdk:SERVICE:ACTION`` (:func:`sdk_target`): SERVICE is Step
  Functions' name of the service, the AWS SDK for Java 2.x's module name (``dynamodb``,
  ``s3``, ``eventbridge``, ``acmpca``, ``sfn``, ``cloudwatchlogs``...), which
  :func:`sdk_service_name` derives from botocore's ``serviceId``; ACTION is the API's
  action in camelCase (``getItem``: boto3's ``get_item``).
* Errors (:func:`error_name`): ``<Service>.<Name>Exception``: the service in PascalCase
  (:func:`sdk_error_prefix`: ``DynamoDb``, ``S3``, ``AcmPca``) and the error's name with
  ``Exception`` appended when it lacks it (S3's ``NoSuchKey`` is
  ``S3.NoSuchKeyException``), as the Step Functions developer guide says.
* Results (:func:`to_json`): timestamps as ISO 8601 strings in UTC (``Z``) and binary
  values as base64 strings, as the Java SDK writes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: The integration-name prefix of the SDK integrations.
SDK = "aws-sdk"
#: Words the Java SDK drops from the front and end of a service's name (``Amazon``,
#: ``AWS``; ``Database Migration Service`` is ``databasemigration``).
_DROPPED_PREFIXES = ("Amazon", "Aws")
_DROPPED_SUFFIXES = ("Service",)
#: The integration pattern suffixes (as :mod:`orchestrator.language.resources`).
_SUFFIX = re.compile(r"(\.waitForTaskToken|\.sync:2|\.sync)$")


@dataclass(frozen=True)
class SdkTarget:
    """What ``aws-sdk:SERVICE:ACTION[SUFFIX]`` names."""

    service: str
    """Step Functions' name of the service (``dynamodb``, ``eventbridge``)."""
    action: str
    """The action, camelCase as written (``getItem``)."""
    suffix: str = ""
    """The integration pattern suffix (``.waitForTaskToken``), or ``""``."""


def sdk_target(name: str) -> SdkTarget | None:
    """The service and action of an SDK integration name (``aws-sdk:s3:getObject``), or
    None for any other name."""
    prefix, _, rest = name.partition(":")
    if prefix != SDK:
        return None
    suffix_match = _SUFFIX.search(rest)
    suffix = suffix_match.group(1) if suffix_match else ""
    rest = rest[: len(rest) - len(suffix)]
    service, _, action = rest.partition(":")
    if not service or not action or ":" in action:
        return None
    return SdkTarget(service, action, suffix)


def _words(text: str) -> list[str]:
    """A name split into words as the Java SDK's code generator splits it
    (``CodegenNamingUtils.splitOnWordBoundaries``): ``DynamoDB`` is ``Dynamo DB``,
    ``ACM PCA`` is ``ACM PCA``, ``IoT`` one word."""
    text = re.sub(r"[^A-Za-z0-9]+", " ", text)
    text = re.sub(r"([^a-z]{2,})v([0-9]+)", r"\1 v\2 ", text)
    text = re.sub(r"([^A-Z]{2,})V([0-9]+)", r"\1 V\2 ", text)
    text = " ".join(re.split(r"(?<=[a-z])(?=[A-Z][a-zA-Z0-9])", text))
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([0-9])([a-zA-Z])", r"\1 \2", text)
    return text.split()


def sdk_error_prefix(service_id: str) -> str:
    """The service part of an SDK integration's error names, from botocore's
    ``serviceId`` (``DynamoDB`` -> ``DynamoDb``, ``ACM PCA`` -> ``AcmPca``, ``S3`` ->
    ``S3``, ``EventBridge`` -> ``EventBridge``): the Java SDK's client name."""
    name = "".join(word.lower().capitalize() for word in _words(service_id))
    for prefix in _DROPPED_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    for suffix in _DROPPED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def sdk_service_name(service_id: str) -> str:
    """Step Functions' name of a service in ``aws-sdk:SERVICE:ACTION``, from botocore's
    ``serviceId`` (``EventBridge`` -> ``eventbridge``, ``CloudWatch Logs`` ->
    ``cloudwatchlogs``)."""
    return sdk_error_prefix(service_id).lower()


def error_name(prefix: str, name: str) -> str:
    """``<prefix>.<name>Exception`` (``Exception`` appended only when missing):
    ``error_name("S3", "NoSuchKey") == "S3.NoSuchKeyException"``."""
    name = name.rpartition("#")[2]  # a JSON protocol's namespaced type
    if not name.endswith("Exception"):
        name += "Exception"
    return f"{prefix}.{name}"


def timestamp(value: dt.datetime) -> str:
    """A timestamp as the Java SDK writes one (``Instant.toString``): UTC, ``Z``, the
    fraction of a second in groups of three digits and only when there is one."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        fraction = f"{value.microsecond:06d}"
        text += "." + (fraction[:3] if fraction.endswith("000") else fraction)
    return text + "Z"


def to_json(value: Any) -> Any:
    """An SDK answer as JSON: timestamps as :func:`timestamp` strings, bytes as base64
    strings, decimals as numbers; mappings and sequences converted all through."""
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    if isinstance(value, dt.datetime):
        return timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def without_metadata(response: Mapping[str, Any]) -> dict[str, Any]:
    """A boto3 response without its ``ResponseMetadata``."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def sdk_http_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``SdkHttpMetadata`` and ``SdkResponseMetadata`` as the optimized DynamoDB, SNS and
    SQS integrations add them to their results, from boto3's ``ResponseMetadata``."""
    headers = {str(k): str(v) for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    return {
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": metadata.get("HTTPStatusCode", 200),
        },
        "SdkResponseMetadata": {"RequestId": metadata.get("RequestId", "")},
    }


def error_cause(message: str, prefix: str, status: Any, request_id: Any) -> str:
    """The cause of a service error as the Java SDK writes it: the message, then
    ``(Service: X, Status Code: N, Request ID: R)``."""
    return f"{message} (Service: {prefix}, Status Code: {status}, Request ID: {request_id})"
