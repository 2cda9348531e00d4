"""Kill the worker and beat (SIGKILL) while a Wait is pending; restarted, they finish it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator import Orchestrator, config
from orchestrator.engine.embedded import EmbeddedRedis
from tests.helpers import count_events, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [CELERY, "-A", "orchestrator.engine.celery_app", *args],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed as a whole
    )


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def test_beat_and_worker_killed_during_wait(tmp_path):
    redis = EmbeddedRedis().start()
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "REDIS_URL": redis.url,
        "ORCHESTRATOR_TASK_MODULES": "tests.control_activities",
        "ORCHESTRATOR_QUEUE": queue,
        "PYTHONPATH": str(ROOT),
    }
    worker_args = ["worker", "-P", "solo", "-Q", queue, "--loglevel", "WARNING"]
    beat_args = [
        "beat",
        "-S",
        "orchestrator.engine.beat:OrchestratorScheduler",
        "--loglevel",
        "WARNING",
        "--pidfile",
        "",
        "-s",
        str(tmp_path / "beat-schedule"),
    ]
    procs: list[subprocess.Popen] = []
    # A client of this test's Redis: the process (the session's worker) keeps its settings.
    client = Orchestrator(
        settings=config.Settings(
            redis_url=redis.url, queue=queue, task_modules=["tests.control_activities"]
        )
    )
    try:
        with client.bound():
            import tests.control_activities  # noqa: F401 - registers ctl_count for validation
            from orchestrator import describe_execution, get_execution_history, start_workflow
            from tests.control_activities import cget

            worker = _spawn(worker_args, env, tmp_path / "worker.log")
            beat = _spawn(beat_args, env, tmp_path / "beat.log")
            procs += [worker, beat]
            tag = uuid.uuid4().hex[:8]
            definition = {
                "StartAt": "W",
                "States": {
                    "W": {"Type": "Wait", "Seconds": 4, "Next": "T"},
                    "T": {
                        "Type": "Task",
                        "Resource": "ctl_count",
                        "Parameters": {"tag": tag, "name": "t"},
                        "End": True,
                    },
                },
            }
            handle = start_workflow(definition, {})
            wait_until(lambda: count_events(handle.history(), "WaitStateEntered") == 1, 10)
            _kill(worker)
            _kill(beat)
            assert handle.describe().status == "RUNNING"
            assert count_events(handle.history(), "WaitStateExited") == 0, "killed before due"

            worker = _spawn(worker_args, env, tmp_path / "worker.log")
            beat = _spawn(beat_args, env, tmp_path / "beat.log")
            procs += [worker, beat]
            wait_until(
                lambda: describe_execution(handle.execution_id).status != "RUNNING",
                60,
                message="execution ended after restart",
            )
            desc = describe_execution(handle.execution_id)
            assert desc.status == "SUCCEEDED", (desc, (tmp_path / "worker.log").read_text()[-3000:])
            history = get_execution_history(handle.execution_id)
            assert count_events(history, "WaitStateExited") == 1
            assert cget("calls", tag, "t") == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill(proc)
        client.close()
        redis.stop()
