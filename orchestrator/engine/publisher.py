"""Publishing committed dispatches as Celery messages: a chain per run, a flat group.

Only committed work is published: a dispatch reaches the broker after the transition
that made it is in Redis. That transition puts the step in the **outbox** (a sorted set,
see :mod:`orchestrator.engine.keys`) due in ``lease_seconds``; once its message went to
the broker the entry is marked published, due only after ``dispatch_timeout_seconds``;
in between, while the publishing process lives, its thread pushes the entry a lease on
(:meth:`Unmarked.sending`). So the reconciler (:mod:`orchestrator.engine.timers`) sends
again, within the lease, a message whose publisher died between the commit and the
publish, and never one still being published or merely waiting in a long queue. Marks
are plain ``ZADD XX`` on the global set; a worker running steps carries them in its next
claim (claim.lua) instead of a write of their own.

Each step goes to its activity's queue (:func:`orchestrator.engine.activities.queue_for`:
the activity's registration in this process, else what the workers running it
advertised, else the default queue); :func:`publish` is the only place activity messages
are built, for first dispatches, straight-run chains, beat's and the workers'
re-publishes and redrives alike. Every message carries its execution's priority
(:func:`message_priority`), whichever process publishes it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from celery import Celery, signals

from orchestrator.config import get_settings
from orchestrator.engine.activities import queue_for
from orchestrator.engine.celery_app import app, broker_priority, publishing_app
from orchestrator.engine.compiler import fan_out, run_signature
from orchestrator.engine.limits import admit
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import OutageLog, RedisStore, get_store
from orchestrator.language.interpreter import (
    Dispatch,
    ExecutionInfo,
    Interpreter,
)
from orchestrator.language.jsontext import dumps
from orchestrator.language.runs import is_callback, straight_run
from orchestrator.language.tokens import redact, redact_text

logger = logging.getLogger("orchestrator.engine.publisher")


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


# -- publishing -------------------------------------------------------------------------


def publish(
    interp: Interpreter,
    execution_id: str,
    dispatches: Iterable[Dispatch],
    *,
    producer: Any = None,
    handover: Handover | None = None,
    published: list[str] | None = None,
) -> None:
    """Send the tasks of committed dispatches: a chain per run, a group if several.

    ``handover``: the rest of the Celery chain of the task that made the transition; a
    dispatch it already carries is handed to it instead of being published.

    The outbox entries of what was sent are marked published once the messages left
    (:func:`mark_published`). ``published``: the caller marks them, once the batch of
    the ``producer`` it passed is flushed (they are appended to it); a caller passing a
    producer without it leaves them to be sent again after the lease.

    When every run is a single Task state — the usual case for Map items, Parallel
    branches and the Task after a Wait — the messages are built with Celery's own message
    functions (``create_task_message`` and ``send_task_message``: the same protocol,
    signals, group id and index as the group would give them) without the canvas
    ``apply_async`` and ``send_task`` layers around them, which cost as much again.
    Several dispatches go out as one pipelined producer batch.
    """
    if handover is not None:
        dispatches = handover.take(execution_id, list(dispatches))
    dispatches = list(dispatches)
    if not dispatches:
        return
    store = get_store()
    # Until the messages are in the broker, their outbox entries are pushed on while this
    # process lives: however long the batch takes, the reconciler sends none of them again.
    with unmarked.sending(store, [lease_member(execution_id, d.step_key) for d in dispatches]):
        sent = _send(interp, execution_id, dispatches, store, producer)
    if published is not None:
        published.extend(sent)
    elif producer is None:  # our own batch is flushed: the messages are in the broker
        mark_published(sent, store)


def _send(
    interp: Interpreter,
    execution_id: str,
    dispatches: list[Dispatch],
    store: RedisStore,
    producer: Any,
) -> list[str]:
    """Publish the messages of :func:`publish`; the outbox members of those sent (the
    others wait for an activity permit, out of the outbox)."""
    publisher = publishing_app()
    runs = []
    for dispatch in dispatches:
        scope, name = interp.scope_of(dispatch.step_key)
        run = straight_run(scope.states, scope.prefix, name, dispatch.activity, interp.resolve)
        runs.append((run, dispatch.params))
    # Global limits: steps over one wait in Redis instead of being sent.
    runs = admit(execution_id, runs, store)
    if not runs:
        return []
    # Each activity's queue; declared per broker: another client's broker has not seen
    # the queue yet (None: declare it with the message; []: known to exist already).
    queues = {step.activity: "" for run, _ in runs for step in run}
    for name in queues:
        queues[name] = queue_for(name)
    broker = publisher.conf.broker_url
    priority = message_priority(interp.info, broker)
    declare: dict[str, list[Any] | None] = {
        queue: [] if (broker, queue) in _declared else None for queue in queues.values()
    }
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
                    queues[run[0].activity],
                    declare[queues[run[0].activity]],
                    group_id,
                    index,
                    lineage,
                    priority,
                )
        else:
            signatures = []
            for run, params in runs:
                carried, argsrepr = carried_input(params, execution_id, run[0].step_key)
                signature = run_signature(
                    run, carried, execution_id, queues.__getitem__, publisher, priority
                )
                # Flower's view of the args, as compact JSON: Celery's saferepr of the
                # arguments costs more than building the rest of the message.
                signature.set(argsrepr=argsrepr, kwargsrepr="{}")
                signatures.append(signature)
            # One declare option for all: none unless every queue is known to exist.
            options: dict[str, Any] = {} if None in declare.values() else {"declare": []}
            fan_out(signatures, publisher).apply_async(producer=producer, **options)
    _declared.update((broker, queue) for queue in declare)
    return [lease_member(execution_id, run[0].step_key) for run, _ in runs]


def execution_priority(info: ExecutionInfo) -> int:
    """An execution's priority (0 least urgent ... 9 most urgent): the one it started
    with (its record's), else the configured default (an execution started before
    priorities existed)."""
    return get_settings().default_priority if info.priority is None else info.priority


def message_priority(info: ExecutionInfo, broker_url: str | None) -> int:
    """The priority property of an execution's task messages on ``broker_url``."""
    return broker_priority(execution_priority(info), broker_url)


# -- the outbox -------------------------------------------------------------------------


def mark_published(members: list[str], store: RedisStore | None = None) -> None:
    """Mark outbox members published (their messages are in the broker): due again only
    after ``dispatch_timeout_seconds``. Inside an activity step (:func:`deferred_marks`)
    they wait for this process's next claim, which carries them at no cost."""
    if not members:
        return
    store = store or get_store()
    if _deferring.get():
        unmarked.add(store, members)
    else:
        store.mark_published(members, time.time() + get_settings().dispatch_timeout_seconds)


#: Set while an activity step commits and publishes (:func:`deferred_marks`).
_deferring: ContextVar[bool] = ContextVar("orchestrator_deferred_marks", default=False)


@contextlib.contextmanager
def deferred_marks() -> Iterator[None]:
    """Leave the "published" marks of what is sent in this context to the next claim."""
    token = _deferring.set(True)
    try:
        yield
    finally:
        _deferring.reset(token)


class Unmarked:
    """This process's outbox members whose messages are not marked published yet: those
    it is publishing now, and those it published from activity steps.

    The process's next claim takes the published ones (:meth:`take`, up to
    :attr:`CLAIM_MOST`) and claim.lua marks them in the same call: a step's hot path
    stays the claim and the commit. An idle process's are marked by a thread of its own
    every third of ``lease_seconds``, before the reconciler would send them again.

    The same thread keeps the entries of what is being published (:meth:`sending`) from
    coming due: a commit puts its dispatches in the outbox due at the lease, and a large
    batch (a Map's first 500 items, a start published by a starved process) may take
    longer than that to reach the broker. Pushed a lease on every third of it while their
    publisher lives, they come due only when it died, as a running step's lease does; a
    message already in the broker is never taken for one never published.

    The settings members are marked and pushed with are their caller's, taken when they
    are added (a client binds its own in a context variable, which the thread does not
    see).
    """

    #: Members one claim carries at most (claim.lua's arguments stay bounded).
    CLAIM_MOST = 500

    def __init__(self) -> None:
        self._members: dict[RedisStore, list[str]] = {}
        # Handle -> (store, members, lease_seconds of the publisher).
        self._sending: dict[int, tuple[RedisStore, list[str], float]] = {}
        self._handles = itertools.count()
        # Per store: (lease_seconds, dispatch_timeout_seconds) of its latest caller.
        self._times: dict[RedisStore, tuple[float, float]] = {}
        self._lock = threading.Lock()
        # Held across a push of the sending entries: a publish that ends waits for it, so
        # the push (a lease's due time) never lands after the entry's "published" mark.
        self._pushing = threading.Lock()
        self._thread: threading.Thread | None = None
        # Set by a hold whose lease is shorter than the thread's sleep allows (another
        # caller's longer lease): the thread must look again sooner. Only then: waking a
        # thread on every publish costs the publishing thread the GIL, a step at a time.
        self._wake = threading.Event()
        # When the thread's current sleep ends (time.monotonic(); under the lock).
        self._asleep_until = 0.0
        self._pid: int | None = None
        self._outage = OutageLog(logger)
        # A fork while the thread pushed (a round trip under ``_pushing``) must not leave
        # the child a lock nobody releases.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._pushing = threading.Lock()
        self._wake = threading.Event()

    def _own(self, store: RedisStore) -> None:
        """Forget a forked parent's members, note the caller's settings for ``store``, and
        keep the thread running (under the lock)."""
        if self._pid != os.getpid():  # a forked child: not the parent's to mark
            self._members.clear()
            self._sending.clear()
            self._pid, self._thread = os.getpid(), None
        settings = get_settings()
        self._times[store] = (settings.lease_seconds, settings.dispatch_timeout_seconds)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="orchestrator-outbox", daemon=True
            )
            self._thread.start()

    def add(self, store: RedisStore, members: list[str]) -> None:
        """Remember ``members`` (of ``store``'s outbox) as published."""
        with self._lock:
            self._own(store)
            self._members.setdefault(store, []).extend(members)

    def take(self, store: RedisStore, partition: int = 0) -> list[str]:
        """Up to :attr:`CLAIM_MOST` of ``store``'s members in ``partition``, for a claim
        in that partition to mark (its script touches that partition's outbox only)."""
        with self._lock:
            members = self._members.get(store)
            if not members or self._pid != os.getpid():
                return []
            if store.keys.partitions == 1:
                taken = members[: self.CLAIM_MOST]
                del members[: self.CLAIM_MOST]
                return taken
            taken, kept = [], []
            for member in members:
                if store.lease_partition(member) == partition and len(taken) < self.CLAIM_MOST:
                    taken.append(member)
                else:
                    kept.append(member)
            members[:] = kept
            return taken

    def put_back(self, store: RedisStore, members: list[str]) -> None:
        """Members a claim took but could not mark (its call failed)."""
        if members:
            with self._lock:
                self._own(store)
                self._members.setdefault(store, [])[:0] = members

    def hold(self, store: RedisStore, members: list[str]) -> int:
        """Keep ``members``' outbox entries from coming due until :meth:`release`: their
        messages are being published. Returns the handle to release."""
        with self._lock:
            self._own(store)
            handle = next(self._handles)
            lease = get_settings().lease_seconds
            self._sending[handle] = (store, members, lease)
            wake = time.monotonic() + lease / 3 < self._asleep_until
        if wake:
            self._wake.set()
        return handle

    def release(self, handle: int) -> None:
        """Stop pushing the entries :meth:`hold` returned ``handle`` for (sent, or given
        up on: then they come due at the lease)."""
        with self._pushing, self._lock:
            self._sending.pop(handle, None)

    @contextlib.contextmanager
    def sending(self, store: RedisStore, members: list[str]) -> Iterator[None]:
        """:meth:`hold` ``members`` while the body publishes their messages."""
        handle = self.hold(store, members)
        try:
            yield
        finally:
            self.release(handle)

    def flush(self) -> None:
        """Mark every member now (the thread's work; tests)."""
        with self._lock:
            pending, self._members = self._members, {}
            times = dict(self._times)
        for store, members in pending.items():
            until = time.time() + times[store][1]
            try:
                store.mark_published(members, until)
            except Exception as exc:  # noqa: BLE001 - unmarked: sent again, claimed once
                if not self._outage.failed(exc):
                    logger.warning("could not mark published messages", exc_info=True)
            else:
                self._outage.ok()

    def push(self) -> None:
        """Push the entries of what is being published a lease on (the thread's work)."""
        with self._pushing:
            with self._lock:
                sending = list(self._sending.values())
            if not sending:
                return
            by_lease: dict[tuple[RedisStore, float], list[str]] = {}
            for store, members, lease in sending:
                by_lease.setdefault((store, lease), []).extend(members)
            for (store, lease), members in by_lease.items():
                until = time.time() + lease
                try:
                    # ZADD XX: a step claimed meanwhile stays out of the outbox.
                    store.mark_published(members, until)
                except Exception as exc:  # noqa: BLE001 - they come due: sent again, claimed once
                    if not self._outage.failed(exc):
                        logger.warning("could not push back messages being sent", exc_info=True)

    def _interval(self) -> float:
        """A third of the shortest lease in use (under the lock)."""
        # A store's latest settings only: a store no longer used drops out.
        used = set(self._members) | {store for store, _, _ in self._sending.values()}
        self._times = {s: t for s, t in self._times.items() if s in used}
        leases = [t[0] for t in self._times.values()]
        leases += [lease for _, _, lease in self._sending.values()]
        return min(leases, default=1.0) / 3

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = self._asleep_until = time.monotonic() + self._interval()
            # A hold with a shorter lease than the interval it sleeps (another caller's)
            # wakes the thread, so the round comes sooner; it never comes later.
            while (left := deadline - time.monotonic()) > 0:
                if self._wake.wait(left):
                    self._wake.clear()
                    with self._lock:
                        deadline = min(deadline, time.monotonic() + self._interval())
                        self._asleep_until = deadline
            self.flush()
            self.push()


unmarked = Unmarked()

#: The attribute of a task's request naming the outbox member of the step its Celery
#: chain goes on with (set by :meth:`Handover.take`).
_HANDED = "orchestrator_handed"


#: The attribute of a task's request holding the :meth:`Unmarked.hold` handle of the step
#: its Celery chain goes on with, until Celery sent it or the task ended without.
_HANDED_HOLD = "orchestrator_handed_hold"


def _let_go(request: Any) -> None:
    handle = getattr(request, _HANDED_HOLD, None)
    if handle is not None:
        setattr(request, _HANDED_HOLD, None)
        unmarked.release(handle)


@signals.task_success.connect
def _chain_sent(sender: Any = None, **_: Any) -> None:
    # Celery sends the chain's next message before the task-success signal: it is in the
    # broker now. No longer pushed on (before it is marked: a push after the mark would
    # make it due at the lease again).
    request = getattr(sender, "request", None)
    _let_go(request)
    member = getattr(request, _HANDED, None)
    if member:
        unmarked.add(get_store(), [member])


@signals.task_postrun.connect
def _chain_ended(task: Any = None, **_: Any) -> None:
    # A task that failed after handing its step to the chain sent no message: the step's
    # entry comes due at the lease, and the reconciler sends it.
    _let_go(getattr(task, "request", None))


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
    priority: int,
) -> None:
    task_id = str(uuid.uuid4())
    root_id, parent_id = lineage
    carried, argsrepr = carried_input(*args)
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
    publisher.amqp.send_task_message(
        producer, name, message, queue=queue, declare=declare, priority=priority
    )


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


def carried_input(params: Any, execution_id: str, step_key: str) -> tuple[Any, str]:
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


class Handover:
    """The rest of a chained task's Celery chain, and what the task hands to it.

    A run's chain proposes the next step; the interpreter decides it. When the committed
    transition dispatches exactly the step the chain carries next, this task returns that
    step's input and Celery sends the next message; otherwise the chain is cut (Celery
    reads it from the request after the task returns) and the decided steps are published.
    """

    def __init__(self, request: Any) -> None:
        self._request = request
        chained = request.chain
        args = (chained[-1].get("args") or ()) if chained else ()
        self.next_step: str | None = args[-1] if args else None
        """Step key of the task the rest of the chain starts with, if any."""
        self.value: Any = None
        """The input handed to the chain's next task (None when the chain was cut)."""

    def take(self, execution_id: str, dispatches: list[Dispatch]) -> list[Dispatch]:
        """The dispatches left to publish once the chain took the one it carries."""
        if self.next_step is None or [d.step_key for d in dispatches] != [self.next_step]:
            self.cut()
            return dispatches
        # The return value is the next task's input: Celery's task-succeeded event shows
        # it (Flower's "result") and would show saferepr(params) as the next task's args.
        self.value, argsrepr = carried_input(dispatches[0].params, execution_id, self.next_step)
        options = self._request.chain[-1].setdefault("options", {})
        options["argsrepr"] = argsrepr
        options["kwargsrepr"] = "{}"
        # Marked published once Celery sent it (_chain_sent), not before; until then its
        # entry is pushed on as a publishing one's is.
        member = lease_member(execution_id, self.next_step)
        setattr(self._request, _HANDED, member)
        _let_go(self._request)
        setattr(self._request, _HANDED_HOLD, unmarked.hold(get_store(), [member]))
        return []

    def cut(self) -> None:
        """Stop the chain after this task (its step moved on, or another was decided)."""
        self._request.chain = None
        self._request.callbacks = None
        setattr(self._request, _HANDED, None)
        _let_go(self._request)
        self.value = None
