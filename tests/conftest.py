"""Fixtures: one real Redis + in-process Celery worker + timer loop for the whole session.

Without ``REDIS_URL`` the orchestrator starts an embedded redis-server; with it (and
``BROKER_URL``) the session uses the given services under a unique key prefix and queue,
deleting only its own keys at the end.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from hypothesis import settings

from orchestrator.testing import LocalOrchestrator, local_orchestrator
from tests.parallel import pytest_xdist_make_scheduler  # noqa: F401 - an xdist hook
from tests.redis_servers import ClusterGroup, cluster_group, redis_servers

# Hypothesis's default 200 ms deadline per example measures the machine's load, not the
# code: on a busy CI machine a parse of a generated path can take longer, and the test
# fails without a bug. Bombs and hangs are the security suite's, with their own limits.
settings.register_profile("orchestrator", deadline=None)
settings.load_profile("orchestrator")

TASK_MODULES = ["tests.activities", "orchestrator.examples.order_activities"]


class TaskLog:
    """What the in-process worker finished (``task_postrun``): task ids, and step runs.

    A step run is an activity message ``(input, execution_id, step_key)`` that was
    processed, whether it ran the step or was dropped as a duplicate.
    """

    def __init__(self) -> None:
        self._done: set[str] = set()
        self._steps: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, task_id: str | None = None, args: Any = None, **_: Any) -> None:
        with self._lock:
            if task_id:
                self._done.add(task_id)
            if isinstance(args, list | tuple) and len(args) == 3:
                key = (str(args[1]), str(args[2]))
                self._steps[key] = self._steps.get(key, 0) + 1

    def finished(self, task_id: str) -> bool:
        """Whether the task with this id finished."""
        with self._lock:
            return task_id in self._done

    def step_messages(self, execution_id: str, step_key: str) -> int:
        """How many messages for this step the worker finished processing."""
        with self._lock:
            return self._steps.get((execution_id, step_key), 0)


@pytest.fixture(scope="session")
def task_log() -> Iterator[TaskLog]:
    log = TaskLog()
    signals.task_postrun.connect(log.record, weak=False)
    try:
        yield log
    finally:
        signals.task_postrun.disconnect(log.record)


@pytest.fixture(scope="session")
def orchestrator(task_log: TaskLog) -> Iterator[LocalOrchestrator]:
    """Redis, a threads worker (enough threads for blocking tests) and the timer loop."""
    from orchestrator.engine.celery_app import app

    with local_orchestrator(task_modules=TASK_MODULES, concurrency=8) as local:
        queue = local.settings.queue
        shared = local.redis is None
        yield local
    if shared:
        # A shared broker keeps the run's queue (RabbitMQ) or its bindings (Redis).
        try:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue)
        except Exception:  # noqa: BLE001 - best effort
            pass


@pytest.fixture
def tag() -> str:
    """A unique tag for this test's counters and release keys."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def unique_name() -> str:
    """A unique execution name."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[ClusterGroup]:
    """A Redis Cluster of three masters of the test's own (real ``redis-server``
    processes, tests/redis_servers.py), formed and agreed on its slots; stopped after."""
    with redis_servers(tmp_path / "redis-cluster") as servers:
        yield cluster_group(servers)
