"""The context of a running activity: :func:`activity_context`.

Inside an activity that a workflow step runs, ``activity_context()`` tells the activity
which execution, state, step and attempt it serves, its task token (a
``.waitForTaskToken`` task's), lets it send heartbeats and tells it when it was cancelled:

.. code-block:: python

    from orchestrator import ActivityCancelled, activity, activity_context

    @activity("render")
    def render(job: dict) -> dict:
        ctx = activity_context()
        for frame in job["frames"]:
            ctx.heartbeat({"frame": frame})  # raises ActivityCancelled once cancelled
            draw(frame)
        return {"frames": len(job["frames"])}

A heartbeat pushes back the Task's ``HeartbeatSeconds`` timer (the same timer
``send_task_heartbeat`` pushes back for a callback task), so an ordinary Task with
``HeartbeatSeconds`` stays alive as long as its activity heartbeats. A step is cancelled
when it is no longer this worker's to finish: its Task timed out (``TimeoutSeconds``,
``HeartbeatSeconds``), its execution was stopped or ended, or the Parallel/Map it runs in
ended (a sibling failed it). :mod:`orchestrator.engine.leases` notices it within
:data:`orchestrator.engine.leases.WATCH_INTERVAL_S` and sets :attr:`cancelled`; what the
activity returns afterwards is never recorded (the commit's guards refuse it).

Activities that never call ``activity_context()`` run exactly as before.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from orchestrator.engine.records import timer_member
from orchestrator.errors import ActivityCancelled
from orchestrator.language.interpreter import TimerKind, state_name
from orchestrator.language.jsontext import checked_dumps

if TYPE_CHECKING:
    from orchestrator.engine.store import RedisStore

#: Longest time between two pushes of a Task's heartbeat timer, however often the activity
#: calls ``heartbeat()`` (a quarter of ``HeartbeatSeconds`` when that is shorter).
HEARTBEAT_THROTTLE_S = 1.0

_current: ContextVar[ActivityContext | None] = ContextVar("orchestrator_activity", default=None)


class ActivityContext:
    """What a running activity knows of the step it runs (see the module doc)."""

    def __init__(
        self,
        execution_id: str,
        step_key: str,
        attempt: int,
        task_token: str | None = None,
        heartbeat_seconds: float | None = None,
        store: RedisStore | None = None,
        resource: str | None = None,
    ) -> None:
        self.execution_id = execution_id
        """The execution's id (its name)."""
        self.step_key = step_key
        """The step's key: the state's name, with its Parallel branch or Map item path
        for a state inside one (``Fan[1]/Charge``: branch 1 of the Parallel ``Fan``)."""
        self.state = state_name(step_key)
        """The Task state's name."""
        self.attempt = attempt
        """Retries made before this attempt (``$$.State.RetryCount``): 0 on the first."""
        self.task_token = task_token
        """The task token of a ``.waitForTaskToken`` task, else None."""
        self.heartbeat_seconds = heartbeat_seconds
        """The Task's ``HeartbeatSeconds`` (evaluated), or None."""
        self.resource = resource
        """The Task state's ``Resource`` (a built-in integration reads which one it
        serves from it: ``aws-sdk:SERVICE:ACTION``), or None when it is not known."""
        self.heartbeat_details: Any = None
        """The ``details`` of the last heartbeat (kept in this process only)."""
        self.cancel_reason: str | None = None
        """Why the activity was cancelled, once it was."""
        self._store = store
        self._cancelled = threading.Event()
        self._last_push = time.monotonic()

    @property
    def cancelled(self) -> bool:
        """Whether the step was cancelled (see the module doc); true at once, and for good."""
        return self._cancelled.is_set()

    def heartbeat(self, details: Any = None) -> None:
        """Tell the orchestrator that the activity is making progress.

        Pushes back the Task's ``HeartbeatSeconds`` timer (at most once per
        :data:`HEARTBEAT_THROTTLE_S`; no Redis call at all for a Task without
        ``HeartbeatSeconds``). ``details`` (JSON) are kept as :attr:`heartbeat_details`.

        Raises:
            ActivityCancelled: the step was cancelled; the activity should stop.
            TypeError: ``details`` is not JSON-serializable.
        """
        self._raise_if_cancelled()
        if details is not None:
            try:
                checked_dumps(details)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"heartbeat details are not JSON-serializable: {exc}") from None
        self.heartbeat_details = details
        seconds = self.heartbeat_seconds
        if seconds and self._store is not None:
            now = time.monotonic()
            if now - self._last_push >= min(HEARTBEAT_THROTTLE_S, seconds / 4):
                self._last_push = now
                push_heartbeat(self._store, self.execution_id, self.step_key, self.attempt, seconds)
        self._raise_if_cancelled()

    def cancel(self, reason: str) -> None:
        """Mark the activity cancelled (the worker's lease keeper does, see the module doc)."""
        if not self._cancelled.is_set():
            self.cancel_reason = reason
            self._cancelled.set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds until the activity is cancelled; whether it is
        (a sleeping activity's cancellable sleep)."""
        return self._cancelled.wait(timeout)

    def _raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise ActivityCancelled(
                f"activity of {self.execution_id}/{self.step_key} cancelled: {self.cancel_reason}"
            )

    def __repr__(self) -> str:
        return (
            f"ActivityContext(execution_id={self.execution_id!r}, state={self.state!r}, "
            f"step_key={self.step_key!r}, attempt={self.attempt}, cancelled={self.cancelled})"
        )


def activity_context() -> ActivityContext:
    """The context of the activity running in this thread (see the module doc).

    Raises:
        RuntimeError: called outside an activity that a workflow step runs (a function
            called directly, or its Celery task sent by hand).
    """
    context = _current.get()
    if context is None:
        raise RuntimeError(
            "activity_context() is only available inside an activity that a workflow step "
            "runs (not in a function called directly or a task sent by hand)"
        )
    return context


def current_context() -> ActivityContext | None:
    """The running activity's context, or None outside one."""
    return _current.get()


@contextlib.contextmanager
def running(context: ActivityContext) -> Iterator[ActivityContext]:
    """``context`` is the running activity's while the block runs."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def push_heartbeat(
    store: RedisStore, execution_id: str, step_key: str, attempt: int, seconds: float
) -> bool:
    """Push back a Task attempt's ``HeartbeatSeconds`` timer to ``seconds`` from now;
    False when it is no longer pending (it fired: the Task timed out, or it ended)."""
    member = timer_member(TimerKind.HEARTBEAT, execution_id, step_key, attempt)
    return store.push_back_timer(member, time.time() + seconds)
