"""`orchestrator task success|failure|heartbeat TOKEN`: answering a waiting task from the
command line, as an operator (or a script) would, against the session's Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tests.control_activities  # noqa: F401 - registers ctl_token_sink before the worker starts
from orchestrator import start_workflow
from tests.control_activities import ctext
from tests.helpers import machine, task, wait_until

ROOT = Path(__file__).resolve().parents[2]


def waiting_execution(tag: str, **fields: Any) -> tuple[Any, str]:
    state = task(
        "ctl_token_sink.waitForTaskToken",
        Parameters={"tag": tag, "token.$": "$$.Task.Token"},
        **fields,
    )
    handle = start_workflow(machine({"T": state}), {"in": 1})
    token = wait_until(lambda: ctext("token", tag), 10, message="task token stored")
    wait_until(lambda: any(s.status.startswith("WAITING") for s in handle.describe().steps), 10)
    return handle, str(token)


def cli(orchestrator: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": orchestrator.settings.redis_url,
        "ORCHESTRATOR_KEY_PREFIX": orchestrator.settings.key_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_task_success_completes_the_task_and_a_spent_token_exits_2(orchestrator, tag):
    handle, token = waiting_execution(tag, ResultPath="$.answer")
    done = cli(orchestrator, "task", "success", token, "--output", '{"approved": true}')
    assert done.returncode == 0, done.stderr
    result = handle.result(15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"in": 1, "answer": {"approved": True}}
    again = cli(orchestrator, "task", "success", token)
    assert again.returncode == 2
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid task token"), again.stderr


def test_task_heartbeat_then_failure(orchestrator, tag):
    handle, token = waiting_execution(tag, HeartbeatSeconds=60)
    beat = cli(orchestrator, "task", "heartbeat", token)
    assert beat.returncode == 0, beat.stderr
    failed = cli(orchestrator, "task", "failure", token, "--error", "Rejected", "--cause", "no")
    assert failed.returncode == 0, failed.stderr
    result = handle.result(15)
    assert (result.status, result.error, result.cause) == ("FAILED", "Rejected", "no")
