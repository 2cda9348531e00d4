"""Per-activity queues and worker node names with separate worker processes (issue 13
items 1 and 6).

Two ``orchestrator worker`` processes on this host, with their default node names: one
consuming only the default queue, one only the ``gpu`` queue (``TEST_GPU_QUEUE``, unique
to the run), both importing ``tests.queue_activities``. The test process imports no
activity code: it routes by what the workers advertised. On the suite's broker (the
embedded Redis, or ``REDIS_URL``/``BROKER_URL``: RabbitMQ in CI's second phase, where a
second worker named ``celery@host`` would exit with ``ResourceLocked``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import config, start_workflow
from orchestrator.engine import activities
from orchestrator.engine.store import get_store
from orchestrator.testing import process_settings
from tests.helpers import machine, process_environment, stop_processes, task, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RENDER, WHERE = "queue-render", "queue-where"


@dataclass
class Cluster:
    settings: config.Settings
    env: dict[str, str]
    gpu: str
    log_dir: Path
    workers: list[subprocess.Popen]

    def start_worker(self, label: str, queue: str) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{label}.log", "wb")  # noqa: SIM115 - closed below
        command = [sys.executable, "-m", "orchestrator", "worker", "--pool", "threads", "-c", "2"]
        command += ["--tasks", "tests.queue_activities", "--queues", queue]
        process = subprocess.Popen(
            command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.workers.append(process)
        node = f"orchestrator-{process.pid}@{socket.gethostname()}"
        store = get_store(self.settings)
        wait_until(
            lambda: node in store.live_workers(0) or process.poll() is not None,
            60,
            message=f"worker {label} to start",
        )
        assert process.poll() is None, self.logs()
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("worker-*.log"))
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with process_environment("e2e-q") as own:
        gpu = f"gpu-e2e-{own.run}"
        own.env["TEST_GPU_QUEUE"] = gpu
        own.extra_queues.append(gpu)
        with process_settings(own.settings):
            state = Cluster(own.settings, own.env, gpu, tmp_path, [])
            try:
                yield state
            finally:
                stop_processes(state.workers)


def test_gpu_activity_runs_only_on_the_gpu_worker_and_workers_have_own_node_names(
    cluster: Cluster,
) -> None:
    assert RENDER not in activities._registry  # this process routes by what is advertised
    cpu = cluster.start_worker("cpu", cluster.settings.queue)
    items = list(range(6))
    definition = machine(
        {
            "Where": task(WHERE, ResultPath="$.first", Next="Renders"),
            "Renders": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "Render", "States": {"Render": task(RENDER)}},
                "ResultPath": "$.renders",
                "End": True,
            },
        }
    )
    # Starts, although no worker consumes the gpu queue yet; its steps wait there, said so.
    handle = start_workflow(definition, {"items": items})
    wait_until(
        lambda: (
            [s.status for s in handle.describe().steps if s.state == "Render"]
            == ["SCHEDULED"] * len(items)
        ),
        30,
        message=f"the renders scheduled\n{cluster.logs()}",
    )
    assert activities.queue_for(RENDER) == cluster.gpu
    assert activities.unserved_queues([RENDER, WHERE]) == [cluster.gpu]

    gpu = cluster.start_worker("gpu", cluster.gpu)
    assert activities.unserved_queues([RENDER, WHERE]) == []
    result = handle.result(30)
    assert result.status == "SUCCEEDED", (result, cluster.logs())
    assert result.output["first"]["pid"] == cpu.pid
    assert [r["pid"] for r in result.output["renders"]] == [gpu.pid] * len(items)

    # Two workers on one host, each with its own default node name, both still running.
    host = socket.gethostname()
    live = get_store(cluster.settings).live_workers(0)
    assert live == {
        f"orchestrator-{cpu.pid}@{host}": [cluster.settings.queue],
        f"orchestrator-{gpu.pid}@{host}": [cluster.gpu],
    }
    assert cpu.poll() is None and gpu.poll() is None, cluster.logs()
    assert "ResourceLocked" not in cluster.logs()
