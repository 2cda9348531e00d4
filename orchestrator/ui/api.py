"""The JSON API under ``/api/`` (described by ``/openapi.json``), the Prometheus
metrics (``/metrics``) and the health check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Query, Request, Response

from orchestrator.client.models import ExecutionStatus, HistoryEvent
from orchestrator.engine.cursors import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from orchestrator.engine.metrics import CONTENT_TYPE, cluster_exposition
from orchestrator.engine.store import get_store
from orchestrator.ui.context import UI, execution_url
from orchestrator.ui.data import WORKFLOW_NAME, list_summaries, workflow_files
from orchestrator.ui.inputs import check_id, optional_step_key, resolve_definition, task_token
from orchestrator.ui.models import (
    ActionResult,
    DeadLetterOut,
    ErrorResponse,
    ExecutionDetail,
    ExecutionList,
    StartRequest,
    StartResponse,
    StopRequest,
    TaskFailureRequest,
    TaskSuccessRequest,
    WaitingTaskOut,
    summary_out,
)
from orchestrator.ui.routing import RouteGroup
from orchestrator.ui.views import load_execution

#: The error answers every API route documents (the body of each is an ErrorResponse).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid input"},
    401: {"model": ErrorResponse, "description": "ORCHESTRATOR_UI_TOKEN required"},
    404: {"model": ErrorResponse, "description": "Not found"},
    409: {"model": ErrorResponse, "description": "Not possible in the current state"},
    422: {"model": ErrorResponse, "description": "Malformed request"},
}

routes = RouteGroup()


@routes.get(
    "/api/executions", response_model=ExecutionList, tags=["executions"], responses=ERROR_RESPONSES
)
def api_list(
    status: Annotated[ExecutionStatus | None, Query()] = None,
    workflow: Annotated[str | None, Query(pattern=WORKFLOW_NAME.pattern)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=f"^{CURSOR_PATTERN.pattern}$", max_length=CURSOR_MAX_LENGTH)
    ] = None,
) -> ExecutionList:
    """Executions, newest first, optionally filtered by status and workflow name."""
    rows, next_cursor = list_summaries(status, workflow, limit, cursor)
    now = datetime.now(UTC)
    return ExecutionList(executions=[summary_out(r, now) for r in rows], next_cursor=next_cursor)


@routes.post(
    "/api/executions",
    response_model=StartResponse,
    status_code=201,
    tags=["executions"],
    responses=ERROR_RESPONSES,
)
def api_start(request: Request, ui: UI, body: StartRequest) -> StartResponse:
    """Start an execution of a named workflow or of an ASL definition."""
    ui.require_write(request)
    definition = resolve_definition(body.definition)
    handle = ui.client.start_workflow(
        definition, body.input, name=body.name, priority=body.priority
    )
    status = get_store().execution_status(handle.execution_id)
    return StartResponse(
        execution_id=handle.execution_id,
        status=ExecutionStatus(status or "RUNNING"),
        url=execution_url(handle.execution_id),
    )


@routes.get(
    "/api/executions/{execution_id:path}",
    response_model=ExecutionDetail,
    tags=["executions"],
    responses=ERROR_RESPONSES,
)
def api_describe(execution_id: str) -> ExecutionDetail:
    """An execution: status, input, output, error, steps, and every state's status."""
    execution_id = check_id(execution_id)
    view = load_execution(execution_id)
    return ExecutionDetail(
        **view.description.model_dump(),
        states=view.statuses(),
        waiting_tasks=[
            WaitingTaskOut(step_key=w.step_key, state=w.state, since=w.since) for w in view.waiting
        ],
        history_length=len(view.history),
    )


@routes.get(
    "/api/executions/{execution_id:path}/history",
    response_model=list[HistoryEvent],
    tags=["executions"],
    responses=ERROR_RESPONSES,
)
def api_history(
    ui: UI,
    execution_id: str,
    after: Annotated[int, Query(ge=0, description="Only events with a greater id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[HistoryEvent]:
    """History events, oldest first (ids are dense: 1, 2, 3...)."""
    execution_id = check_id(execution_id)
    return ui.client.get_execution_history(execution_id, after=after, limit=limit)


@routes.post(
    "/api/executions/{execution_id:path}/stop",
    response_model=ActionResult,
    tags=["actions"],
    responses=ERROR_RESPONSES,
)
def api_stop(
    request: Request,
    ui: UI,
    execution_id: str,
    body: Annotated[StopRequest | None, Body()] = None,
) -> ActionResult:
    """Stop (abort) a running execution."""
    ui.require_write(request)
    execution_id = check_id(execution_id)
    body = body or StopRequest(error=None, cause=None)
    ui.client.stop_execution(execution_id, body.error, body.cause)
    return ActionResult(
        message="stopped", execution_id=execution_id, status=ExecutionStatus.ABORTED
    )


@routes.post(
    "/api/executions/{execution_id:path}/redrive",
    response_model=ActionResult,
    tags=["actions"],
    responses=ERROR_RESPONSES,
)
def api_redrive(request: Request, ui: UI, execution_id: str) -> ActionResult:
    """Redrive a FAILED, TIMED_OUT or ABORTED execution."""
    ui.require_write(request)
    execution_id = check_id(execution_id)
    ui.client.redrive_execution(execution_id)
    return ActionResult(
        message="redriven", execution_id=execution_id, status=ExecutionStatus.RUNNING
    )


@routes.post(
    "/api/task-tokens/success",
    response_model=ActionResult,
    tags=["actions"],
    responses=ERROR_RESPONSES,
)
def api_task_success(request: Request, ui: UI, body: TaskSuccessRequest) -> ActionResult:
    """Complete a waiting `.waitForTaskToken` task with an output."""
    ui.require_write(request)
    token = task_token(body.token, body.execution_id, optional_step_key(body.step_key))
    ui.client.send_task_success(token, body.output)
    return ActionResult(message="task succeeded", execution_id=body.execution_id)


@routes.post(
    "/api/task-tokens/failure",
    response_model=ActionResult,
    tags=["actions"],
    responses=ERROR_RESPONSES,
)
def api_task_failure(request: Request, ui: UI, body: TaskFailureRequest) -> ActionResult:
    """Fail a waiting `.waitForTaskToken` task (its Retry and Catch rules apply)."""
    ui.require_write(request)
    token = task_token(body.token, body.execution_id, optional_step_key(body.step_key))
    ui.client.send_task_failure(token, body.error, body.cause)
    return ActionResult(message="task failed", execution_id=body.execution_id)


@routes.get(
    "/api/dead-letters",
    response_model=list[DeadLetterOut],
    tags=["dead letters"],
    responses=ERROR_RESPONSES,
)
def api_dead_letters(
    ui: UI,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterOut]:
    """Dead letters, newest first."""
    return ui.dead_letters(limit)


@routes.get("/api/workflows", response_model=list[str], tags=["executions"])
def api_workflows() -> list[str]:
    """Names of the workflows in the workflows folder (for `POST /api/executions`)."""
    return sorted(workflow_files())


@routes.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics of the whole cluster, read from Redis and the broker when
    scraped (orchestrator/engine/metrics.py): execution counters, queue depths, pending
    timers, dead letters. A read: with ORCHESTRATOR_UI_TOKEN it needs the token (a
    scrape config's ``authorization: {credentials: ...}``) unless reads are public."""
    return Response(cluster_exposition(), media_type=CONTENT_TYPE)


@routes.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    get_store().ping()
    return {"status": "ok"}
