"""Operations on running and ended executions: callbacks, stop, redrive, dead letters.

All of them work from any process that reaches the orchestrator's Redis; each is one
guarded transition, so racing callers (two approvals, a stop during a step) cannot move
an execution twice.
"""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.client.api import ExecutionHandle
from orchestrator.client.inputs import (
    EXECUTION_NAME,
    MAX_CAUSE_CHARS,
    MAX_ERROR_CHARS,
    caller_text,
    input_text,
    known_id,
)
from orchestrator.client.models import DeadLetter, to_datetime
from orchestrator.config import get_settings
from orchestrator.engine import maprun
from orchestrator.engine.commit import prepare_redrive, run_transition
from orchestrator.engine.context import push_heartbeat
from orchestrator.engine.dead_letters import dead_letter_message as dead_letter_message
from orchestrator.engine.dead_letters import trim_dead_letters as trim_dead_letters
from orchestrator.engine.machines import interpreter_from_record
from orchestrator.engine.publisher import publish
from orchestrator.engine.records import base_status
from orchestrator.engine.store import RedisStore, get_store, store_call
from orchestrator.errors import (
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidInputError,
    TaskTokenError,
)
from orchestrator.language.interpreter import (
    StepRecord,
    StepStatus,
    Transition,
)
from orchestrator.language.tokens import execution_of

#: Statuses from which an execution can be redriven.
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")


# -- task tokens ------------------------------------------------------------------------


def _token_target(store: RedisStore, token: str) -> tuple[str, str, int]:
    if not isinstance(token, str) or not token:
        raise TaskTokenError("empty token")
    execution_id = execution_of(token)
    # A token lives in its execution's token hash while its task waits: it goes when
    # the task ends (answered, failed, timed out) and with all others when the
    # execution ends (stopped, failed, timed out, succeeded).
    target = None if execution_id is None else store.task_token_target(execution_id, token)
    if execution_id is None or target is None:
        raise TaskTokenError("unknown, already used, or its task is no longer waiting")
    step_key, attempt = target
    return execution_id, step_key, attempt


#: How often an answer is tried again when its step moved on under it. A step that waits
#: for a token moves at most SCHEDULED -> RUNNING -> WAITING while the token is valid:
#: an answer can arrive before the worker that sent the token has committed that it waits.
_ANSWER_TRIES = 4


def _answer(token: str, compute_kind: str, payload: Any) -> None:
    store = get_store()
    for _ in range(_ANSWER_TRIES):
        if _try_answer(store, token, compute_kind, payload):
            return
    raise TaskTokenError("its task is no longer waiting (answered, timed out or stopped)")


def _try_answer(store: RedisStore, token: str, compute_kind: str, payload: Any) -> bool:
    """Answer once; False when the step's status changed between the read and the commit
    (the token still valid: read again), raises when the token no longer applies."""
    execution_id, step_key, attempt = _token_target(store, token)
    interp = interpreter_from_record(store, execution_id)
    if interp is None:
        raise TaskTokenError("its execution no longer exists")
    status, record_text = store.step_state(execution_id, step_key)
    if record_text is None or status is None:
        raise TaskTokenError("its task is no longer waiting")
    if base_status(status) not in (StepStatus.WAITING, StepStatus.RUNNING, StepStatus.SCHEDULED):
        raise TaskTokenError("its task is no longer waiting")

    def compute() -> Transition | None:
        record = StepRecord.loads(record_text)
        if record.token != token or record.attempt != attempt:
            return None
        now = time.time()
        if compute_kind == "success":
            return interp.task_succeeded(step_key, record, payload, now)
        error, cause = payload
        return interp.task_failed(step_key, record, error, cause, now)

    return (
        run_transition(store, execution_id, interp, compute, step_key=step_key, step_status=status)
        is not None
    )


@store_call(mutates=True)
def send_task_success(token: str, output: Any = None) -> None:
    """Complete a ``.waitForTaskToken`` task with ``output`` (its result).

    Raises:
        TaskTokenError: the token is unknown, spent, or its task no longer waits.
        InvalidInputError: ``output`` is not JSON or too large.
    """
    text = input_text(output, get_settings().max_input_bytes, "task output")
    _answer(token, "success", json.loads(text))


@store_call(mutates=True)
def send_task_failure(token: str, error: str | None = None, cause: str | None = None) -> None:
    """Fail a ``.waitForTaskToken`` task with ``error`` and ``cause`` (Retry/Catch apply).

    Raises:
        TaskTokenError: the token is unknown, spent, or its task no longer waits.
    """
    error = caller_text(error, "error", MAX_ERROR_CHARS)
    cause = caller_text(cause, "cause", MAX_CAUSE_CHARS)
    _answer(token, "failure", (error or "States.TaskFailed", cause or ""))


@store_call(mutates=True)
def send_task_heartbeat(token: str) -> None:
    """Tell a waiting task with ``HeartbeatSeconds`` that its worker is still at it.

    Raises:
        TaskTokenError: the token is unknown, spent, or its task no longer waits.
    """
    store = get_store()
    execution_id, step_key, attempt = _token_target(store, token)
    _, record_text = store.step_state(execution_id, step_key)
    record = StepRecord.loads(record_text) if record_text else None
    # HeartbeatSeconds as evaluated when the task was scheduled (a record written before
    # records kept them: the state's literal value).
    seconds: Any = record.heartbeat if record is not None else None
    if not seconds:
        interp = interpreter_from_record(store, execution_id)
        if interp is None:
            raise TaskTokenError("its execution no longer exists")
        scope, name = interp.scope_of(step_key)
        seconds = getattr(scope.states[name], "heartbeat_seconds", None)
    if isinstance(seconds, int | float) and seconds > 0:
        # The timer an activity's activity_context().heartbeat() pushes back too; only
        # one that is still pending is pushed back.
        if not push_heartbeat(store, execution_id, step_key, attempt, seconds):
            raise TaskTokenError("its task is no longer waiting")


# -- stop -------------------------------------------------------------------------------


@store_call(mutates=True)
def stop_execution(execution_id: str, error: str | None = None, cause: str | None = None) -> None:
    """Abort a running execution at once; nothing pending moves it afterwards.

    Raises:
        ExecutionNotFound: no such execution.
        InvalidExecutionState: it is not running.
        InvalidInputError: ``error`` or ``cause`` is not a string UTF-8 can carry, or too long.
    """
    execution_id = known_id(execution_id)
    error = caller_text(error, "error", MAX_ERROR_CHARS)
    cause = caller_text(cause, "cause", MAX_CAUSE_CHARS)
    store = get_store()
    status = store.execution_status(execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id)
    if status != "RUNNING":
        raise InvalidExecutionState(execution_id, status, "stop")
    # Its Distributed Maps' Runs end in the same write (MapRunAborted), their children after.
    if not maprun.stop_execution(store, execution_id, error, cause, time.time()):
        now_status = store.execution_status(execution_id)
        raise InvalidExecutionState(execution_id, str(now_status), "stop")


# -- redrive ----------------------------------------------------------------------------


@store_call(mutates=True)
def redrive_execution(execution_id: str) -> ExecutionHandle:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from what did not succeed.

    Like Step Functions' RedriveExecution: the same execution id; succeeded steps are not
    run again; a Map or Parallel runs again only its unfinished items and branches; the
    dead letter is removed and ``ExecutionRedriven`` joins the history.

    Raises:
        ExecutionNotFound: no such execution.
        InvalidExecutionState: it is running or succeeded.
    """
    execution_id = known_id(execution_id)
    store = get_store()
    status = store.execution_status(execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id)
    if status not in REDRIVABLE:
        raise InvalidExecutionState(execution_id, status, "redrive")
    redrive = prepare_redrive(store, execution_id, status, time.time())
    if redrive is None:
        raise ExecutionNotFound(execution_id)
    interp, tr, write = redrive.interp, redrive.tr, redrive.write
    result = store.apply(write)
    if not result.ok:
        raise InvalidExecutionState(execution_id, "changed", "redrive")
    publish(interp, execution_id, tr.dispatches)
    return ExecutionHandle(execution_id, store)


# -- dead letters -----------------------------------------------------------------------


@store_call(mutates=False)
def list_dead_letters(limit: int = 100, *, cursor: int = 0) -> list[DeadLetter]:
    """Dead letters, newest first: up to ``limit`` of them from position ``cursor`` of the
    index by time (the number listed before: ``cursor=len(letters so far)`` pages on).

    Reads a page of the index and the page's letters, so its cost follows ``limit``, not
    how many letters are kept; ids whose letters expired are dropped from the index and
    the page is filled from the next entries.
    """
    if limit <= 0:
        raise InvalidInputError("limit must be positive")
    if cursor < 0:
        raise InvalidInputError("cursor must not be negative")
    store = get_store()
    found: list[DeadLetter] = []
    position = cursor
    while len(found) < limit:
        ids = store.dead_letter_ids(limit - len(found), position)
        if not ids:
            break
        raw = store.dead_letter_texts(ids)
        expired = [i for i, r in zip(ids, raw, strict=True) if r is None]
        if expired:  # their retention ran out: drop them from the index too
            store.forget_dead_letters(*expired)
        # Dropped ids left the index: what follows moved up to the position after the rest.
        position += len(ids) - len(expired)
        found += [_letter(i, r) for i, r in zip(ids, raw, strict=True) if r is not None]
    return found


@store_call(mutates=False)
def get_dead_letter(letter_id: str) -> DeadLetter:
    """One dead letter (its id is the execution id, or ``msg-...`` for a bad message).

    Raises:
        LookupError: no such dead letter.
    """
    if not isinstance(letter_id, str) or not EXECUTION_NAME.match(letter_id):
        raise LookupError(f"no dead letter {letter_id!r}")
    store = get_store()
    raw = store.dead_letter_text(letter_id)
    if raw is None:
        raise LookupError(f"no dead letter {letter_id!r}")
    return _letter(letter_id, raw)


def _letter(letter_id: str, raw: str) -> DeadLetter:
    data = json.loads(raw)
    return DeadLetter(
        id=letter_id,
        execution_id=data.get("execution_id"),
        state=data.get("state"),
        error=data.get("error"),
        cause=data.get("cause"),
        input=data.get("input"),
        timestamp=to_datetime(data.get("timestamp", 0)),
    )
