"""Global activity limits on the session's Redis and worker (issue 13 item 4):
``max_concurrency`` permits counted in Redis, steps over the limit waiting there (not in
a worker), permits of steps that ended unreleased taken back by the timer process; the
token bucket's Lua arithmetic is :func:`limits.bucket_take`'s."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from orchestrator import start_workflow
from orchestrator.engine import limits
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import get_store
from orchestrator.testing import LocalOrchestrator
from tests import limit_activities  # registered before the session's worker starts
from tests.helpers import machine, task, wait_until

LIMITED = limit_activities.LIMITED


def parallel(resource: str, branches: int, sleep: float) -> dict[str, Any]:
    return machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    machine({f"B{i}": task(resource, Parameters={"sleep": sleep})})
                    for i in range(branches)
                ],
                "End": True,
            }
        }
    )


def test_max_concurrency_holds_steps_in_redis_and_hands_permits_on(
    orchestrator: LocalOrchestrator,
) -> None:
    store = get_store()
    handle = start_workflow(parallel(LIMITED, 8, 0.3), {})
    waiting = store.keys.activity_waiting(LIMITED)
    # Over the limit, the steps wait in Redis: never more than 2 published or running.
    wait_until(lambda: store.client.zcard(waiting) > 0, 10, message="steps waiting")
    assert store.client.zcard(store.keys.activity_permits(LIMITED)) <= 2
    result = handle.result(timeout=30)
    assert result.status == "SUCCEEDED", result
    spans = result.output
    assert len(spans) == 8
    assert limit_activities.max_overlap(spans) <= 2
    wait_until(
        lambda: store.permits_in_use([LIMITED]) == [0], 10, message="every permit given back"
    )
    assert store.client.zcard(waiting) == 0


def test_a_step_looping_back_to_its_state_keeps_counting(
    orchestrator: LocalOrchestrator, tag: str
) -> None:
    """A limited Task whose next run is the same step (a loop back to its state) takes
    the permit on with it: the step's end does not release what its next run holds."""
    store = get_store()
    loop = machine(
        {
            "L": task(LIMITED, Parameters={"sleep": 0.1, "tag": tag}, ResultPath=None, Next="Inc"),
            "Inc": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "L"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    handles = [start_workflow(loop, {"n": 0}) for _ in range(4)]
    for handle in handles:
        result = handle.result(timeout=30)
        assert result.status == "SUCCEEDED", result
    spans = limit_activities.RECORDED.pop(tag)
    assert len(spans) == 12
    assert limit_activities.max_overlap(spans) == 2
    wait_until(
        lambda: store.permits_in_use([LIMITED]) == [0], 10, message="every permit given back"
    )


def test_a_permit_whose_step_ended_unreleased_comes_back(
    orchestrator: LocalOrchestrator,
) -> None:
    """A worker killed between a step's commit and its release: the permit's step is in
    neither the leases nor the outbox; the timer process takes it back once it lapsed and
    hands it to the waiting step, which runs."""
    store = get_store()
    name = f"ghost-{uuid.uuid4().hex[:8]}"
    ghosts = [lease_member(name, f"S{i}") for i in range(2)]
    now = time.time()
    held, _ = store.acquire_permits(LIMITED, 2, ghosts, now + 1.0, now)
    assert held == [True, True]
    try:
        handle = start_workflow(machine({"One": task(LIMITED)}), {})
        member = lease_member(handle.execution_id, "One")
        wait_until(
            lambda: store.client.zscore(store.keys.activity_waiting(LIMITED), member) is not None,
            10,
            message="the step waiting for a permit",
        )
        assert handle.describe().status == "RUNNING"
        result = handle.result(timeout=20)  # the ghosts' permits lapse after 1 s
        assert result.status == "SUCCEEDED"
    finally:
        store.release_permits(LIMITED, 2, ghosts, time.time() + 15, time.time())


def test_the_lua_bucket_is_bucket_take() -> None:
    store = get_store()
    activity = f"bucket-{uuid.uuid4().hex[:8]}"
    rate = 4.0
    state: tuple[float | None, float | None] = (None, None)
    t0 = 1_000_000.0
    try:
        for offset in (0.0, 0.0, 0.0, 0.1, 0.9, 3.0, 3.0, 3.05):
            now = t0 + offset
            tokens, ts, wait = limits.bucket_take(*state, now, rate, 1.0)
            state = (tokens, ts)
            timer = f'["limit","{activity}","S{offset}",0]'
            member = lease_member(activity, f"S{offset}")
            got = store.take_rate_token(activity, rate, 1.0, now, member, timer, 15.0)
            assert got == pytest.approx(wait, abs=1e-9), offset
            if wait:
                timers = store.keys.timers(store.keys.partition_of(activity))
                assert store.client.zscore(timers, timer) == pytest.approx(now + wait)
    finally:
        store.client.delete(store.keys.activity_rate(activity))
        timers = store.keys.timers(store.keys.partition_of(activity))
        for member in store.client.zrangebyscore(timers, t0 - 1, t0 + 100):
            store.client.zrem(timers, member)
