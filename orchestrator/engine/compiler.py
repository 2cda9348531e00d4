"""Compile the interpreter's runs into Celery canvas: pure, no Redis (the app is a parameter).

A straight run of Task states (A -> B -> C, each the ``Next`` of the one before; planned
by :func:`orchestrator.language.runs.straight_run`) becomes one Celery chain, so
consecutive tasks hand over to each other without the orchestrator publishing in between.
Runs end at continuation points — Choice, Pass, Wait, Parallel, Map, Succeed, Fail, a
Catch target or the end — where the interpreter evaluates the inline states and the engine
publishes the next run; a callback Task is a run of its own. Several runs that start
together (the branches of a Parallel, the items of a Map) go out as one flat group.

Canvas is never nested (no chord in a chain, no chain of chords): joins are counters in
the orchestrator's Redis state, which avoids Celery's documented lost-callback and message
bloat failure modes of nested canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, chain, group, signature
from celery.canvas import Signature

from orchestrator.language.runs import RunStep


def run_signature(
    run: Sequence[RunStep],
    first_input: Any,
    execution_id: str,
    queue: str | Callable[[str], str],
    app: Celery | None = None,
    priority: int | None = None,
) -> Signature:
    """The Celery chain (or lone signature) for a run.

    ``queue``: every task's queue, or a function giving an activity's; each task of a
    chain carries its own (Celery sends the next task where its signature says), so a
    run whose activities are on different queues goes to each in turn.

    The first task gets its input explicitly; every later one gets the previous task's
    return value prepended by Celery, so all tasks are called as
    ``(input, execution_id, step_key)`` — which is what Flower shows. ``app`` binds the
    signatures to an app (Celery's "current app" is per thread, and a timer thread's
    would be Celery's unconfigured default). ``priority``: every task's message priority
    (the broker's scale), each signature carrying it for the task Celery sends next.
    """
    queue_of = (lambda _: queue) if isinstance(queue, str) else queue
    first, *rest = run
    head = signature(
        first.activity,
        args=(first_input, execution_id, first.step_key),
        queue=queue_of(first.activity),
        app=app,
        priority=priority,
    )
    if not rest:
        return head
    tail = [
        signature(
            step.activity,
            args=(execution_id, step.step_key),
            queue=queue_of(step.activity),
            app=app,
            priority=priority,
        )
        for step in rest
    ]
    return chain(head, *tail, app=app)


def fan_out(signatures: Sequence[Signature], app: Celery | None = None) -> Signature:
    """One signature for runs that start together: a flat group (never nested)."""
    if len(signatures) == 1:
        return signatures[0]
    return group(list(signatures), app=app)
