"""Distributed Map runs: describing a Map Run and listing its children.

A Distributed Map (``ItemProcessor.ProcessorConfig.Mode: DISTRIBUTED``) runs each item,
or batch, as a child execution of its own; the parent's history holds ``MapRunStarted``
and its end, not the items. These read what the engine keeps of a run
(orchestrator/engine/maprun.py): O(1) counters per run, and a page of children at a time.
"""

from __future__ import annotations

from orchestrator.client import inputs
from orchestrator.client.models import (
    ExecutionStatus,
    MapRunChild,
    MapRunCounts,
    MapRunDescription,
    to_datetime,
)
from orchestrator.engine import maprun
from orchestrator.engine.store import RedisStore, get_store, store_call
from orchestrator.errors import ExecutionNotFound


def _description(store: RedisStore, parent: str, key: str) -> MapRunDescription | None:
    run = maprun.map_run_summary(store, parent, key)
    if run is None:
        return None
    return MapRunDescription(
        map_run_arn=run["arn"],
        execution_id=parent,
        state_key=key,
        label=run.get("label", ""),
        status=run.get("status", "RUNNING"),
        start_time=to_datetime(run.get("start") or 0),
        stop_time=to_datetime(run["stop"]) if run.get("stop") else None,
        max_concurrency=run["max"],
        execution_type=run.get("type", "STANDARD"),
        counts=MapRunCounts(
            running=run["running"],
            succeeded=run["succeeded"],
            failed=run["failed"],
            timed_out=run["timed_out"],
            aborted=run["aborted"],
            total=run["next"],
        ),
        redrive_count=run["redrives"],
        error=run.get("error") or None,
        cause=run.get("cause") or None,
    )


@store_call(mutates=False)
def list_map_runs(execution_id: str) -> list[MapRunDescription]:
    """The Map Runs of an execution's Distributed Maps (one per Map state: a Map entered
    again starts a new run in its place), by state key.

    Raises:
        ExecutionNotFound: no such execution.
    """
    execution_id = inputs.known_id(execution_id)
    store = get_store()
    if not store.execution_exists(execution_id):
        raise ExecutionNotFound(execution_id)
    runs = [
        _description(store, execution_id, key) for key in store.map_run_containers(execution_id)
    ]
    return [run for run in runs if run is not None]


@store_call(mutates=False)
def describe_map_run(map_run_arn: str) -> MapRunDescription:
    """A Map Run by its ARN (``MapRunStarted``'s ``mapRunArn``, or ``list_map_runs``).

    Raises:
        ExecutionNotFound: no such Map Run (or its execution's retention expired).
    """
    store = get_store()
    found = maprun.find_map_run(store, map_run_arn) if isinstance(map_run_arn, str) else None
    description = _description(store, *found) if found else None
    if description is None:
        raise ExecutionNotFound(str(map_run_arn))
    return description


@store_call(mutates=False)
def list_map_run_children(
    map_run_arn: str, *, start: int = 0, limit: int = 100
) -> list[MapRunChild]:
    """Children ``start`` to ``start + limit - 1`` of a Map Run, in item order, with
    their statuses (one round trip per page).

    Raises:
        ExecutionNotFound: no such Map Run.
    """
    run = describe_map_run(map_run_arn)
    store = get_store()
    count = max(0, min(limit, run.counts.total - start))
    run_id = maprun.parse_map_run_arn(run.map_run_arn)
    assert run_id is not None
    return [
        MapRunChild(
            index=index,
            execution_id=child,
            status=ExecutionStatus(status) if status else None,
        )
        for index, child, status in maprun.child_page(
            store, run.execution_id, run_id[1], start, count
        )
    ]
