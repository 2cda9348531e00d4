"""What clients send the UI: its limits, and the checks that turn a bad value into a
:class:`UIError` (an answer with a stable code and a message for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request

from orchestrator.client.models import ExecutionStatus
from orchestrator.errors import ExecutionNotFound
from orchestrator.language.arns import execution_id_from
from orchestrator.ui.data import WORKFLOW_NAME, valid_execution_id, waiting_token, workflow_files

#: Longest accepted error name and cause (Step Functions' limits).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768
MAX_STEP_KEY_CHARS = 2_000
#: Longest accepted ASL text or JSON input in a form or request (the engine has its own
#: limit on the input; this bounds what is parsed at all).
MAX_BODY_CHARS = 1_048_576


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


def unauthorized() -> UIError:
    """The answer to a request that needs the UI token and lacks it."""
    return UIError(
        401,
        "unauthorized",
        "This needs the UI token (ORCHESTRATOR_UI_TOKEN): sign in, or send it as a Bearer token.",
    )


def check_id(execution_id: str) -> str:
    """The execution id ``execution_id`` names (itself, or an execution ARN's name) if it
    can name an execution; else a 404 (never a store lookup)."""
    named = execution_id_from(execution_id)
    if not valid_execution_id(named):
        raise UIError(404, "not_found", f"No execution {execution_id[:100]!r}.")
    return named


def parse_status(value: str | None) -> ExecutionStatus | None:
    """A status filter given in any case; ``None`` for none."""
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


def parse_workflow(value: str | None) -> str | None:
    """A workflow-name filter; ``None`` for none."""
    if not value:
        return None
    if not WORKFLOW_NAME.match(value):
        raise UIError(
            400,
            "invalid_workflow",
            "A workflow name has 1-80 letters, digits, '.', '_' or '-'.",
        )
    return value


def parse_int(value: str | None, default: int, low: int, high: int, name: str) -> int:
    """A whole number between ``low`` and ``high`` given as text; ``default`` if absent."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise UIError(400, f"invalid_{name}", f"{name} must be a whole number.") from None
    if not low <= number <= high:
        raise UIError(400, f"invalid_{name}", f"{name} must be between {low} and {high}.")
    return number


def parse_json(text: str, what: str) -> Any:
    """The JSON value of ``text`` (the ``what`` of a request), size-limited."""
    if len(text) > MAX_BODY_CHARS:
        raise UIError(413, "too_large", f"The {what} is too large.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UIError(400, "invalid_json", f"The {what} is not valid JSON: {exc}.") from None


def resolve_definition(value: str | dict[str, Any]) -> dict[str, Any] | Path:
    """A definition given by a client: an ASL object or text, or a workflow's name.

    Names resolve only to files of the workflows folder (never to another path).
    """
    if isinstance(value, dict):
        return value
    text = value.strip()
    if text.startswith("{"):
        parsed = parse_json(text, "definition")
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


def check_text(value: str | None, limit: int, what: str) -> str | None:
    """A form's free text, stripped; ``None`` if empty."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise UIError(400, f"invalid_{what}", f"The {what} is longer than {limit} characters.")
    return value or None


def step_key(value: str | None) -> str:
    """The waiting step a form's action is about (required)."""
    key = (value or "").strip()
    if not key or len(key) > MAX_STEP_KEY_CHARS:
        raise UIError(400, "invalid_step_key", "Which waiting task? (step_key is missing.)")
    return key


def optional_step_key(value: str | None) -> str | None:
    """An API request's step key, stripped; ``None`` if blank."""
    return value.strip() if value and value.strip() else None


def task_token(token: str | None, execution_id: str | None, step_key: str | None) -> str:
    """The task token a request names: given, or that of an execution's waiting step."""
    if token:
        return token
    if execution_id and step_key:
        execution_id = check_id(execution_id)
        try:
            return waiting_token(execution_id, step_key)
        except ExecutionNotFound:
            raise
        except LookupError as exc:
            raise UIError(409, "task_token", f"{exc}.") from None
    raise UIError(400, "missing_token", "Give a token, or an execution_id and a step_key.")


def is_form(request: Request) -> bool:
    """Whether the request's body is an HTML form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")
