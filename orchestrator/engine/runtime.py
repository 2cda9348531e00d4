"""The runtime: runs steps in Celery workers and commits their transitions to Redis.

Every change of an execution follows one pattern: read what is needed, compute the
transition with the pure :mod:`orchestrator.language.interpreter`, commit it with
:meth:`RedisStore.commit` (guarded compare-and-set, one Lua call), and only then publish
the tasks it dispatches. A message delivered twice finds its step already claimed or
done and changes nothing; a result that arrives after its step timed out or its
execution stopped fails the guard and is discarded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from redis.exceptions import RedisError

from orchestrator.config import get_settings
from orchestrator.engine import activities
from orchestrator.engine.celery_app import app, publishing_app
from orchestrator.engine.compiler import compile_run, fan_out, is_callback, run_signature
from orchestrator.engine.logs import step_context
from orchestrator.engine.lru import LruCache
from orchestrator.engine.messages import excerpt
from orchestrator.engine.records import item_field, lease_member, timer_member, window_fields
from orchestrator.engine.store import OutageLog, RedisStore, Write, get_store
from orchestrator.errors import StatesError
from orchestrator.language.definition import StateMachine, parse_definition
from orchestrator.language.interpreter import (
    Dispatch,
    ExecutionInfo,
    Interpreter,
    Reader,
    StepRecord,
    StepStatus,
    Transition,
    ancestors,
    data_limit_cause,
    encode,
    state_name,
)
from orchestrator.language.jsontext import checked_dumps, dumps
from orchestrator.language.tokens import new_token, redact, redact_text

logger = logging.getLogger("orchestrator.engine.runtime")

#: Parsed definitions by content hash, and whether each reads ``$$``.
_machines: LruCache[str, tuple[StateMachine, bool]] = LruCache(256)


def load_machine(store: RedisStore, execution_id: str, def_hash: str) -> tuple[StateMachine, bool]:
    """The execution's parsed definition (cached by hash), and whether it reads ``$$``."""
    cached = _machines.get(def_hash)
    if cached is not None:
        return cached
    text = store.definition_text(def_hash)
    if text is None:
        raise LookupError(f"definition {def_hash} of execution {execution_id!r} expired")
    machine = parse_definition(json.loads(text))
    # Only definitions that can read the context object ("$$" in JSONPath and intrinsic
    # arguments, $states.context in JSONata) need the execution input there; the others
    # (most: "States.ALL" in a Catch is no reason) are spared fetching it every step.
    return _machines.put(def_hash, (machine, "$$" in text or "$states" in text))


def interpreter_for(
    store: RedisStore,
    execution_id: str,
    name: str,
    workflow: str,
    start: str,
    def_hash: str,
) -> Interpreter:
    """An interpreter for a stored execution."""
    machine, needs_input = load_machine(store, execution_id, def_hash)
    execution_input = None
    if needs_input:
        raw = store.execution_input_text(execution_id)
        execution_input = json.loads(raw) if raw is not None else None
    info = ExecutionInfo(execution_id, name, workflow, float(start), execution_input)
    return make_interpreter(machine, info)


def make_interpreter(machine: StateMachine, info: ExecutionInfo) -> Interpreter:
    """An interpreter wired to the registered activities and the settings."""
    return Interpreter(
        machine,
        info,
        activities.resolve,
        resolve_name=activities.resolve_name,
        max_inline_states=get_settings().max_inline_states,
        max_result_bytes=get_settings().max_input_bytes,
        max_variables_bytes=get_settings().max_variables_bytes,
        max_history_events=get_settings().max_history_events,
        new_token=lambda: new_token(info.execution_id),
    )


def interpreter_from_record(store: RedisStore, execution_id: str) -> Interpreter | None:
    """An interpreter for ``execution_id``, read from its record (None if unknown)."""
    meta = store.execution_meta(execution_id)
    if meta is None:
        return None
    return interpreter_for(store, execution_id, *meta)


# -- committing -------------------------------------------------------------------------


class RedisReader(Reader):
    """Reads step-hash fields for the interpreter and remembers them as guards."""

    def __init__(self, store: RedisStore, execution_id: str) -> None:
        self.store = store
        self.execution_id = execution_id
        self.seen: dict[str, str | None] = {}

    def get(self, field: str) -> str | None:
        if field not in self.seen:
            self.seen[field] = self.store.step_field(self.execution_id, field)
        return self.seen[field]

    def get_many(self, fields: list[str]) -> list[str | None]:
        if not fields:
            return []
        return self.store.step_fields(self.execution_id, fields)

    def prefetch_window(self, container: str) -> None:
        next_field, total_field, count_field = window_fields(container)
        if next_field in self.seen:
            return
        next_index, total, count, *items = self.store.map_window(self.execution_id, container)
        self.seen[next_field] = next_index
        self.seen[total_field] = total
        self.seen[count_field] = count
        if next_index is not None:
            for offset, item in enumerate(items):
                self.seen[item_field(container, int(next_index) + offset)] = item


def transition_write(
    store: RedisStore, execution_id: str, tr: Transition, write: Write | None = None
) -> Write:
    """The Redis writes of a transition (guards are the caller's)."""
    settings = get_settings()
    keys = store.keys
    write = write or Write()
    exec_key = keys.execution(execution_id)
    steps_key = keys.steps(execution_id)
    if tr.events:
        # encode(), not dumps(): an event that cannot be stored fails here, before the
        # commit (see prepare_transition), not in the middle of sending it.
        # Task tokens never reach the history (a TaskScheduled's parameters from
        # $$.Task.Token): whoever reads it could complete the task.
        write.op(
            "history", keys.history(execution_id), *(redact_text(encode(e)) for e in tr.events)
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
    for name, value in tr.fields.items():
        if value is None:
            deletes.append(name)
        else:
            sets += [name, value]
    if deletes:
        write.op("hdel", steps_key, *deletes)
    if sets:
        write.op("hset", steps_key, *sets)
    for key in tr.released:
        write.op("zrem", keys.leases, lease_member(execution_id, key))
    for dispatch in tr.dispatches:
        due = tr.now + settings.dispatch_timeout_seconds
        write.op("zadd", keys.leases, repr(due), lease_member(execution_id, dispatch.step_key))
    for due, (kind, key, attempt) in tr.timers:
        write.op("zadd", keys.timers, repr(due), timer_member(kind, execution_id, key, attempt))
    for token, target in tr.tokens.items():
        if target is None:
            write.op("hdel", keys.task_tokens(execution_id), token)
        else:
            write.op("hset", keys.task_tokens(execution_id), token, dumps(target))
    for container in tr.joins:
        write.join(
            steps_key,
            container,
            keys.leases,
            tr.now + settings.lease_seconds,
            lease_member(execution_id, container),
        )
    if tr.end is not None:
        fields: list[str] = ["status", tr.end["status"], "stop", repr(tr.now)]
        for name in ("output", "error", "cause"):
            if name in tr.end:
                fields += [name, dumps(tr.end[name])]
        write.op("hset", exec_key, *fields)
        # However it ended, its tokens end with it (in this write, at their number's cost).
        write.op("del", keys.task_tokens(execution_id))
        # What a finished execution keeps for the retention period, at its exact size.
        write.op("compact", keys.history(execution_id))
        for key in (exec_key, keys.history(execution_id), steps_key):
            write.op("expire", key, settings.retention_seconds)
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
            write.op("zadd", keys.dead_letters, repr(tr.now), execution_id)
    return write


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
        return tr, transition_write(store, execution_id, tr, record())
    except RedisError:
        raise
    except Exception as exc:  # noqa: BLE001 - see prepare_transition
        logger.exception("first transition of %s failed; failing the execution", execution_id)
        failed = interp.failed_transition(now, None, exc)
        tr = Transition(now, base=interp.history_base)
        tr.event("ExecutionStarted", input=interp.info.input)
        tr.events += failed.events
        tr.end = failed.end
        return tr, transition_write(store, execution_id, tr, record())


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
    known: dict[str, str | None] | None = None,
) -> Prepared | None:
    """Compute a transition (reading what it needs) and build its guarded write.

    ``known`` holds step-hash fields the caller read already (they are guarded too).
    """
    reader = RedisReader(store, execution_id)
    if known:
        reader.seen.update(known)
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
            write.guard_member(store.keys.timers, timer)
            write.op("zrem", store.keys.timers, timer)
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
        transition_write(store, execution_id, tr, write)
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
    skip_publish: str | None = None,
    producer: Any = None,
    publish_tasks: bool = True,
) -> None:
    """What follows a committed transition: publish its tasks, perform its joins.

    ``publish_tasks=False``: the caller hands the dispatches to :func:`dispatch_task`.
    """
    announce_end(execution_id, tr)
    dispatches = tr.dispatches if publish_tasks else []
    if skip_publish is not None and [d.step_key for d in dispatches] == [skip_publish]:
        dispatches = []
    publish(interp, execution_id, dispatches, producer=producer)
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
    skip_publish: str | None = None,
    history_base: int | None = None,
    known: dict[str, str | None] | None = None,
) -> Transition | None:
    """Compute and commit a transition; publish its tasks and perform its joins.

    ``skip_publish`` names a step whose task the caller's Celery chain already carries:
    when that step is the only one dispatched, it is not published again.

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
            after_commit(
                store, execution_id, interp, prepared.tr, result.joined, skip_publish=skip_publish
            )
            return prepared.tr
        if result.failed_guard < prepared.fixed_guards:
            return None
    raise RuntimeError(f"transition of {execution_id}/{step_key} kept conflicting")


def announce_end(execution_id: str, tr: Transition) -> None:
    """Make an uncaught failure visible in Flower, as an ``orchestrator.dead_letter`` task."""
    if tr.end is not None and tr.end["status"] in ("FAILED", "TIMED_OUT"):
        from orchestrator.client.control import trim_dead_letters

        trim_dead_letters(get_store())
        # By name through the publishing app: an explicit client's goes to its broker.
        publishing_app().send_task(
            dead_letter_task.name,
            args=(execution_id, tr.end.get("state"), tr.end.get("error"), tr.end.get("cause")),
            queue=get_settings().queue,
            ignore_result=True,
        )


@app.task(name="orchestrator.dead_letter", ignore_result=True)
def dead_letter_task(
    execution_id: str, state: str | None, error: str | None, cause: str | None
) -> None:
    """Logs a dead-lettered execution; its record is already in the dead-letter queue."""
    logger.warning(
        "execution %s dead-lettered at %s: %s: %s",
        execution_id,
        state,
        error,
        cause,
        extra={"execution_id": execution_id, "state": state},
    )


@app.task(name="orchestrator.dispatch", ignore_result=True)
def dispatch_task(batch: list[list[Any]]) -> None:
    """Publish the tasks of transitions committed elsewhere.

    Beat hands over the dispatches of a burst of fired timers in chunks, so that the one
    process firing timers spends its time on firing them, and the building of thousands
    of task messages spreads over the workers. Each entry is ``[execution_id, def_hash,
    [[step_key, state, activity, params], ...]]``. A lost chunk loses nothing: its steps
    carry dispatch leases, and the reconciler sends them again.
    """
    store = get_store()
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_CHUNK):
        for execution_id, def_hash, items in batch:
            machine, _ = load_machine(store, execution_id, def_hash)
            interp = make_interpreter(machine, ExecutionInfo(execution_id, "", "", 0.0, None))
            dispatches = [Dispatch(*item) for item in items]
            publish(interp, execution_id, dispatches, producer=producer)


def delegated_input(interp: Interpreter, dispatch: Dispatch) -> Any:
    """A dispatch's input as a :func:`dispatch_task` batch carries it: a callback task's
    with its task token redacted. Flower's worker page lists the messages a worker holds,
    real arguments and all; the step runs on the input in its record anyway."""
    scope, name = interp.scope_of(dispatch.step_key)
    return redact(dispatch.params) if is_callback(scope.states[name]) else dispatch.params


def dispatch_repr(batch: list[list[Any]]) -> str:
    """Flower's view of a :func:`dispatch_task` batch: its executions and step keys.

    Not the steps' inputs: a callback task's holds its task token, and Celery's event for
    the message would show it (its default argsrepr is a repr of the arguments).
    """
    return _cut(dumps([[entry[0], [item[0] for item in entry[2]]] for entry in batch]))


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


# -- publishing -------------------------------------------------------------------------


def publish(
    interp: Interpreter,
    execution_id: str,
    dispatches: Iterable[Dispatch],
    *,
    producer: Any = None,
) -> None:
    """Send the tasks of committed dispatches: a chain per run, a group if several.

    When every run is a single Task state — the usual case for Map items, Parallel
    branches and the Task after a Wait — the messages are built with Celery's own message
    functions (``create_task_message`` and ``send_task_message``: the same protocol,
    signals, group id and index as the group would give them) without the canvas
    ``apply_async`` and ``send_task`` layers around them, which cost as much again.
    Several dispatches go out as one pipelined producer batch.
    """
    queue = get_settings().queue
    publisher = publishing_app()
    # Declared per broker: another client's broker has not seen the queue yet.
    declared_key = (publisher.conf.broker_url, queue)
    declare: list[Any] | None = [] if declared_key in _declared else None
    runs = []
    for dispatch in dispatches:
        scope, name = interp.scope_of(dispatch.step_key)
        run = compile_run(scope.states, scope.prefix, name, dispatch.activity, activities.resolve)
        runs.append((run, dispatch.params))
    if not runs:
        return
    with contextlib.ExitStack() as stack:
        if producer is None:
            producer = stack.enter_context(publisher.producer_or_acquire())
            if len(runs) > 1:
                stack.enter_context(producer.batch(max_size=PUBLISH_CHUNK))
        if all(len(run) == 1 for run, _ in runs):
            group_id = str(uuid.uuid4()) if len(runs) > 1 else None
            lineage = _lineage()
            for index, (run, params) in enumerate(runs):
                args = (params, execution_id, run[0].step_key)
                _send_task(
                    publisher,
                    producer,
                    run[0].activity,
                    args,
                    queue,
                    declare,
                    group_id,
                    index,
                    lineage,
                )
        else:
            signatures = []
            for run, params in runs:
                carried, argsrepr = _message_input(params, execution_id, run[0].step_key)
                signature = run_signature(run, carried, execution_id, queue, publisher)
                # Flower's view of the args, as compact JSON: Celery's saferepr of the
                # arguments costs more than building the rest of the message.
                signature.set(argsrepr=argsrepr, kwargsrepr="{}")
                signatures.append(signature)
            options = {} if declare is None else {"declare": declare}
            fan_out(signatures, publisher).apply_async(producer=producer, **options)
    _declared.add(declared_key)


def _lineage() -> tuple[str | None, str | None]:
    """(root id, parent id) for tasks published from inside a step, so that Flower links
    them to it; (None, None) elsewhere."""
    parent = app.current_worker_task
    if parent is None:
        return None, None
    return parent.request.root_id or parent.request.id, parent.request.id


def _send_task(
    publisher: Celery,
    producer: Any,
    name: str,
    args: tuple[Any, str, str],
    queue: str,
    declare: list[Any] | None,
    group_id: str | None,
    group_index: int,
    lineage: tuple[str | None, str | None],
) -> None:
    task_id = str(uuid.uuid4())
    root_id, parent_id = lineage
    carried, argsrepr = _message_input(*args)
    message = publisher.amqp.create_task_message(
        task_id,
        name,
        (carried, args[1], args[2]),
        {},
        group_id=group_id,
        group_index=group_index if group_id else None,
        root_id=root_id or task_id,
        parent_id=parent_id,
        argsrepr=argsrepr,
        kwargsrepr="{}",
    )
    publisher.amqp.send_task_message(producer, name, message, queue=queue, declare=declare)


#: Messages sent per round trip when a transition dispatches many tasks (a Map's or a
#: Parallel's start). One batch for all would save a few round trips, but the workers
#: would wait idle until the last message of a 500-item Map start is built.
PUBLISH_CHUNK = 50

#: Queues this process published to already, by broker URL. Celery declares a message's
#: queue before every publish (a copy and a lookup per message); queues are durable broker
#: state, so after a process's first publish to one, later ones skip that.
_declared: set[tuple[str | None, str]] = set()

#: Celery's limit on a message's argsrepr.
_ARGSREPR_MAX = 1024


def _message_input(params: Any, execution_id: str, step_key: str) -> tuple[Any, str]:
    """A step's input as its message carries it, and Flower's view of its arguments
    (compact JSON): both with task tokens redacted.

    The worker runs a step on the input in its record in Redis, never on the message's
    copy (kept for Flower and dead letters), so a callback task's activity still gets its
    token while the broker, Celery's events and Flower never see it.
    """
    try:
        text = dumps([params, execution_id, step_key])
    except (TypeError, ValueError):
        text = repr((params, execution_id, step_key))
    redacted = redact_text(text)
    if redacted != text:
        params = redact(params)
    return params, _cut(redacted)


def _cut(text: str) -> str:
    return text if len(text) <= _ARGSREPR_MAX else text[: _ARGSREPR_MAX - 3] + "..."


# -- steps in workers -------------------------------------------------------------------


def run_activity_step(
    task: Task,
    function: Callable[[Any], Any],
    message_input: Any,
    execution_id: str | None,
    step_key: str | None,
) -> Any:
    """Body of every activity task: claim the step, run the function, commit, continue."""
    if execution_id is None or step_key is None:
        # Called as a plain Celery task, outside any workflow.
        return function(message_input)
    with step_context(execution_id, state_name(step_key)):
        return _run_step(task, function, message_input, execution_id, step_key)


def _run_step(
    task: Task,
    function: Callable[[Any], Any],
    message_input: Any,
    execution_id: str,
    step_key: str,
) -> Any:
    settings = get_settings()
    store = get_store()
    token = uuid.uuid4().hex[:16]
    now = time.time()
    started_event: dict[str, Any] = {
        "type": "TaskStarted",
        "ts": now,
        "state": state_name(step_key),
    }
    if "/" in step_key:  # as Interpreter.event: a branch's or item's event names its step
        started_event["key"] = step_key
    started = dumps(started_event)
    containers = ancestors(step_key)
    container = containers[-1] if containers else ""
    claimed, details = store.claim_step(
        execution_id, step_key, token, now + settings.lease_seconds, started, container
    )
    if not claimed and details[0] == "no execution":
        from orchestrator.client.control import dead_letter_message

        dead_letter_message(
            "ExecutionNotFound",
            f"step message for unknown execution {execution_id!r}",
            message_input,
            execution_id=execution_id,
            state=state_name(step_key),
        )
    if not claimed:
        logger.info(
            "dropping duplicate or stale step message %s/%s (%s)",
            execution_id,
            step_key,
            details[0],
        )
        _stop_chain(task)
        return None
    record_text, status, name, workflow, start, def_hash, history_length, next_item, total = details
    known: dict[str, str | None] = {}
    if next_item is not None and total is not None and int(next_item) >= int(total):
        # Every item of the Map this step runs in has started: when this iteration ends,
        # it starts no other, and needs no read of the window to learn that.
        known = {f"{container}|next": next_item, f"{container}|t": total}
    record = StepRecord.loads(record_text)  # type: ignore[arg-type]
    interp = interpreter_for(store, execution_id, name, workflow, start, def_hash)  # type: ignore[arg-type]
    result: Any = None
    with leases.holding(execution_id, step_key):
        try:
            result = function(record.params)
            _check_result(record.state, result, settings.max_input_bytes)
        except Exception as exc:  # noqa: BLE001 - every activity error is a workflow error
            error, cause = error_of(exc)
            failure: tuple[str, str] | None = (error, cause)
        else:
            failure = None

    def compute() -> Transition:
        now = time.time()
        fresh = StepRecord.loads(record_text)  # type: ignore[arg-type]
        if failure is not None:
            return interp.task_failed(step_key, fresh, failure[0], failure[1], now)
        if fresh.token:
            return interp.task_waiting(step_key, fresh, now, result)
        return interp.task_succeeded(step_key, fresh, result, now)

    chained = _chained_next(task)
    tr = run_transition(
        store,
        execution_id,
        interp,
        compute,
        step_key=step_key,
        step_status=status,
        skip_publish=chained,
        history_base=int(history_length),  # type: ignore[arg-type]
        known=known,
    )
    if tr is None:
        logger.info("discarding late result of %s/%s", execution_id, step_key)
        _stop_chain(task)
        return None
    if chained is not None and [d.step_key for d in tr.dispatches] == [chained]:
        # The return value is the next task's input: Celery's task-succeeded event shows
        # it (Flower's "result") and would show saferepr(params) as the next task's args.
        params, argsrepr = _message_input(tr.dispatches[0].params, execution_id, chained)
        options = task.request.chain[-1].setdefault("options", {})
        options["argsrepr"] = argsrepr
        options["kwargsrepr"] = "{}"
        return params
    _stop_chain(task)
    return None


def _chained_next(task: Task) -> str | None:
    """Step key of the task the rest of this message's chain starts with, if any."""
    chained = task.request.chain
    if not chained:
        return None
    args = chained[-1].get("args") or ()
    return args[-1] if args else None


def _stop_chain(task: Task) -> None:
    # Celery reads the rest of the chain from the request after the task returns.
    task.request.chain = None
    task.request.callbacks = None


def _check_result(state: str, result: Any, limit: int) -> None:
    try:
        text = checked_dumps(result)
    except (TypeError, ValueError) as exc:
        raise StatesError(
            f"activity result is not JSON-serializable: {exc}", error="States.Runtime"
        ) from None
    if len(text.encode()) > limit:
        raise StatesError(data_limit_cause(state), error="States.DataLimitExceeded")


def error_of(exc: BaseException) -> tuple[str, str]:
    """The (Error, Cause) of an exception: its class name and its message."""
    error = getattr(exc, "error", None)
    if isinstance(error, str) and error:
        return error, str(getattr(exc, "cause", "") or "")
    return type(exc).__name__, str(exc)


# -- leases -----------------------------------------------------------------------------


class LeaseKeeper:
    """Renews the leases of the steps running in this process, from one thread.

    A step whose lease is not renewed (its worker died) is dispatched again by the
    reconciler in the timer loop, within ``lease_seconds``.
    """

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._outage = OutageLog(logger)

    def holding(self, execution_id: str, step_key: str) -> _Held:
        """Context manager: keep this step's lease alive while the body runs."""
        return _Held(self, lease_member(execution_id, step_key))

    def _add(self, member: str) -> None:
        import os

        with self._lock:
            self._held[member] = self._held.get(member, 0) + 1
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="orchestrator-leases", daemon=True
                )
                self._thread.start()

    def _remove(self, member: str) -> None:
        with self._lock:
            count = self._held.get(member, 0) - 1
            if count <= 0:
                self._held.pop(member, None)
            else:
                self._held[member] = count

    def _run(self) -> None:
        while True:
            interval = get_settings().lease_seconds / 3
            time.sleep(interval)
            with self._lock:
                members = list(self._held)
            if not members:
                continue
            try:
                store = get_store()
                until = time.time() + get_settings().lease_seconds
                # XX: renew only leases that still exist (a finished step's is gone).
                store.renew_leases(members, until)
            except Exception as exc:  # noqa: BLE001 - keep renewing after a Redis hiccup
                if not self._outage.failed(exc):  # an outage: one line when it starts
                    logger.warning("could not renew step leases", exc_info=True)
            else:
                self._outage.ok()


class _Held:
    def __init__(self, keeper: LeaseKeeper, member: str) -> None:
        self.keeper = keeper
        self.member = member

    def __enter__(self) -> None:
        self.keeper._add(self.member)

    def __exit__(self, *_: object) -> None:
        self.keeper._remove(self.member)


leases = LeaseKeeper()
