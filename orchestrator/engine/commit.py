"""Committing transitions: read what a transition needs, compute it, write it atomically.

Every change of an execution follows one pattern: read what is needed (a
:class:`RedisReader` remembers every read as a guard), compute the transition with the
pure :mod:`orchestrator.language.interpreter`, commit it with :meth:`RedisStore.apply`
(guarded compare-and-set, one Lua call), and only then publish the tasks it dispatches
(:mod:`orchestrator.engine.publisher`) and perform the joins it completed. A guard that
fails because a sibling committed first recomputes the transition from fresh reads; one
that fails because the step moved on or the execution stopped discards it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from orchestrator.config import get_settings
from orchestrator.engine.celery_app import publishing_app
from orchestrator.engine.dead_letters import trim_dead_letters
from orchestrator.engine.history import base_ms, encode_event
from orchestrator.engine.keys import (
    EXECUTION_STATUSES,
    MAP_RUN_CHILDREN_SUFFIX,
    MAP_RUN_SUFFIX,
    Keys,
)
from orchestrator.engine.machines import interpreter_from_record
from orchestrator.engine.messages import excerpt
from orchestrator.engine.publisher import Handover, publish
from orchestrator.engine.records import (
    ITEM_CHUNK,
    base_status,
    branch_failure_marks,
    branch_location,
    chunk_items,
    counter_field,
    failure_marks,
    field_name,
    item_chunk_text,
    lease_member,
    map_run_fields,
    record_texts,
    timer_member,
)
from orchestrator.engine.store import RedisStore, Write, get_store
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
    MapRunTimer,
    Reader,
    RedriveView,
    StepRecord,
    StepStatus,
    Transition,
    ancestors,
)
from orchestrator.language.jsontext import dumps
from orchestrator.language.slots import Slot, SlotKind
from orchestrator.language.tokens import redact_text

logger = logging.getLogger("orchestrator.engine.commit")

#: The task that shows a dead-lettered execution in Flower (:mod:`orchestrator.engine.steps`).
DEAD_LETTER_TASK = "orchestrator.dead_letter"

# -- committing -------------------------------------------------------------------------


class RedisReader(Reader):
    """Reads the slots the interpreter asks for from the step hash and the containers'
    branch hashes, and remembers what it read as guards of the commit."""

    def __init__(self, store: RedisStore, execution_id: str) -> None:
        self.store = store
        self.execution_id = execution_id
        self.seen: dict[str, str | None] = {}
        """Step-hash fields read, by field name."""
        self.branch_seen: dict[tuple[str, str], str | None] = {}
        """Branch-hash fields read, by (container, field)."""
        self.chunks: dict[tuple[str, int], dict[int, str]] = {}
        """Item inputs read, by (container, chunk). Not guarded: a chunk never changes
        once written, and the ``next item`` field that says which items are left is."""

    def get(self, slot: Slot) -> str | None:
        location = branch_location(slot)
        if location is None:
            field = field_name(slot)
            if field not in self.seen:
                self.seen[field] = self.store.step_field(self.execution_id, field)
            return self.seen[field]
        if slot.kind is SlotKind.ITEM_INPUT:
            return self._item(slot.owner, slot.branch)  # type: ignore[arg-type]
        if location not in self.branch_seen:
            container, field = location
            self.branch_seen[location] = self.store.branch_fields(
                self.execution_id, container, [field]
            )[0]
        return self.branch_seen[location]

    def _item(self, container: str, index: int) -> str | None:
        chunk = index // ITEM_CHUNK
        items = self.chunks.get((container, chunk))
        if items is None:
            (text,) = self.store.branch_fields(self.execution_id, container, [f"k{chunk}"])
            items = self.chunks[container, chunk] = chunk_items(text) if text else {}
        return items.get(index)

    def get_many(self, slots: list[Slot]) -> list[str | None]:
        """Not guarded: what a join reads (its branches' results) no longer changes."""
        found: list[str | None] = [None] * len(slots)
        steps: list[int] = []
        branches: dict[str, list[int]] = {}
        for i, slot in enumerate(slots):
            location = branch_location(slot)
            if location is None:
                steps.append(i)
            else:
                branches.setdefault(location[0], []).append(i)
        values = self.store.step_fields(self.execution_id, [field_name(slots[i]) for i in steps])
        for i, value in zip(steps, values, strict=True):
            found[i] = value
        for container, positions in branches.items():
            fields = [branch_location(slots[i])[1] for i in positions]  # type: ignore[index]
            values = self.store.branch_fields(self.execution_id, container, fields)
            for i, value in zip(positions, values, strict=True):
                found[i] = value
        return found

    def prefetch_window(self, container: str, starting: int | None = None) -> None:
        next_field = field_name(Slot.next_item(container))
        if next_field in self.seen:
            return
        next_index, total, count, *chunks = self.store.map_window(
            self.execution_id, container, ITEM_CHUNK, starting
        )
        self.seen[next_field] = next_index
        self.seen[field_name(Slot.total(container))] = total
        self.seen[field_name(Slot.refill(container))] = count
        if next_index is not None:
            first = int(next_index) // ITEM_CHUNK
            for offset, text in enumerate(chunks):
                self.chunks[container, first + offset] = chunk_items(text) if text else {}


class SnapshotReader(Reader):
    """Reads slots from a step hash read earlier (``RedisStore.steps``), and branch-hash
    slots from the store; nothing is guarded: the caller's write guards what the snapshot
    depends on."""

    def __init__(self, raw: dict[str, str], store: RedisStore, execution_id: str) -> None:
        self.raw = raw
        self.branches = RedisReader(store, execution_id)

    def get(self, slot: Slot) -> str | None:
        if branch_location(slot) is not None:
            return self.branches.get(slot)
        return self.raw.get(field_name(slot))


def transition_write(
    store: RedisStore,
    execution_id: str,
    tr: Transition,
    write: Write | None = None,
    info: ExecutionInfo | None = None,
) -> Write:
    """The Redis writes of a transition (guards are the caller's).

    ``info``: the execution's, whose start time and workflow name its listing indexes
    when the transition ends it (without it, they are read from its record).
    """
    settings = get_settings()
    keys = store.keys
    part = keys.partition_of(execution_id)
    write = write or Write()
    exec_key = keys.execution(execution_id)
    steps_key = keys.steps(execution_id)
    if tr.end is not None and (tr.now, [MapRunTimer.ADVANCE, "", 0]) in tr.timers:
        _abort_map_runs(store, execution_id, tr, write)
    if tr.events:
        # encode_event(), not dumps(): an event that cannot be stored fails here, before
        # the commit (see prepare_transition), not in the middle of sending it. Stored in
        # the compact form (orchestrator.engine.history), timestamps after the start.
        # Task tokens never reach the history (a TaskScheduled's parameters from
        # $$.Task.Token): whoever reads it could complete the task.
        base = base_ms(info.start_time) if info is not None else None
        write.op(
            "history",
            keys.history(execution_id),
            *(redact_text(encode_event(e, base)) for e in tr.events),
        )
    sets: list[str] = []
    deletes: list[str] = []
    for key, record in tr.records.items():
        if record is None:
            deletes.append(key)
        else:
            sets += [key, record.dumps()]
    for key, status in tr.statuses.items():
        sets += [keys.status_field(key), status]
    branch_changes = _StepChanges()
    for slot, value in tr.changes.items():
        if branch_changes.add(slot, value):
            continue
        if value is None:
            deletes.append(field_name(slot))
        else:
            sets += [field_name(slot), value]
    if deletes:
        write.op("hdel", steps_key, *deletes)
    if sets:
        write.op("hset", steps_key, *sets)
    branch_changes.write_to(write, keys, execution_id)
    for event in tr.events:
        if event["type"] == "MapRunStarted":
            _register_map_run(write, keys, execution_id, event.get("key") or event["state"])
    for key in tr.released:
        write.op("zrem", keys.leases(part), lease_member(execution_id, key))
    for dispatch in tr.dispatches:
        # In the outbox, not published yet: sent again after the lease unless the
        # publisher marks it published (orchestrator.engine.publisher) or a worker claims it.
        due = tr.now + settings.lease_seconds
        write.op(
            "zadd", keys.outbox(part), repr(due), lease_member(execution_id, dispatch.step_key)
        )
    for due, (kind, key, attempt) in tr.timers:
        write.op(
            "zadd", keys.timers(part), repr(due), timer_member(kind, execution_id, key, attempt)
        )
    for token, target in tr.tokens.items():
        if target is None:
            write.op("hdel", keys.task_tokens(execution_id), token)
        else:
            write.op("hset", keys.task_tokens(execution_id), token, dumps(target))
    # One op per container, however many of its branches ended in this transition.
    for container, ended in Counter(tr.joins).items():
        write.join(
            steps_key,
            container,
            keys.leases(part),
            tr.now + settings.lease_seconds,
            lease_member(execution_id, container),
            ended,
        )
    if tr.end is not None:
        fields: list[str] = ["status", tr.end["status"], "stop", repr(tr.now)]
        for name in ("output", "error", "cause"):
            if name in tr.end:
                fields += [name, dumps(tr.end[name])]
        write.op("hset", exec_key, *fields)
        listed = listing(store, execution_id, info)
        if listed is not None:
            move_listing(write, store, execution_id, *listed, ("RUNNING",), tr.end["status"])
            count_execution(write, store, execution_id, tr.end["status"], listed[0])
        # However it ended, its tokens end with it (in this write, at their number's cost).
        write.op("del", keys.task_tokens(execution_id))
        # A Distributed Map's child tells its parent (a timer of the parent's, due now),
        # in its own partition, so this write stays in one slot: beat moves the timer to
        # the parent's partition when it finds it (RedisStore.due_timer_entries).
        write.notify(exec_key, keys.timers(part), tr.now)
        # What a finished execution keeps for the retention period, at its exact size.
        write.op("compact", keys.history(execution_id))
        for key in (exec_key, keys.history(execution_id), steps_key):
            write.op("expire", key, settings.retention_seconds)
        write.op(
            "branches",
            keys.branch_hashes(execution_id),
            keys.branches(execution_id, ""),
            "expire",
            settings.retention_seconds,
        )
        if tr.end["status"] in ("FAILED", "TIMED_OUT"):
            letter = {
                "execution_id": execution_id,
                "state": tr.end.get("state"),
                "error": tr.end.get("error"),
                "cause": tr.end.get("cause"),
                # An excerpt: the whole input stays in the execution's steps, for redrive.
                "input": excerpt(tr.end.get("state_input")),
                "timestamp": tr.now,
            }
            write.op("set", keys.dead_letter(execution_id), redact_text(dumps(letter)))
            # A dead letter lives as long as its execution's record.
            write.op("expire", keys.dead_letter(execution_id), settings.retention_seconds)
            write.op("zadd", keys.dead_letters(part), repr(tr.now), execution_id)
    return write


#: The events of a Map Run's end in its advance's transition.
MAP_RUN_ENDS = ("MapRunSucceeded", "MapRunFailed")


def _abort_map_runs(store: RedisStore, execution_id: str, tr: Transition, write: Write) -> None:
    """The execution fails or times out with Map Runs running (its end set the advance
    that stops their children: orchestrator/engine/maprun.py ``stop_map_runs``): they are
    ABORTED in the end's own write, each with a ``MapRunAborted`` before the execution's
    last event, as a stop writes them, and marked ``abort`` for that advance."""
    if any(event["type"] == "MapRunAborted" for event in tr.events):
        return  # (written already)
    # A run that ends in this transition (its Map's failure fails the execution) is not
    # aborted: its advance writes its end.
    ending = {e.get("mapRunArn") for e in tr.events if e["type"] in MAP_RUN_ENDS}
    keys = store.keys
    runs: list[tuple[str, str | None]] = []
    for key in store.map_run_containers(execution_id):
        mr = store.map_run(execution_id, key)
        first = None
        if mr.get("status") != "RUNNING" and key not in tr.records:
            first = unadvanced_map_run(store, execution_id, key, mr)
        if (mr.get("status") != "RUNNING" and first is None) or mr.get("arn") in ending:
            continue
        mr_key = keys.map_run(execution_id, key)
        version = str(int(mr.get("v") or 0) + 1)
        write.guard_field(mr_key, "v", mr.get("v"))
        if first is not None:
            # Started, listed by its start's commit, not advanced yet: its record now.
            write.op("del", mr_key)
            write.op("del", keys.map_run_children(execution_id, key))
            write.op("hset", mr_key, *[x for pair in first.items() for x in pair])
        write.op("hset", mr_key, "status", "ABORTED", "stop", repr(tr.now), "abort", "1")
        write.op("hset", mr_key, "v", version)
        runs.append((key, (first or mr).get("arn")))
    if runs and tr.events:
        last = tr.events.pop()
        tr.events += [*Interpreter.map_runs_aborted(tr.now, runs).events, last]


def unadvanced_map_run(
    store: RedisStore, execution_id: str, key: str, mr: dict[str, str]
) -> dict[str, str] | None:
    """The first fields of the Map Run that the running Map ``key`` started and no
    advance has recorded yet (its start's commit listed it; ``mr``: a former run's
    record, or nothing), else None."""
    status, text = store.step_state(execution_id, key)
    if status is None or base_status(status) != StepStatus.RUNNING or not text:
        return None
    record = StepRecord.loads(text)
    run = record.run
    if run is None or run["id"] == mr.get("run"):
        return None
    return map_run_fields(run, key, record.entered)


def _register_map_run(write: Write, keys: Keys, execution_id: str, key: str) -> None:
    # The transition that starts a Map Run lists it among the execution's (its record is
    # the first advance's to write), so a stop before that advance finds it and aborts it.
    index = keys.branch_hashes(execution_id)
    write.op("sadd", index, key + MAP_RUN_SUFFIX, key + MAP_RUN_CHILDREN_SUFFIX)


class _StepChanges:
    """A transition's changes of its containers' branch hashes, grouped per hash.

    A container whose branches are forgotten (``Slot.branches``) loses its branch hash
    first; the branch changes that follow in the same transition are those of the
    container starting over. Item inputs are written a chunk per field, and a chunk goes
    once the last of its items has started.
    """

    def __init__(self) -> None:
        self.cleared: list[str] = []
        self.sets: dict[str, list[str]] = {}
        self.deletes: dict[str, list[str]] = {}
        self.items: dict[str, dict[int, str]] = {}

    def add(self, slot: Slot, value: str | None) -> bool:
        """Take ``slot``'s change if it is a branch-hash one (True), else leave it."""
        if slot.kind is SlotKind.BRANCHES:
            self.cleared.append(slot.owner)
            return True
        location = branch_location(slot)
        if location is None:
            return False
        container, field = location
        if slot.kind is SlotKind.ITEM_INPUT:
            if value is not None:
                self.items.setdefault(container, {})[slot.branch] = value  # type: ignore[index]
            elif (slot.branch + 1) % ITEM_CHUNK == 0:  # type: ignore[operator]
                self.deletes.setdefault(container, []).append(field)
        elif value is None:
            self.deletes.setdefault(container, []).append(field)
        else:
            self.sets.setdefault(container, []).extend((field, value))
        return True

    def write_to(self, write: Write, keys: Keys, execution_id: str) -> None:
        index = keys.branch_hashes(execution_id)
        for container in self.cleared:
            # UNLINK: a large Map's hash is freed in the background, not in the script.
            write.op("unlink", keys.branches(execution_id, container))
            write.op("srem", index, container)
        for container, items in self.items.items():
            fields = self.sets.setdefault(container, [])
            for first, inputs in _chunks(items):
                fields += [f"k{first // ITEM_CHUNK}", item_chunk_text(first, inputs)]
        for container, fields in self.deletes.items():
            write.op("hdel", keys.branches(execution_id, container), *fields)
        for container, fields in self.sets.items():
            write.op("hset", keys.branches(execution_id, container), *fields)
            write.op("sadd", index, container)


def _chunks(items: dict[int, str]) -> list[tuple[int, list[str]]]:
    """Item inputs as ``ITEM_CHUNK``-aligned runs of consecutive indexes: (first, inputs)."""
    runs: list[tuple[int, list[str]]] = []
    last = None
    for index in sorted(items):
        if last is None or index != last + 1 or index % ITEM_CHUNK == 0:
            runs.append((index, []))
        runs[-1][1].append(items[index])
        last = index
    return runs


def listing(
    store: RedisStore, execution_id: str, info: ExecutionInfo | None
) -> tuple[str, str] | None:
    """``(workflow, start time)`` that index the execution in listings: ``info``'s, else
    (no info, or a stand-in without a workflow) its record's; None if it has none."""
    if info is not None and info.workflow:
        return info.workflow, repr(info.start_time)
    meta = store.execution_meta(execution_id)
    return None if meta is None else (meta[1], meta[2])


def move_listing(
    write: Write,
    store: RedisStore,
    execution_id: str,
    workflow: str,
    start: str,
    old: tuple[str, ...],
    new: str,
) -> None:
    """Move an execution from the listing indexes of the statuses ``old`` to those of
    ``new`` (the global one and its workflow's), scored by its start time: in the write
    that changes its status, so a listing by status neither misses nor repeats it."""
    keys = store.keys
    part = keys.partition_of(execution_id)
    for status in old:
        write.op("zrem", keys.executions_index(part, status), execution_id)
        write.op("zrem", keys.executions_index(part, status, workflow), execution_id)
    write.op("zadd", keys.executions_index(part, new), start, execution_id)
    write.op("zadd", keys.executions_index(part, new, workflow), start, execution_id)


def count_execution(
    write: Write, store: RedisStore, execution_id: str, kind: str, workflow: str
) -> None:
    """Count an execution ``kind`` (``started``, ``redriven`` or its end status) of
    ``workflow`` in the write that makes it so (in the execution's partition): a commit
    applies once, so the Prometheus counters (orchestrator/engine/metrics.py) never count
    a redelivered message twice."""
    counters = store.keys.execution_counters(store.keys.partition_of(execution_id))
    write.op("hincrby", counters, counter_field(kind, workflow), 1)


def start_write(
    store: RedisStore,
    execution_id: str,
    *,
    workflow: str,
    input_text: str,
    input_hash: str,
    now: float,
    def_hash: str,
    definition_text: str,
    priority: int | None = None,
    extra: dict[str, str] | None = None,
) -> Write:
    """A new execution's record, guarded by its absence (a name is an idempotency key);
    its first transition's writes are added to it (:func:`start_transition`).
    ``priority``: recorded with it, read with it by whoever publishes its steps;
    ``extra``: more record fields (the ``version`` and ``alias`` of a registered state
    machine it runs through)."""
    keys = store.keys
    exec_key = keys.execution(execution_id)
    write = Write().guard_exists(exec_key, False)
    write.op(
        "hset",
        exec_key,
        *("status", "RUNNING", "name", execution_id, "workflow", workflow),
        *("input", input_text, "input_hash", input_hash, "start", repr(now)),
        *("def_hash", def_hash, "redrives", "0"),
        *(("priority", str(priority)) if priority is not None else ()),
        *(item for pair in (extra or {}).items() for item in pair),
    )
    part = keys.partition_of(execution_id)
    write.op("zadd", keys.executions(part), repr(now), execution_id)
    write.op("zadd", keys.executions_index(part, workflow=workflow), repr(now), execution_id)
    # A name started again after its record expired may still be in the index of the
    # status it ended with (listings drop expired ids only when they meet them).
    ended = tuple(s for s in EXECUTION_STATUSES if s != "RUNNING")
    move_listing(write, store, execution_id, workflow, repr(now), ended, "RUNNING")
    count_execution(write, store, execution_id, "started", workflow)
    # Executions share their definition by content hash; it outlives the newest of them.
    write.op("set", keys.definition(part, def_hash), definition_text)
    write.op("expire", keys.definition(part, def_hash), 2 * get_settings().retention_seconds)
    return write


def child_start_write(
    store: RedisStore,
    child_id: str,
    *,
    workflow: str,
    input_text: str,
    now: float,
    def_hash: str,
    definition_text: str,
    priority: int,
    link: Sequence[str],
) -> Write:
    """A child execution's start (:func:`start_write`; a child workflow's or a Distributed
    Map's), its record linked to its parent by ``link`` (field, value, ...) before its
    first transition's writes: a child that ends in its start commit notifies its
    parent in it."""
    write = start_write(
        store,
        child_id,
        workflow=workflow,
        input_text=input_text,
        input_hash=hashlib.sha1(input_text.encode()).hexdigest(),
        now=now,
        def_hash=def_hash,
        definition_text=definition_text,
        priority=priority,
    )
    write.op("hset", store.keys.execution(child_id), *link)
    return write


def stop_write(store: RedisStore, execution_id: str, tr: Transition) -> Write:
    """The write of a stop transition (:meth:`Interpreter.stop`), guarded by the execution
    still running."""
    write = Write().guard_field(store.keys.execution(execution_id), "status", "RUNNING")
    return transition_write(store, execution_id, tr, write)


def redrive_write(
    store: RedisStore,
    execution_id: str,
    tr: Transition,
    *,
    status: str,
    redrives: int,
    def_hash: str | None,
    info: ExecutionInfo | None = None,
) -> Write:
    """The write of a redrive transition (:meth:`Interpreter.redrive`): the execution
    runs again (guarded by the ``status`` it was read with), its keys lose the retention
    they got when it ended, its dead letter goes and it is listed as running again."""
    keys = store.keys
    exec_key = keys.execution(execution_id)
    write = Write().guard_field(exec_key, "status", status)
    write.op("hset", exec_key, "status", "RUNNING", "redrives", str(redrives))
    write.op("hdel", exec_key, "output", "error", "cause", "stop")
    for key in (exec_key, keys.history(execution_id), keys.steps(execution_id)):
        write.op("persist", key)
    write.op(
        "branches", keys.branch_hashes(execution_id), keys.branches(execution_id, ""), "persist"
    )
    part = keys.partition_of(execution_id)
    if def_hash:
        expire = 2 * get_settings().retention_seconds
        write.op("expire", keys.definition(part, def_hash), expire)
    write.op("del", keys.dead_letter(execution_id))
    write.op("zrem", keys.dead_letters(part), execution_id)
    listed = listing(store, execution_id, info)
    if listed is not None:
        move_listing(write, store, execution_id, *listed, (status,), "RUNNING")
        count_execution(write, store, execution_id, "redriven", listed[0])
    return transition_write(store, execution_id, tr, write, info)


@dataclass
class Redrive:
    """A prepared redrive: its transition, the guarded write that commits it, and the
    redrive count it makes."""

    interp: Interpreter
    tr: Transition
    write: Write
    redrives: int


def prepare_redrive(
    store: RedisStore, execution_id: str, status: str, now: float
) -> Redrive | None:
    """Read what a redrive needs (the step hash, the failure marks of the execution and
    of its branch hashes, the redrive count), compute :meth:`Interpreter.redrive` and its
    write (guarded by ``status``, the status it was read with); None when the execution
    has no record. Nothing is written."""
    interp = interpreter_from_record(store, execution_id)
    if interp is None:
        return None
    interp.history_base = store.history_length(execution_id)
    steps = store.steps(execution_id)
    view = RedriveView(
        records=record_texts(steps),
        failures=[*failure_marks(steps), *branch_failure_marks(store.branch_marks(execution_id))],
        redrives=store.execution_redrives(execution_id),
    )
    interp.reader = SnapshotReader(steps, store, execution_id)
    tr = interp.redrive(view, now)
    write = redrive_write(
        store,
        execution_id,
        tr,
        status=status,
        redrives=view.redrives + 1,
        def_hash=store.execution_def_hash(execution_id),
        info=interp.info,
    )
    return Redrive(interp, tr, write, view.redrives + 1)


def start_transition(
    store: RedisStore,
    execution_id: str,
    interp: Interpreter,
    now: float,
    record: Callable[[], Write],
) -> tuple[Transition, Write]:
    """The first transition of an execution and its write (``record()``: the execution's
    record, to which the transition's writes are added). One that cannot be computed or
    stored ends the execution FAILED at once (``States.Runtime``), never half-started."""
    try:
        tr = interp.within_history(interp.start(now))
        return tr, transition_write(store, execution_id, tr, record(), interp.info)
    except RedisError:
        raise
    except Exception as exc:  # noqa: BLE001 - see prepare_transition
        logger.exception("first transition of %s failed; failing the execution", execution_id)
        failed = interp.failed_transition(now, None, exc)
        tr = Transition(now, base=interp.history_base)
        tr.event("ExecutionStarted", input=interp.info.input)
        tr.events += failed.events
        tr.end = failed.end
        return tr, transition_write(store, execution_id, tr, record(), interp.info)


#: Recomputations of a transition whose reads changed under it (a Map's window or
#: counters moved because a sibling iteration committed first).
MAX_RECOMPUTE = 50


@dataclass
class Prepared:
    """A computed transition and the guarded write that commits it."""

    tr: Transition
    write: Write
    fixed_guards: int
    """Guards before this index are the caller's (step, timer, execution): when one of
    them fails, the transition no longer applies. Later ones are the reader's: when one
    fails, a sibling moved first, and the transition is computed again."""


def prepare_transition(
    store: RedisStore,
    execution_id: str,
    interp: Interpreter,
    compute: Callable[[], Transition | None],
    *,
    step_key: str | None = None,
    step_status: str | None = None,
    timer: str | None = None,
    history_base: int | None = None,
    known: dict[Slot, str | None] | None = None,
) -> Prepared | None:
    """Compute a transition (reading what it needs) and build its guarded write.

    ``known`` holds slots the caller read already (they are guarded too).
    """
    reader = RedisReader(store, execution_id)
    if known:
        reader.seen.update({field_name(slot): value for slot, value in known.items()})
    interp.reader = reader
    if history_base is None:
        # Event ids (quoted in Step Functions' error causes) continue the history.
        history_base = store.history_length(execution_id)
    interp.history_base = history_base

    def guarded(tr: Transition) -> Prepared:
        write = Write()
        exec_key = store.keys.execution(execution_id)
        steps_key = store.keys.steps(execution_id)
        write.guard_field(exec_key, "status", "RUNNING")
        if step_key is not None:
            write.guard_field(steps_key, store.keys.status_field(step_key), step_status)
            for ancestor in ancestors(step_key):
                write.guard_field(steps_key, store.keys.status_field(ancestor), "RUNNING")
        if timer is not None:
            timers_key = store.keys.timers(store.keys.partition_of(execution_id))
            write.guard_member(timers_key, timer)
            write.op("zrem", timers_key, timer)
        fixed = len(write.guards)
        if len(tr.events) > 1:
            # The history quota, against the history as it is when the commit runs
            # (concurrent branches append too): when it no longer holds, the transition
            # is computed again from the true length, and fails the execution.
            write.guard_length(
                store.keys.history(execution_id), interp.max_history_events - len(tr.events)
            )
        for name, value in reader.seen.items():
            if not store.keys.fixed_field(name):
                write.guard_field(steps_key, name, value)
        for (container, name), value in reader.branch_seen.items():
            write.guard_field(store.keys.branches(execution_id, container), name, value)
        transition_write(store, execution_id, tr, write, interp.info)
        return Prepared(tr, write, fixed)

    try:
        tr = compute()
        if tr is None:
            return None
        return guarded(interp.within_history(tr, step_key))
    except RedisError:
        raise  # the store failed, not the transition: the step is tried again later
    except Exception as exc:  # noqa: BLE001 - a poisoned transition must not loop
        # Whatever a state's evaluation raises fails that state (the interpreter sees to
        # it); this is what is left (a value that cannot be stored, an engine bug). It
        # ends the execution: leaving it would re-run the step every lease period.
        logger.exception(
            "transition of %s/%s failed; failing the execution", execution_id, step_key
        )
        return guarded(interp.failed_transition(time.time(), step_key, exc))


def after_commit(
    store: RedisStore,
    execution_id: str,
    interp: Interpreter,
    tr: Transition,
    joined: list[str],
    *,
    handover: Handover | None = None,
    producer: Any = None,
    publish_tasks: bool = True,
    published: list[str] | None = None,
) -> None:
    """What follows a committed transition: publish its tasks, perform its joins.

    ``handover``, ``producer`` and ``published``: see :func:`publish`.
    ``publish_tasks=False``: the caller hands the dispatches to
    :func:`orchestrator.engine.steps.dispatch_task`.
    """
    announce_end(execution_id, tr)
    dispatches = tr.dispatches if publish_tasks else []
    publish(
        interp, execution_id, dispatches, producer=producer, handover=handover, published=published
    )
    for container in joined:
        perform_join(store, execution_id, interp, container)


def run_transition(
    store: RedisStore,
    execution_id: str,
    interp: Interpreter,
    compute: Callable[[], Transition | None],
    *,
    step_key: str | None = None,
    step_status: str | None = None,
    timer: str | None = None,
    handover: Handover | None = None,
    history_base: int | None = None,
    known: dict[Slot, str | None] | None = None,
) -> Transition | None:
    """Compute and commit a transition; publish its tasks and perform its joins.

    ``handover``: the Celery chain of the task whose step this is (see :func:`publish`).

    Returns the committed transition, or None when a guard showed it no longer applies
    (the step moved on, the execution stopped, the container it runs in failed).
    """
    for attempt in range(MAX_RECOMPUTE):
        prepared = prepare_transition(
            store,
            execution_id,
            interp,
            compute,
            step_key=step_key,
            step_status=step_status,
            timer=timer,
            history_base=None if attempt else history_base,
            known=None if attempt else known,
        )
        if prepared is None:
            return None
        result = store.apply(prepared.write)
        if result.ok:
            after_commit(store, execution_id, interp, prepared.tr, result.joined, handover=handover)
            return prepared.tr
        if result.failed_guard < prepared.fixed_guards:
            return None
    raise RuntimeError(f"transition of {execution_id}/{step_key} kept conflicting")


def announce_end(execution_id: str, tr: Transition) -> None:
    """Make an uncaught failure visible in Flower, as an ``orchestrator.dead_letter`` task."""
    if tr.end is not None and tr.end["status"] in ("FAILED", "TIMED_OUT"):
        trim_dead_letters(get_store())
        # By name through the publishing app: an explicit client's goes to its broker.
        publishing_app().send_task(
            DEAD_LETTER_TASK,
            args=(execution_id, tr.end.get("state"), tr.end.get("error"), tr.end.get("cause")),
            queue=get_settings().queue,
            ignore_result=True,
        )


def perform_join(store: RedisStore, execution_id: str, interp: Interpreter, container: str) -> None:
    """Join a Parallel or Map whose branches all ended (status JOINING)."""
    record_text = store.step_field(execution_id, container)
    if record_text is None:
        return
    record = StepRecord.loads(record_text)
    run_transition(
        store,
        execution_id,
        interp,
        lambda: interp.join(container, record, time.time()),
        step_key=container,
        step_status=StepStatus.JOINING,
    )
