"""Every call the engine sends touches one hash slot: its execution's partition's.

A Redis ``MONITOR`` watches a few executions of a workflow with a Map, a Parallel, a
Wait, a Retry and a Catch (and one that fails uncaught, for the dead-letter path); each
script call (with the commands the script itself ran, logged by Redis as ``lua``), each
MULTI ... EXEC block and every other command is checked: the keys it names are in one
cluster slot, and a key without a hash tag is one of the known global keys (one per
call). So no script builds a key it was not passed, and a Redis Cluster could run every
call on one node. The suite runs with one partition and, against the machine's Redis in
CI, with four (``ORCHESTRATOR_PARTITIONS``): there the executions' slots differ.
"""

from __future__ import annotations

import time

import pytest

from orchestrator import (
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    start_workflow,
)
from orchestrator.config import get_settings
from orchestrator.engine.keys import Keys
from orchestrator.engine.store import get_store
from orchestrator.language.arns import state_machine_arn
from tests import limit_activities  # registered before the session's worker starts
from tests.helpers import machine, task
from tests.redis_monitor import TAG, Monitor, grouped_calls, is_timer_move, named_keys, slots

pytestmark = pytest.mark.usefixtures("orchestrator")


def _definition() -> dict:
    flaky = task(
        "flaky",
        Next="Pause",
        Retry=[{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 2}],
    )
    items = {
        "StartAt": "Flaky",
        "States": {"Flaky": flaky, "Pause": {"Type": "Wait", "Seconds": 1, "End": True}},
    }
    caught = {
        "StartAt": "Boom",
        "States": {
            "Boom": task(
                "fail",
                Parameters={"error": "Boom"},
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        },
    }
    mapped = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "tag.$": "States.Format('{}-{}', $.tag, $$.Map.Item.Index)",
                    "fail": 1,
                },
                "ItemProcessor": items,
                "End": True,
            }
        },
    }
    return machine({"P": {"Type": "Parallel", "Branches": [mapped, caught], "End": True}})


def _global_keys(keys: Keys) -> set[str]:
    """Keys that are one each, not per execution or partition: each call names one."""
    return {
        keys.activities,
        keys.activity_queues,
        keys.activity_limits,
        keys.workers,
        keys.tick_lock,
        keys.tokens,
        keys.partition_count,
        keys.schedules_due,  # the timer tick's look for due schedules
        keys.machines,
    }


def test_every_call_touches_one_slot(monitor: Monitor, tag: str) -> None:
    store = get_store()
    keys = store.keys
    handles = [
        start_workflow(_definition(), {"tag": f"{tag}-{n}", "items": [1, 2, 3]}) for n in range(3)
    ]
    failing = start_workflow(machine({"Boom": task("fail", Parameters={"error": "Boom"})}))
    # The registry: each change writes one machine's keys (its name is their hash tag),
    # then the {p}:machines index; a start through an alias reads only that machine's keys.
    registered = f"slots-{tag}"
    create_state_machine(registered, machine({"P": {"Type": "Pass", "End": True}}), publish=True)
    create_state_machine_alias(registered, "live", [(1, 100)])
    through_alias = start_workflow(f"{state_machine_arn(registered)}:live")
    assert through_alias.result(30).status == "SUCCEEDED"
    delete_state_machine(registered)
    for handle in handles:
        result = handle.result(60)
        assert result.status == "SUCCEEDED", result
    assert failing.result(30).status == "FAILED"
    calls = grouped_calls(monitor.stop())

    global_keys = _global_keys(keys)
    # Calls on several slots, by design for now (orchestrator/engine/keys.py): the
    # schedules.
    spanning = (f"{keys.prefix}:schedule",)
    shas = {store._commit.sha: "commit", store._claim.sha: "claim", store._timers.sha: "timers"}
    seen_scripts: set[str] = set()
    seen_keys: set[str] = set()
    for call in calls:
        if call.name == "EVALSHA":
            seen_scripts.add(shas.get(call.commands[0][1], "other"))
        named = named_keys(call, keys.prefix)
        seen_keys |= named
        if any(key.startswith(spanning) for key in named):
            continue
        for key in named:
            assert TAG.search(key) or key in global_keys, f"{key} has no hash tag: {call.commands}"
        assert len(slots(named)) <= 1 or is_timer_move(call), (
            f"one call touches {len(slots(named))} slots: {call.commands}"
        )
    # The registry's writes were seen: one machine's keys, the index apart.
    assert keys.machine(registered) in seen_keys and keys.machines in seen_keys
    # Not vacuous: every execution was seen, through every kind of script.
    assert {keys.execution(h.execution_id) for h in [*handles, failing]} <= seen_keys
    assert {"commit", "claim", "timers"} <= seen_scripts


def _limited_fan(tag: str) -> dict:
    """Branches over ``max_concurrency=2`` (some wait for a permit, handed on by the
    releases) and over ``rate_limit="10/s"`` (some wait as ``limit`` timers)."""
    branches = [
        machine({f"L{i}": task(limit_activities.LIMITED, Parameters={"sleep": 0.2, "tag": tag})})
        for i in range(5)
    ] + [machine({f"R{i}": task(limit_activities.RATED)}) for i in range(4)]
    return machine({"Fan": {"Type": "Parallel", "Branches": branches, "End": True}})


def test_the_activity_limits_touch_one_slot_per_call(monitor: Monitor, tag: str) -> None:
    """Permits (acquire, wait, release handing them on, the timer process's recovery)
    and the token bucket: the activity's keys in a call of their own, its steps'
    partitions' outboxes, leases and timers in others."""
    store = get_store()
    keys = store.keys
    handles = [start_workflow(_limited_fan(tag), {}) for _ in range(2)]
    for handle in handles:
        result = handle.result(60)
        assert result.status == "SUCCEEDED", result
    # The timer process's recovery of the permits runs every tick: let it run again.
    time.sleep(2 * get_settings().tick_interval_seconds)
    calls = grouped_calls(monitor.stop())
    writes: set[tuple[str, str]] = set()
    for call in calls:
        named = named_keys(call, keys.prefix)
        if any(key.startswith(f"{keys.prefix}:schedule") for key in named):
            continue
        for key in named:
            assert TAG.search(key) or key in _global_keys(keys), f"{key}: {call.commands}"
        assert len(slots(named)) <= 1 or is_timer_move(call), (
            f"one call touches {len(slots(named))} slots: {call.commands}"
        )
        writes |= {(c[0].upper(), c[1]) for c in call.commands if len(c) > 2}
    # Not vacuous: steps waited for a permit, were handed one (a grant record), and
    # waited for their turn (a timer); the recovery read the permits.
    limited = limit_activities.LIMITED
    assert ("ZADD", keys.activity_waiting(limited)) in writes
    assert ("ZADD", keys.activity_granted(limited)) in writes
    assert any(name == "ZADD" and key.endswith(":timers") for name, key in writes)
    assert ("ZRANGEBYSCORE", keys.activity_permits(limited)) in writes
    assert len(limit_activities.RECORDED.pop(tag)) == 10
