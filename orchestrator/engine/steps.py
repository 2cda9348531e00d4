"""Steps in workers: the body of every activity task, and the orchestrator's own tasks.

An activity's Celery task claims its step (a duplicate message stops here), runs the
function while :mod:`orchestrator.engine.leases` keeps the step's lease alive, and
commits the result through :mod:`orchestrator.engine.commit`. When the next step is the
rest of this message's Celery chain, the task returns its input instead of publishing it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task

from orchestrator.config import get_settings
from orchestrator.engine import activities, integrations, jobs, waiting
from orchestrator.engine.celery_app import app
from orchestrator.engine.commit import DEAD_LETTER_TASK, run_transition
from orchestrator.engine.context import ActivityContext, push_heartbeat, running
from orchestrator.engine.dead_letters import dead_letter_message
from orchestrator.engine.history import encode_event
from orchestrator.engine.leases import leases
from orchestrator.engine.logs import step_context
from orchestrator.engine.machines import interpreter_for, load_machine, make_interpreter
from orchestrator.engine.metrics import observe_step
from orchestrator.engine.publisher import (
    PUBLISH_CHUNK,
    Handover,
    deferred_marks,
    mark_published,
    publish,
    unmarked,
)
from orchestrator.engine.store import get_store
from orchestrator.errors import StatesError
from orchestrator.language.interpreter import (
    Dispatch,
    ExecutionInfo,
    StepRecord,
    Transition,
    ancestors,
    data_limit_cause,
    state_name,
)
from orchestrator.language.jobs import job_for
from orchestrator.language.jsontext import checked_dumps
from orchestrator.language.slots import Slot

logger = logging.getLogger("orchestrator.engine.steps")


@app.task(name=DEAD_LETTER_TASK, ignore_result=True)
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
    [[step_key, state, activity, params], ...], priority]`` (the execution's: its
    messages carry it; an entry from before priorities has none and gets the default).
    Beat marked the steps published when it sent this message (it carries them); a chunk
    lost before then loses nothing: its steps are in the outbox, and the reconciler sends
    them again within the lease.
    """
    store = get_store()
    published: list[str] = []
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_CHUNK):
        for execution_id, def_hash, items, *rest in batch:
            machine, _ = load_machine(store, execution_id, def_hash)
            priority = rest[0] if rest else None
            info = ExecutionInfo(execution_id, "", "", 0.0, None, priority=priority)
            interp = make_interpreter(machine, info)
            dispatches = [Dispatch(*item) for item in items]
            publish(interp, execution_id, dispatches, producer=producer, published=published)
    # Again, now that they are in the broker: beat may have died before its own mark.
    mark_published(published, store)


# -- steps in workers -------------------------------------------------------------------


@activities.install_step_runner
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
        # In milliseconds, rounded as every other event's (Interpreter.event): at full
        # precision it could read as later than the events its commit writes after it.
        "ts": round(now, 3),
        "state": state_name(step_key),
    }
    if started_event["state"] != step_key:  # as Interpreter.event: a branch's or item's
        started_event["key"] = step_key  # event names its step, as one of an escaped name
    builtin = integrations.by_task_name(task.name)
    if builtin is not None and not builtin.family:
        # As Step Functions writes an integration's TaskStarted (a family's, aws-sdk's,
        # names its action only in the definition, read after the claim).
        service, _, action = builtin.name.partition(":")
        started_event.update(resourceType=service, resource=action)
    # Its timestamp as it is: the execution's start (the base of the others') is not
    # known before the claim.
    started = encode_event(started_event, None)
    containers = ancestors(step_key)
    container = containers[-1] if containers else ""
    # The claim also marks what this process published since its last one (claim.lua).
    marks = unmarked.take(store, store.keys.partition_of(execution_id))
    try:
        claimed, details = store.claim_step(
            execution_id,
            step_key,
            token,
            now + settings.lease_seconds,
            started,
            container,
            marks,
            now + settings.dispatch_timeout_seconds,
        )
    except Exception:
        unmarked.put_back(store, marks)
        raise
    if not claimed and details[0] == "no execution":
        dead_letter_message(
            "ExecutionNotFound",
            f"step message for unknown execution {execution_id!r}",
            message_input,
            execution_id=execution_id,
            state=state_name(step_key),
        )
    if not claimed and str(details[0]).startswith(("no execution", "execution ")):
        # It can never run: its permit, if it holds one, goes on (a duplicate of a
        # running step keeps it).
        waiting.release_step(store, task.name, execution_id, step_key)
    if not claimed:
        logger.info(
            "dropping duplicate or stale step message %s/%s (%s)",
            execution_id,
            step_key,
            details[0],
        )
        Handover(task.request).cut()
        return None
    (record_text, status, name, workflow, start, def_hash, history_length, priority) = details[:8]
    next_item, total = details[8:]
    known: dict[Slot, str | None] = {}
    if next_item is not None and total is not None and int(next_item) >= int(total):
        # Every item of the Map this step runs in has started: when this iteration ends,
        # it starts no other, and needs no read of the window to learn that.
        known = {Slot.next_item(container): next_item, Slot.total(container): total}
    record = StepRecord.loads(record_text)  # type: ignore[arg-type]
    interp = interpreter_for(store, execution_id, name, workflow, start, def_hash, priority)  # type: ignore[arg-type]
    result: Any = None
    began = time.monotonic()
    context = ActivityContext(
        execution_id,
        step_key,
        record.attempt,
        record.token,
        record.heartbeat,
        store,
        _resource(interp, step_key) if builtin is not None else None,
    )
    if record.heartbeat:
        # The time the message waited in its queue does not count: the clock starts now.
        push_heartbeat(store, execution_id, step_key, record.attempt, record.heartbeat)
    with leases.holding(execution_id, step_key, context, token, task.request):
        try:
            with running(context):
                result = function(record.params)
            _check_result(record.state, result, settings.max_input_bytes)
        except Exception as exc:  # noqa: BLE001 - every activity error is a workflow error
            error, cause = error_of(exc)
            failure: tuple[str, str] | None = (error, cause)
        else:
            failure = None
    # This worker's step metrics (orchestrator_step_duration_seconds and failures).
    observe_step(task.name, time.monotonic() - began, failure[0] if failure else None)

    def compute() -> Transition:
        now = time.time()
        fresh = StepRecord.loads(record_text)  # type: ignore[arg-type]
        if failure is not None:
            return interp.task_failed(step_key, fresh, failure[0], failure[1], now)
        if fresh.token:
            return interp.task_waiting(step_key, fresh, now, result)
        if builtin is not None and job_for(builtin.name) is not None:
            # A .sync job started: the Task waits for its polls (engine/jobs.py).
            return jobs.started_transition(interp, step_key, fresh, result, now)
        return interp.task_succeeded(step_key, fresh, result, now)

    handover = Handover(task.request)
    # The lease is renewed until the result is committed too: a commit retried through a
    # Redis hiccup can outlast it, and the reconciler would then run the step again.
    # (Not watched for cancellation any more: the activity has ended.)
    with leases.holding(execution_id, step_key), deferred_marks():
        tr = run_transition(
            store,
            execution_id,
            interp,
            compute,
            step_key=step_key,
            step_status=status,
            handover=handover,
            history_base=int(history_length),  # type: ignore[arg-type]
            known=known,
        )
    # Its permit (max_concurrency) goes to the next waiting step.
    waiting.release_step(store, task.name, execution_id, step_key)
    if tr is None:
        logger.info(
            "discarding late result of %s/%s%s",
            execution_id,
            step_key,
            f" (cancelled: {context.cancel_reason})" if context.cancelled else "",
        )
        handover.cut()
    return handover.value


def _resource(interp: Any, step_key: str) -> str | None:
    """The Resource of the Task state a step runs (an integration serving many reads
    which one from it), or None."""
    try:
        scope, name = interp.scope_of(step_key)
        return getattr(scope.states[name], "resource", None)
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


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
