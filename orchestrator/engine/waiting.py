"""Publishing the steps that waited for a global activity limit (:mod:`.limits`).

A waiting step is not published; what ends its wait publishes it: the worker whose step
gave its permit back (:func:`release_step`), the timer process taking back lapsed
permits (:func:`recover_permits`) or firing a rate-limited step's ``limit`` timer
(:func:`fire_rate_timers`). A step handed a permit is in the outbox before it is
published (or, its granter dead before that write, put there by the timer process when
its grant record comes due), so a process dying before it published the step loses
nothing: the reconciler sends it within the lease.
"""

from __future__ import annotations

import logging
import time

from orchestrator.config import get_settings
from orchestrator.engine import limits
from orchestrator.engine.machines import interpreter_for
from orchestrator.engine.publisher import publish
from orchestrator.engine.records import parse_lease_member, parse_timer_member
from orchestrator.engine.store import RedisStore
from orchestrator.language.interpreter import StepRecord

logger = logging.getLogger("orchestrator.engine.waiting")


def release_step(store: RedisStore, activity: str, execution_id: str, step_key: str) -> None:
    """A step of ``activity`` ended, or can never run: its permit (if the activity has a
    ``max_concurrency``) goes to the first waiting step, published here. Never raises:
    the timer process takes back a permit whose release failed."""
    try:
        granted = limits.release(store, activity, execution_id, step_key, place=False)
    except Exception:  # noqa: BLE001 - the permit lapses and the timer process hands it on
        logger.warning(
            "could not release the permit of %s/%s", execution_id, step_key, exc_info=True
        )
        return
    publish_granted(store, granted)


def recover_permits(store: RedisStore, now: float) -> int:
    """Take back lapsed permits and publish the steps they go to; how many went."""
    granted = limits.recover_permits(store, now, place=False)
    publish_granted(store, granted)
    return len(granted)


def publish_granted(store: RedisStore, members: list[str]) -> None:
    """Publish waiting steps (lease members) handed a permit, each put in its outbox
    first, in the round trip that reads it (the grant left that to its publisher). One
    that can no longer run (its execution stopped, or it moved on) passes the permit
    to the next."""
    pending = list(members)
    while pending:
        member = pending.pop(0)
        try:
            pending += _publish_granted(store, member)
        except Exception:  # noqa: BLE001 - its grant record puts it in the outbox
            logger.warning("could not publish %s; the outbox will", member, exc_info=True)


def _publish_granted(store: RedisStore, member: str) -> list[str]:
    execution_id, step_key = parse_lease_member(member)
    due = time.time() + get_settings().lease_seconds
    with limits.permit_held():  # no second round trip to learn it
        if _publish_scheduled(store, execution_id, step_key, outbox_due=due):
            return []
    status, record_text = store.step_state(execution_id, step_key)
    if status is not None and status.startswith("RUNNING"):
        return []  # running after all (it holds its permit): nothing to pass on
    store.drop_outbox(member)
    activity = StepRecord.loads(record_text).activity if record_text else None
    if not activity:
        # Its record is gone: whose permit it was is unknown here; the timer process
        # takes it back once it lapsed (neither leased nor in the outbox).
        return []
    return limits.release(store, activity, execution_id, step_key, place=False)


def _publish_scheduled(
    store: RedisStore, execution_id: str, step_key: str, outbox_due: float | None = None
) -> bool:
    """Publish a step if it still waits to run (SCHEDULED, its execution running);
    whether it did. ``outbox_due``: :meth:`RedisStore.waiting_step`'s."""
    status, record_text, execution_status, meta = store.waiting_step(
        execution_id, step_key, outbox_due
    )
    if status != "SCHEDULED" or record_text is None:
        return False
    if execution_status != "RUNNING" or meta is None:
        return False
    interp = interpreter_for(store, execution_id, *meta)
    recovery = interp.recover(step_key, status, StepRecord.loads(record_text))
    if recovery.dispatch is None:
        return False
    publish(interp, execution_id, [recovery.dispatch])
    return True


def fire_rate_timers(store: RedisStore, members: list[str]) -> None:
    """Publish the rate-limited steps whose turn came (their ``limit`` timers, which go):
    they took their token when they started waiting."""
    with limits.rate_taken():
        for member in members:
            _, execution_id, step_key, _ = parse_timer_member(member)
            try:
                _publish_scheduled(store, execution_id, step_key)
            except Exception:  # noqa: BLE001 - in the outbox, due past its turn
                logger.warning("could not publish %s; the outbox will", member, exc_info=True)
    store.drop_timers(*members)
