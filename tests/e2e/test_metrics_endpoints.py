"""The per-process metrics endpoints: ``orchestrator worker --metrics-port`` (a prefork
worker: its pool processes' step histograms and failure counters, summed by the parent)
and ``orchestrator beat --metrics-port`` (timer lateness), each a separate process."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import Orchestrator, config, start_workflow
from tests.helpers import machine, process_environment, stop_processes, task, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def cluster_env() -> Iterator[tuple[config.Settings, dict[str, str], Orchestrator]]:
    """Settings of a private key prefix and queue (embedded Redis unless REDIS_URL), the
    environment of processes that use them, and a client of theirs (the process keeps its
    own settings: a session's timer loop must not fire this cluster's timers)."""
    with process_environment("metrics", ["tests.activities"]) as own:
        env = {k: v for k, v in own.env.items() if not k.startswith("PROMETHEUS_")}
        client = Orchestrator(settings=own.settings)
        try:
            yield own.settings, env, client
        finally:
            client.close()


@contextlib.contextmanager
def _processes(
    commands: dict[str, list[str]], env: dict[str, str], logs: Path
) -> Iterator[dict[str, Path]]:
    paths = {name: logs / f"{name}.log" for name in commands}
    procs = []
    try:
        for name, args in commands.items():
            with paths[name].open("w") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield paths
    finally:
        stop_processes(procs)


def test_worker_and_beat_serve_their_own_metrics(cluster_env, tmp_path: Path) -> None:
    settings, env, client = cluster_env
    worker_port, beat_port = _free_port(), _free_port()
    commands = {
        "worker": ["worker", "--pool", "prefork", "-c", "2", "--metrics-port", str(worker_port)],
        "beat": ["beat", "--metrics-port", str(beat_port)],
    }
    with _processes(commands, env, tmp_path) as logs, client.bound():

        def log_text() -> str:
            return "\n".join(f"--- {n}\n{p.read_text()[-3000:]}" for n, p in logs.items())

        wait_until(lambda: "ready" in logs["worker"].read_text(), 60, message="the worker to start")
        items = machine(
            {
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": machine({"Echo": task("echo")}),
                    "End": True,
                }
            }
        )
        retried = machine(
            {
                "Boom": task(
                    "fail",
                    Parameters={"error": "Boom"},
                    Retry=[{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                )
            }
        )
        waits = machine({"Nap": {"Type": "Wait", "Seconds": 1, "End": True}})
        handles = [
            start_workflow(items, {"items": list(range(6))}),
            start_workflow(retried, {}),
            start_workflow(waits, {}),
        ]
        statuses = [handle.result(60).status.value for handle in handles]
        assert statuses == ["SUCCEEDED", "FAILED", "SUCCEEDED"], log_text()

        worker = _scrape(worker_port)
        echo, fail = ("activity", "echo"), ("activity", "fail")
        duration = "orchestrator_step_duration_seconds_count"
        assert worker[(duration, frozenset({echo}))] == 6, log_text()
        assert worker[(duration, frozenset({fail}))] == 3  # the first attempt and 2 retries
        failed = "orchestrator_steps_failed_total"
        assert worker[(failed, frozenset({fail, ("error", "Boom")}))] == 3
        assert (failed, frozenset({echo, ("error", "Boom")})) not in worker
        # Cluster-wide figures are the ui's, not repeated by every worker.
        assert not any(name.startswith("orchestrator_executions") for name, _ in worker)

        # Two retry backoffs and one Wait, each fired once by beat, within a few ticks.
        beat = _scrape(beat_port)
        assert beat[("orchestrator_timer_lateness_seconds_count", frozenset())] == 3, log_text()
        lateness = beat[("orchestrator_timer_lateness_seconds_sum", frozenset())]
        assert 0 <= lateness < 3 * 1.0, lateness
        assert not any(name.startswith("orchestrator_step") for name, _ in beat)
