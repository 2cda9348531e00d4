"""Loading a state machine definition from a dict, a file, JSON or YAML text."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.definition.model import StateMachine, TaskState
from orchestrator.definition.validate import Validation, validate_machine
from orchestrator.errors import DefinitionError, DefinitionIssue

ResourceCheck = Callable[[TaskState], str | None]

# Longest string still considered as a possible file name rather than definition text.
_MAX_PATH_LENGTH = 4096


class _AslYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as JSON would."""


# YAML would turn unquoted ``2016-03-14T01:59:00Z`` into a datetime, which is not a JSON
# value; ASL wants the original string.
_AslYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Unparseable(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_AslYamlLoader)  # noqa: S506 - a SafeLoader subclass


def _parse_text(text: str, suffix: str = "") -> Any:
    if suffix == ".json":
        parsers = [_parse_json]
    elif suffix in (".yaml", ".yml"):
        parsers = [_parse_yaml]
    else:
        parsers = [_parse_json, _parse_yaml]
    error: Exception | None = None
    for parse in parsers:
        try:
            return parse(text)
        except (ValueError, yaml.YAMLError, RecursionError) as exc:
            error = exc
    raise _Unparseable(f"cannot parse the definition: {error}")


def _looks_like_file(source: str) -> bool:
    if not source or len(source) > _MAX_PATH_LENGTH or "\n" in source or "\0" in source:
        return False
    try:
        return os.path.isfile(source)
    except (OSError, ValueError):
        return False


def load_source(source: Any) -> Any:
    """Load ``source`` into raw JSON data without validating it.

    Args:
        source: A dict; a path (str or PathLike) of a ``.json``/``.yaml``/``.yml`` file; or
            JSON or YAML text.

    Returns:
        The loaded data (any JSON value).

    Raises:
        DefinitionError: The source cannot be read or parsed (one issue at ``$``).
    """
    try:
        if isinstance(source, dict):
            return source
        if isinstance(source, bytes):
            source = source.decode("utf-8")
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and _looks_like_file(source)
        ):
            path = Path(os.fsdecode(source))
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise _Unparseable(f"cannot read {str(path)!r}: {exc}") from exc
            suffix = path.suffix.lower()
            return _parse_text(text, suffix)
        if isinstance(source, str):
            return _parse_text(source)
    except (_Unparseable, UnicodeDecodeError) as exc:
        raise DefinitionError([DefinitionIssue("$", str(exc))]) from None
    raise DefinitionError(
        [DefinitionIssue("$", f"unsupported definition source of type {type(source).__name__}")]
    )


def _pydantic_issues(error: ValidationError) -> list[DefinitionIssue]:
    issues = []
    for detail in error.errors():
        path = "$"
        for part in detail["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        issues.append(DefinitionIssue(path, detail["msg"]))
    return issues


def parse_definition(
    source: dict[str, Any] | str | os.PathLike[str],
    *,
    resource_check: ResourceCheck | None = None,
) -> StateMachine:
    """Load, validate and model an ASL state machine definition.

    Args:
        source: The definition as a dict; or the path of a ``.json``, ``.asl.json``,
            ``.yaml`` or ``.yml`` file; or JSON or YAML text.
        resource_check: Called with every Task state (at any depth) once the definition is
            structurally sound; a returned string is reported as an issue at the state's
            ``Resource``.

    Returns:
        The validated, immutable state machine.

    Raises:
        DefinitionError: Listing every problem found. No other exception escapes for any
            input.
    """
    raw = load_source(source)
    validation: Validation = validate_machine(raw)
    issues = validation.issues
    machine: StateMachine | None = None
    try:
        machine = StateMachine.model_validate(raw)
    except ValidationError as exc:
        # Validation above already explains why the model cannot be built; pydantic's own
        # report only matters if validation let something through.
        if not issues:
            issues.extend(_pydantic_issues(exc))
    except (TypeError, ValueError, RecursionError) as exc:
        if not issues:
            issues.append(DefinitionIssue("$", f"invalid definition: {exc}"))
    if machine is not None and resource_check is not None:
        for path, _name, state, _scope in machine.walk():
            if isinstance(state, TaskState):
                message = resource_check(state)
                if message is not None:
                    raw_path = validation.task_paths.get(path, path)
                    issues.append(DefinitionIssue(f"{raw_path}.Resource", message))
    if issues:
        raise DefinitionError(issues)
    assert machine is not None  # every failure to build the model records an issue
    return machine
