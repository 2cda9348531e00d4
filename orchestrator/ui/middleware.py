"""The UI's middleware, outermost first: the Host check, local redirects only, the guard
(the token, checked before any body is read, and the security headers), the body limit,
then task tokens masked in answers. The pieces are :mod:`orchestrator.ui.security`'s; this
module puts them in order and decides who may pass."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from orchestrator.ui import security
from orchestrator.ui.context import UIContext, context_of, wants_json
from orchestrator.ui.inputs import UIError, is_form, unauthorized
from orchestrator.ui.sfn import is_api_request

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def install_middleware(app: FastAPI, ui: UIContext) -> None:
    """Add the UI's middleware to ``app`` (each ``add_middleware`` wraps the ones before)."""
    app.add_middleware(
        security.ScrubMiddleware, find=security.task_tokens_in, mask=security.TASK_TOKEN_MASK
    )
    app.add_middleware(security.BodyLimitMiddleware, limit=ui.body_limit, reject=_reject)
    app.middleware("http")(_guard)
    app.add_middleware(security.LocalRedirectMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=ui.allowed_hosts, www_redirect=False)


def _reject(scope: Any, status: int, message: str) -> Response:
    """The body limit's refusal, answered like any other error."""
    request = Request(scope)
    code = "too_large" if status == 413 else "invalid_request"
    return context_of(request).error_response(request, UIError(status, code, message))


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    refused = check_access(context_of(request), request)
    response = refused if refused is not None else await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.url.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def check_access(ui: UIContext, request: Request) -> Response | None:
    """A refusal decided from the headers alone (nothing has read the body yet)."""
    path = request.url.path
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    if write and security.cross_origin(request):
        return ui.error_response(
            request,
            UIError(403, "cross_origin", "Requests from another site are not accepted."),
        )
    if not ui.token or security.is_open_path(path) or security.authorized(request, ui.token):
        return None
    if is_api_request(request):
        return None  # AWS clients sign with SigV4: sfn.authenticate checks them, not the token
    if not write:
        if ui.public_read:
            return None
        if wants_json(request):
            return ui.error_response(request, unauthorized())
        # Back here after signing in, minus any token= (it would reach the log again).
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        here = path + ("?" + urlencode(query) if query else "")
        return RedirectResponse("/login?" + urlencode({"next": security.safe_next(here)}), 303)
    if not path.startswith("/api/") and is_form(request):
        # A page's form may carry the token as a field: its route checks it, and
        # the body limit bounds what it reads to find it.
        return None
    return ui.error_response(request, unauthorized())
