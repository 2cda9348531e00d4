"""Priorities (issue 13 item 5): an urgent execution overtakes a 2,000-step backlog.

One ``orchestrator worker`` process (one thread) and ``orchestrator beat``, separate
processes, on the suite's broker (the embedded Redis, or ``REDIS_URL``/``BROKER_URL``:
RabbitMQ in CI's second phase). 2,000 one-step executions at the default priority (an
activity of 10 ms: the backlog takes this worker 20 s or more, whatever the machine) are
queued first; an execution of priority 9 started after them runs Task -> Wait 1 s ->
Task -> Task: its first step is published by this process, the next by beat (the Wait's
timer), the last by the worker (a chain): each message carries priority 9, so it ends
long before the backlog drains.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Orchestrator, config
from orchestrator.engine.store import get_store
from tests import activities  # noqa: F401 - registers echo, as the worker does
from tests.helpers import machine, process_environment, task, wait_until, worker_and_beat

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BACKLOG = 2000


@pytest.fixture
def cluster() -> Iterator[tuple[config.Settings, dict[str, str], Orchestrator]]:
    """A private key prefix and queue (embedded Redis unless REDIS_URL), the environment
    of processes that use them, and a client of theirs."""
    with process_environment(
        "prio", ["tests.activities"], default_priority=config.DEFAULT_PRIORITY
    ) as own:
        # The backlog left in the queue goes with the environment (RabbitMQ: the queue;
        # Redis: its priority lists).
        client = Orchestrator(settings=own.settings)
        try:
            yield own.settings, own.env, client
        finally:
            client.close()


def test_an_urgent_execution_overtakes_a_backlog_on_one_worker_process(
    cluster: tuple[config.Settings, dict[str, str], Orchestrator], tmp_path: Path
) -> None:
    settings, env, client = cluster
    backlog = machine({"Only": task("sleep", Parameters={"seconds": 0.01, "tag": "backlog"})})
    urgent = machine(
        {
            "First": task("echo", Next="Pause"),
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Second"},
            "Second": task("echo", Next="Third"),
            "Third": task("echo"),
        }
    )
    began = time.monotonic()
    with client.bound():
        for n in range(BACKLOG):  # at the default priority (4)
            client.start_workflow(backlog, {"n": n}, name=f"backlog-{n}")
    queued_s = time.monotonic() - began
    store = get_store(settings)
    assert store.execution_meta("backlog-0")[4] == str(config.DEFAULT_PRIORITY)  # type: ignore[index]

    def succeeded() -> int:
        return store.execution_index_size(status="SUCCEEDED")

    with worker_and_beat(env, tmp_path, REPO, concurrency=1), client.bound():
        # The worker is taking the backlog, oldest first.
        wait_until(lambda: succeeded() > 0, 60, message="the backlog's first execution")
        before = succeeded()
        started = time.monotonic()
        handle = client.start_workflow(urgent, {"urgent": True}, priority=9)
        result = handle.result(60)
        took = time.monotonic() - started
        after = succeeded() - 1  # the urgent one aside
        assert result.status == "SUCCEEDED", result
        assert handle.describe().priority == 9
        # Done ahead of the backlog: most of it is still waiting, and the urgent
        # execution took about its Wait, not the minutes the backlog takes.
        assert after - before < BACKLOG / 4, (before, after, took)
        assert BACKLOG - after > BACKLOG / 2, (before, after, took)
        # How fast this worker drains the queue, for the figures below.
        drain_from, drain_start = after, time.monotonic()
        wait_until(lambda: succeeded() >= drain_from + 100, 60, message="the backlog moving")
        rate = (succeeded() - drain_from) / (time.monotonic() - drain_start)
    remaining = BACKLOG - after
    print(
        f"\nbacklog of {BACKLOG} queued in {queued_s:.1f} s; {before} done when the urgent "
        f"execution started, {after} when it ended {took:.2f} s later (4 steps, a 1 s Wait); "
        f"the worker drains ~{rate:.0f} steps/s: the {remaining} left need ~"
        f"{remaining / rate:.0f} s"
    )
    assert took < remaining / rate / 2, (took, remaining, rate)
