"""JSONPath reading and writing with Step Functions semantics (placeholder: being rewritten)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.errors import StatesRuntimeError


class PathNotFound(StatesRuntimeError):
    """A reference path matched nothing in its data (``States.Runtime``)."""


def read_path(data: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    """Return the value at ``path`` ("$..." in ``data``, "$$..." in ``context``)."""
    if path.startswith("$$"):
        data, path = context or {}, path[1:]
    value = data
    for part in [p for p in path[1:].split(".") if p]:
        if not isinstance(value, Mapping) or part not in value:
            raise PathNotFound(f"The JSONPath {path!r} could not be found in the input")
        value = value[part]
    return value
