"""AWS SDK integrations: ``arn:aws:states:::aws-sdk:SERVICE:ACTION`` for every service
boto3 knows, and its ``.waitForTaskToken`` form.

SERVICE is Step Functions' name of the service (``dynamodb``, ``s3``, ``eventbridge``,
``sfn``, ``cloudwatchlogs``..., :func:`orchestrator.language.awssdk.sdk_service_name`);
boto3's own name (``events``, ``logs``, ``stepfunctions``) is accepted too. ACTION is the
API action in camelCase (``getItem``, ``listObjectsV2``): boto3's method for the operation
of that name. The Parameters are the API's request, PascalCase as Step Functions writes
them; a member the API spells otherwise is matched without regard to case
(``RestApiId`` is API Gateway's ``restApiId``), ``EqualsValue`` is ``Equals``. A blob
member takes a string: a streaming one (S3 ``PutObject``'s ``Body``) its UTF-8 bytes,
another one its base64 decoding (UTF-8 bytes when it is no base64).

The result is the API's response without ``ResponseMetadata``, its members capitalized
as Step Functions writes them, timestamps as ISO 8601 strings in UTC, blobs as base64
strings, and a streaming body (S3 ``GetObject``'s ``Body``) as its text (base64 when it
is no UTF-8).

Errors: a service error is ``<Service>.<Name>Exception`` as Step Functions names it
(``S3.NoSuchKeyException``, ``DynamoDb.ResourceNotFoundException``; one botocore does not
model is the service's base exception, ``DynamoDb.DynamoDbException``), its cause the
message with the service, status code and request id. Any other failure of the call
(no credentials, no connection, a parameter the API refuses before sending) is
``States.TaskFailed``. Retry and Catch match them by name, ``States.TaskFailed`` and
``States.ALL`` included.

The client comes from :func:`orchestrator.engine.items.aws.client` (boto3's standard
configuration: ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``, the credentials
chain, the region). ``aws-sdk:sfn:startExecution`` is a child workflow the engine runs
(:mod:`orchestrator.language.children`), never this integration.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from orchestrator.engine.context import activity_context
from orchestrator.engine.integrations import WAIT_FOR_TOKEN, integration
from orchestrator.engine.items import aws
from orchestrator.errors import StatesError
from orchestrator.language import awssdk
from orchestrator.language.resources import integration_name

TASK_FAILED = "States.TaskFailed"
_SERVICE_ID = re.compile(rb'"serviceId"\s*:\s*"([^"]+)"')


@dataclass(frozen=True)
class Operation:
    """An API operation an integration calls."""

    service: str
    """boto3's name of the service (``dynamodb``)."""
    prefix: str
    """The service part of its error names (``DynamoDb``)."""
    name: str
    """The operation (``GetItem``)."""
    method: str
    """boto3's method (``get_item``)."""
    model: Any
    """botocore's ``OperationModel``."""


@functools.cache
def _session() -> Any:
    import botocore.session  # optional dependency: only when an AWS Resource is used

    return botocore.session.get_session()


_index_lock = threading.Lock()
_index: dict[str, tuple[str, str]] | None = None


def _service_index() -> dict[str, tuple[str, str]]:
    """Step Functions' service name -> (boto3's name, its serviceId), for every service
    botocore has a model of; boto3's names are keys too (Step Functions' win)."""
    global _index
    with _index_lock:
        if _index is not None:
            return _index
        session = _session()
        loader = session.get_component("data_loader")
        own: dict[str, tuple[str, str]] = {}
        index: dict[str, tuple[str, str]] = {}
        for name in session.get_available_services():
            service_id = _read_service_id(loader, name)
            index[name] = (name, service_id)
            own[awssdk.sdk_service_name(service_id)] = (name, service_id)
        index.update(own)
        _index = index
        return index


def _read_service_id(loader: Any, name: str) -> str:
    """A service's ``serviceId`` read from the head of its model file: loading all ~450
    models whole takes seconds, their heads a fraction of one."""
    version = loader.list_api_versions(name, "service-2")[-1]
    for base in loader.search_paths:
        path = os.path.join(base, name, version, "service-2.json")
        try:
            if os.path.exists(path + ".gz"):
                with gzip.open(path + ".gz", "rb") as compressed:
                    head = compressed.read(4096)
            elif os.path.exists(path):
                with open(path, "rb") as plain:
                    head = plain.read(4096)
            else:
                continue
        except OSError:
            continue
        match = _SERVICE_ID.search(head)
        if match:
            return match.group(1).decode()
        break
    model = _session().get_service_model(name)
    return str(model.metadata.get("serviceId") or model.service_name)


_models_lock = threading.Lock()


@functools.lru_cache(maxsize=1024)
def operation(service: str, action: str, prefix: str | None = None) -> Operation | str:
    """The operation ``aws-sdk:SERVICE:ACTION`` calls, or why there is none (a message).

    ``prefix`` overrides the service part of the error names (the optimized
    integrations' ``DynamoDB``)."""
    # One model load at a time: the worker's threads share botocore's session and loader.
    with _models_lock:
        return _operation(service, action, prefix)


def _operation(service: str, action: str, prefix: str | None) -> Operation | str:
    from botocore import xform_name

    found = _service_index().get(service) or _service_index().get(service.lower())
    if found is None:
        return (
            f"aws-sdk: boto3 knows no service {service!r} (Step Functions' names of "
            "services: dynamodb, s3, eventbridge, sqs, sns, sfn, cloudwatchlogs...)"
        )
    name, service_id = found
    model = _session().get_service_model(name)
    wanted = action[:1].upper() + action[1:]
    names = {op.lower(): op for op in model.operation_names}
    op_name = names.get(wanted.lower())
    if op_name is None:
        return f"aws-sdk: {service} has no action {action!r}"
    return Operation(
        name,
        prefix or awssdk.sdk_error_prefix(service_id),
        op_name,
        xform_name(op_name),
        model.operation_model(op_name),
    )


def members_problem(op: Operation, params: Mapping[str, Any] | None, what: str) -> str | None:
    """Definition-time check of static Parameters against the operation's request."""
    if params is None:
        return None
    shape = op.model.input_shape
    members = shape.members if shape is not None else {}
    known = {m.lower() for m in members} | ({"equalsvalue"} if "Equals" in members else set())
    unknown = sorted(key for key in params if key.removesuffix(".$").lower() not in known)
    if unknown:
        fields = ", ".join(members) or "none"
        return f"{what} does not take {', '.join(unknown)} (the request's fields: {fields})"
    return None


def _check(resource: str, params: Mapping[str, Any] | None) -> str | None:

    name = integration_name(resource) or ""
    target = awssdk.sdk_target(name)
    if target is None or target.suffix not in ("", WAIT_FOR_TOKEN):
        return f"{name}: not an aws-sdk:SERVICE:ACTION integration"
    missing = aws.requires_aws("$", f"the integration {name}")
    if missing:
        return missing[0].message
    found = operation(target.service, target.action)
    if isinstance(found, str):
        return found
    return members_problem(found, params, name)


@integration(awssdk.SDK, family=True, callback=True, resource_check=_check)
def call(params: Any) -> Any:
    """One attempt of an ``aws-sdk:SERVICE:ACTION`` Task: the call, its answer as JSON."""

    resource = activity_context().resource or ""
    name = integration_name(resource) or resource
    target = awssdk.sdk_target(name)
    if target is None:
        raise StatesError(f"{resource!r} is no aws-sdk integration", error="States.Runtime")
    found = operation(target.service, target.action)
    if isinstance(found, str):
        raise StatesError(found, error="States.Runtime")
    response = invoke(found, params, name)
    return from_shape(found.model.output_shape, awssdk.without_metadata(response), True)


def invoke(op: Operation, params: Any, name: str, *, base_error: str | None = None) -> Any:
    """Call ``op`` with ``params`` (adapted to the request's shape); a failure raised as
    Step Functions names it (``base_error``: the name of an unmodeled service error)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise StatesError(f"{name} needs an object of Parameters", error="States.Runtime")
    client = aws.client(op.service, feature=f"the integration {name}")
    request = to_shape(op.model.input_shape, params)
    try:
        return getattr(client, op.method)(**request)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Step Functions error
        raise_as_states_error(exc, op.prefix, base_error)


def raise_as_states_error(exc: BaseException, prefix: str, base_error: str | None) -> NoReturn:
    """Raise ``exc`` (from a boto3 call) as the error Step Functions names it."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        if not aws.is_aws_error(exc):
            raise exc
        raise StatesError(f"{type(exc).__name__}: {exc}", error=TASK_FAILED) from None
    error = response.get("Error") or {}
    metadata = response.get("ResponseMetadata") or {}
    modeled = type(exc).__name__ != "ClientError"
    code = type(exc).__name__ if modeled else str(error.get("Code") or "")
    if modeled:
        name = awssdk.error_name(prefix, code)
    else:
        name = f"{prefix}.{base_error or prefix + 'Exception'}"
    message = str(error.get("Message") or code or exc)
    cause = awssdk.error_cause(
        message, prefix, metadata.get("HTTPStatusCode", ""), metadata.get("RequestId", "")
    )
    raise StatesError(cause, error=name) from None


def to_shape(shape: Any, value: Any) -> Any:
    """A value given in Step Functions' spelling as botocore takes it for ``shape``."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        by_lower = {m.lower(): m for m in members}
        if "Equals" in members:
            by_lower["equalsvalue"] = "Equals"
        out = {}
        for key, item in value.items():
            member = key if key in members else by_lower.get(str(key).lower(), key)
            out[member] = to_shape(members.get(member), item)
        return out
    if kind == "list" and isinstance(value, list):
        return [to_shape(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: to_shape(shape.value, item) for key, item in value.items()}
    if kind == "blob":
        if isinstance(value, str):
            if shape.serialization.get("streaming") or shape.metadata.get("streaming"):
                return value.encode()
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return value.encode()
        if not isinstance(value, (bytes, bytearray)):
            return json.dumps(value, separators=(",", ":")).encode()
    return value


def from_shape(shape: Any, value: Any, capitalize: bool) -> Any:
    """A botocore answer for ``shape`` as JSON (see the module doc); ``capitalize``: its
    structures' members capitalized as the SDK integrations write them."""
    if shape is None:
        return awssdk.to_json(value)
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        out = {}
        for key, item in value.items():
            out[_cap(key) if capitalize else key] = from_shape(members.get(key), item, capitalize)
        return out
    if kind == "list" and isinstance(value, list):
        return [from_shape(shape.member, item, capitalize) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {str(k): from_shape(shape.value, item, capitalize) for k, item in value.items()}
    if hasattr(value, "read"):  # a streaming body
        data = value.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii")
    return awssdk.to_json(value)


def _cap(key: str) -> str:
    return key[:1].upper() + key[1:]
