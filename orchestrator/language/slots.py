"""What a transition reads and changes about an execution's steps, in domain terms.

A transition changes more than step records and statuses: a Parallel or Map keeps its
progress (items started, branches ended, failures tolerated), the inputs of the items it
has not started, its branches' results, the variables each scope assigned and where a
scope failed (for redrive). The interpreter names each of these by a :class:`Slot`; how
and where a slot is stored is the engine's business (``orchestrator.engine.records``
maps a slot to its step-hash field), so the language never formats a storage name.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class SlotKind(IntEnum):
    """What a slot holds (its owner is a step key, a container's or a scope's)."""

    RECORD = 1
    """A step's record (owner: the step key)."""
    STATUS = 2
    """A step's status (owner: the step key)."""
    VARIABLES = 3
    """The variables a scope assigned, a JSON object (owner: the scope's step-key prefix,
    ``""`` for the top level, ``"Map[3]/"`` for an item)."""
    NEXT_ITEM = 4
    """A Map's next item to start (owner: the Map's step key)."""
    TOTAL = 5
    """A container's branch or item count."""
    REFILL = 6
    """Items an ending iteration of an unbounded Map starts."""
    ENDED = 7
    """A container's ended-branch counter (incremented by the engine's join)."""
    FAILURES = 8
    """Failed items a Map with a failure tolerance has tolerated."""
    ITEM_INPUT = 9
    """The input of a Map item not started yet (branch: the item)."""
    RESULT = 10
    """A branch's or item's result (branch: the branch or item)."""
    FAILED_AT = 11
    """Where a scope failed in an inline state, ``[state, input]``, so that a redrive can
    enter it again (owner: the container, ``""`` for the top level; branch: its index)."""
    DEFERRED = 13
    """Item starts of a Map left to a ``refill`` timer (a transition spent its start
    budget)."""
    TOLERANCE = 14
    """A Map's tolerated failures as evaluated when it started, ``[count, percentage]``
    (each null when not set): beside its record, which holds the Map's whole input, so
    that a failing item does not read and decode that."""
    BRANCHES = 12
    """Every per-branch slot of a container at once (its items' inputs, its branches'
    results, variables and failure marks): only ever deleted, when the container ends or
    starts over, so that forgetting a Map of any size is one change."""


# The constructors build the tuple directly: a transition makes a slot for each thing it
# reads or writes (NamedTuple's generated __new__ and the enum's class attribute lookups
# cost about 3x as much).
_new = tuple.__new__
_RECORD, _STATUS, _VARIABLES = SlotKind.RECORD, SlotKind.STATUS, SlotKind.VARIABLES
_NEXT_ITEM, _TOTAL, _REFILL = SlotKind.NEXT_ITEM, SlotKind.TOTAL, SlotKind.REFILL
_ENDED, _FAILURES = SlotKind.ENDED, SlotKind.FAILURES
_ITEM_INPUT, _RESULT, _FAILED_AT = SlotKind.ITEM_INPUT, SlotKind.RESULT, SlotKind.FAILED_AT
_BRANCHES, _DEFERRED = SlotKind.BRANCHES, SlotKind.DEFERRED
_TOLERANCE = SlotKind.TOLERANCE


class Slot(NamedTuple):
    """One thing a transition reads or changes: a kind, its owner and, for per-branch
    slots, the branch or item index. Immutable and hashable (transitions key their
    changes by it; a tuple, as a transition of a large Map handles thousands)."""

    kind: SlotKind
    owner: str
    branch: int | None = None
    """The branch or item index of a per-branch slot (``ITEM_INPUT``, ``RESULT``,
    ``FAILED_AT``). (Not ``index``: that is a tuple's method.)"""

    @classmethod
    def record(cls, key: str) -> Slot:
        """The record of step ``key``."""
        return _new(cls, (_RECORD, key, None))

    @classmethod
    def status(cls, key: str) -> Slot:
        """The status of step ``key``."""
        return _new(cls, (_STATUS, key, None))

    @classmethod
    def variables(cls, prefix: str) -> Slot:
        """The variables of the scope whose step keys start with ``prefix``."""
        return _new(cls, (_VARIABLES, prefix, None))

    @classmethod
    def next_item(cls, container: str) -> Slot:
        """The next item a Map starts."""
        return _new(cls, (_NEXT_ITEM, container, None))

    @classmethod
    def total(cls, container: str) -> Slot:
        """A container's branch or item count."""
        return _new(cls, (_TOTAL, container, None))

    @classmethod
    def refill(cls, container: str) -> Slot:
        """Items an ending iteration of an unbounded Map starts."""
        return _new(cls, (_REFILL, container, None))

    @classmethod
    def ended(cls, container: str) -> Slot:
        """A container's ended-branch counter."""
        return _new(cls, (_ENDED, container, None))

    @classmethod
    def failures(cls, container: str) -> Slot:
        """Failed items a Map has tolerated."""
        return _new(cls, (_FAILURES, container, None))

    @classmethod
    def item_input(cls, container: str, index: int) -> Slot:
        """The input of Map item ``index``, kept until the item starts."""
        return _new(cls, (_ITEM_INPUT, container, index))

    @classmethod
    def result(cls, container: str, index: int) -> Slot:
        """The result of branch or item ``index``."""
        return _new(cls, (_RESULT, container, index))

    @classmethod
    def deferred(cls, container: str) -> Slot:
        """Item starts of a Map left to a ``refill`` timer."""
        return _new(cls, (_DEFERRED, container, None))

    @classmethod
    def tolerance(cls, container: str) -> Slot:
        """A Map's tolerated failures, ``[count, percentage]``."""
        return _new(cls, (_TOLERANCE, container, None))

    @classmethod
    def branches(cls, container: str) -> Slot:
        """Every per-branch slot of ``container`` (to delete them all at once)."""
        return _new(cls, (_BRANCHES, container, None))

    @classmethod
    def failed_at(cls, container: str, index: int) -> Slot:
        """Where branch ``index`` of ``container`` (the top level: ``""``, 0) failed."""
        return _new(cls, (_FAILED_AT, container, index))


#: A container's progress slots, without the per-branch ones.
CONTAINER_PROGRESS = (
    SlotKind.ENDED,
    SlotKind.TOTAL,
    SlotKind.NEXT_ITEM,
    SlotKind.FAILURES,
    SlotKind.REFILL,
    SlotKind.DEFERRED,
    SlotKind.TOLERANCE,
)
