"""Redis Cluster: a master SIGKILLed under 200 executions, the cluster promotes its replica,
and every execution ends, once (docs/running-at-scale.md: "with a replica per master, the
loss of a master").

Real ``redis-server`` processes in cluster mode (tests/redis_servers.py): three masters,
each with a replica, a node timeout of 1 s. ``REDIS_URL=redis+cluster://<the masters>``,
``ORCHESTRATOR_PARTITIONS=6`` (two partitions per master), Celery's broker the machine's
RabbitMQ (else a plain ``redis-server`` of the test's own, as tests/e2e/test_cluster.py
does). Two workers and two beats run as separate processes, the client in this one, with
short leases and dispatch timeouts (as tests/e2e/test_sentinel_failover.py) so that what
the failover loses comes back in seconds.

200 executions of the base kinds of tests/mix.py (a chain of Tasks, an inline Map, a
Parallel, a Wait of 1 s, a Retry that fails once, a Catch) are started; once a third are
started and some have ended while others are under way, one master is SIGKILLed, and the
rest are started through the failover: a start that raises ``StoreUnavailable`` is
started again under the same name until it is taken. While the master is missing, the
whole cluster answers ``CLUSTERDOWN`` (full coverage is required, Redis's default), so
every partition waits for the promotion, not only the lost master's two.

Measured: the time from the kill until the replica reports the role of a master, until
every surviving node reports ``cluster_state:ok`` with the replica owning the lost
master's slots, and until the first start taken after the kill.

Required: every execution ends SUCCEEDED with its kind's output; its history has every
event once where the sentinel failover test requires it (exactly the kind's events for an
execution whose side effects did not repeat; for one whose steps ran again, no event more
than once where it must be once); the workers and beats are all running at the end; no
surviving node ever replied ``CROSSSLOT`` (``INFO errorstats``) and no process logged a
cross-slot error. What the failover lost or repeated is reported (a ``CLUSTER FAILOVER``
line on stdout, and ``record_property``): the starts lost (started again by name and
required to end), the side effects repeated (``ORCH_TEST_SIDE_EFFECTS_FILE``), the steps
claimed again, the processes' error lines (a failover logs connection errors: not an
error of the test's).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from orchestrator import ExecutionHandle
from orchestrator.engine.keys import Keys
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
from tests.redis_servers import (
    ClusterGroup,
    Server,
    _cluster_info,
    cluster_group,
    redis_servers,
    slot_ranges,
)

pytestmark = pytest.mark.e2e

PARTITIONS = 6
#: A master silent this long is suspected; then the others agree it failed, its replica
#: is elected (about half a second more).
NODE_TIMEOUT_MS = 1000
#: The master killed: the second (its replica the second too).
VICTIM = 1
#: What no process may log, failover or not: a cross-slot call.
CROSS_SLOT = re.compile(r"\bCROSSSLOT\b|non local key")
#: What a failover makes processes log, counted for the report.
FAILOVER_NOISE = re.compile(
    r"\b(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|ClusterDownError|ConnectionError|StoreUnavailable)\b"
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterGroup]:
    with redis_servers(tmp_path / "redis-cluster") as servers:
        yield cluster_group(servers, node_timeout_ms=NODE_TIMEOUT_MS, replicas=True)


def _slots_owner(node: Server, first: int) -> int | None:
    """The port of the master that ``node`` says owns the slot range starting at
    ``first`` (``None``: no such range in its view, or it does not answer)."""
    try:
        with node.client(socket_timeout=1) as client:
            rows = client.execute_command("CLUSTER SLOTS")
    except redis.RedisError:
        return None
    for row in rows:
        if int(row[0]) == first:
            return int(row[2][1])
    return None


class FailoverWatch(threading.Thread):
    """From the kill on: the moment the victim's replica reports the role of a master,
    and the moment every surviving node reports ``cluster_state:ok`` with the replica
    owning the victim's slots."""

    def __init__(self, cluster: ClusterGroup, killed_at: float) -> None:
        super().__init__(daemon=True)
        self.replica = cluster.replicas[VICTIM]
        self.survivors = [
            n for n in (*cluster.masters, *cluster.replicas) if n is not cluster.masters[VICTIM]
        ]
        self.first_slot = _first_slot(cluster)
        self.killed_at = killed_at
        self.promoted: float | None = None
        self.ok: float | None = None
        #: When a survivor first reported ``cluster_state:fail`` (the master declared failed).
        self.down: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = self.killed_at + PROMOTION_TIMEOUT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.promoted is None and self._role(self.replica) == "master":
                self.promoted = time.monotonic() - self.killed_at
            states = [self._state(n) for n in self.survivors]
            if self.down is None and "fail" in states:
                self.down = time.monotonic() - self.killed_at
            if self.promoted is not None and all(s == "ok" for s in states):
                owners = {_slots_owner(n, self.first_slot) for n in self.survivors}
                if owners == {self.replica.port}:
                    self.ok = time.monotonic() - self.killed_at
                    return
            self.stop.wait(0.02)

    @staticmethod
    def _role(node: Server) -> str | None:
        try:
            with node.client(socket_timeout=1) as client:
                return str(client.role()[0])
        except redis.RedisError:
            return None

    @staticmethod
    def _state(node: Server) -> str | None:
        try:
            with node.client(socket_timeout=1) as client:
                return _cluster_info(client).get("cluster_state")
        except redis.RedisError:
            return None


def _first_slot(cluster: ClusterGroup) -> int:
    """The first slot of the victim's range, as formed."""
    return slot_ranges(len(cluster.masters))[VICTIM][0]


def test_a_master_sigkilled_under_200_executions_and_the_cluster_promotes_its_replica(
    cluster: ClusterGroup, separate_broker: str, tmp_path: Path, record_property: Any
) -> None:
    logs = tmp_path / "logs"
    ledger = tmp_path / "side-effects.log"
    victim = cluster.masters[VICTIM]
    survivors = [n for n in (*cluster.masters, *cluster.replicas) if n is not victim]
    overrides = {
        "partitions": PARTITIONS,
        "lease_seconds": LEASE_S,
        "dispatch_timeout_seconds": DISPATCH_TIMEOUT_S,
    }
    extra_env = {
        "ORCHESTRATOR_PARTITIONS": str(PARTITIONS),
        "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_S),
        "ORCHESTRATOR_DISPATCH_TIMEOUT_SECONDS": str(DISPATCH_TIMEOUT_S),
        SIDE_EFFECTS_FILE: str(ledger),
    }
    with engine(
        cluster.url(),
        separate_broker,
        logs,
        label="clusterfail",
        workers=WORKERS,
        threads=WORKER_THREADS,
        beats=BEATS,
        settings=overrides,
        extra_env=extra_env,
    ) as state:
        planned = plan_mix(state, EXECUTIONS, KINDS)
        starts = Starts()
        began = time.monotonic()

        # The partitions whose keys the victim holds (two of the six).
        keys = Keys(state.settings.key_prefix, PARTITIONS)
        first, last = slot_ranges(len(cluster.masters))[VICTIM]
        on_victim = {
            p for p in keys.all_partitions() if first <= key_slot(keys.timers(p).encode()) <= last
        }
        assert len(on_victim) == PARTITIONS // len(cluster.masters), on_victim
        # Seconds from the kill to the first start taken in one of those partitions.
        victim_write: float | None = None

        def kill() -> FailoverWatch:
            # The crash: no shutdown; what the replica has not received is gone.
            victim.process.send_signal(signal.SIGKILL)
            starts.killed_at = time.monotonic()
            watch = FailoverWatch(cluster, starts.killed_at)
            watch.start()
            victim.process.wait(timeout=30)
            return watch

        def started(handle: ExecutionHandle) -> None:
            nonlocal victim_write
            if (
                starts.killed_at is not None
                and victim_write is None
                and keys.partition_of(handle.execution_id) in on_victim
            ):
                victim_write = time.monotonic() - starts.killed_at

        killing = start_with_a_kill(state, planned, starts, kill, started)
        watch, handles = killing.watch, killing.handles
        ended_at_kill, killed_at_start = killing.ended_at_kill, killing.started_at_kill
        started_all = time.monotonic()

        watch.join(PROMOTION_TIMEOUT_S)
        watch.stop.set()
        assert watch.promoted is not None, f"the replica was not promoted\n{state.log_text()}"
        assert watch.ok is not None, f"the cluster did not come back\n{state.log_text()}"

        handles, lost = restart_lost(state, planned, handles, starts)

        started = [Started(p.kind, p.n, p.tag, h) for p, h in zip(planned, handles, strict=True)]
        results = wait_ended(state, started, RUN_TIMEOUT_S)
        took = time.monotonic() - began

        runs = read_runs(state, started, ledger)
        exited = state.exited()
        log_text = state.log_text()
    stats = cluster.error_stats(survivors)
    crossslot = {
        port: s["errorstat_CROSSSLOT"] for port, s in stats.items() if s.get("errorstat_CROSSSLOT")
    }
    logged = read_logs(logs)
    lines, errors = logged.lines, logged.errors
    cross_logged = [line for line in lines if CROSS_SLOT.search(line)]
    noise = [line for line in lines if FAILOVER_NOISE.search(line)]
    repeated, claimed_again = runs.repeated, runs.claimed_again
    republished, redispatched = logged.republished, logged.redispatched
    lost_increments, dead_letters = runs.lost_increments, runs.dead_letters

    figures = {
        "promoted_s": round(watch.promoted, 2),
        "cluster_ok_s": round(watch.ok, 2),
        "cluster_down_s": None if watch.down is None else round(watch.down, 2),
        "first_write_s": None if starts.first_write is None else round(starts.first_write, 2),
        "first_write_on_lost_slots_s": None if victim_write is None else round(victim_write, 2),
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
        "error_lines": len(errors),
        "failover_lines": len(noise),
        "starts_s": round(started_all - began, 2),
        "all_ended_s": round(took, 2),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"\nCLUSTER FAILOVER: cluster down after {figures['cluster_down_s']} s, replica "
        f"promoted after {watch.promoted:.2f} s, cluster ok on "
        f"all {len(survivors)} survivors after {watch.ok:.2f} s, first start taken after "
        f"{figures['first_write_s']} s (in the lost master's partitions: "
        f"{figures['first_write_on_lost_slots_s']} s), starts retried {starts.retried} "
        f"({starts.failed_tries} failed tries: {dict(starts.errors)}), starts lost "
        f"{len(lost)}, side effects repeated {len(repeated)}, counter increments lost "
        f"{lost_increments}, steps claimed again {len(claimed_again)} (messages republished "
        f"{len(republished)}, steps redispatched {len(redispatched)}), dead letters "
        f"{len(dead_letters)}, ERROR lines {len(errors)}, all {EXECUTIONS} ended in "
        f"{took:.1f} s (killed after {killed_at_start} starts, {ended_at_kill} of them "
        f"ended; broker {separate_broker.split(':', 1)[0]})"
    )
    report("CLUSTER FAILOVER", lost, runs, logged, starts, exited)

    assert exited == [], exited
    assert not crossslot, (crossslot, stats)
    assert cross_logged == [], cross_logged
    check_ended_once("CLUSTER FAILOVER", started, results, runs, log_text)
