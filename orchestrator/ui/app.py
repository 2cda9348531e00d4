"""The web UI and JSON API: FastAPI routes, rendered with Jinja2 templates.

Pages are complete without JavaScript; ``static/ui.js`` only adds live updates (polling
the JSON API while an execution runs) and in-place actions.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import redis
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from orchestrator.client.api import start_workflow
from orchestrator.client.control import (
    list_dead_letters,
    redrive_execution,
    send_task_failure,
    send_task_success,
    stop_execution,
)
from orchestrator.client.models import (
    DeadLetter,
    ExecutionDescription,
    ExecutionStatus,
    HistoryEvent,
)
from orchestrator.engine.store import get_store
from orchestrator.errors import (
    DefinitionError,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidInputError,
    OrchestratorError,
    StoreUnavailable,
    TaskTokenError,
)
from orchestrator.ui import security
from orchestrator.ui.data import (
    WORKFLOW_NAME,
    ExecutionSummary,
    list_summaries,
    valid_execution_id,
    waiting_token,
    workflow_files,
)
from orchestrator.ui.graph import STATUS_LABELS, STATUSES
from orchestrator.ui.views import (
    MAX_HISTORY_ROWS,
    REDRIVABLE,
    compact,
    duration,
    event_class,
    format_seconds,
    load_execution,
    pretty,
    timestamp,
)

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent
#: Longest accepted error name and cause (Step Functions' limits).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768
MAX_STEP_KEY_CHARS = 2_000
#: Longest accepted ASL text or JSON input in a form or request (the engine has its own
#: limit on the input; this bounds what is parsed at all).
MAX_BODY_CHARS = 1_048_576
DONE_MESSAGES = {
    "started": "Execution started.",
    "stopped": "Execution stopped.",
    "redriven": "Execution redriven: it runs again from what did not succeed.",
    "approved": "Task approved: the execution goes on with the output you gave.",
    "rejected": "Task rejected: the error goes through the state's Retry and Catch rules.",
    "signed-in": "Signed in.",
    "signed-out": "Signed out.",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class UIError(Exception):
    """A request that cannot be served, with a message meant for people."""

    def __init__(
        self, status: int, code: str, message: str, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


# -- JSON models --------------------------------------------------------------------------


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
    next_cursor: int | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null at the end."
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


# -- helpers ------------------------------------------------------------------------------


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    env = templates.env
    env.filters["ts"] = timestamp
    env.filters["pretty"] = pretty
    env.filters["compact"] = compact
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals.update(
        duration=duration,
        format_seconds=format_seconds,
        event_class=event_class,
        STATUS_LABELS=STATUS_LABELS,
        GRAPH_STATUSES=[s for s in STATUSES],
        EXECUTION_STATUSES=[s.value for s in ExecutionStatus],
        static_version=_static_version(),
    )
    return templates


def _static_version() -> str:
    stamps = [int(p.stat().st_mtime) for p in (_HERE / "static").iterdir() if p.is_file()]
    return str(max(stamps, default=0))


def _wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _summary_out(row: ExecutionSummary, now: datetime) -> ExecutionSummaryOut:
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


def _check_id(execution_id: str) -> str:
    if not valid_execution_id(execution_id):
        raise UIError(404, "not_found", f"No execution {execution_id[:100]!r}.")
    return execution_id


def _parse_status(value: str | None) -> ExecutionStatus | None:
    if not value:
        return None
    try:
        return ExecutionStatus(value.upper())
    except ValueError:
        raise UIError(
            400,
            "invalid_status",
            f"Unknown status {value[:40]!r}: use one of "
            + ", ".join(s.value for s in ExecutionStatus)
            + ".",
        ) from None


def _parse_workflow(value: str | None) -> str | None:
    if not value:
        return None
    if not WORKFLOW_NAME.match(value):
        raise UIError(
            400,
            "invalid_workflow",
            "A workflow name has 1-80 letters, digits, '.', '_' or '-'.",
        )
    return value


def _parse_int(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise UIError(400, f"invalid_{name}", f"{name} must be a whole number.") from None
    if not low <= number <= high:
        raise UIError(400, f"invalid_{name}", f"{name} must be between {low} and {high}.")
    return number


def _parse_json(text: str, what: str) -> Any:
    if len(text) > MAX_BODY_CHARS:
        raise UIError(413, "too_large", f"The {what} is too large.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UIError(400, "invalid_json", f"The {what} is not valid JSON: {exc}.") from None


def _resolve_definition(value: str | dict[str, Any]) -> dict[str, Any] | Path:
    """A definition given by a client: an ASL object or text, or a workflow's name.

    Names resolve only to files of the workflows folder (never to another path).
    """
    if isinstance(value, dict):
        return value
    text = value.strip()
    if text.startswith("{"):
        parsed = _parse_json(text, "definition")
        if not isinstance(parsed, dict):
            raise UIError(400, "invalid_definition", "The definition must be a JSON object.")
        return parsed
    if not WORKFLOW_NAME.match(text):
        raise UIError(
            400,
            "invalid_definition",
            "Give a workflow name (letters, digits, '.', '_', '-') or ASL JSON.",
        )
    files = workflow_files()
    if text not in files:
        known = ", ".join(sorted(files)) or "none"
        raise UIError(404, "unknown_workflow", f"No workflow named {text!r} (known: {known}).")
    return files[text]


def _check_text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise UIError(400, f"invalid_{what}", f"The {what} is longer than {limit} characters.")
    return value or None


def _execution_url(execution_id: str, **params: str) -> str:
    url = f"/executions/{quote(execution_id, safe='')}"
    return url + ("?" + urlencode(params) if params else "")


def _token_from_request(token: str | None, execution_id: str | None, step_key: str | None) -> str:
    if token:
        return token
    if execution_id and step_key:
        _check_id(execution_id)
        try:
            return waiting_token(execution_id, step_key)
        except ExecutionNotFound:
            raise
        except LookupError as exc:
            raise UIError(409, "task_token", f"{exc}.") from None
    raise UIError(400, "missing_token", "Give a token, or an execution_id and a step_key.")


# -- the app ------------------------------------------------------------------------------


def create_app(
    *,
    token: str | None = None,
    public_read: bool | None = None,
    allowed_hosts: list[str] | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """The UI application (ASGI).

    Args:
        token: the UI token; default ``ORCHESTRATOR_UI_TOKEN`` ("" for none). With a
            token, every route but /healthz, the sign-in page and static files needs it.
        public_read: let anyone read (pages and GET /api) when a token is set; default
            ``ORCHESTRATOR_UI_PUBLIC_READ``.
        allowed_hosts: Host header values answered; default the local names plus
            ``ORCHESTRATOR_UI_ALLOWED_HOSTS``.
        max_body_bytes: largest request body; default from ``ORCHESTRATOR_MAX_INPUT_BYTES``.

    It reads and writes the store of the settings in force (``REDIS_URL``).
    """
    from orchestrator.config import get_settings

    ui_token = token if token is not None else (os.environ.get(security.TOKEN_ENV) or None)
    ui_token = ui_token or None
    open_reads = security.public_read_enabled() if public_read is None else public_read
    hosts = security.allowed_hosts() if allowed_hosts is None else allowed_hosts
    body_limit = max_body_bytes or security.body_limit(get_settings().max_input_bytes)
    templates = _templates()
    app = FastAPI(
        title="Orchestrator",
        summary="Step Functions-compatible workflows: executions, history, callbacks, "
        "stop, redrive and dead letters.",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: not served
        redoc_url=None,
        openapi_url="/openapi.json",
        # Starlette's trailing-slash redirects echo the request path back: none at all.
        redirect_slashes=False,
    )
    app.state.ui_token = ui_token
    app.state.body_limit = body_limit
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    def render(
        request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        base = {
            "request": request,
            "token_required": bool(ui_token),
            "signed_in": security.signed_in(request, ui_token),
            "notice": DONE_MESSAGES.get(request.query_params.get("done", "")),
            "path": request.url.path,
        }
        return templates.TemplateResponse(request, template, {**base, **context}, status)

    def error_response(request: Request, error: UIError) -> Response:
        body = ErrorResponse(
            error=ErrorBody(code=error.code, message=error.message, details=error.details)
        )
        headers = {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if _wants_json(request):
            return JSONResponse(body.model_dump(), error.status, headers=headers)
        return render(
            request,
            "error.html",
            {"error": error, "title": f"Error {error.status}"},
            error.status,
        )

    # -- errors -----------------------------------------------------------------------

    @app.exception_handler(UIError)
    async def _ui_error(request: Request, exc: UIError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(ExecutionNotFound)
    async def _not_found(request: Request, exc: ExecutionNotFound) -> Response:
        return error_response(
            request, UIError(404, "not_found", f"No execution {exc.execution_id!r}.")
        )

    @app.exception_handler(InvalidExecutionState)
    async def _bad_state(request: Request, exc: InvalidExecutionState) -> Response:
        return error_response(
            request,
            UIError(
                409,
                "invalid_state",
                f"Cannot {exc.operation} execution {exc.execution_id!r}: it is {exc.status}.",
            ),
        )

    @app.exception_handler(TaskTokenError)
    async def _token_error(request: Request, exc: TaskTokenError) -> Response:
        return error_response(
            request, UIError(409, "task_token", f"Task token not accepted: {exc.reason}.")
        )

    @app.exception_handler(InvalidInputError)
    async def _bad_input(request: Request, exc: InvalidInputError) -> Response:
        return error_response(request, UIError(400, "invalid_input", str(exc)))

    @app.exception_handler(DefinitionError)
    async def _bad_definition(request: Request, exc: DefinitionError) -> Response:
        return error_response(
            request,
            UIError(
                400,
                "invalid_definition",
                f"The definition is invalid ({len(exc.issues)} issue(s)).",
                [str(issue) for issue in exc.issues],
            ),
        )

    @app.exception_handler(ExecutionAlreadyExists)
    async def _exists(request: Request, exc: ExecutionAlreadyExists) -> Response:
        return error_response(
            request,
            UIError(
                409,
                "already_exists",
                f"An execution named {exc.execution_id!r} exists with a different input.",
            ),
        )

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(redis.RedisError)
    async def _redis_down(request: Request, exc: Exception) -> Response:
        logger.warning("Redis error: %s", exc)
        return error_response(
            request,
            UIError(503, "store_unavailable", "The orchestrator's Redis cannot be reached."),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        details = []
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
            details.append(f"{where or 'request'}: {problem.get('msg', 'invalid')}")
        return error_response(
            request, UIError(422, "invalid_request", "The request is not valid.", details)
        )

    @app.exception_handler(security.BodyTooLarge)
    async def _too_large(request: Request, exc: security.BodyTooLarge) -> Response:
        return error_response(request, UIError(413, "too_large", str(exc.detail)))

    @app.exception_handler(OrchestratorError)
    async def _orchestrator_error(request: Request, exc: OrchestratorError) -> Response:
        # Any other error the engine raises to callers is about what the client sent.
        return error_response(request, UIError(400, "invalid_request", str(exc)[:2000]))

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> Response:
        return error_response(
            request, UIError(400, "too_deep", "The request nests values too deeply.")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no such page.", 405: "That method is not allowed here."}
        message = messages.get(exc.status_code, str(exc.detail))
        return error_response(request, UIError(exc.status_code, "http_error", message))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RuntimeError) and "REDIS_URL" in str(exc):
            return error_response(
                request, UIError(503, "store_unconfigured", "REDIS_URL is not set.")
            )
        logger.exception("unexpected error serving %s", request.url.path)
        return error_response(
            request,
            UIError(500, "internal_error", "Something went wrong; the server log has details."),
        )

    # -- middleware: host, authentication, cross-origin writes, body size, headers -----
    # Outermost first: Host check, local redirects only, _guard (the token, checked before
    # any body is read), the body limit, task tokens masked in answers, then the routes.

    def reject(scope: Any, status: int, message: str) -> Response:
        code = "too_large" if status == 413 else "invalid_request"
        return error_response(Request(scope), UIError(status, code, message))

    app.add_middleware(
        security.ScrubMiddleware, find=security.task_tokens_in, mask=security.TASK_TOKEN_MASK
    )
    app.add_middleware(security.BodyLimitMiddleware, limit=body_limit, reject=reject)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        refused = check_access(request)
        response = refused if refused is not None else await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(security.LocalRedirectMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)

    def check_access(request: Request) -> Response | None:
        """A refusal decided from the headers alone (nothing has read the body yet)."""
        path = request.url.path
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        if write and security.cross_origin(request):
            return error_response(
                request,
                UIError(403, "cross_origin", "Requests from another site are not accepted."),
            )
        if not ui_token or security.is_open_path(path) or security.authorized(request, ui_token):
            return None
        if not write:
            if open_reads:
                return None
            if _wants_json(request):
                return error_response(request, _unauthorized())
            # Back here after signing in, minus any token= (it would reach the log again).
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            here = path + ("?" + urlencode(query) if query else "")
            return RedirectResponse("/login?" + urlencode({"next": security.safe_next(here)}), 303)
        if not path.startswith("/api/") and _is_form(request):
            # A page's form may carry the token as a field: its route checks it, and
            # the body limit bounds what it reads to find it.
            return None
        return error_response(request, _unauthorized())

    def _set_cookie(request: Request, response: Response) -> None:
        assert ui_token
        response.set_cookie(
            security.COOKIE,
            security.session_value(ui_token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def require_write(request: Request, form_token: str | None = None) -> None:
        if not security.authorized(request, ui_token, form_token):
            raise _unauthorized()

    async def read_form(request: Request) -> dict[str, str]:
        try:
            form = await request.form(max_files=0, max_fields=50, max_part_size=MAX_BODY_CHARS)
        except StarletteHTTPException:
            raise  # the body limit's 413
        except Exception:
            raise UIError(400, "invalid_form", "The form could not be read.") from None
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def action_form(request: Request, execution_id: str) -> dict[str, str]:
        """The form of an action on an execution, once its id and token are checked."""
        _check_id(execution_id)
        form = await read_form(request)
        require_write(request, form.get("token"))
        return form

    def action_done(request: Request, message: str, redirect: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"ok": True, "message": message, "redirect": redirect})
        return RedirectResponse(redirect, 303)

    # -- pages --------------------------------------------------------------------------

    @app.get("/executions", include_in_schema=False)
    def executions_redirect(request: Request) -> Response:
        # The list lives at "/"; "/executions" is where people (and the start form's
        # POST) expect it, so a GET there goes to the list with its filters kept.
        query = request.url.query
        return RedirectResponse("/" + ("?" + query if query else ""), 303)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def executions_page(request: Request) -> Response:
        params = request.query_params
        status = _parse_status(params.get("status"))
        workflow = _parse_workflow(params.get("workflow"))
        limit = _parse_int(params.get("limit"), 50, 1, 500, "limit")
        cursor = _parse_int(params.get("cursor"), 0, 0, 10**9, "cursor")
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
        return render(
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

    @app.get("/executions/{execution_id}", response_class=HTMLResponse, include_in_schema=False)
    def execution_page(request: Request, execution_id: str) -> Response:
        _check_id(execution_id)
        view = load_execution(execution_id)
        selected = request.query_params.get("state")
        # ?items=N: a page of a Map state's items (default: the selected item's page).
        page = _parse_int(request.query_params.get("items"), 0, 0, 10**7, "items") or None
        details = None
        missing = None
        candidates: list[str] = []
        if selected:
            details = view.details(selected, page)
            if details is None:
                missing = selected[:200]
                candidates = view.candidates(selected)
        if request.query_params.get("fragment") == "details":
            return render(
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
        link = _execution_url(execution_id) + "?state="
        return render(
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
            },
            404 if missing else 200,
        )

    @app.get("/dead-letters", response_class=HTMLResponse, include_in_schema=False)
    def dead_letters_page(request: Request) -> Response:
        limit = _parse_int(request.query_params.get("limit"), 100, 1, 1000, "limit")
        letters = _dead_letters(limit)
        return render(request, "dead_letters.html", {"title": "Dead letters", "letters": letters})

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        target = security.safe_next(request.query_params.get("next"))
        return render(request, "login.html", {"title": "Sign in", "next": target})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        target = security.safe_next(form.get("next"))
        given = form.get("token", "")
        if ui_token and not security.same_token(given, ui_token):
            return render(
                request, "login.html", {"title": "Sign in", "next": target, "failed": True}, 401
            )
        response = RedirectResponse(_with_done(target, "signed-in"), 303)
        if ui_token:
            _set_cookie(request, response)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/?done=signed-out", 303)
        response.delete_cookie(security.COOKIE, path="/")
        return response

    # -- page actions (HTML forms; JSON when asked with Accept: application/json) -------

    @app.post("/executions", include_in_schema=False)
    async def start_from_form(request: Request) -> Response:
        form = await read_form(request)
        require_write(request, form.get("token"))
        workflow = (form.get("workflow") or "").strip()
        definition_text = (form.get("definition") or "").strip()
        if not workflow and not definition_text:
            raise UIError(400, "missing_definition", "Choose a workflow or paste ASL JSON.")
        definition = _resolve_definition(definition_text or workflow)
        input_text = (form.get("input") or "").strip() or "{}"
        value = _parse_json(input_text, "input")
        name = (form.get("name") or "").strip() or None
        handle = start_workflow(definition, value, name=name)
        url = _execution_url(handle.execution_id, done="started")
        return action_done(request, DONE_MESSAGES["started"], url)

    @app.post("/executions/{execution_id}/stop", include_in_schema=False)
    async def stop_from_form(request: Request, execution_id: str) -> Response:
        form = await action_form(request, execution_id)
        error = _check_text(form.get("error"), MAX_ERROR_CHARS, "error")
        cause = _check_text(form.get("cause"), MAX_CAUSE_CHARS, "cause")
        stop_execution(execution_id, error or "Stopped", cause or "Stopped from the web UI")
        return action_done(
            request, DONE_MESSAGES["stopped"], _execution_url(execution_id, done="stopped")
        )

    @app.post("/executions/{execution_id}/redrive", include_in_schema=False)
    async def redrive_from_form(request: Request, execution_id: str) -> Response:
        form = await action_form(request, execution_id)
        redrive_execution(execution_id)
        if form.get("return_to") == "dead-letters":
            target = "/dead-letters?done=redriven"
        else:
            target = _execution_url(execution_id, done="redriven")
        return action_done(request, DONE_MESSAGES["redriven"], target)

    @app.post("/executions/{execution_id}/tasks/approve", include_in_schema=False)
    async def approve_from_form(request: Request, execution_id: str) -> Response:
        form = await action_form(request, execution_id)
        step_key = _step_key(form.get("step_key"))
        output = _parse_json((form.get("output") or "").strip() or "{}", "output")
        send_task_success(_token_from_request(None, execution_id, step_key), output)
        return action_done(
            request, DONE_MESSAGES["approved"], _execution_url(execution_id, done="approved")
        )

    @app.post("/executions/{execution_id}/tasks/reject", include_in_schema=False)
    async def reject_from_form(request: Request, execution_id: str) -> Response:
        form = await action_form(request, execution_id)
        step_key = _step_key(form.get("step_key"))
        error = _check_text(form.get("error"), MAX_ERROR_CHARS, "error")
        cause = _check_text(form.get("cause"), MAX_CAUSE_CHARS, "cause")
        send_task_failure(
            _token_from_request(None, execution_id, step_key), error or "Rejected", cause or ""
        )
        return action_done(
            request, DONE_MESSAGES["rejected"], _execution_url(execution_id, done="rejected")
        )

    # -- JSON API -----------------------------------------------------------------------

    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "Invalid input"},
        401: {"model": ErrorResponse, "description": "ORCHESTRATOR_UI_TOKEN required"},
        404: {"model": ErrorResponse, "description": "Not found"},
        409: {"model": ErrorResponse, "description": "Not possible in the current state"},
        422: {"model": ErrorResponse, "description": "Malformed request"},
    }

    def api_write(request: Request) -> None:
        require_write(request)

    @app.get("/api/executions", response_model=ExecutionList, tags=["executions"], responses=errors)
    def api_list(
        status: Annotated[ExecutionStatus | None, Query()] = None,
        workflow: Annotated[str | None, Query(pattern=WORKFLOW_NAME.pattern)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[int, Query(ge=0)] = 0,
    ) -> ExecutionList:
        """Executions, newest first, optionally filtered by status and workflow name."""
        rows, next_cursor = list_summaries(status, workflow, limit, cursor)
        now = datetime.now(UTC)
        return ExecutionList(
            executions=[_summary_out(r, now) for r in rows], next_cursor=next_cursor
        )

    @app.post(
        "/api/executions",
        response_model=StartResponse,
        status_code=201,
        tags=["executions"],
        responses=errors,
    )
    def api_start(request: Request, body: StartRequest) -> StartResponse:
        """Start an execution of a named workflow or of an ASL definition."""
        api_write(request)
        definition = _resolve_definition(body.definition)
        handle = start_workflow(definition, body.input, name=body.name)
        status = get_store().execution_status(handle.execution_id)
        return StartResponse(
            execution_id=handle.execution_id,
            status=ExecutionStatus(status or "RUNNING"),
            url=_execution_url(handle.execution_id),
        )

    @app.get(
        "/api/executions/{execution_id}",
        response_model=ExecutionDetail,
        tags=["executions"],
        responses=errors,
    )
    def api_describe(execution_id: str) -> ExecutionDetail:
        """An execution: status, input, output, error, steps, and every state's status."""
        _check_id(execution_id)
        view = load_execution(execution_id)
        return ExecutionDetail(
            **view.description.model_dump(),
            states=view.statuses(),
            waiting_tasks=[
                WaitingTaskOut(step_key=w.step_key, state=w.state, since=w.since)
                for w in view.waiting
            ],
            history_length=len(view.history),
        )

    @app.get(
        "/api/executions/{execution_id}/history",
        response_model=list[HistoryEvent],
        tags=["executions"],
        responses=errors,
    )
    def api_history(
        execution_id: str,
        after: Annotated[int, Query(ge=0, description="Only events with a greater id.")] = 0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> list[HistoryEvent]:
        """History events, oldest first (ids are dense: 1, 2, 3...)."""
        _check_id(execution_id)
        from orchestrator.client.api import get_execution_history

        return get_execution_history(execution_id, after=after, limit=limit)

    @app.post(
        "/api/executions/{execution_id}/stop",
        response_model=ActionResult,
        tags=["actions"],
        responses=errors,
    )
    def api_stop(
        request: Request, execution_id: str, body: Annotated[StopRequest | None, Body()] = None
    ) -> ActionResult:
        """Stop (abort) a running execution."""
        api_write(request)
        _check_id(execution_id)
        body = body or StopRequest(error=None, cause=None)
        stop_execution(execution_id, body.error, body.cause)
        return ActionResult(
            message="stopped", execution_id=execution_id, status=ExecutionStatus.ABORTED
        )

    @app.post(
        "/api/executions/{execution_id}/redrive",
        response_model=ActionResult,
        tags=["actions"],
        responses=errors,
    )
    def api_redrive(request: Request, execution_id: str) -> ActionResult:
        """Redrive a FAILED, TIMED_OUT or ABORTED execution."""
        api_write(request)
        _check_id(execution_id)
        redrive_execution(execution_id)
        return ActionResult(
            message="redriven", execution_id=execution_id, status=ExecutionStatus.RUNNING
        )

    @app.post(
        "/api/task-tokens/success", response_model=ActionResult, tags=["actions"], responses=errors
    )
    def api_task_success(request: Request, body: TaskSuccessRequest) -> ActionResult:
        """Complete a waiting `.waitForTaskToken` task with an output."""
        api_write(request)
        token = _token_from_request(body.token, body.execution_id, _opt_step_key(body.step_key))
        send_task_success(token, body.output)
        return ActionResult(message="task succeeded", execution_id=body.execution_id)

    @app.post(
        "/api/task-tokens/failure", response_model=ActionResult, tags=["actions"], responses=errors
    )
    def api_task_failure(request: Request, body: TaskFailureRequest) -> ActionResult:
        """Fail a waiting `.waitForTaskToken` task (its Retry and Catch rules apply)."""
        api_write(request)
        token = _token_from_request(body.token, body.execution_id, _opt_step_key(body.step_key))
        send_task_failure(token, body.error, body.cause)
        return ActionResult(message="task failed", execution_id=body.execution_id)

    @app.get(
        "/api/dead-letters",
        response_model=list[DeadLetterOut],
        tags=["dead letters"],
        responses=errors,
    )
    def api_dead_letters(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeadLetterOut]:
        """Dead letters, newest first."""
        return _dead_letters(limit)

    @app.get("/api/workflows", response_model=list[str], tags=["executions"])
    def api_workflows() -> list[str]:
        """Names of the workflows in the workflows folder (for `POST /api/executions`)."""
        return sorted(workflow_files())

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        get_store().ping()
        return {"status": "ok"}

    return app


def _unauthorized() -> UIError:
    return UIError(
        401,
        "unauthorized",
        "This needs the UI token (ORCHESTRATOR_UI_TOKEN): sign in, or send it as a Bearer token.",
    )


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


def _step_key(value: str | None) -> str:
    key = (value or "").strip()
    if not key or len(key) > MAX_STEP_KEY_CHARS:
        raise UIError(400, "invalid_step_key", "Which waiting task? (step_key is missing.)")
    return key


def _opt_step_key(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _with_done(target: str, done: str) -> str:
    return target + ("&" if "?" in target else "?") + f"done={done}"


def _dead_letters(limit: int) -> list[DeadLetterOut]:
    letters = list_dead_letters(limit)
    statuses = get_store().execution_statuses([letter.execution_id or "-" for letter in letters])
    return [
        DeadLetterOut(
            **letter.model_dump(), redrivable=bool(letter.execution_id) and status in REDRIVABLE
        )
        for letter, status in zip(letters, statuses, strict=True)
    ]


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    token: str | None = None,
    log_level: str = "info",
    insecure_no_token: bool = False,
) -> None:
    """Serve the UI with uvicorn until interrupted (against the configured REDIS_URL).

    ``token`` defaults to ``ORCHESTRATOR_UI_TOKEN``. Without one, only a loopback ``host``
    is accepted unless ``insecure_no_token``. The Host header must be a local name,
    ``host`` itself, or one of ``ORCHESTRATOR_UI_ALLOWED_HOSTS``.

    Raises:
        RuntimeError: REDIS_URL is not set, or ``host`` is not loopback and no token is set.
    """
    import uvicorn

    from orchestrator.config import get_settings

    if not get_settings().redis_url:
        raise RuntimeError("REDIS_URL is not set: the UI needs the orchestrator's Redis")
    ui_token = token if token is not None else (os.environ.get(security.TOKEN_ENV) or "")
    refusal = security.refuse_open_bind(host, ui_token, insecure_no_token)
    if refusal:
        raise RuntimeError(refusal)
    if not ui_token and not security.is_loopback(host):
        logger.warning(
            "serving the UI on %s WITHOUT a token (--insecure-no-token): anyone who reaches "
            "it can read every execution and stop, redrive or approve them",
            host,
        )
    app = create_app(token=ui_token, allowed_hosts=security.allowed_hosts(host))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    # uvicorn's access log writes every path with its query string: no token in it.
    security.install_log_redaction([ui_token])
    uvicorn.Server(config).run()
