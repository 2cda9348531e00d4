"""JSONPath reading and writing with Step Functions semantics.

Step Functions evaluates paths (``InputPath``, ``OutputPath``, ``ResultPath``, ``.$``
template fields, ``Variable`` in Choice rules...) with Jayway JsonPath. This module mirrors
the observable behaviour:

* ``$`` is the state's data and ``$$`` the context object;
* a *definite* path (only names and integer indexes) yields one value, or fails with
  ``States.Runtime`` when it matches nothing;
* an *indefinite* path (wildcard, slice, filter, recursive descent, unions) yields the list
  of every match, possibly empty;
* ``ResultPath`` writes create missing parent objects and never mutate their input.

Values returned by :func:`read_path` and :func:`write_path` share structure with their
inputs (nothing is deep-copied on this per-step hot path): the engine treats JSON values as
immutable, so callers must copy before mutating in place.

Definite paths, by far the most common ones, are evaluated by a small hand-written walker
(about 10x faster than jsonpath-ng's ``find``); everything else is delegated to jsonpath-ng's
extended parser. Both are compiled once per distinct path string (``lru_cache``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex

from orchestrator.errors import ResultPathMatchFailure, StatesError, StatesRuntimeError
from orchestrator.language.budget import (
    TIMEOUT_SETTING,
    LimitExceeded,
    remaining,
    run_bounded,
    timeout_seconds,
)

__all__ = [
    "PathNotFound",
    "is_reference_path",
    "is_valid_path",
    "read_path",
    "to_json",
    "write_path",
]


class PathNotFound(StatesRuntimeError):
    """A reference path matched nothing in its data (``States.Runtime``)."""


#: A step of a definite path: a member name (``str``) or an array index (``int``).
Step = str | int

# Characters allowed in a dotted member name. Jayway accepts nearly anything up to the next
# "." or "["; we exclude the characters that carry meaning in the richer JSONPath grammar so
# that such paths are routed to jsonpath-ng instead of being misread as plain names.
_DOT_NAME = re.compile(r"[^.\[\]\s*'\"()?@,:]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")


def json_type(value: Any) -> str:
    """The JSON type name of ``value`` (``null``, ``boolean``, ``number``...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def to_json(value: Any) -> str:
    """Serialise ``value`` compactly, the way AWS embeds JSON in error causes.

    Args:
        value: Any JSON-compatible value.

    Returns:
        JSON text without insignificant whitespace (``{"a":1}``); non-JSON values fall
        back to their ``str()`` so that building an error message never fails.
    """
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _parse_steps(body: str) -> tuple[Step, ...] | None:
    """Split the part of a path after ``$`` into definite steps.

    Args:
        body: The path without its leading ``$`` (e.g. ``.a['b c'][0]``).

    Returns:
        The steps, or ``None`` when the text is not a plain reference path (wildcards,
        slices, filters, recursive descent, unions or anything unrecognised).
    """
    steps: list[Step] = []
    pos, end = 0, len(body)
    while pos < end:
        char = body[pos]
        if char == ".":
            match = _DOT_NAME.match(body, pos + 1)
            if match is None:
                return None  # "..", ".*", trailing "." ...
            steps.append(match.group())
            pos = match.end()
        elif char == "[":
            index = _INDEX.match(body, pos)
            if index is not None:
                steps.append(int(index.group(1)))
                pos = index.end()
                continue
            quoted = _QUOTED.match(body, pos)
            if quoted is None:
                return None
            single = quoted.group(1) is not None
            raw = quoted.group(1) if single else quoted.group(2)
            # Like Jayway, only an escaped delimiter is unescaped; any other backslash is
            # part of the name (AWS resolves $['a\"b'] to the key a\"b).
            steps.append(raw.replace("\\'", "'") if single else raw.replace('\\"', '"'))
            pos = quoted.end()
        else:
            return None
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A parsed path: either definite ``steps`` or a jsonpath-ng ``expression``."""

    text: str
    """The path as written (used in error messages)."""
    in_context: bool
    """True for ``$$...`` paths, which read the context object."""
    steps: tuple[Step, ...] | None
    """Steps of a definite path handled by the fast walker, else ``None``."""
    expression: Any
    """jsonpath-ng expression for every other path, else ``None``."""
    definite: bool
    """True when the path can match at most one value."""


def _is_definite(expression: Any) -> bool:
    """Tell whether a jsonpath-ng expression can match at most one node."""
    from jsonpath_ng import jsonpath as jp

    node = expression
    while isinstance(node, jp.Child):
        if not _is_definite(node.right):
            return False
        node = node.left
    if isinstance(node, jp.Root | jp.This):
        return True
    if isinstance(node, jp.Fields):
        return len(node.fields) == 1 and node.fields[0] != "*"
    if isinstance(node, jp.Index):
        return len(getattr(node, "indices", (getattr(node, "index", None),))) == 1
    return False


#: Characters after which a ``.`` that starts a number begins a literal (``> .85``), not
#: a member step (``@.a``).
_BEFORE_LITERAL = frozenset("(<>=!,&|+-*/%[")


def jayway_forms(body: str) -> str:
    """``body`` with two Jayway forms jsonpath-ng's grammar lacks spelled as it has them:
    ``.[`` (a bracket step written after a dot: ``$.[?(@.x > 0)]``, ``$.a.[0]``) as
    ``[``, and a number without its leading zero (``@.score > .85``) as ``0.85``. Quoted
    text is copied as it is; ``..[`` (recursive descent) is left alone."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(body):
        char = body[i]
        if quote:
            out.append(char)
            if char == "\\" and i + 1 < len(body):
                out.append(body[i + 1])
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "." and body[i + 1 : i + 2] == "[" and body[i - 1 : i] != ".":
            pass  # ".[" is "["
        elif char == "." and body[i + 1 : i + 2].isdigit():
            before = "".join(out).rstrip()
            out.append("0." if before and before[-1] in _BEFORE_LITERAL else ".")
        else:
            out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def _compile(path: str) -> _Compiled:
    """Parse ``path`` once; raise ``StatesRuntimeError`` when it is not a valid path."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise StatesRuntimeError(f"Invalid path '{path}' : paths must start with '$'")
    in_context = path.startswith("$$")
    body = path[2:] if in_context else path[1:]
    steps = _parse_steps(body)
    if steps is not None:
        return _Compiled(path, in_context, steps, None, True)
    try:
        # Imported lazily: jsonpath-ng's PLY parser is only needed for the rare rich paths.
        from jsonpath_ng.ext import parse

        _bound_regex_filters()
        expression = parse("$" + jayway_forms(body))
    except Exception as exc:  # the PLY lexer/parser raise a zoo of exception types
        raise StatesRuntimeError(f"Invalid path '{path}' : {exc}") from None
    return _Compiled(path, in_context, None, expression, _is_definite(expression))


def is_valid_path(path: str) -> bool:
    """Tell whether ``path`` is a syntactically valid JSONPath (``$...`` or ``$$...``).

    Args:
        path: The candidate path.

    Returns:
        True when :func:`read_path` can evaluate it.
    """
    try:
        _compile(path)
    except StatesRuntimeError:
        return False
    return True


def is_reference_path(path: str) -> bool:
    """Tell whether ``path`` is an ASL *reference path*.

    Reference paths (required by ``ResultPath`` and Choice ``Variable``) use only ``$``,
    member names (dot or bracket notation) and non-negative integer indexes: no
    wildcards, slices, filters, unions or recursive descent.

    Args:
        path: The candidate path.

    Returns:
        True when ``path`` is a reference path (including ``$`` and ``$$`` forms).
    """
    try:
        compiled = _compile(path)
    except StatesRuntimeError:
        return False
    return compiled.steps is not None and all(
        not isinstance(step, int) or step >= 0 for step in compiled.steps
    )


def _jayway(steps: tuple[Step, ...]) -> str:
    """Render steps the way Jayway prints paths in errors: ``$['a'][0]``."""
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in steps)


def _not_found(
    compiled: _Compiled, data: Any, field: str | None, reached: int | None = None
) -> PathNotFound:
    """Build the AWS-worded error for a definite path that matched nothing.

    With a ``field`` (``.$`` template keys, ``ErrorPath``...) AWS words it
    "The JSONPath '$.x' specified for the field 'f' could not be found in the input '{}'";
    for ``InputPath``/``OutputPath`` it relays Jayway's message instead, which names the
    first missing member ("Missing property in path $['a']") or, when only the last step
    is missing, the whole path ("No results for path: $['a']['b']").
    """
    if field is not None:
        return PathNotFound(
            f"The JSONPath '{compiled.text}' specified for the field '{field}' "
            f"could not be found in the input '{to_json(data)}'"
        )
    steps = compiled.steps
    if steps is None or reached is None:
        detail = f"No results for path: {compiled.text}"
    elif reached < len(steps) - 1:
        detail = f"Missing property in path {_jayway(steps[: reached + 1])}"
    else:
        detail = f"No results for path: {_jayway(steps)}"
    return PathNotFound(f"Invalid path '{compiled.text}' : {detail}")


#: Workflow variables that ``$name`` paths read while a state is being evaluated.
_variables: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "orchestrator_variables", default=None
)
_VARIABLE = re.compile(r"^\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<tail>[.\[].*)?$", re.S)


@contextlib.contextmanager
def using_variables(variables: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, paths like ``$name.field`` read the workflow variable ``name``."""
    token = _variables.set(variables)
    try:
        yield
    finally:
        _variables.reset(token)


def current_variables() -> Mapping[str, Any] | None:
    """The workflow variables in force (see :func:`using_variables`), if any."""
    return _variables.get()


def _read_variable(path: str, context: Mapping[str, Any] | None, field: str | None) -> Any:
    match = _VARIABLE.match(path)
    if match is None:  # pragma: no cover - callers check first
        raise StatesRuntimeError(f"Invalid variable reference '{path}'")
    name, tail = match.group("name"), match.group("tail") or ""
    variables = _variables.get() or {}
    if name not in variables:
        where = f" specified for the field '{field}'" if field else ""
        raise PathNotFound(f"The variable '${name}'{where} is not defined")
    if not tail:
        return variables[name]
    return read_path(variables[name], "$" + tail, context, field=field)


def read_path(
    data: Any,
    path: str,
    context: Mapping[str, Any] | None = None,
    *,
    field: str | None = None,
) -> Any:
    """Return the value(s) that ``path`` selects.

    Args:
        data: The JSON value ``$`` refers to.
        path: A JSONPath starting with ``$`` (data) or ``$$`` (context object).
        context: The context object ``$$`` refers to (``{}`` when omitted).
        field: Name of the definition field holding the path (``"value.$"``,
            ``"ErrorPath"``...), used to word the error like AWS does.

    Returns:
        For a definite path, the single matched value; for an indefinite path (wildcard,
        slice, filter, recursive descent, union) the list of matches, possibly empty.
        The result shares structure with ``data``; do not mutate it.

    Raises:
        PathNotFound: A definite path matched nothing (``States.Runtime``).
        StatesRuntimeError: ``path`` is not a valid JSONPath.
    """
    if len(path) > 1 and path[1] not in ".[$" and _VARIABLE.match(path):
        return _read_variable(path, context, field)
    compiled = _compile(path)
    root: Any = (context if context is not None else {}) if compiled.in_context else data
    steps = compiled.steps
    if steps is not None:
        node = root
        for position, step in enumerate(steps):
            if isinstance(step, str):
                if isinstance(node, Mapping) and step in node:
                    node = node[step]
                    continue
            # bool is an int subclass but never an index; JSON arrays are lists only.
            elif isinstance(node, list) and -len(node) <= step < len(node):
                node = node[step]
                continue
            raise _not_found(compiled, root, field, position)
        return node
    try:
        # Recursive descents multiply: $..*..* over a deep document yields hundreds of
        # millions of matches. The budget stops it (orchestrator.language.budget).
        matches = run_bounded(
            f"The JSONPath '{path}'", "States.Runtime", _find_values, compiled.expression, root
        )
    except StatesError:
        raise
    except Exception as exc:  # jsonpath-ng may raise on exotic data; report, never crash
        raise StatesRuntimeError(f"Invalid path '{path}' : {exc}") from None
    if not compiled.definite:
        return matches
    if not matches:
        raise _not_found(compiled, root, field)
    return matches[0]


def _find_values(expression: Any, root: Any) -> list[Any]:
    return [match.value for match in expression.find(root)]


def _regex_search(value: Any, pattern: Any) -> bool:
    """jsonpath-ng's ``=~`` filter with a timeout: ``re`` would backtrack for ever in C."""
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    try:
        return regex.search(pattern, value, timeout=max(remaining(), 0.001)) is not None
    except TimeoutError:
        raise LimitExceeded(
            f"a regular expression ran past the time limit of {timeout_seconds():g} s "
            f"({TIMEOUT_SETTING})"
        ) from None


def _bound_regex_filters() -> None:
    # jsonpath-ng looks its "=~" operator up in this table at evaluation time; there is no
    # other hook for it.
    from jsonpath_ng.ext import filter as ext_filter

    ext_filter.OPERATOR_MAP["=~"] = _regex_search


def _result_path_failure(path: str, data: Any) -> ResultPathMatchFailure:
    return ResultPathMatchFailure(f"Unable to apply ResultPath '{path}' to input '{to_json(data)}'")


def write_path(data: Any, path: str, value: Any) -> Any:
    """Return a copy of ``data`` with ``value`` placed at ``path`` (``ResultPath`` rules).

    Only the containers along ``path`` are (shallowly) copied; ``data`` itself is never
    modified and untouched branches are shared with the result.

    Args:
        data: The state's raw input.
        path: A reference path; ``"$"`` replaces the whole input.
        value: The value to store (typically the state's result).

    Returns:
        The new document. Missing parent members are created as objects; an existing
        member is replaced in place (key order is preserved).

    Raises:
        ResultPathMatchFailure: ``path`` is not a data reference path, or it needs to
            descend into a non-object (or a missing array element).
    """
    try:
        compiled = _compile(path)
    except StatesRuntimeError:
        raise _result_path_failure(path, data) from None
    steps = compiled.steps
    if compiled.in_context or steps is None:
        raise _result_path_failure(path, data)
    if not steps:
        return value

    # Walk down copying the containers on the path, then link the copies bottom-up.
    copies: list[tuple[Any, Step]] = []
    node = data
    for step in steps[:-1]:
        container = _copy_container(node, step, path, data)
        copies.append((container, step))
        # A missing member becomes a new object (AWS creates missing parents).
        node = container.get(step, _MISSING) if isinstance(step, str) else container[step]
        if node is _MISSING:
            node = {}
    last = steps[-1]
    result = _copy_container(node, last, path, data)
    result[last] = value
    for parent, step in reversed(copies):
        parent[step] = result
        result = parent
    return result


_MISSING = object()


def _copy_container(node: Any, step: Step, path: str, data: Any) -> Any:
    """Shallow-copy ``node`` so that ``step`` can be assigned in the copy."""
    if isinstance(step, str):
        if isinstance(node, Mapping):
            return dict(node)
    elif isinstance(node, list) and -len(node) <= step < len(node):
        return list(node)
    raise _result_path_failure(path, data)
