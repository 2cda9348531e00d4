"""Crash hooks and a message counter for the outbox's end-to-end tests
(tests/e2e/test_outbox.py), loaded into worker and beat subprocesses through
``ORCHESTRATOR_TASK_MODULES``; never imported by the test process itself.

* A dispatch whose parameters hold ``"kill_before_publish": true`` kills the process
  group of the process about to publish it (its transition is committed, its message not
  sent), once per execution.
* Beat, while the key ``test:kill-beat`` exists, kills its process group when it is
  about to send its second ``orchestrator.dispatch`` message of a burst: every transition
  of the burst is committed, none of the messages left beat.
* Every message a worker receives counts under ``test:received``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import signals

import tests.activities  # noqa: F401 - the activities the workflows run
from orchestrator.engine import commit, timers
from orchestrator.engine.store import get_store
from tests.activities import bump, scoped_key


def _die() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


_publish = commit.publish


def _publish_or_die(interp: Any, execution_id: str, dispatches: Any, **kwargs: Any) -> None:
    dispatches = list(dispatches)
    for dispatch in dispatches:
        params = dispatch.params
        if isinstance(params, dict) and params.get("kill_before_publish"):
            if get_store().client.set(scoped_key("killed", execution_id), "1", nx=True):
                _die()
    _publish(interp, execution_id, dispatches, **kwargs)


commit.publish = _publish_or_die  # type: ignore[assignment]

_apply_async = timers.dispatch_task.apply_async
_calls = [0]


def _apply_or_die(*args: Any, **kwargs: Any) -> Any:
    if get_store().client.exists(scoped_key("kill-beat")):
        _calls[0] += 1
        if _calls[0] >= 2:
            _die()
    return _apply_async(*args, **kwargs)


timers.dispatch_task.apply_async = _apply_or_die  # type: ignore[method-assign]


@signals.task_received.connect
def _received(**_: Any) -> None:
    bump("received")
