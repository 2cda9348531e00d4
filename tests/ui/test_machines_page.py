"""The state machines page lists the registry; the execution view names the version and
alias an execution ran."""

from __future__ import annotations

from typing import Any

from orchestrator import (
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    start_workflow,
    update_state_machine,
)
from orchestrator.language.arns import state_machine_arn


def passing(result: str) -> dict:
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True}}}


def test_the_machines_page_and_the_execution_view(client: Any, tag: str) -> None:
    name = f"ui-sm-{tag}"
    arn = state_machine_arn(name)
    create_state_machine(name, passing("v1"), publish=True, description="the first")
    update_state_machine(name, passing("v2"), publish=True, version_description="canary")
    create_state_machine_alias(name, "prod", [(1, 90), (2, 10)])
    try:
        page = client.get("/machines")
        assert page.status_code == 200
        html = page.text
        assert 'href="/machines" aria-current="page"' in html
        row = html.split(f'data-machine="{name}"')[1].split("</tr>")[0]
        assert arn in row and "the first" in row and "STANDARD" in row
        assert 'data-version="2"' in row and 'data-version="1"' in row and "canary" in row
        assert 'data-alias="prod"' in row and "1 (90%), 2 (10%)" in row

        handle = start_workflow(f"{arn}:1")
        handle.result(10)
        view = client.get(f"/executions/{handle.execution_id}").text
        assert f'id="execution-version">{arn}:1<' in view
        assert 'id="execution-alias"' not in view
        through_alias = start_workflow(f"{arn}:prod")
        through_alias.result(10)
        view = client.get(f"/executions/{through_alias.execution_id}").text
        assert f'id="execution-alias">{arn}:prod<' in view
        assert 'id="execution-revision"' in view
    finally:
        delete_state_machine(name)
    assert f'data-machine="{name}"' not in client.get("/machines").text
