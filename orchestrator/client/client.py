"""An explicit client: its own settings, Redis store and Celery app, no process-wide state.

The module-level functions (:func:`orchestrator.start_workflow` and the rest) use the
process's settings, store and Celery app; several deployments (another Redis, another key
prefix, another broker) in one process need one :class:`Orchestrator` each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from orchestrator.client import api, control, mapruns, schedules
from orchestrator.client import machines as registry_api
from orchestrator.client.api import DefinitionSource, ExecutionHandle
from orchestrator.client.models import (
    DeadLetter,
    ExecutionDescription,
    ExecutionStatus,
    HistoryEvent,
    MapRunChild,
    MapRunDescription,
    StateMachineAlias,
    StateMachineAliasList,
    StateMachineDescription,
    StateMachineList,
    StateMachineVersion,
    StateMachineVersionList,
)
from orchestrator.config import Settings, settings_from_env, using_settings, validation_problems
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
                # Not pydantic's message: it quotes the values, passwords included.
                problems = validation_problems(exc)
                raise ConfigurationError(f"invalid client settings: {problems}") from None
        if not settings.redis_url:
            raise ConfigurationError(
                "no Redis URL: pass Orchestrator(redis_url=...) or set REDIS_URL"
            )
        self.settings: Settings = settings
        #: This client's Redis store (not the process-wide one of ``get_store()``).
        self.store = RedisStore(
            redis_client(settings.redis_url, settings.redis_timeout_seconds, settings),
            settings.key_prefix,
            settings.partitions,
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

    # -- schedules (orchestrator.client.schedules) ---------------------------------------

    def create_schedule(
        self,
        name: str,
        target: DefinitionSource,
        expression: str,
        *,
        input: Any = None,
        timezone: str = "UTC",
        overlap: str = "SKIP",
        catchup_window: float | dt.timedelta | None = None,
        start: dt.datetime | float | None = None,
        end: dt.datetime | float | None = None,
        enabled: bool = True,
    ) -> schedules.ScheduleDescription:
        """:func:`orchestrator.create_schedule` with this client."""
        with self.bound():
            return schedules.create_schedule(
                name,
                target,
                expression,
                input=input,
                timezone=timezone,
                overlap=overlap,
                catchup_window=catchup_window,
                start=start,
                end=end,
                enabled=enabled,
            )

    def describe_schedule(
        self, name: str, next_count: int = 5, log_count: int = 20
    ) -> schedules.ScheduleDescription:
        """:func:`orchestrator.describe_schedule` with this client."""
        with self.bound():
            return schedules.describe_schedule(name, next_count, log_count)

    def list_schedules(self, limit: int = 1000) -> list[schedules.ScheduleDescription]:
        """:func:`orchestrator.list_schedules` with this client."""
        with self.bound():
            return schedules.list_schedules(limit)

    def pause_schedule(self, name: str) -> schedules.ScheduleDescription:
        """:func:`orchestrator.pause_schedule` with this client."""
        with self.bound():
            return schedules.pause_schedule(name)

    def resume_schedule(self, name: str) -> schedules.ScheduleDescription:
        """:func:`orchestrator.resume_schedule` with this client."""
        with self.bound():
            return schedules.resume_schedule(name)

    def trigger_schedule(self, name: str) -> schedules.ScheduleDescription:
        """:func:`orchestrator.trigger_schedule` with this client."""
        with self.bound():
            return schedules.trigger_schedule(name)

    def delete_schedule(self, name: str) -> None:
        """:func:`orchestrator.delete_schedule` with this client."""
        with self.bound():
            schedules.delete_schedule(name)

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

    # -- the state-machine registry (orchestrator.client.machines) -----------------------

    def create_state_machine(
        self,
        name: str,
        definition: DefinitionSource,
        *,
        type: str = "STANDARD",
        description: str | None = None,
        publish: bool = False,
        version_description: str | None = None,
    ) -> StateMachineDescription:
        """:func:`orchestrator.create_state_machine` with this client."""
        with self.bound():
            return registry_api.create_state_machine(
                name,
                definition,
                type=type,
                description=description,
                publish=publish,
                version_description=version_description,
            )

    def update_state_machine(
        self,
        name_or_arn: str,
        definition: DefinitionSource | None = None,
        *,
        description: str | None = None,
        publish: bool = False,
        version_description: str | None = None,
    ) -> StateMachineDescription:
        """:func:`orchestrator.update_state_machine` with this client."""
        with self.bound():
            return registry_api.update_state_machine(
                name_or_arn,
                definition,
                description=description,
                publish=publish,
                version_description=version_description,
            )

    def describe_state_machine(
        self, name_or_arn: str, version: int | None = None
    ) -> StateMachineDescription:
        """:func:`orchestrator.describe_state_machine` with this client."""
        with self.bound():
            return registry_api.describe_state_machine(name_or_arn, version)

    def list_state_machines(
        self, *, max_results: int | None = None, next_token: str | None = None
    ) -> StateMachineList:
        """:func:`orchestrator.list_state_machines` with this client."""
        with self.bound():
            return registry_api.list_state_machines(max_results=max_results, next_token=next_token)

    def delete_state_machine(self, name_or_arn: str) -> bool:
        """:func:`orchestrator.delete_state_machine` with this client."""
        with self.bound():
            return registry_api.delete_state_machine(name_or_arn)

    def publish_state_machine_version(
        self, name_or_arn: str, description: str | None = None, *, revision_id: str | None = None
    ) -> StateMachineVersion:
        """:func:`orchestrator.publish_state_machine_version` with this client."""
        with self.bound():
            return registry_api.publish_state_machine_version(
                name_or_arn, description, revision_id=revision_id
            )

    def list_state_machine_versions(
        self, name_or_arn: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> StateMachineVersionList:
        """:func:`orchestrator.list_state_machine_versions` with this client."""
        with self.bound():
            return registry_api.list_state_machine_versions(
                name_or_arn, max_results=max_results, next_token=next_token
            )

    def delete_state_machine_version(self, name_or_arn: str, version: int | None = None) -> bool:
        """:func:`orchestrator.delete_state_machine_version` with this client."""
        with self.bound():
            return registry_api.delete_state_machine_version(name_or_arn, version)

    def create_state_machine_alias(
        self, name_or_arn: str, alias: str, routing: Any, *, description: str | None = None
    ) -> StateMachineAlias:
        """:func:`orchestrator.create_state_machine_alias` with this client."""
        with self.bound():
            return registry_api.create_state_machine_alias(
                name_or_arn, alias, routing, description=description
            )

    def update_state_machine_alias(
        self,
        name_or_arn: str,
        alias: str | None = None,
        *,
        routing: Any = None,
        description: str | None = None,
    ) -> StateMachineAlias:
        """:func:`orchestrator.update_state_machine_alias` with this client."""
        with self.bound():
            return registry_api.update_state_machine_alias(
                name_or_arn, alias, routing=routing, description=description
            )

    def describe_state_machine_alias(
        self, name_or_arn: str, alias: str | None = None
    ) -> StateMachineAlias:
        """:func:`orchestrator.describe_state_machine_alias` with this client."""
        with self.bound():
            return registry_api.describe_state_machine_alias(name_or_arn, alias)

    def list_state_machine_aliases(
        self, name_or_arn: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> StateMachineAliasList:
        """:func:`orchestrator.list_state_machine_aliases` with this client."""
        with self.bound():
            return registry_api.list_state_machine_aliases(
                name_or_arn, max_results=max_results, next_token=next_token
            )

    def delete_state_machine_alias(self, name_or_arn: str, alias: str | None = None) -> None:
        """:func:`orchestrator.delete_state_machine_alias` with this client."""
        with self.bound():
            registry_api.delete_state_machine_alias(name_or_arn, alias)

    def tag_state_machine(self, name_or_arn: str, tags: dict[str, str]) -> bool:
        """:func:`orchestrator.tag_state_machine` with this client."""
        with self.bound():
            return registry_api.tag_state_machine(name_or_arn, tags)

    def untag_state_machine(self, name_or_arn: str, tag_keys: list[str]) -> None:
        """:func:`orchestrator.untag_state_machine` with this client."""
        with self.bound():
            registry_api.untag_state_machine(name_or_arn, tag_keys)

    def state_machine_tags(self, name_or_arn: str) -> dict[str, str]:
        """:func:`orchestrator.state_machine_tags` with this client."""
        with self.bound():
            return registry_api.state_machine_tags(name_or_arn)

    def configure_state_machine(
        self,
        name_or_arn: str,
        *,
        role_arn: str | None = None,
        logging: dict[str, Any] | None = None,
        tracing: dict[str, Any] | None = None,
    ) -> None:
        """:func:`orchestrator.configure_state_machine` with this client."""
        with self.bound():
            registry_api.configure_state_machine(
                name_or_arn, role_arn=role_arn, logging=logging, tracing=tracing
            )

    def resolve_target(self, target: str) -> str:
        """:func:`orchestrator.resolve_target` with this client."""
        with self.bound():
            return registry_api.resolve_target(target)

    def deploy_workflows(self, folder: str | Path) -> list[tuple[str, str]]:
        """:func:`orchestrator.deploy_workflows` with this client."""
        with self.bound():
            return registry_api.deploy_workflows(folder)

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
