"""Starting an execution with a priority from the JSON API and the start form."""

from __future__ import annotations

from urllib.parse import urlsplit

from orchestrator import describe_execution

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def test_api_start_takes_a_priority(client, unique_name):
    response = client.post(
        "/api/executions", json={"definition": PASS, "name": unique_name, "priority": 7}
    )
    assert response.status_code == 201, response.text
    assert describe_execution(unique_name).priority == 7
    refused = client.post(
        "/api/executions", json={"definition": PASS, "name": f"{unique_name}-x", "priority": 10}
    )
    assert refused.status_code in (400, 422), refused.text
    assert "priority" in refused.text


def test_start_form_takes_a_priority(client):
    started = client.post(
        "/executions",
        data={
            "definition": '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
            "priority": "8",
        },
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    execution_id = urlsplit(started.headers["location"]).path.rsplit("/", 1)[-1]
    assert describe_execution(execution_id).priority == 8
    bad = client.post("/executions", data={"workflow": "order_fulfillment", "priority": "12"})
    assert bad.status_code == 400 and "Priority" in bad.text
    assert 'name="priority"' in client.get("/executions").text
