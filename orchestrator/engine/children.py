"""Child workflows: the engine's side of the ``startExecution`` integrations.

The interpreter schedules a ``startExecution`` Task with a ``childstart`` timer due at
once (orchestrator/language/children.py: the modes, the request, the output shapes), in
the very transition that schedules it, and the child's id in the step's record (derived
from the step and that transition, or the ``Name`` parameter). Firing the timer, as a
Distributed Map's advance starts its children (orchestrator/engine/maprun.py):

1. writes the link on the parent, guarded by its running (its record's ``child:<id>``
   field, JSON ``[step key, mode]``), then starts the child with ``child_start_write`` +
   its first transition, guarded by the id's absence (two writes, each in one
   execution's slot): a timer fired again (a crash, a conflict) finds its child there
   and starts no second one (an execution of that id that is not this Task's child
   fails the Task with ``StepFunctions.ExecutionAlreadyExistsException``), and no child
   runs unlinked (a parent that ended between the two is caught by step 2's guard);
2. commits the parent's transition (``TaskStarted``, then ``TaskSubmitted`` and WAITING
   for ``.sync`` and ``.waitForTaskToken``, else ``TaskSucceeded`` with
   ``{"ExecutionArn", "StartDate"}``) guarded by the timer and the step as read. When
   it no longer applies (the Task timed out meanwhile, the parent ended), the children
   no Task waits on are stopped (``maprun.stop_children``).

The child's record links back (``parent``, ``parent_state``, ``parent_mode``) and, for a
``.sync`` child, holds in ``notify`` the ``childend`` timer member its final commit adds
(commit.lua's ``notify``, as a Map Run's children report to their run): the parent learns
of the end through the commit that ends the child, whatever process dies when, and fires
it here as a guarded transition of its own (the Task succeeds with the child's
DescribeExecution, or fails with ``States.TaskFailed``, the description as its cause).

A ``.sync`` child whose Task no longer waits on it is stopped: its Task timed out
(``TimeoutSeconds``, ``HeartbeatSeconds``), failed or was abandoned (its Parallel or Map
failed), or the parent ended (stopped, failed, timed out). The parent's stop stops them
after its commit; every other end sets, in its own commit, the advance due at once that a
Distributed Map's end sets (keyed by no Map: orchestrator/engine/maprun.py), which finds
them (``maprun.stop_children``). A ``.waitForTaskToken`` child is stopped with its parent
while its Task waits. A redrive of the parent schedules the Task again, which starts a new
child.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

from orchestrator import examples
from orchestrator.config import get_settings
from orchestrator.engine import activities, maprun
from orchestrator.engine import registry as machine_registry
from orchestrator.engine.commit import (
    after_commit,
    child_start_write,
    prepare_transition,
    start_transition,
)
from orchestrator.engine.lru import LruCache
from orchestrator.engine.machines import interpreter_from_record, make_interpreter
from orchestrator.engine.publisher import execution_priority
from orchestrator.engine.records import base_status, parse_timer_member, timer_member
from orchestrator.engine.store import RedisStore, Write
from orchestrator.errors import (
    DefinitionError,
    InvalidArn,
    ResourceNotFound,
    StateMachineNotFound,
    StatesError,
)
from orchestrator.language import arns
from orchestrator.language import registry as rules
from orchestrator.language.children import (
    CHILD_FIELD,
    WAITING_MODES,
    ChildTimer,
    child_request,
    described,
)
from orchestrator.language.definition import StateMachine, parse_definition
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
    StepRecord,
    StepStatus,
    Transition,
)
from orchestrator.language.jsontext import dumps

logger = logging.getLogger("orchestrator.engine.children")

#: A child's end fired before the parent recorded its start is looked at this much later.
NOT_YET_S = 0.5
#: When firing raised, the timer is tried again this much later (seconds).
RETRY_BROKEN_S = 5.0
#: Recomputations of a parent's transition whose reads changed under it.
MAX_RECOMPUTE = 50
#: Endings of definition files in a workflows folder, the most specific first (as
#: ``start_workflow`` looks names up: orchestrator/client/api.py).
WORKFLOW_SUFFIXES = (".asl.json", ".asl.yaml", ".asl.yml", ".json", ".yaml", ".yml")

_loaded: LruCache[tuple[str, str | int, int], tuple[StateMachine, str, str]] = LruCache(64)


def end_member(parent: str, key: str, child: str, attempt: int) -> str:
    """The ``childend`` timer a ``.sync`` child's final commit adds for its parent."""
    return timer_member(ChildTimer.ENDED, parent, f"{key}|{child}", attempt)


class _ParentEnded(Exception):
    """The parent no longer runs: its child is not started."""


class _StartFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error, self.cause = error, cause


def fire(store: RedisStore, members: list[str], now: float) -> None:
    """Fire due ``childstart`` and ``childend`` timers, one at a time."""
    for member in members:
        try:
            kind = parse_timer_member(member)[0]
            if kind == ChildTimer.START:
                _fire_start(store, member, now)
            else:
                _fire_end(store, member, now)
        except Exception:  # noqa: BLE001 - one broken timer must not stop the others
            logger.exception("child workflow timer %s failed; trying again later", member)
            store.defer_timer(member, now + RETRY_BROKEN_S)


def _commit(
    store: RedisStore,
    parent: str,
    interp: Interpreter,
    compute: Any,
    *,
    key: str,
    status: str,
    member: str,
) -> bool:
    """Commit the parent's transition guarded by the step as read and the timer; False
    if it no longer applies."""
    for _ in range(MAX_RECOMPUTE):
        prepared = prepare_transition(
            store, parent, interp, compute, step_key=key, step_status=status, timer=member
        )
        if prepared is None:
            return False
        result = store.apply(prepared.write)
        if result.ok:
            after_commit(store, parent, interp, prepared.tr, result.joined)
            return True
        if result.failed_guard < prepared.fixed_guards:
            return False
    raise RuntimeError(f"the child workflow transition of {parent}/{key} kept conflicting")


def _step(store: RedisStore, parent: str, key: str) -> tuple[Interpreter, str, StepRecord] | None:
    """The parent's interpreter, the step's status and record, if the parent runs and
    the step is a child workflow's Task."""
    if store.execution_status(parent) != "RUNNING":
        return None
    status, text = store.step_state(parent, key)
    if status is None or text is None:
        return None
    record = StepRecord.loads(text)
    if record.kind != "child" or not record.run:
        return None
    interp = interpreter_from_record(store, parent)
    if interp is None:
        return None
    return interp, status, record


def _fire_start(store: RedisStore, member: str, now: float) -> None:
    _, parent, key, attempt = parse_timer_member(member)
    found = _step(store, parent, key)
    if (
        found is None
        or base_status(found[1]) != StepStatus.SCHEDULED
        or found[2].attempt != attempt
    ):
        store.drop_timers(member)
        # A firing that started the child and died before the parent's commit: the Task
        # has moved on since (timed out, the parent ended), and no longer waits on it.
        maprun.stop_children(store, parent, now)
        return
    interp, status, record = found
    run = record.run or {}
    child, mode = str(run["child"]), str(run["mode"])
    try:
        workflow, start = start_child(store, interp, key, record, now)
    except _ParentEnded:
        store.drop_timers(member)
        return
    except _StartFailed as failed:
        error, cause, text = failed.error, failed.cause, record.dumps()
        if mode == "sdk":  # the SDK integration's spelling of the service's errors
            error = error.replace("StepFunctions.", "Sfn.", 1)

        def compute_failed() -> Transition:
            return interp.task_failed(key, StepRecord.loads(text), error, cause, now)

        if not _commit(
            store, parent, interp, compute_failed, key=key, status=status, member=member
        ):
            store.drop_timers(member)
        return
    arn = arns.execution_arn(workflow, child)
    text = record.dumps()

    def compute() -> Transition:
        return interp.child_started(key, StepRecord.loads(text), arn, start, now)

    if not _commit(store, parent, interp, compute, key=key, status=status, member=member):
        store.drop_timers(member)
        # The Task moved on while its child started (it timed out, the parent ended).
        maprun.stop_children(store, parent, now)


def start_child(
    store: RedisStore, interp: Interpreter, key: str, record: StepRecord, now: float
) -> tuple[str, float]:
    """Start the child a Task's record names (once: guarded by its id's absence) and
    return its workflow and start time; :class:`_StartFailed` when it cannot start."""
    parent = interp.info.execution_id
    run = record.run or {}
    child, mode = str(run["child"]), str(run["mode"])
    try:
        request = child_request(record.params)
    except StatesError as exc:
        raise _StartFailed(exc.error, exc.cause or str(exc)) from None
    existing = store.execution_records([child], ("parent", "parent_run", "workflow", "start"))[0]
    if existing.get("start") is not None:
        if existing.get("parent") == parent and existing.get("parent_run") == run["id"]:
            return existing.get("workflow") or request.workflow, float(existing["start"] or now)
        raise _StartFailed(
            "StepFunctions.ExecutionAlreadyExistsException",
            f"Execution Already Exists: '{arns.execution_arn(request.workflow, child)}'",
        )
    workflow = request.workflow
    try:
        machine, text, def_hash, registered = child_workflow(
            store, request.state_machine_arn, workflow
        )
    except (DefinitionError, StateMachineNotFound, ResourceNotFound) as exc:
        raise _StartFailed(
            "StepFunctions.StateMachineDoesNotExistException",
            f"State Machine Does Not Exist: '{request.state_machine_arn}' ({exc})",
        ) from None
    input_text = dumps(request.input)
    priority = execution_priority(interp.info)
    info = ExecutionInfo(child, child, workflow, now, request.input, priority=priority)
    child_interp = make_interpreter(machine, info)
    link: list[str] = ["parent", parent, "parent_state", key, "parent_run", str(run["id"])]
    link += ["parent_mode", mode, *registered]
    if mode in WAITING_MODES:
        link += ["notify", end_member(parent, key, child, record.attempt)]

    # The parent links the child before it starts (so an end of the parent or of its
    # Task always finds the children to stop), and only a running parent links one. Two
    # writes, each in its execution's slot (a cluster runs no call across two): a
    # parent that ends between them finds the child not started yet, and this firing's
    # own commit then fails and stops it (fire_start); a crash between leaves a link to
    # no execution, which the timer fired again completes.
    parent_key = store.keys.execution(parent)
    linking = Write().guard_field(parent_key, "status", "RUNNING")
    linking.op("hset", parent_key, f"{CHILD_FIELD}{child}", dumps([key, mode]))
    if not store.apply(linking).ok:
        raise _ParentEnded(parent)

    def record_write() -> Write:
        return child_start_write(
            store,
            child,
            workflow=workflow,
            input_text=input_text,
            now=now,
            def_hash=def_hash,
            definition_text=text,
            priority=priority,
            link=link,
        )

    tr, write = start_transition(store, child, child_interp, now, record_write)
    result = store.apply(write)
    if result.ok:
        after_commit(store, child, child_interp, tr, result.joined)
        return workflow, now
    # Started meanwhile (another firing of the same timer): ours, or someone else's.
    return start_child(store, interp, key, record, now)


def workflow_dirs() -> list[Path]:
    """Where a child's workflow is looked up by name, in order: the configured workflows
    folder, then the packaged examples (as ``start_workflow`` looks names up)."""
    folder = Path(get_settings().workflows_dir).resolve()
    return list(dict.fromkeys([folder, examples.WORKFLOWS_DIR]))


def child_workflow(
    store: RedisStore, state_machine_arn: str, name: str
) -> tuple[StateMachine, str, str, list[str]]:
    """What a child runs: its definition, stored text, content hash and the record fields
    naming the registered version or alias it runs through. A workflow file of that name
    first (as a start by name), else the state machine registry: the latest revision, or
    the version or alias the ARN names (an alias picks a version by its weights).

    Raises:
        DefinitionError: the workflow file is invalid, or names nothing.
        StateMachineNotFound, ResourceNotFound: nothing registered under that ARN.
    """
    target = rules.Target(name)
    if rules.is_arn(state_machine_arn):
        with contextlib.suppress(InvalidArn):
            target = rules.parse_arn(state_machine_arn)
    if target.version is None and target.alias is None:
        found = load_workflow(target.name)
        if found is not None:
            return (*found, [])
    resolved = machine_registry.resolve(store, target, random.random)
    key = ("registry", resolved.revision, 0)
    cached = _loaded.get(key)
    if cached is None:
        machine = parse_definition(resolved.definition, resource_check=activities.resource_problem)
        maprun.check_definition(machine)
        text = dumps(machine.to_asl())
        cached = _loaded.put(key, (machine, text, hashlib.sha1(text.encode()).hexdigest()))
    fields: list[str] = []
    if resolved.version is not None:
        fields += ["version", str(resolved.version)]
    if resolved.alias is not None:
        fields += ["alias", resolved.alias]
    return (*cached, fields)


def load_workflow(name: str) -> tuple[StateMachine, str, str] | None:
    """The workflow ``name`` (a file of the workflows folder), validated as a start
    validates it, with its stored text and content hash; cached by file and version.
    None when there is no such file; :class:`DefinitionError` when it is invalid."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    for folder in workflow_dirs():
        for suffix in WORKFLOW_SUFFIXES:
            path = folder / f"{name}{suffix}"
            if not path.is_file():
                continue
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            cached = _loaded.get(key)
            if cached is None:
                machine = parse_definition(path, resource_check=activities.resource_problem)
                maprun.check_definition(machine)
                text = dumps(machine.to_asl())
                cached = _loaded.put(key, (machine, text, hashlib.sha1(text.encode()).hexdigest()))
            return cached
    return None


def _fire_end(store: RedisStore, member: str, now: float) -> None:
    _, parent, tag, _attempt = parse_timer_member(member)
    key, _, child = tag.rpartition("|")
    found = _step(store, parent, key)
    if found is None or (found[2].run or {}).get("child") != child:
        store.drop_timers(member)
        return
    interp, status, record = found
    if base_status(status) == StepStatus.SCHEDULED:
        # The child ended before the parent's commit of its start: look again soon.
        store.defer_timer(member, now + NOT_YET_S)
        return
    if base_status(status) not in (StepStatus.WAITING, StepStatus.RUNNING):
        store.drop_timers(member)
        return
    description = describe_child(store, child, str((record.run or {}).get("mode")))
    if description is None or description["Status"] == "RUNNING":
        store.drop_timers(member)  # (redriven since: its next end adds the timer again)
        return
    text = record.dumps()

    def compute() -> Transition:
        return interp.child_ended(key, StepRecord.loads(text), description, now)

    if not _commit(store, parent, interp, compute, key=key, status=status, member=member):
        store.drop_timers(member)


def describe_child(store: RedisStore, child: str, mode: str) -> dict[str, Any] | None:
    """A child's DescribeExecution as its ``.sync`` (``.sync:2``) Task returns it."""
    record = store.execution(child)
    if not record:
        return None
    workflow = record.get("workflow", "")

    def text(name: str) -> str | None:
        value = record.get(name)
        return None if value is None else str(json.loads(value))

    output = record.get("output")
    return described(
        execution_arn=arns.execution_arn(workflow, child),
        state_machine_arn=arns.state_machine_arn(workflow),
        name=record.get("name", child),
        status=record["status"],
        input_text=record.get("input"),
        output_text=output,
        error=text("error"),
        cause=text("cause"),
        start=float(record.get("start") or 0),
        stop=float(record["stop"]) if record.get("stop") else None,
        parsed=mode == "sync2",
    )
