#!/usr/bin/env python
"""Benchmarks of the orchestrator against raw Celery, measured in the same run.

    python benchmarks/run.py [--quick] [--json] [--concurrency 2] [--profile DIR]
                             [--store embedded|redis|cluster] [--broker URL] [--partitions N]
    python benchmarks/run.py --quick --cluster      # = benchmarks/cluster.py --quick

Starts its own embedded Redis, one Celery worker (prefork, ``--concurrency`` processes)
that serves both sides — the orchestrator's activities and the raw Celery baseline tasks
are registered on the same app, with the same settings — and a timer-loop process (the
"beat"). Prints a table (figure, value, goal, pass/fail); with ``--json`` the last line
of stdout is one JSON object with every figure. Progress goes to stderr.

``--store redis`` puts the store (and the raw side's end marks) on a plain
``redis-server`` started here, ``--store cluster`` on a Redis Cluster of three masters
started here (tests/redis_servers.py, ``redis+cluster://``); ``--broker`` gives Celery's
broker (a cluster needs one apart: RabbitMQ), on a queue of the run's own, deleted at the
end. ``--cluster`` runs both, one Redis then the cluster, with the same broker and
partitions, and prints their figures side by side (benchmarks/cluster.py).

How each figure is measured is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import celery  # noqa: F401 - only checks that the project's dependencies are here
except ImportError:
    # Run by a bare `python`: use the project's virtualenv (`./run bench` creates it).
    _VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
    if _VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(str(_VENV_PYTHON), [str(_VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit("benchmarks/run.py needs the project installed: run `./run bench` instead")

from benchmarks.common import celery_worker_command  # noqa: E402
from orchestrator.engine.history import base_ms, decode, stored_text  # noqa: E402

PREFIX = "bench"
QUEUE = "bench"
#: Where the store runs: the embedded Redis (default), one redis-server, a cluster.
STORES = ("embedded", "redis", "cluster")
#: The partitions of a run on a cluster when ``--partitions`` is not given: two per
#: master (each partition is one hash slot, engine/keys.py).
CLUSTER_PARTITIONS = 6


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- definitions ------------------------------------------------------------------------


def linear(n: int, comment: str, resource: str = "noop") -> dict[str, Any]:
    """n no-op Task states in a row (of activity ``resource``)."""
    states = {}
    for i in range(n):
        state: dict[str, Any] = {"Type": "Task", "Resource": resource}
        if i == n - 1:
            state["End"] = True
        else:
            state["Next"] = f"T{i + 1}"
        states[f"T{i}"] = state
    return {"Comment": comment, "StartAt": "T0", "States": states}


def with_inline(count: int) -> dict[str, Any]:
    """Task A, ``count`` inline states alternating Pass and Choice, Task B."""
    states: dict[str, Any] = {"A": {"Type": "Task", "Resource": "noop", "Next": "I0"}}
    for i in range(count):
        nxt = f"I{i + 1}" if i < count - 1 else "B"
        if i % 2 == 0:
            states[f"I{i}"] = {"Type": "Pass", "Next": nxt}
        else:
            states[f"I{i}"] = {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 0, "Next": nxt}],
                "Default": nxt,
            }
    states["B"] = {"Type": "Task", "Resource": "noop", "End": True}
    return {"Comment": f"inline{count}", "StartAt": "A", "States": states}


def map_definition() -> dict[str, Any]:
    return {
        "Comment": "map",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "N",
                    "States": {"N": {"Type": "Task", "Resource": "noop", "End": True}},
                },
                "End": True,
            }
        },
    }


def pass_map_definition() -> dict[str, Any]:
    """An inline Map whose items are one Pass state each: no task, every item runs inside
    the engine's own transitions (the start's, then beat's refill timers)."""
    return {
        "Comment": "passmap",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }


#: Limits the large Maps need, set for every process of the bench (they change nothing
#: else it measures). 20,000 Pass items write 4 history events each (80,006 in all, over
#: the default quota of 25,000) and 100,000 write 400,006; the input of 100,000 numbers
#: (~590 KB of JSON), and the Map's output, are over the default 256 KiB payload limit.
LARGE_MAP_LIMITS = {
    "ORCHESTRATOR_MAX_HISTORY_EVENTS": "500000",
    "ORCHESTRATOR_MAX_INPUT_BYTES": str(4 * 2**20),
}


def wait_definition(field: str) -> dict[str, Any]:
    wait: dict[str, Any] = {"Type": "Wait", "Next": "T"}
    wait[field] = "$.due" if field == "TimestampPath" else "$.wait"
    return {
        "Comment": "waits",
        "StartAt": "W",
        "States": {"W": wait, "T": {"Type": "Task", "Resource": "noop", "End": True}},
    }


# -- processes --------------------------------------------------------------------------


class Processes:
    """The store's Redis (embedded, one redis-server or a cluster), the worker and the
    timer process."""

    def __init__(
        self,
        concurrency: int,
        logdir: Path,
        store: str = "embedded",
        broker: str | None = None,
        partitions: int | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.logdir = logdir
        self.store = store
        self.broker = broker
        self.partitions = partitions
        self.redis: Any = None
        #: The redis-server processes of ``--store redis|cluster`` (tests/redis_servers.py).
        self.servers: Any = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.timer: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start_store(self) -> str:
        """Start the store's Redis; return its URL."""
        if self.store == "embedded":
            from orchestrator.engine.embedded import EmbeddedRedis

            self.redis = EmbeddedRedis().start()
            return str(self.redis.url)
        from tests.redis_servers import Servers, cluster_group

        self.servers = Servers(self.logdir / "redis")
        if self.store == "cluster":
            group = cluster_group(self.servers)
            log(f"a Redis Cluster of {len(group.masters)} masters: {group.url()}")
            return group.url()
        server = self.servers.start("redis")
        return f"redis://127.0.0.1:{server.port}/0"

    def start(self) -> None:
        redis_url = self.start_store()
        self.env = dict(os.environ)
        self.env.update(
            REDIS_URL=redis_url,
            ORCHESTRATOR_TASK_MODULES="benchmarks.bench_tasks",
            ORCHESTRATOR_KEY_PREFIX=PREFIX,
            ORCHESTRATOR_QUEUE=QUEUE,
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **LARGE_MAP_LIMITS,
        )
        overrides = {"BROKER_URL": self.broker, "ORCHESTRATOR_PARTITIONS": self.partitions}
        self.env.update({name: str(value) for name, value in overrides.items() if value})
        for name in (
            "REDIS_URL",
            "ORCHESTRATOR_TASK_MODULES",
            "ORCHESTRATOR_KEY_PREFIX",
            "ORCHESTRATOR_QUEUE",
            *LARGE_MAP_LIMITS,
            *(name for name, value in overrides.items() if value),
        ):
            os.environ[name] = self.env[name]
        # This process imported orchestrator (and so configured Celery) before REDIS_URL
        # was set: re-read the settings and point the app at the embedded server.
        from orchestrator import config
        from orchestrator.engine.celery_app import reconfigure
        from orchestrator.engine.store import reset_stores

        config.configure(None)
        reset_stores()
        reconfigure()
        import benchmarks.bench_tasks  # noqa: F401 - registers the activity here too

        self.worker = subprocess.Popen(
            celery_worker_command(QUEUE, self.concurrency, f"bench-{uuid.uuid4().hex[:6]}@%h"),
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=open(self.logdir / "worker.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        if (ROOT / "orchestrator" / "beat.py").exists():
            # Production's way: celery beat with the orchestrator's scheduler.
            timer_cmd = [
                celery,
                "-A",
                "orchestrator.engine.celery_app",
                "beat",
                "-S",
                "orchestrator.engine.beat:OrchestratorScheduler",
                "-l",
                "WARNING",
                "--pidfile=",
                "-s",
                str(self.logdir / "beat-schedule"),
            ]
        else:
            timer_cmd = [sys.executable, str(ROOT / "benchmarks" / "timer_process.py")]
        self.timer = subprocess.Popen(
            timer_cmd,
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=open(self.logdir / "timer.log", "wb"),
            stderr=subprocess.STDOUT,
        )

    def worker_pids(self) -> list[int]:
        """The worker's main process and its pool children."""
        import psutil

        if self.worker is None:
            return []
        try:
            main = psutil.Process(self.worker.pid)
            return [main.pid] + [c.pid for c in main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        for proc in (self.worker, self.timer):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self.worker, self.timer):
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if self.broker:
            # The run's own queue on a broker that outlives it (RabbitMQ): best effort.
            try:
                from orchestrator.engine.celery_app import app

                with app.connection_for_write() as connection:
                    connection.default_channel.queue_delete(QUEUE)
            except Exception as exc:  # noqa: BLE001 - report, go on stopping
                log(f"queue {QUEUE} not deleted: {type(exc).__name__}: {exc}")
        if self.redis is not None:
            self.redis.stop()
        if self.servers is not None:
            self.servers.stop_all()


def rss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


# -- the store's Redis: one server or a cluster ------------------------------------------


def is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def server_infos(client: Any, section: str) -> list[dict[str, Any]]:
    """``INFO section`` of the server, or of every master of a cluster."""
    if not is_cluster(client):
        return [client.info(section)]
    from redis.cluster import RedisCluster

    return list(client.info(section, target_nodes=RedisCluster.PRIMARIES).values())


def used_memory(client: Any) -> int:
    """``used_memory``, summed over a cluster's masters."""
    return sum(int(info["used_memory"]) for info in server_infos(client, "memory"))


def memory_purge(client: Any) -> None:
    if not is_cluster(client):
        client.memory_purge()
        return
    from redis.cluster import RedisCluster

    client.memory_purge(target_nodes=RedisCluster.PRIMARIES)


def enable_keyspace_events(client: Any) -> None:
    """Keyspace notifications of hash commands (``Kh``), on every node of a cluster."""
    if not is_cluster(client):
        client.config_set("notify-keyspace-events", "Kh")
        return
    from redis.cluster import RedisCluster

    client.config_set("notify-keyspace-events", "Kh", target_nodes=RedisCluster.ALL_NODES)


class KeyspaceEvents:
    """Subscriptions to keys' notifications (``__keyspace@0__:<key>``) where they are
    published: on the one server, or, in a cluster, on the master of the key's slot (a
    node publishes the events of its own keys only, to its own subscribers). With one
    server this is one pubsub, read as before; with several, each is drained, then their
    sockets are waited on together (no polling loop)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pubsubs: dict[str, Any] = {}

    def pubsub_for(self, key: str) -> Any:
        """The pubsub of the Redis that publishes ``key``'s events."""
        if not is_cluster(self.client):
            name, node = "", None
        else:
            node = self.client.get_node_from_key(key)
            name = node.name
        pubsub = self._pubsubs.get(name)
        if pubsub is None:
            if node is None:
                pubsub = self.client.pubsub()
            else:
                import redis

                pubsub = redis.Redis(host=node.host, port=node.port, decode_responses=True).pubsub()
            self._pubsubs[name] = pubsub
        return pubsub

    def subscribe(self, keys: list[str]) -> int:
        """Subscribe to the keys' channels (500 to a call); returns how many."""
        channels: dict[int, tuple[Any, list[str]]] = {}
        for key in keys:
            pubsub = self.pubsub_for(key)
            channels.setdefault(id(pubsub), (pubsub, []))[1].append(f"__keyspace@0__:{key}")
        for pubsub, names in channels.values():
            for i in range(0, len(names), 500):
                pubsub.subscribe(*names[i : i + 500])
        return len(keys)

    def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message of any of the pubsubs, waiting up to ``timeout`` s."""
        pubsubs = list(self._pubsubs.values())
        if len(pubsubs) == 1:
            return pubsubs[0].get_message(timeout=timeout)  # type: ignore[no-any-return]
        import select

        deadline = time.perf_counter() + timeout
        while True:
            for pubsub in pubsubs:
                if pubsub.connection is not None:
                    msg = pubsub.get_message(timeout=0)
                    if msg is not None:
                        return msg  # type: ignore[no-any-return]
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            sockets = [
                p.connection._sock
                for p in pubsubs
                if p.connection is not None and p.connection._sock
            ]
            if not sockets:
                time.sleep(remaining)
                return None
            select.select(sockets, [], [], remaining)

    def close(self) -> None:
        for pubsub in self._pubsubs.values():
            pubsub.close()
        self._pubsubs.clear()


# -- waiting for ends -------------------------------------------------------------------


class EndWaiter:
    """Waits for ``HGET key status`` to leave RUNNING, woken by keyspace notifications.

    Used identically for both sides: a workflow's end is the HSET of its execution
    record's status, a raw chain's end the HSET its last task makes. No polling loop.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        enable_keyspace_events(client)
        self.events = KeyspaceEvents(client)

    def run(self, key: str, start: Callable[[], Any], timeout: float = 120.0) -> float:
        channel = f"__keyspace@0__:{key}"
        pubsub = self.events.pubsub_for(key)
        pubsub.subscribe(channel)
        while True:  # the subscription must be live before the start
            msg = pubsub.get_message(timeout=1.0)
            if msg and msg["type"] == "subscribe":
                break
        t0 = time.perf_counter()
        start()
        deadline = t0 + timeout
        try:
            while True:
                msg = pubsub.get_message(timeout=0.5)
                if msg is None or msg["type"] == "message":
                    status = self.client.hget(key, "status")
                    if status is not None and status != "RUNNING":
                        if status != "SUCCEEDED":
                            raise RuntimeError(f"{key} ended {status}")
                        return time.perf_counter() - t0
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{key} did not end within {timeout} s")
        finally:
            pubsub.unsubscribe(channel)
            while pubsub.get_message(timeout=0.01):
                pass


def run_all(client: Any, keys: list[str], start: Callable[[], Any], timeout: float) -> float:
    """Subscribe to the keys' keyspace events, call ``start``, wait until all ended.

    Returns the seconds from the start until the last one ended. Each key's status is
    read once per HSET notification of that key, so the waiting costs the same per
    execution on both sides and no polling loop competes with the worker for the CPUs.
    """
    pubsub = KeyspaceEvents(client)
    channels = {f"__keyspace@0__:{key}": key for key in keys}
    names = list(channels)
    pubsub.subscribe(keys)
    confirmed = 0
    while confirmed < len(names):
        msg = pubsub.get_message(timeout=5.0)
        if msg is None:
            raise TimeoutError("subscriptions not confirmed")
        if msg["type"] == "subscribe":
            confirmed += 1
    pending = set(keys)
    t0 = time.perf_counter()
    start()
    deadline = t0 + timeout
    try:
        while pending:
            msg = pubsub.get_message(timeout=0.5)
            if msg is None:
                check = list(pending)  # a quiet moment: look at all of them
            elif msg["type"] == "message" and msg["data"] == "hset":
                check = [channels[msg["channel"]]]
            else:
                continue
            pipe = client.pipeline(transaction=False)
            for key in check:
                pipe.hget(key, "status")
            for key, status in zip(check, pipe.execute(), strict=True):
                if status is None or status == "RUNNING":
                    continue
                if status != "SUCCEEDED":
                    raise RuntimeError(f"{key} ended {status}")
                pending.discard(key)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(pending)} of {len(keys)} still running after {timeout} s")
        return time.perf_counter() - t0
    finally:
        pubsub.close()


def wait_all(client: Any, keys: list[str], timeout: float, interval: float = 0.01) -> float:
    """Poll (pipelined HGETs) until every key's status left RUNNING; return the end time."""
    pending = list(keys)
    deadline = time.perf_counter() + timeout
    while pending:
        pipe = client.pipeline(transaction=False)
        for key in pending:
            pipe.hget(key, "status")
        statuses = pipe.execute()
        failed = [
            k
            for k, s in zip(pending, statuses, strict=True)
            if s not in (None, "RUNNING", "SUCCEEDED")
        ]
        if failed:
            raise RuntimeError(
                f"{len(failed)} ended badly, e.g. {failed[0]}: {client.hget(failed[0], 'status')}"
            )
        pending = [k for k, s in zip(pending, statuses, strict=True) if s != "SUCCEEDED"]
        if not pending:
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(keys)} still running after {timeout} s")
        time.sleep(interval)
    return time.perf_counter()


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median of the ratios of runs made back to back (same index)."""
    return round(statistics.median(a / b for a, b in zip(ours, theirs, strict=True)), 3)


# -- the benchmark ----------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        quick: bool,
        concurrency: int,
        logdir: Path,
        profile: Path | None,
        store: str = "embedded",
        broker: str | None = None,
        partitions: int | None = None,
    ):
        self.quick = quick
        self.procs = Processes(concurrency, logdir, store, broker, partitions)
        self.profile = profile
        self.figures: dict[str, Any] = {}
        self.notes: dict[str, str] = {}
        self.costs: dict[str, Any] = {}

    # helpers
    def exec_key(self, execution_id: str) -> str:
        # The engine's own key schema (engine/keys.py: partitioned since issue 18).
        from orchestrator.config import get_settings
        from orchestrator.engine.keys import Keys

        return Keys(PREFIX, get_settings().partitions).execution(execution_id)

    def _index_size(self, index: str) -> int:
        """Entries in an index (``timers``, ``leases``) over all the partitions: one
        sorted set per partition since issue 18 (``{p}:{<tag>}:timers``...)."""
        from orchestrator.config import get_settings
        from orchestrator.engine.keys import Keys

        keys = Keys(PREFIX, get_settings().partitions)
        pipe = self.client.pipeline(transaction=False)
        for p in keys.all_partitions():
            pipe.zcard(getattr(keys, index)(p))
        return sum(int(n) for n in pipe.execute())

    def start_wf(self, definition: dict[str, Any], input: Any, name: str) -> Any:
        from orchestrator import start_workflow

        return start_workflow(definition, input, name=name)

    def raw_chain(self, n: int, done_key: str) -> Any:
        from celery import chain

        from benchmarks.bench_tasks import raw_last, raw_noop

        head = raw_noop.s({"n": 0}).set(queue=QUEUE)
        tail = [raw_noop.s().set(queue=QUEUE) for _ in range(n - 2)]
        return chain(head, *tail, raw_last.s(done_key).set(queue=QUEUE))

    def wait_ready(self) -> None:
        key = f"benchraw:ready:{uuid.uuid4().hex}"
        self.waiter.run(key, lambda: self.raw_chain(2, key).apply_async(), timeout=60)

    def run(self) -> None:
        self.procs.start()
        from orchestrator.engine.store import get_store

        self.store = get_store()
        self.client = self.store.client
        self.waiter = EndWaiter(self.client)
        log("waiting for the worker")
        self.wait_ready()
        log("worker ready")
        steps: list[tuple[str, Callable[[], None]]] = [
            ("latency", self.bench_latency),
            ("throughput", self.bench_throughput),
            ("inline", self.bench_inline),
            ("start", self.bench_start),
            ("memory", self.bench_memory),
            ("map", self.bench_map),
            ("map_large", self.bench_map_large),
            ("map_curve", self.bench_map_curve),
            ("dmap", self.bench_dmap),
            ("timers", self.bench_timers),
            ("limits", self.bench_limits),
        ]
        for name, step in steps:
            log(f"-- {name}")
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - report, go on with the others
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                self.notes[name] = f"{type(exc).__name__}: {exc}"[:300]

    # -- figures -------------------------------------------------------------------------

    def bench_latency(self) -> None:
        # A pair takes ~0.1 s: 20 pairs keep the quick run's median steady too.
        reps = 20 if self.quick else 30
        warm = 3
        definition = linear(20, "linear20")
        wf: list[float] = []
        raw: list[float] = []
        for i in range(warm + reps):
            # Interleave both sides, so drift (caches, other load) hits both alike.
            name = uuid.uuid4().hex
            t_wf = self.waiter.run(
                self.exec_key(name), lambda name=name: self.start_wf(definition, {"n": 0}, name)
            )
            key = f"benchraw:{uuid.uuid4().hex}"
            chain = self.raw_chain(20, key)
            t_raw = self.waiter.run(key, chain.apply_async)
            if i >= warm:
                wf.append(t_wf / 20 * 1000)
                raw.append(t_raw / 20 * 1000)
        self.figures["task_transition_ms"] = round(statistics.median(wf), 3)
        self.figures["celery_hop_ms"] = round(statistics.median(raw), 3)
        # Each workflow run is paired with the raw chain run right after it: the median of
        # the pairs' ratios is robust to load that comes and goes on a shared machine.
        self.figures["transition_overhead_ratio"] = paired_ratio(wf, raw)
        log(
            f"linear20: wf per state {statistics.median(wf):.3f} ms, raw per hop "
            f"{statistics.median(raw):.3f} ms (n={reps})"
        )

    def _costs(self) -> dict[str, Any]:
        """CPU seconds so far of the worker processes, Redis, and Redis's command stats."""
        import psutil

        worker = main = 0.0
        for i, pid in enumerate(self.procs.worker_pids()):
            try:
                times = psutil.Process(pid).cpu_times()
                worker += times.user + times.system
                if i == 0:
                    main = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        timer = 0.0
        if self.procs.timer is not None:
            try:
                times = psutil.Process(self.procs.timer.pid).cpu_times()
                timer = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        # Redis: the server's, or the sum of a cluster's masters'.
        cpu = server_infos(self.client, "cpu")
        calls: dict[str, int] = {}
        for stats in server_infos(self.client, "commandstats"):
            for k, v in stats.items():
                name = k.removeprefix("cmdstat_")
                calls[name] = calls.get(name, 0) + v["calls"]
        return {
            "worker": worker,
            "main": main,
            "timer": timer,
            "driver": time.process_time(),
            "redis": sum(float(c["used_cpu_user"]) + float(c["used_cpu_sys"]) for c in cpu),
            "calls": calls,
        }

    def _cost_delta(self, before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
        calls = {k: (v - before["calls"].get(k, 0)) / n for k, v in after["calls"].items()}
        return {
            "worker_cpu_ms": round((after["worker"] - before["worker"]) / n * 1000, 3),
            # Of which the worker's main process: the consumer (receives, checks and
            # acknowledges messages, hands them to the pool), apart from the pool's work.
            "main_cpu_ms": round((after["main"] - before["main"]) / n * 1000, 3),
            "redis_cpu_ms": round((after["redis"] - before["redis"]) / n * 1000, 3),
            # The beat (timer) process and this driver: a Pass-item Map runs in the start
            # call (the driver) and in beat's refill timers, not in the worker.
            "timer_cpu_ms": round((after["timer"] - before["timer"]) / n * 1000, 3),
            "driver_cpu_ms": round((after["driver"] - before["driver"]) / n * 1000, 3),
            "redis_calls": {k: round(v, 2) for k, v in sorted(calls.items()) if v >= 0.05},
        }

    def _throughput_round(
        self, executions: int, length: int, raw_first: bool = True
    ) -> tuple[float, float]:
        definition = linear(length, "linear10")
        n = executions * length

        def raw_side() -> float:
            # Raw Celery: 200 chains of 10.
            keys = [f"benchraw:{uuid.uuid4().hex}" for _ in range(executions)]
            chains = [self.raw_chain(length, k) for k in keys]
            before = self._costs()
            elapsed = run_all(self.client, keys, lambda: [c.apply_async() for c in chains], 300)
            self.costs["celery_per_task"] = self._cost_delta(before, self._costs(), n)
            return elapsed

        def wf_side() -> float:
            # The orchestrator: 200 executions of a 10-Task workflow.
            names = [uuid.uuid4().hex for _ in range(executions)]
            profiler = self.start_profiler("throughput")
            before = self._costs()
            elapsed = run_all(
                self.client,
                [self.exec_key(x) for x in names],
                lambda: [self.start_wf(definition, {"n": 0}, x) for x in names],
                300,
            )
            self.costs["orchestrator_per_transition"] = self._cost_delta(before, self._costs(), n)
            self.stop_profiler(profiler)
            return elapsed

        if raw_first:
            t_raw, t_wf = raw_side(), wf_side()
        else:
            t_wf, t_raw = wf_side(), raw_side()
        log(f"costs per task: raw {self.costs['celery_per_task']}")
        log(f"costs per transition: orchestrator {self.costs['orchestrator_per_transition']}")
        return n / t_wf, n / t_raw

    def bench_throughput(self) -> None:
        rounds = 2 if self.quick else 4
        wf, raw = [], []
        for i in range(rounds):
            a, b = self._throughput_round(200, 10, raw_first=i % 2 == 0)
            wf.append(a)
            raw.append(b)
            log(f"throughput: wf {a:.0f} transitions/s, raw {b:.0f} tasks/s")
        self.figures["task_transitions_per_s"] = round(statistics.median(wf), 1)
        self.figures["celery_tasks_per_s"] = round(statistics.median(raw), 1)
        self.figures["throughput_ratio"] = paired_ratio(wf, raw)
        # Load-independent estimate: on a CPU-bound box (2 cores shared by the worker,
        # Redis and the driver) throughput goes as 1 / (CPU per task, worker + Redis).
        wf_cpu = self.costs["orchestrator_per_transition"]
        raw_cpu = self.costs["celery_per_task"]
        self.figures["throughput_ratio_cpu"] = round(
            (raw_cpu["worker_cpu_ms"] + raw_cpu["redis_cpu_ms"])
            / (wf_cpu["worker_cpu_ms"] + wf_cpu["redis_cpu_ms"]),
            3,
        )

    def bench_inline(self) -> None:
        count = 200
        reps = 10 if self.quick else 25
        big, small = with_inline(count + 1), with_inline(1)
        t_big, t_small = [], []
        for i in range(reps + 2):
            n1, n2 = uuid.uuid4().hex, uuid.uuid4().hex
            a = self.waiter.run(self.exec_key(n1), lambda n1=n1: self.start_wf(big, {"n": 1}, n1))
            b = self.waiter.run(self.exec_key(n2), lambda n2=n2: self.start_wf(small, {"n": 1}, n2))
            if i >= 2:
                t_big.append(a)
                t_small.append(b)
        per_state_us = (statistics.median(t_big) - statistics.median(t_small)) / count * 1e6
        self.figures["inline_state_us"] = round(per_state_us, 1)
        self.figures["inline_state_us_in_process"] = round(self._inline_in_process(count), 1)
        if "task_transition_ms" in self.figures and per_state_us > 0:
            self.figures["inline_speedup"] = round(
                self.figures["task_transition_ms"] * 1000 / per_state_us, 1
            )
        log(
            f"inline: {per_state_us:.1f} us/state end to end, "
            f"{self.figures['inline_state_us_in_process']} us/state in process"
        )

    def _inline_in_process(self, count: int) -> float:
        """Interpreter only (no Redis): task_succeeded of A through the inline states."""
        from orchestrator.engine import activities
        from orchestrator.language.definition import parse_definition
        from orchestrator.language.interpreter import ExecutionInfo, Interpreter, StepRecord

        def cost(definition: dict[str, Any]) -> float:
            machine = parse_definition(definition)
            info = ExecutionInfo("x", "x", "w", time.time(), {"n": 1})
            interp = Interpreter(machine, info, activities.resolve, max_inline_states=10_000)
            record = StepRecord(
                state="A", input={"n": 1}, entered=time.time(), params={"n": 1}, activity="noop"
            )
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                interp.task_succeeded("A", record, {"n": 1}, time.time())
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        return (cost(with_inline(count + 1)) - cost(with_inline(1))) / count * 1e6

    def bench_start(self) -> None:
        from orchestrator import start_workflow

        reps = 100 if self.quick else 300
        definition = linear(5, "linear5")
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            start_workflow(definition, {"n": 0})
            times.append(time.perf_counter() - t0)
            time.sleep(0.01)  # let the worker run it, so starts do not queue behind work
        times.sort()
        self.figures["start_ms"] = round(statistics.median(times) * 1000, 3)
        self.figures["start_p99_ms"] = round(times[int(len(times) * 0.99) - 1] * 1000, 3)

    def bench_memory(self) -> None:
        n = 200 if self.quick else 1000
        definition = linear(5, "linear5")
        # Settle: everything started so far has finished.
        time.sleep(0.5)
        memory_purge(self.client)
        before = used_memory(self.client)
        names = []
        for _ in range(n):
            name = uuid.uuid4().hex
            self.start_wf(definition, {"n": 0}, name)
            names.append(name)
        wait_all(self.client, [self.exec_key(x) for x in names], timeout=300, interval=0.05)
        time.sleep(0.5)
        after = used_memory(self.client)
        per = (after - before) / n
        # Cross-check: MEMORY USAGE of one execution's own keys.
        sample = names[: min(50, n)]
        usage = []
        parts: dict[str, list[int]] = {"record": [], "history": [], "steps": []}
        for name in sample:
            total = 0
            for part, key in zip(
                parts,
                (self.exec_key(name), f"{self.exec_key(name)}:h", f"{self.exec_key(name)}:s"),
                strict=True,
            ):
                size = int(self.client.memory_usage(key, samples=0) or 0)
                parts[part].append(size)
                total += size
            usage.append(total)
        history_len = self.client.xlen(f"{self.exec_key(names[0])}:h")
        record = self.client.hgetall(self.exec_key(names[0]))
        self.costs["memory_breakdown_bytes"] = {
            **{part: round(statistics.mean(v)) for part, v in parts.items()},
            "record_definition_field": len(record.get("definition", "").encode()),
            "history_events": history_len,
            "history_payload": sum(
                len(stored_text(fields).encode())
                for _, fields in self.client.xrange(f"{self.exec_key(names[0])}:h")
            ),
        }
        log(f"memory breakdown: {self.costs['memory_breakdown_bytes']}")
        self.figures["redis_bytes_per_execution"] = round(per)
        self.figures["redis_key_bytes_per_execution"] = round(statistics.mean(usage))
        self.notes["memory"] = (
            f"{n} executions of a 5-Task workflow; {history_len} history events each; "
            f"leases left: {self._index_size('leases')}"
        )
        log(
            f"memory: {per:.0f} B/execution (used_memory), {statistics.mean(usage):.0f} B "
            f"(MEMORY USAGE of record+history+steps)"
        )

    def bench_map(self) -> None:
        from celery import group

        from benchmarks.bench_tasks import raw_join

        items = 1000
        # A pair takes ~2.5 s and the machine's speed drifts between pairs: the median
        # of 8 (4 quick) is steadier than that of 4 (2).
        reps = 4 if self.quick else 8
        definition = map_definition()
        wf, raw = [], []

        def raw_side() -> None:
            key = f"benchraw:{uuid.uuid4().hex}"
            counter = f"{key}:n"
            g = group(raw_join.s(i, counter, items, key).set(queue=QUEUE) for i in range(items))
            before = self._costs()
            raw.append(self.waiter.run(key, g.apply_async, timeout=300))
            self.costs["celery_group_per_item"] = self._cost_delta(before, self._costs(), items)

        def wf_side() -> None:
            name = uuid.uuid4().hex
            profiler = self.start_profiler("map")
            before = self._costs()
            wf.append(
                self.waiter.run(
                    self.exec_key(name),
                    lambda: self.start_wf(definition, {"items": list(range(items))}, name),
                    timeout=300,
                )
            )
            self.costs["map_per_item"] = self._cost_delta(before, self._costs(), items)
            self.stop_profiler(profiler)

        for rep in range(reps):
            # Alternate which side goes first: other load on the machine hits both alike.
            for side in (raw_side, wf_side) if rep % 2 == 0 else (wf_side, raw_side):
                side()
            log(f"map costs per item: raw {self.costs['celery_group_per_item']}")
            log(f"map costs per item: orchestrator {self.costs['map_per_item']}")
            log(f"map: wf {wf[-1]:.2f} s, raw group+join {raw[-1]:.2f} s")
        self.figures["map_s"] = round(statistics.median(wf), 3)
        self.figures["celery_group_s"] = round(statistics.median(raw), 3)
        self.figures["map_ratio"] = paired_ratio(wf, raw)

    def _execution_keys(self, execution_id: str) -> dict[str, str]:
        """The keys a Pass-item Map's execution holds, by part (keys.py's schema)."""
        from orchestrator.config import get_settings
        from orchestrator.engine.keys import Keys

        keys = Keys(PREFIX, get_settings().partitions)
        return {
            "record": keys.execution(execution_id),
            "steps": keys.steps(execution_id),
            "history": keys.history(execution_id),
            "branch_hash": keys.branches(execution_id, "M"),
        }

    def _key_bytes(self, keys: dict[str, str], samples: int) -> dict[str, int]:
        """MEMORY USAGE of each key (0 if absent); ``samples`` 0: every element."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys.values():
            pipe.memory_usage(key, samples=samples)
        return {part: int(size or 0) for part, size in zip(keys, pipe.execute(), strict=True)}

    def _pass_map(self, items: int, label: str) -> dict[str, Any]:
        """One inline Map of ``items`` Pass items: wall time, costs and Redis memory.

        While it runs a thread samples, every 0.25 s, ``used_memory`` and MEMORY USAGE
        (SAMPLES 0: every element) of the execution's record, step hash, history and the
        Map's branch hash; their peak is the "running" figure. Redis's default of 5
        samples is no good here: the branch hash's few ``k{j}`` fields hold 128 inputs
        each among thousands of small results, and 5 samples put it at ~10 times its
        size. After the end: the same MEMORY USAGE and the ``used_memory`` growth since
        before the start.
        """
        definition = pass_map_definition()
        payload = {"items": list(range(items))}
        name = uuid.uuid4().hex
        keys = self._execution_keys(name)
        time.sleep(0.3)
        memory_purge(self.client)
        base = used_memory(self.client)
        peak_keys: dict[str, int] = {}
        peak_total = 0
        peak_used = base
        sampled = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_total, peak_keys, peak_used, sampled
            while not stop.wait(0.25):
                try:
                    sizes = self._key_bytes(keys, 0)
                    used = used_memory(self.client)
                except Exception:  # noqa: BLE001 - a sample lost, not the run
                    continue
                sampled += 1
                if sum(sizes.values()) > peak_total:
                    peak_total, peak_keys = sum(sizes.values()), sizes
                peak_used = max(peak_used, used)

        sampler = threading.Thread(target=sample, daemon=True)
        profiler = self.start_profiler(
            label,
            [self.procs.timer.pid, *self.procs.worker_pids()[1:]],  # type: ignore[union-attr]
        )
        before = self._costs()
        sampler.start()
        try:
            wall = self.waiter.run(
                keys["record"],
                lambda: self.start_wf(definition, payload, name),
                timeout=max(300.0, items * 0.02),
            )
        finally:
            stop.set()
            sampler.join()
            self.stop_profiler(profiler)
        costs = self._cost_delta(before, self._costs(), items)
        time.sleep(0.5)
        after_keys = self._key_bytes(keys, 0)
        after_used = used_memory(self.client)
        history_events = self.client.xlen(keys["history"])
        record = self.client.hgetall(keys["record"])
        # What an item leaves in the history: its events' stored text (compact JSON,
        # orchestrator/engine/history.py), by type (first 1,000 events).
        event_bytes: dict[str, list[int]] = {}
        for n, (_, fields) in enumerate(self.client.xrange(keys["history"], count=1000), 1):
            event = decode(fields, n, base_ms(record.get("start")))
            kind = event["type"] if event is not None else "?"
            event_bytes.setdefault(kind, []).append(len(stored_text(fields).encode()))
        result = {
            "items": items,
            "wall_s": round(wall, 3),
            "ms_per_item": round(wall / items * 1000, 4),
            # None: the Map ended before the first sample.
            "running_key_bytes_per_item": round(peak_total / items, 1) if sampled else None,
            "running_key_bytes_peak": peak_keys,
            "running_used_memory_per_item": (
                round((peak_used - base) / items, 1) if sampled else None
            ),
            "running_samples": sampled,
            "after_key_bytes_per_item": round(sum(after_keys.values()) / items, 1),
            "after_key_bytes": after_keys,
            "after_used_memory_per_item": round((after_used - base) / items, 1),
            "history_events": history_events,
            "record_input_bytes": len(record.get("input", "").encode()),
            "record_output_bytes": len(record.get("output", "").encode()),
            "history_event_json_bytes": {
                kind: [len(sizes), round(statistics.mean(sizes), 1)]
                for kind, sizes in event_bytes.items()
            },
            "costs_per_item": costs,
        }
        log(
            f"{label}: {items} Pass items in {wall:.2f} s ({result['ms_per_item']} ms/item); "
            f"Redis per item running {result['running_key_bytes_per_item']} B (keys), "
            f"{result['running_used_memory_per_item']} B (used_memory); after "
            f"{result['after_key_bytes_per_item']} B (keys) {after_keys}, "
            f"{result['after_used_memory_per_item']} B (used_memory); costs/item {costs}"
        )
        return result

    def bench_map_large(self) -> None:
        """map_large_ratio: an inline Map of 20,000 Pass items against a raw Celery group
        of 20,000 no-op tasks joined by a counter (the last to finish marks the end)."""
        from celery import group

        from benchmarks.bench_tasks import raw_join

        items = 20_000
        reps = 2 if self.quick else 3
        wf: list[float] = []
        raw: list[float] = []
        runs: list[dict[str, Any]] = []

        def raw_side() -> None:
            key = f"benchraw:{uuid.uuid4().hex}"
            counter = f"{key}:n"
            g = group(raw_join.s(i, counter, items, key).set(queue=QUEUE) for i in range(items))
            before = self._costs()
            raw.append(self.waiter.run(key, g.apply_async, timeout=600))
            self.costs["celery_group_large_per_item"] = self._cost_delta(
                before, self._costs(), items
            )
            log(f"map_large: raw group of {items} + join {raw[-1]:.2f} s")

        def wf_side() -> None:
            run = self._pass_map(items, "map_large")
            runs.append(run)
            wf.append(run["wall_s"])

        for rep in range(reps):
            for side in (raw_side, wf_side) if rep % 2 == 0 else (wf_side, raw_side):
                side()
        self.costs["map_large_runs"] = runs
        self.figures["map_large_s"] = round(statistics.median(wf), 3)
        self.figures["celery_group_large_s"] = round(statistics.median(raw), 3)
        self.figures["map_large_ratio"] = paired_ratio(wf, raw)
        # Memory: the last run's (each run's figures are in costs.map_large_runs).
        last = runs[-1]
        self.figures["redis_bytes_per_map_item_running"] = last["running_key_bytes_per_item"]
        self.figures["redis_bytes_per_map_item"] = last["after_key_bytes_per_item"]
        self.figures["redis_used_memory_per_map_item"] = last["after_used_memory_per_item"]
        self.figures["redis_used_memory_per_map_item_running"] = last[
            "running_used_memory_per_item"
        ]
        self.notes["map_large"] = (
            f"{items} Pass items, {last['history_events']} history events; after the end "
            f"(MEMORY USAGE, bytes): {last['after_key_bytes']}; record input "
            f"{last['record_input_bytes']} B, output {last['record_output_bytes']} B; history "
            f"events [count in the first 1,000, mean JSON bytes]: "
            f"{last['history_event_json_bytes']}"
        )

    def bench_map_curve(self) -> None:
        """Cost per item of inline Pass-item Maps from 1,000 to 100,000 items."""
        sizes = (1_000, 5_000, 20_000, 100_000)
        # Small Maps end within a second: more runs for a steadier median.
        reps = {1_000: 5, 5_000: 3, 20_000: 1, 100_000: 1}
        curve = []
        for items in sizes:
            runs = [self._pass_map(items, f"map_curve_{items}") for _ in range(reps[items])]
            best = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run
            curve.append(
                {
                    "items": items,
                    "runs": len(runs),
                    "wall_s": [r["wall_s"] for r in runs],
                    "ms_per_item": best["ms_per_item"],
                    "running_bytes_per_item": best["running_key_bytes_per_item"],
                    "after_bytes_per_item": best["after_key_bytes_per_item"],
                    "after_used_memory_per_item": best["after_used_memory_per_item"],
                    "history_bytes_per_item": round(best["after_key_bytes"]["history"] / items, 1),
                    "record_bytes_per_item": round(best["after_key_bytes"]["record"] / items, 1),
                    "cpu_ms_per_item": {
                        k: v for k, v in best["costs_per_item"].items() if k.endswith("_ms")
                    },
                }
            )
        self.costs["map_curve"] = curve
        first, last = curve[0]["ms_per_item"], curve[-1]["ms_per_item"]
        # "Flat": the largest Map costs per item what the smallest does.
        self.figures["map_cost_per_item_growth"] = round(last / first, 3)
        print("\nInline Map of Pass items: cost per item by size (median run)")
        print(
            f"{'items':>8} {'runs':>4} {'wall s':>8} {'ms/item':>8} {'B/item running':>15} "
            f"{'B/item after':>13} {'history B/item':>15} {'used_memory B/item':>19}"
        )
        for row in curve:
            print(
                f"{row['items']:>8} {row['runs']:>4} {statistics.median(row['wall_s']):>8.2f} "
                f"{row['ms_per_item']:>8.4f} {row['running_bytes_per_item']!s:>15} "
                f"{row['after_bytes_per_item']!s:>13} {row['history_bytes_per_item']!s:>15} "
                f"{row['after_used_memory_per_item']!s:>19}"
            )
        print()

    def bench_dmap(self) -> None:
        """``dmap_items_per_s`` / ``dmap_ratio`` (a Distributed Map of 100,000 items from a
        JSONL object in S3 against Celery ``chunks`` over the same items) are measured by
        ``benchmarks/dmap.py``, which starts moto's S3 server and its own worker and beat:
        this run only says where."""
        self.notes["dmap"] = (
            "dmap_items_per_s and dmap_ratio (<= 1.5): python benchmarks/dmap.py "
            "(moto's S3 server; its runs are in benchmarks/RESULTS.md)"
        )

    def _wait_field(self) -> str:
        """TimestampPath if the engine supports it (all timers due together), else SecondsPath."""
        for field in ("TimestampPath", "SecondsPath"):
            name = uuid.uuid4().hex
            due = dt.datetime.fromtimestamp(math.ceil(time.time()) + 1, dt.UTC)
            payload = {"due": due.strftime("%Y-%m-%dT%H:%M:%SZ"), "wait": 1}
            try:
                self.waiter.run(
                    self.exec_key(name),
                    lambda f=field, p=payload, x=name: self.start_wf(wait_definition(f), p, x),
                    timeout=15,
                )
                return field
            except Exception as exc:  # noqa: BLE001
                log(f"Wait {field} not usable: {type(exc).__name__}: {exc}")
        raise RuntimeError("Wait states do not run")

    def bench_limits(self) -> None:
        """Global activity limits' cost per step (issue 13 item 4), against the same
        no-op unlimited, runs interleaved and paired.

        * ``limited_step_ratio``: a linear20 of ``noop_permit`` (max_concurrency 10,000:
          never binds; each step takes a permit in Redis before its message is sent and
          gives it back after its commit, and no Celery chain runs through limited steps)
          against linear20 of ``noop``, per step, one execution at a time.
        * ``rate_limited_step_ratio``: the same with ``noop_rate`` (a token per step).
        * ``limited_throughput_ratio``: 100 executions of 10 steps of ``noop_pool``
          (max_concurrency = the pool, 2: most steps wait in Redis and are handed a
          permit by the step ending before them) against ``noop``: time over time.
        """
        from benchmarks.bench_tasks import LIMITS_POOL

        reps = 10 if self.quick else 20
        warm = 2
        plain = linear(20, "limits-plain")
        sides = {
            "permit": linear(20, "limits-permit", "noop_permit"),
            "rate": linear(20, "limits-rate", "noop_rate"),
        }
        per_step: dict[str, list[float]] = {"plain": [], "permit": [], "rate": []}
        for i in range(warm + reps):
            times = {}
            for side, definition in [("plain", plain), *sides.items()]:
                name = uuid.uuid4().hex
                times[side] = self.waiter.run(
                    self.exec_key(name),
                    lambda name=name, d=definition: self.start_wf(d, {"n": 0}, name),
                )
            if i >= warm:
                for side, t in times.items():
                    per_step[side].append(t / 20 * 1000)
        self.figures["limited_step_ms"] = round(statistics.median(per_step["permit"]), 3)
        self.figures["unlimited_step_ms"] = round(statistics.median(per_step["plain"]), 3)
        self.figures["limited_step_ratio"] = paired_ratio(per_step["permit"], per_step["plain"])
        self.figures["rate_limited_step_ratio"] = paired_ratio(per_step["rate"], per_step["plain"])
        log(
            f"limits: per step {self.figures['unlimited_step_ms']} ms unlimited, "
            f"{self.figures['limited_step_ms']} ms with a permit, "
            f"{statistics.median(per_step['rate']):.3f} ms with a token"
        )
        if self.procs.concurrency != LIMITS_POOL:
            self.notes["limits"] = (
                f"noop_pool's max_concurrency is {LIMITS_POOL}, the pool {self.procs.concurrency}"
            )
        executions, length = (50, 10) if self.quick else (100, 10)
        rounds = 2 if self.quick else 4
        ratios, rates = [], []
        for i in range(rounds):
            elapsed = {}
            order = ["plain", "pool"] if i % 2 == 0 else ["pool", "plain"]
            for side in order:
                definition = linear(
                    length, f"limits-{side}", "noop" if side == "plain" else "noop_pool"
                )
                names = [uuid.uuid4().hex for _ in range(executions)]
                elapsed[side] = run_all(
                    self.client,
                    [self.exec_key(x) for x in names],
                    lambda names=names, d=definition: [
                        self.start_wf(d, {"n": 0}, x) for x in names
                    ],
                    300,
                )
            ratios.append(elapsed["pool"] / elapsed["plain"])
            rates.append(executions * length / elapsed["pool"])
            log(
                f"limits throughput: {executions * length / elapsed['plain']:.0f} steps/s "
                f"unlimited, {rates[-1]:.0f} steps/s at max_concurrency {LIMITS_POOL}"
            )
        self.figures["limited_steps_per_s"] = round(statistics.median(rates), 1)
        self.figures["limited_throughput_ratio"] = round(statistics.median(ratios), 3)

    def bench_timers(self) -> None:
        n = 2000 if self.quick else 10_000
        field = self._wait_field()
        definition = wait_definition(field)
        # Starting n executions takes a while; with TimestampPath every timer is due only
        # after all are started (5..10 s after the estimated end of the starts), so all n
        # are pending at once.
        start_s = self.figures.get("start_ms", 3.0) / 1000
        starts_end = time.time() + n * start_s * 0.6 + 3
        pids = self.procs.worker_pids()
        time.sleep(0.5)
        base_rss = rss_mb(pids)
        base_timer_rss = rss_mb([self.procs.timer.pid])  # type: ignore[union-attr]
        base_redis = used_memory(self.client)
        samples: list[float] = []
        timer_samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_mb(self.procs.worker_pids()))
                timer_samples.append(rss_mb([self.procs.timer.pid]))  # type: ignore[union-attr]
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        profiler = self.start_profiler(
            "timers",
            [self.procs.timer.pid, *pids[1:]],  # type: ignore[union-attr]
        )
        names, dues = [], []
        t_start = time.time()
        for i in range(n):
            name = uuid.uuid4().hex
            if field == "TimestampPath":
                # Due times spread evenly over 5..10 s after the starts (millisecond
                # precision), as "Wait 5..10 s" gives when the starts are spread.
                due = round(starts_end + 5 + 5 * i / n, 3)
                payload: dict[str, Any] = {
                    "due": dt.datetime.fromtimestamp(due, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                }
            else:
                wait = 5 + (i % 6)
                payload = {"wait": wait}
                due = None
            self.start_wf(definition, payload, name)
            names.append(name)
            dues.append(due)
        started = time.time()
        pending = self._index_size("timers")
        redis_pending = used_memory(self.client)
        log(f"timers: {n} started in {started - t_start:.1f} s; {pending} timers pending")
        wait_all(
            self.client,
            [self.exec_key(x) for x in names],
            timeout=max(dues or [0]) - time.time() + 10 + 120 if field == "TimestampPath" else 180,
            interval=0.5,
        )
        stop.set()
        sampler.join()
        self.stop_profiler(profiler)
        # Lateness: WaitStateExited timestamp minus due time.
        late: list[float] = []
        exit_times: list[float] = []
        due_times: list[float] = []
        for chunk in range(0, n, 500):
            pipe = self.client.pipeline(transaction=False)
            for name in names[chunk : chunk + 500]:
                pipe.hget(self.exec_key(name), "start")
                pipe.xrange(f"{self.exec_key(name)}:h")
            replies = pipe.execute()
            for j in range(len(replies) // 2):
                start, entries = replies[2 * j], replies[2 * j + 1]
                parsed = [
                    event
                    for n, (_, fields) in enumerate(entries, 1)
                    if (event := decode(fields, n, base_ms(start))) is not None
                ]
                exited = next(e["ts"] for e in parsed if e["type"] == "WaitStateExited")
                due = dues[chunk + j]
                if due is None:
                    entered = next(e["ts"] for e in parsed if e["type"] == "WaitStateEntered")
                    due = entered + 5 + ((chunk + j) % 6)
                late.append(exited - due)
                exit_times.append(exited)
                due_times.append(due)
        # The rate the beat fired them at: all of them, from the first due to the last exit.
        fire_rate = n / max(1e-3, max(exit_times) - min(due_times))
        late.sort()
        self.figures["timer_rss_growth_mb"] = round(max(samples) - base_rss, 1)
        self.figures["timer_beat_rss_growth_mb"] = round(max(timer_samples) - base_timer_rss, 1)
        self.figures["timer_redis_bytes_per_pending"] = round((redis_pending - base_redis) / n)
        self.figures["timer_lateness_p50_s"] = round(late[len(late) // 2], 3)
        self.figures["timer_lateness_p99_s"] = round(late[int(len(late) * 0.99) - 1], 3)
        self.figures["timer_lateness_max_s"] = round(late[-1], 3)
        self.figures["timers_pending"] = pending
        self.figures["timer_fire_rate_per_s"] = round(fire_rate, 1)
        self.notes["timers"] = (
            f"{n} Wait states via {field}, {pending} pending at once; "
            f"worker RSS {base_rss:.1f} MB before"
        )
        log(
            f"timers: lateness p50 {late[len(late) // 2]:.3f} s, p99 "
            f"{late[int(len(late) * 0.99) - 1]:.3f} s; worker RSS +{max(samples) - base_rss:.1f} MB"
        )

    # -- profiling (optional) ------------------------------------------------------------

    def start_profiler(
        self, label: str, pids: list[int] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        if self.profile is None:
            return []
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        procs = []
        # By default the pool children, which run the tasks.
        for pid in pids if pids is not None else self.procs.worker_pids()[1:]:
            out = self.profile / f"{label}-{pid}.txt"
            procs.append(
                subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1.0)  # py-spy attaches
        return procs

    def stop_profiler(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- report -----------------------------------------------------------------------------

GOALS: list[tuple[str, str, Callable[[float], bool] | None]] = [
    ("task_transition_ms", "", None),
    ("celery_hop_ms", "", None),
    ("transition_overhead_ratio", "<= 1.15", lambda v: v <= 1.15),
    ("task_transitions_per_s", "", None),
    ("celery_tasks_per_s", "", None),
    ("throughput_ratio", ">= 0.85", lambda v: v >= 0.85),
    ("throughput_ratio_cpu", "", None),
    ("inline_state_us", "", None),
    ("inline_state_us_in_process", "", None),
    ("inline_speedup", ">= 20", lambda v: v >= 20),
    ("map_s", "", None),
    ("celery_group_s", "", None),
    ("map_ratio", "<= 1.2", lambda v: v <= 1.2),
    ("map_large_s", "", None),
    ("celery_group_large_s", "", None),
    ("map_large_ratio", "<= 1.3", lambda v: v <= 1.3),
    ("redis_bytes_per_map_item_running", "", None),
    ("redis_bytes_per_map_item", "<= 200", lambda v: v <= 200),
    ("redis_used_memory_per_map_item", "", None),
    ("redis_used_memory_per_map_item_running", "", None),
    ("map_cost_per_item_growth", "<= 1.2 (flat)", lambda v: v <= 1.2),
    ("start_ms", "", None),
    ("start_p99_ms", "", None),
    ("redis_bytes_per_execution", "<= 4096", lambda v: v <= 4096),
    ("redis_key_bytes_per_execution", "", None),
    ("timer_rss_growth_mb", "<= 20", lambda v: v <= 20),
    ("timer_beat_rss_growth_mb", "", None),
    ("timer_redis_bytes_per_pending", "", None),
    ("timer_lateness_p50_s", "", None),
    ("timer_lateness_p99_s", "<= 1.0", lambda v: v <= 1.0),
    ("timer_lateness_max_s", "", None),
    ("timers_pending", "", None),
    ("timer_fire_rate_per_s", "", None),
    ("unlimited_step_ms", "", None),
    ("limited_step_ms", "", None),
    ("limited_step_ratio", "<= 1.2", lambda v: v <= 1.2),
    ("rate_limited_step_ratio", "<= 1.2", lambda v: v <= 1.2),
    ("limited_steps_per_s", "", None),
    ("limited_throughput_ratio", "<= 1.2", lambda v: v <= 1.2),
]


def machine_info(client: Any) -> dict[str, Any]:
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "redis": server_infos(client, "server")[0]["redis_version"],
        "platform": platform.platform(),
    }


def report(bench: Bench, info: dict[str, Any], elapsed: float, as_json: bool) -> int:
    rows = []
    failures = 0
    for name, goal, check in GOALS:
        value = bench.figures.get(name)
        if value is None:
            verdict = "n/a" if check is None else "MISSING"
            failures += check is not None
        elif check is None:
            verdict = ""
        else:
            ok = check(value)
            verdict = "pass" if ok else "FAIL"
            failures += not ok
        rows.append((name, "-" if value is None else str(value), goal, verdict))
    widths = [
        max(len(r[i]) for r in [("figure", "value", "goal", "result"), *rows]) for i in range(4)
    ]
    header = ("figure", "value", "goal", "result")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        f"\nmachine: {info['cores']} cores, {info['ram_gb']} GB, Python {info['python']}, "
        f"Redis {info['redis']}; worker: prefork -c {bench.procs.concurrency}; "
        f"{'quick' if bench.quick else 'full'} run in {elapsed:.0f} s"
    )
    print(
        f"store: {bench.procs.store}; broker: {broker_name(bench.procs.broker)}; "
        f"partitions: {bench.procs.partitions or 'the default'}"
    )
    for name, note in bench.notes.items():
        print(f"note [{name}]: {note}")
    if as_json:
        print(
            json.dumps(
                {
                    "figures": bench.figures,
                    "notes": bench.notes,
                    "machine": info,
                    "quick": bench.quick,
                    "concurrency": bench.procs.concurrency,
                    "store": bench.procs.store,
                    "broker": broker_name(bench.procs.broker),
                    "partitions": bench.procs.partitions,
                    "costs": bench.costs,
                    "elapsed_s": round(elapsed, 1),
                    "goals_missed": failures,
                },
                sort_keys=True,
            )
        )
    return failures


def broker_name(url: str | None) -> str:
    """The broker's kind (``amqp``, ``redis``...), never its credentials."""
    return url.split("://", 1)[0] if url else "the store's Redis"


def main() -> int:
    if "--cluster" in sys.argv[1:]:
        # One Redis, then a cluster, side by side: benchmarks/cluster.py runs both.
        from benchmarks.cluster import main as side_by_side

        return side_by_side([a for a in sys.argv[1:] if a != "--cluster"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 2,000 timers")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record py-spy profiles of the worker children into DIR",
    )
    parser.add_argument("--only", default="", help="comma-separated steps to run (debug)")
    parser.add_argument(
        "--store",
        choices=STORES,
        default="embedded",
        help="the store on the embedded Redis, one redis-server, or a 3-master cluster",
    )
    parser.add_argument(
        "--broker", default=None, help="Celery's broker URL (default: the store's Redis)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help=f"ORCHESTRATOR_PARTITIONS (default: the environment's; {CLUSTER_PARTITIONS} "
        "on a cluster)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="one Redis and a 3-master cluster side by side (benchmarks/cluster.py)",
    )
    args = parser.parse_args()
    if args.store == "cluster" and not args.broker:
        parser.error("--store cluster needs --broker (kombu has no Redis Cluster transport)")
    if args.store == "cluster" and args.partitions is None:
        args.partitions = CLUSTER_PARTITIONS
    if args.broker:
        # A broker that outlives the run: a queue of its own (deleted at the end).
        global QUEUE
        QUEUE = f"bench-{uuid.uuid4().hex[:8]}"
    # A SIGTERM (timeout, kill) must unwind through the finally below, which stops the
    # worker, the timer process and the embedded Redis; by default it would leave them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logdir = Path(tempfile.mkdtemp(prefix="orchestrator-bench-"))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    bench = Bench(
        args.quick,
        args.concurrency,
        logdir,
        args.profile,
        args.store,
        args.broker,
        args.partitions,
    )
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    try:
        if args.only:
            wanted = set(args.only.split(","))
            original = bench.run

            def run_only() -> None:
                names = {
                    "latency",
                    "throughput",
                    "inline",
                    "start",
                    "memory",
                    "map",
                    "map_large",
                    "map_curve",
                    "dmap",
                    "timers",
                    "limits",
                }
                for name in names - wanted:
                    setattr(bench, f"bench_{name}", lambda: None)
                original()

            run_only()
        else:
            bench.run()
        info = machine_info(bench.client)
    finally:
        bench.procs.stop()
        log(f"logs in {logdir}")
    report(bench, info, time.perf_counter() - t0, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
