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
from typing import Any

import orjson

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
    """Compact JSON text of ``value``; TypeError or ValueError if it is not plain JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | bytes) -> Any:
    """The value of a JSON text written by :func:`dumps`."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # What orjson does not read back: integers over 64 bits, and NaN written by
        # earlier versions. The standard library reads both.
        return json.loads(text)
