"""Semantic validation of a raw ASL definition, collecting every issue.

Validation works on the raw JSON (dicts and lists) rather than on the pydantic model, so that
an issue can be reported for any input, with the path of the offending field, and so that one
bad field never hides the others. The model is only built once validation has run.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import jsonata as _jsonata
from jsonpath_ng.ext import parse as _jsonpath_parse

from orchestrator.errors import DefinitionIssue
from orchestrator.language import intrinsics
from orchestrator.language.definition.model import COMPARISON_OPERATORS
from orchestrator.language.paths import jayway_forms, json_type

JSONPATH = "JSONPath"
JSONATA = "JSONata"
MAX_STATE_NAME_LENGTH = 80

#: Deepest nesting of objects and arrays accepted in a definition (the states' own
#: structure counts: ``$.States.P.Branches[0].States.X`` is four levels below ``$``).
#: Deeper documents are refused before anything walks them (Python's recursion, pydantic's
#: and orjson's serialisers all stop somewhere past 250).
MAX_NESTING_DEPTH = 100

#: Longest Wait, TimeoutSeconds and HeartbeatSeconds accepted, as in Step Functions: a
#: timer further out is a mistake (``1e30``), not a plan.
MAX_WAIT_SECONDS = 99_999_999

#: Largest definition, as JSON text: Step Functions' own limit (1 MiB).
MAX_DEFINITION_BYTES = 1_048_576

#: Lone UTF-16 surrogates: Python strings can hold them, UTF-8 and JSON text cannot.
SURROGATE_RE = re.compile("[\ud800-\udfff]")


_COMMON = {"Type", "Comment", "QueryLanguage"}
_IO = {"InputPath", "OutputPath", "Output"}
_FLOW = {"Next", "End", "Assign"}
_RESULT = {"Parameters", "ResultPath"}
_WORK = {"ResultSelector", "Retry", "Catch"}

ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    "Task": frozenset(
        _COMMON
        | _IO
        | _FLOW
        | _RESULT
        | _WORK
        | {
            "Resource",
            "Arguments",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        }
    ),
    "Pass": frozenset(_COMMON | _IO | _FLOW | _RESULT | {"Result"}),
    "Wait": frozenset(
        _COMMON | _IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"}
    ),
    "Choice": frozenset(_COMMON | _IO | {"Choices", "Default", "Assign"}),
    "Succeed": frozenset(_COMMON | _IO),
    "Fail": frozenset(_COMMON | {"Error", "ErrorPath", "Cause", "CausePath"}),
    "Parallel": frozenset(_COMMON | _IO | _FLOW | _RESULT | _WORK | {"Branches", "Arguments"}),
    "Map": frozenset(
        _COMMON
        | _IO
        | _FLOW
        | _RESULT
        | _WORK
        | {
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Items",
            "Label",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
        }
    ),
}
_ALL_STATE_FIELDS = frozenset().union(*ALLOWED_FIELDS.values())
_FLOW_TYPES = frozenset({"Task", "Pass", "Wait", "Parallel", "Map"})

#: Fields that only make sense when the state's query language is JSONPath.
_JSONPATH_ONLY = frozenset(
    {"InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath"}
)
#: Fields that only make sense when the state's query language is JSONata.
_JSONATA_ONLY = frozenset({"Arguments", "Output", "Items"})

_MACHINE_FIELDS = frozenset(
    {"StartAt", "States", "Comment", "TimeoutSeconds", "Version", "QueryLanguage"}
)
_BRANCH_FIELDS = frozenset({"StartAt", "States", "Comment", "QueryLanguage"})
_PROCESSOR_FIELDS = _BRANCH_FIELDS | {"ProcessorConfig"}
_RETRIER_FIELDS = frozenset(
    {
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    }
)
_CATCHER_FIELDS = frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Output", "Comment"})
_JSONATA_RULE_FIELDS = frozenset({"Condition", "Next", "Assign", "Output", "Comment"})
_JSONPATH_RULE_FIELDS = frozenset({"Variable", "And", "Or", "Not", "Next", "Assign", "Comment"})

_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)
_VARIABLE_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ASL (RFC 3339) timestamp such as ``2016-03-14T01:59:00Z``.

    Fractional seconds beyond microseconds are truncated.

    Args:
        value: Any JSON value.

    Returns:
        A timezone-aware datetime, or ``None`` when ``value`` is not a valid timestamp.
    """
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        return None
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    zone = "+00:00" if match.group(8) == "Z" else match.group(8)
    text = f"{value[:19]}.{fraction}{zone}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def is_jsonata_expression(value: Any) -> bool:
    """Whether ``value`` is a JSONata expression string (``{% ... %}``)."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


@lru_cache(maxsize=4096)
def check_path(path: str, *, reference: bool = False, variables: bool = True) -> str | None:
    """Check that ``path`` is a syntactically valid ASL JSONPath.

    ``$$...`` (context object) and, when ``variables``, ``$name...`` (workflow variable)
    paths are accepted.

    Args:
        path: The path text.
        reference: Require a reference path (no wildcards, filters, slices or recursion),
            as ``ResultPath`` does.
        variables: Accept ``$$`` and ``$variable`` roots.

    Returns:
        ``None`` when valid, else a message.
    """
    if not path.startswith("$"):
        return f"invalid JSONPath {path!r}: must start with '$'"
    body = path
    if variables:
        if path.startswith("$$"):
            body = path[1:]
        elif (match := _VARIABLE_RE.match(path)) is not None:
            body = "$" + path[match.end() :]
    if reference and re.search(r"\*|\.\.|\[\s*\?|\[[^\]'\"]*:|@", _strip_quoted(body)):
        return f"invalid reference path {path!r}: wildcards, filters and slices are not allowed"
    try:
        _jsonpath_parse("$" + jayway_forms(body[1:]))  # as read_path parses it
    except Exception as exc:  # noqa: BLE001 - the parser raises bare Exception subclasses
        return f"invalid JSONPath {path!r}: {exc}"
    return None


@lru_cache(maxsize=4096)
def check_intrinsic(expression: str) -> str | None:
    """Why ``expression`` is not a valid intrinsic function call, or None.

    Checks the syntax, the function names (with a suggestion for a misspelled one), the
    argument counts and literal arguments, as Step Functions does when a state machine
    is created.
    """
    try:
        message = intrinsics.validate(expression)
    except RecursionError:
        return f"invalid intrinsic function {expression[:80]!r}...: nested too deeply"
    if message is None:
        return None
    for name in _INTRINSIC_CALL_RE.findall(expression):
        if name not in intrinsics.FUNCTION_NAMES:
            return message + did_you_mean(name, intrinsics.FUNCTION_NAMES)
    return message


_INTRINSIC_CALL_RE = re.compile(r"States\.[A-Za-z0-9]+")


@lru_cache(maxsize=4096)
def check_jsonata(value: str) -> str | None:
    """Why a ``{% ... %}`` string is not a valid JSONata expression, or None (syntax only)."""
    text = value[2:-2].strip() if is_jsonata_expression(value) else value.strip()
    if not text:
        return "empty JSONata expression"
    shown = text if len(text) <= 200 else text[:200] + "..."
    try:
        compiled = _jsonata.Jsonata(text)
    except RecursionError:
        return f"invalid JSONata expression {shown!r}: nested too deeply"
    except Exception as exc:  # noqa: BLE001 - the parser raises JException and assorted errors
        return f"invalid JSONata expression {shown!r}: {_jsonata_error(exc)}"
    errors = compiled.get_errors()
    if errors:
        return f"invalid JSONata expression {shown!r}: {_jsonata_error(errors[0])}"
    return None


def _jsonata_error(exc: BaseException) -> str:
    code = getattr(exc, "error", None)
    message = str(exc)
    if isinstance(code, str) and code and not message.startswith(code):
        return f"{code}: {message}"
    return message or type(exc).__name__


def _strip_quoted(text: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


_type_name = json_type


@dataclass
class Validation:
    """Issues collected while validating one definition.

    Attributes:
        issues: Every problem found, in discovery order.
        task_paths: Model path (as produced by ``StateMachine.walk``) of every Task state,
            mapped to its path in the raw definition (they differ under a legacy
            ``Iterator``).
    """

    issues: list[DefinitionIssue] = field(default_factory=list)
    task_paths: dict[str, str] = field(default_factory=dict)
    tasks: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    """``(raw path, raw state)`` of every Task state, for the Resource check."""
    fatal: bool = False
    """The document itself is unusable (too deep, too large, cyclic): nothing else was
    checked, and nothing may walk it."""

    def add(self, path: str, message: str) -> None:
        """Record one issue (lone surrogates escaped, so that any output can carry it)."""
        self.issues.append(DefinitionIssue(printable(path), printable(message)))


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes (UTF-8 cannot carry them)."""
    return SURROGATE_RE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def closest(word: str, candidates: Collection[str]) -> str | None:
    """The candidate a misspelled ``word`` most likely meant, if any is close enough."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Collection[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate to a misspelled ``word``, or ``""``."""
    match = closest(word, candidates)
    return f" (did you mean {match!r}?)" if match is not None else ""


def _unknown_field(key: Any, candidates: Collection[str]) -> str:
    hint = did_you_mean(key, candidates) if isinstance(key, str) else ""
    return f"unknown field {key!r}{hint}"


class _DocumentScan:
    """One pass over a raw definition checking that it is a JSON document within limits.

    Containers are measured once each (by identity), so a document whose parts are shared
    many times (YAML aliases, or the same dict reused by a Python caller) is measured as
    the text it would become without being expanded; a cycle is reported, not followed.
    """

    def __init__(self, result: Validation) -> None:
        self.result = result
        self.sizes: dict[int, tuple[int, int]] = {}
        self.active: set[int] = set()
        self.too_deep = False

    def too_deep_at(self, path: str) -> None:
        if not self.too_deep:
            self.too_deep = True
            self.result.fatal = True
            self.result.add(path, f"nested more than {MAX_NESTING_DEPTH} levels deep")

    def text(self, value: str, path: str) -> int:
        if value.isascii():
            return len(value) + 2
        if SURROGATE_RE.search(value):
            self.result.add(
                path,
                "contains a lone surrogate (U+D800-U+DFFF), which UTF-8 and JSON text cannot carry",
            )
        return len(value.encode("utf-8", "surrogatepass")) + 2

    def measure(self, value: Any, path: str, depth: int) -> tuple[int, int]:
        """``(approximate JSON size in bytes, nesting height)`` of ``value``."""
        if isinstance(value, str):
            return self.text(value, path), 0
        if value is None or isinstance(value, bool):
            return 5, 0
        if isinstance(value, int):
            if value.bit_length() > 1024:
                # Fatal: the rest of validation would quote it, and Python cannot even
                # print an integer of more than 4300 digits.
                self.result.fatal = True
                self.result.add(path, "number is too large (JSON numbers stop near 1.8E308)")
            return value.bit_length() // 3 + 2, 0
        if isinstance(value, float):
            if not math.isfinite(value):
                self.result.add(path, f"{value!r} is not a JSON number")
            return 24, 0
        if not isinstance(value, dict | list):
            self.result.add(path, f"a {type(value).__name__} is not a JSON value")
            return 0, 0
        key = id(value)
        if key in self.active:
            self.result.fatal = True
            self.result.add(path, "the document contains itself (a cycle)")
            return 0, 0
        known = self.sizes.get(key)
        if known is not None:
            if depth + known[1] > MAX_NESTING_DEPTH:
                self.too_deep_at(path)
            return known
        if depth >= MAX_NESTING_DEPTH:
            self.too_deep_at(path)
            return 0, 0
        self.active.add(key)
        size, height = 2, 0
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for name, item in items:
            if isinstance(value, list):
                item_path = f"{path}[{name}]"
            elif isinstance(name, str):
                item_path = f"{path}.{name}"
                size += self.text(name, item_path) + 1
            else:
                item_path = f"{path}.{name!r}"
                self.result.add(item_path, f"keys must be strings, not {type(name).__name__}")
            item_size, item_height = self.measure(item, item_path, depth + 1)
            size += item_size + 1
            height = max(height, item_height + 1)
            if self.result.fatal:
                break
        self.active.discard(key)
        self.sizes[key] = (size, height)
        return size, height


def scan_document(raw: Any, result: Validation) -> None:
    """Check that ``raw`` is a JSON document within the definition limits.

    Records an issue for every non-JSON value, non-string key, lone surrogate and
    non-finite number; nesting deeper than :data:`MAX_NESTING_DEPTH`, a cycle, or a size
    over :data:`MAX_DEFINITION_BYTES` set ``result.fatal``.
    """
    size, _height = _DocumentScan(result).measure(raw, "$", 0)
    if not result.fatal and size > MAX_DEFINITION_BYTES:
        result.fatal = True
        result.add(
            "$",
            f"the definition is about {size} bytes as JSON, over the limit of "
            f"{MAX_DEFINITION_BYTES} bytes",
        )


# ``(target state name, path of the field naming it)``
_Transition = tuple[str, str]


def validate_machine(raw: Any) -> Validation:
    """Validate a whole raw definition.

    Args:
        raw: The loaded definition (any JSON value).

    Returns:
        The collected issues (empty when the definition is valid).
    """
    result = Validation()
    if not isinstance(raw, dict):
        result.add("$", f"a state machine definition must be an object, not {_type_name(raw)}")
        return result
    scan_document(raw, result)
    if result.fatal:
        return result
    language = raw.get("QueryLanguage", JSONPATH)
    for key in raw:
        if key not in _MACHINE_FIELDS:
            result.add(f"$.{key}", _unknown_field(key, _MACHINE_FIELDS))
    _check_optional(result, raw, "$", "Comment", str)
    _check_optional(result, raw, "$", "Version", str)
    if "TimeoutSeconds" in raw:
        _check_int(result, raw["TimeoutSeconds"], "$.TimeoutSeconds", minimum=1)
    if not _check_language(result, raw, "$"):
        language = JSONPATH
    _validate_scope(result, raw, "$", "$", language)
    return result


def _check_language(result: Validation, raw: Mapping[str, Any], path: str) -> bool:
    if "QueryLanguage" in raw and raw["QueryLanguage"] not in (JSONPATH, JSONATA):
        result.add(f"{path}.QueryLanguage", "must be 'JSONPath' or 'JSONata'")
        return False
    return True


def _check_optional(
    result: Validation, raw: Mapping[str, Any], path: str, key: str, kind: type
) -> None:
    if key in raw and not isinstance(raw[key], kind):
        expected = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}
        result.add(f"{path}.{key}", f"must be {expected[kind]}, not {_type_name(raw[key])}")


def _check_int(
    result: Validation,
    value: Any,
    path: str,
    *,
    minimum: int,
    maximum: int | None = None,
    language: str = JSONPATH,
) -> bool:
    if language == JSONATA and is_jsonata_expression(value):
        return True
    if not _is_int(value):
        result.add(path, f"must be an integer, not {_type_name(value)}")
        return False
    if value < minimum:
        result.add(path, f"must be >= {minimum}, not {value}")
        return False
    if maximum is not None and value > maximum:
        result.add(path, f"must be <= {maximum}, not {value}")
        return False
    return True


def _check_path_field(
    result: Validation,
    value: Any,
    path: str,
    *,
    nullable: bool = False,
    reference: bool = False,
    intrinsic: bool = False,
) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        result.add(path, f"must be a JSONPath string, not {_type_name(value)}")
        return
    if intrinsic and intrinsics.is_intrinsic(value):
        message = check_intrinsic(value)
    else:
        message = check_path(value, reference=reference, variables=not reference)
    if message is not None:
        result.add(path, message)


def _validate_template(result: Validation, value: Any, path: str) -> None:
    """Check the ``.$`` paths of a JSONPath payload template (Parameters, ResultSelector...)."""
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}"
            if isinstance(key, str) and key.endswith(".$"):
                # Intrinsic functions are validated by the intrinsics module.
                _check_path_field(result, item, item_path, intrinsic=True)
            else:
                _validate_template(result, item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _validate_template(result, item, f"{path}[{index}]")


def _validate_scope(
    result: Validation,
    raw: Mapping[str, Any],
    path: str,
    model_path: str,
    language: str,
) -> None:
    start_at = raw.get("StartAt")
    if "StartAt" not in raw:
        result.add(path, "missing required field 'StartAt'")
    elif not isinstance(start_at, str):
        result.add(f"{path}.StartAt", f"must be a string, not {_type_name(start_at)}")
        start_at = None
    states = raw.get("States")
    if "States" not in raw:
        result.add(path, "missing required field 'States'")
        return
    if not isinstance(states, dict):
        result.add(f"{path}.States", f"must be an object, not {_type_name(states)}")
        return
    if not states:
        result.add(f"{path}.States", "must contain at least one state")
        return
    edges: dict[str, list[_Transition]] = {}
    for name, state in states.items():
        state_path = f"{path}.States.{name}"
        if not isinstance(name, str):
            result.add(state_path, "state names must be strings")
            continue
        if len(name) > MAX_STATE_NAME_LENGTH:
            result.add(state_path, f"state name is longer than {MAX_STATE_NAME_LENGTH} characters")
        if not name:
            result.add(state_path, "state name must not be empty")
        edges[name] = _validate_state(
            result, state, state_path, f"{model_path}.States.{name}", language
        )
    names = [name for name in states if isinstance(name, str)]
    if isinstance(start_at, str) and start_at not in states:
        result.add(f"{path}.StartAt", f"no state named {start_at!r}{did_you_mean(start_at, names)}")
    for transitions in edges.values():
        for target, field_path in transitions:
            if target not in states:
                result.add(field_path, f"no state named {target!r}{did_you_mean(target, names)}")
    if isinstance(start_at, str) and start_at in states:
        seen = {start_at}
        pending = [start_at]
        while pending:
            for target, _ in edges.get(pending.pop(), []):
                if target in states and target not in seen:
                    seen.add(target)
                    pending.append(target)
        for name in states:
            if isinstance(name, str) and name not in seen:
                result.add(f"{path}.States.{name}", "state is not reachable from StartAt")


def _validate_state(
    result: Validation, raw: Any, path: str, model_path: str, inherited: str
) -> list[_Transition]:
    if not isinstance(raw, dict):
        result.add(path, f"a state must be an object, not {_type_name(raw)}")
        return []
    kind = raw.get("Type")
    if "Type" not in raw:
        result.add(path, "missing required field 'Type'")
        return []
    if not isinstance(kind, str) or kind not in ALLOWED_FIELDS:
        result.add(f"{path}.Type", f"unknown state type {kind!r}")
        return []
    language = raw.get("QueryLanguage", inherited)
    if not _check_language(result, raw, path):
        language = inherited
    allowed = ALLOWED_FIELDS[kind]
    for key in raw:
        if key in allowed:
            if language == JSONATA and (key in _JSONPATH_ONLY or key.endswith("Path")):
                result.add(f"{path}.{key}", f"field {key!r} is not supported in JSONata states")
            elif language == JSONPATH and key in _JSONATA_ONLY:
                result.add(f"{path}.{key}", f"field {key!r} is only supported in JSONata states")
        elif key in _ALL_STATE_FIELDS:
            result.add(f"{path}.{key}", f"field {key!r} is not allowed in a {kind} state")
        else:
            result.add(f"{path}.{key}", _unknown_field(key, allowed))
    _check_optional(result, raw, path, "Comment", str)
    if language == JSONATA:
        for key in _JSONATA_EXPRESSION_FIELDS:
            if key in raw and key in allowed:
                _validate_expressions(result, raw[key], f"{path}.{key}")
    transitions: list[_Transition] = []
    if kind in _FLOW_TYPES:
        transitions.extend(_validate_next_end(result, raw, path))
    if language == JSONPATH:
        for key in ("InputPath", "OutputPath"):
            if key in raw and key in allowed:
                _check_path_field(result, raw[key], f"{path}.{key}", nullable=True)
        if "ResultPath" in raw and "ResultPath" in allowed:
            _check_path_field(
                result, raw["ResultPath"], f"{path}.ResultPath", nullable=True, reference=True
            )
        for key in ("Parameters", "ResultSelector", "ItemSelector", "Assign"):
            if key in raw and key in allowed:
                _validate_template(result, raw[key], f"{path}.{key}")
    for key in ("Parameters", "ResultSelector"):
        if key in raw and raw[key] is None and key in allowed:
            result.add(f"{path}.{key}", "must not be null")
    if "Assign" in raw and "Assign" in allowed:
        _check_optional(result, raw, path, "Assign", dict)
    if "Retry" in allowed:
        _validate_retry(result, raw, path)
        transitions.extend(_validate_catch(result, raw, path, language))
    validator = _STATE_VALIDATORS.get(kind)
    if validator is not None:
        transitions.extend(validator(result, raw, path, model_path, language))
    return transitions


#: Fields of a JSONata state whose strings may be ``{% ... %}`` expressions.
_JSONATA_EXPRESSION_FIELDS = (
    "Arguments",
    "Output",
    "Assign",
    "Items",
    "ItemSelector",
    "Seconds",
    "Timestamp",
    "TimeoutSeconds",
    "HeartbeatSeconds",
    "MaxConcurrency",
    "ToleratedFailureCount",
    "ToleratedFailurePercentage",
    "Error",
    "Cause",
    "Credentials",
)


def _validate_expressions(result: Validation, value: Any, path: str) -> None:
    """Check the syntax of every ``{% ... %}`` string in a JSONata field (at any depth)."""
    if isinstance(value, str):
        if is_jsonata_expression(value):
            message = check_jsonata(value)
            if message is not None:
                result.add(path, message)
    elif isinstance(value, dict):
        for key, item in value.items():
            _validate_expressions(result, item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _validate_expressions(result, item, f"{path}[{index}]")


def _validate_next_end(result: Validation, raw: Mapping[str, Any], path: str) -> list[_Transition]:
    transitions: list[_Transition] = []
    has_next = "Next" in raw
    end = raw.get("End", False)
    if "End" in raw and not isinstance(end, bool):
        result.add(f"{path}.End", f"must be a boolean, not {_type_name(end)}")
        end = True
    if has_next:
        if isinstance(raw["Next"], str):
            transitions.append((raw["Next"], f"{path}.Next"))
        else:
            result.add(f"{path}.Next", f"must be a string, not {_type_name(raw['Next'])}")
        if end is True:
            result.add(path, "'Next' and 'End' are mutually exclusive")
    elif end is not True:
        result.add(path, "a state must have either 'Next' or 'End': true")
    return transitions


def _error_equals(result: Validation, rule: Mapping[str, Any], path: str, *, last: bool) -> None:
    if "ErrorEquals" not in rule:
        result.add(path, "missing required field 'ErrorEquals'")
        return
    errors = rule["ErrorEquals"]
    field_path = f"{path}.ErrorEquals"
    if not isinstance(errors, list):
        result.add(field_path, f"must be an array, not {_type_name(errors)}")
        return
    if not errors:
        result.add(field_path, "must not be empty")
        return
    for index, name in enumerate(errors):
        if not isinstance(name, str):
            result.add(f"{field_path}[{index}]", f"must be a string, not {_type_name(name)}")
    if "States.ALL" in errors:
        if len(errors) != 1:
            result.add(field_path, "'States.ALL' must appear alone in ErrorEquals")
        if not last:
            result.add(field_path, "'States.ALL' must only appear in the last rule")


def _rules(
    result: Validation, raw: Mapping[str, Any], path: str, key: str, fields: Collection[str]
) -> Iterator[tuple[dict[str, Any], str]]:
    """Each Retry or Catch rule that is an object, with its path, after the checks every
    rule shares: known fields, ErrorEquals, Comment."""
    if key not in raw:
        return
    rules = raw[key]
    if not isinstance(rules, list):
        result.add(f"{path}.{key}", f"must be an array, not {_type_name(rules)}")
        return
    for index, rule in enumerate(rules):
        rule_path = f"{path}.{key}[{index}]"
        if not isinstance(rule, dict):
            result.add(rule_path, f"must be an object, not {_type_name(rule)}")
            continue
        for name in rule:
            if name not in fields:
                result.add(f"{rule_path}.{name}", _unknown_field(name, fields))
        _error_equals(result, rule, rule_path, last=index == len(rules) - 1)
        _check_optional(result, rule, rule_path, "Comment", str)
        yield rule, rule_path


def _validate_retry(result: Validation, raw: Mapping[str, Any], path: str) -> None:
    for rule, rule_path in _rules(result, raw, path, "Retry", _RETRIER_FIELDS):
        if "IntervalSeconds" in rule:
            _check_int(result, rule["IntervalSeconds"], f"{rule_path}.IntervalSeconds", minimum=1)
        if "MaxAttempts" in rule:
            _check_int(result, rule["MaxAttempts"], f"{rule_path}.MaxAttempts", minimum=0)
        if "MaxDelaySeconds" in rule:
            _check_int(result, rule["MaxDelaySeconds"], f"{rule_path}.MaxDelaySeconds", minimum=1)
        if "BackoffRate" in rule:
            rate = rule["BackoffRate"]
            if not _is_number(rate):
                result.add(f"{rule_path}.BackoffRate", f"must be a number, not {_type_name(rate)}")
            elif rate < 1.0:
                result.add(f"{rule_path}.BackoffRate", f"must be >= 1.0, not {rate}")
        if "JitterStrategy" in rule and rule["JitterStrategy"] not in ("FULL", "NONE"):
            result.add(f"{rule_path}.JitterStrategy", "must be 'FULL' or 'NONE'")


def _validate_catch(
    result: Validation, raw: Mapping[str, Any], path: str, language: str
) -> list[_Transition]:
    transitions: list[_Transition] = []
    for rule, rule_path in _rules(result, raw, path, "Catch", _CATCHER_FIELDS):
        _check_optional(result, rule, rule_path, "Assign", dict)
        if "Next" not in rule:
            result.add(rule_path, "missing required field 'Next'")
        elif not isinstance(rule["Next"], str):
            result.add(f"{rule_path}.Next", f"must be a string, not {_type_name(rule['Next'])}")
        else:
            transitions.append((rule["Next"], f"{rule_path}.Next"))
        if "ResultPath" in rule:
            if language == JSONATA:
                result.add(
                    f"{rule_path}.ResultPath",
                    "field 'ResultPath' is not supported in JSONata states",
                )
            else:
                _check_path_field(
                    result,
                    rule["ResultPath"],
                    f"{rule_path}.ResultPath",
                    nullable=True,
                    reference=True,
                )
        if "Output" in rule and language == JSONPATH:
            result.add(f"{rule_path}.Output", "field 'Output' is only supported in JSONata states")
        if language == JSONATA:
            for key in ("Output", "Assign"):
                if key in rule:
                    _validate_expressions(result, rule[key], f"{rule_path}.{key}")
        if "Assign" in rule and language == JSONPATH:
            _validate_template(result, rule["Assign"], f"{rule_path}.Assign")
    return transitions


def _exclusive(result: Validation, raw: Mapping[str, Any], path: str, *keys: str) -> None:
    present = [key for key in keys if key in raw]
    if len(present) > 1:
        names = " and ".join(repr(key) for key in present)
        result.add(path, f"{names} are mutually exclusive")


def _validate_path_fields(
    result: Validation, raw: Mapping[str, Any], path: str, language: str, *keys: str
) -> None:
    if language != JSONPATH:
        return
    for key in keys:
        if key in raw:
            _check_path_field(
                result, raw[key], f"{path}.{key}", intrinsic=key in ("ErrorPath", "CausePath")
            )


def _validate_task(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    result.task_paths[model_path] = path
    result.tasks.append((path, raw))
    if "Resource" not in raw:
        result.add(path, "missing required field 'Resource'")
    else:
        _check_optional(result, raw, path, "Resource", str)
    _exclusive(result, raw, path, "TimeoutSeconds", "TimeoutSecondsPath")
    _exclusive(result, raw, path, "HeartbeatSeconds", "HeartbeatSecondsPath")
    ok_timeout = "TimeoutSeconds" in raw and _check_int(
        result,
        raw["TimeoutSeconds"],
        f"{path}.TimeoutSeconds",
        minimum=1,
        maximum=MAX_WAIT_SECONDS,
        language=language,
    )
    ok_heartbeat = "HeartbeatSeconds" in raw and _check_int(
        result,
        raw["HeartbeatSeconds"],
        f"{path}.HeartbeatSeconds",
        minimum=1,
        maximum=MAX_WAIT_SECONDS,
        language=language,
    )
    if ok_timeout and ok_heartbeat:
        timeout, heartbeat = raw["TimeoutSeconds"], raw["HeartbeatSeconds"]
        if _is_int(timeout) and _is_int(heartbeat) and heartbeat >= timeout:
            result.add(f"{path}.HeartbeatSeconds", "must be smaller than TimeoutSeconds")
    _validate_path_fields(result, raw, path, language, "TimeoutSecondsPath", "HeartbeatSecondsPath")
    _check_optional(result, raw, path, "Credentials", dict)
    return []


def _validate_wait(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    keys = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")
    present = [key for key in keys if key in raw]
    if len(present) != 1:
        result.add(
            path,
            "a Wait state needs exactly one of 'Seconds', 'SecondsPath', 'Timestamp', "
            f"'TimestampPath' (found {len(present)})",
        )
    if "Seconds" in raw:
        _check_int(
            result,
            raw["Seconds"],
            f"{path}.Seconds",
            minimum=0,
            maximum=MAX_WAIT_SECONDS,
            language=language,
        )
    if "Timestamp" in raw:
        stamp = raw["Timestamp"]
        if not (language == JSONATA and is_jsonata_expression(stamp)):
            if not isinstance(stamp, str):
                result.add(f"{path}.Timestamp", f"must be a string, not {_type_name(stamp)}")
            elif parse_timestamp(stamp) is None:
                result.add(f"{path}.Timestamp", f"invalid RFC 3339 timestamp {stamp!r}")
    _validate_path_fields(result, raw, path, language, "SecondsPath", "TimestampPath")
    return []


def _validate_fail(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    _exclusive(result, raw, path, "Error", "ErrorPath")
    _exclusive(result, raw, path, "Cause", "CausePath")
    _check_optional(result, raw, path, "Error", str)
    _check_optional(result, raw, path, "Cause", str)
    _validate_path_fields(result, raw, path, language, "ErrorPath", "CausePath")
    return []


def _validate_parallel(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    if "Branches" not in raw:
        result.add(path, "missing required field 'Branches'")
        return []
    branches = raw["Branches"]
    if not isinstance(branches, list):
        result.add(f"{path}.Branches", f"must be an array, not {_type_name(branches)}")
        return []
    if not branches:
        result.add(f"{path}.Branches", "must contain at least one branch")
    for index, branch in enumerate(branches):
        suffix = f".Branches[{index}]"
        _validate_branch(
            result, branch, path + suffix, model_path + suffix, language, _BRANCH_FIELDS
        )
    return []


def _validate_branch(
    result: Validation,
    raw: Any,
    path: str,
    model_path: str,
    language: str,
    allowed: frozenset[str],
) -> None:
    if not isinstance(raw, dict):
        result.add(path, f"must be an object, not {_type_name(raw)}")
        return
    for key in raw:
        if key not in allowed:
            result.add(f"{path}.{key}", _unknown_field(key, allowed))
    _check_optional(result, raw, path, "Comment", str)
    if _check_language(result, raw, path):
        language = raw.get("QueryLanguage", language)
    _validate_scope(result, raw, path, model_path, language)


def _validate_processor_config(result: Validation, raw: Any, path: str) -> None:
    if not isinstance(raw, dict):
        result.add(path, f"must be an object, not {_type_name(raw)}")
        return
    choices = {"Mode": ("INLINE", "DISTRIBUTED"), "ExecutionType": ("STANDARD", "EXPRESS")}
    for key, value in raw.items():
        if key not in choices:
            result.add(f"{path}.{key}", _unknown_field(key, choices))
        elif value not in choices[key]:
            result.add(f"{path}.{key}", f"must be one of {', '.join(choices[key])}")


def _validate_map(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    _exclusive(result, raw, path, "ItemProcessor", "Iterator")
    _exclusive(result, raw, path, "ItemSelector", "Parameters")
    _exclusive(result, raw, path, "MaxConcurrency", "MaxConcurrencyPath")
    _exclusive(result, raw, path, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath")
    _exclusive(result, raw, path, "ToleratedFailureCount", "ToleratedFailureCountPath")
    key = "ItemProcessor" if "ItemProcessor" in raw else "Iterator"
    if key not in raw:
        result.add(path, "missing required field 'ItemProcessor'")
    else:
        processor = raw[key]
        if isinstance(processor, dict) and "ProcessorConfig" in processor:
            _validate_processor_config(
                result, processor["ProcessorConfig"], f"{path}.{key}.ProcessorConfig"
            )
        _validate_branch(
            result,
            processor,
            f"{path}.{key}",
            f"{model_path}.ItemProcessor",
            language,
            _PROCESSOR_FIELDS,
        )
    if "ItemsPath" in raw and language == JSONPATH:
        _check_path_field(result, raw["ItemsPath"], f"{path}.ItemsPath")
    if "MaxConcurrency" in raw:
        _check_int(
            result, raw["MaxConcurrency"], f"{path}.MaxConcurrency", minimum=0, language=language
        )
    if "ToleratedFailureCount" in raw:
        _check_int(
            result,
            raw["ToleratedFailureCount"],
            f"{path}.ToleratedFailureCount",
            minimum=0,
            language=language,
        )
    if "ToleratedFailurePercentage" in raw:
        value = raw["ToleratedFailurePercentage"]
        field_path = f"{path}.ToleratedFailurePercentage"
        if not (language == JSONATA and is_jsonata_expression(value)):
            if not _is_number(value):
                result.add(field_path, f"must be a number, not {_type_name(value)}")
            elif not 0 <= value <= 100:
                result.add(field_path, f"must be between 0 and 100, not {value}")
    _check_optional(result, raw, path, "Label", str)
    _validate_path_fields(
        result,
        raw,
        path,
        language,
        "MaxConcurrencyPath",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCountPath",
    )
    _validate_distributed(result, raw, path, key, language)
    return []


#: Fields of a Distributed Map's ``ItemBatcher`` and ``ResultWriter``.
_BATCHER_FIELDS = frozenset(
    {
        "MaxItemsPerBatch",
        "MaxItemsPerBatchPath",
        "MaxInputBytesPerBatch",
        "MaxInputBytesPerBatchPath",
        "BatchInput",
    }
)
_WRITER_FIELDS = frozenset({"Resource", "Parameters", "Arguments"})
#: Step Functions' bound on a Distributed Map's ``MaxConcurrency``.
MAX_DISTRIBUTED_CONCURRENCY = 10_000


def _validate_distributed(
    result: Validation, raw: Mapping[str, Any], path: str, processor_key: str, language: str
) -> None:
    """The Distributed Map's own fields: present only with ``Mode: DISTRIBUTED``, and well
    formed (the ``ItemReader``'s source is the engine's to check: it knows the readers)."""
    processor = raw.get(processor_key)
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    distributed = isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED"
    for field_name in ("ItemReader", "ItemBatcher", "ResultWriter"):
        if field_name in raw and not distributed:
            result.add(
                f"{path}.{field_name}",
                f"field {field_name!r} needs a Distributed Map "
                "(ItemProcessor.ProcessorConfig.Mode: DISTRIBUTED)",
            )
    if not distributed:
        return
    limit = raw.get("MaxConcurrency")
    if isinstance(limit, int) and limit > MAX_DISTRIBUTED_CONCURRENCY:
        result.add(
            f"{path}.MaxConcurrency",
            f"must be at most {MAX_DISTRIBUTED_CONCURRENCY} in a Distributed Map",
        )
    if "ItemReader" in raw and not isinstance(raw["ItemReader"], dict):
        result.add(f"{path}.ItemReader", "must be an object")
    label = raw.get("Label")
    if isinstance(label, str) and (
        not 1 <= len(label) <= 40 or any(c in label for c in ' <>{}[]?*"#%\\^|~`$&,;:/')
    ):
        result.add(
            f"{path}.Label",
            "must be 1-40 characters without whitespace or any of "
            '< > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /',
        )
    batcher = raw.get("ItemBatcher")
    if batcher is not None:
        batcher_path = f"{path}.ItemBatcher"
        if not isinstance(batcher, dict):
            result.add(batcher_path, "must be an object")
        else:
            for field_name in batcher:
                if field_name not in _BATCHER_FIELDS:
                    result.add(
                        f"{batcher_path}.{field_name}", _unknown_field(field_name, _BATCHER_FIELDS)
                    )
            for field_name in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
                _exclusive(result, batcher, batcher_path, field_name, f"{field_name}Path")
                if field_name in batcher:
                    _check_int(
                        result,
                        batcher[field_name],
                        f"{batcher_path}.{field_name}",
                        minimum=1,
                        language=language,
                    )
            _validate_path_fields(
                result,
                batcher,
                batcher_path,
                language,
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatchPath",
            )
    writer = raw.get("ResultWriter")
    if writer is not None:
        writer_path = f"{path}.ResultWriter"
        if not isinstance(writer, dict):
            result.add(writer_path, "must be an object")
        else:
            for field_name in writer:
                if field_name not in _WRITER_FIELDS:
                    result.add(
                        f"{writer_path}.{field_name}", _unknown_field(field_name, _WRITER_FIELDS)
                    )
            if writer.get("Resource") != "arn:aws:states:::s3:putObject":
                result.add(f"{writer_path}.Resource", "must be 'arn:aws:states:::s3:putObject'")
            params = writer.get("Parameters", writer.get("Arguments"))
            if not isinstance(params, dict) or not ("Bucket" in params or "Bucket.$" in params):
                result.add(writer_path, "needs Parameters (Arguments) with a Bucket")


def _validate_choice(
    result: Validation, raw: Mapping[str, Any], path: str, model_path: str, language: str
) -> list[_Transition]:
    transitions: list[_Transition] = []
    if "Default" in raw:
        if isinstance(raw["Default"], str):
            transitions.append((raw["Default"], f"{path}.Default"))
        else:
            result.add(f"{path}.Default", f"must be a string, not {_type_name(raw['Default'])}")
    if "Choices" not in raw:
        result.add(path, "missing required field 'Choices'")
        return transitions
    choices = raw["Choices"]
    if not isinstance(choices, list):
        result.add(f"{path}.Choices", f"must be an array, not {_type_name(choices)}")
        return transitions
    if not choices:
        result.add(f"{path}.Choices", "must contain at least one rule")
    for index, rule in enumerate(choices):
        rule_path = f"{path}.Choices[{index}]"
        _validate_rule(result, rule, rule_path, language, top_level=True)
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            transitions.append((rule["Next"], f"{rule_path}.Next"))
    return transitions


def _validate_rule(
    result: Validation, rule: Any, path: str, language: str, *, top_level: bool
) -> None:
    if not isinstance(rule, dict):
        result.add(path, f"a Choice rule must be an object, not {_type_name(rule)}")
        return
    _check_optional(result, rule, path, "Comment", str)
    if top_level:
        if "Next" not in rule:
            result.add(path, "missing required field 'Next'")
        elif not isinstance(rule["Next"], str):
            result.add(f"{path}.Next", f"must be a string, not {_type_name(rule['Next'])}")
        if "Assign" in rule:
            _check_optional(result, rule, path, "Assign", dict)
            if language == JSONPATH:
                _validate_template(result, rule["Assign"], f"{path}.Assign")
    else:
        for key in ("Next", "Assign", "Output"):
            if key in rule:
                result.add(f"{path}.{key}", f"field {key!r} is not allowed in a nested rule")
    if language == JSONATA:
        for key in rule:
            if key in COMPARISON_OPERATORS or key in ("Variable", "And", "Or", "Not"):
                result.add(
                    f"{path}.{key}",
                    f"field {key!r} is not supported in JSONata rules (use 'Condition')",
                )
            elif key not in _JSONATA_RULE_FIELDS:
                result.add(f"{path}.{key}", _unknown_field(key, _JSONATA_RULE_FIELDS))
        if "Condition" not in rule:
            result.add(path, "missing required field 'Condition'")
        for key in ("Condition", "Output", "Assign"):
            if key in rule:
                _validate_expressions(result, rule[key], f"{path}.{key}")
        return
    unknown = False
    for key in rule:
        if key in ("Condition", "Output"):
            result.add(f"{path}.{key}", f"field {key!r} is only supported in JSONata rules")
        elif key not in _JSONPATH_RULE_FIELDS and key not in COMPARISON_OPERATORS:
            unknown = True
            result.add(f"{path}.{key}", _unknown_rule_field(key))
    operators = [key for key in rule if key in COMPARISON_OPERATORS]
    combinators = [key for key in rule if key in ("And", "Or", "Not")]
    found = operators + combinators
    # An unknown key is most likely the misspelled operator: its own message says so, and
    # "no operator" / "'Variable' needs an operator" would only repeat it.
    if not found and not unknown:
        result.add(path, "a rule needs one comparison operator, or 'And', 'Or' or 'Not'")
    elif len(found) > 1:
        names = ", ".join(repr(key) for key in found)
        result.add(path, f"a rule must have exactly one operator, found {names}")
    if operators:
        if "Variable" not in rule:
            result.add(path, "missing required field 'Variable'")
        else:
            _check_path_field(result, rule["Variable"], f"{path}.Variable")
        for operator in operators:
            _check_operand(result, operator, rule[operator], f"{path}.{operator}")
    elif "Variable" in rule:
        if unknown and not combinators:
            _check_path_field(result, rule["Variable"], f"{path}.Variable")
        else:
            result.add(f"{path}.Variable", "'Variable' needs a comparison operator")
    for key in ("And", "Or"):
        if key not in rule:
            continue
        nested = rule[key]
        if not isinstance(nested, list):
            result.add(f"{path}.{key}", f"must be an array, not {_type_name(nested)}")
        elif not nested:
            result.add(f"{path}.{key}", "must contain at least one rule")
        else:
            for index, item in enumerate(nested):
                _validate_rule(result, item, f"{path}.{key}[{index}]", language, top_level=False)
    if "Not" in rule:
        _validate_rule(result, rule["Not"], f"{path}.Not", language, top_level=False)


def _unknown_rule_field(key: Any) -> str:
    if not isinstance(key, str):
        return f"unknown field {key!r}"
    match = closest(key, COMPARISON_OPERATORS | _JSONPATH_RULE_FIELDS)
    if match is None:
        return f"unknown field {key!r}"
    if match in COMPARISON_OPERATORS:
        return f"unknown comparison operator {key!r} (did you mean {match!r}?)"
    return f"unknown field {key!r} (did you mean {match!r}?)"


def _check_operand(result: Validation, operator: str, operand: Any, path: str) -> None:
    if operator.endswith("Path"):
        _check_path_field(result, operand, path)
    elif operator.startswith("Is") or operator == "BooleanEquals":
        if not isinstance(operand, bool):
            result.add(path, f"must be a boolean, not {_type_name(operand)}")
    elif operator.startswith("Numeric"):
        if not _is_number(operand):
            result.add(path, f"must be a number, not {_type_name(operand)}")
    elif not isinstance(operand, str):
        result.add(path, f"must be a string, not {_type_name(operand)}")
    elif operator.startswith("Timestamp") and parse_timestamp(operand) is None:
        result.add(path, f"invalid RFC 3339 timestamp {operand!r}")


_StateValidator = Callable[[Validation, Mapping[str, Any], str, str, str], list[_Transition]]

_STATE_VALIDATORS: dict[str, _StateValidator] = {
    "Task": _validate_task,
    "Wait": _validate_wait,
    "Choice": _validate_choice,
    "Fail": _validate_fail,
    "Parallel": _validate_parallel,
    "Map": _validate_map,
}
