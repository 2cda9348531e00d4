"""How a history event is stored: a compact JSON array per stream entry.

An event as the interpreter builds it (``{"type", "ts", "state", "key", details...}``)
is stored in its execution's history stream (see :mod:`.keys`) as the value of the
entry's one field ``e`` (:data:`FIELD`), a JSON array::

    [type, ts, where, main?, rest?]

``type``
    a small integer code from :data:`CODES` (never renumbered: codes are only added),
    or the type's name when it has no code or its event lacks the code's ``main`` detail;
    null when the event has no string type (it is then in ``rest``).
``ts``
    an integer: milliseconds after the execution's start (``floor(start * 1000)`` of its
    record's ``start`` field); a float: the timestamp itself, in seconds (an event whose
    writer does not know the start: a worker's TaskStarted, a stop); null: none (or one
    that is neither, in ``rest``).
``where``
    the state's step key: the event's ``state`` is its last segment and ``key`` is the
    step key itself when it has a ``/`` (a state inside a branch or an item); null when
    the event has no state (or its ``state`` and ``key`` are not so, both in ``rest``).
``main``
    with a code whose entry names a main detail (``input`` of a ...StateEntered,
    ``index`` of a MapIteration...), that detail's value, its name left out.
``rest``
    the other keys of the event, as a JSON object, only when there are any.

A Map item's four events take about 100 bytes this way, instead of about 330 as JSON
objects. Entries written before this form have the field ``event`` (the event as a JSON
object) and still read as they did; :func:`decode` takes either.

Every entry of a stream has the same one field name, so a stream node's entries after
its master entry store no field names (the ``SAMEFIELDS`` flag of Redis's listpack).
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.language.interpreter import encode

#: The field of a history entry holding its event (:func:`encode_event`).
FIELD = "e"
#: The field of entries written before the compact form: the event as a JSON object.
OLD_FIELD = "event"

#: ``(type, main detail or None)``, indexed by code. Append only: stored histories
#: hold these codes. The most frequent (a Map item's, a Task's) come first: one digit.
TYPES: tuple[tuple[str, str | None], ...] = (
    ("MapIterationStarted", "index"),  # 0
    ("MapIterationSucceeded", "index"),
    ("PassStateEntered", "input"),
    ("PassStateExited", "output"),
    ("TaskStateEntered", "input"),
    ("TaskStateExited", "output"),
    ("TaskScheduled", "resource"),
    ("TaskStarted", None),
    ("TaskSucceeded", "output"),
    ("TaskFailed", "error"),
    ("ChoiceStateEntered", "input"),  # 10
    ("ChoiceStateExited", "output"),
    ("WaitStateEntered", "input"),
    ("WaitStateExited", "output"),
    ("SucceedStateEntered", "input"),
    ("SucceedStateExited", "output"),
    ("FailStateEntered", "input"),
    ("FailStateExited", "output"),
    ("ParallelStateEntered", "input"),
    ("ParallelStateExited", "output"),
    ("ParallelStateStarted", None),  # 20
    ("ParallelStateSucceeded", None),
    ("ParallelStateFailed", "error"),
    ("MapStateEntered", "input"),
    ("MapStateExited", "output"),
    ("MapStateStarted", "length"),
    ("MapStateSucceeded", None),
    ("MapStateFailed", "error"),
    ("MapIterationFailed", "index"),
    ("MapRunStarted", "mapRunArn"),
    ("MapRunSucceeded", "mapRunArn"),  # 30
    ("MapRunFailed", "mapRunArn"),
    ("MapRunAborted", "mapRunArn"),
    ("MapRunRedriven", "mapRunArn"),
    ("TaskSubmitted", "output"),
    ("TaskTimedOut", "error"),
    ("ExecutionStarted", "input"),
    ("ExecutionSucceeded", "output"),
    ("ExecutionFailed", "error"),
    ("ExecutionTimedOut", "error"),
    ("ExecutionAborted", "error"),  # 40
    ("ExecutionRedriven", "redriveCount"),
    ("EvaluationFailed", "error"),
)
CODES: dict[str, int] = {name: code for code, (name, _) in enumerate(TYPES)}


def base_ms(start: float | str | None) -> int | None:
    """The millisecond base of an execution's relative timestamps, from its record's
    ``start`` (or :attr:`ExecutionInfo.start_time`, the same value)."""
    if start is None:
        return None
    return math.floor(float(start) * 1000)


def encode_event(event: dict[str, Any], base: int | None) -> str:
    """The stored text of ``event`` (see the module doc); ``base`` from :func:`base_ms`,
    None where the writer does not know it (the timestamp is then stored as it is).

    Raises ``States.Runtime`` (:func:`~orchestrator.language.interpreter.encode`) for
    an event that cannot be stored."""
    rest = dict(event)
    kind = rest.pop("type", None)
    if not isinstance(kind, str):
        if "type" in event:
            rest["type"] = kind
        kind = None
    ts = rest.pop("ts", None)
    stored_ts: Any = None
    if isinstance(ts, float) and math.isfinite(ts):
        stored_ts = ts
        if base is not None and abs(ts) < 1e15:
            ms = round(ts * 1000)
            if ms / 1000 == ts:
                stored_ts = ms - base
    elif "ts" in event:
        rest["ts"] = ts
    where = None
    state, key = rest.get("state"), rest.get("key", None)
    if isinstance(state, str):
        if "key" not in rest:
            if "/" not in state:
                where = state
        elif isinstance(key, str) and "/" in key and key.rpartition("/")[2] == state:
            where = key
        if where is not None:
            rest.pop("state")
            rest.pop("key", None)
    parts: list[Any] = [kind, stored_ts, where]
    code = CODES.get(kind) if kind is not None else None
    if code is not None:
        main = TYPES[code][1]
        if main is None:
            parts[0] = code
        elif main in rest and next(iter(rest)) == main:
            # Only as the first detail: the event reads back with its keys in order.
            parts[0] = code
            parts.append(rest.pop(main))
    if rest:
        parts.append(rest)
    elif len(parts) == 3:
        while len(parts) > 1 and parts[-1] is None:
            parts.pop()
    return encode(parts)


def decode(fields: dict[str, str], entry_id: int, base: int | None) -> dict[str, Any] | None:
    """The event of a stream entry (either form), with its ``id``; None when it is
    compact with a relative timestamp and ``base`` is not known."""
    text = fields.get(FIELD)
    if text is None:
        event: dict[str, Any] = json.loads(fields[OLD_FIELD])
    else:
        decoded = decode_text(text, base)
        if decoded is None:
            return None
        event = decoded
    event["id"] = entry_id
    return event


def decode_text(text: str, base: int | None) -> dict[str, Any] | None:
    """The event of a stored text: a compact array, or a JSON object (the old form, as
    histories written as lists hold it); None as :func:`decode`."""
    parts = json.loads(text)
    if isinstance(parts, dict):
        return parts
    n = len(parts)
    kind = parts[0]
    ts = parts[1] if n > 1 else None
    where = parts[2] if n > 2 else None
    event: dict[str, Any] = {}
    main = None
    if isinstance(kind, int):
        kind, main = TYPES[kind]
    if kind is not None:
        event["type"] = kind
    if isinstance(ts, int):
        if base is None:
            return None
        event["ts"] = (base + ts) / 1000
    elif ts is not None:
        event["ts"] = ts
    if where is not None:
        event["state"] = where.rpartition("/")[2]
        if "/" in where:
            event["key"] = where
    if main is not None:
        event[main] = parts[3]
        if n > 4:
            event.update(parts[4])
    elif n > 3:
        event.update(parts[3])
    return event


def event_type(fields: dict[str, str]) -> str | None:
    """The type of a stream entry's event (either form), decoding nothing else of it."""
    text = fields.get(FIELD)
    parts = json.loads(fields[OLD_FIELD] if text is None else text)
    if isinstance(parts, dict):
        kind = parts.get("type")
    elif isinstance(parts, list) and parts:
        kind = parts[0]
        if type(kind) is int and 0 <= kind < len(TYPES):
            kind = TYPES[kind][0]
    else:
        kind = None  # not an entry this module wrote
    return kind if isinstance(kind, str) else None


def stored_text(fields: dict[str, str]) -> str:
    """The stored text of an entry, whichever its form (for measuring)."""
    return fields.get(FIELD) or fields[OLD_FIELD]
