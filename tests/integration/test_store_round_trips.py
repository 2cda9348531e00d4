"""The hot path's Redis round trips: the store's named methods add none.

Counts the commands the worker threads send through the store (its client's commands,
its pipelines, its script lane) while an execution of Task states runs, so that a
refactoring that turns one read into two, or splits the commit, fails here rather than
only as a slower benchmark.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator import ExecutionStatus
from orchestrator.engine.store import RedisStore, get_store
from tests.helpers import machine, run_workflow, task

pytestmark = pytest.mark.usefixtures("orchestrator")

#: Task states in the workflow measured.
STEPS = 6


@dataclass
class RoundTrips:
    """The calls the worker threads sent through the store: ``(kind, arguments)``."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def of(self, execution_id: str) -> Counter[str]:
        """The calls made for ``execution_id``: its scripts, and the commands that name
        no other execution. A task left over from an earlier test (an activity still
        running when that test ended) may end on the same worker while this one runs;
        its claim, its commit and its activity's own bookkeeping are not this
        execution's hot path."""
        store = get_store()
        own = store.keys.execution(execution_id)
        others = (f"{store.keys.prefix}:test:", ":x:")
        counts: Counter[str] = Counter()
        for kind, args in self.calls:
            if kind == "script":
                keys = args[1]
                if any(key == own or key.startswith(own + ":") for key in keys):
                    counts[kind] += 1
                continue
            texts = [str(arg) for arg in args]
            if any(own in text for text in texts) or not any(
                marker in text for text in texts for marker in others
            ):
                counts[f"command {args[0]}" if kind == "command" else kind] += 1
        return counts


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    store = get_store()
    seen = RoundTrips()
    test_thread = threading.get_ident()

    def counting(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The test's own polling for the result and the timer loop's ticks are not the
            # hot path: only the worker's threads count.
            current = threading.current_thread()
            if threading.get_ident() != test_thread and current.name.startswith(
                "ThreadPoolExecutor"
            ):
                seen.calls.append((name, args))
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        store.client, "execute_command", counting("command", store.client.execute_command)
    )
    monkeypatch.setattr(store.lane, "run", counting("script", store.lane.run))
    pipeline = store.client.pipeline

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        pipe.execute = counting("pipeline", pipe.execute)
        return pipe

    monkeypatch.setattr(store.client, "pipeline", counted_pipeline)
    assert isinstance(store, RedisStore)
    yield seen


def test_a_task_step_costs_two_round_trips(round_trips: RoundTrips) -> None:
    states = {
        f"T{i}": task("echo", **({"Next": f"T{i + 1}"} if i < STEPS - 1 else {}))
        for i in range(STEPS)
    }
    handle, result = run_workflow(machine(states), {"n": 1})
    assert result.status == ExecutionStatus.SUCCEEDED
    counts = round_trips.of(handle.execution_id)
    # Per step: the claim (claim.lua) and the commit (commit.lua), nothing else.
    assert counts["script"] == 2 * STEPS, dict(counts)
    # Once per execution at most: reading the definition into the worker's cache and
    # loading a script into a server that lacked it.
    others = {name: n for name, n in counts.items() if name != "script"}
    assert sum(others.values()) <= 2, others
