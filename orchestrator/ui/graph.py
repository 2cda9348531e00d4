"""The state graph of an execution: its definition's states laid out top to bottom,
each coloured by what happened to it, rendered as inline SVG on the server.

A node's *path* names it uniquely: a top-level state is ``Name``; a state of a Parallel
branch is ``Par[0]/Name``; a state of a Map's item processor is ``Map[*]/Name`` (every
item's step of that state is folded into the one node). Step keys of the engine
(``Map[3]/Charge``) map onto paths with :meth:`Graph.path_of_step`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from orchestrator.client.models import ExecutionDescription, HistoryEvent
from orchestrator.engine.records import step_statuses
from orchestrator.language.stepkeys import escape_name, unescape_name

#: Node statuses, in the order a folded node (a Map's states) reports them: the first
#: one any of its steps has wins.
STATUSES = (
    "waiting",
    "retrying",
    "running",
    "failed",
    "aborted",
    "caught",
    "succeeded",
    "notreached",
)
STATUS_LABELS = {
    "notreached": "not reached",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "caught": "caught",
    "retrying": "retrying",
    "waiting": "waiting",
    "aborted": "aborted",
}
#: Engine step statuses -> node statuses.
#: History events that end a state's attempt in failure.
_FAILURE_EVENTS = frozenset({"TaskFailed", "TaskTimedOut", "ParallelStateFailed", "MapStateFailed"})
_STEP_STATUS = {
    "SCHEDULED": "running",
    "RUNNING": "running",
    "JOINING": "running",
    "RETRYING": "retrying",
    "WAITING": "waiting",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "TIMED_OUT": "failed",
    "CAUGHT": "caught",
}
_IN_FLIGHT = {"running", "retrying", "waiting"}

# Geometry (px).
NODE_H = 46
NODE_MIN_W = 150
NODE_MAX_W = 250
CHAR_W = 7.4
H_GAP = 28
V_GAP = 44
PAD = 12
HEADER = 34
BRANCH_GAP = 14
LANE_GAP = 12
START_H = 34
MAX_LABEL = 30


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # next, choice, default, catch
    label: str = ""
    points: list[tuple[float, float]] = field(default_factory=list)
    """Its route, an orthogonal polyline in its scope's coordinates (set by the layout)."""


@dataclass
class Scope:
    """A state machine or one branch (or Map item processor) of it."""

    prefix: str
    start_at: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0
    height: float = 0
    lanes: list[tuple[Edge, float]] = field(default_factory=list)
    """Edges routed round the side (back edges, and skips with no free channel)."""
    x: float = 0
    y: float = 0
    """Position inside the container node (branches and item processors)."""


@dataclass
class Node:
    path: str
    name: str
    type: str
    spec: dict[str, Any]
    children: list[Scope] = field(default_factory=list)
    x: float = 0
    y: float = 0
    w: float = NODE_MIN_W
    h: float = NODE_H
    rank: int = 0


@dataclass
class StepRun:
    """What one step key (one state in one branch or Map item) did, from the history and,
    while it is unfinished, the step hash."""

    key: str
    status: str = "notreached"
    entered: int = 0
    exited: int = 0
    scheduled: int = 0
    last_event: str = ""
    input: Any = None
    has_input: bool = False
    output: Any = None
    has_output: bool = False
    error: str | None = None
    cause: str | None = None
    live: str | None = None
    """The engine status of its unfinished step (None once finished: the store forgets it)."""
    event_ids: list[int] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """Task attempts: one per TaskScheduled event (redrives included)."""
        return self.scheduled

    @property
    def item(self) -> str:
        """The branch or Map item it ran in (``Map[3]``), or "" at the top level."""
        return self.key.rpartition("/")[0]


@dataclass
class NodeState:
    """What happened to one node."""

    status: str = "notreached"
    steps: list[tuple[str, str]] = field(default_factory=list)
    """(step key, engine step status) of every unfinished step folded into the node."""
    counts: Counter[str] = field(default_factory=Counter)
    """How many of its runs (Map items) are in each node status."""
    entered: int = 0
    attempts: int = 0
    runs: dict[str, StepRun] = field(default_factory=dict)
    """Its runs by step key: one for a state outside any Map, one per item inside one."""


class Graph:
    """A definition's states, nested scopes included, with their layout."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.root = _build_scope(definition, "")
        self.nodes: dict[str, Node] = {}
        self.by_name: dict[str, list[Node]] = defaultdict(list)
        self._index(self.root)
        _layout(self.root)

    def _index(self, scope: Scope) -> None:
        for node in scope.nodes.values():
            self.nodes[node.path] = node
            self.by_name[node.name].append(node)
            for child in node.children:
                self._index(child)

    def path_of_step(self, step_key: str) -> str | None:
        """The node path of an engine step key (None if it does not fit the graph)."""
        parts = step_key.split("/")
        scope = self.root
        prefix = ""
        for part in parts[:-1]:
            name, bracket, index = part.rpartition("[")
            if not bracket or not index.endswith("]"):
                return None
            node = scope.nodes.get(unescape_name(name))
            if node is None or not node.children:
                return None
            if node.type == "Map":
                prefix += f"{name}[*]/"
                scope = node.children[0]
            else:
                try:
                    i = int(index[:-1])
                    scope = node.children[i]
                except (ValueError, IndexError):
                    return None
                prefix += f"{name}[{i}]/"
        if unescape_name(parts[-1]) not in scope.nodes:
            return None
        return prefix + parts[-1]

    def path_of_event(self, event: HistoryEvent) -> str | None:
        """The node path of a history event's state (None when it names no node).

        Events inside a branch or Map item carry their step key; an event without one is
        about a top-level state (``TaskStarted`` events carry no key even when nested,
        so a nested state's keyless event is not attributed)."""
        if event.key:
            return self.path_of_step(event.key)
        if event.state and event.state in self.root.nodes:
            return escape_name(event.state)
        return None

    def resolve(self, selector: str) -> tuple[str | None, str | None, list[str]]:
        """What ``?state=`` names: ``(node path, step key of one run or None, candidates)``.

        ``selector`` is a node path (``Map[*]/Charge``, ``Par[1]/Square``), a step key
        (``Map[3]/Charge``: that node, item 3), or a bare state name that exactly one node
        has. A name several nodes share gives no path, and their paths as candidates.
        """
        if selector in self.nodes:
            return selector, (selector if "[*]" not in selector else None), []
        path = self.path_of_step(selector)
        if path is not None:
            return path, selector, []
        found = [n.path for n in self.by_name.get(selector, [])]
        if len(found) == 1:
            return self.resolve(found[0])
        return None, None, found

    # -- statuses -------------------------------------------------------------------

    def states(
        self,
        description: ExecutionDescription,
        history: Iterable[HistoryEvent],
        steps: dict[str, str],
    ) -> dict[str, NodeState]:
        """Every node's status and runs, from the step hash (unfinished steps) and the
        history (everything else, and the states that run inline: Pass, Choice, Succeed,
        Fail). States are told apart by step key, so a name used in two branches, or a
        state run once per Map item, gets each run's own facts."""
        result = {path: NodeState() for path in self.nodes}
        runs: dict[str, StepRun] = {}
        paths: dict[str, str] = {}

        def run_of(key: str, path: str) -> StepRun:
            found = runs.get(key)
            if found is None:
                found = runs[key] = StepRun(key)
                paths[key] = path
            return found

        for key, status in step_statuses(steps).items():
            path = self.path_of_step(key)
            if path is None:
                continue
            result[path].steps.append((key, status))
            run_of(key, path).live = status
        # A Map's events repeat each item's key several times: look each key up once.
        known: dict[str, StepRun | None] = {}
        for event in history:
            if not event.state:
                continue
            key = event.key or event.state
            if key in known:
                run = known[key]
            else:
                path = self.path_of_event(event)
                run = known[key] = run_of(key, path) if path is not None else None
            if run is None:
                continue
            run.event_ids.append(event.id)
            kind = event.type
            if kind.endswith("StateEntered"):
                run.entered += 1
                if "input" in event.details:
                    run.input, run.has_input = event.details["input"], True
            elif kind.endswith("StateExited"):
                run.exited += 1
                if "output" in event.details:
                    run.output, run.has_output = event.details["output"], True
            elif kind == "TaskScheduled":
                run.scheduled += 1
            if "error" in event.details or "cause" in event.details:
                run.error = _text(event.details.get("error"))
                run.cause = _text(event.details.get("cause"))
            if kind != "TaskStarted":
                run.last_event = kind
        finished = description.status.value != "RUNNING"
        in_flight_end = "failed" if description.status.value == "TIMED_OUT" else "aborted"
        for key, run in runs.items():
            node = self.nodes[paths[key]]
            if run.live is not None:
                status = _STEP_STATUS.get(run.live, "running")
                if finished and status in _IN_FLIGHT:
                    status = in_flight_end
            elif not run.entered:
                continue  # only a keyless event (TaskStarted) of a top-level name
            elif node.type == "Fail":
                status = "failed"
            elif run.last_event in _FAILURE_EVENTS:
                # A finished step is forgotten by the store: a failure that is the run's
                # last word, with no failed step left behind, was caught.
                status = "caught"
            elif run.exited:
                status = "succeeded"
            elif finished:
                status = "failed"
            else:
                status = "running"
            run.status = status
            state = result[paths[key]]
            state.runs[key] = run
            state.counts[status] += 1
            state.entered += run.entered
            state.attempts += run.attempts
        for state in result.values():
            if state.counts:
                state.status = next(s for s in STATUSES if state.counts[s])
        return result

    # -- rendering ------------------------------------------------------------------

    def svg(
        self, states: dict[str, NodeState], *, selected: str | None = None, link: str = "?state="
    ) -> str:
        """The graph as an inline ``<svg>`` element; each node links to ``link + path``."""
        width = self.root.width
        height = self.root.height + START_H
        out = [
            f'<svg class="state-graph" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="State graph" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}">',
            "<defs>",
            '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
            'class="arrowhead"/></marker>',
            '<marker id="arrow-catch" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
            'class="arrowhead catch"/></marker>',
            "</defs>",
        ]
        start = self.root.nodes.get(self.root.start_at)
        if start is not None:
            cx = start.x + start.w / 2
            out.append(
                f'<g class="start-marker"><circle cx="{cx:.1f}" cy="10" r="7"/>'
                f'<line x1="{cx:.1f}" y1="17" x2="{cx:.1f}" y2="{START_H - 2}" '
                f'marker-end="url(#arrow)" class="edge"/></g>'
            )
        out.append(f'<g transform="translate(0,{START_H})">')
        self._render_scope(self.root, states, selected, link, out)
        out.append("</g></svg>")
        return "".join(out)

    def _render_scope(
        self,
        scope: Scope,
        states: dict[str, NodeState],
        selected: str | None,
        link: str,
        out: list[str],
    ) -> None:
        for edge in scope.edges:
            out.append(_edge_svg(scope, edge))
        for node in scope.nodes.values():
            state = states.get(node.path, NodeState())
            classes = "node" + (" selected" if node.path == selected else "")
            label = STATUS_LABELS[state.status]
            title = f"{node.name} ({node.type}): {label}"
            out.append(
                f'<a href="{escape(link + _quote(node.path))}#details" class="node-link" '
                f'data-path="{escape(node.path)}">'
                f'<g class="{classes}" data-state="{escape(node.name)}" '
                f'data-path="{escape(node.path)}" data-type="{escape(node.type)}" '
                f'data-status="{state.status}" transform="translate({node.x:.1f},{node.y:.1f})">'
                f"<title>{escape(title)}</title>"
                f'<rect class="box" width="{node.w:.1f}" height="{node.h:.1f}" rx="8"/>'
            )
            name = _truncate(node.name, int((node.w - 20) / CHAR_W))
            if node.children:
                out.append(
                    f'<text class="name" x="10" y="17">{escape(name)}</text>'
                    f'<text class="meta" x="10" y="29">{escape(_container_meta(node, state))}'
                    f' · <tspan class="status-label">{label}</tspan></text></g></a>'
                )
                for i, child in enumerate(node.children):
                    caption = "Item processor" if node.type == "Map" else f"Branch {i + 1}"
                    out.append(
                        f'<g class="branch" transform="translate({node.x + child.x:.1f},'
                        f'{node.y + child.y:.1f})"><rect class="branch-box" '
                        f'width="{child.width:.1f}" height="{child.height:.1f}" rx="6"/>'
                        f'<text class="branch-label" x="8" y="15">{caption}</text>'
                    )
                    self._render_scope(child, states, selected, link, out)
                    out.append("</g>")
            else:
                cx = node.w / 2
                out.append(
                    f'<text class="name" x="{cx:.1f}" y="20" text-anchor="middle">'
                    f"{escape(name)}</text>"
                    f'<text class="meta" x="{cx:.1f}" y="36" text-anchor="middle">'
                    f'{escape(node.type)} · <tspan class="status-label">{label}</tspan>'
                    "</text></g></a>"
                )


# -- building ---------------------------------------------------------------------------


def _build_scope(spec: dict[str, Any], prefix: str) -> Scope:
    states = spec.get("States") if isinstance(spec, dict) else None
    if not isinstance(states, dict):
        states = {}
    start_at = spec.get("StartAt") if isinstance(spec, dict) else None
    scope = Scope(prefix, start_at if isinstance(start_at, str) else "")
    for name, state in states.items():
        if not isinstance(state, dict):
            state = {}
        # Paths spell names as step keys do (escaped), so a key maps onto its node's path.
        node = Node(prefix + escape_name(name), name, str(state.get("Type", "?")), state)
        if node.type == "Parallel":
            branches = state.get("Branches")
            for i, branch in enumerate(branches if isinstance(branches, list) else []):
                node.children.append(_build_scope(branch, f"{node.path}[{i}]/"))
        elif node.type == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if isinstance(processor, dict):
                node.children.append(_build_scope(processor, f"{node.path}[*]/"))
        scope.nodes[name] = node
    for name, state in states.items():
        if isinstance(state, dict):
            scope.edges.extend(e for e in _edges(name, state) if e.target in scope.nodes)
    return scope


def _edges(name: str, state: dict[str, Any]) -> list[Edge]:
    edges = []
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            edges.append(Edge(name, rule["Next"], "choice"))
    if isinstance(state.get("Default"), str):
        edges.append(Edge(name, state["Default"], "default", "Default"))
    if isinstance(state.get("Next"), str):
        edges.append(Edge(name, state["Next"], "next"))
    for catcher in state.get("Catch") or []:
        if isinstance(catcher, dict) and isinstance(catcher.get("Next"), str):
            errors = catcher.get("ErrorEquals") or []
            label = ", ".join(str(e) for e in errors) if isinstance(errors, list) else ""
            edges.append(Edge(name, catcher["Next"], "catch", _truncate(label, 26)))
    # One drawn edge per (target, kind).
    seen: set[tuple[str, str]] = set()
    unique = []
    for edge in edges:
        if (edge.target, edge.kind) not in seen:
            seen.add((edge.target, edge.kind))
            unique.append(edge)
    return unique


# -- layout -----------------------------------------------------------------------------


def _layout(scope: Scope) -> None:
    for node in scope.nodes.values():
        if node.children:
            for child in node.children:
                _layout(child)
            inner_w = sum(c.width for c in node.children) + BRANCH_GAP * (len(node.children) - 1)
            inner_h = max(c.height for c in node.children)
            label_w = len(node.name) * CHAR_W + 150
            node.w = max(inner_w + 2 * PAD, min(label_w, 2 * NODE_MAX_W), NODE_MIN_W)
            node.h = HEADER + inner_h + PAD
            x = (node.w - inner_w) / 2
            for child in node.children:
                # Children are positioned relative to their container node.
                child.x, child.y = x, HEADER
                x += child.width + BRANCH_GAP
        else:
            node.w = min(max(NODE_MIN_W, len(node.name) * CHAR_W + 28), NODE_MAX_W)
            node.h = NODE_H
    layers = _rank(scope)
    _position(scope, layers)
    _route_lanes(scope, layers)


def _position(scope: Scope, layers: list[list[str]]) -> None:
    """Place layers top to bottom; a node goes under its predecessors (centred as a
    group with its siblings), pushed right where it would overlap a neighbour."""
    preds: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in scope.edges:
        if scope.nodes[edge.target].rank > scope.nodes[edge.source].rank:
            preds[edge.target].append((edge.source, edge.kind))
    centre: dict[str, float] = {}
    y: float = PAD + (18 if scope.prefix else 0)
    for layer in layers:
        wanted: dict[str, float] = {}
        primary: dict[str, int] = {}
        for name in layer:
            placed = [centre[p] for p, _ in preds[name] if p in centre]
            wanted[name] = sum(placed) / len(placed) if placed else float("inf")
            primary[name] = 0 if any(k != "catch" for _, k in preds[name]) else 1
        layer.sort(key=lambda n: (wanted[n], primary[n]))
        # Siblings wanting the same spot share it, centred; catch targets go aside.
        groups: list[list[str]] = []
        for name in layer:
            last = groups[-1][0] if groups else None
            if last is not None and (wanted[last], primary[last]) == (wanted[name], primary[name]):
                groups[-1].append(name)
            else:
                groups.append([name])
        right = float("-inf")
        free = 0.0
        for group in groups:
            group_w = sum(scope.nodes[n].w for n in group) + H_GAP * (len(group) - 1)
            target = wanted[group[0]]
            x = target - group_w / 2 if target != float("inf") else free
            if right != float("-inf"):
                x = max(x, right + H_GAP)
            for name in group:
                node = scope.nodes[name]
                node.x, node.y = x, y
                centre[name] = x + node.w / 2
                x += node.w + H_GAP
            right = x - H_GAP
            free = right + H_GAP
        y += max(scope.nodes[n].h for n in layer) + V_GAP
    if scope.nodes:
        shift = PAD - min(n.x for n in scope.nodes.values())
        for node in scope.nodes.values():
            node.x += shift
        scope.width = max(n.x + n.w for n in scope.nodes.values()) + PAD
        scope.height = y - V_GAP + PAD
    else:
        scope.width, scope.height = NODE_MIN_W, 2 * PAD


def _rank(scope: Scope) -> list[list[str]]:
    """Layers of node names: longest path from the start, ignoring back edges."""
    out_edges: dict[str, list[str]] = defaultdict(list)
    for edge in scope.edges:
        out_edges[edge.source].append(edge.target)
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}

    def visit(root: str) -> None:
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            name, i = stack.pop()
            targets = out_edges[name]
            if i < len(targets):
                stack.append((name, i + 1))
                target = targets[i]
                if state.get(target) == 1:
                    back.add((name, target))
                elif target not in state:
                    state[target] = 1
                    stack.append((target, 0))
            else:
                state[name] = 2
                order.append(name)

    roots = ([scope.start_at] if scope.start_at in scope.nodes else []) + list(scope.nodes)
    for root in roots:
        if root not in state:
            visit(root)
    topo = list(reversed(order))
    rank = dict.fromkeys(scope.nodes, 0)
    for name in topo:
        for target in out_edges[name]:
            if (name, target) not in back:
                rank[target] = max(rank[target], rank[name] + 1)
    discovery = {name: i for i, name in enumerate(topo)}
    layers: dict[int, list[str]] = defaultdict(list)
    for name in sorted(scope.nodes, key=lambda n: discovery.get(n, 0)):
        layers[rank[name]].append(name)
        scope.nodes[name].rank = rank[name]
    return [layers[r] for r in sorted(layers)]


def _route_lanes(scope: Scope, layers: list[list[str]]) -> None:
    """Route every edge as an orthogonal polyline that crosses no node box.

    Edges leave from the bottom of their source (spread along it when it has several) and
    enter the top of their target. They turn only in the free bands between layers: the
    band under the source's layer, and the band over the target's layer. Between the two
    they go down a free vertical channel through the layers they skip, or, going back up
    (or with no free channel), round a side lane right of everything they pass.
    """
    if not layers:
        return
    tops = [min(scope.nodes[n].y for n in layer) for layer in layers]
    bottoms = [max(scope.nodes[n].y + scope.nodes[n].h for n in layer) for layer in layers]
    # Turning rows: mid-band under each layer, and over each layer (over the first one
    # there is only the scope's top margin).
    under = [b + V_GAP / 2 for b in bottoms]
    over = [max(tops[0] / 2, tops[0] - V_GAP / 2)] + under[:-1]
    outgoing: dict[str, list[Edge]] = defaultdict(list)
    for edge in scope.edges:
        outgoing[edge.source].append(edge)
    lane_next = scope.width - PAD + LANE_GAP
    right_edge = scope.width
    for edge in scope.edges:
        source, target = scope.nodes[edge.source], scope.nodes[edge.target]
        sx = _exit_x(scope, source, edge, outgoing[edge.source])
        sy = source.y + source.h
        tx, ty = target.x + target.w / 2, target.y
        y1, y2 = under[source.rank], over[target.rank]
        if target.rank == source.rank + 1:
            edge.points = _orthogonal([(sx, sy), (sx, y1), (tx, y1), (tx, ty)])
            continue
        if target.rank > source.rank:
            blocked = [
                (
                    scope.nodes[n].x - LANE_GAP / 2,
                    scope.nodes[n].x + scope.nodes[n].w + LANE_GAP / 2,
                )
                for r in range(source.rank + 1, target.rank)
                for n in layers[r]
            ]
            channel = _free_channel(blocked, sx, tx)
            if channel is not None:
                edge.points = _orthogonal(
                    [(sx, sy), (sx, y1), (channel, y1), (channel, y2), (tx, y2), (tx, ty)]
                )
                continue
        lo, hi = sorted((source.rank, target.rank))
        right = max(
            scope.nodes[n].x + scope.nodes[n].w for r in range(lo, hi + 1) for n in layers[r]
        )
        x = max(right + LANE_GAP, lane_next)
        lane_next = x + LANE_GAP * 0.8
        scope.lanes.append((edge, x))
        right_edge = max(right_edge, x + PAD + 40)
        edge.points = _orthogonal([(sx, sy), (sx, y1), (x, y1), (x, y2), (tx, y2), (tx, ty)])
    scope.width = right_edge


def _exit_x(scope: Scope, source: Node, edge: Edge, siblings: list[Edge]) -> float:
    """Where an edge leaves its source's bottom: a Next from the centre, Catch edges
    spread over the right half, a Choice's rules and Default spread over the width; in
    the order of their targets, left to right, so that they do not cross each other."""
    if edge.kind == "next":
        return source.x + source.w / 2

    def order(e: Edge) -> tuple[float, int]:
        target = scope.nodes[e.target]
        return (target.x + target.w / 2, siblings.index(e))

    if edge.kind == "catch":
        catches = sorted((e for e in siblings if e.kind == "catch"), key=order)
        share = (catches.index(edge) + 1) / (len(catches) + 1)
        return source.x + source.w * (0.5 + 0.4 * share)
    branches = sorted((e for e in siblings if e.kind in ("choice", "default")), key=order)
    return source.x + source.w * (branches.index(edge) + 1) / (len(branches) + 1)


def _free_channel(blocked: list[tuple[float, float]], sx: float, tx: float) -> float | None:
    """An x between ``sx`` and ``tx`` (or nearest them) that no blocked interval holds."""
    candidates = [sx, tx, (sx + tx) / 2]
    spans = sorted(blocked)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start > end:
            candidates.append((end + start) / 2)
    if spans:
        candidates.append(min(s for s, _ in spans) - LANE_GAP / 2)
    free = [x for x in candidates if x >= PAD / 2 and not any(a <= x <= b for a, b in blocked)]
    if not free:
        return None
    return min(free, key=lambda x: (abs(x - sx) + abs(x - tx), x))


def _orthogonal(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The polyline without repeated points or needless middle points."""
    out: list[tuple[float, float]] = []
    for point in points:
        if out and abs(out[-1][0] - point[0]) < 0.05 and abs(out[-1][1] - point[1]) < 0.05:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if (abs(ax - bx) < 0.05 and abs(bx - point[0]) < 0.05) or (
                abs(ay - by) < 0.05 and abs(by - point[1]) < 0.05
            ):
                out[-1] = point
                continue
        out.append(point)
    return out


def edge_segments(edge: Edge) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The straight segments of an edge's route (its drawn corners are rounded inside
    them)."""
    return list(zip(edge.points, edge.points[1:], strict=False))


def _edge_svg(scope: Scope, edge: Edge) -> str:
    points = edge.points
    if len(points) < 2:
        return ""
    # Corners rounded with a radius no bigger than half the shorter neighbouring leg.
    parts_d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for i in range(1, len(points) - 1):
        (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[i + 1]
        r = min(8.0, abs(bx - ax + by - ay) / 2, abs(cx - bx + cy - by) / 2)
        px = bx - r * _sign(bx - ax)
        py = by - r * _sign(by - ay)
        qx = bx + r * _sign(cx - bx)
        qy = by + r * _sign(cy - by)
        parts_d.append(f"L{px:.1f},{py:.1f} Q{bx:.1f},{by:.1f} {qx:.1f},{qy:.1f}")
    end_x, end_y = points[-1]
    # Stop just short of the box so the arrowhead's tip touches it.
    prev_y = points[-2][1]
    parts_d.append(f"L{end_x:.1f},{end_y - 2 * _sign(end_y - prev_y):.1f}")
    d = " ".join(parts_d)
    label_x, label_y = points[0][0] + 4, points[0][1] + 14
    marker = "arrow-catch" if edge.kind == "catch" else "arrow"
    parts = [
        f'<g class="edge-group {edge.kind}"><path class="edge {edge.kind}" d="{d}" '
        f'marker-end="url(#{marker})"/>'
    ]
    if edge.label:
        parts.append(
            f'<text class="edge-label {edge.kind}" x="{label_x:.1f}" y="{label_y:.1f}">'
            f"{escape(edge.label)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def _sign(value: float) -> float:
    return (value > 0.05) - (value < -0.05)


def _container_meta(node: Node, state: NodeState) -> str:
    if node.type == "Parallel":
        return f"Parallel · {len(node.children)} branches"
    return "Map"


def _truncate(text: str, limit: int) -> str:
    limit = max(4, min(limit, MAX_LABEL))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def compact(value: Any) -> str:
    """A value as compact JSON, for tables."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
