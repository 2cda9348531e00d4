"""Leases of the steps running in this process, renewed from one thread, which also
watches whether the steps are still this process's to finish and cancels them if not.

A running step holds a lease in Redis; a worker that dies stops renewing it, and the
reconciler (:mod:`orchestrator.engine.timers`) dispatches the step again when it lapses.

Cancellation. Every :data:`WATCH_INTERVAL_S` the same thread reads, for each running step
that has an :class:`~orchestrator.engine.context.ActivityContext`, the status of its
execution, of the step and of the Parallels/Maps it runs in (one pipelined round trip,
two reads per step). These are the fields the step's commit is guarded by, and the commit
that times the Task out, stops the execution or fails its container is the write that
changes them: when one no longer holds (the step is no longer ``RUNNING:<our claim>``, the
execution or a container no longer ``RUNNING``), nothing the activity returns can be
recorded, so it is cancelled — ``cancelled`` turns true and ``heartbeat()`` raises
:class:`~orchestrator.errors.ActivityCancelled`. If it still runs
``ORCHESTRATOR_CANCEL_GRACE_SECONDS`` later:

* in a prefork pool process, the process is terminated and the pool replaces it: the
  worker is asked to revoke the task with ``terminate=True`` (``SIGKILL``; the message is
  acknowledged), and if the process still runs :data:`SELF_KILL_AFTER_S` later (remote
  control disabled, broker unreachable) it kills itself (the message is then redelivered,
  and its copy dropped at the claim);
* in a threads or solo pool (and in ``local_orchestrator``), a thread cannot be killed
  (nor the worker's own process, where solo runs the activity):
  a warning is logged, and the slot frees when the activity returns, raises, or calls
  ``heartbeat()`` (which raises).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from celery import signals

from orchestrator.config import get_settings
from orchestrator.engine.celery_app import app
from orchestrator.engine.context import ActivityContext
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import OutageLog, get_store
from orchestrator.language.interpreter import ancestors, state_name

logger = logging.getLogger("orchestrator.engine.leases")

#: How often running activities are checked for cancellation, in seconds.
WATCH_INTERVAL_S = 0.5
#: After asking the worker to terminate a cancelled activity's pool process, how long the
#: process waits before it kills itself, in seconds.
SELF_KILL_AFTER_S = 1.5

#: Whether this process is a prefork pool process: only such a process may be terminated
#: for a cancelled activity (the worker starts another in its place).
_pool_process = False
#: The worker's main process (``worker_init``), inherited by its prefork pool processes.
_worker_pid: int | None = None


@signals.worker_process_init.connect
def _in_pool_process(**_: Any) -> None:
    global _pool_process
    # Sent in each prefork pool process, and by the solo pool in the worker's own
    # process, which must never be killed.
    _pool_process = _worker_pid is not None and os.getpid() != _worker_pid


@signals.worker_init.connect
def _prepare_replacements(**_: Any) -> None:
    global _worker_pid
    _worker_pid = os.getpid()
    # A new prefork pool process (one replacing a terminated one, too) first sets its
    # parent-death signal through cffi when cffi is installed, which parses a C
    # declaration with pycparser, imported and set up afresh in every child unless the
    # worker's main process did it once before forking (0.15 s per child, seconds on a
    # loaded machine, during which the freed slot takes no task).
    if "cffi" in sys.modules:
        try:
            sys.modules["cffi"].FFI().cdef("int prctl (int __option, ...);")
        except Exception:  # noqa: BLE001 - only an optimisation
            pass


def cancel_reason(
    token: str,
    containers: list[str],
    execution_status: str | None,
    statuses: list[str | None],
) -> str | None:
    """Why a step claimed with ``token`` is no longer this worker's to finish, given its
    execution's status and the stored statuses of the step and of ``containers`` (in
    :meth:`RedisStore.running_claims` order), or None while it is. The same conditions as
    the fixed guards of the step's commit (``commit.prepare_transition``)."""
    step_status, *container_statuses = statuses
    if step_status != f"RUNNING:{token}":
        now = (step_status or "gone").split(":", 1)[0]
        return f"its step is no longer this attempt's ({now}: timed out, or run elsewhere)"
    for container, status in zip(containers, container_statuses, strict=True):
        if status != "RUNNING":
            return f"the state {state_name(container)!r} it runs in ended ({status or 'gone'})"
    if execution_status != "RUNNING":
        return f"its execution is {execution_status or 'gone'}"
    return None


@dataclass
class _Watch:
    """A running step watched for cancellation."""

    context: ActivityContext
    token: str
    task_id: str | None
    hostname: str | None
    containers: list[str] = field(default_factory=list)
    cancelled_at: float | None = None
    revoked_at: float | None = None
    warned: bool = False


# -- leases -----------------------------------------------------------------------------


class LeaseKeeper:
    """Renews the leases of the steps running in this process, from one thread.

    A step whose lease is not renewed (its worker died) is dispatched again by the
    reconciler in the timer loop, within ``lease_seconds``. The same thread cancels the
    steps that are no longer this process's to finish (see the module doc).
    """

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._watched: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._outage = OutageLog(logger)

    def holding(
        self,
        execution_id: str,
        step_key: str,
        context: ActivityContext | None = None,
        token: str = "",
        request: Any = None,
    ) -> _Held:
        """Context manager: keep this step's lease alive while the body runs; with a
        ``context`` (and the step's claim ``token``, and the Celery ``request`` running
        it), cancel it when the step is no longer this process's to finish."""
        watch = None
        if context is not None:
            watch = _Watch(
                context,
                token,
                getattr(request, "id", None),
                getattr(request, "hostname", None),
                ancestors(step_key),
            )
        return _Held(self, lease_member(execution_id, step_key), watch)

    def _add(self, member: str, watch: _Watch | None) -> None:
        with self._lock:
            self._held[member] = self._held.get(member, 0) + 1
            if watch is not None:
                self._watched[member] = watch
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="orchestrator-leases", daemon=True
                )
                self._thread.start()

    def _remove(self, member: str, watch: _Watch | None) -> None:
        with self._lock:
            count = self._held.get(member, 0) - 1
            if count <= 0:
                self._held.pop(member, None)
            else:
                self._held[member] = count
            if watch is not None and self._watched.get(member) is watch:
                del self._watched[member]

    def _run(self) -> None:
        renewed = time.monotonic()
        failing = ""  # the failure last logged: a lasting one is logged once
        while True:
            try:
                renewed = self._round(renewed)
                failing = ""
            except Exception as exc:  # noqa: BLE001 - the keeper outlives any one round
                # (settings that no longer parse, say): the steps it holds need renewing.
                if repr(exc) != failing:
                    failing = repr(exc)
                    logger.warning("step lease keeper: a round failed", exc_info=True)
                time.sleep(WATCH_INTERVAL_S)

    def _round(self, renewed: float) -> float:
        """Sleep, watch for cancellations, renew when a third of the lease has passed since
        ``renewed``; when the leases were last renewed."""
        # A short lease is renewed as often as before the watch existed (every third
        # of it): sleeping the watch's interval alone let a 1 s lease lapse under load.
        time.sleep(min(WATCH_INTERVAL_S, get_settings().lease_seconds / 3))
        with self._lock:
            watched = dict(self._watched)
        if watched:
            self._watch(watched)
        if time.monotonic() - renewed >= get_settings().lease_seconds / 3:
            renewed = time.monotonic()
            self._renew()
        return renewed

    def _renew(self) -> None:
        with self._lock:
            members = [
                member
                for member in self._held
                if member not in self._watched or self._watched[member].cancelled_at is None
            ]
        if not members:
            return
        try:
            store = get_store()
            until = time.time() + get_settings().lease_seconds
            # XX: renew only leases that still exist (a finished step's is gone).
            store.renew_leases(members, until)
        except Exception as exc:  # noqa: BLE001 - keep renewing after a Redis hiccup
            if not self._outage.failed(exc):  # an outage: one line when it starts
                logger.warning("could not renew step leases", exc_info=True)
        else:
            self._outage.ok()

    def _watch(self, watched: dict[str, _Watch]) -> None:
        """Cancel the watched steps that are no longer ours; terminate those cancelled
        longer than the grace period ago."""
        pending = {m: w for m, w in watched.items() if w.cancelled_at is None}
        if pending:
            try:
                claims = get_store().running_claims(
                    [
                        (w.context.execution_id, w.context.step_key, w.containers)
                        for w in pending.values()
                    ]
                )
            except Exception as exc:  # noqa: BLE001 - Redis down: look again next time
                if not self._outage.failed(exc):
                    logger.warning("could not check running steps", exc_info=True)
                claims = []
            for watch, (execution_status, statuses) in zip(pending.values(), claims, strict=False):
                reason = cancel_reason(watch.token, watch.containers, execution_status, statuses)
                if reason is not None:
                    watch.cancelled_at = time.monotonic()
                    watch.context.cancel(reason)
                    logger.info(
                        "cancelled activity of %s/%s: %s",
                        watch.context.execution_id,
                        watch.context.step_key,
                        reason,
                        extra={
                            "execution_id": watch.context.execution_id,
                            "state": watch.context.state,
                        },
                    )
        grace = get_settings().cancel_grace_seconds
        now = time.monotonic()
        for watch in watched.values():
            if watch.cancelled_at is not None and now - watch.cancelled_at >= grace:
                self._overdue(watch, now)

    def _overdue(self, watch: _Watch, now: float) -> None:
        """A cancelled activity still runs after the grace period."""
        ctx = watch.context
        if not _pool_process:
            if not watch.warned:
                watch.warned = True
                logger.warning(
                    "cancelled activity of %s/%s still runs %.1f s after its cancellation; "
                    "a threads or solo pool cannot kill it: its slot frees when it returns "
                    "or calls heartbeat()",
                    ctx.execution_id,
                    ctx.step_key,
                    now - (watch.cancelled_at or now),
                    extra={"execution_id": ctx.execution_id, "state": ctx.state},
                )
            return
        if watch.revoked_at is None:
            watch.revoked_at = now
            logger.warning(
                "cancelled activity of %s/%s still runs after the grace period; "
                "terminating its pool process (pid %d)",
                ctx.execution_id,
                ctx.step_key,
                os.getpid(),
                extra={"execution_id": ctx.execution_id, "state": ctx.state},
            )
            if watch.task_id and watch.hostname:
                try:
                    _revoke(watch.task_id, watch.hostname)
                    return
                except Exception:  # noqa: BLE001 - fall through to killing ourselves
                    logger.warning("could not ask the worker to terminate us", exc_info=True)
            _kill_self()
        elif now - watch.revoked_at >= SELF_KILL_AFTER_S:
            _kill_self()


def _revoke(task_id: str, hostname: str) -> None:
    """Ask this pool process's worker (its main process) to terminate the process running
    ``task_id``; the pool starts another in its place."""
    app.control.revoke(task_id, terminate=True, signal="SIGKILL", destination=[hostname])


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Held:
    def __init__(self, keeper: LeaseKeeper, member: str, watch: _Watch | None = None) -> None:
        self.keeper = keeper
        self.member = member
        self.watch = watch

    def __enter__(self) -> None:
        self.keeper._add(self.member, self.watch)

    def __exit__(self, *_: object) -> None:
        self.keeper._remove(self.member, self.watch)


leases = LeaseKeeper()
