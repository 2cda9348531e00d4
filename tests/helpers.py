"""Polling helpers: wait on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that value.

    Raises:
        AssertionError: still falsy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"condition not met within {timeout} s" + (f": {message}" if message else "")
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)


def event_types(history: Iterable[Any], state: str | None = None) -> list[str]:
    """The types of history events, optionally only those of ``state``."""
    return [e.type for e in history if state is None or e.state == state]


def count_events(history: Iterable[Any], type_: str, state: str | None = None) -> int:
    """How many events of ``type_`` (for ``state``) the history holds."""
    return sum(1 for e in history if e.type == type_ and (state is None or e.state == state))


def run_workflow(definition: Any, input: Any = None, *, timeout: float = 20.0, **kwargs: Any):
    """Start a workflow, wait for it to end, and return ``(handle, result)``."""
    from orchestrator import start_workflow

    handle = start_workflow(definition, input, **kwargs)
    return handle, handle.result(timeout)


def task(resource: str, **fields: Any) -> dict[str, Any]:
    """A Task state (``End: true`` unless ``Next`` is given)."""
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, **fields}
    if "Next" not in state:
        state["End"] = True
    return state


def machine(states: dict[str, Any], start: str | None = None, **fields: Any) -> dict[str, Any]:
    """A state machine starting at ``start`` (default: the first state)."""
    return {"StartAt": start or next(iter(states)), "States": states, **fields}


def map_machine(item_state: dict[str, Any], concurrency: int = 0) -> dict[str, Any]:
    """An inline Map over ``$.items`` whose iterations run ``item_state`` alone."""
    map_state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "MaxConcurrency": concurrency,
        "ItemProcessor": {"StartAt": "I", "States": {"I": item_state}},
        "End": True,
    }
    return machine({"M": map_state})


def celery_worker_command(queue: str, node: str) -> list[str]:
    """A separate prefork worker process of one slot on ``queue`` (end-to-end tests)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestrator.engine.celery_app",
        "worker",
        "--pool",
        "prefork",
        "-c",
        "1",
        "-Q",
        queue,
        "-n",
        node,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


@contextlib.contextmanager
def worker_and_beat(
    env: dict[str, str], logs_dir: Path, cwd: Path, concurrency: int = 2
) -> Iterator[None]:
    """``orchestrator worker`` (threads) and ``orchestrator beat`` as separate processes
    with ``env``, logging to ``logs_dir``/worker.log and beat.log, until the block ends
    (the worker is ready when the block starts)."""
    commands = {
        "worker": ["worker", "--pool", "threads", "--concurrency", str(concurrency)],
        "beat": ["beat"],
    }
    with contextlib.ExitStack() as stack:
        logs = {
            name: stack.enter_context((logs_dir / f"{name}.log").open("w")) for name in commands
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "orchestrator", *args, "--loglevel", "INFO"],
                cwd=cwd,
                env=env,
                stdout=logs[name],
                stderr=subprocess.STDOUT,
            )
            for name, args in commands.items()
        ]
        try:
            wait_until(
                lambda: "ready" in (logs_dir / "worker.log").read_text(),
                60,
                message="the worker to start",
            )
            yield
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
