"""Compile state machines into Celery canvas: pure, no Redis (the app is a parameter).

A straight run of Task states (A -> B -> C, each the ``Next`` of the one before) becomes
one Celery chain, so consecutive tasks hand over to each other without the orchestrator
publishing in between. Runs end at continuation points — Choice, Pass, Wait, Parallel,
Map, Succeed, Fail, a Catch target or the end — where the runtime takes over, evaluates
the inline states and publishes the next run; a callback Task is a run of its own.
Several runs that start together (the branches of a Parallel, the items of a Map) go out
as one flat group.

Canvas is never nested (no chord in a chain, no chain of chords): joins are counters in
the orchestrator's Redis state, which avoids Celery's documented lost-callback and message
bloat failure modes of nested canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery, chain, group, signature
from celery.canvas import Signature

from orchestrator.language.definition import State, TaskState

#: Longest chain compiled in one go: every message carries the rest of its chain, so
#: a long run would make the first messages large. The runtime continues past it.
MAX_RUN_LENGTH = 25


@dataclass(frozen=True)
class RunStep:
    """One Task state of a run."""

    step_key: str
    activity: str


def compile_run(
    states: Mapping[str, State],
    prefix: str,
    start: str,
    first_activity: str,
    resolve: Callable[[TaskState], str],
) -> list[RunStep]:
    """The straight run of Task states that starts at Task state ``start``.

    The first step's activity is given (it may have come from run-time parameters); the
    run stops before a Task whose activity is only known at run time
    (``arn:aws:states:::lambda:invoke``).

    A callback Task (``.waitForTaskToken``) runs alone: a chained task is handed its
    input as the return value of the task before it, which Celery's ``task-succeeded``
    event (Flower's "result") shows, and a callback task's input holds its task token.
    Published by the runtime instead, the token stays out of every event; and nothing
    after a callback Task could follow it in a chain anyway, since it waits.
    """
    run = [RunStep(prefix + start, first_activity)]
    seen = {start}
    state = states[start]
    name = None if getattr(state, "end", True) else getattr(state, "next", None)
    if is_callback(state):
        name = None
    while name is not None and name not in seen and len(run) < MAX_RUN_LENGTH:
        state = states[name]
        if (
            not isinstance(state, TaskState)
            or state.resource.startswith(_DYNAMIC)
            or is_callback(state)
        ):
            break
        seen.add(name)
        run.append(RunStep(prefix + name, resolve(state)))
        name = None if state.end else state.next
    return run


_DYNAMIC = "arn:aws:states:::"


def is_callback(state: State) -> bool:
    """Whether ``state`` is a Task of the callback pattern (it gets a task token)."""
    return isinstance(state, TaskState) and state.resource.endswith(".waitForTaskToken")


def run_signature(
    run: Sequence[RunStep],
    first_input: Any,
    execution_id: str,
    queue: str,
    app: Celery | None = None,
) -> Signature:
    """The Celery chain (or lone signature) for a run.

    The first task gets its input explicitly; every later one gets the previous task's
    return value prepended by Celery, so all tasks are called as
    ``(input, execution_id, step_key)`` — which is what Flower shows. ``app`` binds the
    signatures to an app (Celery's "current app" is per thread, and a timer thread's
    would be Celery's unconfigured default).
    """
    first, *rest = run
    head = signature(
        first.activity, args=(first_input, execution_id, first.step_key), queue=queue, app=app
    )
    if not rest:
        return head
    tail = [
        signature(step.activity, args=(execution_id, step.step_key), queue=queue, app=app)
        for step in rest
    ]
    return chain(head, *tail, app=app)


def fan_out(signatures: Sequence[Signature], app: Celery | None = None) -> Signature:
    """One signature for runs that start together: a flat group (never nested)."""
    if len(signatures) == 1:
        return signatures[0]
    return group(list(signatures), app=app)
