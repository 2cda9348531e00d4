"""Schedules fired by the timer process (beat): each firing starts one execution.

A schedule is a hash in Redis (keys.py: ``{S}:schedule:{n}``) and a member of
``{S}:due`` scored by when the timer process looks at it next (``{S}``, how every
schedule key starts, holds one hash tag: each call on the schedules touches one slot).
Each tick takes the schedules due (:data:`BATCH` at most) and, for each:

1. works out what is due from its ``next`` scheduled time (orchestrator/language/
   schedules.py's :func:`catch_up`: firings missed beyond ``catchup`` seconds are skipped
   and counted, the rest fire, :data:`FIRINGS_PER_LOOK` at most);
2. decides each firing against the status of the schedule's last execution (its
   ``overlap`` policy) and starts its execution, named after the schedule and the
   scheduled time (``nightly-20261201T020000Z``). An execution name is an idempotency key
   (the same name and input return the existing execution), so however many beats fire
   one scheduled time, and whichever of them dies after starting it, one execution runs;
3. records the outcome in one guarded write (schedules.lua ``update``): the new ``next``,
   the last execution, the log entries. The write is refused if the schedule's version
   moved since it was read (another beat fired it first, it was paused or deleted), so a
   firing is recorded once.

Starting and stopping executions is the client's (``start_workflow`` resolves a target:
a workflow name, a definition, a registered state machine, version or alias), above this
layer: the engine calls a :class:`Launcher` it is handed (:func:`set_launcher`), which
``orchestrator.client.schedules`` provides when imported; :func:`launcher` imports that
module by name (:data:`DEFAULT_LAUNCHER`) in a process that has not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from celery.utils.imports import symbol_by_name

from orchestrator.engine.store import OUTAGE_ERRORS, RedisStore
from orchestrator.errors import StoreUnavailable
from orchestrator.language.schedules import (
    SKIP_COUNT_LIMIT,
    CatchUp,
    Decision,
    Overlap,
    Spec,
    catch_up,
    decide,
    execution_name,
)

logger = logging.getLogger("orchestrator.engine.schedules")

#: Schedules looked at per tick at most; the rest wait for the next tick.
BATCH = 100
#: Firings one look at a schedule starts at most (a catch-up of many waits a tick more).
FIRINGS_PER_LOOK = 20
#: While a BUFFER_ONE firing waits, the schedule is looked at again this often (s).
BUFFER_POLL_S = 1
#: Log entries kept per schedule.
LOG_KEEP = 100
#: The catch-up window when a schedule sets none (seconds): a firing later than this
#: (beat was down) is skipped and recorded.
DEFAULT_CATCHUP_S = 60
#: Where the launcher comes from in a process that did not set one.
DEFAULT_LAUNCHER = "orchestrator.client.schedules:LAUNCHER"


class Launcher(Protocol):
    """Starts and stops a schedule's executions (the client's ``start_workflow`` and
    ``stop_execution``)."""

    def start(self, target: str, input_text: str, name: str) -> str:
        """Start ``target`` with ``input_text`` (JSON) as execution ``name``; return its
        id (the existing execution's if ``name`` was started with the same input)."""
        ...

    def stop(self, execution_id: str, cause: str) -> None:
        """Stop a running execution (nothing if it ended)."""
        ...


_launcher: Launcher | None = None


def set_launcher(value: Launcher) -> None:
    """Hand the engine what starts and stops executions."""
    global _launcher
    _launcher = value


def launcher() -> Launcher:
    """The launcher set, else :data:`DEFAULT_LAUNCHER`'s (importing it sets it)."""
    if _launcher is None:
        set_launcher(symbol_by_name(DEFAULT_LAUNCHER))
    assert _launcher is not None
    return _launcher


@dataclass(frozen=True)
class Record:
    """A schedule's hash, read."""

    name: str
    raw: dict[str, str]

    @property
    def version(self) -> str:
        return self.raw["v"]

    @property
    def spec(self) -> Spec:
        raw = self.raw
        return Spec.build(
            raw["expression"],
            raw.get("timezone", "UTC"),
            int(raw["created"]),
            int(raw["start"]) if raw.get("start") else None,
            int(raw["end"]) if raw.get("end") else None,
        )

    @property
    def overlap(self) -> Overlap:
        return Overlap(self.raw.get("overlap", "SKIP"))

    @property
    def catchup(self) -> int:
        value = self.raw.get("catchup")
        return int(value) if value else DEFAULT_CATCHUP_S

    @property
    def enabled(self) -> bool:
        return self.raw.get("enabled") == "1"

    @property
    def next(self) -> int | None:
        value = self.raw.get("next")
        return int(value) if value else None

    @property
    def buffered(self) -> int | None:
        value = self.raw.get("buffered")
        return int(value) if value else None


def look_at(next_time: int | None, buffered: int | None, now: int) -> float | None:
    """When the timer process looks at a schedule next: its next fire time, or within
    :data:`BUFFER_POLL_S` while a firing waits in the buffer; None: never (it is over)."""
    times = [t for t in (next_time, (now + BUFFER_POLL_S) if buffered else None) if t]
    return float(min(times)) if times else None


def event(kind: str, scheduled: int | None, now: float, **details: Any) -> str:
    """A log entry: what happened to the firing of ``scheduled`` at ``now``."""
    entry = {"type": kind, "scheduled": scheduled, "at": round(now, 3), **details}
    return json.dumps({k: v for k, v in entry.items() if v is not None})


def fire_due(store: RedisStore, now: float, launch: Launcher | None = None) -> int:
    """Fire the schedules due by ``now``; return how many were looked at."""
    # Deployments upgraded from the untagged keys keep their schedules: moved at beat's
    # first tick (then never looked for again by this process).
    store.ensure_schedules_migrated()
    names = store.due_schedules(now, BATCH)
    if not names:
        return 0
    launch = launch or launcher()
    for name in names:
        try:
            fire_schedule(store, name, now, launch)
        except Exception:  # noqa: BLE001 - one broken schedule must not stop the rest
            logger.exception("firing schedule %s failed; trying again next tick", name)
    return len(names)


def fire_schedule(
    store: RedisStore,
    name: str,
    now: float,
    launch: Launcher,
    *,
    manual: bool = False,
) -> bool:
    """Look at schedule ``name`` once: start what is due (and, ``manual``, a firing now
    whatever its expression says); False if another process changed it meanwhile
    (nothing recorded: it handled this look)."""
    raw = store.schedule(name)
    if not raw:
        return False
    record = Record(name, raw)
    seconds = int(now)
    last = raw.get("last")
    status = store.execution_status(last) if last else None
    running = status == "RUNNING"
    buffered = record.buffered
    fields: dict[str, str] = {}
    events: list[str] = []

    def start(scheduled: int, manual_firing: bool = False) -> bool:
        nonlocal last, running
        execution = execution_name(name, scheduled, manual_firing)
        try:
            execution_id = launch.start(raw["target"], raw.get("input") or "{}", execution)
        except Exception as exc:  # noqa: BLE001 - recorded; an outage is raised below
            if _outage(exc):
                raise
            events.append(event("FAILED", scheduled, now, error=f"{type(exc).__name__}: {exc}"))
            return False
        last, running = execution_id, True
        fields["last"] = execution_id
        events.append(event("STARTED", scheduled, now, execution=execution_id))
        return True

    def handle(scheduled: int, manual_firing: bool = False) -> None:
        nonlocal buffered
        decision = decide(record.overlap, running, buffered is not None)
        if decision is Decision.SKIP:
            events.append(event("SKIPPED", scheduled, now, reason="overlap", running=last))
        elif decision is Decision.BUFFER:
            buffered = scheduled
            fields["buffered"] = str(scheduled)
            events.append(event("BUFFERED", scheduled, now, running=last))
        else:
            if decision is Decision.CANCEL_AND_START and last:
                launch.stop(last, f"schedule {name}: overlap CANCEL_OTHER")
                events.append(event("CANCELLED", scheduled, now, execution=last))
            start(scheduled, manual_firing)

    if buffered is not None and not running and record.enabled:
        scheduled, buffered = buffered, None
        fields["buffered"] = ""
        start(scheduled)
    plan = CatchUp([], 0, None, None, record.next)
    if record.enabled:
        plan = catch_up(record.spec, record.next, seconds, record.catchup, FIRINGS_PER_LOOK)
        if plan.skipped:
            events.append(
                event(
                    "MISSED",
                    plan.skipped_first,
                    now,
                    count=plan.skipped,
                    at_least=True if plan.skipped >= SKIP_COUNT_LIMIT else None,
                    last=plan.skipped_last,
                    reason=f"later than the catch-up window ({record.catchup} s)",
                )
            )
        for scheduled in plan.fire:
            handle(scheduled)
    if manual:
        handle(seconds, manual_firing=True)
    fields["next"] = "" if plan.next is None else str(plan.next)
    at = look_at(plan.next, buffered, seconds) if record.enabled else None
    return store.update_schedule(name, record.version, fields, at, events, LOG_KEEP)


def _outage(exc: BaseException) -> bool:
    """A Redis outage (raised: the look is tried again) rather than the target's fault."""
    return isinstance(exc, (StoreUnavailable, *OUTAGE_ERRORS))
