"""The key schema: its field rules, and one cluster slot per execution and partition."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from redis.crc import key_slot

from orchestrator.engine.keys import (
    CLUSTER_SLOTS,
    MAX_PARTITIONS,
    Keys,
    partition_of,
    partition_tags,
)
from orchestrator.errors import ConfigurationError
from orchestrator.language.registry import NAME as MACHINE_NAME

#: A key's Redis Cluster hash tag: what its first ``{`` and the next ``}`` hold.
TAG = re.compile(r"\{([^}]*)\}")


@pytest.mark.parametrize(
    ("field", "fixed"),
    [
        ("M|t", True),
        ("M|c", True),
        ("M|i12", True),
        ("P[0]/M|i0", True),
        ("M|next", False),
        ("M|n", False),
        ("M|r3", False),
        ("M|s", False),
        ("M|i", False),
        ("M|ix", False),
        ("t", False),  # the record of a state named "t"
        ("M[0]/t", False),
    ],
)
def test_fields_fixed_while_a_container_runs_need_no_guard(field: str, fixed: bool) -> None:
    assert Keys.fixed_field(field) is fixed


def _execution_keys(keys: Keys, execution_id: str) -> list[str]:
    """Every key the schema holds for one execution."""
    return [
        keys.execution(execution_id),
        keys.steps(execution_id),
        keys.history(execution_id),
        keys.task_tokens(execution_id),
        keys.dead_letter(execution_id),
        keys.branches(execution_id, "M"),
        keys.map_run(execution_id, "M"),
        keys.branch_hashes(execution_id),
    ]


def _partition_keys(keys: Keys, p: int) -> list[str]:
    """Every index key of partition ``p``."""
    return [
        keys.timers(p),
        keys.leases(p),
        keys.outbox(p),
        keys.dead_letters(p),
        keys.execution_counters(p),
        keys.definition(p, "0" * 40),
        *keys.listing_indexes(p, "order-flow"),
    ]


IDS = ["order-17", "0f3a9c2e" * 4, "é-ü", "a" * 80, "kid.run-1.99999"]


@pytest.mark.parametrize("partitions", [1, 3, 16, 256])
@pytest.mark.parametrize("execution_id", IDS)
def test_an_execution_shares_one_slot_with_its_partitions_indexes(
    execution_id: str, partitions: int
) -> None:
    keys = Keys("orch", partitions)
    own = _execution_keys(keys, execution_id)
    assert len(set(own)) == len(own)
    p = keys.partition_of(execution_id)
    assert 0 <= p < partitions
    slots = {key_slot(key.encode()) for key in own + _partition_keys(keys, p)}
    assert len(slots) == 1, slots


@pytest.mark.parametrize("partitions", [1, 2, 3, 16, 100])
def test_partitions_spread_evenly_over_the_slot_ranges(partitions: int) -> None:
    keys = Keys("orch", partitions)
    slots = [key_slot(keys.timers(p).encode()) for p in keys.all_partitions()]
    # Partition k is in the k-th of `partitions` equal ranges: a master holding a third
    # of the slots (in one range, as redis-cli --cluster create gives them) holds a
    # third of the partitions.
    for k, slot in enumerate(slots):
        assert k * CLUSTER_SLOTS // partitions <= slot < (k + 1) * CLUSTER_SLOTS // partitions
    counts = Counter(keys.partition_of(f"e-{n}") for n in range(20_000))
    assert len(counts) == partitions
    assert max(counts.values()) < 1.2 * 20_000 / partitions


def test_one_partition_is_one_slot_for_everything() -> None:
    keys = Keys("orch")
    assert keys.execution("order-17") == "orch:{0.0}:x:order-17"
    assert keys.timers(0) == "orch:{0.0}:timers"
    every = _execution_keys(keys, "a") + _execution_keys(keys, "b") + _partition_keys(keys, 0)
    assert len({key_slot(key.encode()) for key in every}) == 1


def test_the_partition_function_is_stable() -> None:
    # Where every execution's keys are: it must never change under a running deployment.
    assert partition_of("order-17", 16) == int("a6ccc1f4", 16) % 16 == 4
    assert partition_of("order-17", 1) == 0


@pytest.mark.parametrize("partitions", [0, MAX_PARTITIONS + 1])
def test_a_partition_count_out_of_range_is_refused(partitions: int) -> None:
    with pytest.raises(ConfigurationError):
        Keys("orch", partitions)


def test_a_prefix_with_braces_is_refused() -> None:
    # Its braces would be every key's hash tag: all executions in one slot.
    with pytest.raises(ConfigurationError):
        Keys("orch{x}")


@pytest.mark.parametrize("prefix", ["orch", "orch-test-1a2b", "a.b"])
@pytest.mark.parametrize("partitions", [1, 4, 256])
def test_every_schedule_key_is_in_one_slot(prefix: str, partitions: int) -> None:
    keys = Keys(prefix, partitions)
    names = ["nightly", "a.b-c_d", "x" * 56, "odd{name}", "}{"]
    every = [keys.schedules_due, keys.schedule_names]
    for name in names:
        every += [keys.schedule(name), keys.schedule_log(name)]
    assert len(set(every)) == len(every)
    assert keys.schedule("nightly") == f"{prefix}:{{{prefix}:schedules}}:schedule:nightly"
    assert len({key_slot(key.encode()) for key in every}) == 1


def test_the_schedules_tag_is_no_partition_or_state_machine_tag() -> None:
    keys = Keys("orch", MAX_PARTITIONS)
    tag = TAG.search(keys.schedules_due)
    assert tag is not None and tag.group(1) == "orch:schedules"
    assert tag.group(1) not in partition_tags(MAX_PARTITIONS)
    # A state machine's keys are tagged with its name, which cannot hold the colon.
    assert not MACHINE_NAME.match(tag.group(1))


@pytest.mark.parametrize("activity", ["render", "0.0", "a}b", "{x}", "pay:card"])
def test_an_activitys_limit_keys_share_one_slot_apart_from_the_partitions(
    activity: str,
) -> None:
    keys = Keys("orch", 4)
    limit_keys = [
        keys.activity_permits(activity),
        keys.activity_waiting(activity),
        keys.activity_granted(activity),
        keys.activity_rate(activity),
    ]
    assert len({key_slot(key.encode()) for key in limit_keys}) == 1
    assert keys.activity_permits("render") == "orch:permits:{activity:render}"
    # Its tag is never a partition's (an activity named like one included).
    tag = limit_keys[0].partition("{")[2].partition("}")[0]
    assert tag.startswith("activity:")
    assert all(keys.timers(p).partition("{")[2].partition("}")[0] != tag for p in range(4))
