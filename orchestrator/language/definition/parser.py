"""Loading a state machine definition from a dict, a file, JSON or YAML text."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.errors import DefinitionError, DefinitionIssue
from orchestrator.language.definition.model import StateMachine, TaskState
from orchestrator.language.definition.validate import (
    MAX_DEFINITION_BYTES,
    MAX_NESTING_DEPTH,
    SURROGATE_RE,
    Validation,
    printable,
    validate_machine,
)

ResourceCheck = Callable[[TaskState], str | None]

# Longest string still considered as a possible file name rather than definition text.
_MAX_PATH_LENGTH = 4096


_DEFINITION_SUFFIXES = (".json", ".yaml", ".yml")


class _AslYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as JSON would, and refuses aliases.

    An alias (``*name``) repeats what its anchor holds, so a few hundred bytes of nested
    aliases (the "billion laughs") expand to billions of values for whatever walks or
    serialises the result; merge keys (``<<: *name``) even expand while loading. JSON has
    no aliases and Step Functions takes JSON, so they are refused outright.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML aliases (*name) are not accepted in definitions: write the value out in full",
                event.start_mark,
            )
        return super().compose_node(parent, index)


# YAML would turn unquoted ``2016-03-14T01:59:00Z`` into a datetime, which is not a JSON
# value; ASL wants the original string.
_AslYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Unparseable(Exception):
    pass


# The tokens of JSON or YAML text that tell how deeply it nests: a line's start (its
# indentation and any compact "- " / "? " / ": " indicators), an opening or closing
# bracket, and, skipped, quoted strings (only where YAML can start one), comments and the
# rest.
_DEPTH_TOKENS = re.compile(
    r"(?P<line>\n(?P<indent>[ ]*)(?P<compact>(?:[-?:](?:[ ]+|(?=\n)))*))"
    r"|(?P<open>[\[{])|(?P<close>[\]}])"
    r"|(?P<comment>(?<!\S)\#[^\n]*)"
    r"|(?<![^\s\[\]{},:])(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*')"
    r"|[^\n\[\]{}\"'#]+|.",
    re.DOTALL,
)


def _too_deep(text: str, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Whether JSON or YAML text visibly nests more than ``limit`` levels, found in one
    linear pass before any parser sees it.

    The parsers recurse once per level: PyYAML takes seconds to reach Python's recursion
    limit on text like ``[[[[...]]]]``. Brackets count one level each (flow style, JSON);
    in block style, each deeper indentation (or compact ``- - x`` indicator) counts one.
    The count never exceeds the true depth (a mapping and a sequence may share a column),
    so nothing the validation accepts is refused here; what gets past is at most about
    twice the limit deep, well within the parsers' reach, and the validation refuses it.
    """
    if sum(text.count(char) for char in "[{\n-?:") <= limit:
        return False  # cannot nest past the limit (the common case: no scan)
    columns: list[int] = []  # the block collections open at this line, by column
    pending: tuple[int, list[int]] | None = None  # a line's block levels, once it has content
    flow = 0
    # In block style a bracket opens a collection only where a node starts (a line's
    # start, after "key: " or "- "): elsewhere it is part of a plain scalar (``b: x[y``).
    node_start = True
    for token in _DEPTH_TOKENS.finditer("\n" + text):
        kind = token.lastgroup
        if kind in ("line", "indent", "compact"):
            node_start = True
            if flow == 0:
                indent = len(token.group("indent"))
                compact = token.group("compact")
                # Every "- " after the first opens one more sequence, at its own column.
                starts = [indent + m.start() for m in re.finditer(r"[-?:]", compact)][1:]
                pending = (indent, starts)
            continue
        if kind == "comment":
            continue
        if pending is not None:
            indent, starts = pending
            pending = None
            while columns and columns[-1] >= indent:
                columns.pop()
            columns.append(indent)
            columns.extend(starts)
        if kind == "open":
            if flow > 0 or node_start:
                flow += 1
        elif kind == "close":
            flow = max(flow - 1, 0)
        elif flow == 0:
            value = token.group()
            node_start = value[-1] in " \t" and value.rstrip().endswith(":")
        if len(columns) + flow > limit:
            return True
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_AslYamlLoader)  # noqa: S506 - a SafeLoader subclass


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {exc}"


def _yaml_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "invalid YAML: nested too deeply"
    return f"invalid YAML: {exc}"


def _parse_text(text: str, suffix: str = "") -> Any:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DEFINITION_BYTES:
        raise _Unparseable(
            f"the definition text is {size} bytes, over the limit of {MAX_DEFINITION_BYTES} bytes"
        )
    match = SURROGATE_RE.search(text)
    if match is not None:
        raise _Unparseable(
            f"the definition text holds a lone surrogate (U+{ord(match.group()):04X}) at "
            f"character {match.start()}, which UTF-8 and JSON text cannot carry"
        )
    if _too_deep(text):
        raise _Unparseable(
            f"the definition text is nested more than {MAX_NESTING_DEPTH} levels deep"
        )
    # Text that starts like JSON is reported in JSON's terms (line and column), even when
    # the YAML parser, tried next for JSON-like YAML, fails as well.
    looks_like_json = suffix == ".json" or text.lstrip().startswith(("{", "["))
    json_error: Exception | None = None
    if suffix not in (".yaml", ".yml"):
        try:
            return _parse_json(text)
        except (ValueError, RecursionError) as exc:
            json_error = exc
        if suffix == ".json":
            raise _Unparseable(_json_problem(json_error))
    try:
        return _parse_yaml(text)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        if looks_like_json and json_error is not None:
            raise _Unparseable(_json_problem(json_error)) from None
        raise _Unparseable(_yaml_problem(exc)) from None


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
                size = path.stat().st_size
                if size > MAX_DEFINITION_BYTES:
                    raise _Unparseable(
                        f"{str(path)!r} is {size} bytes, over the limit of "
                        f"{MAX_DEFINITION_BYTES} bytes for a definition"
                    )
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise _Unparseable(f"cannot read {str(path)!r}: {exc}") from exc
            suffix = path.suffix.lower()
            return _parse_text(text, suffix)
        if isinstance(source, str):
            loaded = _parse_text(source)
            if isinstance(loaded, str) and "\n" not in source.strip():
                raise _Unparseable(_not_a_definition(source))
            return loaded
    except (_Unparseable, UnicodeDecodeError) as exc:
        raise DefinitionError([DefinitionIssue("$", printable(str(exc)))]) from None
    raise DefinitionError(
        [
            DefinitionIssue(
                "$",
                "a definition is a dict, ASL text (JSON or YAML) or a file path, not "
                f"{type(source).__name__}",
            )
        ]
    )


def _not_a_definition(source: str) -> str:
    """The message for one line of text that is neither a file nor a definition."""
    shown = printable(source if len(source) <= 200 else source[:200] + "...")
    if source.strip().lower().endswith(_DEFINITION_SUFFIXES) or os.sep in source:
        return (
            f"no file {shown!r} exists (and the text is neither a workflow name nor ASL "
            "JSON or YAML)"
        )
    return f"{shown!r} is neither a file, nor a workflow name, nor ASL JSON or YAML text"


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
    if resource_check is not None and not validation.fatal:
        # Checked on each Task state alone, so that a problem elsewhere in the definition
        # (which keeps the whole model from being built) hides no missing activity.
        for path, raw_state in validation.tasks:
            message = _resource_problem(raw_state, resource_check)
            if message is not None:
                validation.add(f"{path}.Resource", message)
    if issues:
        raise DefinitionError(issues)
    try:
        return StateMachine.model_validate(raw)
    except ValidationError as exc:
        # Validation above explains every definition the model refuses; pydantic's own
        # report is the fallback if it ever lets one through.
        raise DefinitionError(_pydantic_issues(exc)) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise DefinitionError([DefinitionIssue("$", f"invalid definition: {exc}")]) from None


def _resource_problem(raw_state: Any, resource_check: ResourceCheck) -> str | None:
    try:
        state = TaskState.model_validate(raw_state)
    except (ValidationError, TypeError, ValueError, RecursionError):
        return None  # its own issues are reported already
    return resource_check(state)
