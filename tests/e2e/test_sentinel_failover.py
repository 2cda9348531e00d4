"""Sentinel: the master SIGKILLed under 200 executions, three sentinels fail over, and
every execution ends, once (issue 18).

Real ``redis-server`` processes on loopback ports: a master, its replica and three
sentinels (quorum 2, the master down after 1 s of silence). ``REDIS_URL=redis+sentinel://``
and no ``BROKER_URL``: the store and Celery's broker (kombu's sentinel transport) both
follow the master the sentinels name. Two workers and two beats run as separate
processes, the client in this one, with short leases and dispatch timeouts so that what
a failover loses comes back in seconds.

200 executions of the mix of tests/mix.py (a chain of Tasks, an inline Map, a Parallel,
a Wait of 1 s, a Retry that fails once, a Catch) are started; once a third are started and
some have ended while others are under way, the master is SIGKILLed, and the rest are
started through the failover: a start that raises ``StoreUnavailable`` is started again
under the same name (a start by name is idempotent) until it is taken.

Measured: the time from the kill until a sentinel names the replica as the master, and
until the first start is taken (the first write through the engine). Then every execution
ends SUCCEEDED with its kind's output, its history has each Task's success, the
execution's end, the Wait's exit once (a timer fired once).

What a failover without ``ORCHESTRATOR_MIN_REPLICAS_ACK`` can lose is reported, not
hidden (a ``FAILOVER`` line on stdout, and ``record_property``): the starts that returned
but that the new master does not have (each started again under its name, and required to
end), and the side effects repeated. The activities' calls are written to a file as well
as counted in Redis (tests/activities.py ``SIDE_EFFECTS_FILE``): a step whose commit was
lost (or refused while no master answered) runs again when its lease lapses, which the
file shows even when Redis lost the counter's increment with the commit. An execution
whose side effects repeated may show its kind's output with the later count (checked to
be one the file saw), and its re-run may take another path than the first (a Retry's
failing attempt lost with its commit: the re-run succeeds at once, one attempt scheduled);
its history is still checked for no event more than once where it must be once, and
reported. Reported too: the steps claimed again (a ``TaskStarted`` more than the step was
scheduled), the task messages the broker lost (prefetched by a worker whose connection
died) that beat published again after the dispatch timeout, and the processes' ERROR
lines. The workers and beats must all be running at the end.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import ExecutionHandle
from orchestrator.errors import ExecutionNotFound, StoreUnavailable
from tests.activities import SIDE_EFFECTS_FILE, counter, scoped_key, side_effects
from tests.helpers import count_events, wait_until
from tests.mix import (
    EXPECTED_CALLS,
    EXPECTED_EVENTS,
    Engine,
    Planned,
    Started,
    engine,
    expected_output,
    plan_mix,
    wait_ended,
)
from tests.redis_servers import SentinelGroup, redis_servers, sentinel_group

pytestmark = pytest.mark.e2e

EXECUTIONS = 200
KINDS = ("chain", "map", "parallel", "wait", "retry", "catch")
#: A lost commit comes back through the step's lease; a broker message the new master
#: never had, through the dispatch timeout. Both short so that the test takes seconds.
LEASE_S = 2
DISPATCH_TIMEOUT_S = 5
WORKERS = 2
WORKER_THREADS = 4
BEATS = 2
#: The master is killed once this many are started...
KILL_AFTER = EXECUTIONS // 3
#: ... at the latest when this many are (a third is still to start through the failover)...
KILL_BY = 2 * EXECUTIONS // 3
#: ... checked every so many starts...
CHECK_EVERY = 5
#: ... and of those, at least this many have ended and this many are still running.
ENDED_AT_KILL = 10
RUNNING_AT_KILL = 5
#: How long a start is tried again through the failover; how long the sentinels may take.
START_RETRY_S = 60
PROMOTION_TIMEOUT_S = 60
#: For every execution to end, from the last start.
RUN_TIMEOUT_S = 90
#: Each kind's value that is a side effect's count: (path in the output, its value when
#: each side effect happened once as expected).
COUNTED: dict[str, tuple[tuple[Any, ...], int]] = {
    "chain": (("count", "calls"), 1),
    "map": (("count", "calls"), 1),
    "parallel": (("branches", 0, "calls"), 1),
    "wait": (("count", "calls"), 1),
    "retry": (("flaky", "attempt"), 2),
}
#: Events that are a step's or a timer's effect: once each, whatever ran again.
ONCE = ("TaskSucceeded", "WaitStateEntered", "WaitStateExited")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with redis_servers(tmp_path / "redis") as servers:
        yield sentinel_group(servers, sentinels=3, quorum=2)


class PromotionWatch(threading.Thread):
    """Asks every sentinel for the master, from the kill on: the moment one first names
    the replica, and the moment all of them do."""

    def __init__(self, group: SentinelGroup, killed_at: float) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.killed_at = killed_at
        self.first: float | None = None
        self.all: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = self.killed_at + PROMOTION_TIMEOUT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            named = [self._port(s) == self.group.replica.port for s in self.group.sentinels]
            now = time.monotonic()
            if any(named) and self.first is None:
                self.first = now - self.killed_at
            if all(named):
                self.all = now - self.killed_at
                return
            self.stop.wait(0.02)

    def _port(self, sentinel: Any) -> int | None:
        try:
            with sentinel.client(socket_timeout=1) as client:
                _, port = client.sentinel_get_master_addr_by_name(self.group.master_name)
                return int(port)
        except (redis.RedisError, TypeError, ValueError):
            return None


@dataclass
class Starts:
    """What starting the executions met."""

    killed_at: float | None = None
    #: Seconds from the kill to the first start taken after it.
    first_write: float | None = None
    #: Starts tried more than once, and the failed tries.
    retried: int = 0
    failed_tries: int = 0
    #: The errors of the failed tries (type, maybe_applied) -> count.
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Their messages, a few.
    samples: list[str] = field(default_factory=list)


def _start(state: Engine, planned: Planned, starts: Starts) -> ExecutionHandle:
    """Start ``planned``, again under its name while the store is unavailable."""
    deadline = time.monotonic() + START_RETRY_S
    tries = 0
    while True:
        try:
            handle = state.client.start_workflow(
                planned.definition, planned.input, name=planned.name
            )
        except StoreUnavailable as exc:
            tries += 1
            starts.failed_tries += 1
            starts.errors[f"StoreUnavailable(maybe_applied={exc.maybe_applied})"] += 1
            if len(starts.samples) < 3:
                starts.samples.append(str(exc)[:300])
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        if starts.killed_at is not None and starts.first_write is None:
            starts.first_write = time.monotonic() - starts.killed_at
        starts.retried += 1 if tries else 0
        return handle


def _status(state: Engine, execution_id: str) -> str:
    return state.client.describe_execution(execution_id).status


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _with(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` (a copy) with the item at ``path`` replaced by ``new``."""
    if not path:
        return new
    copy: Any = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _with(value[path[0]], path[1:], new)
    return copy


def test_the_master_sigkilled_under_200_executions_and_three_sentinels_fail_over(
    group: SentinelGroup, tmp_path: Path, record_property: Any
) -> None:
    logs = tmp_path / "logs"
    ledger = tmp_path / "side-effects.log"
    overrides = {"lease_seconds": LEASE_S, "dispatch_timeout_seconds": DISPATCH_TIMEOUT_S}
    extra_env = {
        "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_S),
        "ORCHESTRATOR_DISPATCH_TIMEOUT_SECONDS": str(DISPATCH_TIMEOUT_S),
        SIDE_EFFECTS_FILE: str(ledger),
    }
    with engine(
        group.url(),
        None,
        logs,
        label="failover",
        workers=WORKERS,
        threads=WORKER_THREADS,
        beats=BEATS,
        settings=overrides,
        extra_env=extra_env,
    ) as state:
        # The store and the broker are the master's, through the sentinels.
        broker = state.settings.effective_broker_url or ""
        assert broker.startswith("sentinel://"), broker
        assert group.master_port() == group.master.port
        planned = plan_mix(state, EXECUTIONS, KINDS)
        starts = Starts()
        began = time.monotonic()
        handles: list[ExecutionHandle] = []
        ended_at_kill = killed_at_start = 0

        def under_way() -> int:
            """How many of those started have ended, if enough have and enough have not
            (else 0)."""
            statuses = [_status(state, h.execution_id) for h in handles]
            ended = sum(1 for s in statuses if s != "RUNNING")
            return (
                ended if ended >= ENDED_AT_KILL and len(statuses) - ended >= RUNNING_AT_KILL else 0
            )

        watch = None
        for index, item in enumerate(planned):
            # Between two starts, once a third are started and some have ended while
            # others run (the starts waiting for that past two thirds).
            if watch is None and index >= KILL_AFTER and index % CHECK_EVERY == 0:
                if index >= KILL_BY:
                    message = f"executions under way\n{state.log_text()}"
                    ended_at_kill = wait_until(under_way, 30, message=message)
                else:
                    ended_at_kill = under_way()
                if ended_at_kill:
                    # The crash: no shutdown, no last write; what the replica has not
                    # received yet is gone.
                    group.master.process.send_signal(signal.SIGKILL)
                    starts.killed_at = time.monotonic()
                    killed_at_start = index
                    watch = PromotionWatch(group, starts.killed_at)
                    watch.start()
                    group.master.process.wait(timeout=30)
            handles.append(_start(state, item, starts))
        assert watch is not None
        started_all = time.monotonic()

        watch.join(PROMOTION_TIMEOUT_S)
        watch.stop.set()
        assert watch.first is not None, f"no sentinel named the replica\n{state.log_text()}"
        with group.replica.client() as promoted:
            assert promoted.role()[0] == "master"

        # Lost: a start that returned, that the new master does not have. Started again
        # under its name, it must end like the others.
        lost = []
        for p, handle in zip(planned, handles, strict=True):
            try:
                state.client.describe_execution(handle.execution_id)
            except ExecutionNotFound:
                lost.append(p.name)
        again = {p.name: _start(state, p, starts) for p in planned if p.name in lost}
        handles = [again.get(p.name, h) for p, h in zip(planned, handles, strict=True)]

        started = [Started(p.kind, p.n, p.tag, h) for p, h in zip(planned, handles, strict=True)]
        results = wait_ended(state, started, RUN_TIMEOUT_S)
        took = time.monotonic() - began

        calls = side_effects(ledger)
        with state.client.bound():
            # Per execution: its calls as the file saw them, as Redis counted them, its history.
            seen_runs = [
                (
                    calls.get(scoped_key("calls", one.tag), 0),
                    counter("calls", one.tag),
                    one.handle.history(),
                )
                for one in started
            ]
        repeated = [
            f"{one.handle.execution_id} ran {ran} of {EXPECTED_CALLS[one.kind]} (Redis: {counted})"
            for one, (ran, counted, _) in zip(started, seen_runs, strict=True)
            if ran != EXPECTED_CALLS[one.kind]
        ]
        lost_increments = sum(max(0, ran - counted) for ran, counted, _ in seen_runs)
        dead_letters = [
            f"{d.execution_id} {d.state}: {d.error}: {d.cause}"
            for d in state.client.list_dead_letters(1000)
        ]
        exited = state.exited()
        log_text = state.log_text()
    lines = [
        f"{path.name}: {line}"
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    # Beat's recovery: a step whose message the broker lost (a prefetched one stays in
    # the dead connection's unacked set), published again after the dispatch timeout; a
    # step whose worker's commit failed, dispatched again after its lease.
    republished = [line for line in lines if "was not claimed" in line]
    redispatched = [line for line in lines if "lost its worker" in line]
    # A step claimed again (its lease lapsed) has one TaskStarted more than it was scheduled.
    claimed_again = []
    for one, (_, _, history) in zip(started, seen_runs, strict=True):
        for name in sorted({str(e.state) for e in history if e.type == "TaskScheduled"}):
            scheduled = count_events(history, "TaskScheduled", name)
            claims = count_events(history, "TaskStarted", name)
            if claims > scheduled:
                claimed_again.append(
                    f"{one.handle.execution_id}/{name}: started {claims}, scheduled {scheduled}"
                )

    figures = {
        "promoted_s": round(watch.first, 2),
        "all_sentinels_s": None if watch.all is None else round(watch.all, 2),
        "first_write_s": None if starts.first_write is None else round(starts.first_write, 2),
        "ended_at_kill": ended_at_kill,
        "started_at_kill": killed_at_start,
        "starts_retried": starts.retried,
        "start_tries_failed": starts.failed_tries,
        "starts_lost": len(lost),
        "side_effects_repeated": len(repeated),
        "counter_increments_lost": lost_increments,
        "steps_claimed_again": len(claimed_again),
        "messages_republished": len(republished),
        "steps_redispatched": len(redispatched),
        "dead_letters": len(dead_letters),
        "starts_s": round(started_all - began, 2),
        "all_ended_s": round(took, 2),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"\nFAILOVER: promoted after {watch.first:.2f} s (all 3 sentinels: "
        f"{figures['all_sentinels_s']} s), first write after {figures['first_write_s']} s, "
        f"starts retried {starts.retried} ({starts.failed_tries} failed tries: "
        f"{dict(starts.errors)}), starts lost {len(lost)}, side effects repeated "
        f"{len(repeated)}, counter increments lost {lost_increments}, steps claimed again "
        f"{len(claimed_again)} (messages republished {len(republished)}, steps redispatched "
        f"{len(redispatched)}), "
        f"all {EXECUTIONS} ended in {took:.1f} s (killed after {killed_at_start} starts, "
        f"{ended_at_kill} of them ended)"
    )
    for title, lines in (
        ("starts lost (started again)", lost),
        ("side effects repeated", repeated),
        ("steps claimed again", claimed_again),
        ("steps redispatched after their lease", redispatched),
        ("dead letters", dead_letters),
        ("start errors (samples)", starts.samples),
        ("processes that exited", exited),
        ("ERROR lines logged", errors[:20] + ([f"... {len(errors)} in all"] if errors else [])),
    ):
        if lines:
            print(f"FAILOVER {title}:\n  " + "\n  ".join(lines))

    # Every worker and beat lived through it.
    assert exited == [], exited
    deviations = []
    for one, result, (ran, counted, history) in zip(started, results, seen_runs, strict=True):
        assert result.status == "SUCCEEDED", (one.kind, result, log_text)
        expected_calls = EXPECTED_CALLS[one.kind]
        # Every step that succeeded ran: never fewer side effects than expected.
        assert ran >= expected_calls, (one.kind, one.tag, ran, expected_calls)
        output = result.output
        if one.kind in COUNTED:
            path, once = COUNTED[one.kind]
            value = _at(output, path)
            # The count of one of the calls that happened (the file's or Redis').
            assert once <= value <= max(ran, counted), (one.kind, result, ran, counted)
            if ran == expected_calls:
                assert value == once, (one.kind, result, ran)
            output = _with(output, path, once)
        assert output == expected_output(one.kind, one.n, one.tag), (one.kind, result)

        wanted: dict[tuple[str, Any], int] = {
            **EXPECTED_EVENTS[one.kind],
            ("ExecutionStarted", None): 1,
            ("ExecutionSucceeded", None): 1,
        }
        seen = {key: count_events(history, key[0], key[1]) for key in wanted}
        if ran == expected_calls:
            assert seen == wanted, (one, seen)
            continue
        # Its steps ran again: still no event doubled, each success and timer's effect
        # once; the rest (a failed attempt lost with its commit) reported.
        for key, count in wanted.items():
            if key[0] in ONCE or key[0].startswith("Execution"):
                assert seen[key] == count, (one, key, seen)
            else:
                assert seen[key] <= count, (one, key, seen)
        if seen != wanted:
            deviations.append(f"{one.handle.execution_id}: {seen}")
    if deviations:
        print(
            "FAILOVER histories of re-run steps not as expected (none doubled):\n  "
            + "\n  ".join(deviations)
        )
