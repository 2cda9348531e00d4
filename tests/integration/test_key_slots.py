"""Every call the engine sends touches one hash slot: its execution's partition's.

A Redis ``MONITOR`` watches a few executions of a workflow with a Map, a Parallel, a
Wait, a Retry and a Catch (and one that fails uncaught, for the dead-letter path), and
a schedule from its creation to its deletion (firings, reads, pause, trigger); each
script call (with the commands the script itself ran, logged by Redis as ``lua``), each
MULTI ... EXEC block and every other command is checked: the keys it names are in one
cluster slot, and a key without a hash tag is one of the known global keys (one per
call). So no script builds a key it was not passed, and a Redis Cluster could run every
call on one node. The suite runs with one partition and, against the machine's Redis in
CI, with four (``ORCHESTRATOR_PARTITIONS``): there the executions' slots differ.
"""

from __future__ import annotations

import pytest

import orchestrator as api
from orchestrator import (
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    start_workflow,
)
from orchestrator.config import get_settings
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.language.arns import state_machine_arn
from tests import limit_activities  # registered before the session's worker starts
from tests.helpers import machine, task, wait_until
from tests.redis_monitor import (
    TAG,
    Call,
    Monitor,
    grouped_calls,
    named_keys,
    slots,
)

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
    seen_keys, seen_scripts = _check_slots(calls)
    # The registry's writes were seen: one machine's keys, the index apart.
    assert keys.machine(registered) in seen_keys and keys.machines in seen_keys
    # Not vacuous: every execution was seen, through every kind of script.
    assert {keys.execution(h.execution_id) for h in [*handles, failing]} <= seen_keys
    assert {"commit", "claim", "timers"} <= seen_scripts


def test_every_schedule_call_touches_one_slot(monitor: Monitor, tag: str) -> None:
    # Every schedule key carries the schedules' one hash tag: each call of their life
    # (create, the timer loop's firings, the client's reads, pause, resume, a manual
    # firing, delete) touches that slot; a firing's execution, its own.
    store = get_store()
    keys = store.keys
    # A process's first schedule call looks for schedules under the keys of earlier
    # versions: with none there, one read of one key.
    starting = RedisStore(store.client, keys.prefix, keys.partitions)
    try:
        starting.ensure_schedules_migrated()
    finally:
        starting.lane.close()
    name = f"slots-{tag}"
    api.create_schedule(name, machine({"P": {"Type": "Pass", "End": True}}), "rate(1 second)")
    fired = wait_until(
        lambda: len(d := api.describe_schedule(name).executions) >= 2 and d, 30, message="firings"
    )
    for execution in fired:
        assert api.ExecutionHandle(execution).result(30).status == "SUCCEEDED"
    assert name in [d.name for d in api.list_schedules()]
    api.pause_schedule(name)
    (manual,) = [e for e in api.trigger_schedule(name).executions if e.endswith("-manual")]
    assert api.ExecutionHandle(manual).result(30).status == "SUCCEEDED"
    api.resume_schedule(name)
    api.delete_schedule(name)
    calls = grouped_calls(monitor.stop())
    seen_keys, seen_scripts = _check_slots(calls)
    schedule_keys = {
        keys.schedule(name),
        keys.schedule_log(name),
        keys.schedules_due,
        keys.schedule_names,
    }
    # Not vacuous: every schedule key, written by schedules.lua, and every execution.
    assert schedule_keys <= seen_keys and "schedules" in seen_scripts
    assert {keys.execution(e) for e in [*fired, manual]} <= seen_keys
    assert len(slots(schedule_keys)) == 1
    ops = {call.commands[0][7] for call in calls if _is_schedules_call(call)}
    assert {"create", "update", "delete"} <= ops
    old_names = keys.legacy_schedule_names
    looks = [call.commands for call in calls if old_names in named_keys(call, keys.prefix)]
    # (The session's own store may make its first look meanwhile, as this one did.)
    assert looks and all(look == [["ZRANGE", old_names, "0", "99"]] for look in looks)


def _is_schedules_call(call: Call) -> bool:
    return call.name == "EVALSHA" and call.commands[0][1] == get_store()._schedules.sha


def _check_slots(calls: list[Call]) -> tuple[set[str], set[str]]:
    """Check each call names keys of one slot (tagged, or one global key); return the
    keys and the scripts (by name) seen."""
    store = get_store()
    keys = store.keys
    # Keys that are one each, not per execution or partition: each call names one.
    global_keys = {
        keys.activities,
        keys.activity_queues,
        keys.activity_limits,
        keys.workers,
        keys.tick_lock,
        keys.tokens,
        keys.partition_count,
        keys.machines,
        # A process's first look for schedules left under the keys of earlier versions.
        keys.legacy_schedule_names,
    }
    shas = {
        store._commit.sha: "commit",
        store._claim.sha: "claim",
        store._timers.sha: "timers",
        store._schedules.sha: "schedules",
    }
    seen_scripts: set[str] = set()
    seen_keys: set[str] = set()
    for call in calls:
        if call.name == "EVALSHA":
            seen_scripts.add(shas.get(call.commands[0][1], "other"))
        named = named_keys(call, keys.prefix)
        seen_keys |= named
        for key in named:
            assert TAG.search(key) or key in global_keys, f"{key} has no hash tag: {call.commands}"
        assert len(slots(named)) <= 1, (
            f"one call touches {len(slots(named))} slots: {call.commands}"
        )
    return seen_keys, seen_scripts


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
    keys = get_store().keys
    handles = [start_workflow(_limited_fan(tag), {}) for _ in range(2)]
    for handle in handles:
        result = handle.result(60)
        assert result.status == "SUCCEEDED", result
    # The timer process's recovery of the permits runs every tick: watch one more run.
    seen = len(monitor.lines)
    permits = keys.activity_permits(limit_activities.LIMITED)
    wait_until(
        lambda: any(
            "ZRANGEBYSCORE" in line.upper() and permits in line for line in monitor.lines[seen:]
        ),
        10 * get_settings().tick_interval_seconds + 10,
        message="the timer process's recovery of the permits",
    )
    calls = grouped_calls(monitor.stop())
    _check_slots(calls)
    writes = {(c[0].upper(), c[1]) for call in calls for c in call.commands if len(c) > 2}
    # Not vacuous: steps waited for a permit, were handed one (a grant record), and
    # waited for their turn (a timer); the recovery read the permits.
    limited = limit_activities.LIMITED
    assert ("ZADD", keys.activity_waiting(limited)) in writes
    assert ("ZADD", keys.activity_granted(limited)) in writes
    assert any(name == "ZADD" and key.endswith(":timers") for name, key in writes)
    assert ("ZRANGEBYSCORE", keys.activity_permits(limited)) in writes
    assert len(limit_activities.RECORDED.pop(tag)) == 10
