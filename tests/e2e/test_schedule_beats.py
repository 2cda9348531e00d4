"""Schedules fired by two real ``orchestrator beat`` processes (issue 15 item 2).

Two beats and one worker, separate processes, on a private key prefix and queue. A
``rate(1 second)`` schedule fires while both beats tick; one beat is then SIGKILLed and
the other carries on. Every scheduled time must have started exactly one execution
(named after the schedule and that time), and every execution must succeed once. And a
beat started on schedules an earlier version left under its keys fires them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import ExecutionHandle, Orchestrator
from orchestrator.language.schedules import execution_name
from tests.helpers import (
    machine,
    old_schedule_keys,
    process_environment,
    schedule_to_old_layout,
    stop_processes,
    wait_until,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PASS = machine({"P": {"Type": "Pass", "End": True}})


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL takes all of it
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Orchestrator, list[subprocess.Popen]]]:
    with process_environment("beats", embedded=True) as own:
        client = Orchestrator(settings=own.settings)
        procs = [
            _spawn(
                ["worker", "--pool", "threads", "--concurrency", "2"], own.env, tmp_path / "w.log"
            ),
            _spawn(["beat"], own.env, tmp_path / "beat-1.log"),
            _spawn(["beat"], own.env, tmp_path / "beat-2.log"),
        ]
        try:
            wait_until(
                lambda: "ready" in (tmp_path / "w.log").read_text(), 60, message="the worker"
            )
            yield client, procs
        finally:
            stop_processes(p for p in procs if p.poll() is None)
            client.close()


def test_two_beat_processes_fire_each_time_once_and_survive_one_beat_dying(
    cluster: tuple[Orchestrator, list[subprocess.Popen]],
) -> None:
    client, procs = cluster
    name = "every-second"

    def started() -> list:
        firings = client.describe_schedule(name, log_count=200).firings
        return [f for f in firings if f.type == "STARTED"]

    client.create_schedule(name, PASS, "rate(1 second)", input={"k": 1}, overlap="ALLOW_ALL")
    wait_until(lambda: len(started()) >= 6, 60, message="six firings with both beats up")
    os.killpg(procs[1].pid, signal.SIGKILL)
    procs[1].wait(10)
    after_kill = len(started())
    wait_until(lambda: len(started()) >= after_kill + 6, 60, message="six more with one beat left")
    client.pause_schedule(name)

    firings = started()
    times = Counter(int(f.scheduled.timestamp()) for f in firings)
    assert times and set(times.values()) == {1}, times
    # One firing per second, none missed: consecutive scheduled times.
    assert sorted(times) == list(range(min(times), max(times) + 1))
    executions = [f.execution for f in firings]
    assert executions == [execution_name(name, int(f.scheduled.timestamp())) for f in firings]
    assert len(set(executions)) == len(executions)
    with client.bound():
        for execution in executions:
            result = ExecutionHandle(execution).result(30)
            assert result.status == "SUCCEEDED" and result.output == {"k": 1}, execution


def test_a_beat_of_this_version_fires_the_schedules_an_earlier_one_left(tmp_path: Path) -> None:
    # A deployment upgraded with its schedules under the keys of an earlier version (no
    # hash tag): the new beat process moves them when it starts ticking, and fires them.
    with process_environment("beats-upgrade", embedded=True) as own:
        client = Orchestrator(settings=own.settings)
        store = client.store
        name = "upgraded"
        procs = [
            _spawn(
                ["worker", "--pool", "threads", "--concurrency", "2"], own.env, tmp_path / "w.log"
            )
        ]
        try:
            client.create_schedule(name, PASS, "rate(1 second)", input={"k": 2})
            client.pause_schedule(name)
            client.resume_schedule(name)
            schedule_to_old_layout(store, name)
            assert all(store.client.exists(key) for key in old_schedule_keys(store, name))
            procs.append(_spawn(["beat"], own.env, tmp_path / "beat.log"))

            def started() -> list:
                firings = store.schedule_log(name, 200)
                return [f for f in firings if '"STARTED"' in f]

            wait_until(lambda: len(started()) >= 3, 60, message="firings by the new beat")
            assert not any(store.client.exists(key) for key in old_schedule_keys(store, name))
            described = client.describe_schedule(name, log_count=200)
            assert [f.type for f in described.firings][-2:] == ["RESUMED", "PAUSED"]
            client.pause_schedule(name)
            with client.bound():
                for execution in client.describe_schedule(name, log_count=200).executions:
                    result = ExecutionHandle(execution).result(30)
                    assert result.status == "SUCCEEDED" and result.output == {"k": 2}
            assert "moved 1 schedules" in (tmp_path / "beat.log").read_text()
        finally:
            stop_processes(p for p in procs if p.poll() is None)
            client.close()
