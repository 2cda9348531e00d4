"""The global activity limits' two-call writes, in their dangerous orders.

Each permit operation is a call on the activity's slot (permits.lua) and calls on the
steps' partitions (outboxes, liveness reads), so another process's write, or a crash,
can come between them. These tests put it there, deterministically (a store whose
partition-side method runs the other write first, or fails), and check that no step is
lost (a SCHEDULED step in neither its outbox nor the waiting set) and that no permit
is dropped while its step holds it.

A store of its own under a unique prefix, on the session's Redis (the machine's with
``REDIS_URL``, with its ``ORCHESTRATOR_PARTITIONS``): the session's timer process never
reads these keys, and the times passed are far ahead of the clock, so nothing but the
test moves them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.config import get_settings
from orchestrator.engine.records import lease_member, parse_lease_member, timer_member
from orchestrator.engine.store import RedisStore, redis_client

pytestmark = pytest.mark.usefixtures("orchestrator")

ACTIVITY = "render"
#: A clock far ahead of the real one (see the module's docstring).
T0 = 4_000_000_000.0
LEASE = 15.0


class Crash(Exception):
    """A process dying between two calls."""


@pytest.fixture
def store() -> Iterator[RedisStore]:
    settings = get_settings()
    assert settings.redis_url
    prefix = f"race-{uuid.uuid4().hex[:10]}"
    store = RedisStore(redis_client(settings.redis_url), prefix, settings.partitions)
    yield store
    for key in store.client.scan_iter(f"{prefix}:*", count=1000):
        store.client.delete(key)
    store.close()


def once_before(
    monkeypatch: pytest.MonkeyPatch, store: RedisStore, name: str, first: Callable[[], Any]
) -> None:
    """The next call of ``store.<name>`` runs ``first`` before it (another process's
    write coming between this one's two calls)."""
    original = getattr(store, name)
    pending = [first]

    def patched(*args: Any, **kwargs: Any) -> Any:
        if pending:
            pending.pop()()
        return original(*args, **kwargs)

    monkeypatch.setattr(store, name, patched)


def crash_in(monkeypatch: pytest.MonkeyPatch, store: RedisStore, name: str) -> None:
    """The next call of ``store.<name>`` never happens: the process died before it."""
    original = getattr(store, name)
    crashed: list[bool] = []

    def patched(*args: Any, **kwargs: Any) -> Any:
        if not crashed:
            crashed.append(True)
            raise Crash(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, name, patched)


def dispatched(store: RedisStore, member: str, due: float) -> None:
    """A step's commit dispatched it: in its partition's outbox, unpublished."""
    store.client.zadd(store.keys.outbox(store.lease_partition(member)), {member: due})


def outbox_score(store: RedisStore, member: str) -> float | None:
    return store.client.zscore(store.keys.outbox(store.lease_partition(member)), member)


def permit(store: RedisStore, member: str) -> float | None:
    return store.client.zscore(store.keys.activity_permits(ACTIVITY), member)


def granted(store: RedisStore, member: str) -> float | None:
    return store.client.zscore(store.keys.activity_granted(ACTIVITY), member)


def waiting(store: RedisStore, member: str) -> float | None:
    return store.client.zscore(store.keys.activity_waiting(ACTIVITY), member)


def steps(n: int) -> list[str]:
    """Steps of ``n`` executions (in several partitions when there are several)."""
    return [lease_member(f"x-{uuid.uuid4().hex[:8]}", "Render") for _ in range(n)]


def test_a_grant_between_acquires_two_calls_loses_no_step(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's release hands the permit to the step between the acquire that made
    it wait and the acquire's ZREM of its outbox entry, which removes the entry the
    grant had just added: the grant record puts it back when it comes due."""
    holder, step = steps(2)
    assert store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0) == ([True], [])
    dispatched(store, step, T0 + LEASE)

    handed: list[list[str]] = []
    once_before(
        monkeypatch,
        store,
        "_outbox_moves",
        lambda: handed.append(store.release_permits(ACTIVITY, 1, [holder], T0 + 2 + LEASE, T0 + 2)),
    )
    held, _ = store.acquire_permits(ACTIVITY, 1, [step], T0 + 1 + LEASE, T0 + 1)
    monkeypatch.undo()

    assert held == [False]  # it waited, as the first call decided
    assert handed == [[step]]  # and the release between the calls handed it the permit
    assert permit(store, step) == T0 + 2 + LEASE
    assert outbox_score(store, step) is None  # the acquire's ZREM took the grant's entry
    assert granted(store, step) == T0 + 2 + LEASE  # what brings it back

    # Before its grant record is due, the timer process leaves it (the granter may still
    # be publishing it).
    assert store.recover_permits(ACTIVITY, 1, T0 + 10 + LEASE, T0 + 10) == []
    assert outbox_score(store, step) is None
    # Due: back in its outbox (due now: the reconciler publishes it), its permit kept.
    now = T0 + 2 + LEASE
    assert store.recover_permits(ACTIVITY, 1, now + LEASE, now) == []
    assert outbox_score(store, step) == now
    assert permit(store, step) == now + LEASE
    assert granted(store, step) is None
    # Published again it holds its permit (no wait), and runs.
    assert store.acquire_permits(ACTIVITY, 1, [step], now + 1 + LEASE, now + 1) == ([True], [])


def test_an_acquire_stalled_past_its_grants_record_loses_no_step(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race, the acquire's ZREM coming only after the timer process found the
    granted step in its outbox and dropped its grant record: the step holds a permit
    and is in no outbox. When that permit comes due, the recovery puts the step back in
    its outbox before taking the permit: the reconciler publishes it, to take one anew."""
    holder, step = steps(2)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0)
    dispatched(store, step, T0 + LEASE)
    due = T0 + 2 + LEASE

    def grant_then_record_checked() -> None:
        assert store.release_permits(ACTIVITY, 1, [holder], due, T0 + 2) == [step]
        assert store.recover_permits(ACTIVITY, 1, due + LEASE, due) == []
        assert granted(store, step) is None  # seen in its outbox: record dropped

    once_before(monkeypatch, store, "_outbox_moves", grant_then_record_checked)
    assert store.acquire_permits(ACTIVITY, 1, [step], T0 + 1 + LEASE, T0 + 1)[0] == [False]
    monkeypatch.undo()
    assert outbox_score(store, step) is None and permit(store, step) == due + LEASE

    later = due + LEASE
    assert store.recover_permits(ACTIVITY, 1, later + LEASE, later) == []
    assert outbox_score(store, step) == later
    assert permit(store, step) is None
    # Published by the reconciler: the permit is free, it takes it.
    assert store.acquire_permits(ACTIVITY, 1, [step], later + 1 + LEASE, later + 1)[0] == [True]


def test_a_granter_dying_before_the_outbox_write_loses_no_step(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, step, later = steps(3)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0)
    for member in (step, later):
        dispatched(store, member, T0 + LEASE)
    assert store.acquire_permits(ACTIVITY, 1, [step, later], T0 + LEASE, T0) == (
        [False, False],
        [],
    )
    assert outbox_score(store, step) is None and waiting(store, step) is not None

    crash_in(monkeypatch, store, "_outbox_moves")
    with pytest.raises(Crash):
        store.release_permits(ACTIVITY, 1, [holder], T0 + 1 + LEASE, T0 + 1)
    monkeypatch.undo()
    # The activity's call ran: the step holds the permit, in no outbox and not waiting.
    assert permit(store, step) == T0 + 1 + LEASE and waiting(store, step) is None
    assert outbox_score(store, step) is None and permit(store, holder) is None

    now = T0 + 1 + LEASE
    assert store.recover_permits(ACTIVITY, 1, now + LEASE, now) == []
    assert outbox_score(store, step) == now  # the reconciler publishes it now
    assert permit(store, step) == now + LEASE  # kept: the step is dispatched
    assert granted(store, step) is None
    assert waiting(store, later) is not None  # no permit for the next one meanwhile

    # It runs (claim.lua moves it to its leases) and ends: its release hands the permit
    # on, and this time the granter lives.
    p = store.lease_partition(step)
    store.client.zrem(store.keys.outbox(p), step)
    handed = store.release_permits(ACTIVITY, 1, [step], now + 5 + LEASE, now + 5)
    assert handed == [later]
    assert outbox_score(store, later) == now + 5 + LEASE
    assert permit(store, step) is None


def test_a_stale_not_running_read_keeps_a_renewed_permit(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release reads its step as neither leased nor dispatched; before its script
    runs, the step is dispatched again (a loop back to its state) and its acquire
    renews the permit: the release must not take it."""
    step, other = steps(2)
    store.acquire_permits(ACTIVITY, 1, [step], T0 + LEASE, T0)
    original = store.steps_live

    def stale(members: list[str]) -> list[bool]:
        read = original(members)
        dispatched(store, step, T0 + 1 + LEASE)
        store.acquire_permits(ACTIVITY, 1, [step], T0 + 1 + LEASE, T0 + 1)
        return read

    monkeypatch.setattr(store, "steps_live", stale)
    assert store.release_permits(ACTIVITY, 1, [step], T0 + 2 + LEASE, T0 + 2) == []
    monkeypatch.undo()
    assert permit(store, step) == T0 + 1 + LEASE
    # The other step still waits for it.
    dispatched(store, other, T0 + 3 + LEASE)
    assert store.acquire_permits(ACTIVITY, 1, [other], T0 + 3 + LEASE, T0 + 3)[0] == [False]

    # Unrenewed, the same release gives the permit back (to the waiting step).
    store.client.zrem(store.keys.outbox(store.lease_partition(step)), step)
    assert store.release_permits(ACTIVITY, 1, [step], T0 + 4 + LEASE, T0 + 4) == [other]
    assert permit(store, step) is None


def test_a_stale_recovery_keeps_a_renewed_permit(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer process reads a due permit's step as gone; the step is dispatched
    again and renews its permit before the recovery's script: kept."""
    step = steps(1)[0]
    store.acquire_permits(ACTIVITY, 1, [step], T0 + LEASE, T0)
    now = T0 + LEASE + 1
    original = store.steps_live

    def stale(members: list[str]) -> list[bool]:
        read = original(members)
        dispatched(store, step, now + LEASE)
        store.acquire_permits(ACTIVITY, 1, [step], now + LEASE, now)
        return read

    monkeypatch.setattr(store, "steps_live", stale)
    store.recover_permits(ACTIVITY, 1, now + 1 + LEASE, now + 1)
    monkeypatch.undo()
    assert permit(store, step) == now + LEASE
    # Gone for real (finished, its worker dead before the release): taken back.
    store.client.zrem(store.keys.outbox(store.lease_partition(step)), step)
    later = now + 2 * LEASE
    store.recover_permits(ACTIVITY, 1, later + LEASE, later)
    assert permit(store, step) is None


def test_a_crash_between_an_acquires_calls_waits_again_in_its_place(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step waits and is still in its outbox: the reconciler publishes it again when
    the entry comes due, and that acquire keeps its place in the queue."""
    holder, first, second = steps(3)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0)
    for member in (first, second):
        dispatched(store, member, T0 + LEASE)
    crash_in(monkeypatch, store, "_outbox_moves")
    with pytest.raises(Crash):
        store.acquire_permits(ACTIVITY, 1, [first], T0 + 1 + LEASE, T0 + 1)
    monkeypatch.undo()
    assert waiting(store, first) is not None and outbox_score(store, first) == T0 + LEASE
    store.acquire_permits(ACTIVITY, 1, [second], T0 + 2 + LEASE, T0 + 2)
    # Published again (its entry due): it waits again, out of its outbox, still first.
    store.acquire_permits(ACTIVITY, 1, [first], T0 + 3 + LEASE, T0 + 3)
    assert outbox_score(store, first) is None
    assert store.release_permits(ACTIVITY, 1, [holder], T0 + 4 + LEASE, T0 + 4) == [first]


def test_a_crash_after_taking_a_rate_token_costs_the_token(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bucket's call ran, the timer's did not: the step stays in its outbox (due at
    the lease, the reconciler publishes it then), and the token is spent."""
    first, second = steps(2)
    timer = timer_member("limit", parse_lease_member(second)[0], "Render", 0)
    assert store.take_rate_token(ACTIVITY, 1.0, 1.0, T0, first, timer, LEASE) == 0.0
    dispatched(store, second, T0 + LEASE)
    monkeypatch.setattr(store.client, "pipeline", lambda **_: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        store.take_rate_token(ACTIVITY, 1.0, 1.0, T0, second, timer, LEASE)
    monkeypatch.undo()
    assert outbox_score(store, second) == T0 + LEASE
    # Published again at the lease: it takes a token again, one after the lost one.
    wait = store.take_rate_token(ACTIVITY, 1.0, 1.0, T0, second, timer, LEASE)
    assert wait == pytest.approx(2.0)
    assert outbox_score(store, second) == pytest.approx(T0 + 2.0 + LEASE)
    p = store.lease_partition(second)
    assert store.client.zscore(store.keys.timers(p), timer) == pytest.approx(T0 + 2.0)


def test_the_steps_of_one_acquire_wait_in_its_order(store: RedisStore) -> None:
    """Arrival order within one call is the order of its members, not of their names
    (their scores a microsecond apart, kept at full precision)."""
    holder, *queue = steps(6)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0)
    assert store.acquire_permits(ACTIVITY, 1, queue, T0 + LEASE, T0)[0] == [False] * 5
    handed: list[str] = []
    for n, member in enumerate([holder, *queue[:-1]], start=1):
        # Claimed and run: out of its outbox (else its release would keep the permit).
        store.client.zrem(store.keys.outbox(store.lease_partition(member)), member)
        handed += store.release_permits(ACTIVITY, 1, [member], T0 + n + LEASE, T0 + n)
    assert handed == queue


def test_a_grant_left_to_its_publisher_is_covered_by_its_record(store: RedisStore) -> None:
    """The worker's release leaves the granted step's outbox write to its publishing
    (one round trip less): until then only the grant record holds it, and it is enough."""
    holder, step, other = steps(3)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + LEASE, T0)
    store.acquire_permits(ACTIVITY, 1, [step, other], T0 + LEASE, T0)
    due = T0 + 1 + LEASE
    assert store.release_permits(ACTIVITY, 1, [holder], due, T0 + 1, place=False) == [step]
    assert outbox_score(store, step) is None and granted(store, step) == due
    # Published: its outbox entry comes with the read of its state.
    execution_id, step_key = parse_lease_member(step)
    store.waiting_step(execution_id, step_key, outbox_due=T0 + 2 + LEASE)
    assert outbox_score(store, step) == T0 + 2 + LEASE
    # Its record comes due while it is dispatched: dropped, the permit kept.
    assert store.recover_permits(ACTIVITY, 1, due + LEASE, due, place=False) == []
    assert granted(store, step) is None and permit(store, step) == due + LEASE
    # It ran (claimed: out of its outbox) and ended; its release hands the permit on,
    # and the publisher dies before publishing: the record puts the step in its outbox.
    store.client.zrem(store.keys.outbox(store.lease_partition(step)), step)
    assert store.release_permits(ACTIVITY, 1, [step], due + 1, T0 + 3, place=False) == [other]
    assert outbox_score(store, other) is None
    assert store.recover_permits(ACTIVITY, 1, due + 1 + LEASE, due + 1, place=False) == []
    assert outbox_score(store, other) == due + 1
    assert permit(store, other) == due + 1 + LEASE


def test_a_raised_limit_hands_its_permits_on_a_batch_a_call(store: RedisStore) -> None:
    """No call grows with the waiting set: 600 steps waiting when the limit goes from 1
    to 1,000 get their permits 500 in one call, the rest in the timer process's next."""
    holder, *queue = steps(601)
    store.acquire_permits(ACTIVITY, 1, [holder], T0 + 100 * LEASE, T0)
    assert not any(store.acquire_permits(ACTIVITY, 1, queue, T0 + LEASE, T0)[0])
    first = store.release_permits(ACTIVITY, 1000, [holder], T0 + 1 + LEASE, T0 + 1)
    assert first == queue[:500]
    rest = store.recover_permits(ACTIVITY, 1000, T0 + 2 + LEASE, T0 + 2)
    assert rest == queue[500:]
    assert store.client.zcard(store.keys.activity_waiting(ACTIVITY)) == 0
