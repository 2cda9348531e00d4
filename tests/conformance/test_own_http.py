"""The project's own conformance cases for the HTTP Task (``tests/conformance/own/http``).

Realistic definitions as they would be written for Step Functions, run unchanged but for
one thing: their API's base URL, ``https://api.example.test``, points at a local stand-in
(``tests/http_server.py``), and their connections (``orders-api``: an API key;
``payments-oauth``: OAuth client credentials) are defined in a connections file the test
writes. Each case's ``expected.json`` is what the case must give on AWS against the same
API (the form of the result and the error names are AWS's); compared as the recorded
corpus is (``orchestrator.conformance.compare``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import config, conformance
from tests.http_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORDERS_API_KEY,
    LocalHttpServer,
    local_http_server,
)

OWN = Path(__file__).parent / "own"
CASES = conformance.load_cases(OWN, "http")
#: The API host the definitions name.
API = "https://api.example.test"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttpServer]:
    with local_http_server() as running:
        yield running


@pytest.fixture
def connections(
    orchestrator, server: LocalHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("ORDERS_API_KEY", ORDERS_API_KEY)
    path = tmp_path / "connections.yaml"
    path.write_text(
        "orders-api:\n"
        "  api_key: {name: X-Api-Key, value_env: ORDERS_API_KEY}\n"
        "payments-oauth:\n"
        "  oauth:\n"
        f"    token_url: {server.url}/token\n"
        f"    client_id: {CLIENT_ID}\n"
        f"    client_secret: {CLIENT_SECRET}\n"
    )
    before = config.get_settings()
    config.configure(before.model_copy(update={"connections_file": str(path)}))
    try:
        yield
    finally:
        config.configure(before)


def test_the_own_corpus_is_there() -> None:
    assert len(CASES) >= 3, [case.id for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: conformance.Case, server: LocalHttpServer, connections: None) -> None:
    text = json.dumps(case.definition)
    assert API in text, "the case names no API to point at the stand-in"
    local = dataclasses.replace(case, definition=json.loads(text.replace(API, server.url)))
    outcome = conformance.run_case(local, timeout=30)
    assert outcome.passed, (outcome.detail, outcome.actual)
