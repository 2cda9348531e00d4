"""``python -m orchestrator run`` end to end, as a user runs it: a subprocess, no REDIS_URL.

Each run starts its own embedded Redis, in-process worker and timer loop, so these tests
use no fixture; the subprocess timeout is the only deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import worker_and_beat

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "orchestrator" / "examples" / "inputs"
#: Generous: a run takes ~2 s (one 1 s retry backoff), but CI machines can be slow.
RUN_TIMEOUT_S = 120


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Redis/broker settings (the zero-setup default), with
    the demo's activities (no task module is imported by default)."""
    # Without COLUMNS and LINES too: output piped to a file, whatever the test runner's
    # terminal (pytest-xdist's workers inherit COLUMNS=80 from the controller).
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "REDIS_URL",
            "ORCHESTRATOR_REDIS_URL",
            "BROKER_URL",
            "ORCHESTRATOR_BROKER_URL",
            "COLUMNS",
            "LINES",
        )
    }
    env["ORCHESTRATOR_TASK_MODULES"] = "orchestrator.examples.order_activities"
    env.update(extra)
    return env


def orchestrator_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def last_json_line(stdout: str) -> dict[str, Any]:
    value = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(value, dict)
    assert set(value) == {"execution_id", "status", "output", "error", "cause"}
    return value


def test_successful_order_exits_0_with_json_result() -> None:
    proc = orchestrator_cli(
        "run", "order_fulfillment", "--input-file", str(EXAMPLES / "order.json"), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = last_json_line(proc.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["execution_id"]
    assert result["output"]["confirmation"] == {"sent": True, "channel": "email"}
    assert result["error"] is None and result["cause"] is None
    # The step-by-step progress went to stderr, keeping stdout parseable.
    assert "TaskFailed" in proc.stderr and "ExecutionSucceeded" in proc.stderr


def test_out_of_stock_order_exits_1() -> None:
    proc = orchestrator_cli(
        "run",
        "order_fulfillment",
        "--input-file",
        str(EXAMPLES / "order_out_of_stock.json"),
        "--json",
    )
    assert proc.returncode == 1, proc.stderr
    result = last_json_line(proc.stdout)
    assert result["status"] == "FAILED"
    assert result["error"] == "OrderFailed"
    assert result["output"] is None


def test_human_output_shows_each_step_in_order() -> None:
    order = json.loads((EXAMPLES / "order.json").read_text())
    order["order_id"] = "o-human"
    proc = orchestrator_cli(
        "run", "order_fulfillment", "--input", json.dumps(order), "--name", "cli-human-run"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any("cli-human-run" in line for line in lines[:2])

    def index(*words: str) -> int:
        return next(i for i, line in enumerate(lines) if all(w in line for w in words))

    # The retry is visible: a failed charge, then a successful one.
    failed = index("TaskFailed", "ChargePayment", "PaymentGatewayUnavailable")
    succeeded = index("TaskSucceeded", "ChargePayment")
    assert index("ExecutionStarted") < index("TaskStateEntered", "ValidateOrder") < failed
    assert failed < succeeded < index("ExecutionSucceeded")
    assert "SUCCEEDED" in proc.stdout


def test_wait_timeout_exits_1_with_running_status() -> None:
    # The first charge fails and retries after 1 s: a 0.2 s wait cannot see the end.
    proc = orchestrator_cli(
        "run",
        "order_fulfillment",
        "--input-file",
        str(EXAMPLES / "order.json"),
        "--json",
        "--timeout",
        "0.2",
    )
    assert proc.returncode == 1, proc.stderr
    result = last_json_line(proc.stdout)
    assert result["status"] == "RUNNING"


def test_bad_input_exits_2() -> None:
    proc = orchestrator_cli("run", "order_fulfillment", "--input", "{oops")
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr


def test_bad_definition_exits_2_listing_issues(tmp_path: Path) -> None:
    path = tmp_path / "broken.asl.json"
    path.write_text(
        json.dumps({"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "Next": "B"}}})
    )
    proc = orchestrator_cli("run", str(path), "--json")
    assert proc.returncode == 2
    assert "$.States.A.Next:" in proc.stderr
    assert last_json_line(proc.stdout)["error"] == "DefinitionError"


def test_invalid_execution_name_exits_2() -> None:
    proc = orchestrator_cli(
        "run", "order_fulfillment", "--input", "{}", "--name", "has space", "--json"
    )
    assert proc.returncode == 2
    assert "execution name" in proc.stderr
    assert last_json_line(proc.stdout)["error"] == "InvalidInputError"


# ------------------------------------------- separate worker and beat processes (e2e)


@pytest.fixture
def redis_url() -> Iterator[str]:
    from orchestrator.engine.embedded import EmbeddedRedis

    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@pytest.mark.e2e
def test_worker_and_beat_commands_run_an_execution(redis_url: str, tmp_path: Path) -> None:
    """`orchestrator worker` + `orchestrator beat`, then `run` against their REDIS_URL.

    The demo order's first charge fails and is retried by a timer, which only beat fires:
    success proves both processes work.
    """
    env = clean_env(REDIS_URL=redis_url)
    with worker_and_beat(env, tmp_path, ROOT):
        proc = orchestrator_cli(
            "run",
            "order_fulfillment",
            "--input-file",
            str(EXAMPLES / "order.json"),
            "--json",
            "--timeout",
            "60",
            env=env,
        )
        assert proc.returncode == 0, proc.stderr + (tmp_path / "beat.log").read_text()
        result = last_json_line(proc.stdout)
        assert result["status"] == "SUCCEEDED"
        described = orchestrator_cli("describe", result["execution_id"], "--json", env=env)
        assert described.returncode == 0, described.stderr
        assert json.loads(described.stdout)["status"] == "SUCCEEDED"
        listed = orchestrator_cli("list", "--status", "succeeded", "--json", env=env)
        assert [e["execution_id"] for e in json.loads(listed.stdout)] == [result["execution_id"]]
        history = orchestrator_cli("history", result["execution_id"], env=env)
        assert history.returncode == 0 and "ExecutionSucceeded" in history.stdout


def test_run_against_redis_without_a_worker_says_so_and_keeps_waiting() -> None:
    """With REDIS_URL and nobody consuming the queue, `run` says so instead of silence."""
    from orchestrator.engine.embedded import EmbeddedRedis
    from orchestrator.errors import mask_url

    run_id = uuid.uuid4().hex[:8]
    definition = json.dumps(
        {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "echo", "End": True}}}
    )
    with contextlib.ExitStack() as stack:
        shared = os.environ.get("REDIS_URL")
        url = shared or stack.enter_context(EmbeddedRedis()).url
        env = clean_env(
            REDIS_URL=url,
            ORCHESTRATOR_KEY_PREFIX=f"noworker-{run_id}",
            ORCHESTRATOR_QUEUE=f"noworker-{run_id}",  # a queue no worker anywhere consumes
        )
        if shared and os.environ.get("BROKER_URL"):
            env["BROKER_URL"] = os.environ["BROKER_URL"]
        proc = orchestrator_cli(
            "run", definition, "--tasks", "tests.activities", "--timeout", "12", env=env
        )
    assert proc.returncode == 1, proc.stderr  # --timeout reached: still waiting, not failed
    assert "TaskScheduled" in proc.stdout
    expected = (
        f"no worker consumes queue 'noworker-{run_id}' on REDIS_URL={mask_url(url)}; "
        "start one with `orchestrator worker --tasks ...`"
    )
    assert expected in " ".join(proc.stderr.split()), proc.stderr
    assert "TIMEOUT: execution still running after 12 s" in proc.stdout
