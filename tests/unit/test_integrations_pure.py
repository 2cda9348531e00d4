"""Integration names, Resource keys, the HTTP Task's encodings and connections: no Redis."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlencode

import pytest

from orchestrator import config
from orchestrator.engine import activities, integrations
from orchestrator.engine.integrations import connections, http
from orchestrator.errors import StatesError
from orchestrator.language.resources import integration_name, resource_fields


@pytest.mark.parametrize(
    ("resource", "name"),
    [
        ("arn:aws:states:::http:invoke", "http:invoke"),
        ("arn:aws:states:us-east-1:123456789012:http:invoke", "http:invoke"),
        ("arn:aws-cn:states:cn-north-1:123456789012:sns:publish", "sns:publish"),
        ("arn:aws:states:::sqs:sendMessage.waitForTaskToken", "sqs:sendMessage.waitForTaskToken"),
        ("arn:aws:states:::aws-sdk:s3:getObject", "aws-sdk:s3:getObject"),
        ("arn:aws:states:::states:startExecution.sync:2", "states:startExecution.sync:2"),
        ("arn:aws:states:us-east-1:123456789012:activity:approve", None),
        ("arn:aws:states:us-east-1:123456789012:stateMachine:orders", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:echo", None),
        ("echo", None),
    ],
)
def test_integration_names(resource, name):
    assert integration_name(resource) == name


def test_resource_fields_are_as_step_functions_writes_them():
    assert resource_fields("arn:aws:states:::http:invoke") == {
        "resourceType": "http",
        "resource": "invoke",
    }
    assert resource_fields("arn:aws:states:::aws-sdk:s3:getObject") == {
        "resourceType": "aws-sdk",
        "resource": "s3:getObject",
    }
    assert resource_fields("echo") == {}


def test_resource_keys_ignore_region_account_and_the_callback_suffix():
    key = activities.resource_key
    assert key("arn:aws:states:eu-west-1:1:sns:publish") == "sns:publish"
    assert key("arn:aws:states:::sns:publish.waitForTaskToken") == "sns:publish"
    assert key("arn:aws:states:::glue:startJobRun.sync") == "glue:startJobRun.sync"
    assert key("urn:billing:charge") == "urn:billing:charge"


def test_the_registry_serves_http_and_never_states():
    http_builtin = integrations.for_resource("arn:aws:states:us-west-2:1:http:invoke")
    assert http_builtin is not None and http_builtin.name == "http:invoke"
    assert integrations.by_task_name(http_builtin.task_name) is http_builtin
    assert integrations.for_resource("arn:aws:states:::states:startExecution") is None
    assert integrations.for_resource("arn:aws:states:::http:invoke.waitForTaskToken") is None
    with pytest.raises(ValueError):
        integrations.integration("states:startExecution")


def test_unsupported_message_names_the_integration_and_both_bindings():
    message = integrations.unsupported("arn:aws:states:::dynamodb:putItem")
    assert "the dynamodb:putItem integration" in message and "not supported" in message
    assert "@activity(\"my-putItem\", resources=['arn:aws:states:::dynamodb:putItem'])" in message
    assert '{"arn:aws:states:::dynamodb:putItem": "my-activity"}' in message


BODY = {"a": 1, "tags": ["x", "y"], "o": {"k": True, "n": None}, "s": "é &"}


@pytest.mark.parametrize(
    ("array_format", "expected"),
    [
        ("INDICES", "a=1&tags[0]=x&tags[1]=y&o[k]=true&o[n]=&s=é &"),
        ("BRACKETS", "a=1&tags[]=x&tags[]=y&o[k]=true&o[n]=&s=é &"),
        ("REPEAT", "a=1&tags=x&tags=y&o[k]=true&o[n]=&s=é &"),
        ("COMMAS", "a=1&tags=x,y&o[k]=true&o[n]=&s=é &"),
    ],
)
def test_form_encodings(array_format, expected):
    pairs = list(http._pairs(BODY, array_format))
    # Each pair is percent-encoded on the wire; decoded pair by pair it reads as above.
    decoded = "&".join(f"{unquote(k)}={unquote(v)}" for k, v in pairs)
    assert decoded == expected
    assert "%26" in urlencode(pairs)  # the "&" inside a value is escaped


def test_static_parameters_are_checked():
    check = http.check_parameters
    assert check({"ApiEndpoint": "https://x", "Method": "GET"}) is None
    assert check({"ApiEndpoint.$": "$.url", "Method.$": "$.m"}) is None
    assert "needs Method" in (check({"ApiEndpoint": "https://x"}) or "")
    assert "Method 'FETCH'" in (check({"ApiEndpoint": "https://x", "Method": "FETCH"}) or "")
    assert "does not take Body" in (check({"ApiEndpoint": "u", "Method": "GET", "Body": 1}) or "")
    bad = {"RequestBodyEncoding": "BASE64"}
    assert "RequestBodyEncoding" in (
        check({"ApiEndpoint": "u", "Method": "POST", "Transform": bad}) or ""
    )


@pytest.fixture
def connections_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "connections.yaml"
    path.write_text(
        "Stripe:\n"
        "  api_key: {name: Authorization, value_env: TEST_STRIPE}\n"
        "arn:aws:events:us-east-1:1:connection/full/abc:\n"
        "  basic: {username: u, password: p}\n"
        "broken:\n"
        "  bearer: {token: t}\n"
        "noenv:\n"
        "  api_key: {name: X, value_env: TEST_UNSET_VARIABLE}\n"
    )
    monkeypatch.setenv("TEST_STRIPE", "Bearer sk_test")
    monkeypatch.delenv("TEST_UNSET_VARIABLE", raising=False)
    with config.using_settings(config.Settings(connections_file=str(path))):
        yield path


def test_connections_by_arn_name_and_environment(connections_file):
    stripe = connections.get_connection(
        "arn:aws:events:us-east-2:123456789012:connection/Stripe/81210c42-8af1"
    )
    headers: dict[str, str] = {}
    connections.authorize(stripe, headers)
    assert headers == {"Authorization": "Bearer sk_test"}
    assert "sk_test" not in repr(stripe)  # secrets stay out of reprs (and so of logs)
    full = connections.get_connection("arn:aws:events:us-east-1:1:connection/full/abc")
    headers = {}
    connections.authorize(full, headers)
    assert headers == {"Authorization": "Basic dTpw"}


@pytest.mark.parametrize(
    ("arn", "says"),
    [
        ("nothing-like-it", "no connection 'nothing-like-it'"),
        ("broken", "expected one of api_key, basic, oauth"),
        ("noenv", "environment variable 'TEST_UNSET_VARIABLE' (value) is not set"),
    ],
)
def test_connection_problems_are_named_errors(connections_file, arn, says):
    with pytest.raises(StatesError) as raised:
        connections.get_connection(arn)
    assert raised.value.error == "States.Http.Connection"
    assert says in raised.value.cause


def test_no_connections_file_says_which_setting(tmp_path):
    with config.using_settings(config.Settings()):
        with pytest.raises(StatesError, match="ORCHESTRATOR_CONNECTIONS_FILE"):
            connections.get_connection("x")


def test_json_connections_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"k": {"api_key": {"name": "X-Key", "value": "v"}}}))
    with config.using_settings(config.Settings(connections_file=str(path))):
        assert connections.get_connection("k").settings == {"name": "X-Key", "value": "v"}


def test_the_cli_shows_an_integrations_scheduled_event_as_service_and_action():
    from datetime import UTC, datetime

    from orchestrator import cli
    from orchestrator.client.models import HistoryEvent

    scheduled = HistoryEvent(
        id=1,
        type="TaskScheduled",
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        state="Call",
        details={"resourceType": "http", "resource": "invoke", "parameters": {"Method": "GET"}},
    )
    assert cli.event_details(scheduled, 80) == 'http:invoke {"Method": "GET"}'
