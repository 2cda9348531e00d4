"""Job integrations with ``.sync``: polling a started job with timers, no worker held.

The Task's attempt runs on a worker like any integration: it starts the job
(orchestrator/engine/integrations/aws_jobs.py) and its commit
(:func:`orchestrator.language.jobs.started`) writes
``TaskSubmitted``, makes the step WAITING, releases the worker and sets a ``jobpoll``
timer. Then, until the job ends:

1. beat fires the due timer (:func:`fire`): it pushes the timer back by
   :data:`CLAIM_S` and sends one ``orchestrator.jobpoll`` message; nothing else (beat
   makes no AWS call);
2. a worker takes it (:func:`poll_task`), pushes the timer back again (gone: a copy of
   the message did the poll already, and this one stops here), describes the job once,
   and commits, guarded by the timer and the step as read, either the next poll's timer
   (:func:`~orchestrator.language.jobs.polled`, the interval
   growing from ``ORCHESTRATOR_JOB_POLL_SECONDS`` to ``ORCHESTRATOR_JOB_POLL_MAX_SECONDS``)
   or the Task's end (:func:`~orchestrator.language.jobs.ended`).
   A message lost, or a worker dead mid-poll, leaves the timer due again after
   :data:`CLAIM_S`; a poll delivered twice moves the Task once (the second finds the
   timer gone, or fails the commit's guard on it).

When a poll finds its Task no longer waiting on that job — the execution stopped or
ended, the Task timed out (``TimeoutSeconds``, ``HeartbeatSeconds``) and was retried or
caught — it stops the job (StopQueryExecution, BatchStopJobRun, TerminateJob, StopTask,
StopBuild), as Step Functions does, and drops its timer. The poll timer's member names
the job, so that holds even after a retry started another.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from orchestrator.config import get_settings
from orchestrator.engine.celery_app import app
from orchestrator.engine.commit import run_transition
from orchestrator.engine.integrations import aws_jobs
from orchestrator.engine.logs import step_context
from orchestrator.engine.machines import interpreter_from_record
from orchestrator.engine.records import base_status, parse_timer_member
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.errors import StatesError
from orchestrator.language import jobs
from orchestrator.language.interpreter import (
    Interpreter,
    StepRecord,
    StepStatus,
    Transition,
    state_name,
)

logger = logging.getLogger("orchestrator.engine.jobs")

#: The Celery task of one poll.
POLL_TASK = "orchestrator.jobpoll"
#: A poll sent (beat) or begun (a worker) pushes its timer back this long: if nothing
#: commits by then (a lost message, a dead worker), the timer fires again.
CLAIM_S = 60.0
#: Polling intervals by default, in seconds: the first poll after the start, growing by
#: half each poll up to the second.
DEFAULT_POLL_S = 5.0
DEFAULT_POLL_MAX_S = 60.0


def poll_intervals() -> tuple[float, float]:
    """``(first, most)`` seconds between polls: ``ORCHESTRATOR_JOB_POLL_SECONDS`` and
    ``ORCHESTRATOR_JOB_POLL_MAX_SECONDS`` (5 and 60 by default)."""
    first = float(os.environ.get("ORCHESTRATOR_JOB_POLL_SECONDS") or DEFAULT_POLL_S)
    most = float(os.environ.get("ORCHESTRATOR_JOB_POLL_MAX_SECONDS") or DEFAULT_POLL_MAX_S)
    if not first > 0 or not most > 0:
        raise ValueError("ORCHESTRATOR_JOB_POLL_SECONDS and ..._MAX_SECONDS must be > 0")
    return first, max(first, most)


def next_poll(poll: int, now: float) -> float:
    """When poll number ``poll`` is due."""
    first, most = poll_intervals()
    return now + jobs.poll_delay(poll, first, most)


def started_transition(
    interp: Interpreter, key: str, record: StepRecord, result: Any, now: float
) -> Transition:
    """The commit of a job's start (what the start integration returned: ``{"job",
    "submitted"}``): the Task waits for its first poll."""
    return jobs.started(
        interp, key, record, result["job"], result["submitted"], now, next_poll(0, now)
    )


def fire(store: RedisStore, members: list[str], now: float) -> None:
    """Beat: send one poll message for each due ``jobpoll`` timer, each pushed back by
    :data:`CLAIM_S` first (a message lost is sent again then)."""
    queue = get_settings().queue
    for member in members:
        try:
            if store.push_back_timer(member, now + CLAIM_S):
                poll_task.apply_async(args=(member,), queue=queue)
        except Exception:  # noqa: BLE001 - one broken timer must not stop the others
            logger.exception("sending job poll %s failed; trying again later", member)


@app.task(name=POLL_TASK, ignore_result=True)
def poll_task(member: str) -> None:
    """A worker's poll of one job (a short task: one describe call and one commit)."""
    poll(get_store(), member, time.time())


def poll(store: RedisStore, member: str, now: float) -> str:
    """Poll the job a ``jobpoll`` timer names once; what became of it: ``gone`` (handled
    already), ``stopped`` (its Task moved on: the job was stopped), ``waiting`` (the next
    poll is set), ``ended`` (the Task's end committed), ``stale`` (the commit's guard
    failed: another poll or the Task's end came first) or ``deferred`` (the describe
    failed for a passing reason: tried again later)."""
    if not store.push_back_timer(member, now + CLAIM_S):
        return "gone"
    _kind, execution_id, tag, attempt = parse_timer_member(member)
    key, number, named = jobs.parse_poll_tag(tag)
    job = jobs.job_for(str(named.get("integration")))
    if job is None:
        logger.error("job poll %s names no job integration; dropped", member)
        store.drop_timers(member)
        return "stopped"
    handle = jobs.handle_of(named)
    with step_context(execution_id, state_name(key)):
        status, text = store.step_state(execution_id, key)
        record = StepRecord.loads(text) if text else None
        current = (
            store.execution_status(execution_id) == "RUNNING"
            and status is not None
            and base_status(status) == StepStatus.WAITING
            and record is not None
            and record.attempt == attempt
            and (record.run or {}).get("poll") == number
            and (record.run or {}).get("job") == named
        )
        interp = interpreter_from_record(store, execution_id) if current else None
        if interp is None or status is None or text is None:
            _stop(job, handle, execution_id, key)
            store.drop_timers(member)
            return "stopped"
        failure: tuple[str, str] | None = None
        try:
            description = aws_jobs.describe(job, handle)
        except aws_jobs.Transient as exc:
            logger.warning("describing %s job %s failed (%s)", job.name, handle, exc)
            store.push_back_timer(member, next_poll(number + 1, now))
            return "deferred"
        except StatesError as exc:
            failure, description = (exc.error, exc.cause or str(exc)), None
        if failure is None and description is None:
            failure = ("States.TaskFailed", f"{job.name}: the job {handle} is not there any more")
        state = jobs.outcome(job, description) if failure is None else jobs.FAILED
        found = interp, text

        def compute() -> Transition:
            machine, stored = found
            moment = time.time()
            fresh = StepRecord.loads(stored)
            if failure is not None:
                return machine.task_failed(key, fresh, failure[0], failure[1], moment)
            if state == jobs.RUNNING:
                return jobs.polled(machine, key, fresh, moment, next_poll(number + 1, moment))
            return jobs.ended(machine, key, fresh, description, state == jobs.SUCCEEDED, moment)

        tr = run_transition(
            store, execution_id, interp, compute, step_key=key, step_status=status, timer=member
        )
        if tr is None:
            # The step moved on meanwhile (a timeout, a stop): the timer, if still set,
            # is looked at again at once, and stops the job.
            store.push_back_timer(member, now)
            return "stale"
        polls = any(kind == jobs.JobTimer.POLL for _, (kind, *_rest) in tr.timers)
        return "waiting" if polls else "ended"


def _stop(job: jobs.Job, handle: dict[str, Any], execution_id: str, key: str) -> None:
    try:
        aws_jobs.stop(job, handle)
        logger.info(
            "stopped %s job %s: %s/%s no longer waits on it", job.name, handle, execution_id, key
        )
    except StatesError as exc:
        # Ended already (most services refuse to stop a finished job), or gone.
        logger.info("stopping %s job %s: %s", job.name, handle, exc)
