"""The web UI and JSON API: ``create_app`` wires a FastAPI app from the UI's parts,
``serve`` runs it with uvicorn.

Pages are complete without JavaScript; ``static/ui.js`` only adds live updates (polling
the JSON API while an execution runs) and in-place actions.

The parts: :mod:`~orchestrator.ui.context` (the :class:`UIContext` every part shares: the
token, limits, templates and client calls), :mod:`~orchestrator.ui.pages` (HTML pages and
their forms' actions), :mod:`~orchestrator.ui.api` (the JSON API),
:mod:`~orchestrator.ui.errors` (every error as an answer), :mod:`~orchestrator.ui.middleware`
(the order of :mod:`~orchestrator.ui.security`'s protections), :mod:`~orchestrator.ui.inputs`
(limits and checks of what clients send) and :mod:`~orchestrator.ui.models` (JSON bodies).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from orchestrator.client.api import get_execution_history, start_workflow
from orchestrator.client.control import (
    list_dead_letters,
    redrive_execution,
    send_task_failure,
    send_task_success,
    stop_execution,
)
from orchestrator.config import get_settings
from orchestrator.ui import api, machines, pages, schedules, security, sfn, sigv4
from orchestrator.ui.context import STATIC_DIR, ClientCalls, UIContext, make_templates
from orchestrator.ui.errors import install_error_handlers
from orchestrator.ui.middleware import install_middleware

logger = logging.getLogger(__name__)


def create_app(
    *,
    token: str | None = None,
    public_read: bool | None = None,
    allowed_hosts: list[str] | None = None,
    max_body_bytes: int | None = None,
    api_keys: Mapping[str, str] | None = None,
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
        api_keys: access key id -> secret of the Step Functions API (``POST /``); default
            ``ORCHESTRATOR_API_KEYS``. With any, every API request must be signed with one
            (SigV4); without, the API is open.

    Raises:
        ConfigurationError: API keys are set and botocore (the ``aws`` extra) is missing.

    It reads and writes the store of the settings in force (``REDIS_URL``).
    """
    ui_token = token if token is not None else os.environ.get(security.TOKEN_ENV)
    ui = UIContext(
        token=ui_token or None,
        public_read=security.public_read_enabled() if public_read is None else public_read,
        allowed_hosts=security.allowed_hosts() if allowed_hosts is None else allowed_hosts,
        body_limit=max_body_bytes or security.body_limit(get_settings().max_input_bytes),
        templates=make_templates(),
        # Looked up here, in this module, so that a test may replace one of them.
        client=ClientCalls(
            start_workflow=start_workflow,
            stop_execution=stop_execution,
            redrive_execution=redrive_execution,
            send_task_success=send_task_success,
            send_task_failure=send_task_failure,
            list_dead_letters=list_dead_letters,
            get_execution_history=get_execution_history,
        ),
    )
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
    app.state.ui = ui
    app.state.ui_token = ui.token
    app.state.body_limit = ui.body_limit
    app.state.api_keys = dict(configured_api_keys() if api_keys is None else api_keys)
    if app.state.api_keys:
        sigv4.require_botocore()
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    install_error_handlers(app)
    install_middleware(app, ui)
    pages.routes.add_to(app)
    api.routes.add_to(app)
    schedules.routes.add_to(app)
    machines.routes.add_to(app)
    sfn.routes.add_to(app)
    return app


def configured_api_keys() -> dict[str, str]:
    """``ORCHESTRATOR_API_KEYS`` of the settings in force: access key id -> secret."""
    return {key: secret.get_secret_value() for key, secret in get_settings().api_keys.items()}


def api_notice(host: str, api_keys: Mapping[str, str], ui_token: str = "") -> str | None:
    """What start-up says when the Step Functions API is open, or closed for want of keys
    beside a UI token (None when keys guard it)."""
    if api_keys:
        return None
    if ui_token:
        return (
            "the Step Functions API (POST /) refuses every call: ORCHESTRATOR_UI_TOKEN is "
            "set and ORCHESTRATOR_API_KEYS is not (set ACCESS_KEY_ID:SECRET to use it)"
        )
    reach = "on this machine" if security.is_loopback(host) else f"that reaches {host}"
    return (
        f"the Step Functions API (POST /) is open: anyone {reach} can create, start, stop "
        "and delete state machines and executions without signing. Set "
        "ORCHESTRATOR_API_KEYS=ACCESS_KEY_ID:SECRET to require AWS Signature V4 "
        "(ORCHESTRATOR_UI_TOKEN does not guard it)"
    )


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
    api_keys = configured_api_keys()
    notice = api_notice(host, api_keys, ui_token)
    if notice:
        logger.warning(notice)
    app = create_app(token=ui_token, allowed_hosts=security.allowed_hosts(host), api_keys=api_keys)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    # uvicorn's access log writes every path with its query string: no token nor secret in it.
    security.install_log_redaction([ui_token, *api_keys.values()])
    uvicorn.Server(config).run()
