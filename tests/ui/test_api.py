"""The JSON API against the session's real Redis and in-process worker."""

from __future__ import annotations

import json

import pytest

import tests.ui.ui_activities  # noqa: F401 - registers the ui-* activities before the worker starts
from orchestrator import start_workflow
from orchestrator.engine.store import get_store
from tests.helpers import wait_until
from tests.ui.ui_activities import ship_key
from tests.ui.workflows import (
    FAN_OUT,
    ORDER_APPROVAL,
    ORDER_SHIPPING,
    OUT_OF_STOCK,
    order_input,
)


def wait_status(client, execution_id: str, *statuses: str, timeout: float = 20) -> dict:
    def done():
        body = client.get(f"/api/executions/{execution_id}").json()
        return body if body["status"] in statuses else None

    return wait_until(done, timeout, message=f"{execution_id} in {statuses}")


def wait_waiting(client, execution_id: str) -> dict:
    return wait_until(
        lambda: (b := client.get(f"/api/executions/{execution_id}").json())["waiting_tasks"] and b,
        15,
        message="a task waits for its token",
    )


def test_start_named_workflow_and_describe(client):
    order = order_input()
    response = client.post(
        "/api/executions", json={"definition": "order_fulfillment", "input": order}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    execution_id = body["execution_id"]
    assert body["url"] == f"/executions/{execution_id}"
    done = wait_status(client, execution_id, "SUCCEEDED")
    assert done["workflow"] == "order_fulfillment"
    assert done["output"]["confirmation"] == {"sent": True, "channel": "email"}
    assert done["states"]["Fulfilled"] == "succeeded"
    assert done["states"]["CancelOrder"] == "notreached"
    assert done["history_length"] > 10


def test_start_inline_asl_with_name_is_idempotent(client, unique_name):
    asl = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}
    first = client.post("/api/executions", json={"definition": asl, "name": unique_name})
    again = client.post(
        "/api/executions", json={"definition": json.dumps(asl), "name": unique_name}
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["execution_id"] == again.json()["execution_id"] == unique_name
    other = client.post(
        "/api/executions", json={"definition": asl, "name": unique_name, "input": {"x": 1}}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "already_exists"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"definition": "no_such_workflow"}, 404, "unknown_workflow"),
        ({"definition": "../../etc/passwd"}, 400, "invalid_definition"),
        ({"definition": "/etc/hostname"}, 400, "invalid_definition"),
        ({"definition": "{not json"}, 400, "invalid_json"),
        ({"definition": {"StartAt": "X", "States": {}}}, 400, "invalid_definition"),
        ({"definition": "order_fulfillment", "name": "has space"}, 400, "invalid_input"),
        ({"input": {}}, 422, "invalid_request"),
    ],
)
def test_start_rejects_bad_requests(client, payload, status, code):
    response = client.post("/api/executions", json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in response.text


def test_invalid_definition_lists_issues(client):
    response = client.post(
        "/api/executions",
        json={"definition": {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}},
    )
    assert response.status_code == 400
    assert any("B" in issue for issue in response.json()["error"]["details"])


def test_list_filters_by_status_and_workflow(client):
    ok = start_workflow("order_fulfillment", order_input())
    bad = start_workflow("order_fulfillment", order_input(OUT_OF_STOCK))
    ok.result(20), bad.result(20)
    failed = client.get("/api/executions", params={"status": "FAILED", "limit": 1000}).json()
    ids = [e["execution_id"] for e in failed["executions"]]
    assert bad.execution_id in ids and ok.execution_id not in ids
    assert all(e["status"] == "FAILED" for e in failed["executions"])
    mine = client.get(
        "/api/executions", params={"workflow": "order_fulfillment", "limit": 1000}
    ).json()["executions"]
    assert {ok.execution_id, bad.execution_id} <= {e["execution_id"] for e in mine}
    assert all(e["workflow"] == "order_fulfillment" for e in mine)
    starts = [e["start_time"] for e in mine]
    assert starts == sorted(starts, reverse=True)  # newest first
    row = next(e for e in mine if e["execution_id"] == bad.execution_id)
    assert row["error"] == "OrderFailed" and row["duration_seconds"] >= 0


def test_list_pages_with_cursor(client):
    for _ in range(3):
        start_workflow("order_fulfillment", order_input()).result(20)
    first = client.get("/api/executions", params={"limit": 2}).json()
    # Opaque: a position per partition ("2" with one partition, "1.0.1.0" with four).
    assert len(first["executions"]) == 2 and isinstance(first["next_cursor"], str)
    second = client.get(
        "/api/executions", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    both = client.get("/api/executions", params={"limit": 4}).json()
    assert [e["execution_id"] for e in first["executions"] + second["executions"]] == [
        e["execution_id"] for e in both["executions"]
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "BOGUS"},
        {"limit": 0},
        {"limit": 5000},
        {"workflow": "a b"},
        {"cursor": -1},
        {"cursor": "1..2"},
        {"cursor": "x"},
    ],
)
def test_list_validates_parameters(client, params):
    response = client.get("/api/executions", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_history_and_after(client):
    handle = start_workflow("order_fulfillment", order_input())
    handle.result(20)
    events = client.get(f"/api/executions/{handle.execution_id}/history").json()
    assert events[0]["type"] == "ExecutionStarted" and events[0]["id"] == 1
    assert events[-1]["type"] == "ExecutionSucceeded"
    later = client.get(f"/api/executions/{handle.execution_id}/history?after=5").json()
    assert later[0]["id"] == 6 and len(later) == len(events) - 5


def test_unknown_execution_is_404(client):
    for url in ("/api/executions/nope", "/api/executions/nope/history"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "No execution 'nope'.", "details": []}
        }
    assert client.post("/api/executions/nope/stop").status_code == 404
    assert client.post("/api/executions/nope/redrive").status_code == 404


def test_task_token_success_by_step_and_by_token(client):
    by_step = start_workflow(ORDER_APPROVAL, order_input())
    waiting = wait_waiting(client, by_step.execution_id)["waiting_tasks"]
    assert [w["step_key"] for w in waiting] == ["ManagerApproval"]
    response = client.post(
        "/api/task-tokens/success",
        json={
            "execution_id": by_step.execution_id,
            "step_key": "ManagerApproval",
            "output": {"approved": True},
        },
    )
    assert response.status_code == 200, response.text
    done = wait_status(client, by_step.execution_id, "SUCCEEDED")
    assert done["output"]["approval"] == {"approved": True}
    assert done["states"]["ManagerApproval"] == "succeeded"

    by_token = start_workflow(ORDER_APPROVAL, order_input())
    wait_waiting(client, by_token.execution_id)
    token = json.loads(
        get_store().client.hget(get_store().keys.steps(by_token.execution_id), "ManagerApproval")
    )["token"]
    assert client.post("/api/task-tokens/success", json={"token": token}).status_code == 200
    wait_status(client, by_token.execution_id, "SUCCEEDED")
    # Spent now.
    again = client.post("/api/task-tokens/success", json={"token": token})
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_token"


def test_task_token_failure_goes_through_catch(client):
    handle = start_workflow(ORDER_APPROVAL, order_input())
    wait_waiting(client, handle.execution_id)
    response = client.post(
        "/api/task-tokens/failure",
        json={
            "execution_id": handle.execution_id,
            "step_key": "ManagerApproval",
            "error": "Rejected",
            "cause": "over budget",
        },
    )
    assert response.status_code == 200, response.text
    done = wait_status(client, handle.execution_id, "FAILED")
    assert done["states"]["ManagerApproval"] == "caught"
    assert done["states"]["Declined"] == "failed"
    assert done["error"] == "Declined"


def test_task_token_validation(client):
    assert client.post("/api/task-tokens/success", json={}).status_code == 400
    assert client.post("/api/task-tokens/success", json={"token": "nope"}).status_code == 409
    handle = start_workflow("order_fulfillment", order_input())
    handle.result(20)
    response = client.post(
        "/api/task-tokens/failure",
        json={"execution_id": handle.execution_id, "step_key": "ChargePayment"},
    )
    assert response.status_code == 409
    assert "not waiting" in response.json()["error"]["message"]
    too_long = client.post("/api/task-tokens/failure", json={"token": "x", "error": "E" * 300})
    assert too_long.status_code == 422


def test_stop_then_redrive(client):
    handle = start_workflow(ORDER_APPROVAL, order_input())
    wait_waiting(client, handle.execution_id)
    response = client.post(
        f"/api/executions/{handle.execution_id}/stop",
        json={"error": "Cancelled", "cause": "customer called"},
    )
    assert response.status_code == 200, response.text
    body = client.get(f"/api/executions/{handle.execution_id}").json()
    assert body["status"] == "ABORTED" and body["error"] == "Cancelled"
    assert body["states"]["ManagerApproval"] == "aborted"
    assert body["states"]["ValidateOrder"] == "succeeded"
    again = client.post(f"/api/executions/{handle.execution_id}/stop")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    redriven = client.post(f"/api/executions/{handle.execution_id}/redrive")
    assert redriven.status_code == 200
    waiting = wait_waiting(client, handle.execution_id)
    assert waiting["redrive_count"] == 1
    assert waiting["states"]["ManagerApproval"] == "waiting"
    client.post(f"/api/executions/{handle.execution_id}/stop")


def test_dead_letters_and_redrive(client):
    order = order_input()
    handle = start_workflow(ORDER_SHIPPING, order)
    assert handle.result(20).status == "FAILED"
    letters = client.get("/api/dead-letters", params={"limit": 1000}).json()
    letter = next(item for item in letters if item["execution_id"] == handle.execution_id)
    assert letter["state"] == "ShipOrder" and letter["error"] == "CarrierUnavailable"
    assert letter["redrivable"] is True
    described = client.get(f"/api/executions/{handle.execution_id}").json()
    assert described["states"]["ShipOrder"] == "failed"
    assert described["states"]["Shipped"] == "notreached"
    get_store().client.set(ship_key(order["order_id"]), "1")  # the carrier is back
    assert client.post(f"/api/executions/{handle.execution_id}/redrive").status_code == 200
    done = wait_status(client, handle.execution_id, "SUCCEEDED")
    assert done["redrive_count"] == 1
    assert done["states"]["ShipOrder"] == "succeeded"
    letters = client.get("/api/dead-letters", params={"limit": 1000}).json()
    assert handle.execution_id not in {item["execution_id"] for item in letters}
    again = client.post(f"/api/executions/{handle.execution_id}/redrive")
    assert again.status_code == 409  # a SUCCEEDED execution cannot be redriven
    assert "SUCCEEDED" in again.json()["error"]["message"]


def test_parallel_and_map_states(client):
    handle = start_workflow(FAN_OUT, {"items": [1, 2, 3]})
    assert handle.result(20).status == "SUCCEEDED"
    states = client.get(f"/api/executions/{handle.execution_id}").json()["states"]
    assert states == {
        "Both": "succeeded",
        "Both[0]/Left": "succeeded",
        "Both[1]/Right": "succeeded",
        "Each": "succeeded",
        "Each[*]/Echo": "succeeded",
    }


def test_openapi_document(client):
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/api/executions",
        "/api/executions/{execution_id}",
        "/api/executions/{execution_id}/history",
        "/api/executions/{execution_id}/stop",
        "/api/executions/{execution_id}/redrive",
        "/api/task-tokens/success",
        "/api/task-tokens/failure",
        "/api/dead-letters",
    }
    assert set(paths["/api/executions"]) == {"get", "post"}
    assert not any(not path.startswith("/api/") for path in paths)  # pages stay out
    # No CDN-backed docs pages.
    assert client.get("/docs").status_code == 404
