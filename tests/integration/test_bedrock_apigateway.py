"""``bedrock:invokeModel`` and ``apigateway:invoke`` (issue 14 item 3) through the session's
real worker, against the local HTTP server: Bedrock's runtime endpoint pointed at it
(``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, the request on the wire as boto3 sends it), and
API Gateway's endpoint given as the server's URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import start_workflow
from orchestrator.errors import DefinitionError
from tests.helpers import machine, run_workflow, task
from tests.http_server import LocalHttpServer, local_http_server

pytestmark = pytest.mark.usefixtures("orchestrator")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttpServer]:
    with local_http_server() as running:
        yield running


@pytest.fixture
def aws_env(server: LocalHttpServer, monkeypatch: pytest.MonkeyPatch) -> LocalHttpServer:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"{server.url}/echo")
    return server


def test_bedrock_invoke_model_returns_the_parsed_body(aws_env):
    state = task(
        "arn:aws:states:us-west-2:123456789012:bedrock:invokeModel",
        Parameters={
            "ModelId": "anthropic.claude-v2",
            "Body": {"prompt.$": "$.prompt", "max_tokens_to_sample": 50},
        },
    )
    _, result = run_workflow(machine({"Ask": state}), {"prompt": "Hello"})
    assert result.status == "SUCCEEDED", result
    assert result.output["ContentType"] == "application/json"
    body = result.output["Body"]  # the model's answer, parsed: here the echo of the call
    assert body["method"] == "POST"
    assert body["path"] == "/echo/model/anthropic.claude-v2/invoke"
    assert json.loads(body["body"]) == {"prompt": "Hello", "max_tokens_to_sample": 50}
    assert body["contentType"] == "application/json"
    seen = aws_env.received("/echo/model/")[-1]
    assert (seen.header("Authorization") or "").startswith("AWS4-HMAC-SHA256")


def test_parameters_are_checked_when_the_workflow_starts():
    bad = [
        ("arn:aws:states:::bedrock:invokeModel", {"Body": {}}, "needs ModelId"),
        ("arn:aws:states:::bedrock:invokeModel", {"ModelId": "m", "Prompt": "x"}, "Prompt"),
        ("arn:aws:states:::apigateway:invoke", {"ApiEndpoint": "h"}, "needs Method"),
        (
            "arn:aws:states:::apigateway:invoke",
            {"ApiEndpoint": "h", "Method": "GET", "AuthType": "OAUTH"},
            "AuthType",
        ),
    ]
    for resource, params, message in bad:
        with pytest.raises(DefinitionError, match=message):
            start_workflow(machine({"Call": task(resource, Parameters=params)}))


def apigw(**params: Any) -> dict[str, Any]:
    fields = {k: params.pop(k) for k in ("Catch", "Retry") if k in params}
    return task("arn:aws:states:::apigateway:invoke", Parameters=params, **fields)


def test_apigateway_invoke_builds_the_url_and_returns_the_documented_shape(server):
    state = apigw(
        ApiEndpoint=server.url,
        Method="POST",
        Stage="echo",
        Path="orders/7",
        Headers={"X-Trace": ["abc"]},
        QueryParameters={"size": ["9", "10"]},
        RequestBody={"qty": 2},
        AuthType="NO_AUTH",
    )
    _, result = run_workflow(machine({"Call": state}))
    assert result.status == "SUCCEEDED", result
    out = result.output
    assert set(out) == {"Headers", "ResponseBody", "StatusCode", "StatusText"}
    assert out["StatusCode"] == 200 and out["StatusText"] == "OK"
    assert out["Headers"]["content-type"] == ["application/json"]
    assert out["ResponseBody"]["path"] == "/echo/orders/7"
    assert out["ResponseBody"]["query"] == [["size", "9"], ["size", "10"]]
    assert json.loads(out["ResponseBody"]["body"]) == {"qty": 2}
    seen = server.received("/echo/orders/7")[-1]
    assert seen.header("X-Trace") == "abc"
    assert seen.header("Authorization") is None


def test_apigateway_iam_role_signs_the_request(aws_env):
    state = apigw(
        ApiEndpoint=aws_env.url, Method="GET", Stage="echo", Path="signed", AuthType="IAM_ROLE"
    )
    _, result = run_workflow(machine({"Call": state}))
    assert result.status == "SUCCEEDED", result
    seen = aws_env.received("/echo/signed")[-1]
    authorization = seen.header("Authorization") or ""
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTING/")
    assert "/us-east-1/execute-api/aws4_request" in authorization


def test_apigateway_non_2xx_is_apigateway_status(server):
    state = apigw(ApiEndpoint=server.url, Method="GET", Stage="status", Path="404")
    _, result = run_workflow(machine({"Call": state}))
    assert result.status == "FAILED", result
    assert result.error == "ApiGateway.404"
    assert json.loads(result.cause or "")["StatusCode"] == 404
