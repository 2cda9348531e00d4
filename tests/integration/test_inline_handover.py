"""Runs of inline states of any length, end to end: a Pass/Choice loop is handed over to
a new transition every ``max_inline_states`` states (a ``continue`` step and a timer due
at once, fired by the timer loop), with the history quota as its only bound."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from orchestrator import (
    config,
    describe_execution,
    redrive_execution,
    start_workflow,
    stop_execution,
)
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.engine.timers import fire_timers
from tests.helpers import count_events, task, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")


def looping(tasks: bool = True) -> dict[str, Any]:
    """A Task, a Pass/Choice loop counting ``$.i`` up to ``$.n`` (2 states and 4 history
    events an iteration), and a Task after it."""
    states: dict[str, Any] = {
        "Count": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.n", "i.$": "States.MathAdd($.i, 1)"},
            "Next": "More",
        },
        "More": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.n", "Next": "Count"}],
            "Default": "After" if tasks else "Done",
        },
    }
    if tasks:
        states = {"Before": task("echo", Next="Count"), **states}
        states["After"] = task("echo")
    else:
        states["Done"] = {"Type": "Succeed"}
    return {"StartAt": "Before" if tasks else "Count", "States": states}


@contextmanager
def settings(**values: Any) -> Iterator[None]:
    """The process's settings (the in-process worker's and timer loop's) changed for the
    duration; interpreters read them when they are made, for every step."""
    before = config.get_settings()
    config.configure(before.model_copy(update=values))
    try:
        yield
    finally:
        config.configure(before)


def test_a_loop_of_5000_iterations_succeeds_on_the_defaults() -> None:
    assert config.get_settings().max_inline_states == 1000
    assert config.get_settings().max_history_events == 25_000
    started = time.monotonic()
    handle = start_workflow(looping(), {"n": 5000, "i": 0})
    result = handle.result(timeout=60)
    elapsed = time.monotonic() - started
    assert result.status == "SUCCEEDED", result
    assert result.output == {"n": 5000, "i": 5000}
    history = handle.history()
    # Every state entered once, in order, across the ten hand-overs.
    assert count_events(history, "PassStateEntered", "Count") == 5000
    assert count_events(history, "ChoiceStateEntered", "More") == 5000
    assert [e.id for e in history] == list(range(1, len(history) + 1))
    assert count_events(history, "TaskSucceeded") == 2
    assert describe_execution(handle.execution_id).steps == []
    print(f"5,000 iterations ({len(history)} events) in {elapsed:.2f} s")


def test_the_history_quota_fails_a_loop_with_states_runtime() -> None:
    handle = start_workflow(looping(tasks=False), {"n": 20_000, "i": 0})
    result = handle.result(timeout=60)
    assert result.status == "FAILED", result
    assert result.error == "States.Runtime"
    assert result.cause is not None and result.cause.startswith(
        "The execution reached the quota of 25000 history events "
        "(ORCHESTRATOR_MAX_HISTORY_EVENTS) in state '"
    )
    history = handle.history()
    assert history[-1].type == "ExecutionFailed"
    assert len(history) <= 25_001


def test_a_loop_of_20000_iterations_succeeds_with_the_quota_raised() -> None:
    # About 13 s here (40 hand-overs of 1,000 states, each waiting for the next tick).
    with settings(max_history_events=100_000):
        started = time.monotonic()
        handle = start_workflow(looping(), {"n": 20_000, "i": 0})
        result = handle.result(timeout=60)
        elapsed = time.monotonic() - started
    assert result.status == "SUCCEEDED", result
    assert result.output == {"n": 20_000, "i": 20_000}
    assert count_events(handle.history(), "PassStateEntered", "Count") == 20_000
    print(f"20,000 iterations in {elapsed:.2f} s")


def test_a_parallel_branch_and_map_iterations_hand_over() -> None:
    loop = looping(tasks=False)
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    loop,
                    {
                        "StartAt": "M",
                        "States": {
                            "M": {
                                "Type": "Map",
                                "ItemsPath": "$.items",
                                "ItemProcessor": loop,
                                "End": True,
                            }
                        },
                    },
                ],
                "End": True,
            }
        },
    }
    items = [{"n": n, "i": 0} for n in (1200, 10, 700)]
    handle = start_workflow(definition, {"n": 1500, "i": 0, "items": items})
    result = handle.result(timeout=60)
    assert result.status == "SUCCEEDED", result
    assert result.output == [{"n": 1500, "i": 1500}, [{"n": n, "i": n} for n in (1200, 10, 700)]]


def continue_timers(store: RedisStore, execution_id: str) -> list[str]:
    """The execution's pending continue timers."""
    members = store.due_timers(time.time() + 1, 1000)
    return [m for m in members if m.startswith('["continue"') and execution_id in m]


def test_stop_drops_a_pending_continuation_and_redrive_enters_it() -> None:
    store = get_store()
    # Hold the timer loop's lock: the continuations wait until this test fires them.
    owner = f"test-{uuid.uuid4().hex}"
    wait_until(lambda: store.acquire_tick_lock(owner, 60_000), message="tick lock")
    try:
        dropped = start_workflow(looping(tasks=False), {"n": 1200, "i": 0})
        redriven = start_workflow(looping(tasks=False), {"n": 1200, "i": 0})
        for handle in (dropped, redriven):
            [step] = describe_execution(handle.execution_id).steps
            assert (step.state, step.status) == ("Count", "SCHEDULED")
            assert len(continue_timers(store, handle.execution_id)) == 1
            stop_execution(handle.execution_id)
        # Stop: the continuation fires nothing and goes.
        events = len(dropped.history())
        fire_timers(store, continue_timers(store, dropped.execution_id), time.time())
        assert continue_timers(store, dropped.execution_id) == []
        assert describe_execution(dropped.execution_id).status == "ABORTED"
        assert len(dropped.history()) == events
        # Redrive (its old timer still set): the state the run was handed over before is
        # entered, and the run goes on: handed over again after 1000 states.
        redrive_execution(redriven.execution_id)
        assert len(continue_timers(store, redriven.execution_id)) == 2
    finally:
        store.release_tick_lock(owner)
    result = redriven.result(timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"n": 1200, "i": 1200}
    history = redriven.history()
    assert count_events(history, "PassStateEntered", "Count") == 1200
    assert count_events(history, "ExecutionRedriven") == 1
    wait_until(lambda: continue_timers(store, redriven.execution_id) == [])
