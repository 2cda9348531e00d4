"""The store's Lua scripts on a real (embedded) Redis: guards, joins, claims, windows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.history import base_ms, encode_event
from orchestrator.engine.store import RedisStore, Write, lease_member, redis_client
from orchestrator.errors import CommitRefused


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
    # One TaskStarted, for the one claim, as the history stream's entry 0-1.
    assert store.client.xrange(keys.history("e")) == [("0-1", {"e": event})]
    assert store.client.zscore(keys.leases(keys.partition_of("e")), lease_member("e", "A")) == 50.0


def test_claim_returns_the_window_of_the_containing_map(store: RedisStore) -> None:
    keys = store.keys
    store.client.hset(keys.execution("e"), mapping={"status": "RUNNING", "name": "e"})
    store.client.hset(
        keys.steps("e"),
        mapping={"M[0]/A": "{}", "M[0]/A|s": "SCHEDULED", "M|next": "4", "M|t": "4"},
    )
    claimed, details = store.claim_step("e", "M[0]/A", "tok", 50.0, "{}", "M")
    assert claimed and details[-2:] == ["4", "4"]
    store.client.hset(keys.steps("e"), "B|s", "SCHEDULED")
    claimed, details = store.claim_step("e", "B", "tok", 50.0, "{}")
    assert claimed and details[-2:] == [None, None]


def test_claim_skips_stopped_and_unknown_executions(store: RedisStore) -> None:
    keys = store.keys
    store.client.hset(keys.execution("e"), "status", "ABORTED")
    store.client.hset(keys.steps("e"), "A|s", "SCHEDULED")
    assert store.claim_step("e", "A", "t", 1.0, "{}") == (False, ["execution ABORTED"])
    assert store.claim_step("nope", "A", "t", 1.0, "{}") == (False, ["no execution"])


def test_map_window_reads_the_chunk_of_the_next_item(store: RedisStore) -> None:
    steps, branches = store.keys.steps("e"), store.keys.branches("e", "M")
    store.client.hset(steps, mapping={"M|next": "2", "M|t": "3"})
    store.client.hset(branches, "k0", '[2,"c"]')
    assert store.map_window("e", "M", 128) == ["2", "3", None, '[2,"c"]']
    store.client.hset(steps, "M|next", "3")
    assert store.map_window("e", "M", 128) == ["3", "3", None]


def test_map_window_reads_every_chunk_a_refill_spans(store: RedisStore) -> None:
    steps, branches = store.keys.steps("e"), store.keys.branches("e", "M")
    store.client.hset(steps, mapping={"M|next": "126", "M|t": "300", "M|c": "50"})
    store.client.hset(branches, mapping={"k0": "[126,0,1]", "k1": "[128,2]", "k2": "[256,3]"})
    assert store.map_window("e", "M", 128) == ["126", "300", "50", "[126,0,1]", "[128,2]"]


def test_branch_fields_read_any_number_of_fields_in_bounded_commands(store: RedisStore) -> None:
    branches = store.keys.branches("e", "M")
    store.client.hset(branches, mapping={f"r{i}": str(i) for i in range(2500)})
    fields = [f"r{i}" for i in range(2501)]
    assert store.branch_fields("e", "M", fields) == [*(str(i) for i in range(2500)), None]


def test_a_commit_checks_every_op_before_its_first_write(store: RedisStore) -> None:
    # Redis does not roll a script back: an op that would fail half-way (here a hash
    # command on a string, as a corrupted key would be) must refuse the whole commit.
    store.client.set("t:odd", "a string")
    write = Write().op("history", "t:x:1:h", '{"type": "A"}')
    write.op("hset", "t:x:1:s", "A", "{}").op("hset", "t:odd", "f", "v")
    with pytest.raises(CommitRefused, match="commit refused, nothing written: hset on t:odd"):
        store.apply(write)
    assert not store.client.exists("t:x:1:h") and not store.client.exists("t:x:1:s")
    assert store.client.get("t:odd") == "a string"


def test_a_commit_refuses_a_history_whose_ids_are_not_dense(store: RedisStore) -> None:
    store.client.xadd("t:x:1:h", {"event": "{}"}, id="0-5")
    write = Write().op("hset", "t:x:1:s", "A", "{}").op("history", "t:x:1:h", "{}")
    with pytest.raises(CommitRefused, match="nothing written: history t:x:1:h ends at 0-5"):
        store.apply(write)
    assert not store.client.exists("t:x:1:s") and store.client.xlen("t:x:1:h") == 1


def test_a_commit_of_any_number_of_arguments_applies_whole(store: RedisStore) -> None:
    # Lua's unpack stops at a few thousand values: the script sends long argument lists
    # in slices, in the same atomic call.
    fields = [value for i in range(30_000) for value in (f"f{i}", str(i))]
    events = [f'{{"n": {i}}}' for i in range(9_000)]
    write = Write().op("hset", "t:x:1:s", *fields).op("history", "t:x:1:h", *events)
    assert store.apply(write).ok
    assert store.client.hlen("t:x:1:s") == 30_000 and store.client.xlen("t:x:1:h") == 9_000


def test_branch_hashes_expire_and_persist_with_their_execution(store: RedisStore) -> None:
    keys = store.keys
    index = keys.branch_hashes("e")
    store.client.hset(keys.branches("e", "M"), "r0", "1")
    store.client.hset(keys.branches("e", "P[0]/M"), "r0", "1")
    store.client.sadd(index, "M", "P[0]/M")
    prefix = keys.branches("e", "")
    assert store.apply(Write().op("branches", index, prefix, "expire", 100)).ok
    for key in (index, keys.branches("e", "M"), keys.branches("e", "P[0]/M")):
        assert 0 < store.client.ttl(key) <= 100
    assert store.apply(Write().op("branches", index, prefix, "persist")).ok
    for key in (index, keys.branches("e", "M"), keys.branches("e", "P[0]/M")):
        assert store.client.ttl(key) == -1


def test_apply_many_keeps_each_write_atomic(store: RedisStore) -> None:
    store.client.hset("t:a", "status", "RUNNING")
    good = Write().guard_field("t:a", "status", "RUNNING").op("hset", "t:a", "x", "1")
    bad = Write().guard_field("t:b", "status", "RUNNING").op("hset", "t:b", "x", "1")
    results = store.apply_many([good, bad])
    assert [r.ok for r in results] == [True, False]
    assert store.client.hget("t:a", "x") == "1" and store.client.exists("t:b") == 0


def test_ops_without_arguments_and_existence_guards(store: RedisStore) -> None:
    store.client.set("t:c", "5")
    write = Write().guard_exists("t:c", True).guard_exists("t:d", False)
    write.op("incr", "t:c").op("persist", "t:c").op("zadd", "t:z", "1.5", "m")
    assert store.apply(write).ok
    assert store.client.get("t:c") == "6" and store.client.zscore("t:z", "m") == 1.5
    store.client.set("t:d", "x")
    assert store.apply(write).failed_guard == 1


def test_lane_reloads_scripts_after_a_script_flush(store: RedisStore) -> None:
    store.client.script_flush()
    assert store.apply(Write().op("hset", "t:a", "x", "1")).ok
    assert store.client.hget("t:a", "x") == "1"


def test_lane_reconnects_after_its_connection_is_killed(store: RedisStore) -> None:
    assert store.apply(Write().op("set", "t:a", "1")).ok
    lane_ids = [client["id"] for client in store.client.client_list() if client["cmd"] == "evalsha"]
    assert lane_ids
    for client_id in lane_ids:
        store.client.client_kill_filter(_id=client_id)
    assert store.apply(Write().op("set", "t:a", "2")).ok
    assert store.client.get("t:a") == "2"


def test_lane_uses_one_connection_per_thread(store: RedisStore) -> None:
    import threading

    seen: list[object] = []  # holds the connections, so no id can be reused

    def work() -> None:
        store.apply(Write().op("incr", "t:n"))
        seen.append(store.lane._connection())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.client.get("t:n") == "4"
    assert len({id(c) for c in seen}) == 4


def test_lane_opens_its_own_connection_after_a_fork(store: RedisStore) -> None:
    import os

    store.apply(Write().op("set", "t:a", "parent"))
    parent = store.lane._connection()
    pid = os.fork()
    if pid == 0:  # the child: must not write on the parent's socket
        code = 0
        try:
            ok = store.apply(Write().op("set", "t:a", "child")).ok
            code = 0 if ok and store.lane._connection() is not parent else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.client.get("t:a") == "child"
    assert store.apply(Write().op("set", "t:a", "parent-again")).ok


def history_write(key: str, *events: str, most: int | None = None) -> Write:
    write = Write()
    if most is not None:
        write.guard_length(key, most)
    return write.op("history", key, *events)


def test_history_is_a_stream_with_dense_ids_and_reads_after_an_id(store: RedisStore) -> None:
    key = store.keys.history("e")
    events = [json.dumps({"type": "T", "n": n}) for n in range(1, 6)]
    assert store.apply(history_write(key, *events[:2])).ok
    assert store.apply(history_write(key, *events[2:])).ok
    assert store.client.type(key) == "stream"
    assert [entry_id for entry_id, _ in store.client.xrange(key)] == [f"0-{n}" for n in range(1, 6)]
    assert store.history_length("e") == 5
    assert [e["n"] for e in store.history("e")] == [1, 2, 3, 4, 5]
    later = store.history("e", after=3)
    assert [(e["id"], e["n"]) for e in later] == [(4, 4), (5, 5)]
    assert [e["id"] for e in store.history("e", after=1, count=2)] == [2, 3]
    assert store.history("e", after=5) == []
    # A waiting read returns what is there at once, and [] after its wait when nothing is.
    assert [e["id"] for e in store.wait_history("e", 4, 5.0)] == [5]
    assert store.wait_history("e", 5, 0.05) == []
    assert store.history_cursor("e") == (5, None)


def test_the_history_quota_counts_stream_entries(store: RedisStore) -> None:
    key = store.keys.history("e")
    assert store.apply(history_write(key, "{}", "{}", "{}")).ok
    refused = store.apply(history_write(key, "{}", most=2))
    assert not refused.ok and refused.failed_guard == 0
    assert store.client.xlen(key) == 3
    assert store.apply(history_write(key, "{}", most=3)).ok
    assert store.history_length("e") == 4


def test_a_history_written_as_a_list_before_streams_is_read_and_appended(
    store: RedisStore,
) -> None:
    keys = store.keys
    key = keys.history("old")
    store.client.rpush(key, *(json.dumps({"type": "T", "n": n}) for n in (1, 2, 3)))
    assert store.history_length("old") == 3
    assert [e["id"] for e in store.history("old", after=1)] == [2, 3]
    assert [e["id"] for e in store.history("old", after=0, count=2)] == [1, 2]
    assert [e["id"] for e in store.wait_history("old", 2, 0.05)] == [3]
    assert store.wait_history("old", 3, 0.05) == []
    assert not store.apply(history_write(key, "{}", most=2)).ok
    assert store.apply(history_write(key, json.dumps({"type": "T", "n": 4}), most=3)).ok
    store.client.hset(keys.execution("old"), mapping={"status": "RUNNING", "name": "old"})
    store.client.hset(keys.steps("old"), mapping={"A": "{}", "A|s": "SCHEDULED"})
    claimed, details = store.claim_step("old", "A", "tok", 50.0, json.dumps({"type": "T"}))
    assert claimed and details[6] == 5  # the history length after the TaskStarted
    assert store.client.type(key) == "list"
    assert [e["id"] for e in store.history("old", after=3)] == [4, 5]
    assert store.history_cursor("old") == (5, "RUNNING")
    assert store.timer_reads([("old", "A")])[0][-1] == 5


def test_compacting_a_history_keeps_its_events_and_shrinks_it(store: RedisStore) -> None:
    key = store.keys.history("e")
    events = [json.dumps({"type": "T", "n": n}) for n in range(1, 21)]
    assert store.apply(history_write(key, *events)).ok
    before = store.client.memory_usage(key, samples=0)
    assert store.apply(Write().op("compact", key).op("expire", key, 100)).ok
    assert [e["n"] for e in store.history("e")] == list(range(1, 21))
    assert store.client.memory_usage(key, samples=0) < before
    assert 0 < store.client.ttl(key) <= 100
    assert store.apply(history_write(key, "{}")).ok  # a redrive appends on
    assert store.history_length("e") == 21


def test_trimming_dead_letters_drops_the_oldest_with_their_letters(store: RedisStore) -> None:
    keys = store.keys
    for n in range(5):
        store.add_dead_letter(f"l{n}", f"letter {n}", float(n), 100)
    assert store.trim_dead_letters(5) == 0
    assert store.trim_dead_letters(3) == 2
    assert store.dead_letter_ids(10) == ["l4", "l3", "l2"]
    assert not store.client.exists(keys.dead_letter("l0"), keys.dead_letter("l1"))
    assert store.dead_letter_texts(["l2", "l0", "l4"]) == ["letter 2", None, "letter 4"]
    assert store.trim_dead_letters(0) == 3
    assert store.client.exists(keys.dead_letters(0), keys.dead_letter("l4")) == 0


def test_a_letter_no_longer_beyond_the_limit_is_kept(store: RedisStore) -> None:
    # A caller that read the index before another trimmed it must not drop a letter the
    # limit now keeps: the script re-checks its rank.
    for n in range(3):
        store.add_dead_letter(f"l{n}", "x", float(n), 100)
    index, letter = store.keys.dead_letters(0), store.keys.dead_letter("l1")
    assert store._trim(keys=[index, letter], args=[2, "l1"]) == 0  # l0 is the one over
    assert store._trim(keys=[index, store.keys.dead_letter("l0")], args=[2, "l0"]) == 1
    assert store._trim(keys=[index, store.keys.dead_letter("l0")], args=[2, "l0"]) == 0
    assert store.dead_letter_ids(10) == ["l2", "l1"]


def test_timer_reads_are_one_call_per_timer_and_survive_a_script_flush(store: RedisStore) -> None:
    keys = store.keys
    for n in range(3):
        store.client.hset(keys.execution(f"e{n}"), mapping={"name": f"n{n}", "status": "RUNNING"})
        store.client.hset(keys.steps(f"e{n}"), mapping={"W": "{}", "W|s": "WAITING"})
    store.client.hset(keys.execution("e0"), "priority", "7")  # the execution's priority
    store.client.script_flush()
    reads = store.timer_reads([("e0", "W"), ("gone", "W"), ("e2", "W")])
    assert reads == [
        ["n0", None, None, None, "RUNNING", "WAITING", "{}", "7", 0],
        [None, None, None, None, None, None, None, None, 0],
        ["n2", None, None, None, "RUNNING", "WAITING", "{}", None, 0],
    ]


def test_a_history_reads_old_json_entries_and_compact_ones_after_them(
    store: RedisStore,
) -> None:
    # An execution running through the upgrade: its first entries have the field
    # "event" (JSON objects), the later ones the compact form (field "e").
    keys = store.keys
    key = keys.history("mixed")
    start = 1764700000.1234567
    store.client.hset(keys.execution("mixed"), mapping={"status": "RUNNING", "start": repr(start)})
    old = [
        {"type": "ExecutionStarted", "ts": 1764700000.123, "input": {"a": 1}},
        {"type": "PassStateEntered", "ts": 1764700000.2, "state": "P", "input": {"a": 1}},
    ]
    for n, event in enumerate(old, 1):
        store.client.xadd(key, {"event": json.dumps(event)}, id=f"0-{n}")
    new = [
        {"type": "PassStateExited", "ts": 1764700001.25, "state": "P", "output": {"a": 1}},
        {"type": "TaskStarted", "ts": start + 2, "state": "T", "key": "M[0]/T"},
        {"type": "ExecutionSucceeded", "ts": 1764700003.0, "output": None},
    ]
    base = base_ms(start)
    assert store.apply(history_write(key, *(encode_event(e, base) for e in new))).ok
    assert [fields for _, fields in store.client.xrange(key, "0-3", "0-3")] == [
        {"e": '[3,1127,"P",{"a":1}]'}
    ]
    expected = [{**e, "id": n} for n, e in enumerate(old + new, 1)]
    assert store.history("mixed") == expected
    assert store.history("mixed", after=1, count=3) == expected[1:4]
    assert store.wait_history("mixed", 3, 5.0) == expected[3:]
    assert store.wait_history("mixed", 0, 5.0, count=2) == expected[:2]
    # Waiting for the end reads only the newest event's type, in either form.
    assert store.wait_newest_event("mixed", 3, 5.0, 1000) == (5, "ExecutionSucceeded")
    assert store.wait_newest_event("mixed", 0, 5.0, 2) == (2, "PassStateEntered")
    assert store.wait_newest_event("mixed", 0, 5.0, 4) == (4, "TaskStarted")
    assert store.wait_newest_event("mixed", 5, 0.05, 1000) == (5, None)
    # Relative timestamps need the record's start: without the record (the execution
    # forgotten) the history reads as empty, as its record does.
    store.client.delete(keys.execution("mixed"))
    assert store.history("mixed") == []
    assert store.history("mixed", count=2) == expected[:2]  # JSON objects only


def test_a_list_history_reads_compact_events_appended_after_its_json_ones(
    store: RedisStore,
) -> None:
    keys = store.keys
    key = keys.history("oldlist")
    start = 1764700000.5
    store.client.hset(
        keys.execution("oldlist"), mapping={"status": "RUNNING", "start": repr(start)}
    )
    first = {"type": "ExecutionStarted", "ts": 1764700000.5, "input": {}}
    store.client.rpush(key, json.dumps(first))
    later = {"type": "PassStateEntered", "ts": 1764700000.75, "state": "P", "input": {}}
    assert store.apply(history_write(key, encode_event(later, base_ms(start)))).ok
    assert store.client.type(key) == "list"
    assert store.client.lrange(key, 1, 1) == ['[2,250,"P",{}]']
    assert store.history("oldlist") == [{**first, "id": 1}, {**later, "id": 2}]
    assert store.wait_history("oldlist", 1, 0.05) == [{**later, "id": 2}]
    assert store.wait_newest_event("oldlist", 0, 0.05, 1000) == (2, "PassStateEntered")
    assert store.wait_newest_event("oldlist", 2, 0.05, 1000) == (2, None)


def test_a_commit_whose_first_write_is_a_history_with_ids_not_dense_writes_nothing(
    store: RedisStore,
) -> None:
    # The history op comes first (as in every transition): its ids are checked by its
    # own first XADD, which fails before anything is written.
    store.client.xadd("t:x:1:h", {"event": "{}"}, id="0-5")
    write = Write().op("history", "t:x:1:h", "{}", "{}").op("hset", "t:x:1:s", "A", "{}")
    with pytest.raises(CommitRefused, match="nothing written: history t:x:1:h does not end at 0-1"):
        store.apply(write)
    assert not store.client.exists("t:x:1:s") and store.client.xlen("t:x:1:h") == 1
