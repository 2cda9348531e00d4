"""The execution view of a parent and of its child workflow link to each other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import describe_execution, start_workflow
from orchestrator.testing import process_settings


@pytest.fixture
def workflows(orchestrator, tmp_path: Path) -> Iterator[Path]:
    settings = orchestrator.settings.model_copy(update={"workflows_dir": str(tmp_path)})
    with process_settings(settings):
        yield tmp_path


def test_parent_and_child_pages_link_both_ways(client, workflows) -> None:
    kid = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    (workflows / "ui_kid.asl.json").write_text(json.dumps(kid))
    call = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "arn:aws:states:::stateMachine:ui_kid"},
        "End": True,
    }
    handle = start_workflow({"StartAt": "Call", "States": {"Call": call}})
    assert handle.result(20).status == "SUCCEEDED"
    (child,) = describe_execution(handle.execution_id).children
    html = client.get(f"/executions/{handle.execution_id}").text
    assert f'href="/executions/{child.execution_id}" class="child-link"' in html
    page = client.get(f"/executions/{child.execution_id}").text
    assert f'href="/executions/{handle.execution_id}" id="parent-link"' in page
    assert "(state Call)" in page
