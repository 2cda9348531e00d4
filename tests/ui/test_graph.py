"""The state graph: layout and SVG, without Redis."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.client.models import ExecutionDescription, ExecutionStatus, HistoryEvent
from orchestrator.examples import WORKFLOWS_DIR
from orchestrator.ui.graph import Graph, edge_segments
from tests.ui.workflows import FAN_OUT, NESTED, ORDER_APPROVAL, ORDER_SHIPPING

ROOT = Path(__file__).resolve().parents[2]
ORDER = json.loads((WORKFLOWS_DIR / "order_fulfillment.asl.json").read_text())
NOW = datetime.now(UTC)


def describe(status: str) -> ExecutionDescription:
    return ExecutionDescription(
        execution_id="x", name="x", workflow="w", status=ExecutionStatus(status), start_time=NOW
    )


def event(
    i: int, type_: str, state: str | None = None, key: str | None = None, **details
) -> HistoryEvent:
    return HistoryEvent(id=i, type=type_, timestamp=NOW, state=state, key=key, details=details)


def overlaps(a, b) -> bool:
    return not (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)


def test_order_layout_is_top_to_bottom_without_overlaps():
    graph = Graph(ORDER)
    nodes = graph.root.nodes
    main = [
        "ValidateOrder",
        "ChargePayment",
        "ReserveInventory",
        "IsExpress",
        "StandardShipping",
        "SendConfirmation",
        "Fulfilled",
    ]
    ys = [nodes[n].y for n in main]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    # The main line stays in one column.
    centre = nodes["ValidateOrder"].x + nodes["ValidateOrder"].w / 2
    for name in ("ChargePayment", "ReserveInventory", "IsExpress", "SendConfirmation"):
        assert abs(nodes[name].x + nodes[name].w / 2 - centre) < 1
    values = list(nodes.values())
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            assert not overlaps(a, b), (a.name, b.name)
        assert a.x >= 0 and a.x + a.w <= graph.root.width


def test_nested_scopes_are_drawn_inside_their_state():
    graph = Graph(FAN_OUT)
    both = graph.nodes["Both"]
    assert len(both.children) == 2
    for branch in both.children:
        assert branch.x >= 0 and branch.x + branch.width <= both.w
        assert branch.y + branch.height <= both.h
    assert graph.path_of_step("Each[7]/Echo") == "Each[*]/Echo"
    assert graph.path_of_step("Both[1]/Right") == "Both[1]/Right"
    assert graph.path_of_step("Both[5]/Right") is None
    assert graph.path_of_step("Nope") is None


def test_statuses_from_steps_and_history():
    graph = Graph(FAN_OUT)
    steps = {
        "Both|s": "SUCCEEDED",
        "Both[1]/Right|s": "SUCCEEDED",
        "Each|s": "RUNNING",
        "Each[0]/Echo|s": "SUCCEEDED",
        "Each[1]/Echo|s": "RETRYING",
        "Each[2]/Echo|s": "RUNNING:claim",
        "Each[1]/Echo": json.dumps({"state": "Echo", "attempt": 1}),
    }
    history = [
        event(1, "ExecutionStarted"),
        event(2, "PassStateEntered", "Left", key="Both[0]/Left", input={}),
        event(3, "PassStateExited", "Left", key="Both[0]/Left", output={}),
    ]
    states = graph.states(describe("RUNNING"), history, steps)
    assert states["Both[0]/Left"].status == "succeeded"
    assert states["Each"].status == "running"
    folded = states["Each[*]/Echo"]
    assert folded.status == "retrying"
    assert folded.counts == {"succeeded": 1, "retrying": 1, "running": 1}
    # Once the execution is aborted, what was in flight shows as aborted.
    ended = graph.states(describe("ABORTED"), history, steps)
    assert ended["Each[*]/Echo"].status == "aborted"
    assert ended["Both"].status == "succeeded"


def test_svg_marks_nodes_and_escapes_names():
    definition = {
        "StartAt": "<b>&",
        "States": {"<b>&": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }
    graph = Graph(definition)
    svg = graph.svg(graph.states(describe("RUNNING"), [], {}), selected="Done", link="?state=")
    assert "<b>&" not in svg and "&lt;b&gt;&amp;" in svg
    assert svg.count('data-status="notreached"') == 2
    assert re.search(r'class="node selected"[^>]*data-path="Done"', svg)
    assert 'href="?state=%3Cb%3E%26#details"' in svg


LOOP = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "A"}],
            "Default": "C",
        },
        "C": {"Type": "Succeed"},
    },
}


def test_loops_and_bad_definitions_do_not_break_layout():
    graph = Graph(LOOP)
    assert graph.root.lanes  # the back edge B -> A goes round the side
    assert "<svg" in graph.svg({})
    assert Graph({}).svg({}).startswith("<svg")
    assert Graph({"StartAt": 3, "States": {"X": "nonsense"}}).nodes["X"].type == "?"


def test_runs_are_told_apart_by_step_key():
    graph = Graph(NESTED)
    history = [
        event(1, "ExecutionStarted"),
        event(2, "PassStateEntered", "Square", key="Prepare[0]/Square", input={"n": 1}),
        event(3, "PassStateExited", "Square", key="Prepare[0]/Square", output={"p": 1}),
        event(4, "TaskStateEntered", "Square", key="Prepare[1]/Square", input={"n": 2}),
        event(5, "TaskScheduled", "Square", key="Prepare[1]/Square"),
        event(6, "TaskStarted", "Square"),  # the runtime's TaskStarted carries no key
        event(7, "TaskFailed", "Square", key="Prepare[1]/Square", error="E", cause="c"),
        event(8, "TaskStateEntered", "Charge", key="ChargeEach[0]/Charge", input=4),
        event(9, "TaskScheduled", "Charge", key="ChargeEach[0]/Charge"),
        event(10, "TaskStateExited", "Charge", key="ChargeEach[0]/Charge", output=40),
        event(11, "TaskStateEntered", "Charge", key="ChargeEach[1]/Charge", input=9),
        event(12, "TaskScheduled", "Charge", key="ChargeEach[1]/Charge"),
        event(13, "TaskScheduled", "Charge", key="ChargeEach[1]/Charge"),
    ]
    steps = {"ChargeEach[1]/Charge|s": "RUNNING", "ChargeEach[1]/Charge": "{}"}
    states = graph.states(describe("RUNNING"), history, steps)
    left, right = states["Prepare[0]/Square"], states["Prepare[1]/Square"]
    assert left.status == "succeeded" and list(left.runs) == ["Prepare[0]/Square"]
    assert left.runs["Prepare[0]/Square"].output == {"p": 1}
    assert right.status == "caught" and right.runs["Prepare[1]/Square"].error == "E"
    charge = states["ChargeEach[*]/Charge"]
    assert charge.counts == {"succeeded": 1, "running": 1}
    first, second = charge.runs["ChargeEach[0]/Charge"], charge.runs["ChargeEach[1]/Charge"]
    assert (first.input, first.output, first.attempts) == (4, 40, 1)
    assert (second.input, second.has_output, second.attempts, second.item) == (
        9,
        False,
        2,
        "ChargeEach[1]",
    )


def test_resolve_paths_step_keys_and_names():
    graph = Graph(NESTED)
    assert graph.resolve("Route") == ("Route", "Route", [])
    assert graph.resolve("Prepare[1]/Square") == ("Prepare[1]/Square", "Prepare[1]/Square", [])
    assert graph.resolve("ChargeEach[*]/Charge") == ("ChargeEach[*]/Charge", None, [])
    assert graph.resolve("ChargeEach[3]/Charge") == (
        "ChargeEach[*]/Charge",
        "ChargeEach[3]/Charge",
        [],
    )
    assert graph.resolve("Charge") == ("ChargeEach[*]/Charge", None, [])
    assert graph.resolve("Square") == (None, None, ["Prepare[0]/Square", "Prepare[1]/Square"])
    assert graph.resolve("Nope") == (None, None, [])


#: A Choice whose Default skips two states of its main column, beside a neighbour in the
#: same layer (the Default used to be drawn through them), and a back edge.
SKIPS = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.a", "IsPresent": True, "Next": "One"},
                {"Variable": "$.b", "IsPresent": True, "Next": "Side"},
            ],
            "Default": "Three",
        },
        "Side": {"Type": "Pass", "Next": "Check"},
        "One": {
            "Type": "Task",
            "Resource": "x",
            "Next": "Two",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Three"}],
        },
        "Two": {"Type": "Pass", "Next": "Three"},
        "Three": {"Type": "Succeed"},
    },
}


def _scopes(scope):
    yield scope
    for node in scope.nodes.values():
        for child in node.children:
            yield from _scopes(child)


def _crosses_box(segment, node, eps=0.5) -> bool:
    (ax, ay), (bx, by) = segment
    left, right = node.x + eps, node.x + node.w - eps
    top, bottom = node.y + eps, node.y + node.h - eps
    x0, x1 = sorted((ax, bx))
    y0, y1 = sorted((ay, by))
    return x0 < right and x1 > left and y0 < bottom and y1 > top


@pytest.mark.parametrize(
    "definition",
    [ORDER, FAN_OUT, NESTED, ORDER_APPROVAL, ORDER_SHIPPING, SKIPS, LOOP],
    ids=["order_fulfillment", "fan_out", "nested", "approval", "shipping", "skips", "loop"],
)
def test_no_edge_crosses_a_node_box(definition):
    graph = Graph(definition)
    checked = 0
    for scope in _scopes(graph.root):
        for edge in scope.edges:
            assert len(edge.points) >= 2, edge
            segments = edge_segments(edge)
            for segment in segments:
                (ax, ay), (bx, by) = segment
                assert ax == bx or ay == by, f"{edge} is not orthogonal"
                for node in scope.nodes.values():
                    assert not _crosses_box(segment, node), (
                        f"{edge.source} -> {edge.target} ({edge.kind}) crosses {node.path}"
                    )
                    checked += 1
            # It starts on its source's bottom and ends on its target's top.
            source, target = scope.nodes[edge.source], scope.nodes[edge.target]
            assert edge.points[0][1] == pytest.approx(source.y + source.h)
            assert edge.points[-1][1] == pytest.approx(target.y)
            assert all(0 <= x <= scope.width for x, _ in edge.points)
    assert checked
