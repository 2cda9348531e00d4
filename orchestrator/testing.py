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
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from orchestrator import config
from orchestrator.engine.celery_app import app, reconfigure
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.engine.store import RedisStore, get_store, reset_stores
from orchestrator.engine.timers import TimerLoop


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
    previous = config.get_settings()
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

        def restore() -> None:
            reset_stores()
            config.configure(previous if previous is not settings else None)
            reconfigure(config.get_settings())

        cleanup.callback(restore)
        config.configure(settings)
        reset_stores()
        reconfigure(settings)
        if embedded is None:
            cleanup.callback(_delete_prefix, settings, prefix)
        for module in settings.task_modules:
            importlib.import_module(module)
        store = get_store(settings)
        if timers:
            cleanup.callback(TimerLoop().start().stop)
        from celery.contrib.testing.worker import start_worker

        cleanup.enter_context(
            start_worker(
                app,
                pool="threads",
                concurrency=concurrency,
                perform_ping_check=False,
                loglevel="WARNING",
                queues=[settings.queue],
                shutdown_timeout=30,
            )
        )
        yield LocalOrchestrator(settings, store, embedded)


def _delete_prefix(settings: config.Settings, prefix: str) -> None:
    get_store(settings).delete_prefix(prefix)
