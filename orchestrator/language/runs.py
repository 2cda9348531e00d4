"""Straight runs: the Task states that follow a dispatched Task when each one succeeds.

When a Task state succeeds and its ``Next`` is another Task state with a resource known
before run time, the interpreter's decision after it is to dispatch that next Task; a run
is that sequence of decisions, planned ahead so that the engine can send it as one Celery
chain (consecutive tasks hand over to each other without a publish in between). The plan
is only a proposal: after each task the interpreter decides again (a Retry, a Catch, a
stopped execution change the next step), and a chained task whose step was not decided is
stopped before it runs (:class:`orchestrator.engine.publisher.Handover`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.language.definition import State, TaskState
from orchestrator.language.stepkeys import escape_name

#: Longest run planned in one go: every message carries the rest of its chain, so a long
#: run would make the first messages large. The next run is planned when it ends.
MAX_RUN_LENGTH = 25

#: Resources whose activity is known only from run-time parameters (Lambda's invoke).
_DYNAMIC = "arn:aws:states:::"


@dataclass(frozen=True)
class RunStep:
    """One Task state of a run."""

    step_key: str
    activity: str


def is_callback(state: State) -> bool:
    """Whether ``state`` is a Task of the callback pattern (it gets a task token)."""
    return isinstance(state, TaskState) and state.resource.endswith(".waitForTaskToken")


def straight_run(
    states: Mapping[str, State],
    prefix: str,
    start: str,
    first_activity: str,
    resolve: Callable[[TaskState], str],
) -> list[RunStep]:
    """The run that starts with the dispatched Task state ``start`` (its activity given:
    it may have come from run-time parameters).

    The run stops before a Task whose activity is only known at run time
    (``arn:aws:states:::lambda:invoke``), and a callback Task (``.waitForTaskToken``)
    runs alone: a chained task is handed its input as the return value of the task
    before it, which Celery's ``task-succeeded`` event (Flower's "result") shows, and a
    callback task's input holds its task token; nothing after it could follow it in a
    chain anyway, since it waits.
    """
    run = [RunStep(prefix + escape_name(start), first_activity)]
    seen = {start}
    state = states[start]
    name = (
        None if getattr(state, "end", True) or is_callback(state) else getattr(state, "next", None)
    )
    while name is not None and name not in seen and len(run) < MAX_RUN_LENGTH:
        state = states[name]
        if (
            not isinstance(state, TaskState)
            or state.resource.startswith(_DYNAMIC)
            or is_callback(state)
        ):
            break
        seen.add(name)
        run.append(RunStep(prefix + escape_name(name), resolve(state)))
        name = None if state.end else state.next
    return run
