"""Step Functions intrinsic functions (``States.Format(...)`` and friends).

An intrinsic is the value of a ``.$`` field in ``Parameters``, ``ResultSelector``,
``ItemSelector`` or a Pass state, for example::

    "greeting.$": "States.Format('Hello {}, {}', $.name, States.ArrayLength($.items))"

:func:`parse` turns the text into a small immutable AST (cached, because the same field is
evaluated once per execution or per Map item), :func:`evaluate` runs it against the state
input and the context object, and :func:`validate` reports definition-time problems.

Behaviour follows what real AWS Step Functions does (checked against executions recorded
on AWS), including its Java heritage: ``States.Format`` renders objects the way Java's
``Map.toString`` does (``{a=1, b=[]}``), numbers are rounded with Java's ``Math.round``
(half up, so ``-0.5`` becomes ``0``), ``States.StringSplit`` splits like Java's
``StringTokenizer`` and floats print like Java's ``Double.toString`` (``1.0E20``).

Errors: a misused function raises :class:`~orchestrator.errors.IntrinsicFailure`
(``States.IntrinsicFailure``); a path argument that matches nothing raises whatever
:func:`orchestrator.language.paths.read_path` raises (``States.Runtime``). Causes carry only the
problem itself; the runtime prefixes the ``An error occurred while executing the state
...`` sentence, as it does for every state error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestrator.errors import IntrinsicFailure, StatesError, StatesRuntimeError
from orchestrator.language.budget import check_chars, run_bounded
from orchestrator.language.paths import current_variables, json_type, read_path

__all__ = [
    "FUNCTION_NAMES",
    "Call",
    "Literal",
    "PathRef",
    "evaluate",
    "is_intrinsic",
    "parse",
    "validate",
]

#: Prefix shared by every intrinsic function name.
PREFIX = "States."

#: AWS allows at most this many intrinsic calls in one field (nested calls included).
MAX_CALLS_PER_FIELD = 10

#: Largest array ``States.ArrayRange`` may build.
MAX_ARRAY_RANGE_ITEMS = 1000

#: Longest string (in characters) accepted by ``States.Hash``, ``Base64Encode`` and
#: ``Base64Decode``.
MAX_STRING_INPUT_CHARS = 10_000

#: ``States.MathAdd`` operands must fit a Java ``int``.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: Hash algorithms accepted by ``States.Hash`` (names are case-sensitive).
HASH_ALGORITHMS: Mapping[str, str] = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}

# Parser recursion guard: far above MAX_CALLS_PER_FIELD (which validate() enforces), low
# enough that hostile input cannot exhaust Python's recursion limit.
_MAX_PARSE_DEPTH = 64

_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME_RE = re.compile(r"[A-Za-z0-9]+")
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHITESPACE = " \t\n\r"
# Characters that may follow a complete argument.
_ARG_END = frozenset(_WHITESPACE + ",)")


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    """A literal argument: a string, number, boolean or null."""

    value: Any
    """The JSON value (strings already unescaped)."""
    pieces: tuple[str, ...] | None = None
    """For string literals: the text split at unescaped ``{}``, used by ``States.Format``.

    ``'a \\{\\} {}'`` has value ``"a {} {}"`` but pieces ``("a {} ", "")``: an escaped
    brace pair is text, not a placeholder.
    """


@dataclass(frozen=True)
class PathRef:
    """A reference argument: ``$.a`` (input), ``$$.Execution.Id`` (context) or ``$var.a``."""

    path: str
    """The path exactly as written."""
    variable: str | None = None
    """For workflow variable references (``$name...``), the variable name."""


@dataclass(frozen=True)
class Call:
    """A call ``States.<name>(args...)``."""

    name: str
    """Full function name, e.g. ``States.Format``."""
    args: tuple[Literal | PathRef | Call, ...]
    """The arguments in order."""


Node = Literal | PathRef | Call


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive-descent parser over one intrinsic expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> IntrinsicFailure:
        """A syntax error at the current position."""
        return self.invalid(f"{problem} at position {self.pos}")

    def invalid(self, problem: str) -> IntrinsicFailure:
        """A well-formed but invalid call (unknown name, wrong arguments)."""
        return IntrinsicFailure(f"Invalid intrinsic function {self.text!r}: {problem}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of input"
            raise self.fail(f"expected {char!r}, found {found}")
        self.pos += 1

    def parse_call(self, depth: int) -> Call:
        if depth > _MAX_PARSE_DEPTH:
            raise self.fail("intrinsic functions are nested too deeply")
        if not self.text.startswith(PREFIX, self.pos):
            raise self.fail(f"expected a function name starting with {PREFIX!r}")
        self.pos += len(PREFIX)
        match = _NAME_RE.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a function name")
        name = PREFIX + match.group()
        self.pos = match.end()
        self.skip_ws()
        self.expect("(")
        args: list[Node] = []
        self.skip_ws()
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                self.skip_ws()
                args.append(self.parse_arg(depth))
                self.skip_ws()
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.expect(")")
                break
        call = Call(name, tuple(args))
        _check_call(call, self.invalid)
        return call

    def parse_arg(self, depth: int) -> Node:
        char = self.peek()
        if char == "'":
            return self.parse_string()
        if char == "$":
            return self.parse_path()
        if char == "-" or char.isdigit():
            return self.parse_number()
        if self.text.startswith(PREFIX, self.pos):
            return self.parse_call(depth + 1)
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                self.expect_arg_end()
                return Literal(value)
        found = repr(char) if char else "end of input"
        raise self.fail(f"expected an argument, found {found}")

    def expect_arg_end(self) -> None:
        if self.pos < len(self.text) and self.text[self.pos] not in _ARG_END:
            raise self.fail(f"unexpected {self.text[self.pos]!r}")

    def parse_string(self) -> Literal:
        self.pos += 1  # opening quote
        segments: list[str] = []  # text between unescaped "{}" placeholders
        current: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.fail("unterminated string literal")
            char = self.text[self.pos]
            if char == "'":
                self.pos += 1
                break
            if char == "\\" and self.pos + 1 < len(self.text):
                escaped = self.text[self.pos + 1]
                self.pos += 2
                if escaped in "'{}\\":
                    current.append(escaped)
                else:
                    # Only ' { } and \ are reserved; any other backslash is kept as
                    # written, so JSON text with escaped double quotes survives intact.
                    current.append("\\" + escaped)
                continue
            if self.text.startswith("{}", self.pos):
                segments.append("".join(current))
                current = []
                self.pos += 2
                continue
            # A lone unescaped brace is ordinary text (AWS accepts '{"a": 1}').
            current.append(char)
            self.pos += 1
        segments.append("".join(current))
        self.expect_arg_end()
        return Literal("{}".join(segments), tuple(segments))

    def parse_number(self) -> Literal:
        match = _NUMBER_RE.match(self.text, self.pos)
        if match is None:
            raise self.fail("invalid number")
        self.pos = match.end()
        self.expect_arg_end()
        text = match.group()
        if match.group(1) is None and match.group(2) is None:
            return Literal(int(text))
        number = float(text)
        if not math.isfinite(number):
            raise self.fail(f"number {text} is out of range")
        return Literal(number)

    def parse_path(self) -> PathRef:
        start = self.pos
        depth = 0
        quote = ""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote:
                if char == "\\":
                    self.pos += 1
                elif char == quote:
                    quote = ""
            elif depth and char in "'\"":
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                if depth == 0:
                    raise self.fail("unbalanced ']' in path")
                depth -= 1
            elif depth == 0 and char in _ARG_END:
                break
            self.pos += 1
        if depth or quote:
            raise self.fail("unterminated '[' in path")
        path = self.text[start : self.pos]
        variable = None
        if not path.startswith("$$"):
            match = _VARIABLE_RE.match(path, 1)
            if match is not None:
                variable = match.group()
        rest_at = 2 if path.startswith("$$") else 1 + len(variable or "")
        if len(path) > rest_at and path[rest_at] not in ".[":
            raise self.fail(f"invalid path {path!r}")
        return PathRef(path, variable)


# --------------------------------------------------------------------------- Java-style text


def _java_double(number: float) -> str:
    """Render a float as Java's ``Double.toString`` does (``1.0``, ``1.5E-5``, ``1.0E20``).

    AWS runs on the JVM, so ``States.Format`` and ``States.JsonToString`` print doubles
    this way; Python's ``repr`` differs (``1e+20``). The digits are the shortest that
    round-trip, which ``repr`` and modern JDKs agree on.
    """
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    sign = "-" if number < 0 else ""
    digits_tuple = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    exponent = int(digits_tuple.exponent)
    # Scientific exponent of the leading digit: value = d.ddd * 10**point.
    point = len(digits) + exponent - 1
    if -3 <= point < 7:
        if point >= 0:
            whole = digits[: point + 1].ljust(point + 1, "0")
            fraction = digits[point + 1 :] or "0"
        else:
            whole = "0"
            fraction = "0" * (-point - 1) + digits
        return f"{sign}{whole}.{fraction}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point}"


def _java_string(value: Any) -> str:
    """Render a JSON value as Java's ``toString`` would (what ``States.Format`` inserts).

    Strings are inserted bare, lists print as ``[a, b]`` and objects as ``{k=v, k2=v2}``
    (``Map.toString``), exactly as recorded on AWS.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{key}={_java_string(item)}" for key, item in value.items())
        return "{" + items + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_java_string(item) for item in value) + "]"
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_JSON_ESCAPES["\t"] = "\\t"
_JSON_ESCAPE_RE = re.compile(r'["\\\x00-\x1f]')


def _json_quote(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        char = match.group()
        return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04X}"

    return '"' + _JSON_ESCAPE_RE.sub(replace, text) + '"'


def _to_json(value: Any) -> str:
    """Serialise compactly like AWS's Jackson writer (``{"a":1,"b":[]}``, ``1.0E20``).

    Non-ASCII text is written as-is; only quotes, backslashes and control characters are
    escaped (control characters as ``\\uXXXX`` with upper-case hex, as Jackson does).
    """
    if isinstance(value, str):
        return _json_quote(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise IntrinsicFailure(f"Cannot convert non-finite number {value!r} to JSON")
        return _java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        items = ",".join(f"{_json_quote(str(k))}:{_to_json(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(_to_json(item) for item in value) + "]"
    raise IntrinsicFailure(f"Value of type {type(value).__name__} is not JSON")


_json_kind = json_type


def _json_equal(left: Any, right: Any) -> bool:
    """Deep JSON equality with Java semantics: ``1 != 1.0 != true`` (unlike Python)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, float) or isinstance(right, float):
        return type(left) is type(right) and left == right
    if isinstance(left, str | int) or left is None:
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping):
        return (
            isinstance(right, Mapping)
            and left.keys() == right.keys()
            and all(_json_equal(left[key], right[key]) for key in left)
        )
    if isinstance(left, Sequence):
        return (
            isinstance(right, Sequence)
            and not isinstance(right, str | Mapping)
            and len(left) == len(right)
            and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
        )
    return bool(left == right)


def _java_round(number: float | int) -> int:
    """Java's ``Math.round``: nearest integer, halves towards positive infinity.

    AWS rounds ``-0.5`` to ``0`` and ``2.5`` to ``3``; Python's ``round`` would give
    ``-0`` and ``2`` (banker's rounding). Subtracting the floor is exact for doubles.
    """
    if isinstance(number, int):
        return number
    floor = math.floor(number)
    return floor + 1 if number - floor >= 0.5 else floor


# --------------------------------------------------------------------------- argument checks

#: An argument check: (function name, 1-based position, value) -> converted value.
Check = Callable[[str, int, Any], Any]


def _bad_argument(function: str, position: int, expected: str, value: Any) -> IntrinsicFailure:
    return IntrinsicFailure(
        f"Invalid arguments in {function}: argument {position} must be {expected}, "
        f"but was {_json_kind(value)}: {_to_json_safe(value)}"
    )


def _to_json_safe(value: Any) -> str:
    try:
        text = _to_json(value)
    except (IntrinsicFailure, RecursionError):
        text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _any(function: str, position: int, value: Any) -> Any:
    return value


def _string(function: str, position: int, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_argument(function, position, "a string", value)
    return value


def _bounded_string(function: str, position: int, value: Any) -> str:
    text = _string(function, position, value)
    if len(text) > MAX_STRING_INPUT_CHARS:
        raise IntrinsicFailure(
            f"Invalid arguments in {function}: argument {position} exceeds the maximum "
            f"length of {MAX_STRING_INPUT_CHARS} characters ({len(text)} characters)"
        )
    return text


def _array(function: str, position: int, value: Any) -> list[Any]:
    if isinstance(value, str | Mapping | bytes) or not isinstance(value, Sequence):
        raise _bad_argument(function, position, "an array", value)
    return list(value)


def _object(function: str, position: int, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad_argument(function, position, "an object", value)
    return value


def _number(function: str, position: int, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_argument(function, position, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad_argument(function, position, "a finite number", value)
    return value


def _rounded(function: str, position: int, value: Any) -> int:
    """A number, rounded to the nearest integer as AWS documents for these arguments."""
    return _java_round(_number(function, position, value))


def _integer(function: str, position: int, value: Any) -> int:
    number = _number(function, position, value)
    if isinstance(number, float):
        if not number.is_integer():
            raise _bad_argument(function, position, "an integer", value)
        return int(number)
    return number


def _nonzero_integer(function: str, position: int, value: Any) -> int:
    number = _integer(function, position, value)
    if number == 0:
        raise _bad_argument(function, position, "a non-zero integer", value)
    return number


def _non_negative_integer(function: str, position: int, value: Any) -> int:
    number = _integer(function, position, value)
    if number < 0:
        raise _bad_argument(function, position, "a non-negative integer", value)
    return number


def _positive_rounded(function: str, position: int, value: Any) -> int:
    number = _rounded(function, position, value)
    if number <= 0:
        raise _bad_argument(function, position, "a positive integer", value)
    return number


def _int32_rounded(function: str, position: int, value: Any) -> int:
    number = _rounded(function, position, value)
    if not INT32_MIN <= number <= INT32_MAX:
        raise _bad_argument(
            function, position, f"an integer between {INT32_MIN} and {INT32_MAX}", value
        )
    return number


def _false(function: str, position: int, value: Any) -> bool:
    # AWS only implements shallow merging: the deep-merge flag must be literally false.
    if value is not False:
        raise _bad_argument(function, position, "false (deep merge is not supported)", value)
    return False


def _hash_algorithm(function: str, position: int, value: Any) -> str:
    if not isinstance(value, str) or value not in HASH_ALGORITHMS:
        names = ", ".join(HASH_ALGORITHMS)
        raise _bad_argument(function, position, f"one of {names}", value)
    return str(value)


# --------------------------------------------------------------------------- functions


def _format(template: str, *values: Any, pieces: Sequence[str] | None = None) -> str:
    parts = list(pieces) if pieces is not None else template.split("{}")
    if len(parts) - 1 != len(values):
        raise IntrinsicFailure(
            f"Invalid arguments in States.Format: the format string has {len(parts) - 1} "
            f"placeholder(s) but {len(values)} value(s) were given"
        )
    out = [parts[0]]
    size = len(parts[0])
    for value, text in zip(values, parts[1:], strict=True):
        rendered = _java_string(value)
        size += len(rendered) + len(text)
        # Each placeholder may insert the whole input: a format string with thousands of
        # them would otherwise build gigabytes.
        check_chars("States.Format", size)
        out.append(rendered)
        out.append(text)
    return "".join(out)


def _string_to_json(text: str) -> Any:
    # Jackson reads blank text as "no content", which AWS returns as null.
    if not text.strip():
        return None

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def parse_float(literal: str) -> float:
        number = float(literal)
        if not math.isfinite(number):
            raise ValueError(f"number {literal} is out of range")
        return number

    try:
        return json.loads(text, parse_constant=reject_constant, parse_float=parse_float)
    except (ValueError, RecursionError) as exc:
        raise IntrinsicFailure(
            f"Invalid arguments in States.StringToJson: the string is not valid JSON: {exc}"
        ) from None


def _array_partition(array: list[Any], size: int) -> list[list[Any]]:
    return [array[i : i + size] for i in range(0, len(array), size)]


def _array_contains(array: list[Any], value: Any) -> bool:
    return any(_json_equal(item, value) for item in array)


def _array_range(start: int, end: int, step: int) -> list[int]:
    # Inclusive of `end` when the steps land on it, like AWS: (1, 9, 2) -> [1, 3, 5, 7, 9].
    count = max(0, (end - start) // step + 1)
    if count > MAX_ARRAY_RANGE_ITEMS:
        raise IntrinsicFailure(
            f"Invalid arguments in States.ArrayRange: the range would have {count} items, "
            f"more than the maximum of {MAX_ARRAY_RANGE_ITEMS}"
        )
    return [start + i * step for i in range(count)]


def _array_get_item(array: list[Any], index: int) -> Any:
    if index >= len(array):
        raise IntrinsicFailure(
            f"Invalid arguments in States.ArrayGetItem: index {index} is out of bounds "
            f"for an array of length {len(array)}"
        )
    return array[index]


def _array_unique(array: list[Any]) -> list[Any]:
    # One hash lookup per item (comparing each with every kept one took hours on 100,000
    # distinct items); the key keeps Java's equality: 1, 1.0 and true are all different.
    unique: list[Any] = []
    seen: set[Any] = set()
    for item in array:
        key = _equality_key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _equality_key(value: Any) -> Any:
    """A hashable key equal for two values exactly when :func:`_json_equal` holds."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, float):
        return ("f", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, str) or value is None:
        return ("s", value)
    if isinstance(value, Mapping):
        return ("o", frozenset((key, _equality_key(item)) for key, item in value.items()))
    if isinstance(value, Sequence):
        return ("a", tuple(_equality_key(item) for item in value))
    return ("?", id(value))


def _base64_encode(text: str) -> str:
    # Java encodes an unpaired surrogate as "?"; Python's "replace" does the same.
    return base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")


def _base64_decode(text: str) -> str:
    # Java's basic decoder accepts missing "=" padding; Python's wants it.
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise IntrinsicFailure(
            "Invalid arguments in States.Base64Decode: the string is not valid base64"
        ) from None
    # Java's new String(bytes, UTF_8) substitutes U+FFFD for invalid bytes.
    return raw.decode("utf-8", "replace")


def _hash(text: str, algorithm: str) -> str:
    digest = hashlib.new(HASH_ALGORITHMS[algorithm])
    digest.update(text.encode("utf-8", "replace"))
    return digest.hexdigest()


def _json_merge(left: Mapping[str, Any], right: Mapping[str, Any], deep: bool) -> dict[str, Any]:
    # Shallow: a key present in both takes the right-hand value whole.
    return {**left, **right}


def _math_random(start: int, end: int, seed: int | None = None) -> int:
    # AWS returns start <= n < end; an empty range has no answer.
    if end <= start:
        raise IntrinsicFailure(
            f"Invalid arguments in States.MathRandom: the end ({end}) must be greater "
            f"than the start ({start})"
        )
    generator = random.Random(seed) if seed is not None else random.SystemRandom()
    return generator.randrange(start, end)


def _math_add(left: int, right: int) -> int:
    return left + right


def _string_split(text: str, delimiters: str) -> list[str]:
    # Java StringTokenizer: every character of `delimiters` separates tokens, and empty
    # tokens are dropped (",a,,b," -> ["a", "b"]).
    if not delimiters:
        return [text] if text else []
    pattern = "[" + re.escape(delimiters) + "]+"
    return [token for token in re.split(pattern, text) if token]


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class _Function:
    """How to check and run one intrinsic function."""

    impl: Callable[..., Any]
    checks: tuple[Check, ...]
    """Argument checks by position; with ``variadic`` the last one repeats."""
    min_args: int
    max_args: int | None
    variadic: bool = False

    def check(self, name: str, position: int, value: Any) -> Any:
        index = min(position - 1, len(self.checks) - 1) if self.variadic else position - 1
        return self.checks[index](name, position, value)


def _fixed(impl: Callable[..., Any], *checks: Check, optional: int = 0) -> _Function:
    return _Function(impl, checks, len(checks) - optional, len(checks))


_FUNCTIONS: Mapping[str, _Function] = {
    "States.Format": _Function(_format, (_string, _any), 1, None, variadic=True),
    "States.StringToJson": _fixed(_string_to_json, _string),
    "States.JsonToString": _fixed(_to_json, _any),
    "States.Array": _Function(lambda *items: list(items), (_any,), 0, None, variadic=True),
    "States.ArrayPartition": _fixed(_array_partition, _array, _positive_rounded),
    "States.ArrayContains": _fixed(_array_contains, _array, _any),
    "States.ArrayRange": _fixed(_array_range, _integer, _integer, _nonzero_integer),
    "States.ArrayGetItem": _fixed(_array_get_item, _array, _non_negative_integer),
    "States.ArrayLength": _fixed(len, _array),
    "States.ArrayUnique": _fixed(_array_unique, _array),
    "States.Base64Encode": _fixed(_base64_encode, _bounded_string),
    "States.Base64Decode": _fixed(_base64_decode, _bounded_string),
    "States.Hash": _fixed(_hash, _bounded_string, _hash_algorithm),
    "States.JsonMerge": _fixed(_json_merge, _object, _object, _false),
    "States.MathRandom": _fixed(_math_random, _rounded, _rounded, _rounded, optional=1),
    "States.MathAdd": _fixed(_math_add, _int32_rounded, _int32_rounded),
    "States.StringSplit": _fixed(_string_split, _string, _string),
    "States.UUID": _fixed(_uuid),
}

#: Every supported intrinsic function name.
FUNCTION_NAMES: frozenset[str] = frozenset(_FUNCTIONS)


def _check_call(call: Call, fail: Callable[[str], IntrinsicFailure]) -> None:
    """Definition-time checks of one call: known name, argument count, literal arguments."""
    function = _FUNCTIONS.get(call.name)
    if function is None:
        raise fail(f"unknown function {call.name!r}")
    count = len(call.args)
    if count < function.min_args or (function.max_args is not None and count > function.max_args):
        if function.max_args is None:
            expected = f"at least {function.min_args}"
        elif function.min_args == function.max_args:
            expected = str(function.min_args)
        else:
            expected = f"{function.min_args} to {function.max_args}"
        raise fail(f"{call.name} takes {expected} argument(s) but {count} were given")
    for position, arg in enumerate(call.args, start=1):
        if isinstance(arg, Literal):
            try:
                function.check(call.name, position, arg.value)
            except IntrinsicFailure as exc:
                raise fail(exc.cause) from None
    # The States.Format placeholder count is deliberately checked only when the call runs:
    # AWS's own documentation shows a field with three "{}" and two values (the nine-call
    # example), so rejecting it at definition time could refuse definitions AWS accepts.


# --------------------------------------------------------------------------- public API


def is_intrinsic(value: str) -> bool:
    """Tell whether a ``.$`` field value is an intrinsic call rather than a path.

    Args:
        value: The field value, e.g. ``"States.Array($.id)"`` or ``"$.id"``.

    Returns:
        True when the value starts with ``States.``.
    """
    return isinstance(value, str) and value.startswith(PREFIX)


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Call:
    """Parse an intrinsic expression into an immutable AST (results are cached).

    Besides syntax, this checks what can be checked without data: the function names,
    the argument counts and literal argument types (``States.Hash('x', 'SHA-3')``).

    Args:
        expression: The intrinsic text, e.g. ``"States.Format('{}', $.name)"``.

    Returns:
        The top-level :class:`Call`.

    Raises:
        IntrinsicFailure: The expression is malformed or calls a function wrongly.
    """
    if not isinstance(expression, str):
        raise IntrinsicFailure(f"Invalid intrinsic function {expression!r}: not a string")
    parser = _Parser(expression)
    parser.skip_ws()
    call = parser.parse_call(0)
    parser.skip_ws()
    if parser.pos != len(expression):
        raise parser.fail(f"unexpected {expression[parser.pos]!r} after the function call")
    return call


def _count_calls(node: Node) -> int:
    if isinstance(node, Call):
        return 1 + sum(_count_calls(arg) for arg in node.args)
    return 0


def validate(expression: str) -> str | None:
    """Check an intrinsic expression for a state machine definition.

    Args:
        expression: The intrinsic text of a ``.$`` field.

    Returns:
        A description of the first problem found, or None when the expression is valid.
    """
    try:
        call = parse(expression)
    except IntrinsicFailure as exc:
        return exc.cause
    calls = _count_calls(call)
    if calls > MAX_CALLS_PER_FIELD:
        return (
            f"Invalid intrinsic function {expression!r}: {calls} function calls in one field, "
            f"more than the maximum of {MAX_CALLS_PER_FIELD}"
        )
    return None


def evaluate(
    expression: str,
    data: Any,
    context: Mapping[str, Any],
    *,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate an intrinsic expression.

    Args:
        expression: The intrinsic text, e.g. ``"States.ArrayLength($.items)"``.
        data: The value ``$`` paths read (the effective state input).
        context: The context object that ``$$`` paths read.
        variables: Workflow variables that ``$name`` paths read (JSONPath ``Assign``).

    Returns:
        The JSON value the call produces.

    Raises:
        IntrinsicFailure: The expression is malformed or a function rejects its arguments.
        StatesRuntimeError: A path argument matched nothing (``States.Runtime``).
    """
    call = parse(expression)
    try:
        # Bounded in time (orchestrator.language.budget): ArrayUnique, Format and JsonToString walk
        # data of any shape, and path arguments may be recursive descents.
        return run_bounded(
            f"The intrinsic function {call.name}",
            "States.Runtime",
            _evaluate,
            call,
            data,
            context,
            variables,
        )
    except RecursionError:
        # Only pathologically nested input data gets here (serialising or comparing it).
        raise IntrinsicFailure(
            f"Invalid arguments in {call.name}: the data is nested too deeply"
        ) from None


def _evaluate(
    node: Node, data: Any, context: Mapping[str, Any], variables: Mapping[str, Any] | None
) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathRef):
        return _read(node, data, context, variables)
    function = _FUNCTIONS[node.name]  # parse() accepted only known names
    values = [
        function.check(node.name, position, _evaluate(arg, data, context, variables))
        for position, arg in enumerate(node.args, start=1)
    ]
    if node.name == "States.Format":
        template = node.args[0]
        pieces = template.pieces if isinstance(template, Literal) else None
        return _format(*values, pieces=pieces)
    return function.impl(*values)


def _read(
    ref: PathRef, data: Any, context: Mapping[str, Any], variables: Mapping[str, Any] | None
) -> Any:
    path = ref.path
    if ref.variable is not None:
        if variables is None:
            variables = current_variables()
        if variables is None or ref.variable not in variables:
            raise StatesRuntimeError(f"The variable {ref.variable!r} is not defined")
        data, path = variables[ref.variable], "$" + path[1 + len(ref.variable) :]
    try:
        return read_path(data, path, context)
    except StatesError:
        raise
    except Exception as exc:
        # The path module reports unusable paths its own way; keep the promise that
        # evaluation only raises StatesError subclasses.
        raise IntrinsicFailure(f"Invalid path {ref.path!r}: {exc}") from None
