"""The HTML pages and their forms' actions (JSON instead of a redirect when an action is
asked with ``Accept: application/json``), and signing in and out. None is in the OpenAPI
schema."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.client.mapruns import list_map_run_children, list_map_runs
from orchestrator.config import MAX_PRIORITY
from orchestrator.ui import security
from orchestrator.ui.context import (
    DONE_MESSAGES,
    UI,
    action_done,
    execution_url,
    read_form,
    with_done,
)
from orchestrator.ui.data import list_summaries, workflow_files
from orchestrator.ui.inputs import (
    MAX_CAUSE_CHARS,
    MAX_ERROR_CHARS,
    UIError,
    check_id,
    check_text,
    parse_int,
    parse_json,
    parse_status,
    parse_workflow,
    resolve_definition,
    step_key,
    task_token,
)
from orchestrator.ui.routing import RouteGroup
from orchestrator.ui.views import MAX_HISTORY_ROWS, load_execution

routes = RouteGroup(include_in_schema=False)

#: Child executions of a Map Run shown per page of the execution view.
CHILDREN_PAGE = 50


@routes.get("/executions")
def executions_redirect(request: Request) -> Response:
    # The list lives at "/"; "/executions" is where people (and the start form's
    # POST) expect it, so a GET there goes to the list with its filters kept.
    query = request.url.query
    return RedirectResponse("/" + ("?" + query if query else ""), 303)


@routes.get("/", response_class=HTMLResponse)
def executions_page(request: Request, ui: UI) -> Response:
    params = request.query_params
    status = parse_status(params.get("status"))
    workflow = parse_workflow(params.get("workflow"))
    limit = parse_int(params.get("limit"), 50, 1, 500, "limit")
    cursor = params.get("cursor") or None
    rows, next_cursor = list_summaries(status, workflow, limit, cursor)
    now = datetime.now(UTC)
    next_url = None
    if next_cursor is not None:
        query = {"cursor": str(next_cursor), "limit": str(limit)}
        if status:
            query["status"] = status.value
        if workflow:
            query["workflow"] = workflow
        next_url = "/?" + urlencode(query)
    return ui.render(
        request,
        "executions.html",
        {
            "title": "Executions",
            "rows": rows,
            "now": now,
            "status": status.value if status else "",
            "workflow": workflow or "",
            "limit": limit,
            "cursor": cursor,
            "next_url": next_url,
            "workflows": sorted(workflow_files()),
            "any_running": any(r.status == "RUNNING" for r in rows),
        },
    )


@routes.get("/executions/{execution_id:path}", response_class=HTMLResponse)
def execution_page(request: Request, ui: UI, execution_id: str) -> Response:
    execution_id = check_id(execution_id)
    view = load_execution(execution_id)
    selected = request.query_params.get("state")
    # ?items=N: a page of a Map state's items (default: the selected item's page).
    page = parse_int(request.query_params.get("items"), 0, 0, 10**7, "items") or None
    details = None
    missing = None
    candidates: list[str] = []
    if selected:
        details = view.details(selected, page)
        if details is None:
            missing = selected[:200]
            candidates = view.candidates(selected)
    if request.query_params.get("fragment") == "details":
        return ui.render(
            request,
            "_details.html",
            {
                "view": view,
                "details": details,
                "missing": missing,
                "candidates": candidates,
                "execution_id": execution_id,
            },
            404 if missing else 200,
        )
    history = view.history
    cut = max(0, len(history) - MAX_HISTORY_ROWS)
    link = execution_url(execution_id) + "?state="
    # A Distributed Map's runs: counts by status and a page of child executions each
    # (?children=N: from child N).
    first_child = parse_int(request.query_params.get("children"), 0, 0, 10**9, "children")
    map_runs = [
        (run, list_map_run_children(run.map_run_arn, start=first_child, limit=CHILDREN_PAGE))
        for run in list_map_runs(execution_id)
    ]
    return ui.render(
        request,
        "execution.html",
        {
            "title": f"Execution {execution_id}",
            "execution_id": execution_id,
            "view": view,
            "d": view.description,
            "svg": view.graph.svg(
                view.states, selected=details.path if details else None, link=link
            ),
            "details": details,
            "missing": missing,
            "candidates": candidates,
            "history": history[cut:],
            "history_cut": cut,
            "start": view.description.start_time,
            "map_runs": map_runs,
            "first_child": first_child,
            "children_page": CHILDREN_PAGE,
        },
        404 if missing else 200,
    )


@routes.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(request: Request, ui: UI) -> Response:
    limit = parse_int(request.query_params.get("limit"), 100, 1, 1000, "limit")
    letters = ui.dead_letters(limit)
    return ui.render(request, "dead_letters.html", {"title": "Dead letters", "letters": letters})


@routes.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ui: UI) -> Response:
    target = security.safe_next(request.query_params.get("next"))
    return ui.render(request, "login.html", {"title": "Sign in", "next": target})


@routes.post("/login")
async def login(request: Request, ui: UI) -> Response:
    form = await read_form(request)
    target = security.safe_next(form.get("next"))
    given = form.get("token", "")
    if ui.token and not security.same_token(given, ui.token):
        return ui.render(
            request, "login.html", {"title": "Sign in", "next": target, "failed": True}, 401
        )
    response = RedirectResponse(with_done(target, "signed-in"), 303)
    if ui.token:
        ui.set_session_cookie(request, response)
    return response


@routes.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/?done=signed-out", 303)
    response.delete_cookie(security.COOKIE, path="/")
    return response


# -- actions --------------------------------------------------------------------------


@routes.post("/executions")
async def start_from_form(request: Request, ui: UI) -> Response:
    form = await read_form(request)
    ui.require_write(request, form.get("token"))
    workflow = (form.get("workflow") or "").strip()
    definition_text = (form.get("definition") or "").strip()
    if not workflow and not definition_text:
        raise UIError(400, "missing_definition", "Choose a workflow or paste ASL JSON.")
    definition = resolve_definition(definition_text or workflow)
    input_text = (form.get("input") or "").strip() or "{}"
    value = parse_json(input_text, "input")
    name = (form.get("name") or "").strip() or None
    priority_text = (form.get("priority") or "").strip()
    if priority_text and not (priority_text.isdigit() and int(priority_text) <= MAX_PRIORITY):
        raise UIError(400, "invalid_priority", "Priority: a whole number from 0 to 9.")
    priority = int(priority_text) if priority_text else None
    handle = ui.client.start_workflow(definition, value, name=name, priority=priority)
    url = execution_url(handle.execution_id, done="started")
    return action_done(request, DONE_MESSAGES["started"], url)


@routes.post("/executions/{execution_id:path}/stop")
async def stop_from_form(request: Request, ui: UI, execution_id: str) -> Response:
    form = await ui.action_form(request, execution_id)
    error = check_text(form.get("error"), MAX_ERROR_CHARS, "error")
    cause = check_text(form.get("cause"), MAX_CAUSE_CHARS, "cause")
    ui.client.stop_execution(execution_id, error or "Stopped", cause or "Stopped from the web UI")
    return action_done(
        request, DONE_MESSAGES["stopped"], execution_url(execution_id, done="stopped")
    )


@routes.post("/executions/{execution_id:path}/redrive")
async def redrive_from_form(request: Request, ui: UI, execution_id: str) -> Response:
    form = await ui.action_form(request, execution_id)
    ui.client.redrive_execution(execution_id)
    if form.get("return_to") == "dead-letters":
        target = "/dead-letters?done=redriven"
    else:
        target = execution_url(execution_id, done="redriven")
    return action_done(request, DONE_MESSAGES["redriven"], target)


@routes.post("/executions/{execution_id:path}/tasks/approve")
async def approve_from_form(request: Request, ui: UI, execution_id: str) -> Response:
    form = await ui.action_form(request, execution_id)
    key = step_key(form.get("step_key"))
    output = parse_json((form.get("output") or "").strip() or "{}", "output")
    ui.client.send_task_success(task_token(None, execution_id, key), output)
    return action_done(
        request, DONE_MESSAGES["approved"], execution_url(execution_id, done="approved")
    )


@routes.post("/executions/{execution_id:path}/tasks/reject")
async def reject_from_form(request: Request, ui: UI, execution_id: str) -> Response:
    form = await ui.action_form(request, execution_id)
    key = step_key(form.get("step_key"))
    error = check_text(form.get("error"), MAX_ERROR_CHARS, "error")
    cause = check_text(form.get("cause"), MAX_CAUSE_CHARS, "cause")
    ui.client.send_task_failure(
        task_token(None, execution_id, key), error or "Rejected", cause or ""
    )
    return action_done(
        request, DONE_MESSAGES["rejected"], execution_url(execution_id, done="rejected")
    )
