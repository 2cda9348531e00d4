"""Every error a route can meet, answered as a :class:`UIError`: JSON with a stable code for
the API, an error page otherwise, and never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from orchestrator.ui.context import context_of
from orchestrator.ui.inputs import UIError

logger = logging.getLogger(__name__)


def _answer(request: Request, error: UIError) -> Response:
    return context_of(request).error_response(request, error)


async def _ui_error(request: Request, exc: UIError) -> Response:
    return _answer(request, exc)


async def _not_found(request: Request, exc: ExecutionNotFound) -> Response:
    return _answer(request, UIError(404, "not_found", f"No execution {exc.execution_id!r}."))


async def _bad_state(request: Request, exc: InvalidExecutionState) -> Response:
    return _answer(
        request,
        UIError(
            409,
            "invalid_state",
            f"Cannot {exc.operation} execution {exc.execution_id!r}: it is {exc.status}.",
        ),
    )


async def _token_error(request: Request, exc: TaskTokenError) -> Response:
    return _answer(request, UIError(409, "task_token", f"Task token not accepted: {exc.reason}."))


async def _bad_input(request: Request, exc: InvalidInputError) -> Response:
    return _answer(request, UIError(400, "invalid_input", str(exc)))


async def _bad_definition(request: Request, exc: DefinitionError) -> Response:
    return _answer(
        request,
        UIError(
            400,
            "invalid_definition",
            f"The definition is invalid ({len(exc.issues)} issue(s)).",
            [str(issue) for issue in exc.issues],
        ),
    )


async def _exists(request: Request, exc: ExecutionAlreadyExists) -> Response:
    return _answer(
        request,
        UIError(
            409,
            "already_exists",
            f"An execution named {exc.execution_id!r} exists with a different input.",
        ),
    )


async def _redis_down(request: Request, exc: Exception) -> Response:
    logger.warning("Redis error: %s", exc)
    return _answer(
        request, UIError(503, "store_unavailable", "The orchestrator's Redis cannot be reached.")
    )


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    details = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        details.append(f"{where or 'request'}: {problem.get('msg', 'invalid')}")
    return _answer(request, UIError(422, "invalid_request", "The request is not valid.", details))


async def _too_large(request: Request, exc: security.BodyTooLarge) -> Response:
    return _answer(request, UIError(413, "too_large", str(exc.detail)))


async def _orchestrator_error(request: Request, exc: OrchestratorError) -> Response:
    # Any other error the engine raises to callers is about what the client sent.
    return _answer(request, UIError(400, "invalid_request", str(exc)[:2000]))


async def _too_deep(request: Request, exc: RecursionError) -> Response:
    return _answer(request, UIError(400, "too_deep", "The request nests values too deeply."))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    messages = {404: "There is no such page.", 405: "That method is not allowed here."}
    message = messages.get(exc.status_code, str(exc.detail))
    return _answer(request, UIError(exc.status_code, "http_error", message))


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RuntimeError) and "REDIS_URL" in str(exc):
        return _answer(request, UIError(503, "store_unconfigured", "REDIS_URL is not set."))
    logger.exception("unexpected error serving %s", request.url.path)
    return _answer(
        request,
        UIError(500, "internal_error", "Something went wrong; the server log has details."),
    )


# Starlette picks the handler of the nearest class in the exception's MRO, so the
# general OrchestratorError and Exception only catch what nothing closer does.
_HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = {
    UIError: _ui_error,
    ExecutionNotFound: _not_found,
    InvalidExecutionState: _bad_state,
    TaskTokenError: _token_error,
    InvalidInputError: _bad_input,
    DefinitionError: _bad_definition,
    ExecutionAlreadyExists: _exists,
    StoreUnavailable: _redis_down,
    redis.RedisError: _redis_down,
    RequestValidationError: _invalid_request,
    security.BodyTooLarge: _too_large,
    OrchestratorError: _orchestrator_error,
    RecursionError: _too_deep,
    StarletteHTTPException: _http_error,
    Exception: _unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app``'s routes through its context's ``error_response``."""
    for kind, handler in _HANDLERS.items():
        app.add_exception_handler(kind, handler)
