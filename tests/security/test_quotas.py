"""Quotas with Step Functions' defaults: what one execution may write is bounded.

A state's input, output, Assign or Map/Parallel result over ``max_input_bytes`` fails
that state with ``States.DataLimitExceeded`` (caught only when named, as on AWS: the
``States.ALL`` wildcard does not match it); an execution past ``max_history_events``
fails with ``States.Runtime``. Nothing over a quota is written, and a Redis out of memory
refuses a commit whole: the step is tried again once memory is back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import OutOfMemoryError, ResponseError

from orchestrator import activity, config, start_workflow
from orchestrator.config import DEFAULT_MAX_HISTORY_EVENTS, DEFAULT_MAX_INPUT_BYTES
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.history import stored_text
from orchestrator.engine.store import RedisStore, Write, get_store, redis_client
from orchestrator.testing import LocalOrchestrator
from tests.helpers import count_events, machine, run_workflow, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

BIG = "{% $pad('', 300000, 'x') %}"


def jsonata(states: dict, **fields: Any) -> dict:
    return machine(states, QueryLanguage="JSONata", **fields)


@pytest.fixture
def limits(orchestrator: LocalOrchestrator) -> Iterator[Callable[..., None]]:
    """Set some settings for this test (the worker and timers read them at each step)."""

    def apply(**values: Any) -> None:
        config.configure(orchestrator.settings.model_copy(update=values))

    try:
        yield apply
    finally:
        config.configure(orchestrator.settings)


def history_bytes(execution_id: str) -> int:
    store = get_store()
    entries = store.client.xrange(store.keys.history(execution_id))
    return sum(len(stored_text(fields)) for _, fields in entries)


def test_step_functions_defaults():
    assert DEFAULT_MAX_INPUT_BYTES == 256 * 1024
    assert DEFAULT_MAX_HISTORY_EVENTS == 25_000


def test_an_output_over_the_quota_fails_its_state_and_is_not_written():
    handle, result = run_workflow(jsonata({"P": {"Type": "Pass", "Output": BIG, "End": True}}))
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded"
    assert "'P'" in result.cause and "262144" in result.cause
    assert history_bytes(handle.execution_id) < 10_000


@pytest.mark.parametrize(
    ("errors", "status"),
    [(["States.ALL"], "FAILED"), (["States.DataLimitExceeded"], "SUCCEEDED")],
)
def test_data_limit_exceeded_is_caught_only_by_its_name(errors, status):
    definition = jsonata(
        {
            "T": task(
                "echo",
                Arguments={"a": 1},
                Output=BIG,
                Catch=[{"ErrorEquals": errors, "Next": "Caught"}],
            ),
            "Caught": {"Type": "Succeed"},
        }
    )
    handle, result = run_workflow(definition)
    assert result.status == status, result
    assert count_events(handle.history(), "EvaluationFailed", "T") == 1


def test_task_input_and_assign_over_the_quota():
    for state in (
        task("echo", Arguments={"a": BIG}),
        {"Type": "Pass", "Assign": {"v": BIG}, "End": True},
    ):
        handle, result = run_workflow(jsonata({"S": state}))
        assert result.error == "States.DataLimitExceeded", (state, result)
        assert history_bytes(handle.execution_id) < 10_000


def test_a_map_result_over_the_quota_fails_the_map():
    definition = jsonata(
        {
            "M": {
                "Type": "Map",
                "Items": "{% [1..10] %}",
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {
                        "P": {"Type": "Pass", "Output": "{% $pad('', 30000, 'x') %}", "End": True}
                    },
                },
                "End": True,
            }
        }
    )
    _, result = run_workflow(definition)
    assert result.status == "FAILED", result
    assert result.error == "States.DataLimitExceeded"


def test_the_history_quota_stops_a_wait_loop(limits):
    limits(max_history_events=60)
    definition = machine(
        {
            "W": {"Type": "Wait", "Seconds": 0, "Next": "P"},
            "P": {"Type": "Pass", "Next": "W"},
        }
    )
    handle, result = run_workflow(definition, timeout=60)
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert "60 history events" in result.cause
    assert 55 <= len(handle.history()) <= 61


def test_a_transition_past_the_history_quota_is_refused_whole(limits):
    limits(max_history_events=100)
    states = {
        "W": {"Type": "Wait", "Seconds": 0, "Next": "M"},
        "M": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "ResultPath": None,
            "Next": "W",
        },
    }
    handle, result = run_workflow(machine(states), {"items": list(range(40))}, timeout=60)
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    # The Map's start (40 items, ~160 events) did not fit: not one of its events is there.
    assert len(handle.history()) <= 101
    assert count_events(handle.history(), "MapStateStarted") == 0


# -- Redis out of memory ------------------------------------------------------------------


@pytest.fixture
def full_redis() -> Iterator[tuple[EmbeddedRedis, RedisStore, Callable[[], None]]]:
    """A private redis-server (noeviction) and a way to fill it to its maxmemory."""
    server = EmbeddedRedis().start()
    store = RedisStore(redis_client(server.url), "oom")
    client = store.client

    def fill() -> None:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + 4 * 1024 * 1024)
        # Big values first, then small ones: a refused big value's own request buffer
        # is freed after it, which would leave room for small commands again.
        for size in (256 * 1024, 1024, 64):
            chunk = "x" * size
            for i in range(20_000):
                try:
                    client.set(f"fill:{size}:{i}", chunk)
                except OutOfMemoryError:
                    break
            else:
                raise AssertionError("redis never ran out of memory")

    try:
        yield server, store, fill
    finally:
        store.close()
        server.stop()


def test_a_commit_refused_by_oom_writes_nothing_and_one_that_starts_applies_whole(full_redis):
    _, store, fill = full_redis
    client = store.client
    client.zadd("oom:timers", {"t1": 1.0})
    client.hset("oom:x", "status", "RUNNING")
    fill()

    def transition(first_zrem: bool) -> Write:
        write = Write().guard_field("oom:x", "status", "RUNNING")
        if first_zrem:  # a timer's transition: removing it is its first write
            write.op("zrem", "oom:timers", "t1")
        write.op("history", "oom:h", "e1", "e2")
        write.op("hset", "oom:s", "step", "record", "step|s", "SCHEDULED")
        return write

    with pytest.raises(ResponseError, match="OOM"):
        store.apply(transition(first_zrem=False))
    assert not client.exists("oom:h") and not client.exists("oom:s")
    # A first write that frees memory lets the rest through: still all or nothing.
    assert store.apply(transition(first_zrem=True)).ok
    assert client.xlen("oom:h") == 2 and client.hget("oom:s", "step|s") == "SCHEDULED"
    assert client.zscore("oom:timers", "t1") is None


_gate = threading.Event()
_runs: list[int] = []


@activity("quota_gated")
def quota_gated(value: Any) -> Any:
    """Runs until the test opens the gate (touches no Redis itself)."""
    _runs.append(1)
    _gate.wait(30)
    return {"ok": True}


def test_a_step_whose_commit_hit_oom_runs_again_once_memory_is_back(
    orchestrator, full_redis, task_log
):
    server, _, fill = full_redis
    _gate.clear()
    _runs.clear()
    settings = orchestrator.settings.model_copy(
        update={"redis_url": server.url, "key_prefix": "oomrun", "lease_seconds": 2.0}
    )
    config.configure(settings)
    try:
        store = get_store()
        handle = start_workflow(machine({"T": task("quota_gated")}))
        wait_until(lambda: _runs, message="the step started")
        fill()
        _gate.set()
        wait_until(lambda: task_log.step_messages(handle.execution_id, "T") >= 1, 20)
        # The commit was refused whole: nothing of it is there, and the step still runs.
        assert store.client.hget(store.keys.execution(handle.execution_id), "status") == "RUNNING"
        assert count_events(handle.history(), "TaskSucceeded") == 0
        status = store.client.hget(store.keys.steps(handle.execution_id), "T|s")
        assert status is not None and status.startswith("RUNNING")
        store.client.config_set("maxmemory", 0)
        result = handle.result(30)
        assert result.status == "SUCCEEDED", result
        assert len(_runs) >= 2  # its lease lapsed, and it was dispatched again
    finally:
        _gate.set()
        config.configure(orchestrator.settings)
