"""The HTTP Task (arn:aws:states:::http:invoke) against a local HTTP server, and Resource
bindings (issue 14 items 2 and 4), through a real worker."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from orchestrator import config, redrive_execution, start_workflow
from orchestrator.engine.activities import activity
from orchestrator.errors import DefinitionError
from tests.helpers import machine, run_workflow, task
from tests.http_server import CLIENT_ID, CLIENT_SECRET, LocalHttpServer, local_http_server

pytestmark = pytest.mark.usefixtures("orchestrator")

HTTP = "arn:aws:states:::http:invoke"
API_KEY = "k3y-on-the-wire-only"
PASSWORD = "pa55-on-the-wire-only"


# Registered at collection, before the session's worker starts. The SDK form of SNS, which
# no other test calls: a binding holds for the whole session (every module of it).
@activity("test-sns-publish", resources=["arn:aws:states:::aws-sdk:sns:publish"])
def fake_sns_publish(params: Any) -> Any:
    return {"MessageId": f"msg-{params['Message']}", "TopicArn": params["TopicArn"]}


@activity("test-fake-http")
def fake_http(params: Any) -> Any:
    return {"StatusCode": 299, "Bound": params["ApiEndpoint"]}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttpServer]:
    with local_http_server() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[config.Settings]:
    """The session's settings plus a connections file and a short HTTP timeout."""
    monkeypatch.setenv("TEST_HTTP_API_KEY", API_KEY)
    connections = {
        "key-conn": {"api_key": {"name": "X-Api-Key", "value_env": "TEST_HTTP_API_KEY"}},
        "basic-conn": {"basic": {"username": "svc", "password": PASSWORD}},
        "arn:aws:events:us-east-1:123456789012:connection/oauth-conn/1c2d": {
            "oauth": {
                "token_url": "",  # set below: the server's
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": "orders.write",
            }
        },
    }
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(connections))
    before = config.get_settings()
    updated = before.model_copy(update={"connections_file": str(path), "http_timeout_seconds": 1.0})
    config.configure(updated)
    try:
        yield updated
    finally:
        config.configure(before)


#: Fields of the Task state itself, not of its Parameters.
STATE_FIELDS = ("Next", "ResultSelector", "ResultPath", "OutputPath", "Retry", "Catch")


def http_task(**params: Any) -> dict[str, Any]:
    fields = {key: params.pop(key) for key in STATE_FIELDS if key in params}
    return task(HTTP, Parameters=params, **fields)


def history_text(handle: Any) -> str:
    return json.dumps([{"type": e.type, **e.details} for e in handle.history()])


def test_get_with_query_and_headers_returns_aws_shape(server, settings):
    definition = machine(
        {
            "Get": http_task(
                ApiEndpoint=f"{server.url}/echo/items",
                Method="GET",
                Headers={"X-Trace": "abc", "X-Count": 3},
                QueryParameters={"q": "shoes", "size": ["9", "10"]},
            )
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    out = result.output
    assert out["StatusCode"] == 200 and out["StatusText"] == "OK"
    assert out["Headers"]["content-type"] == ["application/json"]
    assert out["ResponseBody"]["method"] == "GET"
    assert out["ResponseBody"]["query"] == [["q", "shoes"], ["size", "9"], ["size", "10"]]
    seen = server.received("/echo/items")[-1]
    assert seen.header("X-Trace") == "abc" and seen.header("X-Count") == "3"
    history = handle.history()
    for type_ in ("TaskScheduled", "TaskStarted", "TaskSucceeded"):
        event = next(e for e in history if e.type == type_)
        assert event.details["resourceType"] == "http", (type_, event.details)
        assert event.details["resource"] == "invoke", (type_, event.details)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_with_a_json_body(server, settings, method):
    definition = machine(
        {
            "Call": http_task(
                ApiEndpoint=f"{server.url}/echo/{method}",
                Method=method,
                RequestBody={"order": {"id": 7, "lines": [1, 2]}},
            )
        }
    )
    _, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    body = result.output["ResponseBody"]
    assert body["method"] == method
    assert json.loads(body["body"]) == {"order": {"id": 7, "lines": [1, 2]}}
    assert body["contentType"] == "application/json"


def test_head_string_body_and_text_answer(server, settings):
    definition = machine(
        {
            "Head": http_task(ApiEndpoint=f"{server.url}/echo/head", Method="HEAD", Next="Text"),
            "Text": http_task(
                ApiEndpoint=f"{server.url}/text",
                Method="POST",
                RequestBody="plain words",
                Headers={"Content-Type": "text/plain"},
                ResultSelector={"body.$": "$.ResponseBody"},
            ),
        }
    )
    _, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"body": "hello, world"}
    sent = server.received("/text")[-1]
    assert sent.body == b"plain words" and sent.header("Content-Type") == "text/plain"
    assert server.received("/echo/head")[-1].method == "HEAD"


@pytest.mark.parametrize(
    ("array_format", "expected"),
    [
        ("BRACKETS", "amount=12.5&tags[]=a&tags[]=b&card[brand]=visa"),
        ("COMMAS", "amount=12.5&tags=a,b&card[brand]=visa"),
        ("INDICES", "amount=12.5&tags[0]=a&tags[1]=b&card[brand]=visa"),
        ("REPEAT", "amount=12.5&tags=a&tags=b&card[brand]=visa"),
        (None, "amount=12.5&tags[0]=a&tags[1]=b&card[brand]=visa"),  # INDICES by default
    ],
)
def test_url_encoded_bodies(server, settings, array_format, expected):
    transform: dict[str, Any] = {"RequestBodyEncoding": "URL_ENCODED"}
    if array_format:
        transform["RequestEncodingOptions"] = {"ArrayFormat": array_format}
    definition = machine(
        {
            "Form": http_task(
                ApiEndpoint=f"{server.url}/echo/form",
                Method="POST",
                RequestBody={"amount": 12.5, "tags": ["a", "b"], "card": {"brand": "visa"}},
                Transform=transform,
            )
        }
    )
    _, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    body = result.output["ResponseBody"]
    assert body["contentType"] == "application/x-www-form-urlencoded"
    assert unquote(body["body"]) == expected


def test_credentials_are_on_the_wire_and_never_in_history(server, settings):
    config.configure(
        settings.model_copy(update={"connections_file": _with_token_url(settings, server)})
    )
    oauth_arn = "arn:aws:events:us-east-1:123456789012:connection/oauth-conn/1c2d"
    definition = machine(
        {
            "Key": http_task(
                ApiEndpoint=f"{server.url}/echo/key",
                Method="GET",
                Authentication={
                    "ConnectionArn": "arn:aws:events:eu-west-1:1:connection/key-conn/9f8e"
                },
                Next="Basic",
            ),
            "Basic": http_task(
                ApiEndpoint=f"{server.url}/echo/basic",
                Method="GET",
                Authentication={"ConnectionArn": "basic-conn"},
                Next="OAuth1",
            ),
            "OAuth1": http_task(
                ApiEndpoint=f"{server.url}/echo/oauth",
                Method="GET",
                Authentication={"ConnectionArn": oauth_arn},
                Next="OAuth2",
            ),
            "OAuth2": http_task(
                ApiEndpoint=f"{server.url}/echo/oauth",
                Method="GET",
                Authentication={"ConnectionArn": oauth_arn},
            ),
        }
    )
    issued = server.tokens_issued
    handle, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    assert server.received("/echo/key")[-1].header("X-Api-Key") == API_KEY
    basic = server.received("/echo/basic")[-1].header("Authorization")
    assert basic is not None and basic.startswith("Basic ")
    assert base64.b64decode(basic.split()[1]).decode() == f"svc:{PASSWORD}"
    bearers = [r.header("Authorization") for r in server.received("/echo/oauth")[-2:]]
    assert bearers[0] == bearers[1] and bearers[0] is not None
    assert bearers[0].startswith("Bearer token-")
    assert server.tokens_issued == issued + 1  # fetched once, then cached
    text = history_text(handle) + json.dumps(result.output)
    for secret in (API_KEY, PASSWORD, CLIENT_SECRET, basic.split()[1], bearers[0].split()[1]):
        assert secret not in text


def _with_token_url(settings: config.Settings, server: LocalHttpServer) -> str:
    assert settings.connections_file is not None
    path = Path(settings.connections_file)
    data = json.loads(path.read_text())
    for entry in data.values():
        if "oauth" in entry:
            entry["oauth"]["token_url"] = f"{server.url}/token"
    updated = path.with_name("connections-oauth.json")
    updated.write_text(json.dumps(data))
    return str(updated)


def test_missing_connection_fails_the_task(server, settings):
    definition = machine(
        {
            "Call": http_task(
                ApiEndpoint=f"{server.url}/echo/x",
                Method="GET",
                Authentication={"ConnectionArn": "no-such-connection"},
            )
        }
    )
    _, result = run_workflow(definition)
    assert result.status == "FAILED"
    assert result.error == "States.Http.Connection"
    assert "no-such-connection" in (result.cause or "")


def test_4xx_fails_with_its_status_and_is_caught(server, settings):
    definition = machine(
        {
            "Get": http_task(
                ApiEndpoint=f"{server.url}/status/404",
                Method="GET",
                Catch=[
                    {
                        "ErrorEquals": ["States.Http.StatusCode.404"],
                        "ResultPath": "$.error",
                        "Next": "Missing",
                    }
                ],
            ),
            "Missing": {"Type": "Pass", "End": True},
        }
    )
    _, result = run_workflow(definition, {"id": 1})
    assert result.status == "SUCCEEDED", result
    assert result.output["error"]["Error"] == "States.Http.StatusCode.404"
    cause = json.loads(result.output["error"]["Cause"])
    assert cause["StatusCode"] == 404 and cause["ResponseBody"] == {"message": "status 404"}


def test_5xx_fails_the_execution_without_retry(server, settings):
    definition = machine({"Get": http_task(ApiEndpoint=f"{server.url}/status/500", Method="GET")})
    _, result = run_workflow(definition)
    assert result.status == "FAILED"
    assert result.error == "States.Http.StatusCode.500"


def test_retry_on_503_until_it_answers(server, settings, tag):
    definition = machine(
        {
            "Get": http_task(
                ApiEndpoint=f"{server.url}/flaky/{tag}/2",
                Method="GET",
                Retry=[
                    {
                        "ErrorEquals": ["States.Http.StatusCode.503"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 3,
                        "BackoffRate": 1.0,
                    }
                ],
            )
        }
    )
    handle, result = run_workflow(definition, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output["ResponseBody"] == {"attempts": 3}
    assert len(server.received(f"/flaky/{tag}/")) == 3
    failed = [e for e in handle.history() if e.type == "TaskFailed"]
    assert [e.details["error"] for e in failed] == ["States.Http.StatusCode.503"] * 2
    assert all(e.details["resourceType"] == "http" for e in failed)


def test_timeouts_and_refused_connections_are_socket_errors(server, settings, tag):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    definition = machine(
        {
            "Slow": http_task(
                ApiEndpoint=f"{server.url}/slow/{tag}",
                Method="GET",
                Retry=[{"ErrorEquals": ["States.Http.Socket"], "MaxAttempts": 1}],
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.slow", "Next": "Refused"}],
            ),
            "Refused": http_task(
                ApiEndpoint=f"http://127.0.0.1:{closed_port}/x",
                Method="GET",
                Catch=[
                    {
                        "ErrorEquals": ["States.Http.Socket"],
                        "ResultPath": "$.refused",
                        "Next": "Done",
                    }
                ],
            ),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    handle, result = run_workflow(definition, {}, timeout=30)
    server.release(tag)
    assert result.status == "SUCCEEDED", result
    assert result.output["slow"]["Error"] == "States.Http.Socket"
    assert "no answer within 1 s" in result.output["slow"]["Cause"]
    assert result.output["refused"]["Error"] == "States.Http.Socket"
    # Retried once: the timeout is a retriable error like any other.
    assert sum(1 for e in handle.history() if e.type == "TaskFailed" and e.state == "Slow") == 2


def test_region_qualified_arn_and_jsonpath_parameters(server, settings):
    definition = machine(
        {
            "Get": task(
                "arn:aws:states:eu-west-3:111122223333:http:invoke",
                Parameters={
                    "ApiEndpoint.$": "States.Format('{}/echo/{}', $.base, $.id)",
                    "Method": "GET",
                },
                OutputPath="$.ResponseBody.path",
            )
        }
    )
    _, result = run_workflow(definition, {"base": server.url, "id": "o-1"})
    assert result.status == "SUCCEEDED", result
    assert result.output == "/echo/o-1"


def test_bound_activity_serves_an_integration(settings):
    definition = machine(
        {
            "Notify": task(
                "arn:aws:states:us-west-2:123456789012:aws-sdk:sns:publish",
                Parameters={"TopicArn": "arn:aws:sns:us-west-2:1:orders", "Message.$": "$.m"},
            )
        }
    )
    handle, result = run_workflow(definition, {"m": "hi"})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"MessageId": "msg-hi", "TopicArn": "arn:aws:sns:us-west-2:1:orders"}
    scheduled = next(e for e in handle.history() if e.type == "TaskScheduled")
    assert (scheduled.details["resourceType"], scheduled.details["resource"]) == (
        "aws-sdk",
        "sns:publish",
    )


def test_an_alias_wins_over_the_builtin_integration(settings):
    config.configure(settings.model_copy(update={"resource_aliases": {HTTP: "test-fake-http"}}))
    definition = machine({"Get": http_task(ApiEndpoint="http://unused.invalid/", Method="GET")})
    _, result = run_workflow(definition)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"StatusCode": 299, "Bound": "http://unused.invalid/"}


@pytest.mark.parametrize(
    ("resource", "named"),
    [
        ("arn:aws:states:::emr:createCluster", "emr:createCluster"),
        (
            "arn:aws:states:us-east-1:123456789012:dynamodb:putItem.waitForTaskToken",
            "dynamodb:putItem.waitForTaskToken",
        ),
        ("arn:aws:states:::sagemaker:createTrainingJob.sync", "sagemaker:createTrainingJob.sync"),
        ("arn:aws:states:us-east-1:123456789012:activity:approve", "activity:approve"),
    ],
)
def test_unsupported_integrations_say_how_to_bind_them(resource, named):
    with pytest.raises(DefinitionError) as raised:
        start_workflow(machine({"T": task(resource)}), {})
    message = str(raised.value)
    assert named in message or resource in message
    assert "not supported" in message
    assert "@activity(" in message and "ORCHESTRATOR_RESOURCE_ALIASES" in message


def test_http_parameters_are_checked_with_the_definition():
    with pytest.raises(DefinitionError, match="needs Method"):
        start_workflow(machine({"T": http_task(ApiEndpoint="http://x.invalid/")}), {})
    with pytest.raises(DefinitionError, match="ArrayFormat"):
        start_workflow(
            machine(
                {
                    "T": http_task(
                        ApiEndpoint="http://x.invalid/",
                        Method="POST",
                        Transform={
                            "RequestBodyEncoding": "URL_ENCODED",
                            "RequestEncodingOptions": {"ArrayFormat": "SQUARE"},
                        },
                    )
                }
            ),
            {},
        )


def test_bindings_are_advertised_for_processes_without_the_code(settings):
    from orchestrator.engine import activities
    from orchestrator.engine.store import get_store

    store = get_store()
    activities.advertise()  # what a worker does when it starts (worker_ready)
    assert store.advertised_bindings().get("aws-sdk:sns:publish") == "test-sns-publish"
    # A binding only the workers know (none registered here): resolved through Redis.
    store.advertise_bindings({"events:putEvents": "test-fake-http"})
    activities._advertised_bindings.forget()  # not the copy of the last 5 s
    try:
        resource = "arn:aws:states:eu-central-1:123456789012:events:putEvents"
        assert activities.resolve_name(resource) == "test-fake-http"
        definition = machine({"Put": task(resource, Parameters={"ApiEndpoint": "e"})})
        _, result = run_workflow(definition)
        assert result.status == "SUCCEEDED", result
        assert result.output == {"StatusCode": 299, "Bound": "e"}
    finally:
        store.client.hdel(store.keys.resource_bindings, "events:putEvents")
        activities._advertised_bindings.forget()


def test_timeout_seconds_ends_a_hung_request_as_for_activities(server, settings, tag):
    config.configure(settings.model_copy(update={"http_timeout_seconds": 30.0}))
    definition = machine(
        {
            "Slow": http_task(
                ApiEndpoint=f"{server.url}/slow/{tag}",
                Method="GET",
                Catch=[{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.e", "Next": "Done"}],
            ),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    definition["States"]["Slow"]["TimeoutSeconds"] = 1
    handle, result = run_workflow(definition, {}, timeout=20)
    server.release(tag)  # the hung request ends; its late answer is discarded
    assert result.status == "SUCCEEDED", result
    assert result.output["e"]["Error"] == "States.Timeout"
    assert any(e.type == "TaskTimedOut" for e in handle.history())


def test_a_redriven_http_task_calls_again(server, settings, tag):
    definition = machine(
        {"Get": http_task(ApiEndpoint=f"{server.url}/flaky/{tag}/1", Method="GET")}
    )
    handle, result = run_workflow(definition)
    assert result.status == "FAILED" and result.error == "States.Http.StatusCode.503"
    redriven = redrive_execution(handle.execution_id).result(20)
    assert redriven.status == "SUCCEEDED", redriven
    assert redriven.output["ResponseBody"] == {"attempts": 2}
    scheduled = [e for e in handle.history() if e.type == "TaskScheduled"]
    assert len(scheduled) == 2
    assert all(
        (e.details["resourceType"], e.details["resource"]) == ("http", "invoke") for e in scheduled
    )
