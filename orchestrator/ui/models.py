"""The JSON API's request and response bodies (their names are the OpenAPI schema's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.client.models import DeadLetter, ExecutionDescription, ExecutionStatus
from orchestrator.config import MAX_PRIORITY
from orchestrator.ui.data import ExecutionSummary
from orchestrator.ui.inputs import MAX_CAUSE_CHARS, MAX_ERROR_CHARS, MAX_STEP_KEY_CHARS


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[str] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every API error: a stable code and a message for people."""

    error: ErrorBody


class ExecutionSummaryOut(BaseModel):
    execution_id: str
    name: str
    workflow: str
    status: ExecutionStatus
    start_time: datetime
    stop_time: datetime | None = None
    duration_seconds: float
    redrive_count: int
    error: str | None = None


class ExecutionList(BaseModel):
    executions: list[ExecutionSummaryOut]
    next_cursor: str | None = Field(
        None,
        description=(
            "Pass as `cursor` for the next (older) page; null at the end. Opaque: one "
            "position per partition, dot-separated."
        ),
    )


class StartRequest(BaseModel):
    definition: str | dict[str, Any] = Field(
        description="A workflow name from the workflows folder (`order_fulfillment`), "
        "ASL JSON text, or an ASL object."
    )
    input: Any = Field(None, description="The execution input (any JSON value; default {}).")
    name: str | None = Field(
        None, description="Execution name (also its id and an idempotency key).", max_length=80
    )
    priority: int | None = Field(
        None,
        ge=0,
        le=MAX_PRIORITY,
        description="0 (least urgent) to 9 (most urgent); default "
        "ORCHESTRATOR_DEFAULT_PRIORITY. Every task message of the execution carries it.",
    )


class StartResponse(BaseModel):
    execution_id: str
    status: ExecutionStatus
    url: str


class WaitingTaskOut(BaseModel):
    step_key: str
    state: str
    since: datetime | None = None


class ExecutionDetail(ExecutionDescription):
    """An execution, with the status of every state of its graph."""

    states: dict[str, str] = Field(
        default_factory=dict,
        description="Graph node path -> not_reached, running, succeeded, failed, caught, "
        "retrying, waiting or aborted.",
    )
    waiting_tasks: list[WaitingTaskOut] = Field(default_factory=list)
    history_length: int = 0


class StopRequest(BaseModel):
    error: str | None = Field(None, max_length=MAX_ERROR_CHARS)
    cause: str | None = Field(None, max_length=MAX_CAUSE_CHARS)


class TaskSuccessRequest(BaseModel):
    token: str | None = Field(None, max_length=4096, description="The task token.")
    execution_id: str | None = Field(
        None, max_length=80, description="Instead of a token: the execution..."
    )
    step_key: str | None = Field(
        None, max_length=MAX_STEP_KEY_CHARS, description="...and the waiting step's key."
    )
    output: Any = Field(None, description="The task's result (any JSON value).")


class TaskFailureRequest(BaseModel):
    token: str | None = Field(None, max_length=4096)
    execution_id: str | None = Field(None, max_length=80)
    step_key: str | None = Field(None, max_length=MAX_STEP_KEY_CHARS)
    error: str | None = Field(None, max_length=MAX_ERROR_CHARS)
    cause: str | None = Field(None, max_length=MAX_CAUSE_CHARS)


class ActionResult(BaseModel):
    ok: bool = True
    message: str
    execution_id: str | None = None
    status: ExecutionStatus | None = None


class DeadLetterOut(DeadLetter):
    redrivable: bool = False


def summary_out(row: ExecutionSummary, now: datetime) -> ExecutionSummaryOut:
    """An execution list's row as the API gives it (its duration up to ``now``)."""
    return ExecutionSummaryOut(
        execution_id=row.execution_id,
        name=row.name,
        workflow=row.workflow,
        status=ExecutionStatus(row.status),
        start_time=row.start_time,
        stop_time=row.stop_time,
        duration_seconds=round(row.duration_seconds(now), 3),
        redrive_count=row.redrive_count,
        error=row.error,
    )
