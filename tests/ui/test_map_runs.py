"""The execution view of a Distributed Map: counts by status, links to the children,
and each child's link back to its parent."""

from __future__ import annotations

import copy

from orchestrator import list_map_run_children, list_map_runs, start_workflow

DMAP = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "Label": "Fan",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}


def test_the_parent_page_links_its_children_and_counts_them(client) -> None:
    handle = start_workflow(DMAP, {"items": list(range(60))})
    assert handle.result(20).status == "SUCCEEDED"
    (run,) = list_map_runs(handle.execution_id)
    html = client.get(f"/executions/{handle.execution_id}").text
    assert "Map Run Fan" in html and run.map_run_arn in html
    assert "<dt>Succeeded</dt><dd>60</dd>" in html and "<dt>Children</dt><dd>60</dd>" in html
    first = list_map_run_children(run.map_run_arn, limit=1)[0]
    assert f'href="/executions/{first.execution_id}"' in html
    assert "?children=50" in html  # the next page of children
    later = client.get(f"/executions/{handle.execution_id}?children=50").text
    assert list_map_run_children(run.map_run_arn, start=59)[0].execution_id in later
    child = client.get(f"/executions/{first.execution_id}").text
    assert f'href="/executions/{handle.execution_id}" id="parent-link"' in child


def test_an_express_child_page_says_it_keeps_no_state_history(client) -> None:
    definition = copy.deepcopy(DMAP)
    definition["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
    handle = start_workflow(definition, {"items": [1, 2]})
    assert handle.result(20).status == "SUCCEEDED"
    (run,) = list_map_runs(handle.execution_id)
    first = list_map_run_children(run.map_run_arn, limit=1)[0]
    html = client.get(f"/executions/{first.execution_id}").text
    assert '<dd id="execution-type">EXPRESS</dd>' in html and 'id="express-note"' in html
    described = client.get(f"/api/executions/{first.execution_id}").json()
    assert described["execution_type"] == "EXPRESS" and described["output"] == 1
    history = client.get(f"/api/executions/{first.execution_id}/history").json()
    assert [e["type"] for e in history] == ["ExecutionStarted", "ExecutionSucceeded"]
    parent = client.get(f"/executions/{handle.execution_id}").text
    assert 'id="express-note"' not in parent
