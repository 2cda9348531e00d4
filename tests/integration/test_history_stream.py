"""The history as a Redis stream: pages after an event id, and a result() that blocks
on the history for the end event instead of polling the status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import ExecutionStatus, get_execution_history, start_workflow
from orchestrator.client.api import ExecutionHandle
from orchestrator.config import get_settings
from orchestrator.engine.store import RedisStore, redis_client
from tests.helpers import event_types, machine, run_workflow, task

pytestmark = pytest.mark.usefixtures("orchestrator")


@pytest.fixture
def counted_store() -> Iterator[tuple[RedisStore, list[str]]]:
    """A store of its own (the workers' calls do not count) that records each round trip."""
    settings = get_settings()
    assert settings.redis_url
    store = RedisStore(redis_client(settings.redis_url), settings.key_prefix, settings.partitions)
    calls: list[str] = []
    execute_command = store.client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return execute_command(*args, **kwargs)

    store.client.execute_command = counting  # type: ignore[method-assign]
    pipeline = store.client.pipeline

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a: Any, **k: Any) -> Any:
            # One round trip, named by its commands ("pipeline HGET XREAD").
            calls.append(" ".join(["pipeline", *(str(c[0][0]) for c in pipe.command_stack)]))
            return execute(*a, **k)

        pipe.execute = counted_execute  # type: ignore[method-assign]
        return pipe

    store.client.pipeline = counted_pipeline  # type: ignore[method-assign]
    try:
        yield store, calls
    finally:
        store.close()


def test_history_after_an_id_returns_only_later_events():
    handle, result = run_workflow(
        machine({"A": task("echo", Next="B"), "B": task("echo")}), {"x": 1}
    )
    assert result.status == ExecutionStatus.SUCCEEDED
    everything = handle.history()
    assert [e.id for e in everything] == list(range(1, len(everything) + 1))
    later = handle.history(after=3)
    assert [e.id for e in later] == list(range(4, len(everything) + 1))
    assert event_types(later) == event_types(everything)[3:]
    page = get_execution_history(handle.execution_id, after=2, limit=2)
    assert [e.id for e in page] == [3, 4]
    assert handle.history(after=len(everything)) == []
    assert [e.id for e in handle.wait_events(len(everything) - 1, 5.0)] == [len(everything)]


def test_result_blocks_on_the_history_instead_of_polling(counted_store):
    store, calls = counted_store
    definition = machine({"Nap": {"Type": "Wait", "Seconds": 2, "End": True}})
    execution_id = start_workflow(definition, {}).execution_id
    handle = ExecutionHandle(execution_id, store=store)
    started = time.monotonic()
    result = handle.result(timeout=60)
    returned = time.time()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 1.0  # it did wait for the Wait state
    # Polling (5 ms doubling to 200 ms) made ~15 calls in these 2 s; blocking reads of
    # at most a second each, a status check after each quiet one, and the final describe
    # make a handful.
    assert len(calls) <= 10, calls
    assert any("XREAD" in call.split() for call in calls), calls
    # Prompt: it returned as soon as the end was committed, not a polling period later.
    stop = handle.describe().stop_time
    assert stop is not None and returned - stop.timestamp() < 1.0


def test_result_timeout_still_raises_and_wait_events_waits_at_most_its_timeout(counted_store):
    store, _ = counted_store
    definition = machine({"Nap": {"Type": "Wait", "Seconds": 30, "End": True}})
    handle = ExecutionHandle(start_workflow(definition, {}).execution_id, store=store)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    seen = len(handle.history())
    assert handle.wait_events(seen, 0.2) == []
