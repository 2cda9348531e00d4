"""ORCHESTRATOR_API_KEYS against real clients: boto3 and the AWS CLI sign their requests
(SigV4) to the UI served by uvicorn on 127.0.0.1 with API keys and a UI token set."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.errors import ConfigurationError
from orchestrator.testing import LocalOrchestrator
from orchestrator.ui import app as ui_app
from tests.ui.conftest import serving

KEY_ID = "AKIDORCHESTRATOR01"
SECRET = "k9/Sig+V4secret:local"
UI_TOKEN = "ui-token-that-the-api-ignores"
ROLE = "arn:aws:iam::123456789012:role/sfn"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


@pytest.fixture(scope="module")
def signed_server(orchestrator: LocalOrchestrator) -> Iterator[str]:
    """The UI with a token and one API key; yields its base URL."""
    app = ui_app.create_app(token=UI_TOKEN, api_keys={KEY_ID: SECRET, "OTHERKEY": "other"})
    with serving(app) as url:
        yield url


def client(url: str, key: str = KEY_ID, secret: str = SECRET, **config: Any) -> Any:
    """A boto3 Step Functions client of ``url`` (no retries: an error is seen once)."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="eu-west-3",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}, **config),
    )


def refusal(call: Any) -> tuple[str, int]:
    """The error code and HTTP status of a call botocore raised for."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return str(response["Error"]["Code"]), int(response["ResponseMetadata"]["HTTPStatusCode"])


def test_a_configured_key_works(signed_server: str) -> None:
    sfn = client(signed_server)
    name = f"signed-{uuid.uuid4().hex[:10]}"
    arn = sfn.create_state_machine(name=name, definition=json.dumps(PASS), roleArn=ROLE)[
        "stateMachineArn"
    ]
    listed = sfn.list_state_machines(maxResults=1000)["stateMachines"]
    assert arn in [machine["stateMachineArn"] for machine in listed]
    reply = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"a": 1}))
    assert f":execution:{name}:" in reply["executionArn"]
    assert (
        client(signed_server, "OTHERKEY", "other").describe_state_machine(stateMachineArn=arn)[
            "name"
        ]
        == name
    )


def test_start_sync_execution_signed_without_the_host_prefix(signed_server: str) -> None:
    sfn = client(signed_server)
    name = f"sync-{uuid.uuid4().hex[:10]}"
    arn = sfn.create_state_machine(
        name=name, definition=json.dumps(PASS), roleArn=ROLE, type="EXPRESS"
    )["stateMachineArn"]
    reply = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"n": 2}))
    assert (reply["status"], json.loads(reply["output"])) == ("SUCCEEDED", {"n": 2})


def test_a_wrong_secret_is_an_invalid_signature(signed_server: str) -> None:
    sfn = client(signed_server, secret="not-the-secret")
    assert refusal(sfn.list_state_machines) == ("InvalidSignatureException", 400)


def test_an_unknown_key_is_unrecognized(signed_server: str) -> None:
    sfn = client(signed_server, key="AKIDNOTCONFIGURED")
    assert refusal(sfn.list_state_machines) == ("UnrecognizedClientException", 400)


def test_an_unsigned_request_is_missing_its_token(signed_server: str) -> None:
    sfn = client(signed_server, signature_version=UNSIGNED)
    assert refusal(sfn.list_state_machines) == ("MissingAuthenticationTokenException", 403)


def test_the_ui_token_does_not_open_the_api(signed_server: str) -> None:
    answer = httpx.post(
        signed_server + "/",
        headers={
            "Authorization": f"Bearer {UI_TOKEN}",
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
            "Content-Type": "application/x-amz-json-1.0",
        },
        content=b"{}",
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "IncompleteSignatureException"
    # ...nor does a signature open the UI's own API, which still wants the token.
    assert httpx.get(signed_server + "/api/executions").status_code == 401
    assert (
        httpx.get(
            signed_server + "/api/executions", headers={"Authorization": f"Bearer {UI_TOKEN}"}
        ).status_code
        == 200
    )


def test_a_body_changed_after_signing_is_refused(signed_server: str) -> None:
    sfn = client(signed_server)

    def tamper(request: Any, **_: Any) -> None:
        request.body = b'{"maxResults": 2}'  # after the signature covered another body

    sfn.meta.events.register_last("before-send.sfn.ListStateMachines", tamper)
    assert refusal(lambda: sfn.list_state_machines(maxResults=1)) == (
        "InvalidSignatureException",
        400,
    )


def aws(
    url: str, key: str, secret: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``aws stepfunctions ARGS`` against ``url`` with credentials from the environment."""
    executable = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert executable, "the AWS CLI (awscli, a dev dependency) is not installed"
    return subprocess.run(
        [executable, "stepfunctions", "--endpoint-url", url, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": "1",
            **env,
        },
    )


def test_the_aws_cli_signs_with_the_environment_s_key(signed_server: str) -> None:
    done = aws(signed_server, KEY_ID, SECRET, "list-state-machines")
    assert done.returncode == 0, done.stderr
    assert "stateMachines" in json.loads(done.stdout)
    wrong = aws(signed_server, KEY_ID, "wrong", "list-state-machines")
    assert wrong.returncode != 0 and "(InvalidSignatureException)" in wrong.stderr
    unknown = aws(signed_server, "AKIDUNKNOWN", SECRET, "list-state-machines")
    assert unknown.returncode != 0 and "(UnrecognizedClientException)" in unknown.stderr


def test_the_aws_cli_reaches_start_sync_execution_without_the_host_prefix(
    signed_server: str,
) -> None:
    sfn = client(signed_server)
    arn = sfn.create_state_machine(
        name=f"cli-sync-{uuid.uuid4().hex[:10]}",
        definition=json.dumps(PASS),
        roleArn=ROLE,
        type="EXPRESS",
    )["stateMachineArn"]
    args = ("start-sync-execution", "--state-machine-arn", arn, "--input", '{"x": 1}')
    # botocore sends StartSyncExecution to sync-127.0.0.1, which resolves nowhere...
    prefixed = aws(signed_server, KEY_ID, SECRET, *args)
    assert prefixed.returncode != 0 and "sync-127.0.0.1" in prefixed.stderr
    # ...unless host prefix injection is off (or disable_host_prefix_injection = true).
    done = aws(signed_server, KEY_ID, SECRET, *args, AWS_DISABLE_HOST_PREFIX_INJECTION="true")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCEEDED"


def test_start_up_says_when_the_api_is_open(
    orchestrator: LocalOrchestrator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(ui_app.uvicorn.Server, "run", lambda server: served.append(server))
    monkeypatch.setattr(ui_app, "configured_api_keys", lambda: {})
    with caplog.at_level(logging.WARNING, logger="orchestrator.ui.app"):
        ui_app.serve("127.0.0.1", 0, token="")
    assert served and "the Step Functions API (POST /) is open" in caplog.text
    assert "ORCHESTRATOR_API_KEYS" in caplog.text
    caplog.clear()
    monkeypatch.setattr(ui_app, "configured_api_keys", lambda: {KEY_ID: SECRET})
    with caplog.at_level(logging.WARNING, logger="orchestrator.ui.app"):
        ui_app.serve("127.0.0.1", 0, token="")
    assert len(served) == 2 and "Step Functions API" not in caplog.text
    assert SECRET not in caplog.text


def test_keys_without_botocore_refuse_to_start(
    orchestrator: LocalOrchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.auth", None)  # import botocore.auth fails
    with pytest.raises(ConfigurationError, match=r"pip install 'orchestrator\[aws\]'"):
        ui_app.create_app(token="", api_keys={KEY_ID: SECRET})
    ui_app.create_app(token="", api_keys={})  # no keys: botocore is not needed


def test_a_ui_token_without_api_keys_closes_the_api(orchestrator: LocalOrchestrator) -> None:
    # `orchestrator ui --host 0.0.0.0` with a token and no keys: the UI is guarded, so
    # the API is not left open beside it.
    with serving(ui_app.create_app(token=UI_TOKEN, api_keys={})) as url:
        with pytest.raises(ClientError) as caught:
            client(url).list_state_machines()
        error = caught.value.response
        assert error["Error"]["Code"] == "MissingAuthenticationTokenException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "ORCHESTRATOR_API_KEYS" in error["Error"]["Message"]
        assert httpx.get(url + "/api/executions").status_code == 401
    assert "refuses every call" in (ui_app.api_notice("0.0.0.0", {}, UI_TOKEN) or "")
