"""Activities for the activity-context, heartbeat and cancellation tests.

Their bookkeeping lives in Redis under ``{prefix}:ctl:...`` (:mod:`tests.control_activities`),
shared with worker subprocesses and deleted with the run's keys.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from orchestrator import ActivityCancelled, activity, activity_context
from tests.control_activities import cbump, cset

#: Longest any of these activities runs, whatever it is asked (a test that fails must not
#: leave one running for ever).
LIMIT_S = 90.0


class Flaky(Exception):
    """Raised by ``cx_probe`` on its first attempt when asked to."""


@activity("cx_probe")
def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Store (under ``ctx/<tag>/<state>``) and return what ``activity_context()`` says."""
    ctx = activity_context()
    seen = {
        "execution_id": ctx.execution_id,
        "state": ctx.state,
        "step_key": ctx.step_key,
        "attempt": ctx.attempt,
        "task_token": ctx.task_token,
        "cancelled": ctx.cancelled,
        "heartbeat_seconds": ctx.heartbeat_seconds,
    }
    cset("ctx", request["tag"], ctx.state, value=json.dumps(seen))
    if request.get("fail_first") and ctx.attempt == 0:
        raise Flaky("first attempt")
    return seen


@activity("cx_sleep_then_write")
def sleep_then_write(request: dict[str, Any]) -> str:
    """Sleep ``seconds`` (never looking at its context), then write a side effect."""
    cset("pid", request["tag"], value=str(os.getpid()))
    cset("started", request["tag"])
    time.sleep(min(float(request["seconds"]), LIMIT_S))
    cbump("side", request["tag"])
    return "done"


@activity("cx_heartbeat")
def heartbeat_for(request: dict[str, Any]) -> dict[str, int]:
    """Heartbeat every 0.2 s for ``seconds``."""
    ctx = activity_context()
    deadline = time.monotonic() + min(float(request["seconds"]), LIMIT_S)
    beats = 0
    while time.monotonic() < deadline:
        ctx.heartbeat({"beat": beats})
        beats += 1
        time.sleep(0.2)
    return {"beats": beats}


@activity("cx_until_cancelled")
def until_cancelled(request: dict[str, Any]) -> str:
    """Heartbeat until cancelled; record the cancellation (its reason, and how long after
    the start it came) and let ``ActivityCancelled`` end the activity."""
    ctx = activity_context()
    cset("started", request["tag"])
    started = time.monotonic()
    try:
        while time.monotonic() - started < LIMIT_S:
            ctx.heartbeat()
            time.sleep(0.05)
    except ActivityCancelled:
        cset("cancelled", request["tag"], value=str(ctx.cancel_reason))
        cset("cancelled_after", request["tag"], value=repr(time.monotonic() - started))
        raise
    return "never cancelled"


@activity("cx_poll_cancelled")
def poll_cancelled(request: dict[str, Any]) -> str:
    """Never heartbeat; watch ``cancelled`` and return once it is true."""
    ctx = activity_context()
    cset("started", request["tag"])
    if ctx.wait_cancelled(min(float(request.get("seconds", LIMIT_S)), LIMIT_S)):
        cset("cancelled", request["tag"], value=str(ctx.cancel_reason))
        return "cancelled"
    return "never cancelled"


@activity("cx_mark")
def mark(request: dict[str, Any]) -> str:
    """Count a run (``ran/<tag>``)."""
    cbump("ran", request["tag"])
    return "ran"
