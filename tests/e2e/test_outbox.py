"""The outbox (issue 12 item 5): a hand-off lost between a commit and its publish is sent
again within the lease, and a message merely waiting in a long queue is never sent twice.

Worker and beat are real ``celery`` subprocesses on an embedded Redis (broker too); the
hooks that kill them at the worst moment and count the messages a worker receives are in
``tests/outbox_hooks.py``, loaded into the subprocesses only.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator import Orchestrator
from orchestrator.engine.store import get_store
from tests.activities import counter, scoped_key
from tests.helpers import count_events, machine, process_environment, task, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


@dataclass
class Cluster:
    client: Orchestrator
    env: dict[str, str]
    queue: str
    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, label: str, args: list[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{label}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "orchestrator.engine.celery_app", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the hooks kill it whole
        )
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, label: str, *options: str) -> subprocess.Popen:
        node = f"{label}-{uuid.uuid4().hex[:6]}@%h"
        return self.spawn(
            label,
            ["worker", "-Q", self.queue, "-n", node, "--loglevel", "WARNING"]
            + ["--without-gossip", "--without-mingle", *options],
        )

    def beat(self, label: str = "beat") -> subprocess.Popen:
        schedule = str(self.log_dir / f"{label}-schedule")
        return self.spawn(
            label,
            ["beat", "-S", "orchestrator.engine.beat:OrchestratorScheduler"]
            + ["--loglevel", "WARNING", "--pidfile", "", "-s", schedule],
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


def _cluster(tmp_path: Path, lease: float, **more: str) -> Iterator[Cluster]:
    with process_environment(
        "outbox",
        ["tests.outbox_hooks"],
        # The workers' broker is this Redis too: without it, a BROKER_URL in the test
        # process's environment (the services phase) would send the client's messages
        # where no worker of this cluster listens.
        broker="redis",
        embedded=True,
        extra_env={
            "ORCHESTRATOR_LEASE_SECONDS": str(lease),
            # Beat fires in its own process, where the hook is.
            "ORCHESTRATOR_TIMER_PROCESSES": "1",
            **more,
        },
        lease_seconds=lease,
        max_history_events=int(more.get("ORCHESTRATOR_MAX_HISTORY_EVENTS", 25000)),
    ) as own:
        # This process imports the activities, not the hooks (the workers and beat do).
        settings = own.settings.model_copy(update={"task_modules": ["tests.activities"]})
        client = Orchestrator(settings=settings)
        state = Cluster(client, own.env, settings.queue, tmp_path)
        try:
            with client.bound():
                yield state
        finally:
            for proc in state.procs:
                _kill(proc)
            client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, LEASE_SECONDS)


def _ts(history: list, type_: str, state: str) -> float:
    (event,) = [e for e in history if e.type == type_ and e.state == state]
    return event.timestamp.timestamp()


def test_publisher_killed_between_commit_and_publish(cluster: Cluster, capsys) -> None:
    """The worker that commits First's result dies before it publishes Second's message:
    Second is committed SCHEDULED with no message anywhere. The reconciler sends it again
    within the lease (not after a dispatch timeout), and it runs once."""
    from orchestrator import start_workflow

    tag = uuid.uuid4().hex[:10]
    definition = machine(
        {
            "First": task("count", Parameters={"tag": f"{tag}-1"}, ResultPath=None, Next="Second"),
            "Second": task(
                "count", Parameters={"tag": f"{tag}-2", "kill_before_publish": True}, End=True
            ),
        }
    )
    workers = [cluster.worker("worker-a", "-P", "prefork", "-c", "1")]
    workers.append(cluster.worker("worker-b", "-P", "prefork", "-c", "1"))
    cluster.beat()
    handle = start_workflow(definition, {})
    wait_until(
        lambda: any(w.poll() is not None for w in workers), 60, message="a worker was killed"
    )
    result = handle.result(30)
    assert result.status == "SUCCEEDED", (result, cluster.logs())
    history = handle.history()
    committed = _ts(history, "TaskScheduled", "Second")
    delay = _ts(history, "TaskStarted", "Second") - committed
    with capsys.disabled():
        print(
            f"\n[outbox] publisher SIGKILLed after its commit: Second started {delay:.2f} s "
            f"after it was committed (lease {LEASE_SECONDS} s)"
        )
    # Sent again by the reconciler at the lease, not at the dispatch timeout (1 h).
    assert LEASE_SECONDS <= delay < LEASE_SECONDS + 3, delay
    assert counter("calls", f"{tag}-1") == 1
    assert counter("calls", f"{tag}-2") == 1
    assert count_events(history, "TaskStarted", "Second") == 1
    assert count_events(history, "ExecutionSucceeded") == 1


def test_beat_killed_mid_burst(cluster: Cluster, capsys) -> None:
    """Beat fires a burst of Waits (all due at once), commits every transition, and dies
    before its ``orchestrator.dispatch`` messages leave: restarted, the reconciler sends
    every step again within the lease; none is lost, none runs twice."""
    from orchestrator import start_workflow

    tag = uuid.uuid4().hex[:10]
    executions = 150
    due = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=6)
    definition = machine(
        {
            "W": {"Type": "Wait", "Timestamp": due.isoformat(), "Next": "T"},
            "T": task("count", Parameters={"tag.$": "$.tag"}, End=True),
        }
    )
    cluster.worker("worker", "-P", "threads", "-c", "4")
    store = get_store()
    store.client.set(scoped_key("kill-beat"), "1")
    beat = cluster.beat()
    handles = [start_workflow(definition, {"tag": f"{tag}-{i}"}) for i in range(executions)]
    assert time.time() < due.timestamp(), "the starts took too long: the burst is not one"
    wait_until(lambda: beat.poll() is not None, 30, message="beat killed by its hook")
    killed = time.monotonic()
    # Every Wait fired (committed), no Task ran: the messages died with beat.
    assert all(count_events(h.history(), "WaitStateExited") == 1 for h in handles)
    assert sum(counter("calls", f"{tag}-{i}") for i in range(executions)) == 0
    store.client.delete(scoped_key("kill-beat"))
    cluster.beat("beat-again")
    for handle in handles:
        remaining = 30 - (time.monotonic() - killed)
        assert handle.result(max(remaining, 0.1)).status == "SUCCEEDED", cluster.logs()
    recovered = time.monotonic() - killed
    with capsys.disabled():
        print(
            f"\n[outbox] beat SIGKILLed mid-burst of {executions} timers: all succeeded "
            f"{recovered:.2f} s later (lease {LEASE_SECONDS} s, beat restart included)"
        )
    for i, handle in enumerate(handles):
        assert counter("calls", f"{tag}-{i}") == 1
        assert count_events(handle.history(), "TaskStarted", "T") == 1


#: Map items in the backlog test, each two Task steps. 3,000 (6,000 steps) takes about
#: 35 s on the 2-core test machine.
BACKLOG_ITEMS = 3000
BACKLOG_LEASE_S = 1


def test_backlog_is_not_published_twice(tmp_path: Path, capsys) -> None:
    """One worker process (concurrency 1) works through a Map of 3,000 items × 2 Tasks
    (``MaxConcurrency`` 0: 500 at once, 50 more as each ends): messages wait in the queue
    several leases long. Each was marked published, so the reconciler sends none again
    (before the outbox, a 60 s dispatch timeout did, for every message older than it)."""
    gen = _cluster(tmp_path, BACKLOG_LEASE_S, ORCHESTRATOR_MAX_HISTORY_EVENTS="100000")
    cluster = next(gen)
    try:
        from orchestrator import start_workflow

        definition = machine(
            {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 0,
                    "ItemProcessor": {
                        "StartAt": "A",
                        "States": {"A": task("echo", Next="B"), "B": task("echo", End=True)},
                    },
                    "End": True,
                }
            }
        )
        cluster.worker("worker", "-P", "prefork", "-c", "1")
        cluster.beat()
        started = time.monotonic()
        handle = start_workflow(definition, list(range(BACKLOG_ITEMS)))
        result = handle.result(240)
        elapsed = time.monotonic() - started
        assert result.status == "SUCCEEDED", (result, cluster.logs())
        assert result.output == list(range(BACKLOG_ITEMS))
        steps = 2 * BACKLOG_ITEMS
        received = counter("received")
        scheduled: dict[str | None, float] = {}
        longest = 0.0
        for event in handle.history():
            if event.type == "TaskScheduled":
                scheduled[event.key] = event.timestamp.timestamp()
            elif event.type == "TaskStarted":
                longest = max(longest, event.timestamp.timestamp() - scheduled[event.key])
        with capsys.disabled():
            print(
                f"\n[outbox] backlog: {steps} steps, {received} messages received "
                f"({received / steps:.3f} per step), {elapsed:.1f} s; longest wait in the "
                f"queue {longest:.1f} s (lease {BACKLOG_LEASE_S} s)"
            )
        # Not vacuous: messages waited in the queue longer than the lease.
        assert longest > 2 * BACKLOG_LEASE_S, longest
        assert received <= 1.05 * steps, (received, steps)
    finally:
        gen.close()
