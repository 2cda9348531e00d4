"""Distributed Map: a Map Run whose children are executions of their own.

The interpreter starts a Map Run (``Interpreter._start_map_run``): the Map's step is
RUNNING with a ``maprun`` record (ARN, run id, concurrency, reader, batcher, writer as
evaluated), ``ItemsPath`` items stored in the Map's branch hash in chunks, and an
``advance`` timer due at once. From then on the run moves in *advances* of the parent,
each fired by beat from the global timers set and committed as one guarded write of the
parent's keys (docs/architecture.md, "Distributed Map"):

* a child's final commit adds ``[mapchild, parent, "<key>|<run>|<redrives>", index]`` to
  the timers (commit.lua's ``notify``: the child's record names the member), so the
  parent learns of every end whatever process dies when: the timer stays until an
  advance commits;
* an advance counts the children that ended (their marks ``R`` -> ``S``/``F``/``T``/``A``
  in the ``|mrc`` hash, the counters in the ``|mr`` record), redrives failed children a
  page at a time after a redrive, starts at most :data:`PAGE` new children (up to
  ``MaxConcurrency`` in flight) from the item cursor, and, once every item has run or the
  tolerated failures are exceeded, ends the Map state through the interpreter
  (:meth:`~orchestrator.language.interpreter.Interpreter.map_run_succeeded` / ``_failed``)
  in the same guarded write;
* children start before the advance that counts them commits: a child's id is derived
  from the parent, the run and its index, and a start is guarded by the id's absence, so
  an advance computed again (a conflict, a crash) starts no child twice;
* every Redis call is bounded: the counters are O(1) fields, children are started,
  counted, exported and assembled a page at a time (:data:`PAGE`, :data:`READ_PAGE`);
* a stop of the parent aborts its runs in the stop's write (``MapRunAborted``; a run
  whose first advance has not come yet too: its start's commit listed it), then their
  children (:func:`stop_execution`); a parent that ends otherwise (timed out, failed in
  another branch) marks its running runs ABORTED (``abort``) in its end's commit, with a
  ``MapRunAborted`` each before its last event (commit.py ``_abort_map_runs``), and sets
  an advance due at once, which finds it ended and aborts their children
  (:func:`stop_map_runs`);
* a Parallel or Map that fails (caught, retried or failing on) sets an advance due at
  once that aborts the runs its abandoned branches leave behind (``MapRunAborted`` in a
  write of the parent's, then the children: :func:`abandon_map_runs`); an advance of a
  run whose Map or container no longer runs does the same;
* a run that fails or is aborted still writes its ``ResultWriter`` results, after the
  commit that ends it (:func:`_export_failed`): the items it never started are PENDING
  entries, read on from its item cursor a page at a time.

``ExecutionType: EXPRESS`` children have Step Functions' Express semantics where they
matter here: they run at most :data:`EXPRESS_MAX_SECONDS` (their definition's
``TimeoutSeconds``: past it a child times out with ``States.Timeout``), and their history
keeps only their own start and end (``ExecutionStarted``, ``ExecutionSucceeded``...,
with input, output, error and cause), no per-state events: their definition carries
``"ExecutionType": "EXPRESS"``, which marks their interpreters
(``ExecutionInfo.express``), and their record ``type``, by which a claim writes no
``TaskStarted``. Otherwise they run as STANDARD ones (redrive included).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.engine import machines
from orchestrator.engine.celery_app import app
from orchestrator.engine.commit import (
    after_commit,
    child_start_write,
    prepare_redrive,
    prepare_transition,
    start_transition,
    stop_write,
    transition_write,
    unadvanced_map_run,
)
from orchestrator.engine.items import (
    ItemCursor,
    ResultWriter,
    ensure_aws,
    open_reader,
    read_batches,
    result_entry,
    validate_item_reader,
)
from orchestrator.engine.keys import MAP_RUN_CHILDREN_SUFFIX, MAP_RUN_SUFFIX
from orchestrator.engine.lru import LruCache
from orchestrator.engine.machines import interpreter_from_record, make_interpreter
from orchestrator.engine.publisher import PUBLISH_CHUNK, execution_priority
from orchestrator.engine.records import (
    ITEM_CHUNK,
    base_status,
    chunk_items,
    map_run_fields,
    parse_timer_member,
    timer_member,
)
from orchestrator.engine.store import RedisStore, Write
from orchestrator.errors import DefinitionError, DefinitionIssue, StatesError
from orchestrator.language import arns
from orchestrator.language.children import STOPPED_WITH_PARENT, WAITING_MODES, children_of
from orchestrator.language.definition import MapState, StateMachine, parse_definition
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
    MapRunTimer,
    StepRecord,
    StepStatus,
    Transition,
    ancestors,
    state_name,
)
from orchestrator.language.jsontext import dumps

logger = logging.getLogger("orchestrator.engine.maprun")

#: Children an advance starts (or redrives) at most: the bound of its Redis calls.
PAGE = 100
#: An advance that has more to start goes on at once (not at the next tick) for up to
#: this long, so a run starts children at the rate the engine can, not PAGE per tick.
BURST_S = 0.5
#: Children read per round trip when a run's results are assembled or exported.
READ_PAGE = 500
#: A ``mapchild`` timer whose child the parent has not counted as started yet (the
#: advance that started it had not committed) is looked at again this much later.
NOT_YET_S = 0.5
#: When an advance raised, its timers are tried again this much later (seconds).
RETRY_BROKEN_S = 5.0
#: A stop whose write an advance of one of the execution's Map Runs beat is computed
#: again this many times at most (each try reads the runs again).
STOP_TRIES = 10

#: The longest an EXPRESS child runs (Step Functions' Express limit: 5 minutes); past it
#: the child times out (``States.Timeout``) and counts as a timed-out child of its run.
EXPRESS_MAX_SECONDS = machines.EXPRESS_MAX_SECONDS

#: Child execution statuses -> their mark in the ``|mrc`` hash; marks -> counters.
MARKS = {"SUCCEEDED": "S", "FAILED": "F", "TIMED_OUT": "T", "ABORTED": "A"}
COUNTERS = {"S": "succeeded", "F": "failed", "T": "timed_out", "A": "aborted", "R": "running"}

_children: LruCache[str, tuple[StateMachine, str, str]] = LruCache(64)


def child_id(parent: str, run: str, index: int) -> str:
    """The execution id of child ``index`` of run ``run``: ``<parent>.<run>.<index>``,
    the parent cut and hashed when that would pass 80 characters (the rule of execution
    ids; a dot is allowed, a brace never: the id is a hash tag)."""
    suffix = f".{run}.{index}"
    if len(parent) + len(suffix) <= 80:
        return parent + suffix
    digest = hashlib.sha1(parent.encode()).hexdigest()[:8]
    return f"{parent[: 80 - len(suffix) - 9]}.{digest}{suffix}"


def notify_member(parent: str, key: str, run: str, index: int, redrives: int) -> str:
    """The ``mapchild`` timer a child's end adds: ``[mapchild, parent, "<key>|<run>|<n>",
    index]``. ``n``, the child's redrives, makes each end of a redriven child a member of
    its own: an advance that removes the timer of an earlier end (a ZREM) cannot remove
    the timer of a later one that has the same content."""
    return timer_member(MapRunTimer.CHILD_ENDED, parent, f"{key}|{run}|{redrives}", index)


def parse_map_run_arn(arn: str) -> tuple[str, str] | None:
    """``(parent execution id, run id)`` of a Map Run ARN (see ``map_run_arn``)."""
    if ":mapRun:" not in arn:
        return None
    parent, dot, run = arn.rsplit(":", 1)[-1].rpartition(".")
    return (parent, run) if dot and parent and run else None


# -- definitions ------------------------------------------------------------------------


def check_definition(machine: StateMachine) -> None:
    """Refuse what the engine cannot run in a definition's Distributed Maps: S3 without
    boto3 (:class:`MissingOptionalDependency`, naming the ``orchestrator[aws]`` extra),
    an ``ItemReader`` this reader does not support (:class:`DefinitionError`)."""
    issues: list[DefinitionIssue] = []
    for path, _name, state, _scope in machine.walk():
        if not isinstance(state, MapState):
            continue
        if state.item_processor.processor_mode != "DISTRIBUTED":
            continue
        if state.item_reader is not None:
            ensure_aws(f"{path}.ItemReader", "an S3 ItemReader")
            issues += validate_item_reader(state.item_reader, f"{path}.ItemReader")
        if state.result_writer is not None:
            ensure_aws(f"{path}.ResultWriter", "an S3 ResultWriter")
    if issues:
        raise DefinitionError(issues)


def _child_machine(interp: Interpreter, key: str) -> tuple[StateMachine, str, str]:
    """The children's state machine (the Map's ItemProcessor), its text and hash."""
    scope, name = interp.scope_of(key)
    state = scope.states[name]
    assert isinstance(state, MapState)
    asl = state.item_processor.model_dump(mode="json", by_alias=True, exclude_unset=True)
    config = asl.pop("ProcessorConfig", None) or {}
    language = interp.machine.query_language
    if language is not None and "QueryLanguage" not in asl:
        asl["QueryLanguage"] = getattr(language, "value", language)
    marked = dict(asl)
    if config.get("ExecutionType") == "EXPRESS":
        asl, marked = machines.express_definition(asl, EXPRESS_MAX_SECONDS)
    text = dumps(marked)
    def_hash = hashlib.sha1(text.encode()).hexdigest()
    cached = _children.get(def_hash)
    if cached is None:
        cached = _children.put(def_hash, (parse_definition(asl), text, def_hash))
    return cached


# -- items ------------------------------------------------------------------------------


class StoredItems(ItemCursor):
    """The items of an ``ItemsPath`` (stored in the Map's branch hash when the Map
    started, ``ITEM_CHUNK`` a field) as an :class:`ItemCursor`: state ``{"i": next}``."""

    def __init__(
        self, store: RedisStore, execution_id: str, key: str, total: int, state: Any
    ) -> None:
        super().__init__(state or {"t": "items", "i": 0}, None)
        self.store, self.execution_id, self.key, self.total = store, execution_id, key, total
        if total == 0:
            self._state["done"] = True

    def _read(self, want: int) -> Iterator[tuple[Any, dict[str, Any]]]:
        index = int(self._state.get("i", 0))
        while index < self.total:
            chunk = index // ITEM_CHUNK
            (text,) = self.store.branch_fields(self.execution_id, self.key, [f"k{chunk}"])
            items = chunk_items(text) if text else {}
            while index < self.total and index // ITEM_CHUNK == chunk:
                value = items.get(index)
                index += 1
                yield (json.loads(value) if value is not None else None), {"i": index}


def _cursor(
    store: RedisStore, parent: str, key: str, record: StepRecord, mr: dict[str, str]
) -> ItemCursor:
    run = record.run or {}
    state = json.loads(mr["cursor"]) if mr.get("cursor") else None
    reader = run.get("reader")
    if reader is None:
        return StoredItems(store, parent, key, record.total, state)
    max_items = reader.get("max")
    return open_reader(
        reader["def"],
        reader["params"] or {},
        max_items=int(max_items) if max_items else None,
        state=state,
    )


def _next_inputs(
    interp: Interpreter, cursor: ItemCursor, key: str, record: StepRecord, count: int, now: float
) -> list[Any]:
    """Up to ``count`` children's inputs from ``cursor`` (batches with an ItemBatcher;
    the ItemSelector applies to each item)."""
    run = record.run or {}
    batch = run.get("batch")
    inputs: list[Any] = []
    if batch is None:
        first = int(cursor.state.get("n", 0))
        items, _ = cursor.next_page(count)
        for offset, value in enumerate(items):
            inputs.append(interp.map_child_input(key, record, first + offset, value, now))
        return inputs
    # One page of the reader (one ranged S3 GET of a JSONL or CSV object) cut into the
    # batches, not a read per batch.
    for first, child in read_batches(
        cursor,
        count,
        int(batch["items"]) if batch.get("items") else None,
        int(batch["bytes"]) if batch.get("bytes") else None,
        batch.get("input"),
    ):
        if "sel" in run:
            child["Items"] = [
                interp.map_child_input(key, record, first + offset, value, now)
                for offset, value in enumerate(child["Items"])
            ]
        inputs.append(child)
    return inputs


# -- children ---------------------------------------------------------------------------


def _start_children(
    store: RedisStore,
    interp: Interpreter,
    key: str,
    record: StepRecord,
    first: int,
    inputs: list[Any],
    now: float,
) -> None:
    """Start children ``first...`` with ``inputs``: one guarded start each (a child
    that exists already is left as it is), sent in one round trip."""
    run = record.run or {}
    parent = interp.info.execution_id
    machine, text, def_hash = _child_machine(interp, key)
    express = run.get("type") == "EXPRESS"
    workflow = f"{interp.info.workflow}/{run.get('label')}"
    priority = execution_priority(interp.info)
    started = []
    for offset, value in enumerate(inputs):
        index = first + offset
        cid = child_id(parent, run["id"], index)
        input_text = dumps(value)
        # The children inherit their parent's priority (recorded in their start).
        info = ExecutionInfo(cid, cid, workflow, now, value, express, priority=priority)
        child = make_interpreter(machine, info)
        member = notify_member(parent, key, run["id"], index, 0)

        def record_write(
            cid: str = cid, index: int = index, input_text: str = input_text, member: str = member
        ) -> Write:
            return child_start_write(
                store,
                cid,
                workflow=workflow,
                input_text=input_text,
                now=now,
                def_hash=def_hash,
                definition_text=text,
                priority=priority,
                link=[
                    *("parent", parent, "map_key", key, "map_index", str(index)),
                    *("map_run", run["arn"], "notify", member),
                    *(("type", "EXPRESS") if express else ()),
                ],
            )

        tr, write = start_transition(store, cid, child, now, record_write)
        started.append((cid, child, tr, write))
    results = store.apply_many([write for *_, write in started])
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_CHUNK):
        for (cid, child, tr, _), result in zip(started, results, strict=True):
            if result.ok:
                after_commit(store, cid, child, tr, result.joined, producer=producer)


def stop_execution(
    store: RedisStore, execution_id: str, error: str | None, cause: str | None, now: float
) -> bool:
    """Abort a running execution: ``ExecutionAborted``, and its Map Runs still running
    ABORTED with a ``MapRunAborted`` each, in one write guarded by the execution running
    and the runs' versions (an advance that moved a run meanwhile: read again); then
    abort those runs' children. False if the execution was not running."""
    for _ in range(STOP_TRIES):
        # (key, its record as read, the record to write first for a run not advanced yet)
        runs: list[tuple[str, dict[str, str], dict[str, str] | None]] = []
        for key in store.map_run_containers(execution_id):
            mr = store.map_run(execution_id, key)
            if mr.get("status") == "RUNNING":
                runs.append((key, mr, None))
            else:
                first = unadvanced_map_run(store, execution_id, key, mr)
                if first is not None:
                    runs.append((key, mr, first))
        aborted = [(key, first or mr) for key, mr, first in runs]
        tr = Interpreter.stop(now, error, cause, [(key, mr.get("arn")) for key, mr in aborted])
        write = stop_write(store, execution_id, tr)
        for key, mr, first in runs:
            mr_key = store.keys.map_run(execution_id, key)
            write.guard_field(mr_key, "v", mr.get("v"))
            if first is not None:
                write.op("del", mr_key)
                write.op("del", store.keys.map_run_children(execution_id, key))
                write.op("hset", mr_key, *[x for pair in first.items() for x in pair])
            write.op(
                "hset", mr_key, "status", "ABORTED", "stop", repr(now), "v", _bump(mr.get("v"))
            )
        if store.commit(write):
            for key, mr in aborted:
                _aborted(store, execution_id, key, mr, now)
            # Its child workflows that it waits for (.sync, .waitForTaskToken) stop too.
            stop_children(store, execution_id, now)
            return True
        if store.execution_status(execution_id) != "RUNNING":
            return False
    return False


def stop_child(store: RedisStore, execution_id: str, cause: str, now: float) -> None:
    """Abort a running child (and, in turn, its own Map Runs' children)."""
    stop_execution(store, execution_id, "States.Aborted", cause, now)


def stop_children(store: RedisStore, execution_id: str, now: float) -> None:
    """Stop the child workflows (``startExecution`` Tasks: engine/children.py) still
    running that no Task of the execution waits on any more; each stop stops their own
    children in turn. Idempotent: a stopped child is not running.

    While the execution runs, a ``.sync`` child is stopped once its Task no longer waits
    on it (the Task timed out, failed, was caught or retried, its Parallel or Map failed);
    a ``.waitForTaskToken`` child goes on (it may be the one to answer, and its Task may
    have succeeded). Once the execution ended (stopped, failed, timed out), a running
    ``.sync`` child is stopped, and a ``.waitForTaskToken`` one whose Task still waited.
    """
    record = store.execution(execution_id)
    ended = record.get("status") != "RUNNING"
    linked = [(c, key, mode) for c, key, mode in children_of(record) if mode in STOPPED_WITH_PARENT]
    if not linked:
        return
    ids = [child for child, _key, _mode in linked]
    links = store.execution_records(ids, ("parent", "parent_run"))
    for (child, key, mode), status, link in zip(
        linked, store.execution_statuses(ids), links, strict=True
    ):
        # (A Name parameter may name an execution that is not this one's child.)
        if status != "RUNNING" or link.get("parent") != execution_id:
            continue
        step_status, text = store.step_state(execution_id, key)
        run = StepRecord.loads(text).run if text else None
        holds = step_status is not None and (run or {}).get("id") == link.get("parent_run")
        if ended:
            if mode in WAITING_MODES or holds:
                why = "was stopped" if record.get("status") == "ABORTED" else "ended"
                stop_child(store, child, f"The parent execution {execution_id} {why}", now)
            continue
        waits = (
            holds
            and step_status is not None
            and base_status(step_status)
            in (StepStatus.SCHEDULED, StepStatus.RUNNING, StepStatus.WAITING)
            and _containers_running(store, execution_id, key)
        )
        if mode in WAITING_MODES and not waits:
            cause = (
                f"The Task {state_name(key)} of the parent execution {execution_id} "
                "no longer waits for it"
            )
            stop_child(store, child, cause, now)


def redrive_child(store: RedisStore, execution_id: str, now: float) -> bool:
    """Redrive a FAILED, TIMED_OUT or ABORTED child, as ``redrive_execution`` does."""
    status = store.execution_status(execution_id)
    if status not in ("FAILED", "TIMED_OUT", "ABORTED"):
        return False
    redrive = prepare_redrive(store, execution_id, status, now)
    if redrive is None:
        return False
    interp, tr, write = redrive.interp, redrive.tr, redrive.write
    (link,) = store.execution_records([execution_id], ("parent", "map_key", "map_index", "notify"))
    if link["notify"] and link["parent"] and link["map_key"] and link["map_index"]:
        _, _, tag, _ = parse_timer_member(link["notify"])
        member = notify_member(
            link["parent"],
            link["map_key"],
            tag.split("|")[1],
            int(link["map_index"]),
            redrive.redrives,
        )
        write.op("hset", store.keys.execution(execution_id), "notify", member)
    result = store.apply(write)
    if result.ok:
        after_commit(store, execution_id, interp, tr, result.joined)
    return result.ok


def stop_map_runs(store: RedisStore, execution_id: str, now: float | None = None) -> None:
    """The execution ended otherwise than by a stop (failed, timed out): abort its Map
    Runs that its end marked ``abort`` (ABORTED, ``MapRunAborted``: commit.py
    ``_abort_map_runs``) or left running, and their children (a page of child marks per
    call), then write their results."""
    now = time.time() if now is None else now
    for key in store.map_run_containers(execution_id):
        mr = store.map_run(execution_id, key)
        marked = mr.get("status") == "ABORTED" and mr.get("abort") == "1"
        if mr.get("status") != "RUNNING" and not marked:
            continue
        mr_key = store.keys.map_run(execution_id, key)
        write = Write().guard_field(mr_key, "v", mr.get("v"))
        if marked:  # one advance takes the mark, and aborts the children
            write.op("hdel", mr_key, "abort")
            write.op("hset", mr_key, "v", _bump(mr.get("v")))
        else:
            write.op("hset", mr_key, "status", "ABORTED", "stop", repr(now))
            write.op("hset", mr_key, "v", _bump(mr.get("v")))
        committed = store.commit(write)
        abort_children(store, execution_id, key, mr.get("run", ""), now)
        if committed:
            _export_aborted(store, execution_id, key, mr)


def abandon_map_runs(store: RedisStore, execution_id: str, now: float | None = None) -> None:
    """The execution goes on: abort its running Map Runs whose Map, or a Parallel or Map
    around it, no longer runs (their branch was abandoned: the container failed, was
    caught or retried), as a stop does: a ``MapRunAborted`` each in a write guarded by
    the statuses read, then their children."""
    now = time.time() if now is None else now
    keys = store.keys
    for key in store.map_run_containers(execution_id):
        mr = store.map_run(execution_id, key)
        fields = [keys.status_field(step) for step in (key, *ancestors(key))]
        statuses = store.step_fields(execution_id, fields)
        if all(s is not None and base_status(s) == StepStatus.RUNNING for s in statuses):
            continue
        first = None  # a run its start listed that no advance has recorded yet
        if mr.get("status") != "RUNNING":
            first = unadvanced_map_run(store, execution_id, key, mr)
            if first is None:
                continue
        mr_key = keys.map_run(execution_id, key)
        write = Write().guard_field(keys.execution(execution_id), "status", "RUNNING")
        for name, value in zip(fields, statuses, strict=True):
            write.guard_field(keys.steps(execution_id), name, value)
        write.guard_field(mr_key, "v", mr.get("v"))
        if first is not None:
            write.op("del", mr_key)
            write.op("del", keys.map_run_children(execution_id, key))
            write.op("hset", mr_key, *[x for pair in first.items() for x in pair])
        write.op("hset", mr_key, "status", "ABORTED", "stop", repr(now), "v", _bump(mr.get("v")))
        run = first or mr
        tr = Interpreter.map_runs_aborted(now, [(key, run.get("arn"))])
        if store.commit(transition_write(store, execution_id, tr, write)):
            _aborted(store, execution_id, key, run, now)


def _containers_running(store: RedisStore, execution_id: str, key: str) -> bool:
    """Whether every Parallel and Map around the step ``key`` still runs."""
    outer = ancestors(key)
    if not outer:
        return True
    fields = [store.keys.status_field(step) for step in outer]
    statuses = store.step_fields(execution_id, fields)
    return all(s is not None and base_status(s) == StepStatus.RUNNING for s in statuses)


def _aborted(store: RedisStore, parent: str, key: str, mr: dict[str, str], now: float) -> None:
    """A Map Run was just marked ABORTED: abort its children, then write its results."""
    abort_children(store, parent, key, mr.get("run", ""), now)
    _export_aborted(store, parent, key, mr)


def _export_aborted(store: RedisStore, parent: str, key: str, mr: dict[str, str]) -> None:
    """Write an aborted run's ``ResultWriter`` results (its children ended, the items
    never started as PENDING), when it has a writer."""
    _status, text = store.step_state(parent, key)
    record = StepRecord.loads(text) if text else None
    run = record.run if record is not None else None
    if record is None or run is None or run.get("id") != mr.get("run") or not run.get("writer"):
        return
    interp = interpreter_from_record(store, parent)
    if interp is None:
        return
    pending = _pending_inputs(store, interp, parent, key, record, mr)
    _export_failed(store, parent, run, int(mr.get("next") or 0), pending)


def abort_children(store: RedisStore, parent: str, key: str, run: str, now: float) -> None:
    """Abort the children of a Map Run still marked running, a page at a time."""
    cursor = 0
    while True:
        cursor, page = store.map_run_scan(parent, key, cursor, PAGE)
        ids = [child_id(parent, run, int(i)) for i, mark in page.items() if mark == "R"]
        for cid, status in zip(ids, store.execution_statuses(ids), strict=True):
            if status == "RUNNING":
                stop_child(store, cid, "The Map Run of its parent ended", now)
        if cursor == 0:
            return


def _bump(version: str | None) -> str:
    return str(int(version or 0) + 1)


# -- advancing a Map Run ----------------------------------------------------------------


def fire(store: RedisStore, members: list[str], now: float) -> None:
    """Fire due Map Run timers (``maprun`` and ``mapchild``): one advance per Map Run."""
    groups: dict[tuple[str, str], list[tuple[str, int | None, Any]]] = {}
    for member in members:
        kind, execution_id, step_key, attempt = parse_timer_member(member)
        if kind == MapRunTimer.CHILD_ENDED:
            key, run, _ = step_key.split("|")
            groups.setdefault((execution_id, key), []).append((member, attempt, run))
        else:
            groups.setdefault((execution_id, step_key), []).append((member, None, attempt))
    deadline = time.monotonic() + BURST_S
    for (execution_id, key), timers in groups.items():
        try:
            more = advance(store, execution_id, key, timers, now)
            while more is not None and time.monotonic() < deadline:
                # Its own re-armed advance timer, fired now rather than at the next tick.
                again: list[tuple[str, int | None, Any]] = [(more, None, more_attempt(more))]
                more = advance(store, execution_id, key, again, time.time())
        except Exception:  # noqa: BLE001 - one broken run must not stop the others
            logger.exception("advancing the Map Run of %s/%s failed", execution_id, key)
            for member, _, _ in timers:
                store.defer_timer(member, now + RETRY_BROKEN_S)


def more_attempt(member: str) -> int:
    """The attempt an ``advance`` timer member names."""
    return parse_timer_member(member)[3]


def tolerance_exceeded(
    count: float | None, percentage: float | None, failures: int, total: int | None
) -> bool:
    """Whether ``failures`` failed children of ``total`` (None: not known yet) are more
    than the run tolerates (no tolerance given: none), as Step Functions decides."""
    if failures == 0:
        return False
    if count is None and percentage is None:
        return True
    over_count = count is None or failures > count
    if percentage is None:
        return over_count
    if total is None:
        return False  # the percentage needs the total: decided at the end
    return over_count and failures * 100 / max(total, 1) > percentage


def advance(
    store: RedisStore,
    parent: str,
    key: str,
    timers: list[tuple[str, int | None, Any]],
    now: float,
) -> str | None:
    """One advance of the Map Run of ``parent``'s Map ``key`` (see the module doc); the
    ``advance`` timer it set when it has more children to start at once, else None."""
    members = [member for member, _, _ in timers]
    exec_status = store.execution_status(parent)
    status, record_text = store.step_state(parent, key)
    record = StepRecord.loads(record_text) if record_text else None
    if (
        exec_status != "RUNNING"
        or record is None
        or record.run is None
        or record_text is None
        or status is None
        or base_status(status) != StepStatus.RUNNING
    ):
        store.drop_timers(*members)
        if exec_status is not None and exec_status != "RUNNING":
            # The parent ended otherwise (timed out, failed in another branch): its runs
            # still marked running abort their children, as a stop does, and so do the
            # child workflows its Tasks waited for.
            stop_map_runs(store, parent, now)
            stop_children(store, parent, now)
        elif exec_status == "RUNNING":
            # The Map no longer runs (or this is the advance a failed Parallel or Map, or
            # a Task waiting on a child workflow, set, keyed by no Map): its runs left
            # behind are aborted, and the .sync children no Task waits on are stopped.
            abandon_map_runs(store, parent, now)
            stop_children(store, parent, now)
        return None
    if not _containers_running(store, parent, key):
        # A Parallel branch or Map iteration around the Map was abandoned.
        store.drop_timers(*members)
        abandon_map_runs(store, parent, now)
        return None
    run = record.run
    current = [
        (member, index)
        for member, index, tag in timers
        if (tag == run["id"] if index is not None else tag == record.attempt)
    ]
    kept = {member for member, _ in current}
    handled = [member for member in members if member not in kept]
    interp = interpreter_from_record(store, parent)
    assert interp is not None
    keys = store.keys
    mr_key, marks_key = keys.map_run(parent, key), keys.map_run_children(parent, key)
    mr = store.map_run(parent, key)
    version = mr.get("v")
    fresh = mr.get("run") != run["id"]
    fields: dict[str, str] = {}
    if fresh:
        fields = map_run_fields(run, key, now)
        mr = dict(fields)
    elif mr.get("status") != "RUNNING":
        # A redrive: count every child again from the first, redriving the failed ones.
        gone = ("stop", "error", "cause", "abort")
        fields = {"status": "RUNNING", "rptr": "0", **{name: "" for name in gone}}
        fields["redrives"] = str(int(mr.get("redrives") or 0) + 1)
        fields.update({counter: "0" for counter in COUNTERS.values()})
        mr.update(fields)
    counts = {counter: int(mr.get(counter) or 0) for counter in COUNTERS.values()}
    started_count = int(mr.get("next") or 0)
    rptr = int(mr["rptr"]) if mr.get("rptr") else None
    marks: dict[str, str] = {}
    later: list[str] = []

    # 1. Children that ended.
    ended = sorted({(index, member) for member, index in current if index is not None})
    if ended:
        indexes = [index for index, _ in ended]
        stored = store.map_run_marks(parent, key, indexes)
        statuses = store.execution_statuses([child_id(parent, run["id"], i) for i in indexes])
        for (index, member), mark, child_status in zip(ended, stored, statuses, strict=True):
            if index >= started_count and mark is None:
                later.append(member)  # started by an advance that has not committed yet
                continue
            handled.append(member)
            if rptr is not None and index >= rptr:
                continue  # the redrive's scan counts it
            if mark == "R" and child_status in MARKS:
                marks[str(index)] = MARKS[child_status]
                counts["running"] -= 1
                counts[COUNTERS[MARKS[child_status]]] += 1
    handled += [member for member, index in current if index is None]

    # 2. A redrive's scan: count the children again, redrive the failed ones.
    while rptr is not None and counts["running"] < run["max"]:
        if rptr >= started_count:
            rptr = None
            break
        end = min(started_count, rptr + PAGE, rptr + run["max"] - counts["running"])
        indexes = list(range(rptr, end))
        ids = [child_id(parent, run["id"], i) for i in indexes]
        for index, cid, child_status in zip(
            indexes, ids, store.execution_statuses(ids), strict=True
        ):
            if child_status == "SUCCEEDED":
                marks[str(index)] = "S"
                counts["succeeded"] += 1
            elif child_status in MARKS and not redrive_child(store, cid, now):
                marks[str(index)] = MARKS[child_status]
                counts[COUNTERS[MARKS[child_status]]] += 1
            else:  # redriven, or still running: its end is counted
                marks[str(index)] = "R"
                counts["running"] += 1
        rptr = end
        if len(indexes) >= PAGE:
            break

    failures = counts["failed"] + counts["timed_out"] + counts["aborted"]
    done = mr.get("done") == "1"
    total: int | None = started_count if done else None
    if record.total and "batch" not in run and "reader" not in run:
        total = record.total
    failed_run: tuple[str, str] | None = None
    if rptr is None and tolerance_exceeded(
        record.tolerated_count, record.tolerated_percentage, failures, total
    ):
        failed_run = (
            "States.ExceedToleratedFailureThreshold",
            f"The specified tolerated failure threshold was exceeded: {failures} of the "
            f"child executions of Map Run {run['arn']} failed.",
        )

    # 3. Start more children.
    rearm = False
    if failed_run is None and not done and rptr is None:
        room = min(run["max"] - counts["running"], PAGE)
        if room > 0:
            try:
                cursor = _cursor(store, parent, key, record, mr)
                inputs = _next_inputs(interp, cursor, key, record, room, now)
            except StatesError as exc:
                failed_run = (exc.error, exc.cause or str(exc))
            except DefinitionError as exc:  # boto3 missing where the run goes on
                failed_run = ("States.Runtime", str(exc))
            else:
                _start_children(store, interp, key, record, started_count, inputs, now)
                for offset in range(len(inputs)):
                    marks[str(started_count + offset)] = "R"
                started_count += len(inputs)
                counts["running"] += len(inputs)
                fields["cursor"] = dumps(cursor.state)
                # A page of batches may hold fewer than room (its window of items is
                # capped) with items left: only the cursor knows the end.
                if cursor.done or not inputs:
                    done = True
                    fields["done"] = "1"
                    fields["total"] = str(started_count)
                rearm = not done and counts["running"] < run["max"]
    elif rptr is not None:
        rearm = counts["running"] < run["max"]

    fields["next"] = str(started_count)
    fields.update({counter: str(value) for counter, value in counts.items()})
    finished = failed_run is not None or (done and counts["running"] == 0 and rptr is None)

    # 4. The write: the run's progress, and the Map state's end when the run ends.
    tr: Transition | None = None
    # A run that fails before its results are assembled still exports them (below).
    export_failed = finished and failed_run is not None and bool(run.get("writer"))
    pending: Iterable[Any] | None = None
    if export_failed:
        pending = _pending_inputs(store, interp, parent, key, record, mr)
        if "reader" not in run:
            # ItemsPath items live in the Map's branch hash, which a Catch of the failure
            # deletes: read before (as many as the state's input held, within its quota).
            pending = list(pending)
    if finished:
        result: Any = None
        size = 0
        if failed_run is None:
            try:
                result, size = _run_result(store, parent, run, started_count)
            except StatesError as exc:
                failed_run = (exc.error, exc.cause or str(exc))
        if failed_run is not None:
            error, cause = failed_run
            fields.update(status="FAILED", error=error, cause=cause[:2000])

            def compute() -> Transition | None:
                fresh_record = StepRecord.loads(record_text)
                return interp.map_run_failed(key, fresh_record, error, cause, now)

        else:
            fields["status"] = "SUCCEEDED"

            def compute() -> Transition | None:
                fresh_record = StepRecord.loads(record_text)
                return interp.map_run_succeeded(key, fresh_record, result, now, size)

        fields["stop"] = repr(now)
        prepared = prepare_transition(
            store, parent, interp, compute, step_key=key, step_status=status
        )
        if prepared is None:
            store.drop_timers(*members)
            return None
        write, tr = prepared.write, prepared.tr
    else:
        write = Write()
        write.guard_field(keys.execution(parent), "status", "RUNNING")
        write.guard_field(keys.steps(parent), keys.status_field(key), status)
        write.guard_field(keys.steps(parent), key, record_text)
    write.guard_field(mr_key, "v", version)
    if fresh:
        write.op("del", mr_key)
        write.op("del", marks_key)
    if rptr is None and mr.get("rptr") is not None and not fresh:
        write.op("hdel", mr_key, "rptr")
    elif rptr is not None:
        fields["rptr"] = str(rptr)
    if "rptr" in fields and rptr is None:
        del fields["rptr"]
    fields["v"] = _bump(version)
    write.op("hset", mr_key, *[x for pair in fields.items() for x in pair])
    if marks:
        write.op("hset", marks_key, *[x for pair in marks.items() for x in pair])
    bs = keys.branch_hashes(parent)
    write.op("sadd", bs, key + MAP_RUN_SUFFIX, key + MAP_RUN_CHILDREN_SUFFIX)
    timers_key = keys.timers(keys.partition_of(parent))
    if handled:
        write.op("zrem", timers_key, *handled)
    rearmed = None
    if rearm and not finished:
        rearmed = timer_member(MapRunTimer.ADVANCE, parent, key, record.attempt)
        write.op("zadd", timers_key, repr(now), rearmed)
    committed = store.apply(write)
    if not committed.ok:
        return None  # moved under us: its timers are still due, the next tick goes on
    for member in later:
        store.defer_timer(member, now + NOT_YET_S)
    if tr is not None:
        after_commit(store, parent, interp, tr, committed.joined)
        if failed_run is not None:
            abort_children(store, parent, key, run["id"], now)
        if export_failed:
            _export_failed(store, parent, run, started_count, pending)
    return rearmed


def _export_failed(
    store: RedisStore,
    parent: str,
    run: dict[str, Any],
    count: int,
    pending: Iterable[Any] | None = None,
) -> None:
    """Write a failed or aborted run's results as Step Functions does (SUCCEEDED_n,
    FAILED_n for the failed, timed-out and aborted children, PENDING_n for the items never
    started, manifest). After the commit that failed the Map, as no result of it is used:
    a process that dies first or an S3 error leaves no manifest (logged), and the Map's
    failure stays the run's own."""
    try:
        _run_result(store, parent, run, count, pending)
    except Exception:  # noqa: BLE001 - the Map has failed already; its error stands
        logger.exception("writing the results of the failed Map Run %s failed", run.get("arn"))


def _pending_inputs(
    store: RedisStore,
    interp: Interpreter,
    parent: str,
    key: str,
    record: StepRecord,
    mr: dict[str, str],
) -> Iterator[Any]:
    """The inputs the children never started would have had (ItemSelector and
    ItemBatcher applied), read on from the run's item cursor a page at a time; none once
    every item started. Items that cannot be read end them (logged)."""
    if mr.get("done") == "1":
        return
    try:
        cursor = _cursor(store, parent, key, record, mr)
        now = time.time()
        while not cursor.done:
            inputs = _next_inputs(interp, cursor, key, record, READ_PAGE, now)
            if not inputs:
                return
            yield from inputs
    except (StatesError, DefinitionError) as exc:
        arn = (record.run or {}).get("arn")
        logger.warning("the items Map Run %s did not start cannot be read: %s", arn, exc)


def _run_result(
    store: RedisStore,
    parent: str,
    run: dict[str, Any],
    count: int,
    pending: Iterable[Any] | None = None,
) -> tuple[Any, int]:
    """The Map's result: its children's outputs in item order (and their size in
    bytes), or, with a ResultWriter, what writing them to S3 returned (read back from
    the children's records a page at a time: the export is not resumable, so it runs
    whole at the end of the run), with the ``pending`` inputs of a run that ended
    before starting them all (PENDING entries)."""
    writer = ResultWriter.from_parameters(run["writer"], run["arn"]) if run.get("writer") else None
    outputs: list[Any] = []
    size = 1
    fields = ("status", "input", "output", "error", "cause", "start", "stop", "redrives")
    # The children's workflow, <parent's>/<label>, as in the run's ARN (...:mapRun:
    # <workflow>/<label>:<id>; a label may hold a colon, the id never does).
    children_workflow = ":".join(run["arn"].split(":")[6:-1])
    for first in range(0, count, READ_PAGE):
        ids = [child_id(parent, run["id"], i) for i in range(first, min(count, first + READ_PAGE))]
        for cid, child in zip(ids, store.execution_records(ids, fields), strict=True):
            if writer is not None:
                status = child["status"] or "PENDING"
                writer.add(
                    result_entry(
                        status="PENDING" if status == "RUNNING" else status,
                        input=json.loads(child["input"] or "null"),
                        execution_arn=arns.execution_arn(children_workflow, cid),
                        name=cid,
                        output=json.loads(child["output"] or "null"),
                        error=child["error"],
                        cause=child["cause"],
                        start_date=float(child["start"]) if child["start"] else None,
                        stop_date=float(child["stop"]) if child["stop"] else None,
                        redrive_count=int(child["redrives"] or 0),
                    )
                )
                continue
            text = child["output"] if child["status"] == "SUCCEEDED" else None
            size += len(text or "null") + 1
            outputs.append(json.loads(text) if text is not None else None)
    if writer is not None:
        for value in pending or ():
            writer.add(result_entry(status="PENDING", input=value))
        output = writer.finish()
        return output, len(dumps(output))
    return outputs, size


# -- reading Map Runs -------------------------------------------------------------------


def map_run_summary(store: RedisStore, parent: str, key: str) -> dict[str, Any] | None:
    """A Map Run's record as stored, counters as numbers (None if there is none)."""
    mr = store.map_run(parent, key)
    if not mr:
        return None
    summary: dict[str, Any] = dict(mr)
    for name in ("next", "max", "redrives", *COUNTERS.values()):
        summary[name] = int(mr.get(name) or 0)
    summary["execution_id"], summary["key"] = parent, key
    return summary


def find_map_run(store: RedisStore, arn: str) -> tuple[str, str] | None:
    """``(parent execution id, Map step key)`` of the Map Run ``arn`` (None if unknown)."""
    parsed = parse_map_run_arn(arn)
    if parsed is None:
        return None
    parent, run = parsed
    for key in store.map_run_containers(parent):
        if store.map_run(parent, key).get("run") == run:
            return parent, key
    return None


def child_page(
    store: RedisStore, parent: str, run: str, first: int, count: int
) -> list[tuple[int, str, str | None]]:
    """``(index, child id, status)`` of children ``first`` to ``first + count - 1``."""
    indexes = list(range(first, first + count))
    ids = [child_id(parent, run, i) for i in indexes]
    return list(zip(indexes, ids, store.execution_statuses(ids), strict=True))
