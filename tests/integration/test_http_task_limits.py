"""The HTTP Task's payload limits (issue 14): a response is streamed and given up on at
ORCHESTRATOR_MAX_INPUT_BYTES, a request body over it is never sent; against a local HTTP
server, through a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import config
from tests.helpers import machine, run_workflow, task
from tests.http_server import LocalHttpServer, local_http_server

pytestmark = pytest.mark.usefixtures("orchestrator")

HTTP = "arn:aws:states:::http:invoke"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttpServer]:
    with local_http_server() as running:
        yield running


@pytest.fixture
def limit() -> Iterator[int]:
    """The payload limit in force (the session's, 256 KiB), and a short HTTP timeout: a
    body read past the limit would end in a timeout, not in the limit's error."""
    before = config.get_settings()
    config.configure(before.model_copy(update={"http_timeout_seconds": 5.0}))
    try:
        yield before.max_input_bytes
    finally:
        config.configure(before)


def call(url: str, **params: Any) -> dict[str, Any]:
    return machine({"Call": task(HTTP, Parameters={"ApiEndpoint": url, **params})})


def test_a_response_within_the_limit_is_read_whole(server, limit):
    size = limit // 2
    _, result = run_workflow(call(f"{server.url}/big/{size}", Method="GET"))
    assert result.status == "SUCCEEDED", result
    assert result.output["ResponseBody"] == "x" * size
    assert result.output["Headers"]["content-length"] == [str(size)]


def test_a_declared_length_over_the_limit_fails_at_once(server, limit):
    _, result = run_workflow(call(f"{server.url}/big/{limit + 1}", Method="GET"))
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded"
    assert f"the response body of {limit + 1} bytes is over the payload limit" in result.cause


def test_an_endless_body_is_not_read_past_the_limit(server, limit):
    _, result = run_workflow(call(f"{server.url}/endless/e1", Method="GET"))
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded", result
    assert f"more than {limit} bytes" in result.cause
    # The server wrote the limit and what the sockets' buffers took, not its 64 MiB.
    assert server.sent["e1"] < 16 * 1024 * 1024


def test_a_compressed_body_counts_as_decoded(server, limit):
    _, result = run_workflow(call(f"{server.url}/gzip/{2 * limit}", Method="GET"))
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded", result
    _, small = run_workflow(call(f"{server.url}/gzip/1000", Method="GET"))
    assert small.status == "SUCCEEDED", small
    assert small.output["ResponseBody"] == "z" * 1000


def test_a_request_body_over_the_limit_is_not_sent(server, limit):
    # Within the state's input limit as JSON, over it once URL-encoded (é -> %C3%A9).
    text = "é" * (limit // 5)
    definition = call(
        f"{server.url}/echo/form-too-big",
        Method="POST",
        RequestBody={"note": text},
        Transform={"RequestBodyEncoding": "URL_ENCODED"},
    )
    _, result = run_workflow(definition)
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded", result
    assert "the request body of" in result.cause
    assert server.received("/echo/form-too-big") == []
