"""End to end in headless Chromium: the UI served by uvicorn on 127.0.0.1, real Redis,
real worker. Also takes the README's screenshots: into docs/screenshots/ when
ORCHESTRATOR_SCREENSHOTS=1 (to refresh them), else into the test's own temporary folder,
so that a test run leaves the checkout as it was and concurrent runs share nothing.

Chromium comes from ``./run setup`` (which ``./run test`` runs); these tests install
nothing and fail, saying so, when it is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import tests.ui.ui_activities  # noqa: F401 - registers the ui-* activities before the worker starts
from orchestrator import start_workflow, stop_execution
from orchestrator.engine.store import get_store
from tests.helpers import wait_until
from tests.ui.ui_activities import ship_key
from tests.ui.workflows import (
    NESTED,
    ORDER_APPROVAL,
    ORDER_SHIPPING,
    OUT_OF_STOCK,
    nested_input,
    order_input,
)

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def request_failed(request: Any) -> None:
        # A page that navigates (an action's form post, a reload) aborts its own polls in
        # flight: Chromium reports those as net::ERR_ABORTED, which is no failure of ours.
        if request.failure != "net::ERR_ABORTED":
            errors.append(f"request failed: {request.url} ({request.failure})")

    page.on("requestfailed", request_failed)
    yield page
    context.close()
    assert not errors, errors


def node_status(page: Any, path: str) -> str:
    return page.locator(f'.state-graph g.node[data-path="{path}"]').get_attribute("data-status")


def history_types(page: Any) -> list[str]:
    return page.locator("#history tbody td.type").all_inner_texts()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots with ORCHESTRATOR_SCREENSHOTS=1, else the
    test's temporary folder (they are still taken, so taking them is tested)."""
    if os.environ.get("ORCHESTRATOR_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


def shoot(page: Any, folder: Path, name: str) -> None:
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{name} looks empty"


def test_succeeded_order(live_server, page, screenshots):
    handle = start_workflow("order_fulfillment", order_input(), name=None)
    assert handle.result(20).status == "SUCCEEDED"
    page.goto(f"{live_server}/executions/{handle.execution_id}")
    assert page.locator("#execution-status").inner_text() == "SUCCEEDED"
    for path in (
        "ValidateOrder",
        "ChargePayment",
        "ReserveInventory",
        "IsExpress",
        "StandardShipping",
        "SendConfirmation",
        "Fulfilled",
    ):
        assert node_status(page, path) == "succeeded", path
    for path in ("ExpressShipping", "CancelOrder", "OrderFailed", "OrderRejected"):
        assert node_status(page, path) == "notreached", path
    types = history_types(page)
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert "TaskSucceeded" in types
    # Clicking a state opens its details in place.
    page.locator('.state-graph a.node-link[data-path="ChargePayment"]').click()
    page.wait_for_url("**state=ChargePayment**")
    details = page.locator("#details")
    assert "ChargePayment" in details.locator("h2").inner_text()
    assert "ch_o-" in details.inner_text()  # its output holds the charge id
    shoot(page, screenshots, "execution-succeeded.png")


def test_failed_order_graph_and_details(live_server, page, screenshots):
    handle = start_workflow("order_fulfillment", order_input(OUT_OF_STOCK))
    assert handle.result(20).status == "FAILED"
    page.goto(f"{live_server}/executions/{handle.execution_id}")
    assert page.locator("#execution-status").inner_text() == "FAILED"
    assert node_status(page, "ReserveInventory") == "caught"
    assert node_status(page, "CancelOrder") == "succeeded"
    assert node_status(page, "OrderFailed") == "failed"
    assert node_status(page, "SendConfirmation") == "notreached"
    assert history_types(page)[-1] == "ExecutionFailed"
    page.locator('.state-graph a.node-link[data-path="ReserveInventory"]').click()
    page.wait_for_url("**state=ReserveInventory**")
    details = page.locator("#details")
    assert "OutOfStock" in details.inner_text()
    assert "not enough 'lamp' in stock" in details.inner_text()
    assert page.locator("#redrive-button").is_visible()
    shoot(page, screenshots, "execution-failed.png")


def test_nested_states_parallel_map_choice(live_server, page, screenshots):
    handle = start_workflow(NESTED, nested_input([4, 9, -2, 5, 6]))
    assert handle.result(30).status == "SUCCEEDED"
    page.goto(f"{live_server}/executions/{handle.execution_id}")
    for path in ("Prepare", "Prepare[0]/Square", "Prepare[1]/Square", "Route", "Standard"):
        assert node_status(page, path) == "succeeded", path
    assert node_status(page, "ChargeEach[*]/Charge") == "caught"  # one item's card declined
    assert node_status(page, "ChargeEach[*]/Declined") == "succeeded"
    assert node_status(page, "Express") == "notreached"
    elapsed = page.locator("#history tbody tr td:nth-child(3)").all_inner_texts()
    assert elapsed[0] == "+0 ms" and not any("-" in e for e in elapsed), elapsed
    # A history link of a state in a Parallel branch opens that branch's state.
    page.locator('#history a[href*="Prepare%5B1%5D%2FSquare"]').first.click()
    page.wait_for_url("**state=Prepare%5B1%5D%2FSquare**")
    details = page.locator("#details")
    assert "There is no state" not in details.inner_text()
    assert '"square": 49' in details.locator("#state-output").inner_text()
    # The Map's inner Task: one row per item, each with its own values.
    page.locator('.state-graph a.node-link[data-path="ChargeEach[*]/Charge"]').click()
    page.wait_for_url("**state=ChargeEach%5B*%5D%2FCharge**")
    rows = details.locator("#state-items-table tbody tr")
    assert rows.count() == 5
    assert "Showing 1–5 of 5" in details.locator("#items-range").inner_text()
    assert "5 (4 succeeded, 1 caught)" in details.locator("#state-items").inner_text()
    assert details.locator("#state-attempts").count() == 0  # no sum over items
    second = rows.nth(1).inner_text()
    assert "succeeded" in second and "\t2\t" in second and "r-9" in second
    # An item's link: its input beside its own output.
    rows.nth(1).locator("a").click()
    page.wait_for_url("**state=ChargeEach%5B1%5D%2FCharge**")
    assert page.locator("#details #state-input").inner_text().strip() == "9"
    assert '"charged": 9' in page.locator("#details #state-output").inner_text()
    assert page.locator("#details #state-attempts").inner_text() == "2"
    assert page.locator("#state-items-table tr.selected").count() == 1
    shoot(page, screenshots, "execution-nested.png")


def test_waiting_order_approved_in_browser(live_server, page, screenshots):
    handle = start_workflow(ORDER_APPROVAL, order_input())
    wait_until(lambda: any(s.status == "WAITING" for s in handle.describe().steps), 15)
    page.goto(f"{live_server}/executions/{handle.execution_id}?state=ManagerApproval")
    assert node_status(page, "ValidateOrder") == "succeeded"
    assert node_status(page, "ManagerApproval") == "waiting"
    assert node_status(page, "SendConfirmation") == "notreached"
    assert page.locator("#waiting-tasks").is_visible()
    shoot(page, screenshots, "execution-waiting.png")
    form = page.locator("#waiting-tasks form.approve").first
    form.locator("textarea[name=output]").fill('{"approved": true, "by": "dana"}')
    form.locator("button[type=submit]").click()
    # The action redirects back; the page then follows the execution until it ends.
    page.locator("#execution-status", has_text="SUCCEEDED").wait_for()
    assert node_status(page, "ManagerApproval") == "succeeded"
    assert node_status(page, "Approved") == "succeeded"
    assert "TaskSucceeded" in history_types(page)
    assert handle.result(5).output["approval"] == {"approved": True, "by": "dana"}


def test_invalid_approval_json_is_refused_in_place(live_server, page):
    handle = start_workflow(ORDER_APPROVAL, order_input())
    wait_until(lambda: any(s.status == "WAITING" for s in handle.describe().steps), 15)
    page.goto(f"{live_server}/executions/{handle.execution_id}")
    form = page.locator("#waiting-tasks form.approve").first
    form.locator("textarea[name=output]").fill("{not json")
    form.locator("button[type=submit]").click()
    assert "not valid JSON" in form.locator(".form-error").inner_text()
    assert handle.describe().status == "RUNNING"
    # Reject it instead: the Catch takes it to Declined.
    reject = page.locator("#waiting-tasks form.reject").first
    reject.locator("input[name=error]").fill("Rejected")
    reject.locator("input[name=cause]").fill("over budget")
    reject.locator("button[type=submit]").click()
    page.locator("#execution-status", has_text="FAILED").wait_for()
    assert node_status(page, "ManagerApproval") == "caught"
    assert node_status(page, "Declined") == "failed"


def test_redrive_in_browser(live_server, page):
    order = order_input()
    handle = start_workflow(ORDER_SHIPPING, order)
    assert handle.result(20).status == "FAILED"
    page.goto(f"{live_server}/executions/{handle.execution_id}")
    assert node_status(page, "ShipOrder") == "failed"
    assert "CarrierUnavailable" in page.locator(".callout.failed").first.inner_text()
    get_store().client.set(ship_key(order["order_id"]), "1")  # the carrier is back
    page.locator("#redrive-button").click()
    page.locator("#execution-status", has_text="SUCCEEDED").wait_for()
    assert node_status(page, "ShipOrder") == "succeeded"
    assert "ExecutionRedriven" in history_types(page)
    assert handle.describe().redrive_count == 1


def test_no_javascript_details_and_approval(live_server, browser):
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        handle = start_workflow(ORDER_APPROVAL, order_input())
        wait_until(lambda: any(s.status == "WAITING" for s in handle.describe().steps), 15)
        page.goto(f"{live_server}/executions/{handle.execution_id}")
        page.locator('.state-graph a.node-link[data-path="ValidateOrder"]').click()
        page.wait_for_url("**state=ValidateOrder**")
        assert '"total": 29.5' in page.locator("#details").inner_text()
        page.locator("#waiting-tasks form.approve button[type=submit]").first.click()
        page.wait_for_url("**done=approved**")
        assert "Task approved" in page.locator(".notice").inner_text()
        assert handle.result(15).status == "SUCCEEDED"
    finally:
        context.close()


def test_executions_list_filters_and_phone_layout(live_server, browser, page, screenshots):
    start_workflow("order_fulfillment", order_input()).result(20)
    start_workflow("order_fulfillment", order_input(OUT_OF_STOCK)).result(20)
    waiting = start_workflow(ORDER_APPROVAL, order_input())
    wait_until(lambda: any(s.status == "WAITING" for s in waiting.describe().steps), 15)
    try:
        _check_list(live_server, browser, page, screenshots)
    finally:
        stop_execution(waiting.execution_id, "TestOver", "the UI test is over")


def _check_list(live_server: str, browser: Any, page: Any, screenshots: Path) -> None:
    page.goto(f"{live_server}/")
    rows = page.locator("table.executions tbody tr[data-execution-id]")
    assert rows.count() >= 2
    statuses = set(
        page.locator("table.executions tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.status)"
        )
    )
    assert {"SUCCEEDED", "FAILED", "RUNNING"} <= statuses
    shoot(page, screenshots, "executions.png")
    page.select_option("select[name=status]", "FAILED")
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url("**status=FAILED**")
    filtered = page.locator("table.executions tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert filtered and set(filtered) == {"FAILED"}
    # A phone: nothing wider than the screen but the tables' own scroll boxes.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        mobile = phone.new_page()
        mobile.goto(f"{live_server}/")
        overflow = mobile.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        execution = rows.first.get_attribute("data-execution-id")
        mobile.goto(f"{live_server}/executions/{execution}")
        overflow = mobile.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        box = mobile.locator("svg.state-graph").bounding_box()
        assert box is not None and box["width"] <= PHONE["width"]
    finally:
        phone.close()
