"""JSONata support with AWS Step Functions semantics (``"QueryLanguage": "JSONata"``).

A JSONata field value is a string ``"{% <expression> %}"``. The interpreter evaluates it
with these bindings (JSONata variables, written without their ``$``):

* ``states``: ``{"input": <state input>, "context": <context object>}`` plus
  ``"result"`` (Task/Parallel/Map result, in ``Output``/``Assign``) and ``"errorOutput"``
  (the ``{"Error", "Cause"}`` object, in a ``Catch``'s ``Output``/``Assign``);
* every workflow variable visible in the state's scope, by name.

Behaviour follows what AWS records (see the conformance corpus):

* An expression that evaluates to *nothing* (JSONata ``undefined``) fails the state with
  ``States.QueryEvaluationError``: ``The JSONata expression '$x' specified for the field
  'Output/result' returned nothing (undefined).`` A JSON ``null`` is a value: it keeps its
  key. Fields are named relative to the state: ``Output``, ``Output/a/b[0]``, ``Assign/x``,
  ``Arguments/FunctionName``, ``Items``, ``Choices[1]/Condition``...
* Whole numbers come out as ``int`` (``3``, not ``3.0``).
* Step Functions adds ``$partition``, ``$range``, ``$hash``, ``$random``, ``$uuid`` and
  ``$parse`` and disables ``$eval``.

Causes carry only the problem itself; the runtime prefixes ``An error occurred while
executing the state '<name>' (entered at the event id #<n>).`` as for every state error.

JSONPath states reference workflow variables as ``$name`` / ``$name.field`` paths in
``.$`` fields; :func:`evaluate_assign_jsonpath` evaluates a JSONPath ``Assign`` block.
"""

from __future__ import annotations

import hashlib
import json
import math
import random as _random
import re
import threading
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import Any

import jsonata as _jsonata
import regex
from jsonata.functions import Functions
from jsonata.jexception import JException
from jsonata.regex_engine import RegexFlags
from jsonata.utils import Utils

from orchestrator.config import get_settings
from orchestrator.errors import (
    EvaluationLimitExceeded,
    QueryEvaluationError,
    StatesError,
    StatesRuntimeError,
)
from orchestrator.language import budget
from orchestrator.language.dataflow import evaluate_path_field
from orchestrator.language.paths import json_type, read_path

__all__ = [
    "UNDEFINED",
    "assign_jsonata",
    "bindings",
    "evaluate",
    "evaluate_assign_jsonpath",
    "evaluate_field",
    "evaluate_template",
    "evaluate_typed",
    "expression_of",
    "is_expression",
    "is_variable_path",
    "read_variable_path",
    "validate",
]


class _Undefined:
    """JSONata ``undefined``: an expression that produced nothing."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


#: What :func:`evaluate` returns for an expression that evaluates to nothing.
UNDEFINED: Any = _Undefined()

#: Hash algorithms of ``$hash`` (names are case-sensitive, as for ``States.Hash``).
_HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}

#: ``$range`` refuses to build more elements than this (AWS's own bound).
MAX_RANGE_ITEMS = 360_145

#: Compiled expressions kept per thread.
_CACHE_SIZE = 2048


# -- recognising expressions ------------------------------------------------------------


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a JSONata expression string ``"{% ... %}"``."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def expression_of(value: str) -> str:
    """The expression inside ``"{% ... %}"`` (stripped), or ``value`` itself."""
    if is_expression(value):
        return value[2:-2].strip()
    return value.strip()


# -- Step Functions functions -----------------------------------------------------------


def _arg(value: Any) -> Any:
    """A function argument as plain Python (JSONata null -> None, sequences -> lists)."""
    return _to_python(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _truncate(function: str, value: Any) -> int:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise JException("T0410", 0, function)
    return int(value)  # towards zero, as AWS rounds non-integer arguments


def _partition(array: Any = None, size: Any = None) -> Any:
    array, size = _arg(array), _arg(size)
    if array is None or size is None:
        return None
    if not isinstance(array, list):
        array = [array]
    chunk = _truncate("partition", size)
    if not array or chunk <= 0:
        return None
    return [array[i : i + chunk] for i in range(0, len(array), chunk)]


def _range(start: Any = None, end: Any = None, step: Any = None) -> Any:
    start, end, step = _arg(start), _arg(end), _arg(step)
    if start is None or end is None or step is None:
        return None
    first, last, stride = (_truncate("range", v) for v in (start, end, step))
    if stride == 0 or (last - first) * stride < 0:
        return None
    count = (last - first) // stride + 1
    if count > MAX_RANGE_ITEMS:
        raise JException("D3137", 0, "Expression evaluation memory limit exceeded")
    values = list(range(first, last + (1 if stride > 0 else -1), stride))
    # A sequence: a single-element range collapses to the bare number, as on AWS.
    return Utils.create_sequence_from_iter(values)


def _hash(data: Any = None, algorithm: Any = None) -> Any:
    data, algorithm = _arg(data), _arg(algorithm)
    if data is None or algorithm is None:
        return None
    if not isinstance(data, str):
        raise JException("T0410", 0, "hash")
    if algorithm not in _HASH_ALGORITHMS:
        raise JException("D3137", 0, f"Unsupported hash algorithm: {algorithm}")
    return hashlib.new(_HASH_ALGORITHMS[algorithm], data.encode("utf-8")).hexdigest()


def _random_fn(seed: Any = None) -> Any:
    seed = _arg(seed)
    if seed is None:
        return _random.random()
    return _random.Random(_truncate("random", seed)).random()


def _uuid_fn() -> str:
    return str(_uuid.uuid4())


def _parse(text: Any = None) -> Any:
    text = _arg(text)
    if text is None:
        return None
    if not isinstance(text, str):
        raise JException("T0410", 0, "parse")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise JException("D3137", 0, f"Unable to parse JSON string: {exc}") from None
    return _to_jsonata(value)


def _eval_disabled(*_: Any) -> Any:
    raise JException("T1006", 0)


_EXTRA_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "partition": _partition,
    "range": _range,
    "hash": _hash,
    "random": _random_fn,
    "uuid": _uuid_fn,
    "parse": _parse,
    "eval": _eval_disabled,
}


# -- evaluation limits (see orchestrator.language.budget) -----------------------------------------


class _TimedPattern:
    """A regex literal (``/(a+)+$/``) that stops when the evaluation's time budget runs out.

    Python's ``re`` backtracks in C, where nothing can interrupt it; the ``regex`` package
    (same syntax) takes a ``timeout``. Duck-typed like ``re.Pattern`` (jsonata's
    ``Functions.is_regex`` accepts any object with these four methods).
    """

    __slots__ = ("_pattern",)

    def __init__(self, pattern: Any) -> None:
        self._pattern = pattern

    def search(self, string: str, *args: Any) -> Any:
        return _timed(self._pattern.search, string, *args)

    def finditer(self, string: str, *args: Any) -> Any:
        # Consumed at once, so that the timeout covers the whole scan.
        return iter(_timed(_all_matches, self._pattern, string, *args))

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        return str(_timed(self._pattern.sub, repl, string, count))

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        return list(_timed(self._pattern.split, string, maxsplit))


def _all_matches(pattern: Any, string: str, *args: Any, timeout: float) -> list[Any]:
    return list(pattern.finditer(string, *args, timeout=timeout))


def _timed(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args, timeout=max(budget.remaining(), 0.001))
    except TimeoutError:
        raise budget.LimitExceeded(
            f"a regular expression ran past the time limit of {budget.timeout_seconds():g} s "
            f"({budget.TIMEOUT_SETTING})"
        ) from None


def _regex_engine(pattern: str, flags: RegexFlags) -> _TimedPattern:
    native = 0
    if flags.case_insensitive:
        native |= regex.IGNORECASE
    if flags.multiline:
        native |= regex.MULTILINE
    return _TimedPattern(regex.compile(pattern, native))


def _bounded_string(value: Any, prettify: Any = None) -> Any:
    """``Functions.string`` that refuses JSON text over the size limit before building it
    (``json.dumps`` runs in C, where the memory check cannot stop it)."""
    if isinstance(value, list | Mapping) and not isinstance(value, str):
        budget.check_serialized_chars("$string", value)
    return Functions.string(value, prettify)


class _BoundedFunctions:
    """JSONata built-ins that allocate at C speed, checked before they build their result."""

    @staticmethod
    def string(arg: Any, prettify: Any) -> Any:
        return _bounded_string(arg, prettify)

    @staticmethod
    def pad(string: Any, width: Any, char: Any) -> Any:
        if isinstance(width, int | float) and math.isfinite(width):
            budget.check_chars("$pad", int(abs(width)))
        return Functions.pad(string, width, char)

    @staticmethod
    def join(strs: Any, separator: Any) -> Any:
        if isinstance(strs, list) and strs:
            gaps = len(separator) * (len(strs) - 1) if isinstance(separator, str) else 0
            budget.check_chars("$join", sum(len(s) for s in strs if isinstance(s, str)) + gaps)
        return Functions.join(strs, separator)

    @staticmethod
    def append(arg1: Any, arg2: Any) -> Any:
        if isinstance(arg1, list) and isinstance(arg2, list):
            budget.check_items("$append", len(arg1) + len(arg2))
        return Functions.append(arg1, arg2)

    @staticmethod
    def split(string: Any, pattern: Any, limit: Any) -> Any:
        # A string separator splits in C (str.split); a regex one is bounded by its timeout.
        if isinstance(string, str) and isinstance(pattern, str):
            count = string.count(pattern) + 1 if pattern else len(string)
            if isinstance(limit, int | float) and not isinstance(limit, bool) and limit >= 0:
                count = min(count, int(limit))
            budget.check_items("$split", count)
        return Functions.split(string, pattern, limit)

    @staticmethod
    def replace(string: Any, pattern: Any, replacement: Any, limit: Any) -> Any:
        if isinstance(string, str) and isinstance(replacement, str) and replacement:
            # Only a replacement that could grow the string past the limit needs counting.
            if (len(string) + 1) * len(replacement) + len(string) > budget.MAX_STRING_CHARS:
                if isinstance(pattern, str):
                    count = string.count(pattern) if pattern else 0
                else:
                    count = sum(1 for _ in pattern.finditer(string))
                if isinstance(limit, int | float) and not isinstance(limit, bool):
                    count = min(count, max(int(limit), 0))
                budget.check_chars("$replace", len(string) + count * len(replacement))
        return Functions.replace(string, pattern, replacement, limit)


#: Signatures as jsonata registers them (Jsonata.register_functions).
_BOUNDED_FUNCTIONS = {
    "string": "<x-b?:s>",
    "pad": "<s-ns?:s>",
    "join": "<a<s>s?:s>",
    "append": "<xx:a>",
    "replace": "<s-(sf)(sf)n?:s>",
    "split": "<s-(sf)n?:a<s>>",
}


class _BoundedJsonata(_jsonata.Jsonata):
    """The JSONata evaluator with a recursion depth limit and size-checked operators."""

    _depth = 0
    max_depth = 0

    def apply(self, proc: Any, args: Any, input: Any, environment: Any) -> Any:  # noqa: A002
        # Every function call goes through here, including the ones higher-order functions
        # make; tail calls are trampolined inside it and do not nest.
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise budget.LimitExceeded(
                    f"function calls nested deeper than the limit of {self.max_depth} "
                    "(ORCHESTRATOR_EVALUATION_MAX_DEPTH)"
                )
            return super().apply(proc, args, input, environment)
        finally:
            self._depth -= 1

    def evaluate_string_concat(self, lhs: Any, rhs: Any) -> str:
        left = "" if lhs is None else _bounded_string(lhs)
        right = "" if rhs is None else _bounded_string(rhs)
        budget.check_chars("'&'", len(left) + len(right))
        return str(left) + str(right)

    def evaluate_step(self, expr: Any, input: Any, environment: Any, last_step: bool) -> Any:  # noqa: A002
        # jsonata's own step, counting the items it gathers as it goes: each value a step
        # yields may be small (a range under the array limit) while the flattened sequence
        # of all of them is not ([1..999999].[1..999999]).
        if expr.type == "sort":
            return super().evaluate_step(expr, input, environment, last_step)
        result = Utils.create_sequence()
        items = 0
        for inp in input:
            res = self.eval(expr, inp, environment)
            if expr.stages is not None:
                for stage in expr.stages:
                    res = self.evaluate_filter(stage.expr, res, environment)
            if res is not None:
                result.append(res)
                items += len(res) if isinstance(res, list) else 1
                if items > budget.MAX_ARRAY_ITEMS:
                    budget.check_items("a path step (its values' items in all)", items)
        if (
            last_step
            and len(result) == 1
            and isinstance(result[0], list)
            and not Utils.is_sequence(result[0])
        ):
            return result[0]
        result_sequence = Utils.create_sequence()
        for res in result:
            if not isinstance(res, list) or (isinstance(res, Utils.JList) and res.cons):
                result_sequence.append(res)
            else:
                result_sequence.extend(res)  # flattened into the parent sequence
        return result_sequence

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        if isinstance(lhs, int) and isinstance(rhs, int) and not isinstance(lhs, bool):
            budget.check_items("the range operator '..'", rhs - lhs + 1)
        return super().evaluate_range_expression(lhs, rhs)


# -- compiling and converting -----------------------------------------------------------

_local = threading.local()


def _compile(expression: str) -> _jsonata.Jsonata:
    cache: dict[str, _jsonata.Jsonata] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    compiled = cache.get(expression)
    if compiled is None:
        compiled = _BoundedJsonata(expression, _regex_engine)
        compiled.set_output_convert_nulls(False)
        for name, function in _EXTRA_FUNCTIONS.items():
            compiled.register_lambda(name, function)
        for name, signature in _BOUNDED_FUNCTIONS.items():
            compiled.register_function(
                name, _jsonata.Jsonata.function(name, signature, _BoundedFunctions, name)
            )
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[expression] = compiled
    return compiled


class _Unsupported(Exception):
    """A result holds something that is not JSON (a function)."""


def _to_python(value: Any) -> Any:
    """A JSONata value as plain JSON-compatible Python (raises _Unsupported for functions)."""
    if value is None or value is Utils.NULL_VALUE:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _to_python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_python(v) for v in value]
    raise _Unsupported(type(value).__name__)


def _to_jsonata(value: Any) -> Any:
    """JSON null as JSONata null (so that a bound variable holding null is not undefined)."""
    if value is None:
        return Utils.NULL_VALUE
    return value


def bindings(
    state_input: Any,
    context: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    *,
    result: Any = UNDEFINED,
    error_output: Any = UNDEFINED,
) -> dict[str, Any]:
    """Build the bindings of an evaluation: ``$states`` plus the workflow variables.

    Args:
        state_input: ``$states.input`` (the state's raw input).
        context: ``$states.context`` (the context object, same shape as ``$$``).
        variables: The workflow variables visible in the state's scope.
        result: ``$states.result`` (only in ``Output``/``Assign`` after the state's work).
        error_output: ``$states.errorOutput`` (only in a ``Catch``'s ``Output``/``Assign``).
    """
    states: dict[str, Any] = {"input": state_input, "context": context}
    if result is not UNDEFINED:
        states["result"] = result
    if error_output is not UNDEFINED:
        states["errorOutput"] = error_output
    out: dict[str, Any] = dict(variables or {})
    out["states"] = states
    return out


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, JException):
        code = exc.error
        message = str(exc)
        return message if message.startswith(code) else f"{code}: {message}"
    return f"{type(exc).__name__}: {exc}"


def evaluate(expression: str, bindings: Mapping[str, Any], *, field: str = "") -> Any:
    """Evaluate one JSONata expression.

    Args:
        expression: ``"{% ... %}"`` or the bare expression.
        bindings: JSONata variables without their ``$``: ``states`` and the workflow
            variables (see :func:`bindings`).
        field: The field being evaluated, for error causes (``Output/result``...).

    Returns:
        The value as plain JSON-compatible Python, or :data:`UNDEFINED`.

    Raises:
        QueryEvaluationError: The expression does not compile, fails, or returns a
            function.
    """
    text = expression_of(expression)
    where = f" specified for the field '{field}'" if field else ""
    try:
        compiled = _compile(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a query error
        raise QueryEvaluationError(
            f"The JSONata expression '{text}'{where} could not be parsed. {_error_text(exc)}"
        ) from None
    env = {name: _to_jsonata(value) for name, value in bindings.items()}
    try:
        _jsonata.Jsonata.CURRENT.jsonata = compiled
        compiled.max_depth = get_settings().evaluation_max_depth
        raw = budget.run_bounded(
            f"The JSONata expression '{text}'{where}",
            "States.QueryEvaluationError",
            _evaluate_converted,
            compiled,
            env,
        )
    except _Unsupported:
        raise QueryEvaluationError(
            f"The JSONata expression '{text}'{where} returned an unsupported result type."
        ) from None
    except StatesError:
        raise
    except RecursionError:
        # Deeper than the interpreter's stack allows before our own depth limit was reached
        # (higher-order functions use more stack per level).
        raise EvaluationLimitExceeded(
            f"The JSONata expression '{text}'{where}: function calls nested deeper than the "
            "interpreter's stack allows (ORCHESTRATOR_EVALUATION_MAX_DEPTH)",
            error="States.QueryEvaluationError",
        ) from None
    except Exception as exc:  # noqa: BLE001 - evaluation errors become query errors
        if _is_function_definition(text) and isinstance(exc, TypeError):
            raise QueryEvaluationError(
                f"The JSONata expression '{text}'{where} returned an unsupported result type."
            ) from None
        raise QueryEvaluationError(
            f"The JSONata expression '{text}'{where} threw an error during evaluation. "
            f"{_error_text(exc)}"
        ) from None
    return raw


def _evaluate_converted(compiled: _jsonata.Jsonata, env: dict[str, Any]) -> Any:
    # The conversion walks the whole result in Python: inside the budget, so that a huge
    # result cannot outlast the time limit.
    raw = compiled.evaluate(None, env)
    return UNDEFINED if raw is None else _to_python(raw)


_FUNCTION_DEF = re.compile(r"\bfunction\s*\(|λ\s*\(")


def _is_function_definition(text: str) -> bool:
    return bool(_FUNCTION_DEF.search(text))


def evaluate_field(expression: str, bindings: Mapping[str, Any], field: str) -> Any:
    """Evaluate an expression that must produce a value (undefined fails the state)."""
    value = evaluate(expression, bindings, field=field)
    if value is UNDEFINED:
        raise QueryEvaluationError(
            f"The JSONata expression '{expression_of(expression)}' specified for the field "
            f"'{field}' returned nothing (undefined)."
        )
    return value


_json_type = json_type


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def evaluate_typed(expression: str, bindings: Mapping[str, Any], field: str, expected: str) -> Any:
    """Evaluate a field whose value must have a JSON type (``array`` for ``Items``...).

    ``expected`` is one of ``array``, ``object``, ``string``, ``number``, ``integer``,
    ``boolean``. A wrong type fails like AWS: ``The JSONata expression '1' specified for
    the field 'Items' returned an unexpected result type. Expected 'array', but was
    'number' for value: 1``.
    """
    value = evaluate_field(expression, bindings, field)
    kind = _json_type(value)
    ok = kind == expected or (
        expected == "integer" and kind == "number" and float(value).is_integer()
    )
    if not ok:
        raise QueryEvaluationError(
            f"The JSONata expression '{expression_of(expression)}' specified for the field "
            f"'{field}' returned an unexpected result type. Expected '{expected}', but was "
            f"'{kind}' for value: {_compact(value)}"
        )
    return int(value) if expected == "integer" else value


def evaluate_template(template: Any, bindings: Mapping[str, Any], field: str = "Output") -> Any:
    """Evaluate a JSONata payload template (Arguments, Output, Assign values, ItemSelector).

    Every ``"{% %}"`` string at any depth of dicts and lists is replaced by its value;
    everything else is copied verbatim (``.$`` keys have no meaning in JSONata states).
    An expression that returns nothing fails with its field path (``Output/a/b[0]``).
    """
    if is_expression(template):
        return evaluate_field(template, bindings, field)
    if isinstance(template, dict):
        return {
            key: evaluate_template(value, bindings, f"{field}/{key}")
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [
            evaluate_template(value, bindings, f"{field}[{index}]")
            for index, value in enumerate(template)
        ]
    return template


def assign_jsonata(
    assign: Mapping[str, Any] | Any, bindings: Mapping[str, Any], field: str = "Assign"
) -> dict[str, Any]:
    """Evaluate a JSONata ``Assign`` block; return the assigned variables.

    Every value is evaluated against the bindings as they were *before* the block (a
    variable assigned here is not visible to its siblings); the caller then merges the
    result into the scope's variables.
    """
    if isinstance(assign, str) and is_expression(assign):
        value = evaluate_field(assign, bindings, field)
        if not isinstance(value, dict):
            raise QueryEvaluationError(
                f"The JSONata expression '{expression_of(assign)}' specified for the field "
                f"'{field}' returned an unexpected result type. Expected 'object', but was "
                f"'{_json_type(value)}' for value: {_compact(value)}"
            )
        return value
    if not isinstance(assign, Mapping):
        raise QueryEvaluationError(f"The field '{field}' must be an object")
    return {
        key: evaluate_template(value, bindings, f"{field}/{key}") for key, value in assign.items()
    }


def validate(expression: str) -> str | None:
    """Why ``expression`` (``"{% ... %}"`` or bare) is not valid JSONata, or None."""
    text = expression_of(expression)
    if not text:
        return "empty JSONata expression"
    try:
        compiled = _jsonata.Jsonata(text, _regex_engine)
    except JException as exc:
        return f"invalid JSONata expression {text!r}: {_error_text(exc)}"
    except Exception as exc:  # noqa: BLE001 - the parser raises assorted errors
        return f"invalid JSONata expression {text!r}: {type(exc).__name__}: {exc}"
    errors = compiled.get_errors()
    if errors:
        return f"invalid JSONata expression {text!r}: {_error_text(errors[0])}"
    return None


# -- JSONPath-mode variables ------------------------------------------------------------

#: ``$name`` or ``$name<jsonpath tail>`` (not ``$``, ``$.x`` or ``$$``).
_VARIABLE_PATH = re.compile(r"^\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<tail>[.\[].*)?$", re.S)


def is_variable_path(path: Any) -> bool:
    """Whether ``path`` reads a workflow variable (``$name`` or ``$name.field``)."""
    return isinstance(path, str) and _VARIABLE_PATH.match(path) is not None


def read_variable_path(
    path: str,
    variables: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    field: str | None = None,
) -> Any:
    """Read ``$name`` / ``$name.a.b[0]`` from the workflow variables.

    Raises:
        StatesRuntimeError: The variable is not defined or the path matches nothing.
    """
    match = _VARIABLE_PATH.match(path)
    if match is None:
        raise StatesRuntimeError(f"Invalid variable reference '{path}'")
    name, tail = match.group("name"), match.group("tail") or ""
    if name not in variables:
        where = f" specified for the field '{field}'" if field else ""
        raise StatesRuntimeError(f"The variable '${name}'{where} is not defined")
    value = variables[name]
    if not tail:
        return value

    return read_path(value, "$" + tail, context or {}, field=field)


def _evaluate_jsonpath_value(
    key: str, expression: Any, data: Any, context: Mapping[str, Any], variables: Mapping[str, Any]
) -> Any:
    if isinstance(expression, str) and is_variable_path(expression):
        return read_variable_path(expression, variables, context, field=key)
    return evaluate_path_field(key, expression, data, context)


def _assign_template(
    template: Any, data: Any, context: Mapping[str, Any], variables: Mapping[str, Any]
) -> Any:
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _evaluate_jsonpath_value(key, value, data, context, variables)
            else:
                out[key] = _assign_template(value, data, context, variables)
        return out
    if isinstance(template, list):
        return [_assign_template(item, data, context, variables) for item in template]
    return template


def evaluate_assign_jsonpath(
    assign_template: Mapping[str, Any],
    data: Any,
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> dict[str, Any]:
    """Evaluate a JSONPath-mode ``Assign`` block; return the variables after it.

    ``"name.$"`` values are paths (``$.x`` reads ``data``, ``$$.x`` the context object,
    ``$var.x`` a variable) or intrinsic function calls; other values are literals (nested
    objects are templates too). All values see the variables as they were before the
    block. The returned dict is ``variables`` updated with the assignments (a new dict).
    """
    assigned = _assign_template(dict(assign_template), data, context, variables)
    return {**variables, **assigned}
