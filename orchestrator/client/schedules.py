"""Schedules: start a workflow on a rate, a cron expression or once, fired by beat.

``create_schedule("nightly", "order_fulfillment", "cron(0 2 * * ? *)")`` and the timer
process (beat) starts ``order_fulfillment`` every night at 02:00 UTC, as execution
``nightly-<YYYYMMDDTHHMMSS>Z``. Expressions and their time zones, daylight saving, the
overlap policies and catch-up are described in orchestrator/language/schedules.py and
the README's "Schedules" section; how a firing is guarded in
orchestrator/engine/schedules.py.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.client import inputs
from orchestrator.client.api import DefinitionSource, start_workflow, validate_definition
from orchestrator.client.control import stop_execution
from orchestrator.client.models import to_datetime
from orchestrator.config import get_settings
from orchestrator.engine import schedules as engine
from orchestrator.engine.store import RedisStore, get_store, store_call
from orchestrator.errors import (
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidInputError,
    OrchestratorError,
)
from orchestrator.language.jsontext import dumps
from orchestrator.language.schedules import (
    SCHEDULE_NAME,
    Overlap,
    ScheduleError,
    Spec,
    local_to_epoch,
    zone,
)


class ScheduleNotFound(OrchestratorError, KeyError):
    """No schedule has this name."""

    def __str__(self) -> str:
        return f"no schedule named {self.args[0]!r}"


class ScheduleAlreadyExists(OrchestratorError):
    """A schedule with this name exists already."""

    def __str__(self) -> str:
        return f"schedule {self.args[0]!r} exists already"


class _Launcher:
    """What the engine's firings start and stop executions with (set at import)."""

    def start(self, target: str, input_text: str, name: str) -> str:
        return start_workflow(target, json.loads(input_text), name=name).execution_id

    def stop(self, execution_id: str, cause: str) -> None:
        try:
            stop_execution(execution_id, "Schedule.Cancelled", cause)
        except (ExecutionNotFound, InvalidExecutionState):
            pass  # it ended (or expired) meanwhile


LAUNCHER = _Launcher()
engine.set_launcher(LAUNCHER)


@dataclass(frozen=True)
class ScheduleFiring:
    """One entry of a schedule's log: what happened to one firing."""

    type: str
    """``STARTED``, ``SKIPPED`` (overlap), ``MISSED`` (beyond the catch-up window:
    ``count`` firings from ``scheduled`` to ``last``), ``BUFFERED``, ``CANCELLED`` (the
    running execution stopped by CANCEL_OTHER), ``FAILED`` (the target could not start),
    ``PAUSED``, ``RESUMED``."""
    scheduled: dt.datetime | None
    at: dt.datetime
    execution: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleDescription:
    """A schedule, its next fire times and its latest firings."""

    name: str
    target: str
    expression: str
    input: Any
    timezone: str
    overlap: str
    catchup_window: float
    start: dt.datetime | None
    end: dt.datetime | None
    enabled: bool
    created: dt.datetime
    next_fire_times: list[dt.datetime]
    last_execution: str | None
    buffered: dt.datetime | None
    firings: list[ScheduleFiring]
    """The latest log entries, newest first."""

    @property
    def executions(self) -> list[str]:
        """The executions of the latest firings, newest first."""
        return [f.execution for f in self.firings if f.type == "STARTED" and f.execution]

    @property
    def skipped(self) -> list[ScheduleFiring]:
        """The latest firings skipped (overlap) or missed (beyond the catch-up window)."""
        return [f for f in self.firings if f.type in ("SKIPPED", "MISSED")]


def _epoch(value: dt.datetime | float | int | None, tz_name: str, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            epoch = local_to_epoch(value, zone(tz_name))
            if epoch is None:
                raise InvalidInputError(f"{what} {value} does not exist in {tz_name}")
            return epoch
        return int(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    raise InvalidInputError(f"{what}: a datetime or epoch seconds, not {value!r}")


def _store() -> RedisStore:
    """The store, with the schedules earlier versions wrote moved to their keys now (a
    client upgraded before beat must not miss them, nor create one of the same name):
    one read per process once none is left."""
    store = get_store()
    store.ensure_schedules_migrated()
    return store


def _target(target: DefinitionSource) -> str:
    """The target as the text start_workflow takes: a name, an ARN or a definition."""
    if isinstance(target, dict):
        validate_definition(target)
        return dumps(target)
    if not isinstance(target, str) or not target.strip():
        raise InvalidInputError("a schedule's target is a workflow, version or alias name")
    if target.lstrip().startswith("{") or "\n" in target:
        validate_definition(target)
    return target


@store_call(mutates=True)
def create_schedule(
    name: str,
    target: DefinitionSource,
    expression: str,
    *,
    input: Any = None,
    timezone: str = "UTC",
    overlap: Overlap | str = "SKIP",
    catchup_window: float | dt.timedelta | None = None,
    start: dt.datetime | float | None = None,
    end: dt.datetime | float | None = None,
    enabled: bool = True,
) -> ScheduleDescription:
    """Create a schedule that starts ``target`` with ``input`` on ``expression``.

    Args:
        name: 1-56 of ``A-Z a-z 0-9 _ . -`` (each firing's execution is named
            ``<name>-<YYYYMMDDTHHMMSS>Z``).
        target: What ``start_workflow`` starts: a workflow's name (a file under the
            workflows folder), a registered state machine, version or alias (name or
            ARN), or a definition. Names are resolved at each firing.
        expression: ``rate(5 minutes)``, ``rate(30 seconds)``, ``cron(0 2 * * ? *)`` or
            ``at(2026-12-01T10:00:00)`` (EventBridge Scheduler's).
        input: Every execution's input (default ``{}``).
        timezone: The IANA zone cron and at expressions (and naive start/end) are read in.
        overlap: ``SKIP``, ``BUFFER_ONE``, ``ALLOW_ALL`` or ``CANCEL_OTHER``: what a firing
            does while the last execution still runs.
        catchup_window: Seconds (or a timedelta) a firing may be late (beat was down) and
            still fire; later ones are skipped and recorded. Default 60 s.
        start, end: No firing before ``start`` or after ``end`` (a rate counts its
            periods from ``start``).
        enabled: False creates it paused.

    Raises:
        InvalidInputError: an argument is unusable. ScheduleAlreadyExists: the name is taken.
    """
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise InvalidInputError(f"schedule name {name!r}: use 1-56 of A-Z a-z 0-9 _ . -")
    target_text = _target(target)
    input_text = inputs.input_text({} if input is None else input, get_settings().max_input_bytes)
    try:
        overlap = Overlap(overlap)
    except ValueError:
        raise InvalidInputError(
            f"overlap {overlap!r}: one of {', '.join(o.value for o in Overlap)}"
        ) from None
    if isinstance(catchup_window, dt.timedelta):
        catchup_window = catchup_window.total_seconds()
    if catchup_window is not None and (
        not isinstance(catchup_window, int | float) or catchup_window < 0
    ):
        raise InvalidInputError(f"catchup_window {catchup_window!r}: seconds, 0 or more")
    created = int(time.time())
    try:
        first, last = _epoch(start, timezone, "start"), _epoch(end, timezone, "end")
        spec = Spec.build(expression, timezone, created, first, last)
    except ScheduleError as exc:
        raise InvalidInputError(str(exc)) from None
    next_time = spec.next_after(created)
    fields = {
        "target": target_text,
        "expression": expression.strip(),
        "input": input_text,
        "timezone": timezone,
        "overlap": overlap.value,
        "catchup": "" if catchup_window is None else str(int(catchup_window)),
        "start": "" if first is None else str(first),
        "end": "" if last is None else str(last),
        "created": str(created),
        "enabled": "1" if enabled else "0",
        "next": "" if next_time is None else str(next_time),
    }
    fields = {k: v for k, v in fields.items() if v != ""}
    look = float(next_time) if enabled and next_time is not None else None
    if not _store().create_schedule(name, fields, created, look):
        raise ScheduleAlreadyExists(name)
    return describe_schedule(name)


def _record(name: str) -> engine.Record:
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise ScheduleNotFound(name)
    raw = _store().schedule(name)
    if not raw:
        raise ScheduleNotFound(name)
    return engine.Record(name, raw)


def _firing(text: str) -> ScheduleFiring:
    entry = json.loads(text)
    kind, scheduled, at = entry.pop("type"), entry.pop("scheduled", None), entry.pop("at")
    return ScheduleFiring(
        type=kind,
        scheduled=None if scheduled is None else to_datetime(scheduled),
        at=to_datetime(at),
        execution=entry.pop("execution", None),
        details=entry,
    )


@store_call(mutates=False)
def describe_schedule(name: str, next_count: int = 5, log_count: int = 20) -> ScheduleDescription:
    """A schedule, its next ``next_count`` fire times and its latest firings.

    Raises:
        ScheduleNotFound: no schedule has this name.
    """
    record = _record(name)
    return _description(record, _store().schedule_log(name, log_count), next_count)


def _description(record: engine.Record, log: list[str], next_count: int) -> ScheduleDescription:
    raw = record.raw
    upcoming: list[int] = []
    if record.enabled and record.next is not None:
        upcoming = [record.next, *record.spec.times(record.next, next_count - 1)]
    return ScheduleDescription(
        name=record.name,
        target=raw["target"],
        expression=raw["expression"],
        input=json.loads(raw.get("input") or "{}"),
        timezone=raw.get("timezone", "UTC"),
        overlap=record.overlap.value,
        catchup_window=float(record.catchup),
        start=to_datetime(raw["start"]) if raw.get("start") else None,
        end=to_datetime(raw["end"]) if raw.get("end") else None,
        enabled=record.enabled,
        created=to_datetime(raw["created"]),
        next_fire_times=[to_datetime(t) for t in upcoming[:next_count]],
        last_execution=raw.get("last"),
        buffered=to_datetime(raw["buffered"]) if raw.get("buffered") else None,
        firings=[_firing(text) for text in log],
    )


@store_call(mutates=False)
def list_schedules(limit: int = 1000) -> list[ScheduleDescription]:
    """Every schedule (the first ``limit`` by creation), with its next fire time."""
    store = _store()
    names = store.schedule_names(0, limit)
    return [
        _description(engine.Record(name, raw), [], 1)
        for name, raw in zip(names, store.schedule_records(names), strict=True)
        if raw
    ]


def _change(name: str, change: Any) -> ScheduleDescription:
    """Apply ``change(record) -> (fields, look_at, events)`` under the version guard,
    reading again if a firing moved the schedule meanwhile."""
    store = _store()
    while True:
        record = _record(name)
        fields, look, events = change(record)
        if store.update_schedule(name, record.version, fields, look, events, engine.LOG_KEEP):
            return describe_schedule(name)


@store_call(mutates=True)
def pause_schedule(name: str) -> ScheduleDescription:
    """Stop firing ``name`` until :func:`resume_schedule` (a buffered firing waits too)."""

    def change(record: engine.Record) -> tuple[dict[str, str], float | None, list[str]]:
        return {"enabled": "0"}, None, [engine.event("PAUSED", None, time.time())]

    return _change(name, change)


@store_call(mutates=True)
def resume_schedule(name: str) -> ScheduleDescription:
    """Fire ``name`` again from now on: what fell due while it was paused is not fired."""

    def change(record: engine.Record) -> tuple[dict[str, str], float | None, list[str]]:
        now = int(time.time())
        next_time = record.spec.next_after(now)
        fields = {"enabled": "1", "next": "" if next_time is None else str(next_time)}
        look = engine.look_at(next_time, record.buffered, now)
        return fields, look, [engine.event("RESUMED", None, now)]

    return _change(name, change)


@store_call(mutates=True)
def trigger_schedule(name: str) -> ScheduleDescription:
    """Fire ``name`` now, whatever its expression (paused or not), under its overlap
    policy; the execution is named ``<name>-<now>Z-manual``."""
    _record(name)
    store = _store()
    while not engine.fire_schedule(store, name, time.time(), LAUNCHER, manual=True):
        if not store.schedule(name):
            raise ScheduleNotFound(name)
    return describe_schedule(name)


@store_call(mutates=True)
def delete_schedule(name: str) -> None:
    """Delete ``name`` and its log (its executions stay).

    Raises:
        ScheduleNotFound: no schedule has this name.
    """
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise ScheduleNotFound(name)
    if not _store().delete_schedule(name):
        raise ScheduleNotFound(name)
