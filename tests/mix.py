"""The mix of executions the topology tests run (issue 18), shared by the Redis Cluster
test (tests/e2e/test_cluster.py) and the Sentinel failover test
(tests/e2e/test_sentinel_failover.py): the kinds' definitions, inputs, expected outputs,
events and side effects; an engine of worker and beat processes on a given store and
broker; starting a mix and checking that every execution of it ended as it should, once.

The kinds: a chain of Tasks, an inline Map, a Parallel, a Wait of 1 s, a Retry that fails
once, a Catch, and the kinds whose calls cross partitions: a Distributed Map over 3 items
(each item a child execution, whose end reaches the parent through a ``mapchild`` timer),
a ``startExecution.sync:2`` child workflow of a state machine registered in the store, and
a Task on an activity with ``max_concurrency=2``. A test runs all of them (:data:`KINDS`)
or some (``kinds``). Every execution's input is ``{"n": n, "tag": tag}`` (plus ``items``
for the Maps), its side effects counted under ``calls:<tag>`` (tests/activities.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import ExecutionHandle, Orchestrator, config
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

#: For all the executions of a mix to end once started (500 take ~10-20 s on 2 cores).
RUN_TIMEOUT_S = 75
#: The test activities' modules the workers import (a comma list in the environment).
TASK_MODULES = ("tests.activities", "tests.limit_activities")
#: ``states:startExecution`` waiting for the child's end, its output as JSON.
START_SYNC2 = "arn:aws:states:::states:startExecution.sync:2"
#: How long the limited activity holds its permit: long enough for the runs to overlap.
LIMITED_SLEEP_S = 0.05

KINDS = ("chain", "map", "parallel", "wait", "retry", "catch", "dmap", "child", "limited")


def child_machine() -> dict[str, Any]:
    """The child workflow the "child" kind starts (registered in the store, by ARN)."""
    return machine(
        {
            "Count": task("count", Parameters={"tag.$": "$.tag"}, ResultPath="$.count", Next="Add"),
            "Add": task("add", Parameters={"a.$": "$.n", "b": 4}, ResultPath="$.sum"),
        }
    )


def definitions(child_arn: str) -> dict[str, dict[str, Any]]:
    """One definition per kind; every execution's input is ``{"n": n, "tag": tag}``
    (plus ``items`` for the Maps), its side effects counted under ``calls:<tag>``;
    ``child_arn``: the registered state machine of :func:`child_machine`."""
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


def mix_input(kind: str, n: int, tag: str) -> dict[str, Any]:
    value: dict[str, Any] = {"n": n, "tag": tag}
    if kind in ("map", "dmap"):
        value["items"] = [n, n + 1, n + 2]
    return value


def expected_output(kind: str, n: int, tag: str) -> Any:
    value = mix_input(kind, n, tag)
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


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def engine(
    redis_url: str,
    broker_url: str | None,
    logs: Path,
    *,
    label: str,
    workers: int = 2,
    threads: int = 4,
    beats: int = 2,
    settings: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Engine]:
    """A client in this process and, as separate processes, ``workers`` workers (of
    ``threads`` threads) and ``beats`` beats, on ``redis_url`` (the store) and
    ``broker_url`` (``None``: the broker follows the store, as a ``redis+sentinel://``
    store's does), under a key prefix and queue of their own (``orch-<label>-<run>``);
    the queue is deleted at the end (the keys go with the test's servers).

    ``settings``: more settings for the client (``partitions=6``...); ``extra_env``: the
    children's environment for them (``ORCHESTRATOR_PARTITIONS``...) and anything else
    they need."""
    run = uuid.uuid4().hex[:8]
    values = config.settings_from_env(
        redis_url=redis_url,
        broker_url=broker_url,
        key_prefix=f"orch-{label}-{run}",
        queue=f"orchestrator-{label}-{run}",
        task_modules=list(TASK_MODULES),
        **dict(settings or {}),
    )
    # First, in this process: a store that refuses the URL fails here, before any child.
    client = Orchestrator(settings=values)
    env = child_environ(
        REDIS_URL=redis_url,
        **({"BROKER_URL": broker_url} if broker_url else {}),
        ORCHESTRATOR_KEY_PREFIX=values.key_prefix,
        ORCHESTRATOR_QUEUE=values.queue,
        ORCHESTRATOR_TASK_MODULES=",".join(TASK_MODULES),
        **dict(extra_env or {}),
    )
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    try:
        for i in range(workers):
            worker = ["worker", "--pool", "threads", "--concurrency", str(threads)]
            hostname = ["--hostname", f"{label}-{run}-{i}@%h"]
            procs.append(spawn([*worker, *hostname], env, logs / f"worker-{i}.log"))
        for i in range(beats):
            procs.append(spawn(["beat"], env, logs / f"beat-{i}.log"))
        state = Engine(client, values, logs, procs)

        def ready() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"a process exited ({proc.args})\n{state.log_text()}")
            return all("ready" in (logs / f"worker-{i}.log").read_text() for i in range(workers))

        wait_until(ready, 60, interval=0.1, message="the workers to start")
        yield state
    finally:
        stop_processes(p for p in procs if p.poll() is None)
        with contextlib.suppress(Exception), client.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(values.queue)
        client.close()


@dataclass
class Planned:
    """An execution of a mix, not started yet: what to start, under which name."""

    kind: str
    n: int
    tag: str
    definition: dict[str, Any]
    input: dict[str, Any]
    name: str


@dataclass
class Started:
    kind: str
    n: int
    tag: str
    handle: ExecutionHandle


def plan_mix(state: Engine, executions: int, kinds: Sequence[str] = KINDS) -> list[Planned]:
    """``executions`` executions, ``kinds`` in turn, each named after its kind, the run
    and its number (the child workflows' state machine registered first, in the store,
    where the workers and beats find it, when "child" is among ``kinds``)."""
    run = uuid.uuid4().hex[:8]
    child_arn = "<no child kind>"
    if "child" in kinds:
        kid = state.client.create_state_machine(f"mix-kid-{run}", child_machine())
        child_arn = kid.state_machine_arn
    by_kind = definitions(child_arn)
    planned = []
    for n in range(executions):
        kind = kinds[n % len(kinds)]
        tag = f"{run}-{n}"
        planned.append(
            Planned(kind, n, tag, by_kind[kind], mix_input(kind, n, tag), f"{kind}-{run}-{n}")
        )
    return planned


def start_mix(state: Engine, executions: int, kinds: Sequence[str] = KINDS) -> list[Started]:
    """Start the executions of :func:`plan_mix`, one after the other."""
    return [
        Started(p.kind, p.n, p.tag, state.client.start_workflow(p.definition, p.input, name=p.name))
        for p in plan_mix(state, executions, kinds)
    ]


def wait_ended(state: Engine, started: Sequence[Started], timeout: float) -> list[Any]:
    """Each execution's result (in order), once every one ended: fails naming the first
    one still running ``timeout`` s after this was called."""
    deadline = time.monotonic() + timeout
    results = []
    for one in started:
        try:
            results.append(one.handle.result(max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            unfinished = sum(1 for s in started if s.handle.describe().status == "RUNNING")
            pytest.fail(
                f"{one.kind} {one.handle.execution_id} did not end within {timeout} s of the "
                f"starts ({unfinished} of {len(started)} still running)\n{state.log_text()}"
            )
    return results


def check_mix(
    state: Engine, started: list[Started], timeout: float = RUN_TIMEOUT_S
) -> list[tuple[str, str]]:
    """Every execution ended SUCCEEDED with its kind's output, its history has each
    step's events once, and its side effects were counted once; each Distributed Map's
    run and children, each child workflow ended once; the limited activity held to its
    limit and gave its permits back. Returns each (parent, child) execution id pair."""
    spans = []
    for one, result in zip(started, wait_ended(state, started, timeout), strict=True):
        assert result.status == "SUCCEEDED", (one.kind, result, state.log_text())
        output = result.output
        if one.kind == "limited":
            span = output["span"]
            assert set(span) == {"start", "end", "pid", "ppid"}, (one.kind, result)
            assert span["start"] <= span["end"], (one.kind, result)
            spans.append(span)
            output = {**output, "span": "<checked apart>"}
        assert output == expected_output(one.kind, one.n, one.tag), (one.kind, result)
    limited = any(one.kind == "limited" for one in started)
    if limited:
        # Never more than 2 at once across the workers, and the limit was used.
        assert max_overlap(spans) == 2, spans
    pairs = []
    with state.client.bound():
        for one in started:
            check_history(one.handle.history(), EXPECTED_EVENTS[one.kind], one)
            assert counter("calls", one.tag) == EXPECTED_CALLS[one.kind], (one.kind, one.tag)
            if one.kind == "dmap":
                pairs += [(one.handle.execution_id, c) for c in check_map_run(state, one)]
            elif one.kind == "child":
                pairs.append((one.handle.execution_id, check_child_workflow(state, one)))
    if limited:
        wait_until(
            lambda: state.client.store.permits_in_use([LIMITED]) == [0],
            10,
            message="every permit of the limited activity given back",
        )
    return pairs


def check_history(history: list[Any], expected: dict[tuple[str, Any], int], one: Any) -> None:
    """The execution started and succeeded once, and has the events ``expected`` says."""
    wanted = {**expected, ("ExecutionStarted", None): 1, ("ExecutionSucceeded", None): 1}
    seen = {key: count_events(history, key[0], key[1]) for key in wanted}
    assert seen == wanted, (one, seen)


def check_map_run(state: Engine, one: Started) -> list[str]:
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
        check_history(history, DMAP_CHILD_EVENTS, (one.handle.execution_id, child))
    return [c.execution_id for c in children]


def check_child_workflow(state: Engine, one: Started) -> str:
    """One child workflow, started by the ``Call`` Task and waited for, SUCCEEDED once
    (the client bound). Returns its execution id."""
    (linked,) = one.handle.describe().children
    assert linked.state == "Call" and linked.mode == "sync2", linked
    child = state.client.describe_execution(linked.execution_id)
    assert child.status == "SUCCEEDED", (one.handle.execution_id, child)
    assert child.parent_execution_id == one.handle.execution_id, child
    assert child.output == expected_output(one.kind, one.n, one.tag)["child"]["Output"], child
    history = state.client.get_execution_history(linked.execution_id)
    check_history(history, CHILD_EVENTS, (one.handle.execution_id, linked))
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
            check_history(handle.history(), {}, execution)
