"""A worker process killed mid-step: the step's lease lapses, the timer loop ("beat", here
in the test process) dispatches it again, a new worker finishes it, and the workflow
moves on exactly once — in seconds, not after the broker's 1 h visibility timeout.

The worker is a real ``celery worker --pool prefork`` subprocess; Redis is an embedded
server (or, with ``REDIS_URL``/``BROKER_URL`` set, the given services under a private
key prefix and queue).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import config, start_workflow
from orchestrator.engine.celery_app import app
from orchestrator.engine.timers import TimerLoop
from orchestrator.testing import LocalOrchestrator, process_settings
from tests.activities import counter, release
from tests.helpers import (
    celery_worker_command,
    count_events,
    machine,
    process_environment,
    task,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2
#: The broker's last-resort redelivery delay (orchestrator.engine.celery_app): recovery must not
#: depend on it.
VISIBILITY_TIMEOUT_S = 3600


@dataclass
class Cluster:
    settings: config.Settings
    env: dict[str, str]
    log_dir: Path
    workers: list[subprocess.Popen]

    def start_worker(self, label: str) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{label}.log", "wb")  # noqa: SIM115 - closed at exit
        command = celery_worker_command(
            self.settings.queue, f"e2e-{label}-{uuid.uuid4().hex[:6]}@%h"
        )
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill it whole
        )
        log.close()
        self.workers.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("worker-*.log"))
        )


def _kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Redis + settings shared by this process and worker subprocesses, and a beat."""
    with process_environment(
        "e2e",
        ["tests.activities"],
        extra_env={"ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS)},
        lease_seconds=LEASE_SECONDS,
    ) as own:
        # The process's own settings: the timer loop started here ("beat") reads them.
        with process_settings(own.settings):
            beat = TimerLoop(interval=0.1).start()
            state = Cluster(own.settings, own.env, tmp_path, [])
            try:
                yield state
            finally:
                for process in state.workers:
                    _kill_group(process, signal.SIGTERM)
                beat.stop()


@pytest.mark.e2e
def test_worker_killed_mid_step_is_recovered_in_seconds(cluster: Cluster, capsys) -> None:
    tag = uuid.uuid4().hex[:12]
    definition = machine(
        {
            "Block": task("block", Parameters={"tag": tag}, ResultPath="$.block", Next="Count"),
            "Count": task("count", Parameters={"tag": tag}, ResultPath="$.count", Next="Done"),
            "Done": {"Type": "Pass", "End": True},
        }
    )
    first = cluster.start_worker("first")
    handle = start_workflow(definition, {"order": 1})
    try:
        wait_until(lambda: counter("started", tag) == 1, timeout=60, message="activity started")
    except AssertionError:
        pytest.fail(f"the first worker never ran the activity\n{cluster.logs()}")
    assert handle.describe().status == "RUNNING"

    killed_at = time.monotonic()
    _kill_group(first, signal.SIGKILL)
    assert first.returncode is not None
    cluster.start_worker("second")
    release(tag)

    try:
        result = handle.result(30)
    except TimeoutError:
        pytest.fail(f"the execution was not recovered within 30 s\n{cluster.logs()}")
    recovery = time.monotonic() - killed_at
    with capsys.disabled():
        print(
            f"\n[e2e] worker SIGKILLed mid-step; execution SUCCEEDED {recovery:.2f} s later "
            f"(lease {LEASE_SECONDS} s, visibility timeout {VISIBILITY_TIMEOUT_S} s)"
        )
    assert result.status == "SUCCEEDED", (result, cluster.logs())
    assert recovery < 30, recovery
    assert result.output == {
        "order": 1,
        "block": {"tag": tag, "released": True},
        "count": {"tag": tag, "calls": 1},
    }
    # The killed attempt started, never finished; the re-dispatched one completed once.
    assert counter("started", tag) == 2
    assert counter("finished", tag) == 1
    assert counter("calls", tag) == 1  # the downstream step ran once
    history = handle.history()
    assert count_events(history, "TaskStarted", "Block") == 2
    for state in ("Block", "Count"):
        assert count_events(history, "TaskSucceeded", state) == 1, history
        assert count_events(history, "TaskStateExited", state) == 1, history
    assert count_events(history, "TaskStarted", "Count") == 1
    assert count_events(history, "ExecutionSucceeded") == 1


def test_runtime_publishes_with_the_orchestrator_app_from_any_thread(
    monkeypatch, orchestrator: LocalOrchestrator
) -> None:
    """The timer loop (beat) and the reconciler publish from their own thread: what they
    send must go through the orchestrator's Celery app, not Celery's thread-local
    ``current_app`` (Celery's *default* app, amqp://localhost, in a thread where the
    orchestrator app was never made current). The session's Redis holds the outbox
    entries a publish pushes and marks."""
    import threading

    from celery.canvas import Signature

    from orchestrator.engine.machines import make_interpreter
    from orchestrator.engine.publisher import publish
    from orchestrator.language.definition import parse_definition
    from orchestrator.language.interpreter import Dispatch, ExecutionInfo

    sent: list[object] = []
    monkeypatch.setattr(Signature, "apply_async", lambda self, *a, **k: sent.append(self.app))
    interp = make_interpreter(
        parse_definition(machine({"A": task("echo", Next="B"), "B": task("echo")})),
        ExecutionInfo("x", "x", "wf", 0.0),
    )
    thread = threading.Thread(
        target=publish,
        args=(interp, "x", [Dispatch("A", "A", "echo", {}), Dispatch("B", "B", "echo", {})]),
    )
    thread.start()
    thread.join(10)
    assert sent, "nothing was published"
    assert all(getattr(a, "_get_current_object", lambda a=a: a)() is app for a in sent), sent


def test_publishing_works_after_reconfiguring_the_app() -> None:
    """Two local_orchestrator() sessions in one process (or any reconfigure() after a
    publish): the second must publish on a fresh connection, not the closed pool.

    Run in a fresh interpreter: in-process workers share Celery's process-wide worker
    state, so stopping one here would stop the test session's worker too."""
    script = (
        "from orchestrator import start_workflow\n"
        "from orchestrator.testing import local_orchestrator\n"
        "d = {'StartAt': 'E', 'States': {'E': {'Type': 'Task', 'Resource': 'echo', 'End': True}}}\n"
        "for round_ in range(2):\n"
        "    with local_orchestrator(task_modules=['tests.activities'], concurrency=1):\n"
        "        result = start_workflow(d, {'round': round_}).result(20)\n"
        "        assert result.status == 'SUCCEEDED', result\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
