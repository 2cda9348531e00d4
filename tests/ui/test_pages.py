"""Server-rendered pages (no JavaScript) and the write protection."""

from __future__ import annotations

import html as html_lib
import re

import pytest

import tests.ui.ui_activities  # noqa: F401 - registers the ui-* activities before the worker starts
from orchestrator import start_workflow
from tests.helpers import wait_until
from tests.ui.workflows import NESTED, ORDER_APPROVAL, OUT_OF_STOCK, nested_input, order_input

TOKEN = "s3cret-ui-token"


def node(html: str, path: str) -> str:
    match = re.search(
        rf'<g class="node[^"]*" data-state="[^"]*" data-path="{re.escape(path)}"'
        r' data-type="\w+" data-status="(\w+)"',
        html,
    )
    assert match, f"no node {path}"
    return match.group(1)


def waiting_execution():
    handle = start_workflow(ORDER_APPROVAL, order_input())
    wait_until(lambda: any(s.status == "WAITING" for s in handle.describe().steps), 15)
    return handle


@pytest.fixture
def secured(orchestrator):
    from fastapi.testclient import TestClient

    from orchestrator.ui import create_app

    app = create_app(token=TOKEN, public_read=False)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as test_client:
        yield test_client


def test_execution_page_renders_graph_details_and_history(client):
    handle = start_workflow("order_fulfillment", order_input(OUT_OF_STOCK))
    handle.result(20)
    page = client.get(f"/executions/{handle.execution_id}?state=ReserveInventory")
    assert page.status_code == 200
    html = page.text
    assert node(html, "ReserveInventory") == "caught"
    assert node(html, "OrderFailed") == "failed"
    assert node(html, "Fulfilled") == "notreached"
    assert 'href="/executions/' in html and "?state=ReserveInventory#details" in html
    start = html.index('id="details"')
    details = html[start : html.index('class="card"', start)]
    assert "OutOfStock" in details and "not enough &#39;lamp&#39; in stock" in details
    assert "ExecutionFailed" in html and "TaskFailed" in html  # the history table
    assert 'action="/executions/' in html and "/redrive" in html  # the redrive form
    assert "/stop" not in html  # not running: no stop button
    fragment = client.get(f"/executions/{handle.execution_id}?state=CancelOrder&fragment=details")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "cancelled" in fragment.text


def test_unknown_state_and_execution_are_friendly_404s(client):
    handle = start_workflow("order_fulfillment", order_input())
    handle.result(20)
    missing = client.get(f"/executions/{handle.execution_id}?state=Nope")
    assert missing.status_code == 404 and "There is no state Nope" in missing.text
    page = client.get("/executions/does-not-exist")
    assert page.status_code == 404
    assert "No execution" in page.text and "<html" in page.text
    assert client.get("/no/such/page").status_code == 404


@pytest.mark.parametrize(
    "url",
    ["/?status=BOGUS", "/?limit=abc", "/?limit=0", "/?workflow=a%20b", "/dead-letters?limit=-1"],
)
def test_bad_query_parameters_give_400_pages(client, url):
    page = client.get(url)
    assert page.status_code == 400
    assert "callout failed" in page.text and "Traceback" not in page.text


def test_executions_page_filters(client):
    ok = start_workflow("order_fulfillment", order_input())
    bad = start_workflow("order_fulfillment", order_input(OUT_OF_STOCK))
    ok.result(20), bad.result(20)
    html = client.get("/?status=FAILED&limit=500").text
    assert bad.execution_id in html and ok.execution_id not in html
    html = client.get("/?workflow=order_fulfillment&limit=500").text
    assert bad.execution_id in html and ok.execution_id in html
    assert client.get("/?workflow=nothing_like_it").text.count("data-execution-id") == 0


def test_forms_approve_reject_stop_and_start(client):
    handle = waiting_execution()
    page = client.get(f"/executions/{handle.execution_id}").text
    assert node(page, "ManagerApproval") == "waiting"
    assert 'name="step_key" value="ManagerApproval"' in page
    assert "/stop" in page
    bad = client.post(
        f"/executions/{handle.execution_id}/tasks/approve",
        data={"step_key": "ManagerApproval", "output": "{nope"},
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    done = client.post(
        f"/executions/{handle.execution_id}/tasks/approve",
        data={"step_key": "ManagerApproval", "output": '{"ok": 1}'},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/executions/{handle.execution_id}?done=approved"
    assert handle.result(15).status == "SUCCEEDED"
    twice = client.post(
        f"/executions/{handle.execution_id}/tasks/approve", data={"step_key": "ManagerApproval"}
    )
    assert twice.status_code == 409 and "not waiting" in twice.text

    rejected = waiting_execution()
    response = client.post(
        f"/executions/{rejected.execution_id}/tasks/reject",
        data={"step_key": "ManagerApproval", "error": "Rejected", "cause": "no"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200 and response.json()["ok"] is True
    assert rejected.result(15).error == "Declined"

    stopped = waiting_execution()
    response = client.post(f"/executions/{stopped.execution_id}/stop", follow_redirects=False)
    assert response.status_code == 303
    assert stopped.describe().status == "ABORTED"
    html = client.get(f"/executions/{stopped.execution_id}").text
    assert node(html, "ManagerApproval") == "aborted"

    started = client.post(
        "/executions",
        data={
            "workflow": "order_fulfillment",
            "input": '{"order_id": "o-form", "items": [{"sku": "pen", "quantity": 1, "price": 2}]}',
        },
        follow_redirects=False,
    )
    assert started.status_code == 303 and "done=started" in started.headers["location"]
    nothing = client.post("/executions", data={"input": "{}"})
    assert nothing.status_code == 400 and "Choose a workflow" in nothing.text


def test_dead_letters_page(client):
    handle = start_workflow("order_fulfillment", order_input(OUT_OF_STOCK))
    handle.result(20)
    html = client.get("/dead-letters?limit=1000").text
    row = html[html.index(f'data-letter-id="{handle.execution_id}"') :]
    row = row[: row.index("</tr>")]
    assert "OrderFailed" in row and "/redrive" in row and 'value="dead-letters"' in row
    response = client.post(
        f"/executions/{handle.execution_id}/redrive",
        data={"return_to": "dead-letters"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/dead-letters")


def test_no_resource_from_elsewhere_and_security_headers(client):
    handle = start_workflow("order_fulfillment", order_input())
    handle.result(20)
    for url in ("/", f"/executions/{handle.execution_id}", "/dead-letters"):
        response = client.get(url)
        assert not re.search(r'(src|href)="(https?:)?//', response.text), url
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert 'name="viewport"' in response.text
    assert client.get("/static/ui.js").status_code == 200
    assert client.get("/static/ui.css").status_code == 200


def test_cross_origin_posts_are_refused(client):
    handle = waiting_execution()
    response = client.post(
        f"/executions/{handle.execution_id}/stop", headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403
    assert handle.describe().status == "RUNNING"
    api = client.post(
        f"/api/executions/{handle.execution_id}/stop", headers={"Origin": "http://evil.example"}
    )
    assert api.status_code == 403 and api.json()["error"]["code"] == "cross_origin"
    same = client.post(
        f"/executions/{handle.execution_id}/stop",
        headers={"Origin": "http://localhost"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_token_protects_actions(secured):
    handle = waiting_execution()
    url = f"/api/executions/{handle.execution_id}/stop"
    refused = secured.post(url)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert secured.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    page = secured.post(f"/executions/{handle.execution_id}/stop")
    assert page.status_code == 401 and "Sign in" in page.text
    assert handle.describe().status == "RUNNING"
    # Reading needs the token too: pages go to the sign-in page, the API answers 401.
    anonymous = secured.get(f"/executions/{handle.execution_id}", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=%2Fexecutions%2F")
    assert secured.get(f"/api/executions/{handle.execution_id}").status_code == 401
    ok = secured.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and handle.describe().status == "ABORTED"
    # The form field works too.
    other = waiting_execution()
    response = secured.post(
        f"/executions/{other.execution_id}/stop", data={"token": TOKEN}, follow_redirects=False
    )
    assert response.status_code == 303 and other.describe().status == "ABORTED"


def test_sign_in_form_sets_a_session_cookie(secured):
    handle = waiting_execution()
    page = f"/executions/{handle.execution_id}"
    # No sign-in by query string: the token would end up in access logs and history.
    by_query = secured.get(f"{page}?token={TOKEN}", follow_redirects=False)
    assert by_query.status_code == 303 and by_query.headers["location"].startswith("/login")
    assert "set-cookie" not in by_query.headers
    wrong = secured.post("/login", data={"token": "nope", "next": page})
    assert wrong.status_code == 401 and "not the UI token" in wrong.text
    login = secured.post("/login", data={"token": TOKEN, "next": page}, follow_redirects=False)
    assert login.status_code == 303
    assert login.headers["location"] == f"{page}?done=signed-in"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie  # the cookie holds a value derived from the token
    html = secured.get(page).text
    assert 'name="token"' not in html and "Sign out" in html
    response = secured.post(f"{page}/stop", follow_redirects=False)
    assert response.status_code == 303 and handle.describe().status == "ABORTED"
    form_login = secured.post(
        "/login", data={"token": TOKEN, "next": "//evil.example/"}, follow_redirects=False
    )
    assert form_login.status_code == 303 and form_login.headers["location"].startswith("/?")
    secured.post("/logout")
    assert secured.get(page, follow_redirects=False).status_code == 303
    secured.cookies.clear()


def test_get_executions_shows_the_list(client):
    response = client.get("/executions?status=FAILED&limit=5", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?status=FAILED&limit=5"
    page = client.get("/executions")
    assert page.status_code == 200 and "table" in page.text and "executions" in page.text


def test_elapsed_times_never_show_a_sign_glitch(client):
    handle = start_workflow("order_fulfillment", order_input())
    handle.result(20)
    html = client.get(f"/executions/{handle.execution_id}").text
    elapsed = re.findall(r'<td class="nowrap">\+([^<]*)</td>', html)
    assert elapsed and all(not e.startswith("-") for e in elapsed), elapsed
    assert elapsed[0] == "0 ms"  # ExecutionStarted


def details_of(client, execution_id: str, state: str, **params: str) -> tuple[int, str]:
    """The details fragment for ``?state=`` (and other parameters), tags stripped."""
    query = {"state": state, "fragment": "details", **params}
    response = client.get(f"/executions/{execution_id}", params=query)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))
    return response.status_code, html_lib.unescape(text)


def test_history_links_of_nested_states_resolve(client):
    handle = start_workflow(NESTED, nested_input())
    assert handle.result(30).status == "SUCCEEDED"
    html = client.get(f"/executions/{handle.execution_id}").text
    # The history links nested states by step key; every link of the page resolves.
    assert "?state=Prepare%5B1%5D%2FSquare#details" in html
    assert "?state=ChargeEach%5B3%5D%2FCharge#details" in html
    links = set(re.findall(r'href="\?state=([^"#]*)#details"', html))
    for link in links:
        response = client.get(f"/executions/{handle.execution_id}?state={link}&fragment=details")
        assert response.status_code in (200, 404), link
        assert "There is no state" not in response.text, link
    status, text = details_of(client, handle.execution_id, "Prepare[1]/Square")
    assert status == 200
    assert "Resource ui-square" in text and '"square": 49' in text and "Attempts 1" in text
    status, text = details_of(client, handle.execution_id, "Prepare[0]/Square")
    assert status == 200 and '"branch": "pass"' in text and "square" not in text
    # A name two branches share asks which one is meant.
    status, text = details_of(client, handle.execution_id, "Square")
    assert status == 404 and "Several states are named Square" in text
    assert "Prepare[0]/Square" in text and "Prepare[1]/Square" in text
    # A nested name only one state has resolves to it.
    assert details_of(client, handle.execution_id, "Declined")[0] == 200


def test_map_state_details_are_per_item(client):
    handle = start_workflow(NESTED, nested_input([4, 9, -2, 5, 6]))
    assert handle.result(30).status == "SUCCEEDED"
    status, text = details_of(client, handle.execution_id, "ChargeEach[*]/Charge")
    assert status == 200
    assert "Items run 5 (4 succeeded, 1 caught)" in text
    assert "Attempts" not in text.split("Items")[0]  # no sum over items
    assert "runs once per Map item" in text and "Input {" not in text  # no mixed values
    assert "Showing 1–5 of 5" in text
    rows = re.findall(r"ChargeEach\[(\d)\] (\w+) (\d) in (-?\d+) out (\S*)", text)
    assert [(i, s, a, x) for i, s, a, x, _ in rows] == [
        ("0", "succeeded", "1", "4"),
        ("1", "succeeded", "2", "9"),
        ("2", "caught", "1", "-2"),
        ("3", "succeeded", "1", "5"),
        ("4", "succeeded", "2", "6"),
    ]
    assert '{"charged":9,"receipt":"r-9"}' in text and "CardDeclined card declined for -2" in text
    # One item: its own input, output, attempts and error, beside each other.
    status, text = details_of(client, handle.execution_id, "ChargeEach[1]/Charge")
    assert status == 200
    assert "Step ChargeEach[1]/Charge" in text and "Attempts 2" in text
    assert "Input 9 Output" in text and '"charged": 9' in text
    assert "An earlier attempt failed: GatewayBusy gateway busy charging 9" in text
    status, text = details_of(client, handle.execution_id, "ChargeEach[2]/Charge")
    assert "caught" in text and "CardDeclined" in text and "Output No output." in text


def test_map_items_are_listed_a_page_at_a_time(client):
    amounts = [n for n in range(1, 200) if n % 3][:120]
    handle = start_workflow(NESTED, nested_input(amounts))
    assert handle.result(60).status == "SUCCEEDED"
    eid = handle.execution_id
    text = details_of(client, eid, "ChargeEach[*]/Charge")[1]
    assert "Items run 120 (120 succeeded)" in text
    assert "Showing 1–50 of 120 (page 1 of 3)" in text and "Next →" in text
    assert text.count("ChargeEach[") == 51  # the path, then 50 rows
    text = details_of(client, eid, "ChargeEach[*]/Charge", items="3")[1]
    assert "Showing 101–120 of 120 (page 3 of 3)" in text and "← Previous" in text
    assert "ChargeEach[119]" in text and "ChargeEach[99]" not in text
    # Selecting an item opens the page that holds it.
    text = details_of(client, eid, "ChargeEach[73]/Charge")[1]
    assert "Showing 51–100 of 120 (page 2 of 3)" in text
    assert f"Input {amounts[73]} Output" in text
    # Pages past the end show the last one; a bad page number is a 400.
    assert "page 3 of 3" in details_of(client, eid, "ChargeEach[*]/Charge", items="99")[1]
    assert details_of(client, eid, "ChargeEach[*]/Charge", items="x")[0] == 400
