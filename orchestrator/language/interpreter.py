"""Workflow semantics as pure functions: from what just happened to the next transition.

The interpreter never touches Redis or Celery. Given the parsed state machine, the
execution's identity and an event (the execution started, a task finished or failed, a
timer came due), it evaluates the inline states that follow (Pass, Choice, Succeed, Fail)
and returns a :class:`Transition`: history events, step records to write, tasks to
dispatch, timers to set and, when the execution ends, its result. The runtime commits a
transition atomically and only then publishes its tasks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import random
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

import orjson

from orchestrator.errors import (
    ActivityNotFound,
    NoChoiceMatched,
    QueryEvaluationError,
    StatesError,
    StatesRuntimeError,
)
from orchestrator.language import arns, children, dataflow, intrinsics, jsontext
from orchestrator.language import jsonata_eval as jsonata
from orchestrator.language.choice import evaluate_rule
from orchestrator.language.definition import (
    Branch,
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
    parse_timestamp,
)
from orchestrator.language.definition.validate import MAX_WAIT_SECONDS
from orchestrator.language.paths import read_path, using_variables
from orchestrator.language.resources import integration_name, resource_fields
from orchestrator.language.retry import find_catcher, next_retry
from orchestrator.language.slots import CONTAINER_PROGRESS, Slot, SlotKind
from orchestrator.language.stepkeys import escape_name, unescape_name

#: Map iterations in flight at once when ``MaxConcurrency`` is 0 ("unbounded"): more
#: than Step Functions' inline Map runs (40), few enough that starting a Map never
#: builds one giant transition or message.
MAP_WINDOW = 500

#: Items an ending iteration of such an unbounded Map starts (the window only bounds the
#: size of one transition, not concurrency): the rest of a large Map starts in a few
#: batches, instead of one item per iteration that ends, each with a read of the window.
MAP_REFILL = 50

#: Map items one transition starts at most beyond a Map's first window (items that end
#: inline, like Pass items, start the next ones in the same transition): the rest is
#: deferred to a ``refill`` timer's transition, so that no transition, and no Redis call,
#: grows with a Map's item count.
MAP_START_BUDGET = MAP_WINDOW

#: Step Functions' bounds on a failure's error name and cause (longer ones are cut).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32768

#: Errors that are a state's decision, not a failed evaluation (no ``EvaluationFailed``).
_NOT_EVALUATION = frozenset({"States.NoChoiceMatched"})

#: History event names per state type: (entered, exited).
_STATE_EVENTS: dict[str, tuple[str, str]] = {
    "Task": ("TaskStateEntered", "TaskStateExited"),
    "Pass": ("PassStateEntered", "PassStateExited"),
    "Choice": ("ChoiceStateEntered", "ChoiceStateExited"),
    "Succeed": ("SucceedStateEntered", "SucceedStateExited"),
    "Fail": ("FailStateEntered", "FailStateExited"),
    "Wait": ("WaitStateEntered", "WaitStateExited"),
    "Parallel": ("ParallelStateEntered", "ParallelStateExited"),
    "Map": ("MapStateEntered", "MapStateExited"),
}


class StepStatus:
    """Values of a step's status field (``RUNNING`` is stored as ``RUNNING:<claim>``)."""

    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    """Failed with nothing to catch it; kept for redrive. (A step that succeeds, or fails
    into a Catch, is forgotten: the history has it.)"""
    WAITING = "WAITING"
    """A Wait state, or a task waiting for its task token."""
    JOINING = "JOINING"
    """A Parallel or Map whose branches all ended: its join is due."""


#: Children a Distributed Map runs at once when its ``MaxConcurrency`` is 0 (Step
#: Functions' default and its most).
DISTRIBUTED_CONCURRENCY = 10_000


class TimerKind:
    """Kinds of the timers a transition sets (the first item of ``Transition.timers``)."""

    WAIT = "wait"
    """A Wait state's time comes."""
    RETRY = "retry"
    """A retry's backoff is over."""
    TIMEOUT = "timeout"
    """A task attempt's ``TimeoutSeconds`` run out."""
    HEARTBEAT = "heartbeat"
    """A callback task's ``HeartbeatSeconds`` run out without a heartbeat."""
    EXECUTION_TIMEOUT = "exec_timeout"
    """The state machine's ``TimeoutSeconds`` run out (its step key is ``""``)."""
    REFILL = "refill"
    """Map items deferred by a transition that spent its start budget
    (:data:`MAP_START_BUDGET`): due at once, the next transition starts them."""
    CONTINUE = "continue"
    """A run of inline states handed over after ``max_inline_states`` (due at once): the
    next transition enters the state its step record names (a ``continue`` record,
    SCHEDULED).

    A timer rather than a Celery task of its own: a timer leaves the timers set only in
    the guarded commit that fires it, so a redelivered firing or a second beat finds it
    gone or the step moved on (it fires once), and a beat killed before or during the
    firing leaves it due for the next tick; a task would need a lease, a claim and a
    re-publish on loss, which the timers set already is for this step."""


class MapRunTimer:
    """Kinds of a Distributed Map's timers (see :data:`MAP_RUN_TIMERS`)."""

    ADVANCE = "maprun"
    """The Map Run has work to do (start children, redrive them, finish): member
    ``[maprun, execution, map step key, attempt]``."""
    CHILD_ENDED = "mapchild"
    """A child execution ended; its final commit adds a timer of this kind naming the
    parent, the Map and the child's index (due at once; orchestrator/engine/maprun.py
    ``notify_member``), so the parent's move is a guarded transition of the parent's
    own, fired by beat, that a lost process cannot lose."""


#: Timer kinds whose firing needs the step's status, not its record
#: (:meth:`Interpreter.timer_fired` is given None for it): a Map's refill.
RECORDLESS_TIMERS = frozenset({TimerKind.REFILL})


#: Timer kinds that drive a Distributed Map's Map Run; the engine fires them
#: (orchestrator/engine/maprun.py), not :meth:`Interpreter.timer_fired`.
MAP_RUN_TIMERS = ("maprun", "mapchild")


class Reader:
    """Reads what a transition needs of the execution's steps (records, containers'
    progress and results, variables), by :class:`Slot`.

    The runtime's reader fetches from Redis and turns what it read into compare-and-set
    guards of the commit; a failed guard makes the runtime recompute the transition.
    """

    def get(self, slot: Slot) -> str | None:
        """One slot's stored text (this base reader sees none)."""
        return None

    def get_many(self, slots: list[Slot]) -> list[str | None]:
        """Several slots, not guarded (values that no longer change)."""
        return [self.get(s) for s in slots]

    def prefetch_window(self, container: str, starting: int | None = None) -> None:
        """Hint: a Map's next item, item count, refill count and the inputs of the next
        items (``starting`` of them, when known; else as many as an ending iteration
        starts) are about to be read."""


@dataclass(frozen=True)
class ExecutionInfo:
    """What the context object says about the execution."""

    execution_id: str
    name: str
    workflow: str
    start_time: float
    input: Any = None
    express: bool = False
    """An EXPRESS child of a Distributed Map: its history keeps the execution's own
    events (start, end, redrive), none of its states' (:attr:`Transition.express`)."""
    priority: int | None = None
    """The execution's priority (0 least urgent ... 9 most; None: the configured default),
    which every task message of it carries. Not part of the context object."""


@dataclass
class StepRecord:
    """One active state of an execution, stored under its step key."""

    state: str
    input: Any
    """The state's raw input (before InputPath)."""
    entered: float
    attempt: int = 0
    """Retries made so far (``$$.State.RetryCount``)."""
    retries: dict[str, int] = field(default_factory=dict)
    """Retries made per retrier index (each retrier counts its own attempts)."""
    params: Any = None
    """The effective input the activity receives (after InputPath and Parameters)."""
    activity: str | None = None
    timeout: float | None = None
    """This attempt's deadline (epoch seconds), if the state has TimeoutSeconds."""
    heartbeat: float | None = None
    """This attempt's HeartbeatSeconds (evaluated), if the state has them."""
    kind: str = "task"
    """task, wait, parallel, map, or continue (a run of inline states handed over: the
    state to enter next and its input, :attr:`TimerKind.CONTINUE`)."""
    total: int = 0
    """Branches or items of a Parallel or Map."""
    token: str | None = None
    """The task token of a ``.waitForTaskToken`` task."""
    envelope: bool = False
    """Wrap the result in Lambda's invoke response (``arn:aws:states:::lambda:invoke``)."""
    entered_event: int = 0
    """Id of the state's ``...StateEntered`` event (AWS quotes it in runtime errors); of a
    ``continue`` step, the id of the last event before the hand-over (its timer's)."""
    tolerated_count: float | None = None
    tolerated_percentage: float | None = None
    run: dict[str, Any] | None = None
    """A Distributed Map's Map Run (kind ``maprun``): its ARN, run id, label, concurrency,
    ``ItemReader``/``ItemBatcher``/``ResultWriter`` as evaluated when it started."""

    def dumps(self) -> str:
        """The record as stored: the fields that differ from their defaults."""
        # vars(), not dataclasses.asdict(): the values are JSON already, and asdict's
        # recursive deep copy is the costliest part of a step's transition.
        return encode(
            {
                name: value
                for name, value in vars(self).items()
                if name not in _RECORD_DEFAULTS or not _same(value, _RECORD_DEFAULTS[name])
            }
        )

    @classmethod
    def loads(cls, text: str) -> StepRecord:
        """Parse a stored record."""
        return cls(**jsontext.loads(text))


#: StepRecord's field defaults: a stored record leaves them out (most records of a
#: Task state need 6 of its 15 fields).
_RECORD_DEFAULTS: dict[str, Any] = {
    f.name: f.default_factory() if f.default_factory is not MISSING else f.default
    for f in dataclass_fields(StepRecord)
    if f.default is not MISSING or f.default_factory is not MISSING
}


def _same(value: Any, default: Any) -> bool:
    # By type as well: 0 == False, and a record whose params are 0 must keep them.
    return type(value) is type(default) and value == default


@dataclass(frozen=True)
class Dispatch:
    """A task to publish once the transition is committed."""

    step_key: str
    state: str
    activity: str
    params: Any


@dataclass(frozen=True)
class Recovery:
    """What becomes of a step whose lease lapsed (its worker died, its message was lost):
    nothing but forgetting the lease, unless one of these is set."""

    join: bool = False
    """Every branch of the container ended, its join did not: perform it."""
    dispatch: Dispatch | None = None
    """Dispatch the step's task again (SCHEDULED again, with a new lease)."""


@dataclass(frozen=True)
class RedriveView:
    """What a redrive reads of an ended execution, as it was stored."""

    records: Mapping[str, str]
    """Step key -> record text of every step left, in store order (a step that succeeded,
    or failed into a Catch, is gone: every record left did not succeed)."""
    failures: list[tuple[Slot, str]]
    """Failure marks (``Slot.failed_at``) and their ``[state, input]`` text, in store
    order: where a scope failed in an inline state."""
    redrives: int
    """Redrives before this one."""


@dataclass
class Transition:
    """Everything one atomic state change writes, computed before anything is written."""

    now: float
    base: int = 0
    """History length before this transition (event ids continue from it)."""
    express: bool = False
    """The execution is an EXPRESS child: :meth:`event` keeps only the execution's
    events (``Execution*``, ``MapRun*``), as Step Functions keeps no state history of an
    Express execution."""
    events: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, StepRecord | None] = field(default_factory=dict)
    """Step records to write (``None``: delete)."""
    statuses: dict[str, str] = field(default_factory=dict)
    """Step statuses to write."""
    dispatches: list[Dispatch] = field(default_factory=list)
    timers: list[tuple[float, list[Any]]] = field(default_factory=list)
    """Timers to set: (due time, ``[kind, step key, attempt]``)."""
    released: list[str] = field(default_factory=list)
    """Step keys whose lease (and timers) end with this transition."""
    end: dict[str, Any] | None = None
    """The execution's final status, output, error and cause, if it ends here."""
    changes: dict[Slot, str | None] = field(default_factory=dict)
    """Other slots to write (``None``: delete): containers' progress, item inputs and
    results, variables, failure marks."""
    joins: list[str] = field(default_factory=list)
    """Containers whose ended-branch counter this transition increments."""
    tokens: dict[str, Any] = field(default_factory=dict)
    """Task tokens to register (value) or forget (``None``)."""
    started_items: int = 0
    """Map items this transition started (against :data:`MAP_START_BUDGET`)."""
    refills: list[tuple[str, Any, int | None]] = field(default_factory=list)
    """Maps whose ended iterations start further items, in order: (key, state, how many:
    None for the usual one or refill count)."""
    refilling: bool = False

    def finish(self, key: str) -> None:
        """A step ended well (succeeded, or failed into a Catch): forget it.

        Its history tells the rest; dropping record and status keeps a finished
        execution small, and a stale message for it finds nothing to claim.
        """
        self.records[key] = None
        self.statuses.pop(key, None)
        self.changes[Slot.status(key)] = None

    def clear_container(self, key: str) -> None:
        """Forget a Parallel's or Map's progress, item inputs, results, failure marks and
        its branches' variables (it ended, or starts over)."""
        for kind in CONTAINER_PROGRESS:
            self.changes[Slot(kind, key)] = None
        # One change for all its branches, whatever their number: per-branch changes
        # would make a transition (and its write) grow with a Map's item count. Branch
        # changes made earlier in this transition go with it (the engine applies this
        # change first, so what is left is what the container does after starting over).
        inside = key + "["
        for slot in [
            s
            for s in self.changes
            if (s.owner == key and s.branch is not None)
            or (s.kind is SlotKind.VARIABLES and s.owner.startswith(inside))
        ]:
            del self.changes[slot]
        self.changes[Slot.branches(key)] = None

    def event(self, type_: str, state: str | None = None, **details: Any) -> int:
        """Append a history event about ``state`` (a state name or a step key); return its
        (expected) id. Inside a Parallel branch or Map iteration the event also carries the
        step key, which says which branch or item it belongs to."""
        if self.express and not type_.startswith(("Execution", "MapRun")):
            return self.base + len(self.events)
        # Millisecond timestamps, like Step Functions' history, and shorter to store.
        event: dict[str, Any] = {"type": type_, "ts": round(self.now, 3)}
        if state is not None:
            prefix, _, name = state.rpartition("/")
            event["state"] = unescape_name(name)
            if prefix or event["state"] != name:
                event["key"] = state
        event.update({k: v for k, v in details.items() if v is not None})
        self.events.append(event)
        return self.base + len(self.events)


@dataclass(frozen=True)
class Scope:
    """The states one step key prefix runs in: the state machine or a branch of it."""

    prefix: str
    states: Mapping[str, State]
    container: str | None = None
    """Step key of the Parallel or Map this branch belongs to."""
    index: int = 0
    """Branch or item index in that container."""

    def key(self, name: str) -> str:
        """The step key of state ``name`` in this scope (the name escaped)."""
        return self.prefix + escape_name(name)


ResourceResolver = Callable[[TaskState], str]


class Interpreter:
    """Computes transitions of one execution of one state machine."""

    def __init__(
        self,
        machine: StateMachine,
        info: ExecutionInfo,
        resolve: ResourceResolver,
        *,
        max_inline_states: int = 1000,
        rand: Callable[[], float] = random.random,
        reader: Reader | None = None,
        new_token: Callable[[], str] | None = None,
        resolve_name: Callable[[str], str] | None = None,
        history_base: int = 0,
        max_result_bytes: int = 256 * 1024,
        max_variables_bytes: int = 10 * 1024 * 1024,
        max_history_events: int = 25_000,
    ) -> None:
        self.machine = machine
        self.info = info
        self.resolve = resolve
        self.resolve_name = resolve_name or (lambda name: name)
        # At least one: a hand-over that entered no state would hand over forever.
        self.max_inline_states = max(1, max_inline_states)
        self.rand = rand
        self.reader = reader or Reader()
        self.new_token = new_token or (lambda: secrets.token_urlsafe(32))
        self.history_base = history_base
        """History length when the next transition starts (set by the runtime)."""
        self.max_result_bytes = max_result_bytes
        """Quota of a state's input, output, result and of one Assign, in bytes."""
        self.max_variables_bytes = max_variables_bytes
        """Quota of the variables of one scope (the top level, a branch, an item)."""
        self.max_history_events = max_history_events
        """History events an execution may write; past them it fails."""
        self.top = Scope("", machine.states)
        self._uses_variables: bool | None = None
        self._stops_children: bool | None = None

    def _new(self, now: float) -> Transition:
        return Transition(now, base=self.history_base, express=self.info.express)

    def _starts_executions(self) -> bool:
        # Whether this machine has states whose executions stop with the states that
        # wait on them: a Distributed Map's children, a child workflow a .sync or
        # .waitForTaskToken startExecution Task waits for.
        if self._stops_children is None:
            self._stops_children = any(
                (
                    isinstance(state, MapState)
                    and state.item_processor.processor_mode == "DISTRIBUTED"
                )
                or (
                    isinstance(state, TaskState)
                    and children.child_mode(state.resource) in children.STOPPED_WITH_PARENT
                )
                for _path, _name, state, _scope in self.machine.walk()
            )
        return self._stops_children

    def _end_map_runs(self, tr: Transition) -> None:
        # The execution fails or times out with Map Runs or child workflows perhaps still
        # running (a Map in a failed Parallel branch, TimeoutSeconds): an advance due at
        # once, set in the end's own commit, finds the execution ended and aborts every
        # running Run's children and the child workflows its Tasks waited for
        # (orchestrator/engine/maprun.py). Its key names no Map: one advance does it all.
        if self._starts_executions():
            tr.timers.append((tr.now, [MapRunTimer.ADVANCE, "", 0]))

    def _abandon_map_runs(self, tr: Transition) -> None:
        # A Parallel or Map failed (retried, caught or failing its scope), or a Task
        # waiting on a child workflow failed or timed out: what it leaves behind may hold
        # Map Runs or child workflows that would go on. An advance due at once, keyed by
        # no Map, finds every running Run whose Map or a container around it no longer
        # runs and aborts it (MapRunAborted, children stopped), and stops every .sync
        # child whose Task no longer waits on it (orchestrator/engine/maprun.py).
        if self._starts_executions():
            tr.timers.append((tr.now, [MapRunTimer.ADVANCE, "", 0]))

    # -- scopes, context, variables -----------------------------------------------------

    def scope_of(self, step_key: str) -> tuple[Scope, str]:
        """Split a step key into its scope and state name."""
        prefix, _, name = step_key.rpartition("/")
        if not prefix:
            return self.top, unescape_name(step_key)
        states: Mapping[str, State] = self.machine.states
        container = ""
        index = 0
        for part in prefix.split("/"):
            container_name, _, raw_index = part.rpartition("[")
            container = f"{container}/{container_name}" if container else container_name
            index = int(raw_index.rstrip("]"))
            states = self._branch(states[unescape_name(container_name)], index).states
            container = f"{container}[{index}]"
        scope = Scope(prefix + "/", states, container.rpartition("[")[0], index)
        return scope, unescape_name(name)

    @staticmethod
    def _branch(container: State, index: int) -> Branch:
        if isinstance(container, ParallelState):
            return container.branches[index]
        assert isinstance(container, MapState)
        return container.item_processor

    def context(
        self, state: str, entered: float, retry_count: int = 0, **extra: Any
    ) -> dict[str, Any]:
        """The context object (``$$``) for a state."""
        info = self.info
        execution_arn, start, machine_arn = _execution_context(
            info.workflow, info.name, info.start_time, *arns.partition_region_account()
        )
        return dataflow.build_context(
            execution_arn,
            info.name,
            info.input,
            start,
            state,
            dataflow.format_timestamp(entered),
            retry_count,
            machine_arn,
            info.workflow,
            **extra,
        )

    def _jsonata(self, state: Any) -> bool:
        return (state.query_language or self.machine.query_language) == "JSONata"

    @property
    def uses_variables(self) -> bool:
        """Whether any state assigns workflow variables (else they are never read)."""
        if self._uses_variables is None:
            self._uses_variables = machine_assigns(self.machine)
        return self._uses_variables

    def _vars(self, tr: Transition, scope: Scope) -> dict[str, Any]:
        """The variables visible in ``scope``: its own over its ancestors'."""
        if not self.uses_variables:
            return {}
        visible: dict[str, Any] = {}
        for prefix in _scope_prefixes(scope.prefix):
            raw = self._field(tr, Slot.variables(prefix))
            if raw:
                visible.update(json.loads(raw))
        return visible

    def _assign(self, tr: Transition, scope: Scope, assigned: Mapping[str, Any]) -> None:
        """Set variables in ``scope`` (an Assign inside a branch stays in the branch)."""
        if not assigned:
            return
        own = json.loads(self._field(tr, Slot.variables(scope.prefix)) or "{}")
        own.update(assigned)
        text = json_bytes(own)
        # The assigned values are part of ``own``: one encoding measures both quotas
        # unless the scope's variables together are over the per-Assign one.
        if len(text) > self.max_result_bytes:
            size = len(json_bytes(dict(assigned)))
            if size > self.max_result_bytes:
                raise StatesError(
                    f"The variables assigned are {size} bytes, over the payload quota of "
                    f"{self.max_result_bytes} bytes (ORCHESTRATOR_MAX_INPUT_BYTES).",
                    error="States.DataLimitExceeded",
                )
            if len(text) > self.max_variables_bytes:
                raise StatesError(
                    f"The variables of this scope would take {len(text)} bytes, over the "
                    f"quota of {self.max_variables_bytes} bytes "
                    "(ORCHESTRATOR_MAX_VARIABLES_BYTES).",
                    error="States.DataLimitExceeded",
                )
        tr.changes[Slot.variables(scope.prefix)] = text.decode()

    @contextlib.contextmanager
    def _in_scope(self, tr: Transition, scope: Scope) -> Iterator[dict[str, Any]]:
        """Evaluate with the scope's variables readable as ``$name`` in JSONPath."""
        variables = self._vars(tr, scope)
        if not variables:
            yield variables
            return
        with using_variables(variables):
            yield variables

    def _field(self, tr: Transition, slot: Slot) -> str | None:
        """A slot as this transition would leave it."""
        if slot in tr.changes:
            return tr.changes[slot]
        return self.reader.get(slot)

    @staticmethod
    def _located(exc: BaseException, name: str, entered_event: int) -> StatesError:
        """Any exception as a failure of state ``name`` (see :func:`as_states_error`);
        runtime and query errors name the state, as Step Functions words them."""
        exc = as_states_error(exc)
        if exc.error in ("States.Runtime", "States.QueryEvaluationError") and not (
            exc.cause.startswith("An error occurred while executing the state")
        ):
            return StatesError(
                f"An error occurred while executing the state '{name}' "
                f"(entered at the event id #{entered_event}). {exc.cause}",
                error=exc.error,
            )
        return exc

    def _failed(
        self, tr: Transition, key: str, exc: BaseException, entered_event: int
    ) -> StatesError:
        """A state failed evaluating a field (or its data overran a quota): record
        ``EvaluationFailed`` before the retry, catch or failure that follows."""
        located = self._located(exc, state_name(key), entered_event)
        if located.error not in _NOT_EVALUATION:
            tr.event("EvaluationFailed", key, error=located.error, cause=located.cause)
        return located

    def _limit(self, name: str, value: Any, what: str, *known: Any) -> None:
        """``States.DataLimitExceeded`` if ``value`` (a state's input, output, result...)
        is over the payload quota; values already measured (``known``) are skipped."""
        for other in known:
            if value is other:
                return
        size = len(json_bytes(value))
        if size > self.max_result_bytes:
            raise StatesError(
                f"The {what} of state '{name}' is {size} bytes, over the payload quota of "
                f"{self.max_result_bytes} bytes (ORCHESTRATOR_MAX_INPUT_BYTES).",
                error="States.DataLimitExceeded",
            )

    # -- entry points -------------------------------------------------------------------

    def start(self, now: float) -> Transition:
        """The transition that starts the execution."""
        tr = self._new(now)
        tr.event("ExecutionStarted", input=self.info.input)
        if self.machine.timeout_seconds:
            tr.timers.append(
                (now + self.machine.timeout_seconds, [TimerKind.EXECUTION_TIMEOUT, "", 0])
            )
        self.enter(tr, self.top, self.machine.start_at, self.info.input)
        return tr

    def enter(self, tr: Transition, scope: Scope, name: str, raw_input: Any) -> None:
        """Enter ``name`` and evaluate inline states until a task, a wait or the end, or
        until ``max_inline_states`` of them: then the rest is handed over to a transition
        of its own (:meth:`_hand_over`)."""
        for _ in range(self.max_inline_states):
            state = scope.states[name]
            entered = tr.event(_STATE_EVENTS[state.type][0], scope.key(name), input=raw_input)
            try:
                with self._in_scope(tr, scope) as variables:
                    step = self._evaluate(tr, scope, name, state, raw_input, entered, variables)
            except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
                located = self._failed(tr, scope.key(name), exc, entered)
                if isinstance(state, TaskState | ParallelState | MapState):
                    record = StepRecord(
                        state=name, input=raw_input, entered=tr.now, entered_event=entered
                    )
                    key = scope.key(name)
                    tr.dispatches[:] = [d for d in tr.dispatches if d.step_key != key]
                    self._state_error(tr, scope, key, record, state, located.error, located.cause)
                else:
                    self._fail_scope(tr, scope, located.error, located.cause, name, raw_input)
                return
            if step is None:
                return
            name, raw_input = step
        self._hand_over(tr, scope, name, raw_input)

    def _hand_over(self, tr: Transition, scope: Scope, name: str, raw_input: Any) -> None:
        """Stop a run of inline states before entering ``name``: this transition commits
        what it did, and a ``continue`` step with a timer due at once has the next one
        enter ``name`` with ``raw_input`` (:meth:`resume`). It bounds the work of one
        transition, not the run: a loop of Pass and Choice states goes on until the
        history quota (``max_history_events``) ends it, as on Step Functions. The
        scope's variables need nothing: this transition writes them as they are."""
        key = scope.key(name)
        # The timer names the hand-over by the id of the last event before it (in the
        # record's ``entered_event``): a loop hands over under the same step key again
        # and again, and a firing read before the previous one committed must find its
        # timer gone, not the next hand-over's.
        last_event = tr.base + len(tr.events)
        tr.records[key] = StepRecord(
            state=name, input=raw_input, entered=tr.now, kind="continue", entered_event=last_event
        )
        tr.statuses[key] = StepStatus.SCHEDULED
        tr.timers.append((tr.now, [TimerKind.CONTINUE, key, last_event]))

    def resume(self, key: str, record: StepRecord, now: float) -> Transition:
        """A handed-over run of inline states goes on: enter the state its ``continue``
        step names."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        tr.finish(key)
        self.enter(tr, scope, name, record.input)
        return tr

    def _evaluate(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: State,
        raw_input: Any,
        entered: int,
        variables: dict[str, Any],
    ) -> tuple[str, Any] | None:
        """Evaluate one state; return (next state, its input) to keep going inline."""
        if isinstance(state, TaskState):
            record = StepRecord(state=name, input=raw_input, entered=tr.now, entered_event=entered)
            self._schedule_task(tr, scope, name, state, raw_input, record=record)
            return None
        if isinstance(state, ParallelState | MapState):
            record = StepRecord(state=name, input=raw_input, entered=tr.now, entered_event=entered)
            self._start_container(tr, scope, name, state, record)
            return None
        ctx = self.context(name, tr.now)
        if isinstance(state, WaitState):
            self._start_wait(tr, scope, name, state, raw_input, ctx, entered, variables)
            return None
        jsonata_mode = self._jsonata(state)
        if isinstance(state, PassState):
            if jsonata_mode:
                b = jsonata.bindings(raw_input, ctx, variables)
                output = self._jsonata_output(state, "output", b, raw_input)
                self._limit(name, output, "output", raw_input)
                self._jsonata_assign(tr, scope, state.assign, b, "Assign")
                return self._exit(tr, scope, name, state, output)
            if state.has_result:
                result = state.result
                _check_size(name, result, self.max_result_bytes)
            else:
                result = dataflow.effective_input(
                    raw_input,
                    input_path=state.input_path,
                    parameters=state.parameters,
                    context=ctx,
                )
            output = dataflow.state_output(
                raw_input,
                result,
                result_path=state.result_path,
                output_path=state.output_path,
                context=ctx,
            )
            self._limit(name, output, "output", raw_input, result if state.has_result else None)
            self._jsonpath_assign(tr, scope, state.assign, result, ctx, variables)
            return self._exit(tr, scope, name, state, output)
        if isinstance(state, ChoiceState):
            return self._choose(tr, scope, name, state, raw_input, ctx, variables)
        if isinstance(state, SucceedState):
            if jsonata_mode:
                b = jsonata.bindings(raw_input, ctx, variables)
                output = self._jsonata_output(state, "output", b, raw_input)
            else:
                data = dataflow.select_input(raw_input, state.input_path, ctx)
                output = dataflow.select_output(data, state.output_path, ctx)
            self._limit(name, output, "output", raw_input)
            tr.event("SucceedStateExited", scope.key(name), output=output)
            self._end_scope(tr, scope, output)
            return None
        if isinstance(state, FailState):
            error, cause = self._fail_fields(state, raw_input, ctx, variables)
            self._fail_scope(tr, scope, error, cause, name, raw_input)
            return None
        raise StatesRuntimeError(f"{state.type} states are not supported")

    def _fail_fields(
        self, state: FailState, raw_input: Any, ctx: Mapping[str, Any], variables: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        if self._jsonata(state):
            b = jsonata.bindings(raw_input, ctx, variables)
            error, cause = state.error, state.cause
            if jsonata.is_expression(error):
                error = jsonata.evaluate_typed(error, b, "Error", "string")  # type: ignore[arg-type]
            if jsonata.is_expression(cause):
                cause = jsonata.evaluate_typed(cause, b, "Cause", "string")  # type: ignore[arg-type]
            return _bounded(error, MAX_ERROR_CHARS), _bounded(cause, MAX_CAUSE_CHARS)
        error, cause = state.error, state.cause
        if state.error_path:
            error = _as_text(_read_or_call(raw_input, state.error_path, ctx, "ErrorPath"))
        if state.cause_path:
            cause = _as_text(_read_or_call(raw_input, state.cause_path, ctx, "CausePath"))
        return _bounded(error, MAX_ERROR_CHARS), _bounded(cause, MAX_CAUSE_CHARS)

    def _choose(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: ChoiceState,
        raw_input: Any,
        ctx: Mapping[str, Any],
        variables: dict[str, Any],
    ) -> tuple[str, Any]:
        jsonata_mode = self._jsonata(state)
        if jsonata_mode:
            b = jsonata.bindings(raw_input, ctx, variables)
            data = raw_input
        else:
            data = dataflow.select_input(raw_input, state.input_path, ctx)
        target: str | None = None
        chosen: Any = state
        for index, rule in enumerate(state.choices):
            if rule.condition is not None:
                matched = (
                    jsonata.evaluate_typed(
                        rule.condition, b, f"Choices[{index}]/Condition", "boolean"
                    )
                    if jsonata.is_expression(rule.condition)
                    else bool(rule.condition)
                )
            else:
                matched = evaluate_rule(rule, data, ctx)
            if matched:
                target, chosen = rule.next, rule
                break
        if target is None:
            if state.default is None:
                raise NoChoiceMatched("No Matches!")
            target = state.default
        if jsonata_mode:
            field = "" if chosen is state else f"Choices[{state.choices.index(chosen)}]/"
            output = self._jsonata_output(chosen, "output", b, raw_input, f"{field}Output")
            self._jsonata_assign(tr, scope, chosen.assign, b, f"{field}Assign")
        else:
            output = dataflow.select_output(data, state.output_path, ctx)
            self._jsonpath_assign(tr, scope, chosen.assign, data, ctx, variables)
        self._limit(name, output, "output", raw_input)
        tr.event("ChoiceStateExited", scope.key(name), output=output)
        return target, output

    def _jsonata_output(
        self,
        owner: Any,
        attribute: str,
        b: Mapping[str, Any],
        default: Any,
        field: str = "Output",
    ) -> Any:
        """Evaluate ``owner.attribute`` (Output, Arguments...) if the definition sets it,
        even to null; else the default."""
        if attribute not in owner.model_fields_set:
            return default
        return jsonata.evaluate_template(getattr(owner, attribute), b, field)

    def _jsonata_assign(
        self, tr: Transition, scope: Scope, assign: Any, b: Mapping[str, Any], field: str
    ) -> None:
        if assign is not None:
            self._assign(tr, scope, jsonata.assign_jsonata(assign, b, field))

    def _jsonpath_assign(
        self,
        tr: Transition,
        scope: Scope,
        assign: Any,
        data: Any,
        ctx: Mapping[str, Any],
        variables: Mapping[str, Any],
    ) -> None:
        if assign is None:
            return
        updated = jsonata.evaluate_assign_jsonpath(assign, data, ctx, variables)
        names = [key[:-2] if key.endswith(".$") else key for key in assign]
        self._assign(tr, scope, {name: updated[name] for name in names})

    def _exit(
        self, tr: Transition, scope: Scope, name: str, state: Any, output: Any
    ) -> tuple[str, Any] | None:
        """Record the exit of a state and follow its ``Next`` (or end its scope)."""
        tr.event(_STATE_EVENTS[state.type][1], scope.key(name), output=output)
        if state.end:
            self._end_scope(tr, scope, output)
            return None
        return state.next, output

    def _continue_after(
        self, tr: Transition, scope: Scope, name: str, state: Any, output: Any
    ) -> None:
        step = self._exit(tr, scope, name, state, output)
        if step is not None:
            self.enter(tr, scope, *step)

    def _work_output(
        self,
        tr: Transition,
        scope: Scope,
        state: Any,
        record: StepRecord,
        result: Any,
        ctx: Mapping[str, Any],
    ) -> Any:
        """Output of a Task, Parallel or Map from its result (and its Assign)."""
        with self._in_scope(tr, scope) as variables:
            if self._jsonata(state):
                b = jsonata.bindings(record.input, ctx, variables, result=result)
                output = self._jsonata_output(state, "output", b, result)
                self._jsonata_assign(tr, scope, state.assign, b, "Assign")
                return output
            selected = result
            if state.result_selector is not None:
                selected = dataflow.apply_template(state.result_selector, result, ctx)
            output = dataflow.state_output(
                record.input,
                selected,
                result_path=state.result_path,
                output_path=state.output_path,
                context=ctx,
            )
            self._jsonpath_assign(tr, scope, state.assign, selected, ctx, variables)
            return output

    # -- Wait ---------------------------------------------------------------------------

    def _start_wait(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: WaitState,
        raw_input: Any,
        ctx: Mapping[str, Any],
        entered: int,
        variables: dict[str, Any],
    ) -> None:
        if self._jsonata(state):
            b = jsonata.bindings(raw_input, ctx, variables)
            if state.seconds is not None:
                value = _jsonata_number(state.seconds, b, "Seconds", "integer")
                due = tr.now + _wait_seconds(value, "Seconds", None)
            else:
                stamp = state.timestamp
                if jsonata.is_expression(stamp):
                    stamp = jsonata.evaluate_typed(stamp, b, "Timestamp", "string")  # type: ignore[arg-type]
                due = _wait_until(stamp, "Timestamp", None)
        else:
            data = dataflow.select_input(raw_input, state.input_path, ctx)
            if state.seconds_path:
                value = read_path(data, state.seconds_path, ctx, field="SecondsPath")
                due = tr.now + _wait_seconds(value, "SecondsPath", state.seconds_path)
            elif state.timestamp_path:
                value = read_path(data, state.timestamp_path, ctx, field="TimestampPath")
                due = _wait_until(value, "TimestampPath", state.timestamp_path)
            elif state.seconds is not None:
                due = tr.now + _wait_seconds(state.seconds, "Seconds", None)
            else:
                due = _wait_until(state.timestamp, "Timestamp", None)
        if due - tr.now > MAX_WAIT_SECONDS:
            raise StatesRuntimeError(
                f"The Wait state's timestamp is more than {MAX_WAIT_SECONDS} seconds away"
            )
        key = scope.key(name)
        record = StepRecord(
            state=name, input=raw_input, entered=tr.now, kind="wait", entered_event=entered
        )
        tr.records[key] = record
        tr.statuses[key] = StepStatus.WAITING
        tr.timers.append((max(due, tr.now), [TimerKind.WAIT, key, 0]))

    def wait_over(self, key: str, record: StepRecord, now: float) -> Transition:
        """A Wait state's time came: leave it."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, WaitState)
        tr.finish(key)
        ctx = self.context(name, record.entered)
        try:
            with self._in_scope(tr, scope) as variables:
                if self._jsonata(state):
                    b = jsonata.bindings(record.input, ctx, variables)
                    output = self._jsonata_output(state, "output", b, record.input)
                    self._jsonata_assign(tr, scope, state.assign, b, "Assign")
                else:
                    data = dataflow.select_input(record.input, state.input_path, ctx)
                    output = dataflow.select_output(data, state.output_path, ctx)
                    self._jsonpath_assign(tr, scope, state.assign, data, ctx, variables)
            self._limit(name, output, "output", record.input)
        except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
            located = self._failed(tr, key, exc, record.entered_event)
            self._fail_scope(tr, scope, located.error, located.cause, name, record.input)
            return tr
        self._continue_after(tr, scope, name, state, output)
        return tr

    # -- tasks --------------------------------------------------------------------------

    def _schedule_task(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: TaskState,
        raw_input: Any,
        *,
        record: StepRecord,
    ) -> None:
        """Make a Task step SCHEDULED (a new entry, or the next attempt of ``record``)."""
        key = scope.key(name)
        extra: dict[str, Any] = {}
        if state.resource.endswith(WAIT_FOR_TOKEN):
            if record.token:
                tr.tokens[record.token] = None
            record.token = self.new_token()
            extra["task_token"] = record.token
            tr.tokens[record.token] = [key, record.attempt]
        ctx = self.context(name, record.entered, record.attempt, **extra)
        jsonata_mode = self._jsonata(state)
        b: Mapping[str, Any] = {}
        if jsonata_mode:
            b = jsonata.bindings(raw_input, ctx, self._vars(tr, scope))
            params = self._jsonata_output(state, "arguments", b, raw_input, "Arguments")
        else:
            params = dataflow.effective_input(
                raw_input, input_path=state.input_path, parameters=state.parameters, context=ctx
            )
        mode = children.child_mode(state.resource)
        if mode is not None:
            # A child workflow (states:startExecution): no activity; the engine starts
            # the child when this transition's timer fires (orchestrator/engine/children.py).
            request = children.child_request(params)
            entry = [key, record.entered_event, record.attempt, tr.now, self.history_base]
            run_id = hashlib.sha1(repr(entry).encode()).hexdigest()[:12]
            child = request.name or children.child_execution_id(self.info.execution_id, run_id)
            record.kind, record.activity = "child", None
            record.run = {"id": run_id, "mode": mode, "child": child}
        elif is_lambda_invoke(state.resource):
            # The service-integration form: the function comes from the parameters and
            # the result is wrapped in Lambda's response envelope.
            if not isinstance(params, dict) or not isinstance(params.get("FunctionName"), str):
                raise StatesRuntimeError("lambda:invoke needs a FunctionName parameter")
            record.activity = self.resolve_name(params["FunctionName"])
            record.envelope = not state.resource.endswith(WAIT_FOR_TOKEN)
            params = params.get("Payload", {})
        else:
            record.activity = self.resolve(state)
        self._limit(name, params, "input", raw_input)
        record.params = params
        timeout = self._seconds(
            state.timeout_seconds, state.timeout_seconds_path, raw_input, ctx, b, "TimeoutSeconds"
        )
        record.timeout = tr.now + timeout if timeout else None
        tr.records[key] = record
        tr.statuses[key] = StepStatus.SCHEDULED
        tr.event(
            "TaskScheduled",
            key,
            # An integration's as Step Functions writes it (resourceType "http",
            # resource "invoke"); any other Resource as it is.
            **{"resource": state.resource, **resource_fields(state.resource)},
            parameters=params,
            timeoutInSeconds=timeout,
        )
        if record.timeout is not None:
            tr.timers.append((record.timeout, [TimerKind.TIMEOUT, key, record.attempt]))
        heartbeat = self._seconds(
            state.heartbeat_seconds,
            state.heartbeat_seconds_path,
            raw_input,
            ctx,
            b,
            "HeartbeatSeconds",
        )
        if heartbeat:
            # Callback tasks and ordinary ones alike: an activity keeps an ordinary Task
            # alive with activity_context().heartbeat() (its worker pushes the timer back
            # when it starts the attempt, and at each heartbeat).
            record.heartbeat = heartbeat
            tr.timers.append((tr.now + heartbeat, [TimerKind.HEARTBEAT, key, record.attempt]))
        if record.kind == "child":
            tr.timers.append((tr.now, [children.ChildTimer.START, key, record.attempt]))
            return
        tr.dispatches.append(Dispatch(key, name, record.activity or "", params))

    @staticmethod
    def _seconds(
        literal: Any,
        path: str | None,
        raw_input: Any,
        ctx: Mapping[str, Any],
        b: Mapping[str, Any],
        field: str,
    ) -> float | None:
        if path:
            value = read_path(raw_input, path, ctx, field=f"{field}Path")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise StatesRuntimeError(
                    f"The {field}Path field refers to value {_compact(value)} which is not a "
                    f"positive integer: {path}"
                )
            return _at_most_max_wait(float(value), f"{field}Path")
        if jsonata.is_expression(literal):
            return _at_most_max_wait(float(_jsonata_number(literal, b, field, "integer")), field)
        if isinstance(literal, int | float) and not isinstance(literal, bool):
            return _at_most_max_wait(float(literal), field)
        return None

    def task_succeeded(
        self, key: str, record: StepRecord, result: Any, now: float, tr: Transition | None = None
    ) -> Transition:
        """A task attempt returned ``result`` (or its task token was answered with it);
        ``tr``: a transition to go on with (events written before the task's end)."""
        tr = tr if tr is not None else self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, TaskState)
        if record.envelope:
            result = {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}
        tr.event("TaskSucceeded", key, output=result, **resource_fields(state.resource))
        tr.released.append(key)
        if record.token:
            tr.tokens[record.token] = None
        try:
            ctx = self.context(name, record.entered, record.attempt)
            output = self._work_output(tr, scope, state, record, result, ctx)
            self._limit(name, output, "output", result, record.input)
        except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
            located = self._failed(tr, key, exc, record.entered_event)
            self._state_error(tr, scope, key, record, state, located.error, located.cause)
            return tr
        tr.finish(key)
        self._continue_after(tr, scope, name, state, output)
        return tr

    def task_waiting(
        self, key: str, record: StepRecord, now: float, submitted: Any = None
    ) -> Transition:
        """A ``.waitForTaskToken`` activity returned: wait for the token's answer."""
        tr = self._new(now)
        # As Step Functions says of a callback task whose request went out.
        tr.event("TaskSubmitted", key, output=submitted)
        tr.statuses[key] = StepStatus.WAITING
        tr.released.append(key)
        return tr

    def child_started(
        self, key: str, record: StepRecord, execution_arn: str, start: float, now: float
    ) -> Transition:
        """The engine started the child of a ``startExecution`` Task (its execution
        ``execution_arn``, started at ``start``): a Task that does not wait succeeds with
        ``{"ExecutionArn", "StartDate"}``; a ``.sync`` or ``.waitForTaskToken`` one waits
        (for the child's end, or for its task token)."""
        mode = (record.run or {}).get("mode", "start")
        output = children.start_output(mode, execution_arn, start)
        tr = self._new(now)
        tr.event("TaskStarted", key)
        if mode in children.WAITING_MODES or mode == "token":
            tr.event("TaskSubmitted", key, output=output)
            tr.statuses[key] = StepStatus.WAITING
            return tr
        return self.task_succeeded(key, record, output, now, tr)

    def child_ended(
        self, key: str, record: StepRecord, description: dict[str, Any], now: float
    ) -> Transition:
        """The child of a ``.sync`` Task ended (``description``: its DescribeExecution):
        the Task succeeds with it, or fails with ``States.TaskFailed`` and the description
        as its cause, as Step Functions fails it."""
        if description.get("Status") == "SUCCEEDED":
            return self.task_succeeded(key, record, description, now)
        cause = children.child_failure_cause(description)
        return self.task_failed(key, record, "States.TaskFailed", cause, now)

    def task_failed(
        self,
        key: str,
        record: StepRecord,
        error: str | None,
        cause: str | None,
        now: float,
        *,
        timed_out: bool = False,
    ) -> Transition:
        """A task attempt raised (or timed out): retry, catch, or fail the scope."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        if cause and is_lambda_invoke(getattr(state, "resource", "")):
            # The lambda:invoke integration passes a function error on as compact JSON.
            cause = _compact_json_text(cause)
        # From outside (an exception's message, a callback's answer): storable and bounded.
        error, cause = _bounded(error, MAX_ERROR_CHARS), _bounded(cause, MAX_CAUSE_CHARS)
        tr.event(
            "TaskTimedOut" if timed_out else "TaskFailed",
            key,
            error=error,
            cause=cause,
            **resource_fields(getattr(state, "resource", "")),
        )
        tr.released.append(key)
        if record.token:
            tr.tokens[record.token] = None
        self._state_error(tr, scope, key, record, state, error, cause)
        return tr

    def _state_error(
        self,
        tr: Transition,
        scope: Scope,
        key: str,
        record: StepRecord,
        state: Any,
        error: str | None,
        cause: str | None,
    ) -> None:
        """A Task, Parallel or Map state failed: retry it, catch it, or fail its scope."""
        if record.kind in ("parallel", "map") or (
            record.kind == "child" and (record.run or {}).get("mode") in children.WAITING_MODES
        ):
            self._abandon_map_runs(tr)
        name_of_error = error or ""
        decision = next_retry(
            state.retry,
            name_of_error,
            {int(k): v for k, v in record.retries.items()},
            rand=self.rand,
        )
        if decision is not None:
            index = str(decision.retrier_index)
            record.retries[index] = record.retries.get(index, 0) + 1
            record.attempt += 1
            tr.records[key] = record
            tr.statuses[key] = StepStatus.RETRYING
            tr.timers.append(
                (tr.now + decision.delay_seconds, [TimerKind.RETRY, key, record.attempt])
            )
            return
        catcher_index = find_catcher(state.catch, name_of_error)
        if catcher_index is not None:
            catcher = state.catch[catcher_index]
            tr.finish(key)
            if record.kind in ("parallel", "map", "maprun"):
                tr.clear_container(key)
            error_output = {"Error": error, "Cause": cause}
            ctx = self.context(record.state, record.entered)
            try:
                with self._in_scope(tr, scope) as variables:
                    if self._jsonata(state):
                        b = jsonata.bindings(
                            record.input, ctx, variables, error_output=error_output
                        )
                        field = f"Catch[{catcher_index}]/"
                        next_input = self._jsonata_output(
                            catcher, "output", b, error_output, f"{field}Output"
                        )
                        self._jsonata_assign(tr, scope, catcher.assign, b, f"{field}Assign")
                    else:
                        next_input = dataflow.state_output(
                            record.input,
                            error_output,
                            result_path=catcher.result_path,
                            context=ctx,
                        )
                        self._jsonpath_assign(
                            tr, scope, catcher.assign, error_output, ctx, variables
                        )
                self._limit(record.state, next_input, "output", record.input, error_output)
            except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
                located = self._failed(tr, key, exc, record.entered_event)
                self._fail_scope(
                    tr, scope, located.error, located.cause, record.state, record.input
                )
                return
            self.enter(tr, scope, catcher.next, next_input)
            return
        tr.statuses[key] = StepStatus.FAILED
        # The failed step keeps its record: redrive starts it again from there.
        tr.records[key] = record
        self._fail_scope(tr, scope, error, cause, record.state, record.input)

    def retry_due(self, key: str, record: StepRecord, now: float) -> Transition:
        """A retry's backoff is over: start the next attempt."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        try:
            with self._in_scope(tr, scope):
                if isinstance(state, TaskState):
                    self._schedule_task(tr, scope, name, state, record.input, record=record)
                else:
                    self._start_container(tr, scope, name, state, record)
        except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
            tr.dispatches.clear()
            tr.timers.clear()
            located = self._failed(tr, key, exc, record.entered_event)
            self._state_error(tr, scope, key, record, state, located.error, located.cause)
        return tr

    # -- Parallel and Map ---------------------------------------------------------------

    def _start_container(
        self, tr: Transition, scope: Scope, name: str, state: Any, record: StepRecord
    ) -> None:
        key = scope.key(name)
        ctx = self.context(name, record.entered, record.attempt)
        variables = self._vars(tr, scope)
        jsonata_mode = self._jsonata(state)
        b = jsonata.bindings(record.input, ctx, variables) if jsonata_mode else {}
        if isinstance(state, ParallelState):
            if jsonata_mode:
                params = self._jsonata_output(state, "arguments", b, record.input, "Arguments")
            else:
                params = dataflow.effective_input(
                    record.input,
                    input_path=state.input_path,
                    parameters=state.parameters,
                    context=ctx,
                )
            self._limit(name, params, "input", record.input)
            record.kind, record.total = "parallel", len(state.branches)
            inputs: list[Any] = [params] * record.total
            window = record.total
            tr.event("ParallelStateStarted", key)
        elif state.item_processor.processor_mode == "DISTRIBUTED":
            self._start_map_run(tr, scope, name, state, record, ctx, b)
            return
        else:
            items, params = self._map_items(state, record, ctx, b)
            record.kind, record.total = "map", len(items)
            inputs = [
                self._item_input(state, name, record, params, i, value, variables)
                for i, value in enumerate(items)
            ]
            limit = self._map_limits(state, record, params, ctx, b)
            window = min(record.total, int(limit or 0) or MAP_WINDOW)
            tr.event("MapStateStarted", key, length=record.total)
            for i, value in enumerate(inputs[window:], start=window):
                tr.changes[Slot.item_input(key, i)] = _dumps(value)
            tr.changes[Slot.next_item(key)] = str(window)
            tr.changes[Slot.failures(key)] = "0"
            tr.changes[Slot.tolerance(key)] = _dumps(
                [record.tolerated_count, record.tolerated_percentage]
            )
            if not limit and window < record.total:
                tr.changes[Slot.refill(key)] = str(MAP_REFILL)
        record.params = None
        tr.records[key] = record
        tr.statuses[key] = StepStatus.RUNNING
        tr.changes[Slot.ended(key)] = "0"
        tr.changes[Slot.total(key)] = str(record.total)
        if record.total == 0:
            self._finish_container(tr, scope, key, record, state, [])
            return
        for i in range(window):
            if tr.statuses.get(key) != StepStatus.RUNNING:
                break  # a branch failed inline and took the container down
            # The window is started whole, and beside it the items that its inline ends
            # start, up to MAP_START_BUDGET: a 1,000-item Map of Pass items ends in its
            # first transition instead of leaving its last item to a refill timer.
            self._start_branch(tr, key, state, i, inputs[i], budgeted=False)

    # -- Distributed Map ----------------------------------------------------------------

    def _start_map_run(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: MapState,
        record: StepRecord,
        ctx: Mapping[str, Any],
        b: Mapping[str, Any],
    ) -> None:
        """Start a Map Run: evaluate what it needs now (items from ``ItemsPath``, the
        reader's, batcher's and writer's parameters, the limits) into the step's record and
        hand it to the engine with an ``advance`` timer due at once; the engine starts the
        children (executions of their own) in pages, and ends the state through
        :meth:`map_run_succeeded` / :meth:`map_run_failed`."""
        key = scope.key(name)
        jsonata_mode = self._jsonata(state)
        items: list[Any] | None = None
        if state.item_reader is None:
            items, params = self._map_items(state, record, ctx, b)
        elif jsonata_mode:
            params = record.input
        else:
            params = dataflow.select_input(record.input, state.input_path, ctx)
        limit = self._map_limits(state, record, params, ctx, b)
        label = state.label or name
        entry = [key, record.entered_event, record.attempt, tr.now]
        run_id = hashlib.sha1(repr(entry).encode()).hexdigest()[:12]
        arn = map_run_arn(self.info.workflow, label, self.info.execution_id, run_id)
        config = state.item_processor.processor_config or {}
        run: dict[str, Any] = {
            "arn": arn,
            "id": run_id,
            "label": label,
            "max": int(limit or 0) or DISTRIBUTED_CONCURRENCY,
            "type": config.get("ExecutionType", "STANDARD"),
        }
        selector = state.item_selector if state.item_selector is not None else state.parameters
        if selector is not None:
            run["sel"] = params
        if state.item_reader is not None:
            reader = dict(state.item_reader)
            reader_params = self._map_template(
                state, reader.pop("Parameters", reader.pop("Arguments", {})), params, ctx, b
            )
            reader_config = reader.get("ReaderConfig") or {}
            max_items = self._map_number(
                reader_config.get("MaxItems"),
                reader_config.get("MaxItemsPath"),
                params,
                ctx,
                b,
                "MaxItems",
                integer=True,
            )
            run["reader"] = {"def": reader, "params": reader_params, "max": max_items}
        if state.item_batcher is not None:
            batcher = state.item_batcher
            run["batch"] = {
                "items": self._map_number(
                    batcher.get("MaxItemsPerBatch"),
                    batcher.get("MaxItemsPerBatchPath"),
                    params,
                    ctx,
                    b,
                    "MaxItemsPerBatch",
                    integer=True,
                ),
                "bytes": self._map_number(
                    batcher.get("MaxInputBytesPerBatch"),
                    batcher.get("MaxInputBytesPerBatchPath"),
                    params,
                    ctx,
                    b,
                    "MaxInputBytesPerBatch",
                    integer=True,
                ),
                "input": self._map_template(state, batcher.get("BatchInput"), params, ctx, b),
            }
        if state.result_writer is not None:
            writer = state.result_writer
            run["writer"] = self._map_template(
                state, writer.get("Parameters", writer.get("Arguments", {})), params, ctx, b
            )
        # A state entered again (a loop, a retry) starts a new run over its old one.
        tr.clear_container(key)
        record.kind, record.run, record.params = "maprun", run, None
        record.total = len(items) if items is not None else 0
        if items is not None:
            for i, value in enumerate(items):
                tr.changes[Slot.item_input(key, i)] = _dumps(value)
        tr.records[key] = record
        tr.statuses[key] = StepStatus.RUNNING
        tr.event("MapStateStarted", key, length=record.total if items is not None else None)
        tr.event("MapRunStarted", key, mapRunArn=arn)
        tr.timers.append((tr.now, [MapRunTimer.ADVANCE, key, record.attempt]))

    def _map_template(
        self, state: MapState, template: Any, params: Any, ctx: Mapping[str, Any], b: Any
    ) -> Any:
        """A Distributed Map field's parameters (``ItemReader.Parameters``,
        ``BatchInput``...) evaluated against the state's effective input."""
        if template is None:
            return None
        if self._jsonata(state):
            return jsonata.evaluate_template(template, b, "Arguments")
        return dataflow.apply_template(template, params, ctx)

    def map_child_input(
        self, key: str, record: StepRecord, index: int, value: Any, now: float
    ) -> Any:
        """The input of Map Run item ``index`` (``value``): its ``ItemSelector``'s, if any."""
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, MapState) and record.run is not None
        if "sel" not in record.run:
            return value
        tr = self._new(now)
        with self._in_scope(tr, scope) as variables:
            return self._item_input(state, name, record, record.run["sel"], index, value, variables)

    def map_run_succeeded(
        self, key: str, record: StepRecord, result: Any, now: float, result_bytes: int = 0
    ) -> Transition:
        """The Map Run of ``key`` ended within its tolerance: ``result`` is the children's
        outputs in item order, or the ``ResultWriter``'s ``{"MapRunArn",
        "ResultWriterDetails"}``; the Map state goes on with it."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        tr.event("MapRunSucceeded", key, mapRunArn=(record.run or {}).get("arn"))
        self._finish_container(tr, scope, key, record, state, result, result_bytes)
        return tr

    def map_run_failed(
        self, key: str, record: StepRecord, error: str, cause: str, now: float
    ) -> Transition:
        """The Map Run of ``key`` failed (too many children failed, its items could not be
        read, its results not written): the Map state fails with ``error`` (Retry and Catch
        apply)."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        cause = safe_text(cause)
        tr.event(
            "MapRunFailed", key, mapRunArn=(record.run or {}).get("arn"), error=error, cause=cause
        )
        tr.event("MapStateFailed", key)
        self._state_error(tr, scope, key, record, state, error, cause)
        return tr

    def _map_items(
        self, state: MapState, record: StepRecord, ctx: Mapping[str, Any], b: Mapping[str, Any]
    ) -> tuple[list[Any], Any]:
        """The Map's items, and the data its ItemSelector reads."""
        if self._jsonata(state):
            if state.items is None:
                items: Any = record.input
            elif jsonata.is_expression(state.items):
                items = jsonata.evaluate_typed(state.items, b, "Items", "array")
                self._limit(record.state, items, "items")
            else:
                items = jsonata.evaluate_template(state.items, b, "Items")
                self._limit(record.state, items, "items")
            if not isinstance(items, list):
                raise QueryEvaluationError(
                    f"Map state input must be an array but was: {_compact(items)}"
                )
            return items, record.input
        params = dataflow.select_input(record.input, state.input_path, ctx)
        items = (
            params
            if state.items_path is None
            else read_path(params, state.items_path, ctx, field="ItemsPath")
        )
        if not isinstance(items, list):
            raise StatesRuntimeError(f"Map state input must be an array but was: {_compact(items)}")
        return items, params

    def _map_number(
        self,
        literal: Any,
        path: str | None,
        data: Any,
        ctx: Mapping[str, Any],
        b: Mapping[str, Any],
        field: str,
        *,
        integer: bool,
    ) -> float | None:
        kind = "integer" if integer else "float"
        if path:
            value = read_path(data, path, ctx, field=f"{field}Path")
            if isinstance(value, str):
                try:
                    value = int(value) if integer else float(value)
                except ValueError:
                    pass
            valid = isinstance(value, int | float) and not isinstance(value, bool)
            if not valid or (integer and not float(value).is_integer()):
                raise StatesRuntimeError(
                    f'The {field}Path field refers to value "{_as_text(value)}" which is not a '
                    f"valid {kind}: {path}"
                )
            return float(value)
        if jsonata.is_expression(literal):
            return float(_jsonata_number(literal, b, field, "integer" if integer else "number"))
        if isinstance(literal, int | float) and not isinstance(literal, bool):
            return float(literal)
        return None

    def _map_limits(
        self,
        state: MapState,
        record: StepRecord,
        params: Any,
        ctx: Mapping[str, Any],
        b: Mapping[str, Any],
    ) -> int | None:
        """A Map's ``MaxConcurrency`` (None or 0: no limit), with its tolerated failures
        evaluated into ``record``: the limits an inline Map and a Map Run share."""
        limit = self._map_number(
            state.max_concurrency,
            state.max_concurrency_path,
            params,
            ctx,
            b,
            "MaxConcurrency",
            integer=True,
        )
        self._map_tolerance(state, record, params, ctx, b)
        return None if limit is None else int(limit)

    def _map_tolerance(
        self,
        state: MapState,
        record: StepRecord,
        data: Any,
        ctx: Mapping[str, Any],
        b: Mapping[str, Any],
    ) -> None:
        count = self._map_number(
            state.tolerated_failure_count,
            state.tolerated_failure_count_path,
            data,
            ctx,
            b,
            "ToleratedFailureCount",
            integer=True,
        )
        percentage = self._map_number(
            state.tolerated_failure_percentage,
            state.tolerated_failure_percentage_path,
            data,
            ctx,
            b,
            "ToleratedFailurePercentage",
            integer=False,
        )
        if count is not None and count < 0:
            raise StatesRuntimeError("ToleratedFailureCount cannot be negative.")
        if percentage is not None and not 0 <= percentage <= 100:
            raise StatesRuntimeError("ToleratedFailurePercentage must be between 0 and 100.")
        record.tolerated_count, record.tolerated_percentage = count, percentage

    def _start_branch(
        self,
        tr: Transition,
        key: str,
        state: Any,
        index: int,
        value: Any,
        *,
        budgeted: bool = True,
    ) -> None:
        """Start branch or item ``index``; a Map item counts against the transition's
        start budget unless it is one of the Map's first window (not ``budgeted``)."""
        if isinstance(state, ParallelState):
            branch = state.branches[index]
        else:
            branch = state.item_processor
            tr.event("MapIterationStarted", key, index=index)
            if budgeted:
                tr.started_items += 1
        child = Scope(f"{key}[{index}]/", branch.states, key, index)
        self.enter(tr, child, branch.start_at, value)

    def _item_input(
        self,
        state: MapState,
        name: str,
        record: StepRecord,
        params: Any,
        index: int,
        value: Any,
        variables: Mapping[str, Any],
    ) -> Any:
        selector = state.item_selector if state.item_selector is not None else state.parameters
        if selector is None:
            return value
        ctx = self.context(name, record.entered, record.attempt, map_item=(index, value))
        if self._jsonata(state):
            b = jsonata.bindings(record.input, ctx, variables)
            selected = jsonata.evaluate_template(selector, b, "ItemSelector")
        else:
            selected = dataflow.apply_template(selector, params, ctx)
        self._limit(name, selected, f"input of item {index}")
        return selected

    def _end_scope(self, tr: Transition, scope: Scope, output: Any) -> None:
        if scope.container is None:
            tr.event("ExecutionSucceeded", output=output)
            tr.end = {"status": "SUCCEEDED", "output": output}
            return
        key = scope.container
        container_scope, name = self.scope_of(key)
        state = container_scope.states[name]
        if isinstance(state, MapState):
            tr.event("MapIterationSucceeded", key, index=scope.index)
            self._start_next_item(tr, key, state)
        tr.changes[Slot.result(key, scope.index)] = _dumps(output)
        tr.changes[Slot.variables(scope.prefix)] = None
        tr.joins.append(key)

    def _start_next_item(
        self, tr: Transition, key: str, state: MapState, wanted: int | None = None
    ) -> None:
        """An iteration of Map ``key`` ended (or ``wanted`` deferred starts are due):
        start the next items. Items that end inline start more in their turn; they queue
        here and one loop starts them all, so that a Map of many inline items recurses
        no deeper than one (and stops at the transition's start budget)."""
        tr.refills.append((key, state, wanted))
        if tr.refilling:
            return
        tr.refilling = True
        try:
            while tr.refills:
                self._start_items(tr, *tr.refills.pop(0))
        finally:
            tr.refilling = False

    def _start_items(self, tr: Transition, key: str, state: MapState, wanted: int | None) -> None:
        if tr.statuses.get(key, StepStatus.RUNNING) != StepStatus.RUNNING:
            return  # an item failed inline and took the Map down
        next_slot = Slot.next_item(key)
        if next_slot not in tr.changes:
            # A refill knows how many items it starts: their inputs come in the same call.
            budget = MAP_START_BUDGET - tr.started_items
            self.reader.prefetch_window(key, None if wanted is None else min(wanted, budget))
        raw = self._field(tr, next_slot)
        total = self._field(tr, Slot.total(key))
        if raw is None or total is None:
            return
        index, count = int(raw), int(total)
        if index >= count:
            return  # every item has started (and the refill count needs no read)
        if wanted is None:
            # One item in place of the one that ended; an unbounded Map (a refill count)
            # starts more.
            wanted = int(self._field(tr, Slot.refill(key)) or 1)
        wanted = min(wanted, count - index)
        allowed = max(0, min(wanted, MAP_START_BUDGET - tr.started_items))
        if allowed < wanted:
            self._defer_items(tr, key, wanted - allowed)
        end = index + allowed
        if end == index:
            return
        tr.changes[next_slot] = str(end)
        for i in range(index, end):
            if tr.statuses.get(key, StepStatus.RUNNING) != StepStatus.RUNNING:
                break  # an item failed inline and took the Map down
            item = Slot.item_input(key, i)
            value = self._field(tr, item)
            tr.changes[item] = None
            self._start_branch(tr, key, state, i, json.loads(value) if value else None)

    def _defer_items(self, tr: Transition, key: str, count: int) -> None:
        """Leave ``count`` item starts to a ``refill`` timer's transition."""
        deferred = Slot.deferred(key)
        tr.changes[deferred] = str(int(self._field(tr, deferred) or 0) + count)
        # Attempt 0 whatever the Map's attempt (reading it would parse the Map's record,
        # whole input and all, for every deferral): a refill that outlives its attempt
        # finds the deferred count that attempt's end cleared, and starts nothing.
        timer = (tr.now, [TimerKind.REFILL, key, 0])
        if timer not in tr.timers:
            tr.timers.append(timer)

    def refill_due(self, key: str, now: float) -> Transition:
        """Start the items of Map ``key`` that earlier transitions deferred."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        deferred = Slot.deferred(key)
        wanted = int(self._field(tr, deferred) or 0)
        if wanted and isinstance(state, MapState):
            tr.changes[deferred] = "0"
            self._start_next_item(tr, key, state, wanted)
        return tr

    def _fail_scope(
        self,
        tr: Transition,
        scope: Scope,
        error: str | None,
        cause: str | None,
        state: str | None = None,
        state_input: Any = None,
    ) -> None:
        if scope.container is None:
            self._mark_failure(tr, scope, state, state_input)
            tr.event("ExecutionFailed", error=error, cause=cause)
            tr.end = {
                "status": "FAILED",
                "error": error,
                "cause": cause,
                "state": state,
                "state_input": state_input,
            }
            self._end_map_runs(tr)
            return
        key = scope.container
        container_scope, name = self.scope_of(key)
        container = container_scope.states[name]
        if isinstance(container, MapState):
            tr.event("MapIterationFailed", key, index=scope.index, error=error, cause=cause)
            if self._tolerated(tr, key):
                self._start_next_item(tr, key, container)
                tr.changes[Slot.result(key, scope.index)] = _dumps({"Error": error, "Cause": cause})
                tr.joins.append(key)
                return
        self._mark_failure(tr, scope, state, state_input)
        pending = tr.records.get(key)
        record_text = pending.dumps() if pending is not None else self.reader.get(Slot.record(key))
        if record_text is None or tr.statuses.get(key, StepStatus.RUNNING) != StepStatus.RUNNING:
            return  # the container already failed in this transition
        record = StepRecord.loads(record_text)
        # Branches of this container still to be started in this transition never will be.
        inside = f"{key}["
        tr.dispatches[:] = [d for d in tr.dispatches if not d.step_key.startswith(inside)]
        if isinstance(container, MapState) and _has_tolerance(record):
            error = "States.ExceedToleratedFailureThreshold"
            cause = "The specified tolerated failure threshold was exceeded"
        tr.event(f"{container.type}StateFailed", key, error=error, cause=cause)
        self._state_error(tr, container_scope, key, record, container, error, cause)

    @staticmethod
    def _mark_failure(tr: Transition, scope: Scope, state: str | None, state_input: Any) -> None:
        # Where this scope failed, so that a redrive can enter that state again.
        if state is not None:
            tr.changes[Slot.failed_at(scope.container or "", scope.index)] = _dumps(
                [state, state_input]
            )

    def _tolerated(self, tr: Transition, key: str) -> bool:
        tolerance = self._field(tr, Slot.tolerance(key))
        if tolerance is not None:
            # Not from the record, which holds the Map's whole input: a large Map's
            # failing items would each read and decode it.
            count, percentage = json.loads(tolerance)
            total = max(int(self._field(tr, Slot.total(key)) or 0), 1)
        else:  # a Map started before its tolerance was kept beside its record
            pending = tr.records.get(key)
            record_text = (
                pending.dumps() if pending is not None else self.reader.get(Slot.record(key))
            )
            if record_text is None:
                return False
            record = StepRecord.loads(record_text)
            count, percentage = record.tolerated_count, record.tolerated_percentage
            total = max(record.total, 1)
        if count is None and percentage is None:
            return False
        failures = int(self._field(tr, Slot.failures(key)) or 0) + 1
        if (count is not None and failures <= count) or (
            percentage is not None and failures * 100 / total <= percentage
        ):
            tr.changes[Slot.failures(key)] = str(failures)
            return True
        return False

    def join(self, key: str, record: StepRecord, now: float) -> Transition:
        """Every branch or item of a container ended: compute its output and go on."""
        tr = self._new(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        raw = self.reader.get_many([Slot.result(key, i) for i in range(record.total)])
        # The result array's size, from the texts read (a character is 1-4 bytes).
        size = sum(len(r) + 1 if r is not None else 5 for r in raw) + 1
        if size * 4 > self.max_result_bytes:
            size = sum(len(r.encode()) + 1 if r is not None else 5 for r in raw) + 1
        results = [json.loads(r) if r is not None else None for r in raw]
        self._finish_container(tr, scope, key, record, state, results, size)
        return tr

    def _finish_container(
        self,
        tr: Transition,
        scope: Scope,
        key: str,
        record: StepRecord,
        state: Any,
        results: Any,
        results_bytes: int = 0,
    ) -> None:
        name = state_name(key)
        tr.clear_container(key)
        tr.event(f"{state.type}StateSucceeded", key)
        try:
            if results_bytes > self.max_result_bytes:
                raise StatesError(
                    f"The result of state '{name}' is {results_bytes} bytes, over the payload "
                    f"quota of {self.max_result_bytes} bytes (ORCHESTRATOR_MAX_INPUT_BYTES).",
                    error="States.DataLimitExceeded",
                )
            ctx = self.context(name, record.entered, record.attempt)
            output = self._work_output(tr, scope, state, record, results, ctx)
            self._limit(name, output, "output", record.input)
        except Exception as exc:  # noqa: BLE001 - whatever evaluation raises fails the state
            located = self._failed(tr, key, exc, record.entered_event)
            self._state_error(tr, scope, key, record, state, located.error, located.cause)
            return
        tr.finish(key)
        self._continue_after(tr, scope, name, state, output)

    # -- execution-level ----------------------------------------------------------------

    def within_history(self, tr: Transition, step_key: str | None = None) -> Transition:
        """``tr``, or, when it would take the history past ``max_history_events``, the
        transition that fails the execution instead (``States.Runtime``; its one
        ``ExecutionFailed`` event may pass the limit). O(1): it counts, never reads."""
        if len(tr.events) <= 1 or tr.base + len(tr.events) <= self.max_history_events:
            return tr  # (one event more cannot be refused: the failure is one too)
        cause = (
            f"The execution reached the quota of {self.max_history_events} history events "
            "(ORCHESTRATOR_MAX_HISTORY_EVENTS)"
            + (f" in state '{state_name(step_key)}'." if step_key else ".")
        )
        return self.execution_failed(tr.now, step_key, "States.Runtime", cause)

    def execution_failed(
        self, now: float, step_key: str | None, error: str, cause: str
    ) -> Transition:
        """A transition that only fails the execution: what is left when a transition
        cannot be computed or stored at all (see :meth:`failed_transition`)."""
        tr = self._new(now)
        if step_key:
            tr.released.append(step_key)
        cause = safe_text(cause)
        tr.event("ExecutionFailed", error=error, cause=cause)
        tr.end = {
            "status": "FAILED",
            "error": error,
            "cause": cause,
            "state": state_name(step_key) if step_key else None,
        }
        self._end_map_runs(tr)
        return tr

    def failed_transition(self, now: float, step_key: str | None, exc: BaseException) -> Transition:
        """The transition after computing or encoding one raised outside any state's
        evaluation (which fails its own state): the execution fails with
        ``States.Runtime`` (or the error's own name), never loops."""
        error = as_states_error(exc)
        where = f" after state '{state_name(step_key)}'" if step_key else ""
        cause = f"The transition{where} could not be computed or stored: {error.cause}"
        return self.execution_failed(now, step_key, error.error, cause)

    def timed_out(self, now: float) -> Transition:
        """The state machine's ``TimeoutSeconds`` ran out."""
        tr = self._new(now)
        cause = f"execution exceeded its TimeoutSeconds of {self.machine.timeout_seconds}"
        tr.event("ExecutionTimedOut", error="States.Timeout", cause=cause)
        tr.end = {"status": "TIMED_OUT", "error": "States.Timeout", "cause": cause}
        self._end_map_runs(tr)
        return tr

    # -- operations from outside a step: timers, stop, redrive, lost workers ------------

    def timer_fired(
        self,
        kind: str,
        step_key: str,
        status: str | None,
        record: StepRecord | None,
        attempt: int,
        now: float,
    ) -> Transition | None:
        """A timer of ``kind`` (a :class:`TimerKind`) set for attempt ``attempt`` of
        ``step_key`` came due; ``status`` (without claim token) and ``record`` are the
        step's now (None: gone; the record is not read for :data:`RECORDLESS_TIMERS`).
        The transition it triggers, or None when it no longer
        applies (the step moved on: another attempt, another status, or ended)."""
        if kind == TimerKind.EXECUTION_TIMEOUT:
            return self.timed_out(now)
        if kind == TimerKind.CONTINUE:
            # ``attempt`` names the hand-over (see _hand_over); a redrive may have put
            # another step, or another hand-over, under that key since.
            if (
                status == StepStatus.SCHEDULED
                and record is not None
                and record.kind == "continue"
                and record.entered_event == attempt
            ):
                return self.resume(step_key, record, now)
            return None
        if kind == TimerKind.REFILL:
            # Any attempt of the Map (see _defer_items): what is deferred says what to do.
            # The record is not needed (nor read: RECORDLESS_TIMERS): it holds the Map's
            # whole input, and a large Map has a refill every MAP_START_BUDGET items.
            if status == StepStatus.RUNNING:
                return self.refill_due(step_key, now)
            return None
        if status is None or record is None or record.attempt != attempt:
            return None
        if kind == TimerKind.RETRY and status == StepStatus.RETRYING:
            return self.retry_due(step_key, record, now)
        if kind == TimerKind.WAIT and status == StepStatus.WAITING:
            return self.wait_over(step_key, record, now)
        if kind in (TimerKind.TIMEOUT, TimerKind.HEARTBEAT) and status in (
            StepStatus.SCHEDULED,
            StepStatus.RUNNING,
            StepStatus.WAITING,
        ):
            if kind == TimerKind.TIMEOUT:
                error, cause = "States.Timeout", "Task timed out"
            else:
                error, cause = "States.HeartbeatTimeout", "Task did not send a heartbeat in time"
            return self.task_failed(step_key, record, error, cause, now, timed_out=True)
        return None

    @staticmethod
    def map_runs_aborted(now: float, map_runs: Sequence[tuple[str, str | None]]) -> Transition:
        """The transition that aborts Map Runs while their execution goes on (the Parallel
        branch or Map iteration they run in was abandoned): a ``MapRunAborted`` each, as a
        stop writes (``map_runs``: step key and Map Run ARN)."""
        tr = Transition(now)
        for key, arn in map_runs:
            tr.event("MapRunAborted", key, mapRunArn=arn)
        return tr

    @staticmethod
    def stop(
        now: float,
        error: str | None,
        cause: str | None,
        map_runs: Sequence[tuple[str, str | None]] = (),
    ) -> Transition:
        """The transition that aborts a running execution (StopExecution); ``map_runs``,
        ``(step key, Map Run ARN)`` of its Map Runs still running, each get the
        ``MapRunAborted`` Step Functions records before ``ExecutionAborted``.

        Static: a stop needs nothing of the definition, so an execution can be stopped
        even when its definition cannot be loaded."""
        tr = Transition(now)
        for key, arn in map_runs:
            tr.event("MapRunAborted", key, mapRunArn=arn)
        tr.event("ExecutionAborted", error=error, cause=cause)
        tr.end = {"status": "ABORTED", "error": error, "cause": cause}
        return tr

    def redrive(self, view: RedriveView, now: float) -> Transition:
        """The transition that restarts a FAILED, TIMED_OUT or ABORTED execution from what
        did not succeed, like Step Functions' RedriveExecution: succeeded steps are not
        run again; a Map or Parallel runs again only its unfinished items and branches.

        It reads what the states it enters need (variables) through ``self.reader``,
        which should read the step hash ``view`` came from. The execution's own record
        (running again, the redrive count) is the engine's to reset.
        """
        # Event ids go on from the history's length (``history_base``), so that a state
        # entered here quotes its own ``...StateEntered`` id in runtime errors.
        tr = self._new(now)
        tr.event("ExecutionRedriven", redriveCount=view.redrives + 1)
        restarted: set[str] = set()
        for key, text in view.records.items():
            record = StepRecord.loads(text)
            if record.kind in ("parallel", "map"):
                tr.statuses[key] = StepStatus.RUNNING
            elif record.kind == "maprun":
                # The Map Run goes on: the engine redrives its failed children, and
                # starts those it never started.
                tr.statuses[key] = StepStatus.RUNNING
                arn = (record.run or {}).get("arn")
                tr.event("MapRunRedriven", key, mapRunArn=arn, redriveCount=view.redrives + 1)
                tr.timers.append((now, [MapRunTimer.ADVANCE, key, record.attempt]))
            elif record.kind == "wait":
                # As Step Functions runs an interrupted state again, the Wait starts over
                # (WaitStateEntered again): Seconds count from the redrive, a Timestamp
                # already past ends it at once.
                scope, name = self.scope_of(key)
                self.enter(tr, scope, name, record.input)
            elif record.kind == "continue":
                # A handed-over run the stop (or a failure elsewhere) cut: its state was
                # never entered; enter it now. (Its timer, if still set, no longer names
                # a hand-over and is dropped when it fires.)
                tr.finish(key)
                scope, name = self.scope_of(key)
                self.enter(tr, scope, name, record.input)
            elif record.token or record.kind == "child":
                # A callback task, or a child workflow's: scheduled again, with a new task
                # token, or a new child.
                # Its old token was revoked when the execution ended and must stay so; its
                # parameters ($$.Task.Token) are computed again from its input to carry
                # the new one.
                record.attempt, record.retries = 0, {}
                scope, name = self.scope_of(key)
                state = scope.states[name]
                assert isinstance(state, TaskState)
                self._schedule_task(tr, scope, name, state, record.input, record=record)
            else:  # a task: failed, or in flight when the execution stopped
                record.attempt, record.retries = 0, {}
                tr.records[key] = record
                tr.statuses[key] = StepStatus.SCHEDULED
                # The Resource as the first scheduling wrote it (an integration's as
                # resourceType and resource), not the task that serves it.
                scope, name = self.scope_of(key)
                resource = getattr(scope.states[name], "resource", None) or record.activity
                tr.event(
                    "TaskScheduled",
                    record.state,
                    **{"resource": resource, **resource_fields(resource or "")},
                    parameters=record.params,
                )
                tr.dispatches.append(
                    Dispatch(key, record.state, record.activity or "", record.params)
                )
            restarted.add(key)
        # Scopes that failed in an inline state (a Fail state, no Choice matched...) enter
        # that state again.
        for slot, text in view.failures:
            container, index = slot.owner, slot.branch
            if container and container not in restarted:
                continue  # that container ended (caught, succeeded): nothing to redo in it
            branch = f"{container}[{index}]/" if container else ""
            if any(key.startswith(branch) for key in restarted if key != container):
                continue  # a restarted step of that scope carries the failure already
            state, state_input = json.loads(text)
            tr.changes[slot] = None
            scope = self.scope_of(branch + escape_name(state))[0] if container else self.top
            self.enter(tr, scope, state, state_input)
        return tr

    @staticmethod
    def recover(step_key: str, status: str | None, record: StepRecord | None) -> Recovery:
        """A step's lease lapsed (its worker died, or its message was lost) while its
        status (without claim token) is ``status``: what becomes of it."""
        if status is None or record is None:
            return Recovery()
        if status == StepStatus.JOINING:
            return Recovery(join=True)
        if record.kind in ("continue", "maprun", "child"):
            return Recovery()  # its timer moves it, not a task
        if status in (StepStatus.SCHEDULED, StepStatus.RUNNING):
            return Recovery(
                dispatch=Dispatch(step_key, record.state, record.activity or "", record.params)
            )
        return Recovery()


_ASSIGNS_CACHE: dict[int, tuple[StateMachine, bool]] = {}


def machine_assigns(machine: StateMachine) -> bool:
    """Whether any state of ``machine`` assigns variables (cached: asked every step)."""
    cached = _ASSIGNS_CACHE.get(id(machine))
    if cached is not None and cached[0] is machine:
        return cached[1]
    result = any(_assigns(state) for _, _, state, _ in machine.walk())
    if len(_ASSIGNS_CACHE) > 512:
        _ASSIGNS_CACHE.clear()
    # The machine itself is kept in the entry so that its id cannot be reused.
    _ASSIGNS_CACHE[id(machine)] = (machine, result)
    return result


def _assigns(state: Any) -> bool:
    if getattr(state, "assign", None) is not None:
        return True
    rules = getattr(state, "choices", ()) or ()
    catchers = getattr(state, "catch", ()) or ()
    return any(getattr(x, "assign", None) is not None for x in (*rules, *catchers))


def _scope_prefixes(prefix: str) -> list[str]:
    """``"M[3]/P[1]/"`` -> ``["", "M[3]/", "M[3]/P[1]/"]``."""
    prefixes = [""]
    if prefix:
        parts = prefix.rstrip("/").split("/")
        prefixes += ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
    return prefixes


def _has_tolerance(record: StepRecord) -> bool:
    return record.tolerated_count is not None or record.tolerated_percentage is not None


def _jsonata_number(expression: Any, b: Mapping[str, Any], field: str, kind: str) -> float:
    if jsonata.is_expression(expression):
        return jsonata.evaluate_typed(expression, b, field, kind)
    return float(expression)


def _wait_seconds(value: Any, field: str, path: str | None) -> float:
    where = f": {path} == {_compact(value)}" if path else f": {_compact(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatesRuntimeError(f"The {field} parameter cannot be parsed as a long value{where}")
    if isinstance(value, float) and not value.is_integer():
        raise StatesRuntimeError(f"The {field} parameter cannot be parsed as a long value{where}")
    if value < 0:
        raise StatesRuntimeError(f"The {field} parameter references a negative value{where}")
    if value > MAX_WAIT_SECONDS:
        raise StatesRuntimeError(
            f"The {field} parameter references a value over the maximum of "
            f"{MAX_WAIT_SECONDS} seconds{where}"
        )
    return float(value)


def _at_most_max_wait(seconds: float, field: str) -> float:
    if seconds > MAX_WAIT_SECONDS:
        raise StatesRuntimeError(
            f"The {field} value {_compact(seconds)} is over the maximum of {MAX_WAIT_SECONDS} "
            "seconds"
        )
    return seconds


def _wait_until(value: Any, field: str, path: str | None) -> float:
    moment = parse_timestamp(value) if isinstance(value, str) else None
    if moment is None:
        where = f": {path} == {_compact(value)}" if path else f": {_compact(value)}"
        raise StatesRuntimeError(
            f"The {field} parameter does not reference a valid ISO-8601 extended offset "
            f"date-time format string{where}"
        )
    return moment.timestamp()


def _read_or_call(data: Any, path: str, ctx: Mapping[str, Any], field: str) -> Any:
    """ErrorPath / CausePath: a path, or an intrinsic function call."""
    if path.startswith("States."):
        return intrinsics.evaluate(path, data, ctx)
    return read_path(data, path, ctx, field=field)


def _check_size(state: str, value: Any, limit: int) -> None:
    if len(json_bytes(value)) > limit:
        raise StatesError(data_limit_cause(state), error="States.DataLimitExceeded")


_JSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


@functools.lru_cache(maxsize=256)
def _execution_context(
    workflow: str, name: str, start_time: float, region: str, account: str
) -> tuple[str, str, str]:
    """The context object's execution ARN, start time and state machine ARN: the same
    for every state of an execution, and built for each state (twice per Task)."""
    return (
        arns.execution_arn(workflow, name, region=region, account=account),
        dataflow.format_timestamp(start_time),
        arns.state_machine_arn(workflow, region=region, account=account),
    )


def json_bytes(value: Any) -> bytes:
    """The UTF-8 JSON text of a value a transition stores, or a ``States.Runtime`` error.

    Like :func:`jsontext.dumps` (orjson, the standard library for what orjson refuses),
    but what cannot be stored fails here, where it is a failure of the state that made
    it, instead of in the commit: a lone surrogate (``$string("\\ud800")``), nesting
    deeper than the encoder goes, a value that is not JSON.
    """
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS)
    except TypeError:
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise StatesRuntimeError(
            f"a value of the state cannot be stored as JSON ({type(exc).__name__}: "
            f"{safe_text(str(exc), 200)})"
        ) from None


def encode(value: Any) -> str:
    """Compact JSON text of a value a transition stores (see :func:`json_bytes`)."""
    return json_bytes(value).decode()


def _bounded(text: str | None, limit: int) -> str | None:
    return None if text is None else safe_text(text, limit)


def safe_text(text: str, limit: int = MAX_CAUSE_CHARS) -> str:
    """``text`` made storable: lone surrogates escaped, cut to ``limit`` characters."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
        if len(text) > limit:  # each escape is 6 characters for 1
            text = text[: limit - 3] + "..."
    return text


def as_states_error(exc: BaseException) -> StatesError:
    """Any exception raised while computing a state's transition, as that state's failure:
    a :class:`StatesError` keeps its name; anything else is ``States.Runtime`` with a cause
    naming what failed."""
    if isinstance(exc, StatesError):
        return exc
    if isinstance(exc, RecursionError):
        cause = "the evaluation nested too deeply (RecursionError): data or expression too deep"
    elif isinstance(exc, ActivityNotFound):
        cause = f"no registered activity for {exc.resource!r}"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    return StatesRuntimeError(safe_text(cause))


def data_limit_cause(state: str) -> str:
    """Step Functions' cause for a state result over the payload size limit."""
    return (
        f"The state/task '{state}' returned a result with a size exceeding the maximum "
        "number of bytes service limit."
    )


def _compact_json_text(text: str) -> str:
    try:
        return _dumps(json.loads(text))
    except ValueError:
        return text


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


#: Resource of the Lambda service integration.
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
#: Suffix of the callback pattern: the task pauses until its task token is answered.
WAIT_FOR_TOKEN = ".waitForTaskToken"


def is_lambda_invoke(resource: str) -> bool:
    """True for ``arn:aws:states:::lambda:invoke`` (and its ``.waitForTaskToken`` form),
    in any partition, region and account
    (``arn:aws:states:us-east-1:123456789012:lambda:invoke``), as any integration ARN."""
    return integration_name(resource or "") in ("lambda:invoke", "lambda:invoke" + WAIT_FOR_TOKEN)


def state_name(step_key: str) -> str:
    """The state name of a step key (as the definition spells it)."""
    return unescape_name(step_key.rpartition("/")[2])


def ancestors(step_key: str) -> list[str]:
    """Step keys of the Parallel and Map states a step runs in, outermost first."""
    parts = step_key.split("/")[:-1]
    keys = []
    for depth, part in enumerate(parts):
        keys.append("/".join([*parts[:depth], part.rpartition("[")[0]]))
    return keys


_dumps = encode


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def map_run_arn(workflow: str, label: str, execution_id: str, run_id: str) -> str:
    """A Map Run's ARN, shaped like Step Functions' (``...:mapRun:<machine>/<label>:<id>``);
    its id, after the last colon, is ``<execution id>.<run>`` (execution ids hold no
    colon), so the ARN alone finds the run."""
    return arns.map_run_arn(workflow, label, f"{execution_id}.{run_id}")
