"""Correlated logs: every log line carries the ``execution_id`` and ``state`` it is about.

The runtime sets both in context variables around each step, timer and callback, and a
logging filter copies them onto every record — the orchestrator's own and the ones an
activity writes with plain ``logging`` — so one grep for an execution id finds its lines
on every worker. ``ORCHESTRATOR_JSON_LOGS=1`` switches to one JSON object per line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from orchestrator.language.tokens import MARK, redact_text

_execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orchestrator_execution_id", default=None
)
_state: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orchestrator_state", default=None
)

#: Text format: the usual fields, then the correlation fields.
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [execution_id=%(execution_id)s state=%(state)s] %(message)s"
)


@contextlib.contextmanager
def step_context(execution_id: str | None, state: str | None) -> Iterator[None]:
    """Log lines written inside carry this execution id and state."""
    tokens = (_execution_id.set(execution_id), _state.set(state))
    try:
        yield
    finally:
        _execution_id.reset(tokens[0])
        _state.reset(tokens[1])


class CorrelationFilter(logging.Filter):
    """Adds ``execution_id`` and ``state`` to every record (``-`` outside a step), and
    redacts task tokens from its message (an activity logging its input, Celery logging
    a task's return value)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            record.execution_id = _execution_id.get() or "-"
        if getattr(record, "state", None) is None:
            record.state = _state.get() or "-"
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the handler's to report
            return True
        if MARK in message:
            record.msg, record.args = redact_text(message), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, execution_id, state."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "execution_id": getattr(record, "execution_id", "-"),
            "state": getattr(record, "state", "-"),
        }
        task_name = getattr(record, "task_name", None)
        if task_name:
            entry["task"] = task_name
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(handler: logging.Handler, *, json_logs: bool) -> None:
    """Give a handler the correlation filter and the chosen format."""
    if not any(isinstance(f, CorrelationFilter) for f in handler.filters):
        handler.addFilter(CorrelationFilter())
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(TEXT_FORMAT))
