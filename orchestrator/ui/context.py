"""What every part of the UI shares: one :class:`UIContext` per app, built by ``create_app``
and kept on ``app.state.ui``, and the helpers that answer with a page or with JSON.

Routes reach the context through the :data:`UI` dependency, middleware and error handlers
through :func:`context_of`; nothing holds it in a closure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.client.api import ExecutionHandle
from orchestrator.client.models import DeadLetter, ExecutionStatus, HistoryEvent
from orchestrator.engine.store import get_store
from orchestrator.language.stepkeys import display_key
from orchestrator.ui import security
from orchestrator.ui.graph import STATUS_LABELS, STATUSES
from orchestrator.ui.inputs import MAX_BODY_CHARS, UIError, check_id, unauthorized
from orchestrator.ui.models import DeadLetterOut, ErrorBody, ErrorResponse
from orchestrator.ui.views import (
    REDRIVABLE,
    compact,
    duration,
    event_class,
    format_seconds,
    pretty,
    timestamp,
)

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
TEMPLATES_DIR = _HERE / "templates"
#: The notice a page shows after an action redirected to it with ``?done=``.
DONE_MESSAGES = {
    "started": "Execution started.",
    "stopped": "Execution stopped.",
    "redriven": "Execution redriven: it runs again from what did not succeed.",
    "approved": "Task approved: the execution goes on with the output you gave.",
    "rejected": "Task rejected: the error goes through the state's Retry and Catch rules.",
    "signed-in": "Signed in.",
    "signed-out": "Signed out.",
}


@dataclass(frozen=True)
class ClientCalls:
    """The orchestrator operations the routes make (reads of pages go through
    :mod:`orchestrator.ui.data` and :mod:`orchestrator.ui.views`). ``create_app`` binds the
    client's functions, so one place names them and a test can substitute one."""

    start_workflow: Callable[..., ExecutionHandle]
    stop_execution: Callable[[str, str | None, str | None], None]
    redrive_execution: Callable[[str], ExecutionHandle]
    send_task_success: Callable[[str, Any], None]
    send_task_failure: Callable[[str, str | None, str | None], None]
    list_dead_letters: Callable[[int], list[DeadLetter]]
    get_execution_history: Callable[..., list[HistoryEvent]]


@dataclass(frozen=True)
class UIContext:
    """One app's configuration (its token and limits), its templates and client calls."""

    #: The UI token; ``None`` when none is required.
    token: str | None
    #: Whether reads are open to anyone although a token is set.
    public_read: bool
    #: Host header values answered.
    allowed_hosts: list[str]
    #: Largest request body, in bytes.
    body_limit: int
    templates: Jinja2Templates
    client: ClientCalls

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        """A page: ``template`` with ``context`` and what every page shows."""
        base = {
            "request": request,
            "token_required": bool(self.token),
            "signed_in": security.signed_in(request, self.token),
            "notice": DONE_MESSAGES.get(request.query_params.get("done", "")),
            "path": request.url.path,
        }
        return self.templates.TemplateResponse(request, template, {**base, **context}, status)

    def error_response(self, request: Request, error: UIError) -> Response:
        """``error`` as JSON for the API and JSON clients, else as an error page."""
        body = ErrorResponse(
            error=ErrorBody(code=error.code, message=error.message, details=error.details)
        )
        headers = {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if wants_json(request):
            return JSONResponse(body.model_dump(), error.status, headers=headers)
        return self.render(
            request,
            "error.html",
            {"error": error, "title": f"Error {error.status}"},
            error.status,
        )

    def require_write(self, request: Request, form_token: str | None = None) -> None:
        """Raise a 401 unless the request carries the token (a form may carry it as a field)."""
        if not security.authorized(request, self.token, form_token):
            raise unauthorized()

    def set_session_cookie(self, request: Request, response: Response) -> None:
        """Sign the browser in: a cookie derived from the token, never the token itself."""
        assert self.token
        response.set_cookie(
            security.COOKIE,
            security.session_value(self.token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    async def action_form(self, request: Request, execution_id: str) -> dict[str, str]:
        """The form of an action on an execution, once its id and token are checked."""
        check_id(execution_id)
        form = await read_form(request)
        self.require_write(request, form.get("token"))
        return form

    def dead_letters(self, limit: int) -> list[DeadLetterOut]:
        """The newest ``limit`` dead letters, each saying whether its execution can be
        redriven."""
        letters = self.client.list_dead_letters(limit)
        statuses = get_store().execution_statuses(
            [letter.execution_id or "-" for letter in letters]
        )
        return [
            DeadLetterOut(
                **letter.model_dump(), redrivable=bool(letter.execution_id) and status in REDRIVABLE
            )
            for letter, status in zip(letters, statuses, strict=True)
        ]


def context_of(request: Request) -> UIContext:
    """The context of the app serving ``request``."""
    ui: UIContext = request.app.state.ui
    return ui


async def _context_dependency(request: Request) -> UIContext:
    # async: a plain function dependency would cost a thread-pool hop per request.
    return context_of(request)


#: A route's parameter that receives the context (not part of the OpenAPI schema).
UI = Annotated[UIContext, Depends(_context_dependency)]


def make_templates() -> Jinja2Templates:
    """The page templates, with the filters and globals they use."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters["ts"] = timestamp
    env.filters["pretty"] = pretty
    env.filters["compact"] = compact
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["shown"] = display_key
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
    stamps = [int(p.stat().st_mtime) for p in STATIC_DIR.iterdir() if p.is_file()]
    return str(max(stamps, default=0))


#: Paths outside /api/ read by programs, never browsers: refused with a 401, not a
#: redirect to the sign-in page.
MACHINE_PATHS = ("/openapi.json", "/metrics")


def wants_json(request: Request) -> bool:
    """Whether to answer ``request`` with JSON rather than a page."""
    if request.url.path.startswith("/api/") or request.url.path in MACHINE_PATHS:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def execution_url(execution_id: str, **params: str) -> str:
    """The page of an execution, with ``params`` as its query."""
    url = f"/executions/{quote(execution_id, safe='')}"
    return url + ("?" + urlencode(params) if params else "")


def with_done(target: str, done: str) -> str:
    """``target`` with the ``done`` notice to show there."""
    return target + ("&" if "?" in target else "?") + f"done={done}"


async def read_form(request: Request) -> dict[str, str]:
    """A form's text fields (no files; the body limit bounds the rest)."""
    try:
        form = await request.form(max_files=0, max_fields=50, max_part_size=MAX_BODY_CHARS)
    except StarletteHTTPException:
        raise  # the body limit's 413
    except Exception:
        raise UIError(400, "invalid_form", "The form could not be read.") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def action_done(request: Request, message: str, redirect: str) -> Response:
    """After a page's action: back to a page, or JSON for the page's script."""
    if wants_json(request):
        return JSONResponse({"ok": True, "message": message, "redirect": redirect})
    return RedirectResponse(redirect, 303)
