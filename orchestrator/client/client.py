"""An explicit client: its own settings, Redis store and Celery app, no process-wide state.

The module-level functions (:func:`orchestrator.start_workflow` and the rest) use the
process's settings, store and Celery app; several deployments (another Redis, another key
prefix, another broker) in one process need one :class:`Orchestrator` each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from orchestrator.client import api, control, mapruns
from orchestrator.client.api import DefinitionSource, ExecutionHandle
from orchestrator.client.models import (
    DeadLetter,
    ExecutionDescription,
    ExecutionStatus,
    HistoryEvent,
    MapRunChild,
    MapRunDescription,
)
from orchestrator.config import Settings, settings_from_env, using_settings
from orchestrator.engine.celery_app import publisher_app, using_app
from orchestrator.engine.store import RedisStore, redis_client, using_store
from orchestrator.errors import ConfigurationError, mask_url
from orchestrator.language.definition import StateMachine


class Orchestrator:
    """A client of one orchestrator deployment, independent of the process-wide settings.

    ``Orchestrator(redis_url, broker_url, key_prefix=..., queue=...)`` takes its settings
    from the environment (as the module-level functions do), with the arguments given
    here taking precedence; ``settings=`` starts from those instead of the environment.
    It holds its own :class:`~orchestrator.config.Settings`, its own Redis connection
    (:class:`~orchestrator.engine.store.RedisStore`) and its own Celery app, used only to
    publish tasks to its broker. The handles it returns use its store.

    Its methods are the module-level functions of the same names, run with the client's
    settings, store and Celery app bound to the calling thread (or asyncio task) for the
    duration of the call (``contextvars``): one implementation of each operation, and
    other threads, the in-process worker included, keep the process-wide ones.

    Limitation: the client starts, inspects and controls executions; it runs none of
    their steps. Those run in workers (``orchestrator worker``, or
    :func:`orchestrator.testing.local_orchestrator`) configured for the same Redis, key
    prefix, broker and queue; the activities a definition names must be registered in
    this process or advertised by such a worker, as for the module-level functions.

    Usable as a context manager; :meth:`close` releases its connections.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        broker_url: str | None = None,
        *,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        """
        Args:
            redis_url: The state store (default: ``REDIS_URL``, or ``settings.redis_url``).
            broker_url: The Celery broker (default: ``BROKER_URL``, else ``redis_url``).
            settings: Start from these instead of the environment.
            **overrides: Other settings by field name (``key_prefix="team-a"``,
                ``queue=...``, ``max_input_bytes=...``).

        Raises:
            ConfigurationError: a setting is malformed, or no Redis URL is given or set.
        """
        values = dict(overrides)
        if redis_url is not None:
            values["redis_url"] = redis_url
        if broker_url is not None:
            values["broker_url"] = broker_url
        if settings is None:
            settings = settings_from_env(**values)
        elif values:
            try:
                settings = Settings.model_validate({**settings.model_dump(), **values})
            except ValidationError as exc:
                raise ConfigurationError(f"invalid client settings: {exc}") from None
        if not settings.redis_url:
            raise ConfigurationError(
                "no Redis URL: pass Orchestrator(redis_url=...) or set REDIS_URL"
            )
        self.settings: Settings = settings
        #: This client's Redis store (not the process-wide one of ``get_store()``).
        self.store = RedisStore(
            redis_client(settings.redis_url, settings.redis_timeout_seconds),
            settings.key_prefix,
        )
        #: The Celery app this client publishes tasks with (to its own broker).
        self.app = publisher_app(settings)

    def __repr__(self) -> str:
        url = mask_url(self.settings.redis_url or "")
        return f"Orchestrator({url!r}, key_prefix={self.settings.key_prefix!r})"

    @contextlib.contextmanager
    def bound(self) -> Iterator[Orchestrator]:
        """Bind this client's settings, store and Celery app in the calling context, so
        that the module-level functions (and the engine under them) use them."""
        with using_settings(self.settings), using_store(self.store), using_app(self.app):
            yield self

    def close(self) -> None:
        """Close this client's Redis connections and let go of its Celery app.

        Broker connections live in kombu's process-wide pools, shared by every app with
        the same broker URL (the process's own included): they stay open for those.
        """
        self.store.close()
        self.app.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- executions (orchestrator.client.api) --------------------------------------------

    def start_workflow(
        self,
        definition: DefinitionSource,
        input: Any = None,
        *,
        name: str | None = None,
        priority: int | None = None,
    ) -> ExecutionHandle:
        """:func:`orchestrator.start_workflow` with this client."""
        with self.bound():
            return api.start_workflow(definition, input, name=name, priority=priority)

    def describe_execution(self, execution_id: str) -> ExecutionDescription:
        """:func:`orchestrator.describe_execution` with this client."""
        with self.bound():
            return api.describe_execution(execution_id)

    def get_execution_history(self, execution_id: str) -> list[HistoryEvent]:
        """:func:`orchestrator.get_execution_history` with this client."""
        with self.bound():
            return api.get_execution_history(execution_id)

    def get_execution_definition(self, execution_id: str) -> dict[str, Any]:
        """:func:`orchestrator.get_execution_definition` with this client."""
        with self.bound():
            return api.get_execution_definition(execution_id)

    def list_executions(
        self, status: ExecutionStatus | str | None = None, limit: int = 100
    ) -> list[ExecutionDescription]:
        """:func:`orchestrator.list_executions` with this client."""
        with self.bound():
            return api.list_executions(status, limit)

    def validate_definition(self, definition: DefinitionSource) -> StateMachine:
        """:func:`orchestrator.validate_definition` with this client (the activities its
        workers advertise count as registered)."""
        with self.bound():
            return api.validate_definition(definition)

    # -- Distributed Map runs (orchestrator.client.mapruns) ------------------------------

    def list_map_runs(self, execution_id: str) -> list[MapRunDescription]:
        """:func:`orchestrator.list_map_runs` with this client."""
        with self.bound():
            return mapruns.list_map_runs(execution_id)

    def describe_map_run(self, map_run_arn: str) -> MapRunDescription:
        """:func:`orchestrator.describe_map_run` with this client."""
        with self.bound():
            return mapruns.describe_map_run(map_run_arn)

    def list_map_run_children(
        self, map_run_arn: str, *, start: int = 0, limit: int = 100
    ) -> list[MapRunChild]:
        """:func:`orchestrator.list_map_run_children` with this client."""
        with self.bound():
            return mapruns.list_map_run_children(map_run_arn, start=start, limit=limit)

    # -- control (orchestrator.client.control) -------------------------------------------

    def send_task_success(self, token: str, output: Any = None) -> None:
        """:func:`orchestrator.send_task_success` with this client."""
        with self.bound():
            control.send_task_success(token, output)

    def send_task_failure(
        self, token: str, error: str | None = None, cause: str | None = None
    ) -> None:
        """:func:`orchestrator.send_task_failure` with this client."""
        with self.bound():
            control.send_task_failure(token, error, cause)

    def send_task_heartbeat(self, token: str) -> None:
        """:func:`orchestrator.send_task_heartbeat` with this client."""
        with self.bound():
            control.send_task_heartbeat(token)

    def stop_execution(
        self, execution_id: str, error: str | None = None, cause: str | None = None
    ) -> None:
        """:func:`orchestrator.stop_execution` with this client."""
        with self.bound():
            control.stop_execution(execution_id, error, cause)

    def redrive_execution(self, execution_id: str) -> ExecutionHandle:
        """:func:`orchestrator.redrive_execution` with this client."""
        with self.bound():
            return control.redrive_execution(execution_id)

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """:func:`orchestrator.list_dead_letters` with this client."""
        with self.bound():
            return control.list_dead_letters(limit)

    def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """:func:`orchestrator.get_dead_letter` with this client."""
        with self.bound():
            return control.get_dead_letter(letter_id)
