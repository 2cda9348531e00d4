"""Partitions (``ORCHESTRATOR_PARTITIONS``): the store's readers merge them, foreign
timers move home, the limits script finds each step's partition as Python does, and the
count is fixed for a deployment. A real (embedded) Redis of the module's own."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.client.api import scan_executions
from orchestrator.engine.cursors import ListingCursor
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.publisher import Unmarked
from orchestrator.engine.records import lease_member, timer_member
from orchestrator.engine.store import RedisStore, Write, redis_client
from orchestrator.errors import ConfigurationError

PARTS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture
def store(server: EmbeddedRedis) -> Iterator[RedisStore]:
    # This Redis is the module's own embedded server: flushing it touches nothing else.
    store = RedisStore(redis_client(server.url), "pt", PARTS)
    store.client.flushdb()
    yield store
    store.close()


def ids_in_each_partition(store: RedisStore, per_partition: int = 1) -> dict[int, list[str]]:
    """Execution ids, ``per_partition`` of each partition."""
    found: dict[int, list[str]] = {p: [] for p in store.keys.all_partitions()}
    n = 0
    while any(len(ids) < per_partition for ids in found.values()):
        execution_id = f"e-{n}"
        n += 1
        ids = found[store.keys.partition_of(execution_id)]
        if len(ids) < per_partition:
            ids.append(execution_id)
    return found


def index(store: RedisStore, execution_id: str, start: float, status: str = "RUNNING") -> None:
    """List an execution as a start would (its partition's indexes, in one write)."""
    keys, p = store.keys, store.keys.partition_of(execution_id)
    write = Write().op("hset", keys.execution(execution_id), "status", status, "start", repr(start))
    write.op("zadd", keys.executions(p), repr(start), execution_id)
    write.op("zadd", keys.executions_index(p, status), repr(start), execution_id)
    assert store.apply(write).ok


def newest(store: RedisStore, count: int, status: str | None = None) -> list[str]:
    """The first ``count`` ids of a listing, newest first."""
    first = ListingCursor.start(store.keys.partitions).positions
    return [
        execution_id for _, execution_id in store.list_execution_page(first, count, status=status)
    ]


def test_listings_merge_the_partitions_newest_first(store: RedisStore) -> None:
    ids = [
        execution_id for group in ids_in_each_partition(store, 3).values() for execution_id in group
    ]
    starts = {execution_id: float(n) for n, execution_id in enumerate(sorted(ids))}
    for execution_id, start in starts.items():
        index(store, execution_id, start, "FAILED" if start % 2 else "RUNNING")
    newest_first = sorted(ids, key=lambda execution_id: -starts[execution_id])
    assert newest(store, 100) == newest_first
    assert newest(store, 5) == newest_first[:5]
    failed = [execution_id for execution_id in newest_first if starts[execution_id] % 2]
    assert newest(store, 100, status="FAILED") == failed
    assert store.execution_index_size() == len(ids)
    assert store.execution_index_size(status="FAILED") == len(failed)
    store.forget_executions(*ids)  # their records exist: nothing is dropped
    assert store.execution_index_size() == len(ids)


def test_pages_go_on_from_a_position_in_each_partition(store: RedisStore) -> None:
    # A cursor holds where each partition's index was left: any page reads one page of
    # each, however deep, and the pages chained are the merge, newest first.
    ids = [
        execution_id for group in ids_in_each_partition(store, 5).values() for execution_id in group
    ]
    starts = {execution_id: float(n % 7) for n, execution_id in enumerate(sorted(ids))}
    for execution_id, start in starts.items():
        index(store, execution_id, start)
    merged = newest(store, 100)
    assert [s for s in map(starts.get, merged)] == sorted(starts.values(), reverse=True)
    cursor = ListingCursor.start(PARTS)
    paged: list[str] = []
    while True:
        rows, cursor = scan_executions(store, (), limit=3, cursor=cursor)
        if not rows:
            break
        paged += [execution_id for execution_id, _ in rows]
    assert paged == merged
    assert cursor.passed == len(ids) and len(cursor.positions) == PARTS
    assert ListingCursor.parse(cursor.text(), PARTS) == cursor


def test_an_entry_whose_record_is_not_whole_is_passed_over_once(store: RedisStore) -> None:
    # A record without a start (not one a start writes) is not listed, nor dropped from
    # the index (its record exists): the listing goes past it instead of reading it again.
    ids = ids_in_each_partition(store, 2)
    for group in ids.values():
        for execution_id in group:
            index(store, execution_id, 1.0)
    broken = ids[1][0]
    store.client.hdel(store.keys.execution(broken), "start")
    rows, cursor = scan_executions(store, (), limit=100)
    assert broken not in {execution_id for execution_id, _ in rows}
    assert len(rows) == 2 * PARTS - 1 and cursor.passed == 2 * PARTS


def test_a_timer_found_in_another_partition_moves_to_its_own(store: RedisStore) -> None:
    # A child's end adds its parent's timer to the child's partition (in its own slot);
    # the firing commit guards it in the parent's.
    keys = store.keys
    groups = ids_in_each_partition(store)
    parent, child = groups[1][0], groups[3][0]
    member = timer_member("mapchild", parent, "M", 0)
    store.client.zadd(keys.timers(keys.partition_of(child)), {member: 10.0})
    assert store.due_timer_entries(20.0, 10) == [(member, 10.0)]
    assert store.client.zscore(keys.timers(keys.partition_of(child)), member) is None
    assert store.client.zscore(keys.timers(keys.partition_of(parent)), member) == 10.0
    # And from there the timer is handled like any other.
    assert store.push_back_timer(member, 30.0)
    store.drop_timers(member)
    assert store.due_timer_entries(40.0, 10) == []


def test_a_timer_a_dead_beat_left_in_two_partitions_fires_once(store: RedisStore) -> None:
    # The move adds the timer home, then takes it from the foreign set, in two calls (two
    # slots): a beat that died between them left it in both.
    keys = store.keys
    groups = ids_in_each_partition(store)
    parent, child = groups[0][0], groups[2][0]
    member = timer_member("childend", parent, f"T|{child}", 1)
    store.client.zadd(keys.timers(keys.partition_of(child)), {member: 10.0})
    store.client.zadd(keys.timers(keys.partition_of(parent)), {member: 10.0})
    assert store.due_timer_entries(20.0, 10) == [(member, 10.0)]
    assert store.client.zscore(keys.timers(keys.partition_of(child)), member) is None
    assert store.client.zscore(keys.timers(keys.partition_of(parent)), member) == 10.0


def test_due_entries_of_every_partition_come_earliest_first(store: RedisStore) -> None:
    keys = store.keys
    members = []
    for p, (execution_id,) in ids_in_each_partition(store).items():
        member = lease_member(execution_id, "A")
        members.append(member)
        store.client.zadd(keys.leases(p), {member: 10.0 - p})
        store.client.zadd(keys.outbox(p), {member: 10.0 + p})
    assert store.due_leases(100.0, 10) == members[::-1]
    assert store.due_outbox(100.0, 10) == members
    assert store.due_outbox(100.0, 2) == members[:2]
    store.renew_leases(members, 200.0)
    store.mark_published(members, 300.0)
    for p, member in enumerate(members):
        assert store.client.zscore(keys.leases(p), member) == 200.0
        assert store.client.zscore(keys.outbox(p), member) == 300.0


def test_the_limits_find_each_steps_partition(store: RedisStore) -> None:
    # permits.lua names no partition's key; the store's calls after it find each step's
    # partition: a waiting step leaves, a granted one enters, its own partition's outbox.
    keys = store.keys
    steps = [lease_member(ids[0], "S") for ids in ids_in_each_partition(store).values()]
    granted, _ = store.acquire_permits("act", 1, steps, 100.0, 1.0)
    assert granted == [True, False, False, False]
    for p, step in enumerate(steps[1:], start=1):
        store.client.zadd(keys.outbox(p), {step: 50.0})  # as dispatched before it waited
    store.acquire_permits("act", 1, steps[1:], 100.0, 1.0)  # already waiting: kept waiting
    # A waiting step is out of the outbox: its own partition's.
    assert [store.client.zscore(keys.outbox(p), steps[p]) for p in (1, 2, 3)] == [None] * 3
    handed = store.release_permits("act", 1, steps[:1], 100.0, 2.0)
    assert handed == steps[1:2]
    assert store.client.zscore(keys.outbox(1), steps[1]) == 100.0
    # Running (a lease in its own partition): a recovery keeps its permit.
    store.client.zadd(keys.leases(1), {steps[1]: 500.0})
    assert store.recover_permits("act", 1, 10.0, 200.0) == []
    assert store.client.zscore(keys.activity_permits("act"), steps[1]) == 10.0


def test_metrics_and_dead_letters_sum_and_merge(store: RedisStore) -> None:
    keys = store.keys
    groups = ids_in_each_partition(store, 2)
    for p, (execution_id, later) in groups.items():
        store.client.hincrby(keys.execution_counters(p), "started|wf", p + 1)
        store.client.zadd(keys.timers(p), {timer_member("wait", execution_id, "W", 0): 1.0})
        store.add_dead_letter(execution_id, json.dumps({"n": p}), float(p), 100)
        store.add_dead_letter(later, json.dumps({"n": p}), 10.0 + p, 100)
    counters, timers, letters = store.metrics_reads()
    assert counters == {"started|wf": str(1 + 2 + 3 + 4)}
    assert (timers, letters) == (PARTS, 2 * PARTS)
    newest_first = [groups[p][1] for p in reversed(range(PARTS))] + [
        groups[p][0] for p in reversed(range(PARTS))
    ]
    assert store.dead_letter_ids(10) == newest_first
    assert store.dead_letter_ids(2, 3) == newest_first[3:5]
    # The limit holds over all partitions: the oldest go, wherever they are.
    assert store.trim_dead_letters(8) == 0
    assert store.trim_dead_letters(5) == 3
    assert store.dead_letter_ids(10) == newest_first[:5]
    assert store.trim_dead_letters(2) == 3
    assert store.dead_letter_ids(10) == newest_first[:2]
    store.forget_dead_letters(*store.dead_letter_ids(100))
    assert store.dead_letter_ids(100) == []


def test_the_partition_count_is_fixed_for_a_prefix(server: EmbeddedRedis) -> None:
    first = RedisStore(redis_client(server.url), "fixed", 4)
    other = RedisStore(redis_client(server.url), "fixed", 2)
    again = RedisStore(redis_client(server.url), "fixed", 4)
    try:
        write = Write().op("set", other.keys.timers(0) + ":probe", "1")
        assert first.apply(Write().op("set", first.keys.timers(0) + ":probe", "1")).ok
        with pytest.raises(ConfigurationError, match="ORCHESTRATOR_PARTITIONS is 2.*with 4"):
            other.apply(write)
        with pytest.raises(ConfigurationError):
            other.claim_step("e", "A", "tok", 1.0, "[]")
        assert again.apply(Write().op("set", again.keys.timers(1) + ":probe", "1")).ok
        assert first.client.get("fixed:partitions") == "4"
    finally:
        for store in (first, other, again):
            store.close()


def test_a_claim_marks_only_its_own_partitions_published_steps(store: RedisStore) -> None:
    # claim.lua marks the outbox members this process published in the claim's own
    # partition's outbox: the others wait for a claim in theirs (or the outbox thread).
    marks = Unmarked()
    groups = ids_in_each_partition(store, 2)
    members = {p: [lease_member(i, "S") for i in ids] for p, ids in groups.items()}
    marks.add(store, [m for p in store.keys.all_partitions() for m in members[p]])
    assert marks.take(store, 2) == members[2]
    assert marks.take(store, 2) == []
    assert marks.take(store, 0) == members[0]
    taken = marks.take(store, 1)
    assert taken == members[1]
    marks.put_back(store, taken)  # its claim failed: marked by a later one
    assert marks.take(store, 1) == members[1]
    assert marks.take(store, 3) == members[3]
