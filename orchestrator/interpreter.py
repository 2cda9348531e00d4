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
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
)
from orchestrator.errors import StatesError
from orchestrator.paths import read_path
from orchestrator.retry import find_catcher, next_retry

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
    ) -> None:
        self.machine = machine
        self.info = info
        self.resolve = resolve
        self.max_inline_states = max_inline_states
        self.rand = rand
        self.top = Scope("", machine.states)

    # -- scopes and context -------------------------------------------------------------

    def scope_of(self, step_key: str) -> tuple[Scope, str]:
        """Split a step key into its scope and state name."""
        prefix, _, name = step_key.rpartition("/")
        if not prefix:
            return self.top, step_key
        states: Mapping[str, State] = self.machine.states
        for part in prefix.split("/"):
            container_name, _, index = part.rpartition("[")
            container = states[container_name]
            branch = self._branch(container, int(index.rstrip("]")))
            states = branch.states
        return Scope(prefix + "/", states), name

    @staticmethod
    def _branch(container: State, index: int) -> Branch:
        branches = getattr(container, "branches", None)
        if branches is not None:
            return branches[index]  # type: ignore[no-any-return]
        return container.item_processor  # type: ignore[union-attr,no-any-return]

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
        self.enter(tr, self.top, self.machine.start_at, self.info.input)
        return tr

    def enter(self, tr: Transition, scope: Scope, name: str, raw_input: Any) -> None:
        """Enter ``name`` and evaluate inline states until a task, a wait or the end."""
        for _ in range(self.max_inline_states):
            state = scope.states[name]
            entered_event = _STATE_EVENTS[state.type][0]
            tr.event(entered_event, name, input=raw_input)
            try:
                step = self._evaluate(tr, scope, name, state, raw_input)
            except StatesError as exc:
                self._fail_scope(tr, scope, exc.error, exc.cause)
                return
            if step is None:
                return
            name, raw_input = step
        # A loop of inline states only: hand over to a fresh transition rather than
        # growing this one without bound.
        raise StatesError(
            f"more than {self.max_inline_states} consecutive states without a Task",
            error="States.Runtime",
        )

    def _evaluate(
        self, tr: Transition, scope: Scope, name: str, state: State, raw_input: Any
    ) -> tuple[str, Any] | None:
        """Evaluate one state; return (next state, its input) to keep going inline."""
        if isinstance(state, TaskState):
            self._schedule_task(tr, scope, name, state, raw_input)
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
                error = _as_text(read_path(raw_input, state.error_path, ctx))
            if state.cause_path:
                cause = _as_text(read_path(raw_input, state.cause_path, ctx))
            self._fail_scope(tr, scope, error, cause)
            return None
        raise StatesError(
            f"{state.type} states are not supported by this engine yet", error="States.Runtime"
        )

    def _exit(
        self, tr: Transition, scope: Scope, name: str, state: Any, output: Any
    ) -> tuple[str, Any] | None:
        """Record the exit of a state and follow its ``Next`` (or end its scope)."""
        tr.event(_STATE_EVENTS[state.type][1], name, output=output)
        if state.end:
            self._end_scope(tr, scope, output)
            return None
        return state.next, output

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
        ctx = self.context(name, record.entered, record.attempt)
        params = dataflow.effective_input(
            raw_input, input_path=state.input_path, parameters=state.parameters, context=ctx
        )
        record.params = params
        record.activity = self.resolve(state)
        timeout = self._timeout_seconds(state, raw_input, ctx)
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
        tr.dispatches.append(Dispatch(key, name, record.activity, params))

    @staticmethod
    def _timeout_seconds(state: TaskState, raw_input: Any, ctx: Mapping[str, Any]) -> float | None:
        if state.timeout_seconds_path:
            value = read_path(raw_input, state.timeout_seconds_path, ctx)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise StatesError(
                    f"TimeoutSecondsPath {state.timeout_seconds_path!r} gave {value!r}, "
                    "not a positive number",
                    error="States.Runtime",
                )
            return float(value)
        if isinstance(state.timeout_seconds, int | float):
            return float(state.timeout_seconds)
        return None

    def task_succeeded(self, key: str, record: StepRecord, result: Any, now: float) -> Transition:
        """A task attempt returned ``result``."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, TaskState)
        tr.event("TaskSucceeded", name, output=result)
        tr.released.append(key)
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
            self._task_error(tr, scope, key, record, state, exc.error, exc.cause)
            return tr
        tr.statuses[key] = StepStatus.SUCCEEDED
        tr.records[key] = None
        step = self._exit(tr, scope, name, state, output)
        if step is not None:
            self.enter(tr, scope, *step)
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
        assert isinstance(state, TaskState)
        tr.event("TaskTimedOut" if timed_out else "TaskFailed", name, error=error, cause=cause)
        tr.released.append(key)
        self._task_error(tr, scope, key, record, state, error, cause)
        return tr

    def _task_error(
        self,
        tr: Transition,
        scope: Scope,
        key: str,
        record: StepRecord,
        state: TaskState,
        error: str,
        cause: str,
    ) -> None:
        if True:
            decision = next_retry(
                state.retry,
                error,
                {int(k): v for k, v in record.retries.items()},
                rand=self.rand,
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
                try:
                    next_input = dataflow.state_output(
                        record.input,
                        {"Error": error, "Cause": cause},
                        result_path=catcher.result_path,
                        context=self.context(state_name(key), record.entered),
                    )
                except StatesError as exc:
                    self._fail_scope(tr, scope, exc.error, exc.cause)
                    return
                self.enter(tr, scope, catcher.next, next_input)
                return
        tr.statuses[key] = StepStatus.FAILED
        tr.records[key] = None
        self._fail_scope(tr, scope, error, cause)

    def retry_due(self, key: str, record: StepRecord, now: float) -> Transition:
        """A retry's backoff is over: schedule the next attempt."""
        tr = Transition(now)
        scope, name = self.scope_of(key)
        state = scope.states[name]
        assert isinstance(state, TaskState)
        try:
            self._schedule_task(tr, scope, name, state, record.input, record=record)
        except StatesError as exc:
            tr.dispatches.clear()
            tr.timers.clear()
            self._task_error(tr, scope, key, record, state, exc.error, exc.cause)
        return tr

    # -- ends ---------------------------------------------------------------------------

    def _end_scope(self, tr: Transition, scope: Scope, output: Any) -> None:
        if scope.prefix:
            raise NotImplementedError("branch scopes end through the join")
        tr.event("ExecutionSucceeded", output=output)
        tr.end = {"status": "SUCCEEDED", "output": output}

    def _fail_scope(self, tr: Transition, scope: Scope, error: str | None, cause: str | None) -> None:
        if scope.prefix:
            raise NotImplementedError("branch scopes fail through the join")
        tr.event("ExecutionFailed", error=error, cause=cause)
        tr.end = {"status": "FAILED", "error": error, "cause": cause}


def state_name(step_key: str) -> str:
    """The state name of a step key."""
    return step_key.rpartition("/")[2]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
