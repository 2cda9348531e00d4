"""The explicit client, ``orchestrator.Orchestrator``: its own settings, store and Celery app.

These tests leave the process-wide settings, store and app alone (the clients own theirs),
so they need nothing of ``tests/conftest.py``'s repair fixture; they use the session's
Redis and broker, and its worker for the steps.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from orchestrator import (
    ExecutionNotFound,
    ExecutionStatus,
    Orchestrator,
    describe_execution,
    list_executions,
)
from orchestrator.config import get_settings
from orchestrator.engine.celery_app import publishing_app
from orchestrator.engine.store import get_store
from orchestrator.errors import ConfigurationError
from orchestrator.testing import LocalOrchestrator
from tests.helpers import machine, task

pytestmark = pytest.mark.usefixtures("orchestrator")

PASS = machine({"Hello": {"Type": "Pass", "Parameters": {"said.$": "$.say"}, "End": True}})
WAIT = machine({"Nap": {"Type": "Wait", "Seconds": 3600, "End": True}})
FAIL = machine({"Boom": {"Type": "Fail", "Error": "Client.Boom", "Cause": "on purpose"}})
ENVIRONMENT = ("REDIS_URL", "ORCHESTRATOR_REDIS_URL", "BROKER_URL", "ORCHESTRATOR_BROKER_URL")


@pytest.fixture
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Redis or broker URL in the environment: only what a client is given."""
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def client_for(orchestrator: LocalOrchestrator, no_environment: None) -> Iterator[object]:
    """Make clients of the session's Redis and broker under a key prefix of their own;
    their keys are deleted and their connections closed afterwards."""
    made: list[Orchestrator] = []
    session = orchestrator.settings

    def make(prefix: str | None = None) -> Orchestrator:
        client = Orchestrator(
            session.redis_url,
            session.effective_broker_url,
            key_prefix=prefix or session.key_prefix,
            queue=session.queue,  # the session's worker runs (and logs) what they send
        )
        made.append(client)
        return client

    yield make
    for client in made:
        if client.settings.key_prefix != session.key_prefix:
            client.store.delete_prefix(client.settings.key_prefix)
        client.close()


def test_clients_with_their_own_key_prefixes_do_not_see_each_others_executions(
    orchestrator: LocalOrchestrator, client_for
):
    run = uuid.uuid4().hex[:8]
    a = client_for(f"{orchestrator.settings.key_prefix}-a-{run}")
    b = client_for(f"{orchestrator.settings.key_prefix}-b-{run}")
    name = f"shared-{run}"
    # The same name in both: two executions, not an ExecutionAlreadyExists.
    handle_a = a.start_workflow(PASS, {"say": "a"}, name=name)
    handle_b = b.start_workflow(PASS, {"say": "b"}, name=name)
    assert handle_a.store is a.store and handle_b.store is b.store
    assert handle_a.result(10).output == {"said": "a"}
    assert handle_b.result(10).output == {"said": "b"}
    assert a.describe_execution(name).input == {"say": "a"}
    assert b.describe_execution(name).input == {"say": "b"}
    assert [event.type for event in a.get_execution_history(name)][0] == "ExecutionStarted"
    assert a.get_execution_definition(name)["StartAt"] == "Hello"
    assert [e.execution_id for e in a.list_executions()] == [name]
    assert [e.execution_id for e in b.list_executions()] == [name]
    # Nor does the process-wide API (the session's prefix) see them.
    with pytest.raises(ExecutionNotFound):
        describe_execution(name)
    assert name not in [e.execution_id for e in list_executions(limit=1000)]

    waiting = a.start_workflow(WAIT, name=f"nap-{run}")
    with pytest.raises(ExecutionNotFound):
        b.stop_execution(waiting.execution_id)
    a.stop_execution(waiting.execution_id, error="Client.Stop", cause="test")
    assert a.describe_execution(waiting.execution_id).status is ExecutionStatus.ABORTED
    redriven = a.redrive_execution(waiting.execution_id)
    assert redriven.store is a.store
    assert redriven.describe().status is ExecutionStatus.RUNNING
    a.stop_execution(waiting.execution_id)

    failed = a.start_workflow(FAIL, name=f"boom-{run}")
    assert failed.result(10).status is ExecutionStatus.FAILED
    assert [letter.id for letter in a.list_dead_letters()] == [failed.execution_id]
    assert a.get_dead_letter(failed.execution_id).error == "Client.Boom"
    assert b.list_dead_letters() == []
    with pytest.raises(LookupError):
        b.get_dead_letter(failed.execution_id)


def test_a_client_given_a_redis_url_needs_none_in_the_environment(
    orchestrator: LocalOrchestrator, client_for, unique_name
):
    client = client_for()  # the session's prefix and queue: its worker runs the steps
    assert client.store is not get_store()
    # A chain of two Tasks and a Parallel: both ways of publishing, via the client's app.
    definition = machine(
        {
            "First": task("echo", Next="Both"),
            "Both": {
                "Type": "Parallel",
                "Branches": [machine({"L": task("echo")}), machine({"R": task("echo")})],
                "Next": "Last",
            },
            "Last": task("echo"),
        }
    )
    assert client.validate_definition(definition).start_at == "First"
    handle = client.start_workflow(definition, {"v": 1}, name=unique_name)
    result = handle.result(20)
    assert result.status is ExecutionStatus.SUCCEEDED, result
    assert result.output == [{"v": 1}, {"v": 1}]
    # The same execution, seen through the process-wide API (same Redis and prefix).
    assert describe_execution(unique_name).status is ExecutionStatus.SUCCEEDED


def test_a_client_binds_its_settings_only_in_the_calling_context(
    orchestrator: LocalOrchestrator, client_for
):
    client = client_for(f"{orchestrator.settings.key_prefix}-c-{uuid.uuid4().hex[:8]}")
    seen_elsewhere: list[object] = []
    with client.bound():
        assert get_settings() is client.settings
        assert get_store() is client.store
        assert publishing_app() is client.app
        other = threading.Thread(target=lambda: seen_elsewhere.append(get_settings()))
        other.start()
        other.join()
    assert seen_elsewhere == [orchestrator.settings]
    assert get_settings() is orchestrator.settings
    # Earlier tests may have replaced the session's cached store (reset_stores): what
    # matters is that the unbound one is the session's, not the client's.
    assert get_store() is not client.store
    assert get_store().keys.prefix == orchestrator.settings.key_prefix
    assert publishing_app() is not client.app


def test_a_client_without_a_redis_url_says_so(no_environment):
    with pytest.raises(ConfigurationError, match="redis_url"):
        Orchestrator()
