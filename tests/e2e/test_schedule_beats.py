"""Schedules fired by two real ``orchestrator beat`` processes (issue 15 item 2).

Two beats and one worker, separate processes, on a private key prefix and queue. A
``rate(1 second)`` schedule fires while both beats tick; one beat is then SIGKILLed and
the other carries on. Every scheduled time must have started exactly one execution
(named after the schedule and that time), and every execution must succeed once.
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
from tests.helpers import machine, process_environment, stop_processes, wait_until

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
