"""Inline Maps of the sizes users bring, run as users run them (issue 12, item 3).

Through the CLI: ``orchestrator run`` on the embedded default (Redis, worker and timer
loop in its own process), and ``orchestrator run`` against separate ``orchestrator
worker`` and ``orchestrator beat`` processes. 20,000 Pass items and 5,000 Task items
(``MaxConcurrency`` 0 and 100) SUCCEED with their outputs in order.

Their histories hold 4 events per Pass item and 7 per Task item, over Step Functions'
quota of 25,000 events, as they would be on AWS (where a Map this size is a Distributed
Map's job); the runs raise ``ORCHESTRATOR_MAX_HISTORY_EVENTS`` to 100,000, and
tests/integration/test_map_scale.py shows the quota ending one on the defaults.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.store import redis_client
from tests.helpers import map_machine, worker_and_beat
from tests.integration.test_cli_run import ROOT, clean_env, last_json_line

pytestmark = pytest.mark.e2e

HISTORY = {"ORCHESTRATOR_MAX_HISTORY_EVENTS": "100000"}


PASS = {"Type": "Pass", "End": True}
ADD = {"Type": "Task", "Resource": "add", "Parameters": {"a.$": "$", "b": 1}, "End": True}


def _run(tmp_path: Path, definition: dict[str, Any], count: int, env: dict[str, str]) -> Any:
    """``orchestrator run`` of ``definition`` on ``count`` items; its output."""
    name = uuid.uuid4().hex[:8]
    (tmp_path / f"{name}.json").write_text(json.dumps(definition))
    (tmp_path / f"{name}-in.json").write_text(json.dumps({"items": list(range(count))}))
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(tmp_path / f"{name}.json")]
        + ["--input-file", str(tmp_path / f"{name}-in.json"), "--json", "--timeout", "170"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = last_json_line(proc.stdout)
    assert result["status"] == "SUCCEEDED", result
    return result["output"]


def _embedded_env() -> dict[str, str]:
    return clean_env(ORCHESTRATOR_TASK_MODULES="tests.activities", **HISTORY)


def test_20000_pass_items_through_the_cli(tmp_path: Path) -> None:
    assert _run(tmp_path, map_machine(PASS, 0), 20_000, _embedded_env()) == list(range(20_000))


def test_5000_task_items_through_the_cli(tmp_path: Path) -> None:
    output = _run(tmp_path, map_machine(ADD, 0), 5_000, _embedded_env())
    assert output == [i + 1 for i in range(5_000)]


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A separate worker and beat process: on an embedded Redis, or with ``REDIS_URL``
    (and ``BROKER_URL``) set, on those services under a key prefix and queue of their own."""
    logs_dir = tmp_path_factory.mktemp("scale-processes")
    run = uuid.uuid4().hex[:8]
    prefix, queue = f"orch-scale-{run}", f"scale-{run}"
    with contextlib.ExitStack() as stack:
        redis_url, broker_url = os.environ.get("REDIS_URL"), os.environ.get("BROKER_URL")
        embedded = not redis_url
        if embedded:
            redis_url, broker_url = stack.enter_context(EmbeddedRedis()).url, None
        extra = {
            "REDIS_URL": redis_url,
            "ORCHESTRATOR_KEY_PREFIX": prefix,
            "ORCHESTRATOR_QUEUE": queue,
            "ORCHESTRATOR_TASK_MODULES": "tests.activities",
            **HISTORY,
        }
        if broker_url:
            extra["BROKER_URL"] = broker_url
        env = clean_env(**extra)
        try:
            with worker_and_beat(env, logs_dir, ROOT, concurrency=4):
                yield env
        finally:
            if not embedded:
                # The machine's services: only this module's keys and queue go.
                with Connection(broker_url or redis_url) as connection:
                    connection.default_channel.queue_delete(queue)
                client = redis_client(redis_url)
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])
                client.close()


@pytest.mark.parametrize("concurrency", [0, 100])
def test_5000_task_items_on_separate_workers(
    processes: dict[str, str], tmp_path: Path, concurrency: int
) -> None:
    output = _run(tmp_path, map_machine(ADD, concurrency), 5_000, processes)
    assert output == [i + 1 for i in range(5_000)]


def test_20000_pass_items_on_separate_workers(processes: dict[str, str], tmp_path: Path) -> None:
    assert _run(tmp_path, map_machine(PASS, 0), 20_000, processes) == list(range(20_000))
