"""The encoding of what the store keeps about steps, timers and leases, in one place.

The layout these functions read and write is documented beside the key schema in
:mod:`orchestrator.engine.keys`: a step hash holds ``{step key}`` -> JSON step record and
``{step key}|s`` -> its status, where a claimed step's status is ``RUNNING:<claim
token>``; the timers set's members are JSON ``[kind, id, step key, attempt]`` and the
leases set's JSON ``[id, step key]``. Modules outside the store decode through here (like
rq's Job owning its hash layout) instead of splitting strings themselves. The interpreter
names what it reads and changes by :class:`~orchestrator.language.slots.Slot`;
:func:`field_name` is where a slot becomes a field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.language.jsontext import dumps
from orchestrator.language.slots import Slot, SlotKind

#: Suffix of the step-hash field holding a step's status.
STATUS_SUFFIX = "|s"

#: The step-hash field of each kind of slot: ``{owner}{suffix}``, then the index for
#: per-branch slots (``Map|i7``). A record is stored under its bare step key, which
#: holds no ``|``; the Lua scripts (join.lua, window.lua, claim.lua) name the same
#: fields.
_SUFFIXES: dict[SlotKind, str] = {
    SlotKind.RECORD: "",
    SlotKind.STATUS: STATUS_SUFFIX,
    SlotKind.VARIABLES: "|vars",
    SlotKind.NEXT_ITEM: "|next",
    SlotKind.TOTAL: "|t",
    SlotKind.REFILL: "|c",
    SlotKind.ENDED: "|n",
    SlotKind.FAILURES: "|f",
    SlotKind.DEFERRED: "|d",
    SlotKind.TOLERANCE: "|tol",
    SlotKind.ITEM_INPUT: "|i",
    SlotKind.RESULT: "|r",
    SlotKind.FAILED_AT: "|x",
}

_KINDS: dict[str, SlotKind] = {suffix[1:]: kind for kind, suffix in _SUFFIXES.items() if suffix}

#: Kinds whose field ends with the branch or item index.
_INDEXED = frozenset({SlotKind.ITEM_INPUT, SlotKind.RESULT, SlotKind.FAILED_AT})


#: Inputs of Map items not started yet per field of the branch hash (``k{j}`` holds the
#: items ``j * ITEM_CHUNK`` to ``(j + 1) * ITEM_CHUNK - 1``): a Map's start writes one
#: field per chunk, and starting items reads one or two.
ITEM_CHUNK = 128

#: Fields of a container's branch hash, by kind: the letter, then the branch or item index.
_BRANCH_LETTERS: dict[SlotKind, str] = {
    SlotKind.RESULT: "r",
    SlotKind.FAILED_AT: "x",
    SlotKind.VARIABLES: "v",
}


def branch_scope(prefix: str) -> tuple[str, int] | None:
    """``(container, index)`` of a branch's step-key prefix (``"Map[3]/"`` -> ``("Map",
    3)``); None for the top level (``""``)."""
    if not prefix.endswith("]/"):
        return None
    container, bracket, index = prefix[:-2].rpartition("[")
    if not bracket or not index.isdigit():
        return None
    return container, int(index)


def branch_location(slot: Slot) -> tuple[str, str] | None:
    """``(container, field of its branch hash)`` of a slot kept in a branch hash: a
    branch's result, variables or failure mark, or an item input's chunk (``k{j}``);
    None for a slot of the step hash."""
    kind = slot.kind
    if kind is SlotKind.ITEM_INPUT:
        return slot.owner, f"k{slot.branch // ITEM_CHUNK}"  # type: ignore[operator]
    if kind is SlotKind.VARIABLES:
        scope = branch_scope(slot.owner)
        return None if scope is None else (scope[0], f"v{scope[1]}")
    letter = _BRANCH_LETTERS.get(kind)
    if letter is None or not slot.owner:  # the top level's failure mark: the step hash
        return None
    return slot.owner, f"{letter}{slot.branch}"


def item_chunk_text(first: int, inputs: list[str]) -> str:
    """A ``k{j}`` field: the JSON texts of the inputs of items ``first``, ``first + 1``..."""
    return "[" + ",".join([str(first), *inputs]) + "]"


def chunk_items(text: str) -> dict[int, str]:
    """Item index -> input JSON text of a ``k{j}`` field."""
    first, *items = json.loads(text)
    return {first + offset: dumps(item) for offset, item in enumerate(items)}


def branch_failure_marks(marks: list[tuple[str, str, str]]) -> list[tuple[Slot, str]]:
    """The failure marks of branch hashes, from ``(container, field, text)``
    (``RedisStore.branch_marks``)."""
    return [
        (Slot.failed_at(container, int(field[1:])), text)
        for container, field, text in marks
        if field.startswith("x") and field[1:].isdigit()
    ]


def field_name(slot: Slot) -> str:
    """The step-hash field that stores ``slot`` (one :func:`branch_location` does not
    put in a branch hash)."""
    suffix = _SUFFIXES[slot.kind]
    if slot.branch is None:
        return f"{slot.owner}{suffix}"
    return f"{slot.owner}{suffix}{slot.branch}"


def slot_of(field: str) -> Slot | None:
    """The slot a step-hash field stores (None for a field of no known layout)."""
    owner, pipe, suffix = field.rpartition("|")
    if not pipe:
        return Slot.record(field)
    kind = _KINDS.get(suffix)
    if kind is not None and kind not in _INDEXED:
        return Slot(kind, owner)
    kind = _KINDS.get(suffix[:1])
    if kind in _INDEXED and suffix[1:].isdigit():
        return Slot(kind, owner, int(suffix[1:]))
    return None


def status_field(step_key: str) -> str:
    """The step-hash field holding ``step_key``'s status."""
    return f"{step_key}{STATUS_SUFFIX}"


def failure_marks(raw: dict[str, str]) -> list[tuple[Slot, str]]:
    """The failure marks of a raw step hash (where a scope failed in an inline state:
    ``[state, input]`` text), in hash order."""
    marks = []
    for name, text in raw.items():
        if "|x" in name:
            slot = slot_of(name)
            if slot is not None and slot.kind is SlotKind.FAILED_AT:
                marks.append((slot, text))
    return marks


def base_status(raw: str | None) -> str:
    """A stored step status without its claim token (``RUNNING:<t>`` -> ``RUNNING``;
    ``""`` for none)."""
    return (raw or "").partition(":")[0]


def claim_token(raw: str | None) -> str | None:
    """The claim token of a stored ``RUNNING:<token>`` status (None if unclaimed)."""
    _, colon, token = (raw or "").partition(":")
    return token if colon else None


@dataclass(frozen=True)
class LiveStep:
    """One active step of an execution, decoded from its step hash."""

    key: str
    status: str
    """Its status without the claim token (``""`` if the hash has none)."""
    claim: str | None
    record: dict[str, Any]
    """Its step record (state, input, attempt, token, entered...)."""


def record_texts(raw: dict[str, str]) -> dict[str, str]:
    """Step key -> step record text of the active steps of a raw step hash (statuses and
    container counters aside)."""
    return {key: value for key, value in raw.items() if "|" not in key}


def step_record(raw: dict[str, str], step_key: str) -> dict[str, Any] | None:
    """The decoded record of ``step_key`` in a raw step hash (None if it has none, or
    not a JSON object)."""
    text = raw.get(step_key) if "|" not in step_key else None
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def live_steps(raw: dict[str, str]) -> list[LiveStep]:
    """The active steps of a raw step hash (statuses and container counters aside),
    in hash order; a record that is not a JSON object is skipped."""
    steps = []
    for key in record_texts(raw):
        record = step_record(raw, key)
        if record is None:
            continue
        status = raw.get(status_field(key))
        steps.append(LiveStep(key, base_status(status), claim_token(status), record))
    return steps


def step_statuses(raw: dict[str, str]) -> dict[str, str]:
    """Step key -> status (without claim token) of every step (not container counter)
    that has a status field in a raw step hash."""
    found = {}
    for name, value in raw.items():
        if name.endswith(STATUS_SUFFIX):
            key = name[: -len(STATUS_SUFFIX)]
            if "|" not in key:
                found[key] = base_status(value)
    return found


def lease_member(execution_id: str, step_key: str) -> str:
    """The member naming a step in the leases set."""
    return dumps([execution_id, step_key])


def parse_lease_member(member: str) -> tuple[str, str]:
    """``(execution id, step key)`` of a leases-set member."""
    execution_id, step_key = json.loads(member)
    return str(execution_id), str(step_key)


def timer_member(kind: str, execution_id: str, step_key: str, attempt: int) -> str:
    """The member naming a timer in the timers set."""
    return dumps([kind, execution_id, step_key, attempt])


def map_run_fields(run: dict[str, Any], key: str, now: float) -> dict[str, str]:
    """The first fields of the Map Run record of Distributed Map ``key`` (``run``: its
    step record's ``run``), started at ``now``."""
    return {
        "run": run["id"],
        "arn": run["arn"],
        "label": run["label"],
        "key": key,
        "type": run.get("type", "STANDARD"),
        "status": "RUNNING",
        "start": repr(now),
        "max": str(run["max"]),
        "next": "0",
    }


def parse_timer_member(member: str) -> tuple[str, str, str, int]:
    """``(kind, execution id, step key, attempt)`` of a timers-set member."""
    kind, execution_id, step_key, attempt = json.loads(member)
    return str(kind), str(execution_id), str(step_key), int(attempt)


def counter_field(kind: str, workflow: str) -> str:
    """The field of the execution counters hash counting ``kind`` (``started``,
    ``redriven`` or an end status) for ``workflow``: kinds hold no ``|``, workflows may."""
    return f"{kind}|{workflow}"


def parse_counter_field(field: str) -> tuple[str, str]:
    """``(kind, workflow)`` of an execution counters field."""
    kind, _, workflow = field.partition("|")
    return kind, workflow
