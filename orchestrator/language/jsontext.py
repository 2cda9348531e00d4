"""JSON text: how the orchestrator writes the values it stores and sends.

Every step writes a dozen small JSON texts (history events, its record, lease members),
so :func:`dumps` uses orjson, several times faster than the standard library, and falls
back to the standard library for what orjson refuses (integers over 64 bits, non-string
keys, subclasses of the JSON types): the text read back is the same value either way.

:func:`checked_dumps` is the gate for values from outside (execution input, activity
results, callback outputs): it refuses what JSON cannot carry, NaN and Infinity
included, with the standard library's message. Values past that gate are plain JSON, so
orjson's one silent difference (it writes NaN as ``null``) never applies.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import orjson

#: Deepest nesting of objects and arrays accepted in a value from outside. Deeper values
#: would break later: orjson and pydantic's serialisers stop near 255 levels, and
#: Python's recursion limit is not far beyond.
MAX_JSON_DEPTH = 100

#: Lone UTF-16 surrogates: Python strings can hold them, UTF-8 (and so JSON text) cannot.
SURROGATE_RE = re.compile("[\ud800-\udfff]")

# A JSON string literal, or a run of characters outside strings that are not brackets:
# what is left after removing them is the document's bracket structure.
_NOT_STRUCTURE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[^\[\]{}"]+')

# Subclasses, datetimes and dataclasses go to the fallback (which writes subclasses as
# their base type and refuses the rest), as the standard library would.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dumps(value: Any) -> str:
    """Compact JSON text of a JSON value."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def checked_dumps(value: Any) -> str:
    """Compact JSON text of ``value``; TypeError or ValueError if it is not plain JSON.

    Refused with ValueError besides what ``json`` refuses: NaN and Infinity, lone
    surrogates (no UTF-8 text can hold them), and nesting deeper than
    :data:`MAX_JSON_DEPTH`. The message says what is wrong without quoting the value.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValueError(f"it is nested more than {MAX_JSON_DEPTH} levels deep") from None
    surrogate = SURROGATE_RE.search(text)
    if surrogate is not None:
        raise ValueError(
            f"it holds a lone surrogate (U+{ord(surrogate.group()):04X}), which UTF-8 and "
            "JSON text cannot carry"
        )
    # Fewer brackets than the limit cannot nest past it (the common case: no scan).
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"it is nested more than {MAX_JSON_DEPTH} levels deep")
    return text


def json_depth(text: str) -> int:
    """How deeply the objects and arrays of a JSON text nest (0 for a scalar)."""
    structure = _NOT_STRUCTURE_RE.sub("", text)
    return max(accumulate(1 if char in "[{" else -1 for char in structure), default=0)


#: A run of 19 or more digits: orjson reads an integer beyond 64 bits (below -2**63,
#: above 2**64 - 1) as a float, so such a text goes to the standard library, which reads
#: it exactly. (Digits inside a string match too: that text is only read more slowly.)
#: Found by mapping digits to NUL, which JSON text never holds raw, and searching for 19
#: of them: C loops, about 20 times faster than a regular expression on a large text (a
#: Map's record holds its whole input, and it is read at every refill).
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", b"\0" * 10)
_LONG_DIGIT_RUN = b"\0" * 19


def _has_long_number(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return data.translate(_DIGITS_TO_NUL).find(_LONG_DIGIT_RUN) >= 0


def loads(text: str | bytes) -> Any:
    """The value of a JSON text written by :func:`dumps`."""
    if _has_long_number(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # What orjson does not read back: integers over 64 bits, and NaN written by
        # earlier versions. The standard library reads both.
        return json.loads(text)
