"""The cost of ORCHESTRATOR_MIN_REPLICAS_ACK: milliseconds per transition, WAIT 1 or not.

Starts a master and a replica (``redis-server`` processes on loopback ports, in a
temporary directory, stopped at the end) and times executions of a one-state Pass
machine, each one transition (one commit), from one client thread: with
``min_replicas_ack=0`` and ``=1``. ``python -m benchmarks.replica_acks [count]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from orchestrator import Orchestrator
from tests.helpers import machine, wait_until
from tests.redis_servers import redis_servers

PASS_ONLY = machine({"Done": {"Type": "Pass", "End": True}})


def _time_starts(port: int, acks: int, count: int, run: str) -> list[float]:
    client = Orchestrator(
        redis_url=f"redis://127.0.0.1:{port}/0",
        broker_url="memory://",
        key_prefix=f"bench-acks-{run}",
        min_replicas_ack=acks,
    )
    try:
        for n in range(50):  # warm up: scripts loaded, definition registered
            client.start_workflow(PASS_ONLY, {}, name=f"warm-{acks}-{n}")
        times = []
        for n in range(count):
            began = time.perf_counter()
            client.start_workflow(PASS_ONLY, {"n": n}, name=f"run-{acks}-{n}")
            times.append((time.perf_counter() - began) * 1000)
        return times
    finally:
        client.close()


def _time_commits(port: int, acks: int, count: int, run: str) -> list[float]:
    """The commit alone: one ``Write`` of one field, through the store's script lane."""
    from orchestrator.config import settings_from_env
    from orchestrator.engine.store import RedisStore, Write, redis_client
    from orchestrator.testing import process_settings

    settings = settings_from_env(
        redis_url=f"redis://127.0.0.1:{port}/0",
        broker_url="memory://",
        key_prefix=f"bench-acks-{run}",
        min_replicas_ack=acks,
    )
    with process_settings(settings):
        store = RedisStore(
            redis_client(settings.redis_url or ""), settings.key_prefix, settings.partitions
        )
        try:
            key = f"{settings.key_prefix}:bench"
            for n in range(50):
                store.apply(Write().op("hset", key, "warm", n))
            times = []
            for n in range(count):
                write = Write().op("hset", key, f"f{n}", n)
                began = time.perf_counter()
                store.apply(write)
                times.append((time.perf_counter() - began) * 1000)
            return times
        finally:
            store.close()


def _report(label: str, results: dict[int, list[float]]) -> None:
    for acks, times in results.items():
        times.sort()
        print(
            f"{label}, min_replicas_ack={acks}: {len(times)}, "
            f"median {statistics.median(times):.3f} ms, "
            f"p99 {times[int(len(times) * 0.99)]:.3f} ms, "
            f"mean {statistics.fmean(times):.3f} ms"
        )


def main(count: int = 2000) -> None:
    with tempfile.TemporaryDirectory() as root, redis_servers(Path(root)) as servers:
        master = servers.start("master")
        replica = servers.start("replica", [f"replicaof 127.0.0.1 {master.port}"])

        def linked() -> bool:
            with replica.client() as client:
                return client.info("replication").get("master_link_status") == "up"

        wait_until(linked, 30)
        starts: dict[int, list[float]] = {}
        commits: dict[int, list[float]] = {}
        for round_ in range(2):  # alternate, so neither side gets the quieter machine
            for acks in (0, 1):
                run = f"{round_}-{acks}"
                commits.setdefault(acks, []).extend(_time_commits(master.port, acks, count, run))
                starts.setdefault(acks, []).extend(_time_starts(master.port, acks, count, run))
        _report("commit (one Write)", commits)
        _report("start (one transition)", starts)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
