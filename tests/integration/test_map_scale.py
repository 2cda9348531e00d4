"""Fan-out at scale: a Map of any size runs on Redis calls of a bounded size.

A MONITOR watches a Map of Pass items (which all end inline, the case that once started
every item in one transition) and a Map of Task items; the largest call the engine sends
for 4,500 items is no larger than for 1,500 (the window and the per-transition budget
bound it, not the item count), and both Maps end with their outputs in order.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from orchestrator import start_workflow
from orchestrator.engine.store import get_store
from orchestrator.errors import CommitRefused
from tests.helpers import map_machine, task
from tests.redis_monitor import TAG, Monitor, grouped_calls

pytestmark = pytest.mark.usefixtures("orchestrator")


PASS = {"Type": "Pass", "End": True}


def _largest_calls(lines: list[str]) -> dict[str, int]:
    """Execution id -> the most arguments any one call for it carried (a script call's
    own, not the commands it ran)."""
    own = get_store().keys.prefix + ":"
    largest: dict[str, int] = defaultdict(int)
    for call in grouped_calls(lines):
        command = call.commands[0]
        keys = [arg for arg in command[1:] if arg.startswith(own)]
        tags = {tag for key in keys for tag in TAG.findall(key)}
        for tag in tags:
            largest[tag] = max(largest[tag], len(command))
    return largest


def test_the_largest_call_does_not_grow_with_the_item_count(monitor: Monitor) -> None:
    # Both beyond what one transition starts (a window and a budget of 500 items each).
    small = start_workflow(map_machine(PASS), {"items": list(range(1500))})
    assert small.result(60).output == list(range(1500))
    large = start_workflow(map_machine(PASS), {"items": list(range(4500))})
    assert large.result(60).output == list(range(4500))
    tasks = start_workflow(
        map_machine(task("add", Parameters={"a.$": "$", "b": 1}), concurrency=100),
        {"items": list(range(1500))},
    )
    assert tasks.result(60).output == [i + 1 for i in range(1500)]
    largest = _largest_calls(monitor.stop())
    # 4,500 items write 24 more input chunks than 1,500 (2 arguments each) at the start;
    # everything else is bounded by the window and the budget, not the item count.
    assert largest[large.execution_id] <= largest[small.execution_id] + 100, largest
    assert largest[large.execution_id] < 12_000
    assert largest[tasks.execution_id] < 12_000


def test_a_finished_map_leaves_no_branch_hash(orchestrator) -> None:
    handle = start_workflow(map_machine(PASS, concurrency=7), {"items": list(range(300))})
    assert handle.result(60).output == list(range(300))
    store = get_store()
    keys = store.keys
    assert store.client.exists(keys.branches(handle.execution_id, "M")) == 0
    assert store.client.scard(keys.branch_hashes(handle.execution_id)) == 0


# -- a start is all or nothing ------------------------------------------------------------


def test_a_large_map_as_the_first_state_starts_whole_and_ends_cleanly() -> None:
    # 10,000 Pass items make 40,001 events: over the default quota of 25,000 the
    # execution fails with the quota's error, as on Step Functions; it never stays
    # RUNNING half-started.
    handle = start_workflow(map_machine(PASS), {"items": list(range(10_000))})
    result = handle.result(60)
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert "quota of 25000 history events" in (result.cause or "")


def test_a_refused_start_creates_nothing_and_the_same_name_starts_later(
    unique_name: str,
) -> None:
    store = get_store()
    # A key of the execution that holds the wrong type (as corruption would): the start
    # commit refuses before its first write.
    store.client.set(store.keys.history(unique_name), "not a stream")
    with pytest.raises(CommitRefused, match="nothing written: history"):
        start_workflow(map_machine(PASS), {"items": [1, 2, 3]}, name=unique_name)
    assert not store.client.exists(store.keys.execution(unique_name))
    assert not store.client.exists(store.keys.steps(unique_name))
    executions = store.keys.executions(store.keys.partition_of(unique_name))
    assert store.client.zscore(executions, unique_name) is None
    store.client.delete(store.keys.history(unique_name))
    handle = start_workflow(map_machine(PASS), {"items": [1, 2, 3]}, name=unique_name)
    assert handle.result(30).output == [1, 2, 3]
