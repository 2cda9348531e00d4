"""Global activity limits with separate worker processes (issue 13 item 4).

Two ``orchestrator worker`` processes of concurrency 4 (prefork: 2 x 4 pool processes) importing
``tests.limit_activities``, and ``orchestrator beat`` (the timer process), on the suite's
Redis and broker. The test process imports no activity code: it starts the executions,
and its start commits publish the first steps, by the limits the workers advertised.

* ``max_concurrency=2``, 12 parallel branches of 0.4 s: never more than 2 at once over
  the 8 slots, all succeed, every permit given back.
* ``rate_limit="10/s"``, a Map of 60 items: their starts come at 10 a second, within 10 %.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import config, start_workflow
from orchestrator.engine import limits
from orchestrator.engine.store import get_store
from orchestrator.testing import process_settings
from tests.helpers import machine, process_environment, stop_processes, task, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# The names tests/limit_activities.py registers (not imported here: this process
# knows the limits only from what the workers advertise).
LIMITED, RATED = "limits-pair", "limits-ten-per-second"


def max_overlap(spans: list[dict[str, Any]]) -> int:
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    return most


@dataclass
class Cluster:
    settings: config.Settings
    log_dir: Path
    processes: list[subprocess.Popen]

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with process_environment("e2e-lim") as own:
        settings, env = own.settings, own.env
        state = Cluster(settings, tmp_path, [])
        commands = {
            "worker-1": ["worker", "--pool", "prefork", "-c", "4"],
            "worker-2": ["worker", "--pool", "prefork", "-c", "4"],
            "beat": ["beat"],
        }
        with process_settings(settings):
            limits.forget_advertised()
            for label, args in commands.items():
                if label.startswith("worker"):
                    args = [*args, "--tasks", "tests.limit_activities"]
                with open(tmp_path / f"{label}.log", "wb") as log:
                    state.processes.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
                            env=env,
                            cwd=REPO,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            store = get_store(settings)
            host = socket.gethostname()
            nodes = [f"orchestrator-{p.pid}@{host}" for p in state.processes[:2]]
            wait_until(
                lambda: (
                    all(n in store.live_workers(0) for n in nodes)
                    or any(p.poll() is not None for p in state.processes)
                ),
                60,
                message="the workers to start",
            )
            assert all(p.poll() is None for p in state.processes), state.logs()
            try:
                yield state
            finally:
                stop_processes(state.processes)
                limits.forget_advertised()


def test_max_concurrency_and_rate_limit_hold_across_two_workers(cluster: Cluster) -> None:
    store = get_store(cluster.settings)
    advertised = store.activity_limits()
    assert limits.Limits.from_json(advertised[LIMITED]) == limits.Limits(max_concurrency=2)
    assert limits.Limits.from_json(advertised[RATED]) == limits.Limits(rate_limit="10/s")

    branches = [machine({f"B{i}": task(LIMITED, Parameters={"sleep": 0.4})}) for i in range(12)]
    fan = machine({"Fan": {"Type": "Parallel", "Branches": branches, "End": True}})
    items = list(range(60))
    paced = machine(
        {
            "Paced": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "R", "States": {"R": task(RATED)}},
                "End": True,
            }
        }
    )
    limited = start_workflow(fan, {})
    rated = start_workflow(paced, {"items": items})

    result = limited.result(60)
    assert result.status == "SUCCEEDED", (result, cluster.logs())
    spans = result.output
    assert len(spans) == 12
    print(f"max_concurrency=2: {max_overlap(spans)} at most at once, 12 branches")
    assert max_overlap(spans) == 2, spans  # never above the limit, and the limit is used
    # Both workers ran them (each span's pool process is a child of one of them).
    assert {s["ppid"] for s in spans} == {p.pid for p in cluster.processes[:2]}, spans
    wait_until(
        lambda: store.permits_in_use([LIMITED]) == [0], 10, message="every permit given back"
    )

    result = rated.result(60)
    assert result.status == "SUCCEEDED", (result, cluster.logs())
    starts = sorted(s["start"] for s in result.output)
    observed = (len(starts) - 1) / (starts[-1] - starts[0])
    print(f"rate_limit=10/s: {observed:.2f} starts/s over {len(starts)} steps")
    assert observed == pytest.approx(10.0, rel=0.10), observed
