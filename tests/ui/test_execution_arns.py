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
