"""Polling helpers: wait on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from orchestrator import config
    from orchestrator.engine.store import RedisStore

T = TypeVar("T")

#: The repository's root: first on a child process's PYTHONPATH, and its working directory.
REPO = Path(__file__).resolve().parents[1]


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
            stop_processes(procs)


def stop_processes(processes: Iterable[subprocess.Popen]) -> None:
    """Terminate ``processes``, then wait up to 30 s for each (killed if it outlasts that)."""
    processes = list(processes)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_environ(**values: str) -> dict[str, str]:
    """The environment of a child process of the tests: this process's, without any
    ``ORCHESTRATOR_*``, ``REDIS_URL`` or ``BROKER_URL`` (the child is configured by
    ``values`` alone) but ``ORCHESTRATOR_PARTITIONS`` (the partition count the run's
    processes share: CI runs the suite with 4), with the repository first on
    ``PYTHONPATH`` and ``PYTHONUNBUFFERED=1``, then ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k == "ORCHESTRATOR_PARTITIONS"
        or (not k.startswith("ORCHESTRATOR_") and k not in ("REDIS_URL", "BROKER_URL"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
    )
    env.update(values)
    return env


@dataclass
class ProcessEnvironment:
    """What :func:`process_environment` yields."""

    #: The private key prefix and queue, the task modules and the overrides, on the Redis
    #: (and broker) below: for this process (a client, ``process_settings``).
    settings: config.Settings
    #: The same for child processes (workers, beat): see :func:`child_environ`.
    env: dict[str, str]
    redis_url: str
    #: ``None``: the Redis above is the broker too.
    broker_url: str | None
    #: The random run id in the prefix and queue names (for more names unique to the run).
    run: str
    #: More queues of the run's, deleted with its own at the end (append to it).
    extra_queues: list[str] = field(default_factory=list)


def _delete_own(settings: config.Settings, queues: Iterable[str]) -> None:
    """Delete the keys under ``settings``' prefix and ``queues`` (best effort), through a
    client of their own: the process's settings, stores and Celery app are untouched."""
    from orchestrator import Orchestrator

    client = Orchestrator(settings=settings)
    try:
        for queue in queues:
            # RabbitMQ: the queue; Redis: its priority lists (and kombu's bindings).
            with contextlib.suppress(Exception), client.app.connection_for_write() as c:
                c.default_channel.queue_delete(queue)
        redis = client.store.client
        keys = list(redis.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
        if keys:
            redis.delete(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def process_environment(
    tag: str,
    task_modules: Sequence[str] = (),
    *,
    broker: str | None = None,
    embedded: bool = False,
    extra_env: Mapping[str, str] | None = None,
    **settings_overrides: Any,
) -> Iterator[ProcessEnvironment]:
    """Settings and a child-process environment of their own, for tests that run workers
    and beat as separate processes.

    Redis is ``REDIS_URL`` (with ``BROKER_URL``, if set, as the broker) when the
    environment gives one and ``embedded`` is false, else an embedded server started here
    (its own broker); ``broker`` gives the broker instead: a URL, or ``"redis"`` for the
    Redis in use (children then always get ``BROKER_URL``). The key prefix is
    ``orch-<tag>-<run>`` and the queue ``orchestrator-<tag>-<run>`` (``run``: a fresh
    random id), the task modules ``task_modules`` (in ``settings`` and, when there are
    any, ``ORCHESTRATOR_TASK_MODULES``), the other settings the environment's with
    ``settings_overrides`` over them. ``extra_env`` is added to the children's environment
    (e.g. the ``ORCHESTRATOR_*`` twin of a setting override).

    When the block ends (its processes stopped by then), the run's own keys (those under
    its prefix), its queue and the yielded ``extra_queues`` are deleted (the queues best
    effort) and an embedded server is stopped; nothing else is touched.
    """
    from orchestrator import config
    from orchestrator.engine.embedded import EmbeddedRedis

    run = uuid.uuid4().hex[:10]
    server = None
    if os.environ.get("REDIS_URL") and not embedded:
        redis_url, broker_url = os.environ["REDIS_URL"], os.environ.get("BROKER_URL")
    else:
        server = EmbeddedRedis().start()
        redis_url, broker_url = server.url, None
    if broker is not None:
        broker_url = redis_url if broker == "redis" else broker
    try:
        values = config.Settings().model_dump()
        values.update(
            redis_url=redis_url,
            broker_url=broker_url,
            key_prefix=f"orch-{tag}-{run}",
            queue=f"orchestrator-{tag}-{run}",
            task_modules=list(task_modules),
            **settings_overrides,
        )
        settings = config.Settings.model_validate(values)
        env = child_environ(
            REDIS_URL=redis_url,
            ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
            ORCHESTRATOR_QUEUE=settings.queue,
            **({"ORCHESTRATOR_TASK_MODULES": ",".join(task_modules)} if task_modules else {}),
            **({"BROKER_URL": broker_url} if broker_url else {}),
            **(extra_env or {}),
        )
        own = ProcessEnvironment(settings, env, redis_url, broker_url, run)
        try:
            yield own
        finally:
            _delete_own(settings, [settings.queue, *own.extra_queues])
    finally:
        if server is not None:
            server.stop()


def schedule_to_old_layout(store: RedisStore, name: str) -> None:
    """Write schedule ``name`` where earlier versions kept it (keys without a hash tag),
    as they wrote it, and drop its keys now: a deployment before the upgrade."""
    from orchestrator.engine.schedules import LOG_KEEP

    keys, client = store.keys, store.client
    client.hset(keys.legacy_schedule(name), mapping=store.schedule(name))
    log = store.schedule_log(name, LOG_KEEP)
    if log:
        client.rpush(keys.legacy_schedule_log(name), *log)
    client.zadd(keys.legacy_schedule_names, {name: client.zscore(keys.schedule_names, name)})
    look = store.schedule_look_at(name)
    if look is not None:
        client.zadd(keys.legacy_schedules_due, {name: look})
    assert store.delete_schedule(name)


def old_schedule_keys(store: RedisStore, name: str) -> list[str]:
    """Schedule ``name``'s keys as earlier versions wrote them."""
    keys = store.keys
    return [
        keys.legacy_schedule(name),
        keys.legacy_schedule_log(name),
        keys.legacy_schedules_due,
        keys.legacy_schedule_names,
    ]
