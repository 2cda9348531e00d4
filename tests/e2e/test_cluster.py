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
from tests.limit_activities import LIMITED, max_overlap
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
#: The test activities' modules the workers import (a comma list in the environment).
TASK_MODULES = ("tests.activities", "tests.limit_activities")
#: ``states:startExecution`` waiting for the child's end, its output as JSON.
START_SYNC2 = "arn:aws:states:::states:startExecution.sync:2"
#: How long the limited activity holds its permit: long enough for the runs to overlap.
LIMITED_SLEEP_S = 0.05
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: What a process must never log with the store on a cluster: a cross-slot call, a
#: redirection that surfaced (redis-py follows MOVED/ASK itself), a cluster down or
#: resharding error, a script touching a key of another node.
CLUSTER_ERRORS = re.compile(r"\b(CROSSSLOT|MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b|non local key")

KINDS = ("chain", "map", "parallel", "wait", "retry", "catch", "dmap", "child", "limited")


def _child_machine() -> dict[str, Any]:
    """The child workflow the "child" kind starts (registered in the store, by ARN)."""
    return machine(
        {
            "Count": task("count", Parameters={"tag.$": "$.tag"}, ResultPath="$.count", Next="Add"),
            "Add": task("add", Parameters={"a.$": "$.n", "b": 4}, ResultPath="$.sum"),
        }
    )


def _definitions(child_arn: str) -> dict[str, dict[str, Any]]:
    """One definition per kind; every execution's input is ``{"n": n, "tag": tag}``
    (plus ``items`` for the Maps), its side effects counted under ``calls:<tag>``;
    ``child_arn``: the registered state machine of :func:`_child_machine`."""
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
        "dmap": machine(
            {
                "DItems": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "DItem",
                        "States": {"DItem": task("add", Parameters={"a.$": "$", "b": 20})},
                    },
                    "ResultPath": "$.dmapped",
                    "Next": "Count",
                },
                "Count": task("count", Parameters=count, ResultPath="$.count"),
            }
        ),
        "child": machine(
            {
                "Call": task(
                    START_SYNC2,
                    Parameters={
                        "StateMachineArn": child_arn,
                        "Input": {"n.$": "$.n", "tag.$": "$.tag"},
                    },
                    ResultSelector={"Output.$": "$.Output", "Status.$": "$.Status"},
                    ResultPath="$.child",
                )
            }
        ),
        "limited": machine(
            {
                "Limited": task(
                    LIMITED,
                    Parameters={"sleep": LIMITED_SLEEP_S},
                    ResultPath="$.span",
                    Next="Count",
                ),
                "Count": task("count", Parameters=count, ResultPath="$.count"),
            }
        ),
    }


def _input(kind: str, n: int, tag: str) -> dict[str, Any]:
    value: dict[str, Any] = {"n": n, "tag": tag}
    if kind in ("map", "dmap"):
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
    if kind == "catch":
        return {**value, "error": {"Error": "Boom", "Cause": "planned"}, "sum": n + 3}
    if kind == "dmap":
        return {**value, "dmapped": [n + 20, n + 21, n + 22], "count": calls}
    if kind == "child":
        output = {**value, "count": calls, "sum": n + 4}
        return {**value, "child": {"Output": output, "Status": "SUCCEEDED"}}
    # The span's times and processes vary: the caller checks them and puts them here.
    assert kind == "limited"
    return {**value, "span": "<checked apart>", "count": calls}


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
    "dmap": {
        ("MapRunStarted", "DItems"): 1,
        ("MapRunSucceeded", "DItems"): 1,
        # The items ran in the children: none of their events in the parent's history.
        ("MapIterationStarted", "DItems"): 0,
        ("TaskSucceeded", "DItem"): 0,
        ("TaskSucceeded", "Count"): 1,
    },
    "child": {("TaskScheduled", "Call"): 1, ("TaskSucceeded", "Call"): 1},
    "limited": {
        ("TaskScheduled", "Limited"): 1,
        ("TaskSucceeded", "Limited"): 1,
        ("TaskSucceeded", "Count"): 1,
    },
}
#: A Distributed Map's child's, a child workflow's history: event -> how many times.
DMAP_CHILD_EVENTS = {("TaskSucceeded", "DItem"): 1}
CHILD_EVENTS = {("TaskSucceeded", "Count"): 1, ("TaskSucceeded", "Add"): 1}
#: Calls counted under ``calls:<tag>`` by the end (the flaky activity's failure counts;
#: the child workflow's Count counts under its parent's tag).
EXPECTED_CALLS = {
    "chain": 1,
    "map": 1,
    "parallel": 1,
    "wait": 1,
    "retry": 2,
    "catch": 1,
    "dmap": 1,
    "child": 1,
    "limited": 1,
}


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
        task_modules=list(TASK_MODULES),
        partitions=PARTITIONS,
    )
    # First, in this process: a store that refuses the URL fails here, before any child.
    client = Orchestrator(settings=settings)
    env = child_environ(
        REDIS_URL=redis_url,
        BROKER_URL=broker_url,
        ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
        ORCHESTRATOR_QUEUE=settings.queue,
        ORCHESTRATOR_TASK_MODULES=",".join(TASK_MODULES),
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
    """Start ``executions`` executions, the kinds in turn (the child workflows' state
    machine registered first, in the store, where the workers and beats find it)."""
    run = uuid.uuid4().hex[:8]
    kid = state.client.create_state_machine(f"cluster-kid-{run}", _child_machine())
    definitions = _definitions(kid.state_machine_arn)
    started = []
    for n in range(executions):
        kind = KINDS[n % len(KINDS)]
        tag = f"{run}-{n}"
        handle = state.client.start_workflow(
            definitions[kind], _input(kind, n, tag), name=f"{kind}-{run}-{n}"
        )
        started.append(Started(kind, n, tag, handle))
    return started


def check_mix(
    state: Engine, started: list[Started], timeout: float = RUN_TIMEOUT_S
) -> list[tuple[str, str]]:
    """Every execution ended SUCCEEDED with its kind's output, its history has each
    step's events once, and its side effects were counted once; each Distributed Map's
    run and children, each child workflow ended once; the limited activity held to its
    limit and gave its permits back. Returns each (parent, child) execution id pair."""
    deadline = time.monotonic() + timeout
    spans = []
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
        output = result.output
        if one.kind == "limited":
            span = output["span"]
            assert set(span) == {"start", "end", "pid", "ppid"}, (one.kind, result)
            assert span["start"] <= span["end"], (one.kind, result)
            spans.append(span)
            output = {**output, "span": "<checked apart>"}
        assert output == _expected_output(one.kind, one.n, one.tag), (one.kind, result)
    # Never more than 2 at once across both workers, and the limit was used.
    assert max_overlap(spans) == 2, spans
    pairs = []
    with state.client.bound():
        for one in started:
            _check_history(one.handle.history(), EXPECTED_EVENTS[one.kind], one)
            assert counter("calls", one.tag) == EXPECTED_CALLS[one.kind], (one.kind, one.tag)
            if one.kind == "dmap":
                pairs += [(one.handle.execution_id, c) for c in _check_map_run(state, one)]
            elif one.kind == "child":
                pairs.append((one.handle.execution_id, _check_child_workflow(state, one)))
    wait_until(
        lambda: state.client.store.permits_in_use([LIMITED]) == [0],
        10,
        message="every permit of the limited activity given back",
    )
    return pairs


def _check_history(history: list[Any], expected: dict[tuple[str, Any], int], one: Any) -> None:
    """The execution started and succeeded once, and has the events ``expected`` says."""
    wanted = {**expected, ("ExecutionStarted", None): 1, ("ExecutionSucceeded", None): 1}
    seen = {key: count_events(history, key[0], key[1]) for key in wanted}
    assert seen == wanted, (one, seen)


def _check_map_run(state: Engine, one: Started) -> list[str]:
    """One Map Run, 3 children succeeded of 3, each child SUCCEEDED with its item's Task
    once (the client bound). Returns the children's execution ids."""
    (run,) = state.client.list_map_runs(one.handle.execution_id)
    assert run.status == "SUCCEEDED", (one.handle.execution_id, run)
    assert run.counts.succeeded == run.counts.total == 3, (one.handle.execution_id, run)
    assert run.counts.running == run.counts.failed == run.counts.aborted == 0, run
    children = state.client.list_map_run_children(run.map_run_arn)
    assert [c.index for c in children] == [0, 1, 2], children
    for child in children:
        assert child.status == "SUCCEEDED", (one.handle.execution_id, child)
        history = state.client.get_execution_history(child.execution_id)
        _check_history(history, DMAP_CHILD_EVENTS, (one.handle.execution_id, child))
    return [c.execution_id for c in children]


def _check_child_workflow(state: Engine, one: Started) -> str:
    """One child workflow, started by the ``Call`` Task and waited for, SUCCEEDED once
    (the client bound). Returns its execution id."""
    (linked,) = one.handle.describe().children
    assert linked.state == "Call" and linked.mode == "sync2", linked
    child = state.client.describe_execution(linked.execution_id)
    assert child.status == "SUCCEEDED", (one.handle.execution_id, child)
    assert child.parent_execution_id == one.handle.execution_id, child
    assert child.output == _expected_output(one.kind, one.n, one.tag)["child"]["Output"], child
    history = state.client.get_execution_history(linked.execution_id)
    _check_history(history, CHILD_EVENTS, (one.handle.execution_id, linked))
    return linked.execution_id


def schedule_fired(state: Engine, name: str, times: int, tag: str) -> None:
    """Wait until the schedule ``name`` started ``times`` executions, delete it, and check
    each of those executions (named after its firing, once each) SUCCEEDED once."""

    def executions() -> list[str]:
        return state.client.describe_schedule(name, log_count=200).executions

    wait_until(lambda: len(executions()) >= times, 30, message=f"{times} firings of {name}")
    fired = executions()
    state.client.delete_schedule(name)
    assert len(set(fired)) == len(fired), fired
    with state.client.bound():
        for execution in fired:
            handle = ExecutionHandle(execution)
            result = handle.result(30)
            assert result.status == "SUCCEEDED" and result.output == {"tag": tag}, result
            _check_history(handle.history(), {}, execution)


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
        # A schedule fires alongside the mix, from one beat or the other.
        schedule = f"cluster-every-second-{uuid.uuid4().hex[:8]}"
        pass_machine = machine({"P": {"Type": "Pass", "End": True}})
        state.client.create_schedule(
            schedule, pass_machine, "rate(1 second)", input={"tag": schedule}
        )
        started = start_mix(state)
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
        f"({PARTITIONS} partitions, broker {broker_url.split(':', 1)[0]}): all ended once in "
        f"{took:.1f} s ({len(pairs)} children, {crossed} on another master than their "
        f"parent's); error stats {after}"
    )


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))
