"""Run workflows in-process, on a real Redis: for tests (yours and ours) and the CLI.

``local_orchestrator()`` starts an embedded Redis (unless ``REDIS_URL`` is set), an
in-process Celery worker and the timer loop that beat runs in production. Inside it the
public API runs workflows end to end::

    from orchestrator import start_workflow
    from orchestrator.testing import local_orchestrator

    def test_order():
        with local_orchestrator(task_modules=["orchestrator.examples.order_activities"]):
            result = start_workflow("order_fulfillment", {"order_id": "o-1"}).result(30)
            assert result.status == "SUCCEEDED"

Against a shared Redis it uses a fresh key prefix and queue, and on exit deletes only
the keys under that prefix: it never flushes a database it did not create.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from orchestrator import config
from orchestrator.engine.celery_app import app, celery_config, reconfigure, update_conf
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.store import RedisStore, get_store, reset_stores
from orchestrator.engine.timers import TimerLoop
from orchestrator.errors import ConfigurationError


@dataclass
class LocalOrchestrator:
    """What ``local_orchestrator()`` started."""

    settings: config.Settings
    store: RedisStore
    redis: EmbeddedRedis | None
    """The embedded server, or None when ``REDIS_URL`` pointed elsewhere."""


@contextlib.contextmanager
def local_orchestrator(
    task_modules: Sequence[str] | None = None,
    *,
    concurrency: int = 4,
    timers: bool = True,
    **overrides: object,
) -> Iterator[LocalOrchestrator]:
    """Start Redis (embedded unless ``REDIS_URL`` is set), a worker and the timer loop.

    Args:
        task_modules: Modules registering activities (default: the configured ones).
        concurrency: Worker threads, i.e. activities that can run at once.
        timers: Run the timer loop (retries, timeouts, waits) in a background thread.
        **overrides: Other settings for the duration (e.g. ``lease_seconds=2``).
    """
    with contextlib.ExitStack() as cleanup:
        # Every resource is registered for cleanup as soon as it exists, so whatever
        # fails later (a task module's import, the worker's start, the body, Ctrl-C)
        # stops the server and the threads already started.
        base = config.settings_from_env()
        embedded = None
        if base.redis_url is None:
            embedded = EmbeddedRedis()
            cleanup.callback(embedded.stop)
            embedded.start()
            redis_url = embedded.url
            prefix, queue = base.key_prefix, base.queue
        else:
            redis_url = base.redis_url
            # A shared server: keep to our own keys and queue.
            run = uuid.uuid4().hex[:10]
            prefix, queue = f"{base.key_prefix}-test-{run}", f"{base.queue}-test-{run}"
        values = base.model_dump()
        values.update(redis_url=redis_url, key_prefix=prefix, queue=queue)
        if task_modules is not None:
            values["task_modules"] = list(task_modules)
        values.update(overrides)
        settings = config.Settings.model_validate(values)

        cleanup.enter_context(process_settings(settings))
        if embedded is None:
            cleanup.callback(_delete_prefix, settings, prefix)
        for module in settings.task_modules:
            importlib.import_module(module)
        store = get_store(settings)
        if timers:
            cleanup.callback(TimerLoop().start().stop)
        from celery.contrib.testing.worker import start_worker

        from orchestrator.engine.activities import WorkerPresence, worker_queues

        # As `orchestrator worker` without --queues: the default queue plus those of the
        # imported activities.
        queues = worker_queues()
        cleanup.enter_context(
            start_worker(
                app,
                pool="threads",
                concurrency=concurrency,
                perform_ping_check=False,
                loglevel="WARNING",
                queues=queues,
                shutdown_timeout=30,
            )
        )
        # Celery's test worker sends no worker_ready: record it as a worker would.
        presence = WorkerPresence(f"local-{uuid.uuid4().hex[:8]}@{socket.gethostname()}", queues)
        cleanup.callback(presence.start().stop)
        yield LocalOrchestrator(settings, store, embedded)


@contextlib.contextmanager
def process_settings(settings: config.Settings | None) -> Iterator[config.Settings]:
    """Make ``settings`` the process's own for the duration (``None``: the environment's),
    and put back what was in force before, however the body ends.

    The process-wide settings are what an in-process worker, a timer loop and the
    module-level functions read; the stores cached for them and the Celery app's
    configuration follow. A test that only calls the API needs none of this: it builds an
    :class:`orchestrator.client.Orchestrator` of its own instead.
    """
    with restoring_process_state():
        before = _settings_in_force()
        config.configure(settings)
        after = config.get_settings()
        _follow(before, after)
        yield after


@contextlib.contextmanager
def restoring_process_state() -> Iterator[None]:
    """Whatever the body does to the process-wide settings (``config.configure``), the
    cached stores and the Celery app's configuration is undone when it ends.

    For code that configures the process itself, as the CLI's commands do.
    """
    # config offers configure() but no getter for the override itself: keeping it (not
    # get_settings(), which may be the environment's) puts back "no override" as such.
    previous = config._override
    celery_conf = dict(app.conf)
    try:
        yield
    finally:
        during = _settings_in_force()
        config.configure(previous)
        restored = _settings_in_force()
        if during is None or restored is None or _store_of(during) != _store_of(restored):
            reset_stores()
        # Put back the configuration itself, not one derived from the settings again:
        # they need not have agreed (configure() alone does not reconfigure the app).
        changed = {k: v for k, v in celery_conf.items() if app.conf.get(k) != v}
        if changed:
            update_conf(changed)


def _settings_in_force() -> config.Settings | None:
    """``config.get_settings()``, or None when the environment's are malformed."""
    try:
        return config.get_settings()
    except ConfigurationError:
        return None


def _follow(before: config.Settings | None, after: config.Settings) -> None:
    """Bring the cached stores and the Celery app in line with ``after``, the settings now
    in force, touching only what changed: a store's reset disconnects its clients and
    reconfiguring the app closes every pooled broker connection, both of which an
    in-process worker may be using at that moment."""
    if before is None or _store_of(before) != _store_of(after):
        reset_stores()
    wanted = celery_config(after)
    if any(app.conf.get(name) != value for name, value in wanted.items()):
        reconfigure(after)


def _store_of(settings: config.Settings) -> tuple[object, ...]:
    """What the cached store for ``settings`` is made from."""
    return (settings.redis_url, settings.key_prefix, settings.redis_timeout_seconds)


def _delete_prefix(settings: config.Settings, prefix: str) -> None:
    get_store(settings).delete_prefix(prefix)
