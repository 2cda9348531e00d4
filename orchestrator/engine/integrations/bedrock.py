"""``arn:aws:states:::bedrock:invokeModel``: a model's answer, as Step Functions gives it.

Parameters (or JSONata Arguments), as Step Functions documents them:

* ``ModelId`` (required): the model's id or ARN;
* ``Body``: the request to the model (an object is sent as JSON, a string as it is), or
  ``Input.S3Uri``: an S3 object holding it (``s3://bucket/key``);
* ``ContentType`` (``application/json`` by default), ``Accept`` (the same);
* ``Trace``, ``GuardrailIdentifier``, ``GuardrailVersion``: passed on;
* ``Output.S3Uri``: write the model's answer to that S3 object instead of returning it.

One boto3 ``bedrock-runtime`` ``invoke_model`` call (endpoint from
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, as every boto3 client: items/aws.py). The result is
``{"Body": <the answer: JSON parsed, else text>, "ContentType": ...}`` (without ``Body``
when it went to ``Output.S3Uri``). A service error fails the attempt as
``Bedrock.<Name>Exception`` (``Bedrock.ValidationException``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orchestrator.engine.integrations import fields_problem, integration
from orchestrator.engine.integrations.aws_sdk import invoke, operation
from orchestrator.engine.items import aws
from orchestrator.errors import StatesError, StatesRuntimeError

NAME = "bedrock:invokeModel"
#: Fields Step Functions takes besides the request's own.
_FIELDS = {
    "ModelId",
    "Body",
    "ContentType",
    "Accept",
    "Trace",
    "GuardrailIdentifier",
    "GuardrailVersion",
    "PerformanceConfigLatency",
    "Input",
    "Output",
}
_PASSED_ON = ("Trace", "GuardrailIdentifier", "GuardrailVersion", "PerformanceConfigLatency")


def check_parameters(params: Mapping[str, Any] | None) -> str | None:
    """Definition-time check of static Parameters (fields given with ``.$`` pass)."""
    if params is None:
        return None
    return fields_problem(NAME, params, _FIELDS, ("ModelId",))


def _s3_uri(params: Mapping[str, Any], field: str) -> tuple[str, str] | None:
    value = params.get(field)
    if value is None:
        return None
    uri = value.get("S3Uri") if isinstance(value, dict) else None
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/" not in uri[5:]:
        raise StatesRuntimeError(f"{NAME} {field}.S3Uri must be an s3://bucket/key text")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


@integration(NAME, check=check_parameters)
def invoke_model(params: Any) -> dict[str, Any]:
    """One attempt: the model's answer as ``{"Body", "ContentType"}``."""
    if not isinstance(params, dict):
        raise StatesRuntimeError(f"{NAME} needs an object of Parameters")
    problem = check_parameters(params)
    if problem is None and not isinstance(params.get("ModelId"), str):
        problem = f"{NAME} ModelId must be a text"
    if problem is not None:
        raise StatesRuntimeError(problem)
    source, target = _s3_uri(params, "Input"), _s3_uri(params, "Output")
    if source is not None:
        if "Body" in params:
            raise StatesRuntimeError(f"{NAME} takes Body or Input, not both")
        body = _s3(lambda s3: s3.get_object(Bucket=source[0], Key=source[1])["Body"].read())
    else:
        value = params.get("Body", {})
        body = value.encode() if isinstance(value, str) else _json(value).encode()
    request: dict[str, Any] = {
        "ModelId": params["ModelId"],
        "Body": body,
        "ContentType": params.get("ContentType") or "application/json",
        "Accept": params.get("Accept") or "application/json",
    }
    request.update({name: params[name] for name in _PASSED_ON if name in params})
    found = operation("bedrock-runtime", "InvokeModel", "Bedrock")
    if isinstance(found, str):  # botocore models it
        raise StatesError(found, error="States.Runtime")
    response = invoke(found, request, NAME)
    answer = response["body"].read()
    content_type = str(response.get("contentType") or request["Accept"])
    if target is not None:
        _s3(lambda s3: s3.put_object(Bucket=target[0], Key=target[1], Body=answer))
        return {"ContentType": content_type}
    return {"Body": _parsed(answer, content_type), "ContentType": content_type}


def _s3(call: Any) -> Any:
    try:
        return call(aws.s3_client())
    except Exception as exc:  # noqa: BLE001 - the object's failure is the Task's
        cause = f"{NAME}: S3: {aws.error_code(exc)}: {exc}"
        raise StatesError(cause, error="States.TaskFailed") from None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _parsed(answer: bytes, content_type: str) -> Any:
    text = answer.decode("utf-8", "replace")
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: the text
    return text
