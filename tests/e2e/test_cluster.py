"""The state store on a Redis Cluster of three masters (issue 18): a mix of 500 executions
with two beats, every one ending as it should, once, and never a cross-slot error.

Real ``redis-server`` processes in cluster mode (tests/redis_servers.py, formed with
redis-py), ``REDIS_URL=redis+cluster://...`` and ``ORCHESTRATOR_PARTITIONS=6`` (two
partitions per master). Celery's broker is separate, as it must be (kombu has no cluster
transport): the machine's RabbitMQ when it answers, else a plain ``redis-server`` of the
test's own. Two workers and two beats run as separate processes, the client in this one.

500 executions, a ninth each of: a chain of Tasks, an inline Map, a Parallel, a Wait of
1 s, a Retry that fails once, a Catch, and the kinds whose calls cross partitions: a
Distributed Map over 3 items (each item a child execution, usually in another partition,
whose end reaches the parent through a ``mapchild`` timer that beat moves to the parent's
partition), a ``startExecution.sync:2`` child workflow of a state machine registered in
the store (the child in its own partition, its end back to the parent the same way), and
a Task on an activity with ``max_concurrency=2`` (its permits under the activity's own hash
tag, not the execution's). Each ends SUCCEEDED with the output its kind gives; its history
has each Task's ``TaskSucceeded`` exactly once per step, each timer's effect once (the
Wait exited once, the retry scheduled once more, the Map Run started and succeeded once);
each activity with a side effect counted its calls once (twice for the retried one). Each
Distributed Map's run counts 3 children succeeded of 3, each child SUCCEEDED with its
item's Task once; each child workflow ended SUCCEEDED once, linked to its parent; the
limited activity never ran more than 2 at once (and did run 2) and gave every permit
back. Meanwhile a ``rate(1 second)`` schedule (its keys under one hash tag) fires at least
twice, each firing's execution succeeding once, and is deleted. The four processes are
still running at the end, no node ever replied CROSSSLOT (``INFO errorstats``), and no
process logged a cross-slot or redirection error.

The mix and the engine of worker and beat processes are tests/mix.py's (the Sentinel
failover test runs them too).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.engine.keys import Keys
from tests.helpers import machine
from tests.mix import check_mix, engine, schedule_fired, start_mix
from tests.redis_servers import ClusterGroup

pytestmark = pytest.mark.e2e

EXECUTIONS = 500
#: Two partitions per master: the partitions' hash tags fall in equal slot ranges
#: (engine/keys.py), so each master holds two.
PARTITIONS = 6
WORKERS = 2
WORKER_THREADS = 4
BEATS = 2
#: What a process must never log with the store on a cluster: a cross-slot call, a
#: redirection that surfaced (redis-py follows MOVED/ASK itself), a cluster down or
#: resharding error, a script touching a key of another node.
CLUSTER_ERRORS = re.compile(r"\b(CROSSSLOT|MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b|non local key")


def cluster_errors_logged(logs: Path) -> list[str]:
    """The lines of the processes' logs that name a cross-slot or redirection error."""
    return [
        f"{path.name}: {line}"
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if CLUSTER_ERRORS.search(line)
    ]


def test_a_mix_of_500_executions_with_two_beats_on_a_three_master_cluster(
    redis_cluster: ClusterGroup, separate_broker: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    before = redis_cluster.error_stats()
    with engine(
        redis_cluster.url(),
        separate_broker,
        logs,
        label="cluster",
        workers=WORKERS,
        threads=WORKER_THREADS,
        beats=BEATS,
        settings={"partitions": PARTITIONS},
        extra_env={"ORCHESTRATOR_PARTITIONS": str(PARTITIONS)},
    ) as state:
        # The store's keys are spread: the six partitions' slots on all three masters.
        keys = Keys(state.settings.key_prefix, PARTITIONS)
        owners = {
            redis_cluster.slot_owner(_slot(keys.timers(p))).port for p in keys.all_partitions()
        }
        assert owners == {m.port for m in redis_cluster.masters}

        started_at = time.monotonic()
        # A schedule fires alongside the mix, from one beat or the other.
        schedule = f"cluster-every-second-{uuid.uuid4().hex[:8]}"
        pass_machine = machine({"P": {"Type": "Pass", "End": True}})
        state.client.create_schedule(
            schedule, pass_machine, "rate(1 second)", input={"tag": schedule}
        )
        started = start_mix(state, EXECUTIONS)
        pairs = check_mix(state, started)
        took = time.monotonic() - started_at
        schedule_fired(state, schedule, 2, schedule)
        # Both beats and both workers lived through it all.
        assert state.exited() == [], state.log_text()
        partitions = {keys.partition_of(s.handle.execution_id) for s in started}
        assert partitions == set(range(PARTITIONS)), partitions

        # The children's ends did cross: many a child on another master than its parent's.
        def master_of(execution_id: str) -> int:
            slot = _slot(keys.timers(keys.partition_of(execution_id)))
            return redis_cluster.slot_owner(slot).port

        crossed = sum(1 for parent, child in pairs if master_of(parent) != master_of(child))
        # 3 per Distributed Map, 1 per child workflow.
        dmaps, kids = (sum(1 for s in started if s.kind == k) for k in ("dmap", "child"))
        assert len(pairs) == 3 * dmaps + kids, (len(pairs), dmaps, kids)
        assert crossed >= len(pairs) // 3, (crossed, len(pairs))
        # Each master holds executions of the run's.
        for master in redis_cluster.masters:
            with master.client() as direct:
                held = next(
                    iter(direct.scan_iter(match=f"{state.settings.key_prefix}:*:x:*", count=1000)),
                    None,
                )
            assert held is not None, f"no execution key on the master at {master.port}"
    after = redis_cluster.error_stats()
    crossslot = {
        port: stats.get("errorstat_CROSSSLOT", 0)
        for port, stats in after.items()
        if stats.get("errorstat_CROSSSLOT", 0)
    }
    assert not crossslot, (crossslot, before, after)
    assert cluster_errors_logged(logs) == []
    print(
        f"\n[e2e] {EXECUTIONS} executions on a {len(redis_cluster.masters)}-master cluster "
        f"({PARTITIONS} partitions, broker {separate_broker.split(':', 1)[0]}): all ended once in "
        f"{took:.1f} s ({len(pairs)} children, {crossed} on another master than their "
        f"parent's); error stats {after}"
    )


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))
