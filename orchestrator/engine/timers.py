"""Durable timers and the reconciler, run by beat (or in-process by local_orchestrator).

Retry backoffs, task timeouts, Wait states and the hand-overs of long runs of inline
states (``TimerKind.CONTINUE``, due at once) are members of one Redis sorted set scored
by due time — never Celery countdowns or ETAs, which live in worker memory and are
redelivered and run twice after the Redis visibility timeout. :func:`tick` fires what is
due; each firing is a guarded transition that removes its timer in the same atomic write,
so a timer fires once even if two beats run. The same tick re-dispatches steps whose
lease lapsed (their worker died, or their message was lost).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator import config
from orchestrator.config import get_settings
from orchestrator.engine import children, jobs, limits, maprun, schedules, waiting
from orchestrator.engine.celery_app import app, broker_priority, reconfigure
from orchestrator.engine.commit import (
    Prepared,
    after_commit,
    perform_join,
    prepare_transition,
    run_transition,
)
from orchestrator.engine.logs import step_context
from orchestrator.engine.machines import interpreter_for, interpreter_from_record
from orchestrator.engine.metrics import observe_timer_lateness
from orchestrator.engine.publisher import (
    PUBLISH_CHUNK,
    delegated_input,
    dispatch_repr,
    execution_priority,
    mark_published,
    publish,
)
from orchestrator.engine.records import (
    base_status,
    lease_member,
    parse_lease_member,
    parse_timer_member,
)
from orchestrator.engine.steps import dispatch_task
from orchestrator.engine.store import OutageLog, RedisStore, get_store
from orchestrator.language.children import CHILD_TIMERS
from orchestrator.language.interpreter import (
    MAP_RUN_TIMERS,
    RECORDLESS_TIMERS,
    Interpreter,
    StepRecord,
    Transition,
)
from orchestrator.language.jobs import JOB_TIMERS

logger = logging.getLogger("orchestrator.engine.timers")

#: Timers (and lapsed leases) handled per tick at most; the rest wait for the next one.
BATCH = 500

#: A batch of fired timers that dispatches at least this many tasks hands their messages
#: to the workers, DELEGATE_CHUNK executions per ``orchestrator.dispatch`` message: beat
#: fires, the workers (which scale out) build the messages.
DELEGATE_MIN = 100
DELEGATE_CHUNK = 50

#: When handling a timer or lease raised, it is tried again this much later (seconds).
RETRY_BROKEN_S = 30.0

#: How the members of Map Run timers begin (``timer_member``'s JSON).
_MAP_RUN_PREFIXES = tuple(f'["{kind}",' for kind in MAP_RUN_TIMERS)
_CHILD_PREFIXES = tuple(f'["{kind}",' for kind in CHILD_TIMERS)
_JOB_PREFIXES = tuple(f'["{kind}",' for kind in JOB_TIMERS)


#: How long one tick goes on firing timers that its own firings made due, before it
#: turns to lost steps (a burst already due is worked through whatever it takes).
TICK_BUDGET_S = 1.0


def tick(
    store: RedisStore | None = None,
    *,
    now: float | None = None,
    owner: str = "",
    pool: FiringPool | None = None,
) -> int:
    """Fire due timers and recover lapsed steps; return how many were handled."""
    return run_tick(store, now=now, owner=owner, pool=pool).handled


@dataclass(frozen=True)
class TickOutcome:
    """What a tick did."""

    handled: int
    """Timers and lapsed steps handled."""
    busy: bool
    """The tick stopped at its budget (:data:`TICK_BUDGET_S`) while its firings still
    made timers due: the next tick is worth running at once, not an interval later."""


def run_tick(
    store: RedisStore | None = None,
    *,
    now: float | None = None,
    owner: str = "",
    pool: FiringPool | None = None,
) -> TickOutcome:
    """Fire due timers and recover lapsed steps (:func:`tick`), and say whether more is
    due at once.

    Holds the tick lock while it works so that two beats do not both scan; correctness
    does not depend on the lock (every firing is guarded), only efficiency. ``now`` fixes
    the clock (tests); otherwise every batch reads the time afresh, so that a burst worked
    through for seconds stamps its events with when they happened. ``pool`` fires large
    batches on several processes.
    """
    store = store or get_store()
    clock: Callable[[], float] = time.time if now is None else (lambda: now)
    owner = owner or uuid.uuid4().hex
    lock_ms = max(1000, int(get_settings().tick_interval_seconds * 4000))
    if not store.acquire_tick_lock(owner, lock_ms):
        return TickOutcome(0, busy=False)
    try:
        handled = 0
        busy = False
        started = renewed = time.monotonic()
        previous: list[tuple[str, float]] = []
        while True:
            batch_now = clock()
            entries = store.due_timer_entries(batch_now, BATCH)
            # Firings set timers due at once (a Map's deferred items, a handed-over run
            # of inline states): they fire in this tick rather than a tick later, until
            # nothing new is due, nothing moved (a batch due again as it was: the same
            # members at the same due times; a Map's refill timer keeps its member and
            # is set again due at its firing's time), or the tick has worked long
            # enough for the lost steps below to wait no longer.
            if not entries or entries == previous:
                break
            previous = entries
            due = [member for member, _ in entries]
            handled += len(due)
            if pool is not None:
                pool.fire(store, due, batch_now)
            else:
                fire_timers(store, due, batch_now)
            # orchestrator_timer_lateness_seconds: fired (the batch committed) - due.
            observe_timer_lateness(clock(), [due_at for _, due_at in entries])
            if len(due) < BATCH and time.monotonic() - started > TICK_BUDGET_S:
                busy = True
                break
            # A burst of due timers: keep the lock while working through it, renewed
            # once a third of it has run (not after every batch: a large Map's refills
            # come one batch each, and each renewal is a round trip).
            if time.monotonic() - renewed > lock_ms / 3000:
                store.extend_tick_lock(lock_ms)
                renewed = time.monotonic()
        recover_now = clock()
        # Schedules due (orchestrator/engine/schedules.py): each firing guarded.
        try:
            handled += schedules.fire_due(store, recover_now)
        except Exception:  # noqa: BLE001 - tried again next tick
            logger.exception("firing schedules failed")
        # Global limits: permits whose steps ended unreleased go to the waiting steps.
        try:
            handled += waiting.recover_permits(store, recover_now)
        except Exception:  # noqa: BLE001 - tried again next tick
            logger.exception("recovering activity permits failed")
        for member in store.due_leases(recover_now, BATCH):
            handled += 1
            try:
                recover_step(store, member, recover_now)
            except Exception:  # noqa: BLE001 - one bad entry must not stop the rest
                logger.exception("recovering %s failed; trying again later", member)
                store.defer_lease(member, recover_now + RETRY_BROKEN_S)
        # Dispatched steps never marked published (their publisher died after the
        # commit), or published so long ago that the broker must have lost them.
        for member in store.due_outbox(recover_now, BATCH):
            handled += 1
            try:
                recover_step(store, member, recover_now, outbox=True)
            except Exception:  # noqa: BLE001
                logger.exception("sending %s again failed; trying again later", member)
                store.defer_outbox(member, recover_now + RETRY_BROKEN_S)
        return TickOutcome(handled, busy)
    finally:
        # Release only our own lock (a slow tick may have lost it already).
        store.release_tick_lock(owner)


class FiringPool:
    """Fires large batches of due timers on several processes.

    Firing a timer is CPU-bound Python (read, compute the transition, commit, build the
    Celery message), so one process caps beat at one core. A batch of at least
    ``2 * MIN_CHUNK`` timers is split between the caller and ``processes - 1`` spawned
    processes (each with its own Redis and broker connections); smaller ones fire in the
    caller. A process that dies or hangs loses nothing: a timer leaves the sorted set
    only in the commit that fires it, so the next tick finds what was left.
    """

    #: Fewest timers worth handing to another process.
    MIN_CHUNK = 50
    #: A chunk not fired after this long is given up on (the pool is restarted).
    CHUNK_TIMEOUT_S = 120.0

    def __init__(self, processes: int | None = None) -> None:
        configured = get_settings().timer_processes if processes is None else processes
        self.processes = configured or min(4, os.cpu_count() or 1)
        self._pool: Any = None

    def start(self) -> FiringPool:
        """Start the processes now rather than at the first burst (they take a moment)."""
        if self.processes > 1 and self._pool is None:
            # Spawned, not forked: beat (or a test process) may run other threads.
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.processes - 1,
                initializer=_init_firing_process,
                initargs=(get_settings().model_dump_json(),),
            )
        return self

    def fire(self, store: RedisStore, members: list[str], now: float) -> None:
        """Fire ``members`` (due at ``now``), split between the processes if worth it."""
        chunks = split_members(members, min(self.processes, len(members) // self.MIN_CHUNK))
        if len(chunks) < 2:
            fire_timers(store, members, now)
            return
        pool = self.start()._pool
        pending = [pool.apply_async(_fire_chunk, (chunk, now)) for chunk in chunks[1:]]
        # The caller's process takes the first chunk itself.
        fire_timers(store, chunks[0], now)
        try:
            for result in pending:
                result.get(timeout=self.CHUNK_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            logger.error("a timer-firing process did not answer; starting new ones")
            self.close()
        except Exception:  # noqa: BLE001 - what did not fire is still due next tick
            logger.exception("firing a batch of timers failed")

    #: How long closing waits for the pool's own shutdown before killing its processes.
    CLOSE_TIMEOUT_S = 3.0

    def close(self) -> None:
        """Stop the processes, within a few seconds whatever state they are in.

        ``Pool.terminate()`` first takes the task queue's lock, which an idle worker holds
        while it waits for work: when a worker died holding it — a SIGTERM sent to beat's
        whole process group (honcho, systemd) reaches the workers first — it waits
        forever. So it runs in a daemon thread; once it has stopped the pool from
        replacing workers, whatever is still alive is killed (a firing cut short is
        due again at the next tick) and reaped here.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        closer = threading.Thread(target=pool.terminate, name="firing-pool-close", daemon=True)
        closer.start()
        closer.join(self.CLOSE_TIMEOUT_S)
        if not closer.is_alive():
            return
        # Private attributes of multiprocessing.pool.Pool: its worker-replacing thread
        # (stopped by terminate() before the lock it hangs on) and its processes.
        pool._worker_handler.join(self.CLOSE_TIMEOUT_S)
        for process in list(pool._pool):
            if process.exitcode is None:
                process.kill()
        for process in list(pool._pool):
            process.join(self.CLOSE_TIMEOUT_S)


def split_members(members: list[str], chunks: int) -> list[list[str]]:
    """``members`` in at most ``chunks`` chunks of about equal size (none empty), the
    timers of one Map Run (its ``maprun`` and ``mapchild`` timers: one parent's Map) in
    the same chunk: that run's advance is one, in one process. Split between processes,
    they would compute the same advance side by side, each reading the same page of
    items, and all but one of their commits would fail on the run's version."""
    if chunks < 2:
        return [members] if members else []
    runs: dict[tuple[str, str], list[str]] = {}
    others: list[str] = []
    for member in members:
        if member.startswith(_MAP_RUN_PREFIXES):
            _, execution_id, step_key, _ = parse_timer_member(member)
            runs.setdefault((execution_id, step_key.split("|")[0]), []).append(member)
        else:
            others.append(member)
    out: list[list[str]] = [[] for _ in range(chunks)]
    # A run's timers, largest first, each to the smallest chunk so far; then the others
    # in their order, filling the chunks one after another.
    for timers in sorted(runs.values(), key=len, reverse=True):
        min(out, key=len).extend(timers)
    size = -(-len(members) // chunks)
    index = 0
    for member in others:
        while len(out[index]) >= size and index < chunks - 1:
            index += 1
        out[index].append(member)
    return [chunk for chunk in out if chunk]


def _init_firing_process(settings_json: str) -> None:
    import importlib

    settings = config.Settings.model_validate_json(settings_json)
    config.configure(settings)
    reconfigure(settings)
    # A fired timer can enter a Task state, whose Resource must resolve to a registered
    # activity; and signatures built by name must go to this app, not Celery's default.
    for module in settings.task_modules:
        importlib.import_module(module)
    app.set_default()


def _fire_chunk(members: list[str], now: float) -> None:
    fire_timers(get_store(), members, now)


@dataclass(frozen=True)
class _Firing:
    """What firing one timer takes: its transition and the guards of its commit."""

    member: str
    execution_id: str
    def_hash: str
    interp: Interpreter
    compute: Callable[[], Transition | None]
    guards: dict[str, Any]


def _plan(store: RedisStore, members: list[str], now: float) -> list[_Firing | str]:
    """Read what every timer needs in one round trip; a firing per timer that still
    applies, else the member itself (stale: its step or execution moved on)."""
    parsed = [parse_timer_member(member) for member in members]
    # A Map's refill needs the Map's status, not its record (which holds its input).
    reads = store.timer_reads(
        [(eid, step_key) for _, eid, step_key, _ in parsed],
        [kind not in RECORDLESS_TIMERS for kind, _, _, _ in parsed],
    )
    plans: list[_Firing | str] = []
    for member, (kind, execution_id, step_key, attempt), read in zip(
        members, parsed, reads, strict=True
    ):
        name, workflow, start, def_hash, exec_status, status, record_text, priority, length = read
        if exec_status != "RUNNING":
            plans.append(member)
            continue
        try:
            interp = interpreter_for(store, execution_id, name, workflow, start, def_hash, priority)
        except Exception:  # noqa: BLE001 - one bad timer must not stop the others
            logger.exception("timer %s failed; trying again later", member)
            store.defer_timer(member, now + RETRY_BROKEN_S)
            continue
        guards: dict[str, Any] = {"timer": member, "history_base": length}
        if step_key:  # a step's timer applies only while the step is as it was read
            guards.update(step_key=step_key, step_status=status)
        compute = functools.partial(
            _timer_transition, interp, kind, step_key, attempt, status, record_text, now
        )
        plans.append(_Firing(member, execution_id, def_hash, interp, compute, guards))
    return plans


def fire_timers(store: RedisStore, members: list[str], now: float) -> None:
    """Fire a batch of due timers with few round trips.

    One pipeline reads what every firing needs, one pipeline commits every transition
    (each still its own guarded Lua call), and one producer publishes what they dispatch.
    A firing whose reads changed under it (a sibling Map item moved first) is computed
    again on its own; one that no longer applies is dropped.
    """
    if not members:
        return
    # Rate-limited steps whose turn came are published (orchestrator/engine/limits.py).
    turns = [m for m in members if m.startswith(limits.LIMIT_TIMER_PREFIX)]
    if turns:
        waiting.fire_rate_timers(store, turns)
        members = [m for m in members if not m.startswith(limits.LIMIT_TIMER_PREFIX)]
    # A child workflow's start and end (orchestrator/engine/children.py).
    started = [m for m in members if m.startswith(_CHILD_PREFIXES)]
    if started:
        children.fire(store, started, now)
        members = [m for m in members if not m.startswith(_CHILD_PREFIXES)]
    # A .sync job's polls go to the workers (orchestrator/engine/jobs.py).
    polls = [m for m in members if m.startswith(_JOB_PREFIXES)]
    if polls:
        jobs.fire(store, polls, now)
        members = [m for m in members if not m.startswith(_JOB_PREFIXES)]
    # A Distributed Map's timers move its Map Run (orchestrator/engine/maprun.py).
    runs = [m for m in members if m.startswith(_MAP_RUN_PREFIXES)]
    if runs:
        maprun.fire(store, runs, now)
        members = [m for m in members if not m.startswith(_MAP_RUN_PREFIXES)]
    batch: list[tuple[_Firing, Prepared]] = []
    stale: list[str] = []
    for plan in _plan(store, members, now):
        if isinstance(plan, str):
            stale.append(plan)
            continue
        with step_context(plan.execution_id, None):
            try:
                prepared = prepare_transition(
                    store, plan.execution_id, plan.interp, plan.compute, **plan.guards
                )
            except Exception:  # noqa: BLE001 - one bad timer must not stop the others
                logger.exception("timer %s failed; trying again later", plan.member)
                store.defer_timer(plan.member, now + RETRY_BROKEN_S)
                continue
        if prepared is None:
            stale.append(plan.member)
        else:
            batch.append((plan, prepared))
    results = store.apply_many([prepared.write for _, prepared in batch])
    # A burst hands its task messages to the workers (dispatch_task), in chunks.
    delegate = sum(len(prepared.tr.dispatches) for _, prepared in batch) >= DELEGATE_MIN
    handed: list[list[Any]] = []
    # Outbox members of what went out (a dispatch_task message carries its steps),
    # marked once the producer's batch is flushed.
    published: list[str] = []
    # One producer for the whole batch; on Redis, pipelined LPUSHes, PUBLISH_CHUNK a trip.
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_CHUNK):
        for (plan, prepared), result in zip(batch, results, strict=True):
            with step_context(plan.execution_id, None):
                try:
                    if result.ok:
                        if delegate and prepared.tr.dispatches:
                            handed.append(
                                [
                                    plan.execution_id,
                                    plan.def_hash,
                                    [
                                        [
                                            d.step_key,
                                            d.state,
                                            d.activity,
                                            delegated_input(plan.interp, d),
                                        ]
                                        for d in prepared.tr.dispatches
                                    ],
                                    execution_priority(plan.interp.info),
                                ]
                            )
                            published += [
                                lease_member(plan.execution_id, d.step_key)
                                for d in prepared.tr.dispatches
                            ]
                        after_commit(
                            store,
                            plan.execution_id,
                            plan.interp,
                            prepared.tr,
                            result.joined,
                            producer=producer,
                            publish_tasks=not delegate,
                            published=published,
                        )
                    elif result.failed_guard >= prepared.fixed_guards:
                        fire_timer(store, plan.member, now)
                    else:
                        stale.append(plan.member)
                except Exception:  # noqa: BLE001
                    logger.exception("after firing %s", plan.member)
        queue = get_settings().queue
        # The most urgent executions' first, each message as urgent as its most urgent.
        handed.sort(key=lambda entry: -entry[3])
        broker = app.conf.broker_url
        for start in range(0, len(handed), DELEGATE_CHUNK):
            chunk = handed[start : start + DELEGATE_CHUNK]
            dispatch_task.apply_async(
                args=(chunk,),
                queue=queue,
                priority=broker_priority(chunk[0][3], broker),
                producer=producer,
                argsrepr=dispatch_repr(chunk),
                kwargsrepr="{}",
            )
    # A beat killed before this line leaves them due at the lease: sent again then.
    mark_published(published, store)
    if stale:
        store.drop_timers(*stale)


def fire_timer(store: RedisStore, member: str, now: float) -> None:
    """Fire one due timer, recomputing on conflicts; stale timers are just removed."""
    (plan,) = _plan(store, [member], now)
    fired = None
    if not isinstance(plan, str):
        with step_context(plan.execution_id, None):
            fired = run_transition(
                store, plan.execution_id, plan.interp, plan.compute, **plan.guards
            )
    if fired is None:
        store.drop_timers(member)


def _timer_transition(
    interp: Interpreter,
    kind: str,
    step_key: str,
    attempt: int,
    status: str | None,
    record_text: str | None,
    now: float,
) -> Transition | None:
    """The transition a fired timer triggers (the interpreter decides), from the step as
    read; None when it no longer applies. The record is decoded afresh for each
    computation: a transition changes the record it is given."""
    return interp.timer_fired(
        kind,
        step_key,
        None if status is None else base_status(status),
        None if record_text is None else StepRecord.loads(record_text),
        attempt,
        now,
    )


def recover_step(store: RedisStore, member: str, now: float, *, outbox: bool = False) -> None:
    """A step's lease lapsed: dispatch it again, finish its join, or forget the lease.

    ``outbox``: ``member`` is a due outbox entry, a dispatched step no worker claimed
    (never published, or lost by the broker): sent again if it is still SCHEDULED.
    """
    execution_id, step_key = parse_lease_member(member)
    exec_status = store.execution_status(execution_id)
    status, record_text = store.step_state(execution_id, step_key)
    interp = interpreter_from_record(store, execution_id) if exec_status == "RUNNING" else None
    drop = store.drop_outbox if outbox else store.drop_lease
    if interp is None or (outbox and (status is None or base_status(status) != "SCHEDULED")):
        # A claimed step is its lease's (claim.lua dropped the entry); one that moved on
        # or whose execution ended is nobody's.
        drop(member)
        return
    recovery = interp.recover(
        step_key,
        None if status is None else base_status(status),
        None if record_text is None else StepRecord.loads(record_text),
    )
    if recovery.join:
        logger.warning("joining %s/%s for a worker that died", execution_id, step_key)
        perform_join(store, execution_id, interp, step_key)
    elif recovery.dispatch is not None:
        assert status is not None
        if outbox:
            logger.warning(
                "step %s/%s was not claimed (its message was never published, or lost): "
                "publishing it again",
                execution_id,
                step_key,
            )
        else:
            logger.warning(
                "step %s/%s lost its worker (%s): dispatching it again",
                execution_id,
                step_key,
                status,
            )
        # Guarded on the status read (claim token included): a worker that committed or
        # claimed it since keeps it. Back in the outbox until it is published.
        lease_until = now + get_settings().lease_seconds
        if store.reschedule_step(execution_id, step_key, status, lease_until):
            publish(interp, execution_id, [recovery.dispatch])
    else:
        drop(member)


class TimerLoop:
    """Runs :func:`tick` every ``tick_interval_seconds`` in a background thread."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval or get_settings().tick_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.owner = uuid.uuid4().hex
        self.outage = OutageLog(logger)

    def start(self) -> TimerLoop:
        """Start the loop."""
        self._thread = threading.Thread(target=self._run, name="orchestrator-timers", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                # A tick cut short by its budget while timers it made due wait (a large
                # Map's refills) is followed at once by the next.
                if run_tick(owner=self.owner).busy:
                    wait = 0
            except Exception as exc:  # noqa: BLE001 - keep ticking through Redis hiccups
                # An outage is logged when it starts and ends, not on every tick.
                if not self.outage.failed(exc):
                    logger.exception("timer tick failed")
            else:
                self.outage.ok()

    def stop(self) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
