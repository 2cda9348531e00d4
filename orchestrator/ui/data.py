"""Read-only look-ups the UI needs beyond the public API.

They read the store directly, following the key schema of :mod:`orchestrator.engine.keys`:
an execution's stored definition, a cheap listing of executions (summary fields, through
the walk every listing takes, with a workflow filter and paging), the raw step hash and
the tasks waiting for a task token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.client.api import (
    WORKFLOW_NAME,
    WORKFLOW_SUFFIXES,
    get_execution_definition,  # noqa: F401 - re-exported for the views
    scan_executions,
    workflow_dirs,
)
from orchestrator.client.inputs import EXECUTION_NAME
from orchestrator.client.models import ExecutionStatus, to_datetime
from orchestrator.engine import activities
from orchestrator.engine.cursors import ListingCursor
from orchestrator.engine.records import live_steps, status_field
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.errors import ExecutionNotFound
from orchestrator.language.stepkeys import unescape_name

#: Most index entries one listing request examines (bounds a rare-workflow filter).
MAX_SCAN = 5000


def valid_execution_id(execution_id: str) -> bool:
    """Whether ``execution_id`` could name an execution (ids are names or uuid hex)."""
    return bool(EXECUTION_NAME.match(execution_id))


def raw_steps(execution_id: str, *, store: RedisStore | None = None) -> dict[str, str]:
    """The execution's raw step hash (records, statuses and container counters)."""
    store = store or get_store()
    return store.steps(execution_id)


@dataclass(frozen=True)
class WaitingTask:
    """A ``.waitForTaskToken`` step waiting for its answer."""

    step_key: str
    state: str
    token: str
    since: datetime | None


def unserved_queues(steps: dict[str, str]) -> list[str]:
    """The queues that SCHEDULED (unclaimed) steps of a raw step hash wait on and no
    running worker consumes."""
    names = [
        str(step.record["activity"])
        for step in live_steps(steps)
        if step.status == "SCHEDULED" and step.record.get("activity")
    ]
    return activities.unserved_queues(names) if names else []


def waiting_tasks(steps: dict[str, str]) -> list[WaitingTask]:
    """Steps of a raw step hash that wait for a task token (status WAITING, with a token)."""
    found = []
    for step in live_steps(steps):
        if step.status != "WAITING":
            continue
        record = step.record
        token = record.get("token")
        if isinstance(token, str) and token:
            entered = record.get("entered")
            found.append(
                WaitingTask(
                    step.key,
                    str(record.get("state", unescape_name(step.key.rpartition("/")[2]))),
                    token,
                    to_datetime(entered) if isinstance(entered, int | float) else None,
                )
            )
    found.sort(key=lambda t: t.step_key)
    return found


def waiting_token(execution_id: str, step_key: str, *, store: RedisStore | None = None) -> str:
    """The task token of a step of ``execution_id`` that waits for one.

    Raises:
        ExecutionNotFound: no such execution.
        LookupError: that step does not wait for a task token.
    """
    store = store or get_store()
    if not store.execution_exists(execution_id):
        raise ExecutionNotFound(execution_id)
    status, record = store.step_state(execution_id, step_key)
    fields = ((step_key, record), (status_field(step_key), status))
    for task in waiting_tasks({k: v for k, v in fields if v is not None}):
        return task.token
    raise LookupError(f"step {step_key!r} is not waiting for a task token")


@dataclass(frozen=True)
class ExecutionSummary:
    """One row of the executions listing."""

    execution_id: str
    name: str
    workflow: str
    status: str
    start_time: datetime
    stop_time: datetime | None
    redrive_count: int
    error: str | None

    def duration_seconds(self, now: datetime) -> float:
        """Seconds from start to stop (or to ``now`` while running)."""
        end = self.stop_time or now
        return max(0.0, (end - self.start_time).total_seconds())


_FIELDS = ("status", "name", "workflow", "start", "stop", "redrives", "error")


def list_summaries(
    status: ExecutionStatus | None = None,
    workflow: str | None = None,
    limit: int = 50,
    cursor: str | int | None = None,
    *,
    store: RedisStore | None = None,
) -> tuple[list[ExecutionSummary], str | None]:
    """Executions newest first, filtered; returns them and the cursor of the next page.

    ``cursor`` (a previous page's; None for the first) holds a position in the listing
    index of the filters (by status, by workflow, by both, or by start time alone) of
    each partition (orchestrator/engine/cursors.py), so a page costs what its rows cost,
    however deep; the next cursor is None when those indexes hold nothing more (it is
    returned when the scan budget of :data:`MAX_SCAN` entries, spent only on expired or
    outdated entries, ran out first, so the caller can go on).

    Raises:
        InvalidInputError: ``cursor`` is not a cursor of this deployment's listings.
    """
    store = store or get_store()
    start = ListingCursor.parse(cursor, store.partitions)
    # The listing of the API and the CLI too; this one reads only the summary fields.
    found, position = scan_executions(
        store,
        _FIELDS,
        status=status,
        workflow=workflow,
        limit=limit,
        cursor=start,
        max_scan=MAX_SCAN,
    )
    rows = [_summary(execution_id, record) for execution_id, record in found]
    more = (
        store.execution_index_size(
            status=status.value if status is not None else None, workflow=workflow or None
        )
        > position.passed
    )
    return rows, position.text() if more else None


def _summary(execution_id: str, record: dict[str, str | None]) -> ExecutionSummary:
    error = record.get("error")
    try:
        error_text = json.loads(error) if error else None
    except ValueError:
        error_text = error
    return ExecutionSummary(
        execution_id=execution_id,
        name=record.get("name") or execution_id,
        workflow=record.get("workflow") or "",
        status=str(record["status"]),
        start_time=to_datetime(str(record["start"])),
        stop_time=to_datetime(str(record["stop"])) if record.get("stop") else None,
        redrive_count=int(record.get("redrives") or 0),
        error=error_text if isinstance(error_text, str) else None,
    )


def workflow_files() -> dict[str, Path]:
    """Definitions found by name, by workflow name: the workflows folder's, then the
    packaged examples' (a name in both is the folder's, as ``start_workflow`` finds it)."""
    found: dict[str, Path] = {}
    for folder in workflow_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            for suffix in WORKFLOW_SUFFIXES:
                if path.name.endswith(suffix):
                    name = path.name[: -len(suffix)]
                    if WORKFLOW_NAME.match(name):
                        found.setdefault(name, path)
                    break
    return found
