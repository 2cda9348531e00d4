"""The outbox while a process publishes (issue 12): a commit puts its dispatches in the
outbox due at the lease; a publisher slower than that (a Map's first 500 messages on a
starved machine) keeps them from coming due while it lives, so the reconciler never takes
a message on its way to the broker for one never published. On the session's Redis."""

from __future__ import annotations

import time
import uuid

from orchestrator.config import get_settings, using_settings
from orchestrator.engine.publisher import mark_published, unmarked
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import get_store
from orchestrator.testing import LocalOrchestrator


def _member() -> str:
    """A step of an execution in partition 0, whose outbox these tests read."""
    keys = get_store().keys
    while keys.partition_of(execution_id := f"outbox-{uuid.uuid4().hex}"):
        pass
    return lease_member(execution_id, "A")


def test_entries_being_published_are_pushed_a_lease_on_until_released(
    orchestrator: LocalOrchestrator,
) -> None:
    store = get_store()
    late, gone = _member(), _member()
    # Committed a while ago: due soon (not so soon that the session's reconciler takes
    # it first). `gone` was claimed (no entry).
    store.client.zadd(store.keys.outbox(0), {late: time.time() + 5})
    try:
        handle = unmarked.hold(store, [late, gone])
        before = time.time()
        unmarked.push()  # the thread's round, every third of the lease
        pushed = store.client.zscore(store.keys.outbox(0), late)
        assert pushed is not None
        assert pushed >= before + get_settings().lease_seconds
        # A claimed step stays out of the outbox.
        assert store.client.zscore(store.keys.outbox(0), gone) is None

        unmarked.release(handle)
        # Sent: marked published, and no longer pushed (a push would make it due at the
        # lease again). Had its publisher died instead, it would come due at `pushed`.
        mark_published([late], store)
        marked = store.client.zscore(store.keys.outbox(0), late)
        assert marked is not None
        assert marked >= before + get_settings().dispatch_timeout_seconds
        unmarked.push()
        assert store.client.zscore(store.keys.outbox(0), late) == marked
    finally:
        store.client.zrem(store.keys.outbox(0), late, gone)


def test_a_released_entry_is_pushed_no_more(orchestrator: LocalOrchestrator) -> None:
    """A publisher that gave up (its send raised) leaves its entries due at the lease:
    the reconciler sends them."""
    store = get_store()
    member = _member()
    due = time.time() + 5
    store.client.zadd(store.keys.outbox(0), {member: due})
    try:
        unmarked.release(unmarked.hold(store, [member]))
        unmarked.push()
        assert store.client.zscore(store.keys.outbox(0), member) == due
    finally:
        store.client.zrem(store.keys.outbox(0), member)


def test_entries_are_pushed_with_their_publisher_s_settings(
    orchestrator: LocalOrchestrator,
) -> None:
    """A client binds its settings in a context variable, which the outbox thread does not
    see: the lease an entry is pushed by is its publisher's, taken when it holds it."""
    store = get_store()
    member = _member()
    store.client.zadd(store.keys.outbox(0), {member: time.time() + 5})
    # Shorter than the session's: the thread's rounds come sooner meanwhile, never later.
    lease = get_settings().lease_seconds / 4
    try:
        with using_settings(get_settings().model_copy(update={"lease_seconds": lease})):
            handle = unmarked.hold(store, [member])
        before = time.time()
        unmarked.push()  # outside that context, as the thread is
        after = time.time()
        pushed = store.client.zscore(store.keys.outbox(0), member)
        assert pushed is not None
        # Its own lease (the session's thread may push it too, a moment later).
        assert before + lease <= pushed < after + get_settings().lease_seconds / 2
        unmarked.release(handle)
    finally:
        store.client.zrem(store.keys.outbox(0), member)
        unmarked.release(unmarked.hold(store, []))  # the session's settings again


def test_a_hold_with_a_short_lease_wakes_the_thread_sleeping_for_a_long_one(
    orchestrator: LocalOrchestrator,
) -> None:
    """The thread sleeps a third of the shortest lease it knew of when it went to sleep; a
    publisher holding entries of a shorter lease wakes it, so they are pushed within a
    third of their own lease (CI on RabbitMQ: the thread slept for an earlier client's
    15 s lease while a start's 500 messages, due in 1 s, were re-sent by beat)."""
    store = get_store()
    with using_settings(get_settings().model_copy(update={"lease_seconds": 60.0})):
        # Another publisher's long batch: the thread now sleeps 20 s between rounds.
        other = unmarked.hold(store, [_member()])
    time.sleep(0.8)  # the thread's current round ends; it goes to sleep for 20 s
    member = _member()
    lease = 0.6
    committed = time.time() + 5  # a due time no push of a 0.6 s lease gives
    store.client.zadd(store.keys.outbox(0), {member: committed})
    try:
        with using_settings(get_settings().model_copy(update={"lease_seconds": lease})):
            handle = unmarked.hold(store, [member])
        try:
            began = time.time()
            deadline = time.monotonic() + 30
            while store.client.zscore(store.keys.outbox(0), member) == committed:
                assert time.monotonic() < deadline, "never pushed"
                time.sleep(0.02)
            # A round of the short lease (0.2 s), not of the long one (20 s).
            assert time.time() - began < 3
            score = store.client.zscore(store.keys.outbox(0), member)
            assert score is not None and score >= began + lease
        finally:
            unmarked.release(handle)
    finally:
        unmarked.release(other)
        store.client.zrem(store.keys.outbox(0), member)
