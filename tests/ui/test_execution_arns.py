"""The UI's routes take an execution's ARN where they take its id (issue 14 item 5)."""

from __future__ import annotations

from orchestrator import describe_execution, start_workflow, stop_execution
from tests.helpers import machine, wait_until

WAITING = machine({"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}, Comment="arn-flow")


def test_api_and_page_take_an_execution_arn(client, unique_name: str) -> None:
    start_workflow(WAITING, {}, name=unique_name)
    arn = f"arn:aws:states:us-east-1:123456789012:execution:arn-flow:{unique_name}"
    body = client.get(f"/api/executions/{arn}").json()
    assert body["execution_id"] == unique_name and body["execution_arn"] == arn
    history = client.get(f"/api/executions/{arn}/history").json()
    assert history[0]["type"] == "ExecutionStarted"
    page = client.get(f"/executions/{arn}")
    assert page.status_code == 200 and arn in page.text
    assert client.post(f"/api/executions/{arn}/stop").status_code == 200
    assert describe_execution(unique_name).status.value == "ABORTED"
    assert client.post(f"/api/executions/{arn}/redrive").status_code == 200
    wait_until(lambda: describe_execution(unique_name).redrive_count == 1, 10, message="redrive")
    stop_execution(unique_name)
    missing = client.get("/api/executions/arn:aws:states:us-east-1:123456789012:execution:w:nope")
    assert missing.status_code == 404


def test_routes_take_an_arn_whose_workflow_holds_a_slash(client, unique_name: str) -> None:
    """A Distributed Map child's ARN names the workflow ``<parent's>/<label>`` (its
    ResultWriter writes it so): every execution route takes it, its slash as it is or
    percent-encoded (issue 14)."""
    from urllib.parse import quote

    from orchestrator.ui.context import execution_url

    start_workflow(WAITING, {}, name=unique_name)
    arn = f"arn:aws:states:us-east-1:123456789012:execution:arn-flow/Fan/Inner:{unique_name}"
    for spelled in (arn, quote(arn, safe=""), quote(arn, safe=":")):
        body = client.get(f"/api/executions/{spelled}")
        assert body.status_code == 200, (spelled, body.text)
        assert body.json()["execution_id"] == unique_name
        history = client.get(f"/api/executions/{spelled}/history")
        assert history.status_code == 200, (spelled, history.text)
        assert history.json()[0]["type"] == "ExecutionStarted"
        page = client.get(f"/executions/{spelled}")
        assert page.status_code == 200 and unique_name in page.text, spelled
    assert client.get(execution_url(arn)).status_code == 200
    assert client.post(f"/api/executions/{arn}/stop").status_code == 200
    assert describe_execution(unique_name).status.value == "ABORTED"
    assert client.post(f"/api/executions/{quote(arn, safe='')}/redrive").status_code == 200
    wait_until(lambda: describe_execution(unique_name).redrive_count == 1, 10, message="redrive")
    stopped = client.post(f"/executions/{arn}/stop", follow_redirects=False)
    assert stopped.status_code in (200, 303), stopped.text
    wait_until(lambda: describe_execution(unique_name).status.value == "ABORTED", 10)
    # A slash still cannot smuggle a name that is not an execution's.
    assert client.get("/api/executions/a/b").status_code == 404
    assert client.get("/executions/a/b").status_code == 404
