"""Every call the engine sends touches the keys of at most one execution (one hash tag).

A Redis ``MONITOR`` watches a few executions of a workflow with a Map, a Parallel, a
Wait, a Retry and a Catch (and one that fails uncaught, for the dead-letter path); each
script call (with the commands the script itself ran, logged by Redis as ``lua``), each
MULTI ... EXEC block and every other command is checked: the hash tags of the keys it
names number at most one, and a key without a tag is one of the known global keys. So no
script builds a key it was not passed, and a Redis Cluster could run every call on the
slot of its execution (the global indexes aside, see orchestrator/engine/keys.py).
"""

from __future__ import annotations

import pytest

from orchestrator import (
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    start_workflow,
)
from orchestrator.engine.store import get_store
from orchestrator.language.arns import state_machine_arn
from tests.helpers import machine, task
from tests.redis_monitor import TAG, Monitor, grouped_calls

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


def test_every_call_touches_at_most_one_execution(monitor: Monitor, tag: str) -> None:
    store = get_store()
    keys = store.keys
    handles = [
        start_workflow(_definition(), {"tag": f"{tag}-{n}", "items": [1, 2, 3]}) for n in range(3)
    ]
    failing = start_workflow(machine({"Boom": task("fail", Parameters={"error": "Boom"})}))
    # The registry: each change writes one machine's keys (its name is their hash tag) and
    # the {p}:machines index; a start through an alias reads only that machine's keys.
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

    own = f"{keys.prefix}:"
    global_keys = {
        keys.executions,
        keys.timers,
        keys.leases,
        keys.outbox,
        keys.dead_letters,
        keys.activities,
        keys.activity_queues,
        keys.activity_limits,
        keys.workers,
        keys.execution_counters,
        keys.tick_lock,
        keys.tokens,
        keys.schedules_due,  # the timer tick's look for due schedules
        keys.machines,  # the registry's index of state machine names
    }
    shas = {store._commit.sha: "commit", store._claim.sha: "claim", store._timers.sha: "timers"}
    seen_scripts: set[str] = set()
    seen_tags: set[str] = set()
    for call in calls:
        if call.name == "EVALSHA":
            seen_scripts.add(shas.get(call.commands[0][1], "other"))
        tags: set[str] = set()
        for args in call.commands:
            for arg in args[1:]:
                if not arg.startswith(own) or arg.startswith(f"{own}test:"):
                    continue
                found = TAG.findall(arg)
                if found:
                    tags.update(found)
                else:
                    untagged = (
                        arg in global_keys
                        or arg.startswith(f"{own}def:")
                        or arg.startswith(f"{keys.executions}:")  # listing indexes
                        # a limited activity's permits, waiting steps and token bucket
                        or arg.startswith((f"{own}permits:", f"{own}rate:"))
                    )
                    assert untagged, f"{arg} has no hash tag in {call.commands}"
        assert len(tags) <= 1, f"one call touches executions {sorted(tags)}: {call.commands}"
        seen_tags |= tags
    # Not vacuous: every execution was seen, through every kind of script.
    assert {h.execution_id for h in [*handles, failing]} <= seen_tags
    assert {"commit", "claim", "timers"} <= seen_scripts
