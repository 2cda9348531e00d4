"""The execution view of states named with ``/``, ``[``, ``]``, ``|`` and ``%`` (issue 14
item 6): every run maps onto its node, and pages show the names as written."""

from __future__ import annotations

import html

from orchestrator import start_workflow
from orchestrator.language.stepkeys import escape_name
from tests.helpers import wait_until
from tests.integration import test_state_names as names


def test_graph_statuses_and_page_show_the_names(client) -> None:
    handle = start_workflow(names.definition(), {"go": True, "items": [1, 2]})
    execution_id = handle.execution_id
    body = wait_until(
        lambda: (
            (b := client.get(f"/api/executions/{execution_id}").json())["status"] == "SUCCEEDED"
            and b
        ),
        20,
        message="succeeded",
    )
    states = body["states"]
    par, mapped = escape_name(names.PARALLEL), escape_name(names.MAP)
    expected = {
        escape_name(names.TASK): "succeeded",
        escape_name(names.CHOICE): "succeeded",
        escape_name(names.NOT_TAKEN): "notreached",
        par: "succeeded",
        f"{par}[0]/{escape_name(names.BRANCH_TASK)}": "succeeded",
        f"{par}[1]/{escape_name(names.BRANCH_PASS)}": "succeeded",
        mapped: "succeeded",
        f"{mapped}[*]/{escape_name(names.ITEM_TASK)}": "succeeded",
        f"{mapped}[*]/{escape_name(names.TRY)}": "caught",
        f"{mapped}[*]/{escape_name(names.HANDLED)}": "succeeded",
        escape_name(names.CATCHER): "caught",
        escape_name(names.CAUGHT): "succeeded",
    }
    assert states == expected
    page = client.get(f"/executions/{execution_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for name in (names.TASK, names.PARALLEL, names.BRANCH_PASS, names.ITEM_TASK, names.CAUGHT):
        assert name in text
    # A run inside the Map, selected by its step key, is shown with its names as written.
    item_key = next(
        e["key"]
        for e in client.get(f"/api/executions/{execution_id}/history").json()
        if e["state"] == names.ITEM_TASK
    )
    details = client.get(f"/executions/{execution_id}", params={"state": item_key})
    assert details.status_code == 200
    shown = html.unescape(details.text)
    assert f"{names.MAP}[" in shown and "%2F" not in shown.split('id="state-item"')[1][:200]
