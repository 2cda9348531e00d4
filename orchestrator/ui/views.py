"""What the pages and the JSON API show: an execution's graph, state details, history."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.client.api import describe_execution, get_execution_history
from orchestrator.client.models import ExecutionDescription, HistoryEvent
from orchestrator.config import get_settings
from orchestrator.engine.records import step_record
from orchestrator.ui.data import (
    WaitingTask,
    get_execution_definition,
    raw_steps,
    unserved_queues,
    waiting_tasks,
)
from orchestrator.ui.graph import STATUS_LABELS, Graph, Node, NodeState, StepRun

#: Longest JSON value shown in full on a page (longer ones are cut, with a note).
MAX_VALUE_CHARS = 20_000
#: Most history rows a page shows (the newest ones; the API has them all).
MAX_HISTORY_ROWS = 2000
#: Map items listed per page of a state's details (a Map can have 100,000 of them).
ITEM_ROWS = 50
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class ItemRow:
    """One run of a state inside a Map: one item (or one branch of an item)."""

    key: str
    item: str
    status: str
    status_label: str
    attempts: int
    input: str | None
    output: str | None
    error: str | None
    cause: str | None


@dataclass
class StateDetails:
    """The details panel of one state.

    A state outside any Map runs once per execution path, so its details are that run's.
    A state inside a Map runs once per item: its details list the items, a page at a time,
    and show one item's input and output only when that item is selected (``item``).
    """

    path: str
    name: str
    type: str
    status: str
    status_label: str
    resource: str | None
    attempts: int | None
    input: Any = None
    has_input: bool = False
    output: Any = None
    has_output: bool = False
    error: str | None = None
    cause: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    per_item: bool = False
    item: str | None = None
    """The selected run's step key (``Map[3]/Charge``), inside a Map."""
    item_ran: bool = False
    items: list[ItemRow] = field(default_factory=list)
    items_total: int = 0
    items_first: int = 0
    """Position (from 1) of the first listed item among all of them."""
    items_page: int = 1
    items_pages: int = 1
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
    unserved: list[str] = field(default_factory=list)
    """Queues that steps of this execution wait on and no running worker consumes."""

    @property
    def default_queue(self) -> str:
        """The default queue (``ORCHESTRATOR_QUEUE``)."""
        return get_settings().queue

    @property
    def redrivable(self) -> bool:
        return self.description.status.value in REDRIVABLE

    @property
    def running(self) -> bool:
        return self.description.status.value == "RUNNING"

    def statuses(self) -> dict[str, str]:
        return {path: state.status for path, state in self.states.items()}

    def details(self, selector: str, page: int | None = None) -> StateDetails | None:
        """The details of what ``?state=`` names (see :meth:`Graph.resolve`): a node path,
        a step key (one Map item's run) or a state name only one node has; None if it
        names nothing (or several states: :meth:`candidates` lists them)."""
        path, item, _ = self.graph.resolve(selector)
        if path is None:
            return None
        node = self.graph.nodes[path]
        return state_details(node, self.states[path], self.steps, self.waiting, item, page)

    def candidates(self, selector: str) -> list[str]:
        """Node paths of the states named ``selector`` when it names several."""
        return self.graph.resolve(selector)[2]


def load_execution(execution_id: str) -> ExecutionView:
    """Read an execution's description, history, steps and definition.

    Raises:
        ExecutionNotFound: no such execution.
    """
    description = describe_execution(execution_id)
    history = get_execution_history(execution_id)
    steps = raw_steps(execution_id)
    graph = Graph(get_execution_definition(execution_id))
    states = graph.states(description, history, steps)
    unserved = unserved_queues(steps) if description.status.value == "RUNNING" else []
    return ExecutionView(description, history, graph, states, waiting_tasks(steps), steps, unserved)


def state_details(
    node: Node,
    state: NodeState,
    steps: dict[str, str],
    waiting: list[WaitingTask],
    item: str | None = None,
    page: int | None = None,
) -> StateDetails:
    """The details of one node, or of one of its runs (``item``, a step key).

    ``page`` is the page of the Map items list (from 1; default: the page holding
    ``item``, else the first). Only the listed items' values are formatted, and no
    store read is made: runs come from the history and step hash already loaded.
    """
    per_item = "[*]" in node.path
    details = StateDetails(
        path=node.path,
        name=node.name,
        type=node.type,
        status=state.status,
        status_label=STATUS_LABELS[state.status],
        resource=node.spec.get("Resource") if isinstance(node.spec.get("Resource"), str) else None,
        attempts=None,
        counts={STATUS_LABELS[k]: v for k, v in state.counts.items() if v},
        per_item=per_item,
    )
    key = item if per_item else node.path
    run = state.runs.get(key) if key else None
    if per_item and item:
        details.item = item
        details.status = run.status if run else "notreached"
        details.status_label = STATUS_LABELS[details.status]
    if run is not None:
        details.item_ran = True
        details.input, details.has_input = run.input, run.has_input
        details.output, details.has_output = run.output, run.has_output
        details.error, details.cause = run.error, run.cause
        details.attempts = _attempts(run, steps)
        details.event_ids = run.event_ids
    elif key is not None:
        details.attempts = 0
    if node.type == "Fail" and details.error is None and run is not None and run.entered:
        details.error = _text(node.spec.get("Error"))
        details.cause = _text(node.spec.get("Cause"))
    if per_item:
        _list_items(details, state, steps, page)
    live = {k for k, _ in state.steps}
    details.waiting = [
        w for w in waiting if w.step_key in live and (not details.item or w.step_key == item)
    ]
    return details


def _list_items(
    details: StateDetails, state: NodeState, steps: dict[str, str], page: int | None
) -> None:
    """One page of a Map state's runs, in item order."""
    keys = sorted(state.runs, key=item_order)
    details.items_total = len(keys)
    details.items_pages = max(1, -(-len(keys) // ITEM_ROWS))
    if page is None:
        page = 1
        if details.item in state.runs:
            page = keys.index(details.item) // ITEM_ROWS + 1
    details.items_page = min(max(1, page), details.items_pages)
    first = (details.items_page - 1) * ITEM_ROWS
    details.items_first = first + 1
    for key in keys[first : first + ITEM_ROWS]:
        run = state.runs[key]
        details.items.append(
            ItemRow(
                key=key,
                item=run.item,
                status=run.status,
                status_label=STATUS_LABELS[run.status],
                attempts=_attempts(run, steps),
                input=compact(run.input, 120) if run.has_input else None,
                output=compact(run.output, 120) if run.has_output else None,
                error=run.error,
                cause=_cut(run.cause, 200),
            )
        )


def _attempts(run: StepRun, steps: dict[str, str]) -> int:
    """A run's attempts: its TaskScheduled events, or its unfinished step's own count."""
    attempts = run.attempts
    if run.live is not None:
        record = step_record(steps, run.key)
        if record and isinstance(record.get("attempt"), int):
            attempts = max(attempts, record["attempt"] + 1)
    return attempts


_INDEX = re.compile(r"\[(\d+)\]")


def item_order(key: str) -> tuple[int, ...]:
    """Sort key of step keys in item order (``Map[10]/X`` after ``Map[9]/X``)."""
    return tuple(int(i) for i in _INDEX.findall(key))


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


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
