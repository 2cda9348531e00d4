"""The public Python API: start executions and look at them.

Functions here validate their arguments, then delegate to the interpreter, the store and
the runtime; none of them blocks on a workflow except :meth:`ExecutionHandle.result`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

from orchestrator import examples
from orchestrator.client import inputs
from orchestrator.client.models import (
    ChildExecution,
    ExecutionDescription,
    ExecutionResult,
    ExecutionStatus,
    HistoryEvent,
    StepInfo,
    to_datetime,
)
from orchestrator.config import get_settings
from orchestrator.engine import activities, maprun
from orchestrator.engine import registry as machine_registry
from orchestrator.engine.commit import announce_end, perform_join, start_transition, start_write
from orchestrator.engine.cursors import ListingCursor
from orchestrator.engine.lru import LruCache
from orchestrator.engine.machines import EXPRESS_FIELD, express_definition, make_interpreter
from orchestrator.engine.publisher import publish
from orchestrator.engine.records import live_steps
from orchestrator.engine.store import (
    OUTAGE_ERRORS,
    RedisStore,
    get_store,
    store_call,
    unavailable,
    using_store,
)
from orchestrator.errors import (
    DefinitionError,
    DefinitionIssue,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidInputError,
    StateMachineNotFound,
)
from orchestrator.language import arns
from orchestrator.language import registry as rules
from orchestrator.language.arns import state_machine_arn
from orchestrator.language.children import children_of
from orchestrator.language.definition import StateMachine, parse_definition
from orchestrator.language.interpreter import ExecutionInfo
from orchestrator.language.jsontext import dumps

#: Workflow names as the engine derives them (file stems or a definition's Comment).
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
#: Endings of definition files in a workflows folder, the most specific first.
WORKFLOW_SUFFIXES = (".asl.json", ".asl.yaml", ".asl.yml", ".json", ".yaml", ".yml")

DefinitionSource = dict[str, Any] | str | os.PathLike[str]


def load_definition(definition: DefinitionSource) -> tuple[StateMachine, str]:
    """Parse and validate a definition; return it with its workflow name.

    ``definition`` is a dict, ASL JSON or YAML text, a file path, or the name of a file
    under the workflows folder (``order_fulfillment`` for
    ``workflows/order_fulfillment.asl.json``). Every Task ``Resource`` must resolve
    to a registered activity. The workflow's name (``$$.StateMachine.Name``) is the file's
    name; for a dict or text, the definition's ``Comment`` when that is a short identifier
    (``order-flow``), else ``inline``.
    """
    source: Any = definition
    workflow = "inline"
    if isinstance(definition, os.PathLike):
        source = Path(definition)
        workflow = _stem(source)
    elif isinstance(definition, str):
        path = _workflow_file(definition)
        if path is not None:
            source, workflow = path, _stem(path)
    machine = parse_definition(source, resource_check=activities.resource_problem)
    # A Distributed Map's S3 reader and writer are the engine's to check (boto3 is optional).
    maprun.check_definition(machine)
    if workflow == "inline" and machine.comment and WORKFLOW_NAME.match(machine.comment):
        workflow = machine.comment
    return machine, workflow


#: Parsed definitions with their stored text and hash, by source (see ``_compiled``).
_compiled_cache: LruCache[Any, tuple[StateMachine, str, str, str]] = LruCache(256)


def _compiled(definition: DefinitionSource) -> tuple[StateMachine, str, str, str]:
    """``load_definition``, plus the stored text and content hash, cached by source.

    Starting the same workflow again (by dict, text or file name) skips parsing and
    validating it; a file is parsed again when its size or modification time changes.
    Only valid definitions are cached: an invalid one raises every time.
    """
    source: DefinitionSource = definition
    key: Any
    if isinstance(definition, dict):
        try:
            key = ("dict", json.dumps(definition, sort_keys=True, default=repr))
        except (TypeError, ValueError, RecursionError):
            # Not JSON (mixed key types, a cycle, absurd nesting): validation says why.
            return _compile(definition)
    elif not isinstance(definition, str | os.PathLike):
        return _compile(definition)  # parse_definition says what it should be
    else:
        # Resolved once: a workflow name or a path names a file; other text is ASL.
        path = (
            Path(definition) if isinstance(definition, os.PathLike) else _workflow_file(definition)
        )
        if path is None:
            key = ("text", definition)
        elif path.is_file():
            stat = path.stat()
            source, key = path, ("file", str(path), stat.st_mtime_ns, stat.st_size)
        else:
            return _compile(definition)  # load_definition says what is wrong
    cached = _compiled_cache.get(key)
    return cached if cached is not None else _compiled_cache.put(key, _compile(source))


def _compile(source: DefinitionSource) -> tuple[StateMachine, str, str, str]:
    machine, workflow = load_definition(source)
    text = dumps(machine.to_asl())
    return machine, workflow, text, hashlib.sha1(text.encode()).hexdigest()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in WORKFLOW_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _workflow_file(text: str) -> Path | None:
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return None
    if os.path.isfile(text):
        return Path(text)
    if WORKFLOW_NAME.match(text) and not text.endswith(WORKFLOW_SUFFIXES):
        for folder in workflow_dirs():
            for suffix in WORKFLOW_SUFFIXES:
                candidate = folder / f"{text}{suffix}"
                if candidate.is_file():
                    return candidate
        searched = ", ".join(str(d) for d in workflow_dirs())
        raise DefinitionError(
            [DefinitionIssue("$", f"no workflow named {text!r} (looked in {searched})")]
        )
    return None


def workflow_dirs() -> list[Path]:
    """Where workflows are looked up by name, in order: the configured workflows folder
    (relative: to the working directory), then the packaged examples."""
    folder = Path(get_settings().workflows_dir).resolve()
    return list(dict.fromkeys([folder, examples.WORKFLOWS_DIR]))


#: The history events that end an execution (appended with its final status).
END_EVENTS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
)

#: The longest a waiting call blocks on Redis at once (then it looks at the status
#: again): kept well below the store's reply timeout (ORCHESTRATOR_REDIS_TIMEOUT_SECONDS).
RESULT_BLOCK_S = 1.0

#: The most history events one waiting read returns.
EVENTS_PER_READ = 1000


class ExecutionHandle:
    """A started execution: its id, and ways to wait for it and look at it."""

    def __init__(self, execution_id: str, store: RedisStore | None = None) -> None:
        self.execution_id = arns.execution_id_from(execution_id)
        self._store = store

    @property
    def store(self) -> RedisStore:
        """The store this execution lives in."""
        if self._store is None:
            self._store = get_store()
        return self._store

    def __repr__(self) -> str:
        return f"ExecutionHandle({self.execution_id!r})"

    @store_call(mutates=False)
    def describe(self) -> ExecutionDescription:
        """The execution's current description."""
        with using_store(self.store):
            return describe_execution(self.execution_id)

    @store_call(mutates=False)
    def history(self, after: int = 0) -> list[HistoryEvent]:
        """The execution's history events with an id above ``after``, oldest first."""
        with using_store(self.store):
            return get_execution_history(self.execution_id, after=after)

    @store_call(mutates=False)
    def wait_events(self, after: int, timeout: float) -> list[HistoryEvent]:
        """The events with an id above ``after``, waiting up to ``timeout`` seconds (one
        blocking read, at most a second or two) for one to be appended; [] if none was."""
        raw = self.store.wait_history(
            self.execution_id, after, max(0.0, min(timeout, RESULT_BLOCK_S)), EVENTS_PER_READ
        )
        return [_history_event(event) for event in raw]

    @store_call(mutates=False)
    def result(self, timeout: float | None = None) -> ExecutionResult:
        """Wait for the execution to end and return how it ended.

        A FAILED (or TIMED_OUT, ABORTED) execution is returned, not raised.

        Raises:
            TimeoutError: it did not end within ``timeout`` seconds.
            StoreUnavailable: Redis could not be reached.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        # No polling: block on the history for the end event, which the commit that ends
        # the execution appends with its final status. Each wait is bounded, and the
        # status is read again after a quiet one, so nothing missed can hang this.
        seen, status = self.store.history_cursor(self.execution_id)
        while True:
            if status is None:
                raise ExecutionNotFound(self.execution_id)
            if status != ExecutionStatus.RUNNING.value:
                return self.describe().result()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"execution {self.execution_id!r} still running after {timeout} s"
                )
            wait = RESULT_BLOCK_S if remaining is None else min(RESULT_BLOCK_S, remaining)
            # Only the newest event read matters: an end event is the last its commit
            # appends, and any event after one is a redrive's (running again).
            newest, kind = self.store.wait_newest_event(
                self.execution_id, seen, wait, EVENTS_PER_READ
            )
            if newest > seen:
                seen = newest
                if kind not in END_EVENTS:
                    continue  # still running: wait for the next events
            status = self.store.execution_status(self.execution_id)


@store_call(mutates=False)  # until the commit is sent: see the try around it
def start_workflow(
    definition: DefinitionSource,
    input: Any = None,
    *,
    name: str | None = None,
    priority: int | None = None,
) -> ExecutionHandle:
    """Start an execution of a workflow and return its handle at once.

    Args:
        definition: A dict, ASL JSON/YAML text, a file path, or the name of a workflow
            (looked up in the workflows folder, then in the packaged examples).
        input: The execution input; any JSON-serializable value (default ``{}``), at most
            ``ORCHESTRATOR_MAX_INPUT_BYTES`` (256 KiB) as JSON.
        name: The execution name, which is also its id and an idempotency key: starting
            the same name again with the same input returns the existing execution.
        priority: 0 (least urgent) to 9 (most urgent); default
            ``ORCHESTRATOR_DEFAULT_PRIORITY`` (4). Every task message of the execution
            (its Distributed Map children's too) carries it, so its steps overtake those
            of less urgent executions waiting in the same queue.

    Raises:
        DefinitionError: the definition is invalid (``.issues`` lists every problem).
        InvalidInputError: the input, name or priority is unusable. Nothing is started.
        ExecutionAlreadyExists: ``name`` exists with a different input.
        StoreUnavailable: Redis could not be reached; ``maybe_applied`` if the execution
            may have been created (then, with a ``name``, starting again is safe).
        CommitRefused: a key of this execution holds foreign or corrupted data; nothing
            was written (a start is all or nothing).
    """
    settings = get_settings()
    machine, workflow, definition_text, def_hash, started_as = _resolve(definition)
    if input is None:
        input = {}
    input_text = inputs.input_text(input, settings.max_input_bytes)
    if name is not None and not inputs.EXECUTION_NAME.match(name):
        raise InvalidInputError(
            f"execution name {name!r}: use 1-80 characters without whitespace or any of "
            '< > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /'
        )
    priority = inputs.execution_priority(priority, settings.default_priority)
    execution_id = name or uuid.uuid4().hex
    input_hash = hashlib.sha1(input_text.encode()).hexdigest()
    store = get_store()
    now = time.time()
    info = ExecutionInfo(
        execution_id,
        execution_id,
        workflow,
        now,
        json.loads(input_text),
        started_as.get("type") == "EXPRESS",
        priority=priority,
    )
    interp = make_interpreter(machine, info)
    record = functools.partial(
        start_write,
        store,
        execution_id,
        workflow=workflow,
        input_text=input_text,
        input_hash=input_hash,
        now=now,
        def_hash=def_hash,
        definition_text=definition_text,
        priority=priority,
        extra=started_as,
    )

    # Valid input the first states cannot process (an evaluation that fails, a quota) is
    # the execution's failure, recorded FAILED with its history; only input that is not
    # JSON or is over the quota is the caller's (InvalidInputError above, nothing written).
    tr, write = start_transition(store, execution_id, interp, now, record)
    try:
        result = store.apply(write)
        if not result.ok:
            if store.execution_input_hash(execution_id) == input_hash:
                return ExecutionHandle(execution_id, store)
            raise ExecutionAlreadyExists(execution_id)
        announce_end(execution_id, tr)
        publish(interp, execution_id, tr.dispatches)
        for container in result.joined:
            perform_join(store, execution_id, interp, container)
    except OUTAGE_ERRORS as exc:
        # The commit may have been applied before its reply was lost (a step left
        # unpublished is sent again by the reconciler from the outbox, within the lease).
        raise unavailable(exc, maybe_applied=True, hint=_restart_hint(name)) from exc
    return ExecutionHandle(execution_id, store)


#: The random source of alias routing (:func:`orchestrator.language.registry.choose_version`).
_routing_random = random.Random()
#: Workflow files this process registered: (Redis URL, key prefix, name) -> revision, so
#: a start by file name writes the registry once per revision, not at every start.
_registered: LruCache[tuple[str, str, str], str] = LruCache(256)


def _resolve(definition: DefinitionSource) -> tuple[StateMachine, str, str, str, dict[str, str]]:
    """What a start runs: ``_compiled``'s four values and the record fields naming the
    version and alias it runs through ({} for none).

    A state machine, version or alias ARN, or a registered name, runs from the registry
    (an alias picks a version by its weights). A workflow file in the workflows folder
    (by name or path) is the source of the state machine of its name: it is registered
    on first use, and again as a new revision when its content changes (idempotently:
    same content, same revision). A name with neither a file nor a registration is an
    error that says where it looked.
    """
    by_arn = isinstance(definition, str) and rules.is_arn(definition)
    if isinstance(definition, str) and by_arn:
        target = rules.parse_arn(definition)
        if target.version is not None or target.alias is not None:
            return _from_registry(target)
        definition = target.name  # the latest revision: a file's, else the registry's
    path: Path | None = None
    if isinstance(definition, str) and rules.NAME.match(definition):
        try:
            path = _workflow_file(definition)
        except DefinitionError:
            path = None  # no such file: a registered state machine, or nothing
        if path is None:
            try:
                return _from_registry(rules.Target(definition))
            except StateMachineNotFound:
                if by_arn:
                    raise
                # A state machine's name cannot be definition text either (a definition
                # is an object: its text holds a ':' or a brace, which names may not).
                searched = ", ".join(str(d) for d in workflow_dirs())
                issue = (
                    f"no workflow or state machine named {definition!r} "
                    f"(looked in {searched} and the registry)"
                )
                raise DefinitionError([DefinitionIssue("$", issue)]) from None
    elif isinstance(definition, os.PathLike):
        path = Path(definition)
    # A file found by name is compiled by path: its lookup is not done again.
    compiled = _compiled(definition if path is None else path)
    if path is not None:
        _register_file(path, compiled[1], compiled[2], compiled[3])
    return (*compiled, {})


def _from_registry(target: rules.Target) -> tuple[StateMachine, str, str, str, dict[str, str]]:
    resolved = machine_registry.resolve(get_store(), target, _routing_random.random)
    machine, _, text, def_hash = _compiled(resolved.definition)
    fields: dict[str, str] = {}
    if resolved.express:
        machine, text, def_hash = _express(def_hash, machine)
        fields["type"] = "EXPRESS"
    if resolved.version is not None:
        fields["version"] = str(resolved.version)
    if resolved.alias is not None:
        fields["alias"] = resolved.alias
    return machine, resolved.name, text, def_hash, fields


#: EXPRESS variants of parsed definitions, by the STANDARD definition's hash.
_express_cache: LruCache[str, tuple[StateMachine, str, str]] = LruCache(64)


def _express(def_hash: str, machine: StateMachine) -> tuple[StateMachine, str, str]:
    """What an execution of an EXPRESS state machine runs: the definition with Express
    semantics (:func:`~orchestrator.engine.machines.express_definition`), parsed, with its
    stored text and hash."""
    cached = _express_cache.get(def_hash)
    if cached is None:
        plain, marked = express_definition(machine.to_asl())
        text = dumps(marked)
        parsed = parse_definition(plain, resource_check=activities.resource_problem)
        cached = (parsed, text, hashlib.sha1(text.encode()).hexdigest())
        _express_cache.put(def_hash, cached)
    return cached


def _register_file(path: Path, workflow: str, text: str, revision: str) -> None:
    """Register (or update) the state machine of a workflow file if it is in the
    workflows folder (nothing for a file elsewhere); once per revision and process."""
    settings = get_settings()
    key = (settings.redis_url or "", settings.key_prefix, workflow)
    if _registered.get(key) == revision:
        return  # registered by this process, as it is now
    if not rules.NAME.match(workflow) or path.resolve().parent not in workflow_dirs():
        return
    machine_registry.register_revision(get_store(), workflow, text, revision)
    _registered.put(key, revision)


def _started_as(record: dict[str, str]) -> dict[str, Any]:
    """The description's fields naming the state machine, revision, version and alias an
    execution runs (from its record)."""
    workflow = record.get("workflow")
    if not workflow:
        return {}
    machine = state_machine_arn(workflow)
    version, alias = record.get("version"), record.get("alias")
    return {
        "state_machine_arn": machine,
        "revision_id": record.get("def_hash"),
        "state_machine_version_arn": f"{machine}:{version}" if version else None,
        "state_machine_alias_arn": f"{machine}:{alias}" if alias else None,
    }


def _restart_hint(name: str | None) -> str:
    if name is not None:
        return (
            f"execution {name!r} may have been started; starting it again with the same "
            "name is safe (the name is an idempotency key)"
        )
    return (
        "the execution may have been started; look before starting it again "
        "(`orchestrator list`), or pass a name to make starts safe to retry"
    )


@store_call(mutates=False)
def get_execution_definition(execution_id: str) -> dict[str, Any]:
    """The ASL definition an execution runs (as it was when it started).

    Raises:
        ExecutionNotFound: no such execution, or its definition expired.
    """
    execution_id = inputs.known_id(execution_id)
    store = get_store()
    def_hash = store.execution_def_hash(execution_id)
    text = store.definition_text(execution_id, def_hash) if def_hash else None
    if text is None:
        raise ExecutionNotFound(execution_id)
    definition: dict[str, Any] = json.loads(text)
    definition.pop(EXPRESS_FIELD, None)  # the engine's marker, not part of the ASL
    return definition


@store_call(mutates=False)
def validate_definition(definition: DefinitionSource) -> StateMachine:
    """Parse and validate a definition without starting anything."""
    return load_definition(definition)[0]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@store_call(mutates=False)
def describe_execution(execution_id: str) -> ExecutionDescription:
    """Describe an execution.

    Raises:
        ExecutionNotFound: no such execution (or its retention expired).
    """
    execution_id = inputs.known_id(execution_id)
    store = get_store()
    record = store.execution(execution_id)
    if not record:
        raise ExecutionNotFound(execution_id)
    return _description(execution_id, record, store.steps(execution_id))


def _description(
    execution_id: str, record: dict[str, str], steps: dict[str, str]
) -> ExecutionDescription:
    """An execution's description from its record and its raw step hash."""
    name, workflow = record.get("name", execution_id), record.get("workflow", "")
    return ExecutionDescription(
        execution_id=execution_id,
        execution_arn=arns.execution_arn(workflow, name),
        name=name,
        workflow=workflow,
        status=ExecutionStatus(record["status"]),
        input=_loads(record.get("input")),
        output=_loads(record.get("output")),
        error=_loads(record.get("error")),
        cause=_loads(record.get("cause")),
        start_time=to_datetime(record["start"]),
        stop_time=to_datetime(record["stop"]) if "stop" in record else None,
        redrive_count=int(record.get("redrives", 0)),
        steps=_steps(steps),
        parent_execution_id=record.get("parent"),
        parent_state=record.get("parent_state"),
        children=[
            ChildExecution(execution_id=cid, state=key, mode=mode)
            for cid, key, mode in children_of(record)
        ],
        map_run_arn=record.get("map_run"),
        map_index=int(record["map_index"]) if "map_index" in record else None,
        execution_type=record.get("type") or "STANDARD",
        priority=int(record["priority"]) if record.get("priority") else None,
        **_started_as(record),
    )


def _steps(raw: dict[str, str]) -> list[StepInfo]:
    return [
        StepInfo(
            key=step.key,
            state=step.record["state"],
            status=step.status,
            attempts=step.record.get("attempt", 0) + 1,
            activity=step.record.get("activity"),
        )
        for step in live_steps(raw)
    ]


@store_call(mutates=False)
def get_execution_history(
    execution_id: str,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[HistoryEvent]:
    """An execution's history events with an id above ``after`` (at most ``limit``),
    oldest first; ids are dense (1, 2, 3...), so ``after`` pages through them.

    Raises:
        ExecutionNotFound: no such execution.
    """
    execution_id = inputs.known_id(execution_id)
    store = get_store()
    if not store.execution_exists(execution_id):
        raise ExecutionNotFound(execution_id)
    return [_history_event(raw) for raw in store.history(execution_id, after, limit)]


def _history_event(raw: dict[str, Any]) -> HistoryEvent:
    """A stored event (as :meth:`RedisStore.history` decodes it) as a HistoryEvent."""
    event_id = raw.pop("id")
    type_ = raw.pop("type")
    ts = raw.pop("ts")
    state = raw.pop("state", None)
    key = raw.pop("key", None)
    return HistoryEvent(
        id=event_id, type=type_, timestamp=to_datetime(ts), state=state, key=key, details=raw
    )


def scan_executions(
    store: RedisStore,
    fields: tuple[str, ...],
    *,
    status: ExecutionStatus | None = None,
    workflow: str | None = None,
    limit: int,
    cursor: ListingCursor | None = None,
    max_scan: int | None = None,
) -> tuple[list[tuple[str, dict[str, str | None]]], ListingCursor]:
    """Walk the listing index of ``status`` and ``workflow`` (either may be None: any)
    newest first from ``cursor`` (None: the newest): up to ``limit`` executions, each
    with ``fields`` of its record.

    Every listing (:func:`list_executions`, the CLI's, the UI's) goes through here. The
    index holds exactly the executions its filters name (the writes that change a status
    move them), so a page costs one read of the index (a page of each partition's) and
    one pipelined read of the records, however many executions are kept and however deep
    the page. Ids whose records expired are dropped from the indexes; an entry whose
    record says otherwise (a name started again after it expired, or a status that
    changed since the index was read) is passed over, the record is the truth. Examines
    at most ``max_scan`` entries (None: no bound). Returns the matches and the cursor
    after the last entry examined (the next page's; the dropped entries are not counted,
    they left the index).
    """
    wanted = tuple(dict.fromkeys(("status", "start", "workflow", *fields)))
    rows: list[tuple[str, dict[str, str | None]]] = []
    positions = list((cursor or ListingCursor.start(store.partitions)).positions)
    scanned = 0
    status_value = status.value if status is not None else None
    workflow = workflow or None
    while len(rows) < limit and (max_scan is None or scanned < max_scan):
        page = limit - len(rows)
        if max_scan is not None:
            page = min(page, max_scan - scanned)
        entries = store.list_execution_page(
            tuple(positions), page, status=status_value, workflow=workflow
        )
        if not entries:
            break
        ids = [execution_id for _, execution_id in entries]
        expired: list[tuple[int, str]] = []
        records = store.execution_records(ids, wanted)
        for (p, execution_id), record in zip(entries, records, strict=True):
            scanned += 1
            if record["status"] is None or record["start"] is None:
                expired.append((p, execution_id))  # its retention expired
                continue
            positions[p] += 1
            if status_value is not None and record["status"] != status_value:
                continue
            if workflow is not None and record["workflow"] != workflow:
                continue
            rows.append((execution_id, record))
        dropped = store.forget_executions(*(i for _, i in expired), workflow=workflow)
        for (p, _), gone in zip(expired, dropped, strict=True):
            # One not dropped (its record is back, or was never whole) stays in the index:
            # passed over, or the next read would meet it again, and again.
            positions[p] += not gone
    return rows, ListingCursor(tuple(positions))


@store_call(mutates=False)
def list_executions(
    status: ExecutionStatus | str | None = None, limit: int = 100
) -> list[ExecutionDescription]:
    """Executions, newest first, optionally only those with ``status``.

    Pages through the index of that status: two pipelined reads (statuses, then the
    records and step hashes of the rows) and the index's page, however many executions
    are kept and however few of them have ``status``.
    """
    if limit <= 0:
        raise InvalidInputError("limit must be positive")
    store = get_store()
    wanted = ExecutionStatus(status) if status is not None else None
    found: list[ExecutionDescription] = []
    cursor = None
    while len(found) < limit:
        rows, cursor = scan_executions(
            store, (), status=wanted, limit=limit - len(found), cursor=cursor
        )
        if not rows:
            break
        ids = [execution_id for execution_id, _ in rows]
        for execution_id, read in zip(ids, store.execution_summaries(ids), strict=True):
            if read is not None:  # None: it expired since the index was read
                found.append(_description(execution_id, *read))
    return found
