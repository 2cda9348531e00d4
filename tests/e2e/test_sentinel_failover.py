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

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.activities import SIDE_EFFECTS_FILE
from tests.failover import (
    BEATS,
    DISPATCH_TIMEOUT_S,
    EXECUTIONS,
    KINDS,
    LEASE_S,
    PROMOTION_TIMEOUT_S,
    RUN_TIMEOUT_S,
    WORKER_THREADS,
    WORKERS,
    Starts,
    check_ended_once,
    read_logs,
    read_runs,
    report,
    restart_lost,
    start_with_a_kill,
)
from tests.mix import (
    Started,
    engine,
    plan_mix,
    wait_ended,
)
from tests.redis_servers import SentinelGroup, redis_servers, sentinel_group

pytestmark = pytest.mark.e2e


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

        def kill() -> PromotionWatch:
            # The crash: no shutdown, no last write; what the replica has not received
            # yet is gone.
            group.master.process.send_signal(signal.SIGKILL)
            starts.killed_at = time.monotonic()
            watch = PromotionWatch(group, starts.killed_at)
            watch.start()
            group.master.process.wait(timeout=30)
            return watch

        killing = start_with_a_kill(state, planned, starts, kill)
        watch, handles = killing.watch, killing.handles
        ended_at_kill, killed_at_start = killing.ended_at_kill, killing.started_at_kill
        started_all = time.monotonic()

        watch.join(PROMOTION_TIMEOUT_S)
        watch.stop.set()
        assert watch.first is not None, f"no sentinel named the replica\n{state.log_text()}"
        with group.replica.client() as promoted:
            assert promoted.role()[0] == "master"

        # Lost: a start that returned, that the new master does not have. Started again
        # under its name, it must end like the others.
        handles, lost = restart_lost(state, planned, handles, starts)

        started = [Started(p.kind, p.n, p.tag, h) for p, h in zip(planned, handles, strict=True)]
        results = wait_ended(state, started, RUN_TIMEOUT_S)
        took = time.monotonic() - began

        runs = read_runs(state, started, ledger)
        exited = state.exited()
        log_text = state.log_text()
    logged = read_logs(logs)
    repeated, claimed_again = runs.repeated, runs.claimed_again
    republished, redispatched = logged.republished, logged.redispatched
    lost_increments, dead_letters = runs.lost_increments, runs.dead_letters

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
    report("FAILOVER", lost, runs, logged, starts, exited)

    # Every worker and beat lived through it.
    assert exited == [], exited
    check_ended_once("FAILOVER", started, results, runs, log_text)
