"""``local_orchestrator()`` never leaks its embedded redis-server or a thread, whatever
fails inside it: a task module's import, the worker's start, the body, Ctrl-C.

Each scenario runs in a subprocess of its own (as a user's test session would), on the
embedded Redis: the server runs in its own session, so a leaked one would outlive the
subprocess with parent PID 1 — exactly what is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = textwrap.dedent(
    """
    import json, sys, threading
    import orchestrator.testing as testing
    from orchestrator.engine.embedded import EmbeddedRedis

    pids = []

    class Recorded(EmbeddedRedis):
        def start(self):
            started = super().start()
            pids.append(self.pid)
            return started

    testing.EmbeddedRedis = Recorded
    scenario = sys.argv[1]
    if scenario == "worker_start_fails":
        import celery.contrib.testing.worker as worker

        def broken(*args, **kwargs):
            raise RuntimeError("worker cannot start")

        worker.start_worker = broken
    failing = ["no_such_module_for_this_test"]
    demo = ["orchestrator.examples.order_activities"]
    modules = failing if scenario == "import_fails" else demo
    before = {t.ident for t in threading.enumerate()}
    error = None
    try:
        with testing.local_orchestrator(task_modules=modules):
            if scenario == "body_raises":
                raise ValueError("the body failed")
            if scenario == "interrupted":
                raise KeyboardInterrupt
    except BaseException as exc:  # noqa: BLE001
        error = type(exc).__name__
    leftover = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.daemon
    ]
    print(json.dumps({"pids": pids, "error": error, "threads": leftover}))
    """
)


def run_scenario(name: str) -> dict[str, object]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "ORCHESTRATOR_REDIS_URL", "BROKER_URL", "ORCHESTRATOR_BROKER_URL")
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO, name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose only once its parent reaped it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z"


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        ("import_fails", "ModuleNotFoundError"),
        ("worker_start_fails", "RuntimeError"),
        ("body_raises", "ValueError"),
        ("interrupted", "KeyboardInterrupt"),
        ("clean_exit", None),
    ],
)
def test_nothing_outlives_local_orchestrator(scenario: str, error: str | None) -> None:
    result = run_scenario(scenario)
    assert result["error"] == error
    pids = result["pids"]
    assert isinstance(pids, list) and len(pids) == 1, "one embedded server was started"
    # stop() waits for the server, so it is gone when the context exits; poll anyway
    # in case /proc lags.
    wait_until(lambda: gone(pids[0]), timeout=10, message=f"redis-server {pids[0]} leaked")
    assert result["threads"] == [], "no non-daemon thread left running"
