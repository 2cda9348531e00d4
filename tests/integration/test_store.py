"""The store's Lua scripts on a real (embedded) Redis: guards, joins, claims, windows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.embedded import EmbeddedRedis
from orchestrator.store import RedisStore, Write, lease_member, redis_client


@pytest.fixture(scope="module")
def store() -> Iterator[RedisStore]:
    with EmbeddedRedis() as server:
        yield RedisStore(redis_client(server.url), "t")


@pytest.fixture(autouse=True)
def clean(store: RedisStore) -> None:
    # This Redis is the module's own embedded server: flushing it touches nothing else.
    store.client.flushdb()


def test_write_applies_all_ops_when_guards_hold(store: RedisStore) -> None:
    write = Write().guard_exists("t:x:1", False)
    write.op("hset", "t:x:1", "status", "RUNNING").op("rpush", "t:x:1:h", "a", "b")
    result = store.apply(write)
    assert result.ok
    assert store.client.hget("t:x:1", "status") == "RUNNING"
    assert store.client.lrange("t:x:1:h", 0, -1) == ["a", "b"]


def test_failed_guard_writes_nothing_and_names_the_guard(store: RedisStore) -> None:
    store.client.hset("t:x:1", "status", "ABORTED")
    write = Write().guard_exists("t:x:1", True).guard_field("t:x:1", "status", "RUNNING")
    write.op("rpush", "t:x:1:h", "event")
    result = store.apply(write)
    assert not result.ok and result.failed_guard == 1
    assert store.client.exists("t:x:1:h") == 0


def test_absent_field_guard_and_member_guard(store: RedisStore) -> None:
    write = Write().guard_field("t:s", "k", None).guard_member("t:timers", "m")
    write.op("hset", "t:s", "k", "v")
    assert not store.apply(write).ok  # the timer is not there
    store.client.zadd("t:timers", {"m": 1})
    assert store.apply(write).ok
    assert not store.apply(write).ok  # now the field exists


def test_join_marks_the_container_joining_once(store: RedisStore) -> None:
    store.client.hset("t:s", mapping={"P|t": "2", "P|n": "0", "P|s": "RUNNING"})

    def branch_end() -> list[str]:
        write = Write().join("t:s", "P", "t:leases", 100.0, lease_member("x", "P"))
        return store.apply(write).joined

    assert branch_end() == []
    assert branch_end() == ["P"]
    assert store.client.hget("t:s", "P|s") == "JOINING"
    assert store.client.zscore("t:leases", lease_member("x", "P")) == 100.0


def test_claim_runs_a_step_once(store: RedisStore) -> None:
    keys = store.keys
    store.client.hset(keys.execution("e"), mapping={"status": "RUNNING", "name": "e"})
    store.client.hset(
        keys.steps("e"), mapping={"A": json.dumps({"state": "A"}), "A|s": "SCHEDULED"}
    )
    event = json.dumps({"type": "TaskStarted"})
    claimed, details = store.claim_step("e", "A", "tok1", 50.0, event)
    assert claimed
    assert details[1] == "RUNNING:tok1"
    again, reason = store.claim_step("e", "A", "tok2", 50.0, event)
    assert not again and reason[0] == "step RUNNING:tok1"
    assert store.client.llen(keys.history("e")) == 1  # one TaskStarted, for the one claim
    assert store.client.zscore(keys.leases, lease_member("e", "A")) == 50.0


def test_claim_skips_stopped_and_unknown_executions(store: RedisStore) -> None:
    keys = store.keys
    store.client.hset(keys.execution("e"), "status", "ABORTED")
    store.client.hset(keys.steps("e"), "A|s", "SCHEDULED")
    assert store.claim_step("e", "A", "t", 1.0, "{}") == (False, ["execution ABORTED"])
    assert store.claim_step("nope", "A", "t", 1.0, "{}") == (False, ["no execution"])


def test_map_window_reads_next_item(store: RedisStore) -> None:
    steps = store.keys.steps("e")
    store.client.hset(steps, mapping={"M|next": "2", "M|t": "3", "M|i2": '"c"'})
    assert store.map_window("e", "M") == ["2", "3", '"c"']
    store.client.hset(steps, "M|next", "3")
    assert store.map_window("e", "M") == ["3", "3", None]


def test_apply_many_keeps_each_write_atomic(store: RedisStore) -> None:
    store.client.hset("t:a", "status", "RUNNING")
    good = Write().guard_field("t:a", "status", "RUNNING").op("hset", "t:a", "x", "1")
    bad = Write().guard_field("t:b", "status", "RUNNING").op("hset", "t:b", "x", "1")
    results = store.apply_many([good, bad])
    assert [r.ok for r in results] == [True, False]
    assert store.client.hget("t:a", "x") == "1" and store.client.exists("t:b") == 0
