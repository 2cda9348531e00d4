"""Workflow semantics as pure functions: from what just happened to the next transition.

The interpreter never touches Redis or Celery. Given the parsed state machine, the
execution's identity and an event (the execution started, a task finished or failed, a
timer came due), it evaluates the inline states that follow (Pass, Choice, Succeed, Fail)
and returns a :class:`Transition`: history events, step records to write, tasks to
dispatch, timers to set and, when the execution ends, its result. The runtime commits a
transition atomically and only then publishes its tasks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator import dataflow
from orchestrator.choice import choose
from orchestrator.definition import (
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
from orchestrator.errors import StatesError, StatesRuntimeError
from orchestrator.paths import read_path
from orchestrator.retry import find_catcher, next_retry

#: Map iterations in flight at once when ``MaxConcurrency`` is 0 ("unbounded"): more
#: than Step Functions' inline Map runs (40), few enough that starting a Map never
#: builds one giant transition or message.
MAP_WINDOW = 500

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
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CAUGHT = "CAUGHT"
    TIMED_OUT = "TIMED_OUT"
    WAITING = "WAITING"
    """A Wait state, or a task waiting for its task token."""
    JOINING = "JOINING"
    """A Parallel or Map whose branches all ended: its join is due."""


class Reader:
    """Reads step-hash fields for a transition (containers' counters and results).

    The runtime's reader fetches from Redis and turns what it read into compare-and-set
    guards of the commit; a failed guard makes the runtime recompute the transition.
    """

    def get(self, field: str) -> str | None:
        """One field of the execution's step hash (this base reader sees none)."""
        return None

    def get_many(self, fields: list[str]) -> list[str | None]:
        """Several fields, not guarded (values that no longer change)."""
        return [self.get(f) for f in fields]


@dataclass(frozen=True)
class ExecutionInfo:
    """What the context object says about the execution."""

    execution_id: str
    name: str
    workflow: str
    start_time: float
    input: Any = None


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
    kind: str = "task"
    """task, wait, parallel or map."""
    total: int = 0
    """Branches or items of a Parallel or Map."""
    token: str | None = None
    """The task token of a ``.waitForTaskToken`` task."""
    envelope: bool = False
    """Wrap the result in Lambda's invoke response (``arn:aws:states:::lambda:invoke``)."""

    def dumps(self) -> str:
        """The record as stored."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> StepRecord:
        """Parse a stored record."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Dispatch:
    """A task to publish once the transition is committed."""

    step_key: str
    state: str
    activity: str
    params: Any


@dataclass
class Transition:
    """Everything one atomic state change writes, computed before anything is written."""

    now: float
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
    fields: dict[str, str | None] = field(default_factory=dict)
    """Other step-hash fields to write (``None``: delete): container counters, results."""
    joins: list[str] = field(default_factory=list)
    """Containers whose ended-branch counter this transition increments."""
    tokens: dict[str, Any] = field(default_factory=dict)
    """Task tokens to register (value) or forget (``None``)."""

    def event(self, type_: str, state: str | None = None, **details: Any) -> None:
        """Append a history event."""
        event: dict[str, Any] = {"type": type_, "ts": self.now}
        if state is not None:
            event["state"] = state
        event.update({k: v for k, v in details.items() if v is not None})
        self.events.append(event)


@dataclass(frozen=True)
class Scope:
    """The states one step key prefix runs in: the state machine or a branch of it."""

    prefix: str
    states: Mapping[str, State]
    container: str | None = None
    """Step key of the Parallel or Map this branch belongs to."""
    index: int = 0
    """Branch or item index in that container."""


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
    ) -> None:
        self.machine = machine
        self.info = info
        self.resolve = resolve
        self.resolve_name = resolve_name or (lambda name: name)
        self.max_inline_states = max_inline_states
        self.rand = rand
        self.reader = reader or Reader()
        self.new_token = new_token or (lambda: __import__("secrets").token_urlsafe(32))
        self.top = Scope("", machine.states)

    # -- scopes and context -------------------------------------------------------------

    def scope_of(self, step_key: str) -> tuple[Scope, str]:
        """Split a step key into its scope and state name."""
        prefix, _, name = step_key.rpartition("/")
        if not prefix:
            return self.top, step_key
        states: Mapping[str, State] = self.machine.states
        parts = prefix.split("/")
        container = ""
        index = 0
        for part in parts:
            container_name, _, raw_index = part.rpartition("[")
            container = f"{container}/{container_name}" if container else container_name
            index = int(raw_index.rstrip("]"))
            branch = self._branch(states[container_name], index)
            states = branch.states
            container = f"{container}[{index}]"
        return Scope(prefix + "/", states, container.rpartition("[")[0], index), name

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
        return dataflow.build_context(
            self.info.execution_id,
            self.info.name,
            self.info.input,
            dataflow.format_timestamp(self.info.start_time),
            state,
            dataflow.format_timestamp(entered),
            retry_count,
            self.info.workflow,
            self.info.workflow,
            **extra,
        )

    # -- entry points -------------------------------------------------------------------

    def start(self, now: float) -> Transition:
        """The transition that starts the execution."""
        tr = Transition(now)
        tr.event("ExecutionStarted", input=self.info.input)
        if self.machine.timeout_seconds:
            tr.timers.append((now + self.machine.timeout_seconds, ["exec_timeout", "", 0]))
        self.enter(tr, self.top, self.machine.start_at, self.info.input)
        return tr

    def enter(self, tr: Transition, scope: Scope, name: str, raw_input: Any) -> None:
        """Enter ``name`` and evaluate inline states until a task, a wait or the end."""
        for _ in range(self.max_inline_states):
            state = scope.states[name]
            tr.event(_STATE_EVENTS[state.type][0], name, input=raw_input)
            try:
                step = self._evaluate(tr, scope, name, state, raw_input)
            except StatesError as exc:
                self._fail_scope(tr, scope, exc.error, exc.cause, name, raw_input)
                return
            if step is None:
                return
            name, raw_input = step
        self._fail_scope(
            tr,
            scope,
            "States.Runtime",
            f"more than {self.max_inline_states} consecutive states without a Task or Wait",
            name,
            raw_input,
        )

    def _evaluate(
        self, tr: Transition, scope: Scope, name: str, state: State, raw_input: Any
    ) -> tuple[str, Any] | None:
        """Evaluate one state; return (next state, its input) to keep going inline."""
        if isinstance(state, TaskState):
            self._schedule_task(tr, scope, name, state, raw_input)
            return None
        if isinstance(state, ParallelState | MapState):
            record = StepRecord(state=name, input=raw_input, entered=tr.now)
            self._start_container(tr, scope, name, state, record)
            return None
        ctx = self.context(name, tr.now)
        if isinstance(state, PassState):
            output = dataflow.pass_result(
                raw_input,
                input_path=state.input_path,
                parameters=state.parameters,
                result=state.result,
                has_result=state.has_result,
                result_path=state.result_path,
                output_path=state.output_path,
                context=ctx,
            )
            return self._exit(tr, scope, name, state, output)
        if isinstance(state, ChoiceState):
            data = dataflow.select_input(raw_input, state.input_path, ctx)
            target = choose(state, data, ctx)
            output = dataflow.select_output(data, state.output_path, ctx)
            tr.event("ChoiceStateExited", name, output=output)
            return target, output
        if isinstance(state, WaitState):
            self._start_wait(tr, scope, name, state, raw_input, ctx)
            return None
        if isinstance(state, SucceedState):
            data = dataflow.select_input(raw_input, state.input_path, ctx)
            output = dataflow.select_output(data, state.output_path, ctx)
            tr.event("SucceedStateExited", name, output=output)
            self._end_scope(tr, scope, output)
            return None
        if isinstance(state, FailState):
            error = state.error
            cause = state.cause
            if state.error_path:
                error = _as_text(read_path(raw_input, state.error_path, ctx, field="ErrorPath"))
            if state.cause_path:
                cause = _as_text(read_path(raw_input, state.cause_path, ctx, field="CausePath"))
            self._fail_scope(tr, scope, error, cause, name, raw_input)
            return None
        raise StatesRuntimeError(f"{state.type} states are not supported")

    def _exit(
        self, tr: Transition, scope: Scope, name: str, state: Any, output: Any
    ) -> tuple[str, Any] | None:
        """Record the exit of a state and follow its ``Next`` (or end its scope)."""
        tr.event(_STATE_EVENTS[state.type][1], name, output=output)
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

    # -- Wait ---------------------------------------------------------------------------

    def _start_wait(
        self,
        tr: Transition,
        scope: Scope,
        name: str,
        state: WaitState,
        raw_input: Any,
        ctx: Mapping[str, Any],
    ) -> None:
        data = dataflow.select_input(raw_input, state.input_path, ctx)
        if state.seconds_path or state.timestamp_path:
            path = state.seconds_path or state.timestamp_path
            assert path is not None
            value = read_path(
                data, path, ctx, field="SecondsPath" if state.seconds_path else "TimestampPath"
            )
        else:
            value = state.seconds if state.seconds is not None else state.timestamp
        if state.seconds is not None or state.seconds_path:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise StatesRuntimeError(
                    f"The SecondsPath parameter does not reference a valid integer value: {value!r}"
                    if state.seconds_path
                    else f"invalid Seconds value {value!r}"
                )
            due = tr.now + float(value)
        else:
            moment = parse_timestamp(value) if isinstance(value, str) else None
            if moment is None:
                raise StatesRuntimeError(
                    f"The TimestampPath parameter does not reference a valid ISO-8601 "
                    f"extended offset date-time format string: {value!r}"
                )
            due = moment.timestamp()
        key = scope.prefix + name
        record = StepRecord(state=name, input=data, entered=tr.now, kind="wait")
        tr.records[key] = record
        tr.statuses[key] = StepStatus.WAITING
        tr.timers.append((max(due, tr.now), ["wait", key, 0]))

    def wait_over(self, key: str, record: StepRecord, now: float) -> Transition:
        """A Wait state's time came: leave it."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, WaitState)
        tr.statuses[key] = StepStatus.SUCCEEDED
        tr.records[key] = None
        try:
            output = dataflow.select_output(
                record.input, state.output_path, self.context(name, now)
            )
        except StatesError as exc:
            self._fail_scope(tr, scope, exc.error, exc.cause, name, record.input)
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
        record: StepRecord | None = None,
    ) -> None:
        """Make a Task step SCHEDULED (a new entry, or the next attempt of ``record``)."""
        key = scope.prefix + name
        if record is None:
            record = StepRecord(state=name, input=raw_input, entered=tr.now)
        extra: dict[str, Any] = {}
        if state.resource.endswith(".waitForTaskToken"):
            if record.token:
                tr.tokens[record.token] = None
            record.token = self.new_token()
            extra["task_token"] = record.token
            tr.tokens[record.token] = [key, record.attempt]
        ctx = self.context(name, record.entered, record.attempt, **extra)
        params = dataflow.effective_input(
            raw_input, input_path=state.input_path, parameters=state.parameters, context=ctx
        )
        if is_lambda_invoke(state.resource):
            # The service-integration form: the function comes from the parameters and
            # the result is wrapped in Lambda's response envelope.
            if not isinstance(params, dict) or not isinstance(params.get("FunctionName"), str):
                raise StatesRuntimeError("lambda:invoke needs a FunctionName parameter")
            record.activity = self.resolve_name(params["FunctionName"])
            record.envelope = not state.resource.endswith(".waitForTaskToken")
            params = params.get("Payload", {})
        else:
            record.activity = self.resolve(state)
        record.params = params
        timeout = self._seconds(state.timeout_seconds, state.timeout_seconds_path, raw_input, ctx)
        record.timeout = tr.now + timeout if timeout else None
        tr.records[key] = record
        tr.statuses[key] = StepStatus.SCHEDULED
        tr.event(
            "TaskScheduled",
            name,
            resource=state.resource,
            parameters=params,
            timeoutInSeconds=timeout,
        )
        if record.timeout is not None:
            tr.timers.append((record.timeout, ["timeout", key, record.attempt]))
        heartbeat = self._seconds(
            state.heartbeat_seconds, state.heartbeat_seconds_path, raw_input, ctx
        )
        if heartbeat and record.token:
            tr.timers.append((tr.now + heartbeat, ["heartbeat", key, record.attempt]))
        tr.dispatches.append(Dispatch(key, name, record.activity, params))

    @staticmethod
    def _seconds(
        literal: Any, path: str | None, raw_input: Any, ctx: Mapping[str, Any]
    ) -> float | None:
        if path:
            value = read_path(raw_input, path, ctx)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise StatesRuntimeError(f"{path!r} gave {value!r}, not a positive number")
            return float(value)
        if isinstance(literal, int | float) and not isinstance(literal, bool):
            return float(literal)
        return None

    def task_succeeded(self, key: str, record: StepRecord, result: Any, now: float) -> Transition:
        """A task attempt returned ``result`` (or its task token was answered with it)."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, TaskState)
        if record.envelope:
            result = {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}
        tr.event("TaskSucceeded", name, output=result)
        tr.released.append(key)
        if record.token:
            tr.tokens[record.token] = None
        try:
            ctx = self.context(name, record.entered, record.attempt)
            output = dataflow.state_output(
                record.input,
                result,
                result_selector=state.result_selector,
                result_path=state.result_path,
                output_path=state.output_path,
                context=ctx,
            )
        except StatesError as exc:
            self._state_error(tr, scope, key, record, state, exc.error, exc.cause)
            return tr
        tr.statuses[key] = StepStatus.SUCCEEDED
        tr.records[key] = None
        self._continue_after(tr, scope, name, state, output)
        return tr

    def task_waiting(self, key: str, record: StepRecord, now: float) -> Transition:
        """A ``.waitForTaskToken`` activity returned: wait for the token's answer."""
        tr = Transition(now)
        tr.statuses[key] = StepStatus.WAITING
        tr.released.append(key)
        return tr

    def task_failed(
        self,
        key: str,
        record: StepRecord,
        error: str,
        cause: str,
        now: float,
        *,
        timed_out: bool = False,
    ) -> Transition:
        """A task attempt raised (or timed out): retry, catch, or fail the scope."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        tr.event("TaskTimedOut" if timed_out else "TaskFailed", name, error=error, cause=cause)
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
        error: str,
        cause: str,
    ) -> None:
        """A Task, Parallel or Map state failed: retry it, catch it, or fail its scope."""
        decision = next_retry(
            state.retry, error, {int(k): v for k, v in record.retries.items()}, rand=self.rand
        )
        if decision is not None:
            index = str(decision.retrier_index)
            record.retries[index] = record.retries.get(index, 0) + 1
            record.attempt += 1
            tr.records[key] = record
            tr.statuses[key] = StepStatus.RETRYING
            tr.timers.append((tr.now + decision.delay_seconds, ["retry", key, record.attempt]))
            return
        catcher_index = find_catcher(state.catch, error)
        if catcher_index is not None:
            catcher = state.catch[catcher_index]
            tr.statuses[key] = StepStatus.CAUGHT
            tr.records[key] = None
            if record.kind in ("parallel", "map"):
                self._clear_container(tr, key, record)
            try:
                next_input = dataflow.state_output(
                    record.input,
                    {"Error": error, "Cause": cause},
                    result_path=catcher.result_path,
                    context=self.context(record.state, record.entered),
                )
            except StatesError as exc:
                self._fail_scope(tr, scope, exc.error, exc.cause, record.state, record.input)
                return
            self.enter(tr, scope, catcher.next, next_input)
            return
        tr.statuses[key] = StepStatus.FAILED
        # The failed step keeps its record: redrive starts it again from there.
        tr.records[key] = record
        self._fail_scope(tr, scope, error, cause, record.state, record.input)

    def retry_due(self, key: str, record: StepRecord, now: float) -> Transition:
        """A retry's backoff is over: start the next attempt."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        try:
            if isinstance(state, TaskState):
                self._schedule_task(tr, scope, name, state, record.input, record=record)
            else:
                self._start_container(tr, scope, name, state, record)
        except StatesError as exc:
            tr.dispatches.clear()
            tr.timers.clear()
            self._state_error(tr, scope, key, record, state, exc.error, exc.cause)
        return tr

    # -- Parallel and Map ---------------------------------------------------------------

    def _start_container(
        self, tr: Transition, scope: Scope, name: str, state: Any, record: StepRecord
    ) -> None:
        key = scope.prefix + name
        ctx = self.context(name, record.entered, record.attempt)
        params = dataflow.effective_input(
            record.input,
            input_path=state.input_path,
            parameters=getattr(state, "parameters", None)
            if isinstance(state, ParallelState)
            else None,
            context=ctx,
        )
        if isinstance(state, ParallelState):
            record.kind, record.total = "parallel", len(state.branches)
            inputs: list[Any] = [params] * record.total
            window = record.total
            tr.event("ParallelStateStarted", name)
        else:
            items = (
                params
                if state.items_path is None
                else read_path(params, state.items_path, ctx, field="ItemsPath")
            )
            if not isinstance(items, list):
                raise StatesRuntimeError(
                    f"Map state input must be an array, got {type(items).__name__} at ItemsPath"
                )
            record.kind, record.total = "map", len(items)
            inputs = [
                self._item_input(state, name, record, params, i, v) for i, v in enumerate(items)
            ]
            limit = self._map_concurrency(state, params, ctx)
            window = min(record.total, limit or MAP_WINDOW)
            tr.event("MapStateStarted", name, length=record.total)
            for i, value in enumerate(inputs[window:], start=window):
                tr.fields[f"{key}|i{i}"] = _dumps(value)
            tr.fields[f"{key}|next"] = str(window)
            tr.fields[f"{key}|f"] = "0"
        record.params = None
        tr.records[key] = record
        tr.statuses[key] = StepStatus.RUNNING
        tr.fields[f"{key}|n"] = "0"
        tr.fields[f"{key}|t"] = str(record.total)
        if record.total == 0:
            self._finish_container(tr, scope, key, record, state, [])
            return
        for i in range(window):
            if tr.statuses.get(key) != StepStatus.RUNNING:
                break  # a branch failed inline and took the container down
            self._start_branch(tr, key, state, i, inputs[i])

    def _start_branch(self, tr: Transition, key: str, state: Any, index: int, value: Any) -> None:
        if isinstance(state, ParallelState):
            branch = state.branches[index]
        else:
            branch = state.item_processor
            tr.event("MapIterationStarted", state_name(key), index=index)
        child = Scope(f"{key}[{index}]/", branch.states, key, index)
        self.enter(tr, child, branch.start_at, value)

    def _item_input(
        self, state: MapState, name: str, record: StepRecord, params: Any, index: int, value: Any
    ) -> Any:
        selector = state.item_selector if state.item_selector is not None else state.parameters
        if selector is None:
            return value
        ctx = self.context(name, record.entered, record.attempt, map_item=(index, value))
        return dataflow.apply_template(selector, params, ctx)

    @staticmethod
    def _map_concurrency(state: MapState, params: Any, ctx: Mapping[str, Any]) -> int:
        value: Any = state.max_concurrency
        if state.max_concurrency_path:
            value = read_path(params, state.max_concurrency_path, ctx)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StatesRuntimeError(
                f"MaxConcurrency must be a non-negative integer, got {value!r}"
            )
        return value

    def _end_scope(self, tr: Transition, scope: Scope, output: Any) -> None:
        if scope.container is None:
            tr.event("ExecutionSucceeded", output=output)
            tr.end = {"status": "SUCCEEDED", "output": output}
            return
        key = scope.container
        container_scope, name = self.scope_of(key)
        state = container_scope.states[name]
        if isinstance(state, MapState):
            tr.event("MapIterationSucceeded", name, index=scope.index)
            self._start_next_item(tr, key, state)
        tr.fields[f"{key}|r{scope.index}"] = _dumps(output)
        tr.joins.append(key)

    def _start_next_item(self, tr: Transition, key: str, state: MapState) -> None:
        raw = self._field(tr, f"{key}|next")
        total = self._field(tr, f"{key}|t")
        if raw is None or total is None:
            return
        index = int(raw)
        if index < int(total):
            tr.fields[f"{key}|next"] = str(index + 1)
            value = self._field(tr, f"{key}|i{index}")
            tr.fields[f"{key}|i{index}"] = None
            self._start_branch(tr, key, state, index, json.loads(value) if value else None)

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
            return
        key = scope.container
        container_scope, name = self.scope_of(key)
        container = container_scope.states[name]
        if isinstance(container, MapState):
            tr.event("MapIterationFailed", name, index=scope.index, error=error, cause=cause)
            if self._tolerated(tr, key, container):
                self._start_next_item(tr, key, container)
                tr.fields[f"{key}|r{scope.index}"] = _dumps({"Error": error, "Cause": cause})
                tr.joins.append(key)
                return
        self._mark_failure(tr, scope, state, state_input)
        pending = tr.records.get(key)
        record_text = pending.dumps() if pending is not None else self.reader.get(key)
        if record_text is None or tr.statuses.get(key, StepStatus.RUNNING) != StepStatus.RUNNING:
            return  # the container already failed in this transition
        record = StepRecord.loads(record_text)
        # Branches of this container still to be started in this transition never will be.
        inside = f"{key}["
        tr.dispatches[:] = [d for d in tr.dispatches if not d.step_key.startswith(inside)]
        if isinstance(container, MapState) and self._has_tolerance(container):
            error = "States.ExceedToleratedFailureThreshold"
            cause = "The specified tolerated failure threshold was exceeded"
        tr.event(f"{container.type}StateFailed", name, error=error, cause=cause)
        self._state_error(tr, container_scope, key, record, container, error or "", cause or "")

    @staticmethod
    def _mark_failure(tr: Transition, scope: Scope, state: str | None, state_input: Any) -> None:
        # Where this scope failed, so that a redrive can enter that state again.
        if state is not None:
            tr.fields[f"{scope.container or ''}|x{scope.index}"] = _dumps([state, state_input])

    def _field(self, tr: Transition, name: str) -> str | None:
        """A step-hash field as this transition would leave it."""
        if name in tr.fields:
            return tr.fields[name]
        return self.reader.get(name)

    @staticmethod
    def _has_tolerance(state: MapState) -> bool:
        return any(
            value is not None
            for value in (
                state.tolerated_failure_count,
                state.tolerated_failure_count_path,
                state.tolerated_failure_percentage,
                state.tolerated_failure_percentage_path,
            )
        )

    def _tolerated(self, tr: Transition, key: str, state: MapState) -> bool:
        count = state.tolerated_failure_count
        percentage = state.tolerated_failure_percentage
        if not isinstance(count, int | float) and not isinstance(percentage, int | float):
            return False
        failures = int(self._field(tr, f"{key}|f") or 0) + 1
        total = int(self._field(tr, f"{key}|t") or 1)
        ok_count = isinstance(count, int | float) and failures <= count
        ok_pct = (
            isinstance(percentage, int | float) and failures * 100 / max(total, 1) <= percentage
        )
        if ok_count or ok_pct:
            tr.fields[f"{key}|f"] = str(failures)
            return True
        return False

    def _clear_container(self, tr: Transition, key: str, record: StepRecord) -> None:
        for suffix in ("n", "t", "next", "f"):
            tr.fields[f"{key}|{suffix}"] = None
        for i in range(record.total):
            tr.fields[f"{key}|r{i}"] = None
            tr.fields[f"{key}|i{i}"] = None
            tr.fields[f"{key}|x{i}"] = None

    def join(self, key: str, record: StepRecord, now: float) -> Transition:
        """Every branch or item of a container ended: compute its output and go on."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        raw = self.reader.get_many([f"{key}|r{i}" for i in range(record.total)])
        results = [json.loads(r) if r is not None else None for r in raw]
        self._finish_container(tr, scope, key, record, state, results)
        return tr

    def _finish_container(
        self,
        tr: Transition,
        scope: Scope,
        key: str,
        record: StepRecord,
        state: Any,
        results: list[Any],
    ) -> None:
        name = state_name(key)
        self._clear_container(tr, key, record)
        tr.event(f"{state.type}StateSucceeded", name)
        try:
            output = dataflow.state_output(
                record.input,
                results,
                result_selector=state.result_selector,
                result_path=state.result_path,
                output_path=state.output_path,
                context=self.context(name, record.entered, record.attempt),
            )
        except StatesError as exc:
            self._state_error(tr, scope, key, record, state, exc.error, exc.cause)
            return
        tr.statuses[key] = StepStatus.SUCCEEDED
        tr.records[key] = None
        self._continue_after(tr, scope, name, state, output)

    # -- execution-level ----------------------------------------------------------------

    def timed_out(self, now: float) -> Transition:
        """The state machine's ``TimeoutSeconds`` ran out."""
        tr = Transition(now)
        cause = f"execution exceeded its TimeoutSeconds of {self.machine.timeout_seconds}"
        tr.event("ExecutionTimedOut", error="States.Timeout", cause=cause)
        tr.end = {"status": "TIMED_OUT", "error": "States.Timeout", "cause": cause}
        return tr


#: Resources of the Lambda service integration (optionally with the callback pattern).
LAMBDA_INVOKE = (
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::lambda:invoke.waitForTaskToken",
)


def is_lambda_invoke(resource: str) -> bool:
    """True for ``arn:aws:states:::lambda:invoke`` (and its ``.waitForTaskToken`` form)."""
    return resource in LAMBDA_INVOKE


def state_name(step_key: str) -> str:
    """The state name of a step key."""
    return step_key.rpartition("/")[2]


def ancestors(step_key: str) -> list[str]:
    """Step keys of the Parallel and Map states a step runs in, outermost first."""
    parts = step_key.split("/")[:-1]
    keys = []
    for depth, part in enumerate(parts):
        keys.append("/".join([*parts[:depth], part.rpartition("[")[0]]))
    return keys


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
