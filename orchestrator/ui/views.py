"""What the pages and the JSON API show: an execution's graph, state details, history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.api import describe_execution, get_execution_history
from orchestrator.models import ExecutionDescription, HistoryEvent
from orchestrator.store import get_store
from orchestrator.ui.data import (
    WaitingTask,
    get_execution_definition,
    raw_steps,
    waiting_tasks,
)
from orchestrator.ui.graph import STATUS_LABELS, Graph, Node, NodeState

#: Longest JSON value shown in full on a page (longer ones are cut, with a note).
MAX_VALUE_CHARS = 20_000
#: Most history rows a page shows (the newest ones; the API has them all).
MAX_HISTORY_ROWS = 2000
#: Most folded steps (Map items) listed in a state's details.
MAX_STEP_ROWS = 200
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class StateDetails:
    """The details panel of one state."""

    path: str
    name: str
    type: str
    status: str
    status_label: str
    resource: str | None
    attempts: int
    input: Any = None
    has_input: bool = False
    output: Any = None
    has_output: bool = False
    error: str | None = None
    cause: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    more_steps: int = 0
    waiting: list[WaitingTask] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)


@dataclass
class ExecutionView:
    """Everything the execution page shows."""

    description: ExecutionDescription
    history: list[HistoryEvent]
    graph: Graph
    states: dict[str, NodeState]
    waiting: list[WaitingTask]
    steps: dict[str, str]

    @property
    def redrivable(self) -> bool:
        return self.description.status.value in REDRIVABLE

    @property
    def running(self) -> bool:
        return self.description.status.value == "RUNNING"

    def statuses(self) -> dict[str, str]:
        return {path: state.status for path, state in self.states.items()}

    def details(self, path: str) -> StateDetails | None:
        node = self.graph.nodes.get(path)
        if node is None:
            return None
        return state_details(node, self.states[path], self.history, self.steps, self.waiting)


def load_execution(execution_id: str) -> ExecutionView:
    """Read an execution's description, history, steps and definition.

    Raises:
        ExecutionNotFound: no such execution.
    """
    store = get_store()
    description = describe_execution(execution_id, store=store)
    history = get_execution_history(execution_id, store=store)
    steps = raw_steps(execution_id, store=store)
    graph = Graph(get_execution_definition(execution_id, store=store))
    states = graph.states(description, history, steps)
    return ExecutionView(description, history, graph, states, waiting_tasks(steps), steps)


def state_details(
    node: Node,
    state: NodeState,
    history: list[HistoryEvent],
    steps: dict[str, str],
    waiting: list[WaitingTask],
) -> StateDetails:
    """The details of one node: its last input and output, error, attempts and steps."""
    details = StateDetails(
        path=node.path,
        name=node.name,
        type=node.type,
        status=state.status,
        status_label=STATUS_LABELS[state.status],
        resource=node.spec.get("Resource") if isinstance(node.spec.get("Resource"), str) else None,
        attempts=state.attempts,
        counts={STATUS_LABELS[k]: v for k, v in state.counts.items() if v},
    )
    for event in history:
        if event.state != node.name:
            continue
        details.event_ids.append(event.id)
        if event.type.endswith("StateEntered") and "input" in event.details:
            details.input, details.has_input = event.details["input"], True
        elif event.type.endswith("StateExited") and "output" in event.details:
            details.output, details.has_output = event.details["output"], True
        if "error" in event.details or "cause" in event.details:
            details.error = _text(event.details.get("error"))
            details.cause = _text(event.details.get("cause"))
    if node.type == "Fail" and details.error is None and state.entered:
        details.error = _text(node.spec.get("Error"))
        details.cause = _text(node.spec.get("Cause"))
    records: list[dict[str, Any]] = []
    for key, raw in state.steps[:MAX_STEP_ROWS]:
        record = _record(steps.get(key))
        attempts = record.get("attempt", 0) + 1 if record else None
        records.append({"key": key, "status": raw, "attempts": attempts})
    details.steps = sorted(records, key=lambda r: _natural(r["key"]))
    details.more_steps = max(0, len(state.steps) - MAX_STEP_ROWS)
    if len(state.steps) == 1 and records and records[0]["attempts"]:
        details.attempts = max(details.attempts, int(records[0]["attempts"]))
    details.waiting = [w for w in waiting if w.step_key in {k for k, _ in state.steps}]
    return details


def _record(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _natural(key: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def pretty(value: Any) -> str:
    """A value as indented JSON, cut at :data:`MAX_VALUE_CHARS`."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"\n… ({len(text) - MAX_VALUE_CHARS} more characters)"
    return text


def compact(value: Any, limit: int = 160) -> str:
    """A value as one line of JSON, cut at ``limit`` characters."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(start: datetime, stop: datetime | None) -> str:
    """A human duration from ``start`` to ``stop`` (or now)."""
    end = stop or datetime.now(UTC)
    return format_seconds(max(0.0, (end - start).total_seconds()))


def format_seconds(seconds: float) -> str:
    """A duration for people: ``0 ms``, ``380 ms``, ``12.5 s``, ``3 min 5 s``, ``2 h 4 min``.

    Never negative: history timestamps are rounded to the millisecond while the start time
    is not, so an event can look up to half a millisecond older than the execution (which
    used to show as ``+-0 ms``).
    """
    seconds = max(0.0, seconds)
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def timestamp(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def event_class(event_type: str) -> str:
    """A CSS class for a history event type."""
    for suffix, name in (
        ("Failed", "failed"),
        ("TimedOut", "failed"),
        ("Aborted", "aborted"),
        ("Succeeded", "succeeded"),
        ("Redriven", "running"),
        ("Started", "running"),
        ("Scheduled", "running"),
    ):
        if event_type.endswith(suffix):
            return name
    return "neutral"
