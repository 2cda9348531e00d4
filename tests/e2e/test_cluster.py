"""The state store on a Redis Cluster of three masters (issue 18): a mix of 500 executions
with two beats, every one ending as it should, once, and never a cross-slot error.

Real ``redis-server`` processes in cluster mode (tests/redis_servers.py, formed with
redis-py), ``REDIS_URL=redis+cluster://...`` and ``ORCHESTRATOR_PARTITIONS=6`` (two
partitions per master). Celery's broker is separate, as it must be (kombu has no cluster
transport): the machine's RabbitMQ when it answers, else a plain ``redis-server`` of the
test's own. Two workers and two beats run as separate processes, the client in this one.

500 executions, a sixth each of: a chain of Tasks, an inline Map, a Parallel, a Wait of
1 s, a Retry that fails once, a Catch. Each ends SUCCEEDED with the output its kind
gives; its history has each Task's ``TaskSucceeded`` exactly once per step, each timer's
effect once (the Wait exited once, the retry scheduled once more); each activity with a
side effect counted its calls once (twice for the retried one). The four processes are
still running at the end, no node ever replied CROSSSLOT (``INFO errorstats``), and no
process logged a cross-slot or redirection error.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import ExecutionHandle, Orchestrator, config
from orchestrator.engine.keys import Keys
from tests.activities import counter
from tests.helpers import (
    REPO,
    child_environ,
    count_events,
    machine,
    stop_processes,
    task,
    wait_until,
)
from tests.redis_servers import ClusterGroup, broker_server, redis_servers

pytestmark = pytest.mark.e2e

EXECUTIONS = 500
#: Two partitions per master: the partitions' hash tags fall in equal slot ranges
#: (engine/keys.py), so each master holds two.
PARTITIONS = 6
WORKERS = 2
WORKER_THREADS = 4
BEATS = 2
#: For all 500 to end once started (they take ~10-20 s on 2 cores).
RUN_TIMEOUT_S = 75
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: What a process must never log with the store on a cluster: a cross-slot call, a
#: redirection that surfaced (redis-py follows MOVED/ASK itself), a cluster down or
#: resharding error, a script touching a key of another node.
CLUSTER_ERRORS = re.compile(r"\b(CROSSSLOT|MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b|non local key")

KINDS = ("chain", "map", "parallel", "wait", "retry", "catch")


def _definitions() -> dict[str, dict[str, Any]]:
    """One definition per kind; every execution's input is ``{"n": n, "tag": tag}``
    (plus ``items`` for the Map), its side effects counted under ``calls:<tag>``."""
    count = {"tag.$": "$.tag"}
    return {
        "chain": machine(
            {
                "Count": task("count", Parameters=count, ResultPath="$.count", Next="Add"),
                "Add": task(
                    "add", Parameters={"a.$": "$.n", "b": 1}, ResultPath="$.sum", Next="Echo"
                ),
                "Echo": task("echo"),
            }
        ),
        "map": machine(
            {
                "Items": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 0,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Item",
                        "States": {"Item": task("add", Parameters={"a.$": "$", "b": 10})},
                    },
                    "ResultPath": "$.mapped",
                    "Next": "Count",
                },
                "Count": task("count", Parameters=count, ResultPath="$.count"),
            }
        ),
        "parallel": machine(
            {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        machine({"PCount": task("count", Parameters=count)}),
                        machine({"PAdd": task("add", Parameters={"a.$": "$.n", "b": 2})}),
                    ],
                    "ResultPath": "$.branches",
                    "End": True,
                }
            }
        ),
        "wait": machine(
            {
                "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Count"},
                "Count": task("count", Parameters=count, ResultPath="$.count"),
            }
        ),
        "retry": machine(
            {
                "Flaky": task(
                    "flaky",
                    Parameters={"tag.$": "$.tag", "fail": 1},
                    Retry=[
                        {
                            "ErrorEquals": ["Transient"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 3,
                            "BackoffRate": 1.0,
                        }
                    ],
                    ResultPath="$.flaky",
                )
            }
        ),
        "catch": machine(
            {
                "Fail": task(
                    "fail",
                    Parameters={"tag.$": "$.tag", "error": "Boom", "cause": "planned"},
                    Catch=[{"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Handled"}],
                    Next="Unreached",
                ),
                "Unreached": {"Type": "Fail", "Error": "Unreached"},
                "Handled": task("add", Parameters={"a.$": "$.n", "b": 3}, ResultPath="$.sum"),
            }
        ),
    }


def _input(kind: str, n: int, tag: str) -> dict[str, Any]:
    value: dict[str, Any] = {"n": n, "tag": tag}
    if kind == "map":
        value["items"] = [n, n + 1, n + 2]
    return value


def _expected_output(kind: str, n: int, tag: str) -> Any:
    value = _input(kind, n, tag)
    calls = {"tag": tag, "calls": 1}
    if kind == "chain":
        return {**value, "count": calls, "sum": n + 1}
    if kind == "map":
        return {**value, "mapped": [n + 10, n + 11, n + 12], "count": calls}
    if kind == "parallel":
        return {**value, "branches": [calls, n + 2]}
    if kind == "wait":
        return {**value, "count": calls}
    if kind == "retry":
        return {**value, "flaky": {"tag": tag, "fail": 1, "attempt": 2}}
    assert kind == "catch"
    return {**value, "error": {"Error": "Boom", "Cause": "planned"}, "sum": n + 3}


#: Per kind: (event type, state) -> how many times it must be in the history.
EXPECTED_EVENTS: dict[str, dict[tuple[str, str], int]] = {
    "chain": {
        ("TaskSucceeded", "Count"): 1,
        ("TaskSucceeded", "Add"): 1,
        ("TaskSucceeded", "Echo"): 1,
    },
    "map": {("TaskSucceeded", "Item"): 3, ("TaskSucceeded", "Count"): 1},
    "parallel": {("TaskSucceeded", "PCount"): 1, ("TaskSucceeded", "PAdd"): 1},
    "wait": {
        ("WaitStateEntered", "Pause"): 1,
        ("WaitStateExited", "Pause"): 1,
        ("TaskSucceeded", "Count"): 1,
    },
    "retry": {
        # The retry's timer fired once: one attempt more, not two.
        ("TaskScheduled", "Flaky"): 2,
        ("TaskFailed", "Flaky"): 1,
        ("TaskSucceeded", "Flaky"): 1,
    },
    "catch": {
        ("TaskFailed", "Fail"): 1,
        ("TaskSucceeded", "Fail"): 0,
        ("TaskSucceeded", "Handled"): 1,
    },
}
#: Calls counted under ``calls:<tag>`` by the end (the flaky activity's failure counts).
EXPECTED_CALLS = {"chain": 1, "map": 1, "parallel": 1, "wait": 1, "retry": 2, "catch": 1}


def _rabbitmq_answers() -> bool:
    """Whether the machine's RabbitMQ takes a connection (guest, vhost /) right now."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError:
        return False
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure: not usable
        return False


@pytest.fixture
def broker_url(tmp_path: Path) -> Iterator[str]:
    """Celery's broker, separate from the cluster: RabbitMQ when it answers, else a plain
    redis-server started (and stopped) here."""
    if _rabbitmq_answers():
        yield RABBITMQ_URL
        return
    with redis_servers(tmp_path / "broker") as servers:
        yield f"redis://127.0.0.1:{broker_server(servers).port}/0"


@dataclass
class Engine:
    client: Orchestrator
    settings: config.Settings
    logs: Path
    #: The workers', then the beats' processes.
    procs: list[subprocess.Popen]

    def exited(self) -> list[str]:
        """The processes that are not running any more (each one's command and code)."""
        return [
            f"{p.args[3]} {p.pid}: exit {p.returncode}" for p in self.procs if p.poll() is not None
        ]

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def engine(redis_url: str, broker_url: str, logs: Path) -> Iterator[Engine]:
    """A client in this process and, as separate processes, ``WORKERS`` workers and
    ``BEATS`` beats, on ``redis_url`` (the store) and ``broker_url``, under a key prefix
    and queue of their own; the queue is deleted at the end (the keys go with the
    test's servers)."""
    run = uuid.uuid4().hex[:8]
    settings = config.settings_from_env(
        redis_url=redis_url,
        broker_url=broker_url,
        key_prefix=f"orch-cluster-{run}",
        queue=f"orchestrator-cluster-{run}",
        task_modules=["tests.activities"],
        partitions=PARTITIONS,
    )
    # First, in this process: a store that refuses the URL fails here, before any child.
    client = Orchestrator(settings=settings)
    env = child_environ(
        REDIS_URL=redis_url,
        BROKER_URL=broker_url,
        ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
        ORCHESTRATOR_QUEUE=settings.queue,
        ORCHESTRATOR_TASK_MODULES="tests.activities",
        ORCHESTRATOR_PARTITIONS=str(PARTITIONS),
    )
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    try:
        for i in range(WORKERS):
            worker = ["worker", "--pool", "threads", "--concurrency", str(WORKER_THREADS)]
            hostname = ["--hostname", f"cluster-{run}-{i}@%h"]
            procs.append(_spawn([*worker, *hostname], env, logs / f"worker-{i}.log"))
        for i in range(BEATS):
            procs.append(_spawn(["beat"], env, logs / f"beat-{i}.log"))
        state = Engine(client, settings, logs, procs)

        def ready() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"a process exited ({proc.args})\n{state.log_text()}")
            return all("ready" in (logs / f"worker-{i}.log").read_text() for i in range(WORKERS))

        wait_until(ready, 60, interval=0.1, message="the workers to start")
        yield state
    finally:
        stop_processes(p for p in procs if p.poll() is None)
        with contextlib.suppress(Exception), client.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(settings.queue)
        client.close()


@dataclass
class Started:
    kind: str
    n: int
    tag: str
    handle: ExecutionHandle


def start_mix(state: Engine, executions: int = EXECUTIONS) -> list[Started]:
    """Start ``executions`` executions, the kinds in turn."""
    definitions = _definitions()
    run = uuid.uuid4().hex[:8]
    started = []
    for n in range(executions):
        kind = KINDS[n % len(KINDS)]
        tag = f"{run}-{n}"
        handle = state.client.start_workflow(
            definitions[kind], _input(kind, n, tag), name=f"{kind}-{run}-{n}"
        )
        started.append(Started(kind, n, tag, handle))
    return started


def check_mix(state: Engine, started: list[Started], timeout: float = RUN_TIMEOUT_S) -> None:
    """Every execution ended SUCCEEDED with its kind's output, its history has each
    step's events once, and its side effects were counted once."""
    deadline = time.monotonic() + timeout
    for one in started:
        try:
            result = one.handle.result(max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            unfinished = sum(1 for s in started if s.handle.describe().status == "RUNNING")
            pytest.fail(
                f"{one.kind} {one.handle.execution_id} did not end within {timeout} s of the "
                f"starts ({unfinished} of {len(started)} still running)\n{state.log_text()}"
            )
        assert result.status == "SUCCEEDED", (one.kind, result, state.log_text())
        assert result.output == _expected_output(one.kind, one.n, one.tag), (one.kind, result)
    with state.client.bound():
        for one in started:
            history = one.handle.history()
            wanted = {
                **EXPECTED_EVENTS[one.kind],
                ("ExecutionStarted", None): 1,
                ("ExecutionSucceeded", None): 1,
            }
            seen = {key: count_events(history, key[0], key[1]) for key in wanted}
            assert seen == wanted, (one.kind, one.handle.execution_id, seen)
            assert counter("calls", one.tag) == EXPECTED_CALLS[one.kind], (one.kind, one.tag)


def cluster_errors_logged(logs: Path) -> list[str]:
    """The lines of the processes' logs that name a cross-slot or redirection error."""
    return [
        f"{path.name}: {line}"
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if CLUSTER_ERRORS.search(line)
    ]


def test_a_mix_of_500_executions_with_two_beats_on_a_three_master_cluster(
    redis_cluster: ClusterGroup, broker_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    before = redis_cluster.error_stats()
    with engine(redis_cluster.url(), broker_url, logs) as state:
        # The store's keys are spread: the six partitions' slots on all three masters.
        keys = Keys(state.settings.key_prefix, PARTITIONS)
        owners = {
            redis_cluster.slot_owner(_slot(keys.timers(p))).port for p in keys.all_partitions()
        }
        assert owners == {m.port for m in redis_cluster.masters}

        started_at = time.monotonic()
        started = start_mix(state)
        check_mix(state, started)
        took = time.monotonic() - started_at
        # Both beats and both workers lived through it all.
        assert state.exited() == [], state.log_text()
        partitions = {keys.partition_of(s.handle.execution_id) for s in started}
        assert partitions == set(range(PARTITIONS)), partitions
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
        f"({PARTITIONS} partitions, broker {broker_url.split(':', 1)[0]}): all ended once in "
        f"{took:.1f} s; error stats {after}"
    )


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))
