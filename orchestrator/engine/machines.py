"""Parsed definitions and the interpreters built from them, cached by definition hash.

A worker runs steps of many executions of few definitions: each definition is parsed
once per process, and an interpreter is built per step from the cached parse.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orchestrator.config import get_settings
from orchestrator.engine import activities
from orchestrator.engine.lru import LruCache
from orchestrator.engine.store import RedisStore
from orchestrator.language.definition import StateMachine, parse_definition
from orchestrator.language.interpreter import (
    ExecutionInfo,
    Interpreter,
)
from orchestrator.language.tokens import new_token

logger = logging.getLogger("orchestrator.engine.machines")

#: Parsed definitions by content hash, and whether each reads ``$$``.
_machines: LruCache[str, tuple[StateMachine, bool]] = LruCache(256)
#: The hashes of the definitions of EXPRESS children (:data:`EXPRESS_FIELD`): one per
#: Distributed Map definition run with them, however many children.
_express: set[str] = set()

#: The top-level field that marks the definition of a Distributed Map's EXPRESS children
#: (``"ExecutionType": "EXPRESS"``, orchestrator/engine/maprun.py): taken out before the
#: definition is parsed, it makes their interpreters keep no state history.
EXPRESS_FIELD = "ExecutionType"

#: The longest an EXPRESS execution runs (Step Functions' Express limit: 5 minutes);
#: past it the execution times out with ``States.Timeout``.
EXPRESS_MAX_SECONDS = 300


def express_definition(
    asl: dict[str, Any], max_seconds: int = EXPRESS_MAX_SECONDS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition an EXPRESS execution runs, to parse, and the same to store.

    Express semantics, where they matter here: the execution times out after
    ``max_seconds`` at most (its own ``TimeoutSeconds`` if shorter), and its history
    keeps only its start and end: the stored text carries :data:`EXPRESS_FIELD`, which
    :func:`load_machine` takes out and remembers, so workers build express interpreters.
    """
    timeout = asl.get("TimeoutSeconds")
    plain = {**asl, "TimeoutSeconds": min(timeout or max_seconds, max_seconds)}
    return plain, {**plain, EXPRESS_FIELD: "EXPRESS"}


def load_machine(store: RedisStore, execution_id: str, def_hash: str) -> tuple[StateMachine, bool]:
    """The execution's parsed definition (cached by hash), and whether it reads ``$$``."""
    cached = _machines.get(def_hash)
    if cached is not None:
        return cached
    text = store.definition_text(execution_id, def_hash)
    if text is None:
        raise LookupError(f"definition {def_hash} of execution {execution_id!r} expired")
    asl = json.loads(text)
    if asl.pop(EXPRESS_FIELD, None) == "EXPRESS":
        _express.add(def_hash)
    machine = parse_definition(asl)
    # Only definitions that can read the context object ("$$" in JSONPath and intrinsic
    # arguments, $states.context in JSONata) need the execution input there; the others
    # (most: "States.ALL" in a Catch is no reason) are spared fetching it every step.
    return _machines.put(def_hash, (machine, "$$" in text or "$states" in text))


def interpreter_for(
    store: RedisStore,
    execution_id: str,
    name: str,
    workflow: str,
    start: str,
    def_hash: str,
    priority: str | int | None = None,
) -> Interpreter:
    """An interpreter for a stored execution (``priority``: its record's)."""
    machine, needs_input = load_machine(store, execution_id, def_hash)
    execution_input = None
    if needs_input:
        raw = store.execution_input_text(execution_id)
        execution_input = json.loads(raw) if raw is not None else None
    express = def_hash in _express
    info = ExecutionInfo(
        execution_id,
        name,
        workflow,
        float(start),
        execution_input,
        express,
        priority=None if priority is None else int(priority),
    )
    return make_interpreter(machine, info)


def make_interpreter(machine: StateMachine, info: ExecutionInfo) -> Interpreter:
    """An interpreter wired to the registered activities and the settings."""
    return Interpreter(
        machine,
        info,
        activities.resolve,
        resolve_name=activities.resolve_name,
        max_inline_states=get_settings().max_inline_states,
        max_result_bytes=get_settings().max_input_bytes,
        max_variables_bytes=get_settings().max_variables_bytes,
        max_history_events=get_settings().max_history_events,
        new_token=lambda: new_token(info.execution_id),
    )


def interpreter_from_record(store: RedisStore, execution_id: str) -> Interpreter | None:
    """An interpreter for ``execution_id``, read from its record (None if unknown)."""
    meta = store.execution_meta(execution_id)
    if meta is None:
        return None
    return interpreter_for(store, execution_id, *meta)
