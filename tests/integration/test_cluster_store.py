"""The store on a real Redis Cluster of three masters (tests/redis_servers.py): its script
connections follow a slot that moved to another master, and a batch of scripts a node
no longer knows (a restart, a failover) runs each call once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.crc import key_slot
from redis.exceptions import MovedError

from orchestrator.engine.records import lease_member, timer_member
from orchestrator.engine.store import RedisStore, Write, redis_client
from tests.redis_servers import ClusterGroup, Server

PARTITIONS = 3


@pytest.fixture
def store(redis_cluster: ClusterGroup) -> Iterator[RedisStore]:
    store = RedisStore(redis_client(redis_cluster.url()), "cs", PARTITIONS)
    yield store
    store.close()


def _move_slot(group: ClusterGroup, slot: int, source: Server, target: Server) -> None:
    """Move ``slot`` and its keys from ``source`` to ``target``, as ``redis-cli --cluster
    reshard`` does: IMPORTING/MIGRATING, MIGRATE the keys, then every node learns the
    new owner."""
    with source.client() as src, target.client() as dst:
        source_id, target_id = (
            src.execute_command("CLUSTER MYID"),
            dst.execute_command("CLUSTER MYID"),
        )
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        if keys:
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    for master in group.masters:
        with master.client() as client:
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)


def test_a_commit_follows_its_slot_to_another_master(
    redis_cluster: ClusterGroup, store: RedisStore
) -> None:
    record = store.keys.execution("moving-1")
    slot = key_slot(record.encode())
    assert store.apply(Write().op("hset", record, "status", "RUNNING")).ok
    source = redis_cluster.slot_owner(slot)
    target = next(m for m in redis_cluster.masters if m.port != source.port)
    _move_slot(redis_cluster, slot, source, target)
    with source.client() as old:
        with pytest.raises(MovedError, match=f"{slot} 127.0.0.1:{target.port}"):
            old.hget(record, "status")
    # The script connection still points at the old owner: MOVED, the layout read
    # again, the call sent to the new one, applied once.
    write = Write().guard_field(record, "status", "RUNNING").op("hset", record, "status", "DONE")
    assert store.apply(write).ok
    with target.client() as new:
        assert new.hget(record, "status") == "DONE"
    # And the client's own commands, and a pipelined batch of reads, find it there too.
    assert store.execution_status("moving-1") == "DONE"
    assert store.execution_statuses(["moving-1", "elsewhere"]) == ["DONE", None]


def test_a_batch_of_commits_a_node_lacks_the_script_of_runs_each_once(
    redis_cluster: ClusterGroup, store: RedisStore
) -> None:
    ids = [f"batch-{n}" for n in range(12)]
    assert (
        len(
            {redis_cluster.slot_owner(key_slot(store.keys.execution(i).encode())).port for i in ids}
        )
        > 1
    )

    def bump(execution_id: str) -> Write:
        return Write().op("hincrby", store.keys.execution(execution_id), "n", 1)

    assert all(result.ok for result in store.apply_many([bump(i) for i in ids[:6]]))
    # One master forgets every script (as after a restart or a failover to a replica
    # that never loaded them): its calls are refused with NOSCRIPT, sent again once
    # loaded; the other masters' ran the first time and are not sent again.
    with redis_cluster.masters[0].client() as first:
        first.execute_command("SCRIPT FLUSH")
    assert all(result.ok for result in store.apply_many([bump(i) for i in ids]))
    counts = [int(store.execution_records([i], ("n",))[0]["n"] or 0) for i in ids]
    assert counts == [2] * 6 + [1] * 6


def test_the_transactions_and_indexes_of_one_slot_run_on_a_cluster(store: RedisStore) -> None:
    # A MULTI on a cluster must name one slot: a rate-limited step's timer and outbox
    # entry (its partition), a message's dead letter and its partition's index.
    execution_id = "rated-1"
    p = store.keys.partition_of(execution_id)
    member = lease_member(execution_id, "A")
    store.client.zadd(store.keys.outbox(p), {member: 1.0})
    timer = timer_member("limit", execution_id, "A", 0)
    assert store.take_rate_token("act", 1.0, 1.0, 100.0, member, timer, 30.0) == 0
    wait = store.take_rate_token("act", 1.0, 1.0, 100.0, member, timer, 30.0)
    assert wait == 1.0
    assert store.client.zscore(store.keys.timers(p), timer) == 101.0
    assert store.client.zscore(store.keys.outbox(p), member) == 131.0
    for n in range(9):
        store.add_dead_letter(f"msg-{n}", "{}", float(n), 60)
    assert store.dead_letter_ids(100) == [f"msg-{n}" for n in reversed(range(9))]
    assert store.trim_dead_letters(4) == 5
    assert store.dead_letter_ids(100) == [f"msg-{n}" for n in reversed(range(5, 9))]
    # The schedules: one slot of their own.
    assert store.create_schedule("nightly", {"target": "t"}, 1.0, 5.0)
    assert store.due_schedules(10.0, 10) == ["nightly"]
    assert store.delete_schedule("nightly")
