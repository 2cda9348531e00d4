"""Shape checks of task messages, made before Celery's strategy or the worker pool sees them.

Celery trusts the shape of what it receives: a body of ``null`` or ``42``, or a header
``timelimit: "x"``, raises inside its consumer and stops the worker (which puts the message
back, so every restarted worker dies on it again); a body whose arguments are not a list
fails in the pool. The worker's consumer (:class:`orchestrator.engine.celery_app.
OrchestratorConsumer`) runs :func:`check_message` on every message first: a message it
refuses is acknowledged and dead-lettered, and the worker goes on.

Pure logic: no I/O; the caller passes the decoded body and what it knows of the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.config import MAX_PRIORITY
from orchestrator.language.jsontext import dumps

#: How much of a refused message a dead letter keeps (characters of its body).
EXCERPT_CHARS = 2048

#: Longest task name, task id or other identifier a header may hold.
MAX_ID_CHARS = 255

#: Embedded canvas options a protocol 2 body may carry (Celery merges them into the
#: task's request, so any other key would overwrite the request's own attributes).
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})

#: Headers Celery reads, and the type each must have (None is always allowed).
_STR_HEADERS = (
    "lang",
    "shadow",
    "root_id",
    "parent_id",
    "group",
    "origin",
    "argsrepr",
    "kwargsrepr",
    "correlation_id",
    "reply_to",
)
_INT_HEADERS = ("retries", "group_index", "replaced_task_nesting")


class BadMessage(Exception):
    """A message the worker refuses: ``error`` names the problem, ``cause`` says it."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


def excerpt(body: Any, limit: int = EXCERPT_CHARS) -> Any:
    """What a dead letter keeps of a message body: JSON values that fit as they are,
    anything else as at most ``limit`` characters of text (marked when cut)."""
    if isinstance(body, bytes | bytearray | memoryview):
        text = bytes(body[: limit * 4]).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        try:
            text = dumps(body)
        except (TypeError, ValueError):
            text = repr(body)[: limit + 1]
        else:
            if len(text) <= limit:
                return body
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [cut at {limit} characters]"


def _protected_names() -> frozenset[str]:
    # Attributes of Celery's request context that are methods or properties: a header or
    # embed key of that name would replace them on the request and break the task's run.
    from celery.app.task import Context

    return frozenset(
        name
        for name, value in vars(Context).items()
        if callable(value) or isinstance(value, property) or name.startswith("_")
    )


_PROTECTED: frozenset[str] | None = None


def check_headers(headers: Any) -> str:
    """Check a protocol 2 message's headers; returns the task name.

    Raises:
        BadMessage: a header is missing or has the wrong type.
    """
    global _PROTECTED
    if _PROTECTED is None:
        _PROTECTED = _protected_names()
    if not isinstance(headers, dict):
        raise BadMessage("MalformedMessage", "message has no headers (not a Celery message)")
    name = headers.get("task")
    if name is None:
        raise BadMessage("MalformedMessage", "message has no 'task' header")
    for field, value in (("task", name), ("id", headers.get("id"))):
        if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
            raise BadMessage(
                "MalformedMessage",
                f"header {field!r} must be a string of 1-{MAX_ID_CHARS} characters, "
                f"not {_kind(value)}",
            )
    for key in headers:
        if not isinstance(key, str) or key.startswith("_") or key in _PROTECTED:
            raise BadMessage("MalformedMessage", f"header name {excerpt(repr(key), 80)} refused")
    for field in _STR_HEADERS:
        value = headers.get(field)
        if value is not None and not isinstance(value, str):
            raise BadMessage("MalformedMessage", _typed(field, "a string", value))
    for field in _INT_HEADERS:
        value = headers.get(field)
        if value is not None and (not _is_int(value) or value < 0):
            raise BadMessage("MalformedMessage", _typed(field, "a non-negative integer", value))
    value = headers.get("ignore_result")
    if value is not None and not isinstance(value, bool):
        raise BadMessage("MalformedMessage", _typed("ignore_result", "a boolean", value))
    timelimit = headers.get("timelimit")
    if timelimit is not None and not (
        isinstance(timelimit, (list, tuple))
        and len(timelimit) == 2
        and all(limit is None or _is_seconds(limit) for limit in timelimit)
    ):
        raise BadMessage(
            "MalformedMessage", _typed("timelimit", "[soft, hard] seconds or nulls", timelimit)
        )
    for field in ("eta", "expires"):
        value = headers.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadMessage("MalformedMessage", _typed(field, "an ISO 8601 time", value))
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise BadMessage(
                "MalformedMessage", f"header {field!r} is not an ISO 8601 time"
            ) from None
    stamped = headers.get("stamped_headers")
    if stamped is not None and not (
        isinstance(stamped, (list, tuple)) and all(isinstance(s, str) for s in stamped)
    ):
        raise BadMessage("MalformedMessage", _typed("stamped_headers", "a list of names", stamped))
    for field in ("stamps", "headers"):
        value = headers.get(field)
        if value is not None and not isinstance(value, dict):
            raise BadMessage("MalformedMessage", _typed(field, "an object", value))
    groups = headers.get("groups")
    if groups is not None and not (
        isinstance(groups, (list, tuple)) and all(isinstance(g, str) for g in groups)
    ):
        raise BadMessage("MalformedMessage", _typed("groups", "a list of ids", groups))
    return name


def check_body(body: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Check a decoded protocol 2 body: ``[args (list), kwargs (object), embed (object)]``.

    Raises:
        BadMessage: the body has another shape.
    """
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise BadMessage(
            "MalformedMessage",
            f"body must be [args, kwargs, embed], not {_kind(body)}",
        )
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)):
        raise BadMessage("MalformedMessage", f"args must be a list, not {_kind(args)}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise BadMessage("MalformedMessage", f"kwargs must be an object, not {_kind(kwargs)}")
    if embed is None:
        embed = {}
    if not isinstance(embed, dict):
        raise BadMessage("MalformedMessage", f"embed must be an object, not {_kind(embed)}")
    for key, value in embed.items():
        if key not in EMBED_KEYS:
            raise BadMessage("MalformedMessage", f"unknown embed option {excerpt(key, 80)!r}")
        if value is None:
            continue
        signatures = [value] if key == "chord" else value
        if not isinstance(signatures, (list, tuple)) or not all(
            _is_signature(s) for s in signatures
        ):
            raise BadMessage("MalformedMessage", f"embed {key!r} must hold task signatures")
    return list(args), kwargs, embed


def _is_signature(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("task"), str):
        return False
    for field, kind in (("args", (list, tuple)), ("kwargs", dict), ("options", dict)):
        if value.get(field) is not None and not isinstance(value[field], kind):
            return False
    subtask_type = value.get("subtask_type")
    return subtask_type is None or isinstance(subtask_type, str)


def check_arguments(signature: Callable[..., Any] | None, args: list[Any], kwargs: dict) -> None:
    """Check that ``args`` and ``kwargs`` fit a task's signature (Celery's ``__header__``).

    Raises:
        BadMessage: they do not (the task would fail with a TypeError in the pool).
    """
    if signature is None:
        return
    try:
        signature(*args, **kwargs)
    except TypeError as exc:
        raise BadMessage("InvalidArguments", f"arguments do not fit the task: {exc}") from None


def activity_arguments(
    args: list[Any], kwargs: dict[str, Any], max_input_bytes: int, body_bytes: int
) -> None:
    """Check the arguments of an activity task: ``(input, execution_id, step_key)``.

    ``execution_id`` and ``step_key`` are both strings (a workflow step) or both absent (a
    plain Celery call); the input is at most ``max_input_bytes`` of JSON (measured only
    when the whole body is larger than that).

    Raises:
        BadMessage: they have other types, or the input is too large.
    """
    names = ("input", "execution_id", "step_key")
    if len(args) > len(names) or set(kwargs) - set(names):
        raise BadMessage("InvalidArguments", "an activity takes (input, execution_id, step_key)")
    values = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in values:
            raise BadMessage("InvalidArguments", f"argument {key!r} given twice")
        values[key] = value
    execution_id, step_key = values.get("execution_id"), values.get("step_key")
    if (execution_id is None) != (step_key is None):
        raise BadMessage("InvalidArguments", "execution_id and step_key go together")
    for field, value in (("execution_id", execution_id), ("step_key", step_key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise BadMessage("InvalidArguments", _typed(field, "a non-empty string", value))
    if body_bytes > max_input_bytes:
        size = len(dumps(values.get("input")).encode())
        if size > max_input_bytes:
            raise BadMessage(
                "MessageTooLarge",
                f"activity input of {size} bytes is over the {max_input_bytes}-byte limit",
            )


def dispatch_arguments(args: list[Any], kwargs: dict[str, Any]) -> None:
    """Check the argument of ``orchestrator.dispatch``: ``[[execution_id, def_hash,
    [[step_key, state, activity, params], ...], priority], ...]`` (priority: 0-9, or
    absent in a message from before priorities).

    Raises:
        BadMessage: it has another shape.
    """
    batch = args[0] if len(args) == 1 and not kwargs else kwargs.get("batch", None)
    if (len(args) + len(kwargs)) != 1 or not isinstance(batch, list):
        raise BadMessage("InvalidArguments", "orchestrator.dispatch takes one list (batch)")
    for entry in batch:
        if not (
            isinstance(entry, list)
            and len(entry) in (3, 4)
            and (len(entry) == 3 or _is_priority(entry[3]))
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], list)
            and all(
                isinstance(item, list)
                and len(item) == 4
                and all(isinstance(part, str) for part in item[:3])
                for item in entry[2]
            )
        ):
            raise BadMessage(
                "InvalidArguments",
                "orchestrator.dispatch entries are [execution_id, def_hash, "
                "[[step_key, state, activity, params], ...], priority]",
            )


def _is_priority(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_PRIORITY


def dead_letter_arguments(args: list[Any], kwargs: dict[str, Any]) -> None:
    """Check the arguments of ``orchestrator.dead_letter``: an execution id, then its
    state, error and cause (strings or nulls).

    Raises:
        BadMessage: they have other types.
    """
    if kwargs or len(args) != 4:
        raise BadMessage("InvalidArguments", "orchestrator.dead_letter takes four arguments")
    if not isinstance(args[0], str) or not all(a is None or isinstance(a, str) for a in args[1:]):
        raise BadMessage("InvalidArguments", "orchestrator.dead_letter takes strings")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _kind(value: Any) -> str:
    text = excerpt(repr(value), 60)
    return f"{type(value).__name__} {text}"


def _typed(field: str, expected: str, value: Any) -> str:
    return f"header or argument {field!r} must be {expected}, not {_kind(value)}"
