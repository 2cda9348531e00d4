"""Step Functions-compatible workflow orchestration on Celery and Redis.

The public API: register activities with :func:`activity`, start executions with
:func:`start_workflow`, and look at them with :func:`describe_execution`,
:func:`get_execution_history` and :func:`list_executions`. Those use the process's
settings (the environment); :class:`Orchestrator` is an explicit client with its own.

The package is laid out in layers (``docs/architecture.md``):

* :mod:`orchestrator.language` — pure: the ASL model and validation, paths, data flow,
  Choice rules, intrinsics, JSONata and the interpreter; it imports neither Celery nor Redis;
* :mod:`orchestrator.engine` — Redis and Celery: the store, its Lua scripts, the runtime
  that runs steps, timers, beat, the Celery app and the activity registry;
* :mod:`orchestrator.client` — the public API this module re-exports;
* the surfaces: :mod:`orchestrator.cli`, :mod:`orchestrator.ui`, :mod:`orchestrator.testing`.

Names are imported on first use, so ``import orchestrator.language...`` stays free of
Celery and Redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.client.api import (
        ExecutionHandle,
        describe_execution,
        get_execution_definition,
        get_execution_history,
        list_executions,
        start_workflow,
        validate_definition,
    )
    from orchestrator.client.client import Orchestrator
    from orchestrator.client.control import (
        get_dead_letter,
        list_dead_letters,
        redrive_execution,
        send_task_failure,
        send_task_heartbeat,
        send_task_success,
        stop_execution,
    )
    from orchestrator.client.machines import (
        configure_state_machine,
        create_state_machine,
        create_state_machine_alias,
        delete_state_machine,
        delete_state_machine_alias,
        delete_state_machine_version,
        deploy_workflows,
        describe_state_machine,
        describe_state_machine_alias,
        list_state_machine_aliases,
        list_state_machine_versions,
        list_state_machines,
        publish_state_machine_version,
        resolve_target,
        state_machine_tags,
        tag_state_machine,
        untag_state_machine,
        update_state_machine,
        update_state_machine_alias,
    )
    from orchestrator.client.mapruns import (
        describe_map_run,
        list_map_run_children,
        list_map_runs,
    )
    from orchestrator.client.models import (
        DeadLetter,
        ExecutionDescription,
        ExecutionResult,
        ExecutionStatus,
        HistoryEvent,
        MapRunChild,
        MapRunDescription,
        RoutingEntry,
        StateMachineAlias,
        StateMachineAliasList,
        StateMachineDescription,
        StateMachineList,
        StateMachineListItem,
        StateMachineVersion,
        StateMachineVersionList,
        StepInfo,
    )
    from orchestrator.client.schedules import (
        ScheduleAlreadyExists,
        ScheduleDescription,
        ScheduleFiring,
        ScheduleNotFound,
        create_schedule,
        delete_schedule,
        describe_schedule,
        list_schedules,
        pause_schedule,
        resume_schedule,
        trigger_schedule,
    )
    from orchestrator.engine.activities import activity
    from orchestrator.engine.context import ActivityContext, activity_context
    from orchestrator.errors import (
        ActivityCancelled,
        DefinitionError,
        DefinitionIssue,
        ExecutionAlreadyExists,
        ExecutionNotFound,
        InvalidArn,
        InvalidExecutionState,
        InvalidInputError,
        InvalidName,
        OrchestratorError,
        RegistryConflict,
        ResourceNotFound,
        StateMachineAlreadyExists,
        StateMachineNotFound,
        StatesError,
        TaskTokenError,
    )

#: Where each public name lives.
_EXPORTS = {
    "orchestrator.client.api": (
        "ExecutionHandle",
        "describe_execution",
        "get_execution_definition",
        "get_execution_history",
        "list_executions",
        "start_workflow",
        "validate_definition",
    ),
    "orchestrator.client.client": ("Orchestrator",),
    "orchestrator.client.control": (
        "get_dead_letter",
        "list_dead_letters",
        "redrive_execution",
        "send_task_failure",
        "send_task_heartbeat",
        "send_task_success",
        "stop_execution",
    ),
    "orchestrator.client.machines": (
        "create_state_machine",
        "create_state_machine_alias",
        "delete_state_machine",
        "delete_state_machine_alias",
        "delete_state_machine_version",
        "deploy_workflows",
        "describe_state_machine",
        "describe_state_machine_alias",
        "list_state_machine_aliases",
        "list_state_machine_versions",
        "list_state_machines",
        "publish_state_machine_version",
        "resolve_target",
        "update_state_machine",
        "update_state_machine_alias",
        "configure_state_machine",
        "state_machine_tags",
        "tag_state_machine",
        "untag_state_machine",
    ),
    "orchestrator.client.mapruns": (
        "describe_map_run",
        "list_map_run_children",
        "list_map_runs",
    ),
    "orchestrator.client.schedules": (
        "ScheduleAlreadyExists",
        "ScheduleDescription",
        "ScheduleFiring",
        "ScheduleNotFound",
        "create_schedule",
        "delete_schedule",
        "describe_schedule",
        "list_schedules",
        "pause_schedule",
        "resume_schedule",
        "trigger_schedule",
    ),
    "orchestrator.client.models": (
        "DeadLetter",
        "ExecutionDescription",
        "ExecutionResult",
        "ExecutionStatus",
        "HistoryEvent",
        "MapRunChild",
        "MapRunDescription",
        "RoutingEntry",
        "StateMachineAlias",
        "StateMachineAliasList",
        "StateMachineDescription",
        "StateMachineList",
        "StateMachineListItem",
        "StateMachineVersion",
        "StateMachineVersionList",
        "StepInfo",
    ),
    "orchestrator.engine.activities": ("activity",),
    "orchestrator.engine.context": ("ActivityContext", "activity_context"),
    "orchestrator.errors": (
        "ActivityCancelled",
        "DefinitionError",
        "DefinitionIssue",
        "ExecutionAlreadyExists",
        "ExecutionNotFound",
        "InvalidExecutionState",
        "InvalidInputError",
        "OrchestratorError",
        "StatesError",
        "InvalidArn",
        "InvalidName",
        "RegistryConflict",
        "ResourceNotFound",
        "StateMachineAlreadyExists",
        "StateMachineNotFound",
        "TaskTokenError",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "create_state_machine",
    "create_state_machine_alias",
    "delete_state_machine",
    "delete_state_machine_alias",
    "delete_state_machine_version",
    "deploy_workflows",
    "describe_state_machine",
    "describe_state_machine_alias",
    "list_state_machine_aliases",
    "list_state_machine_versions",
    "list_state_machines",
    "publish_state_machine_version",
    "resolve_target",
    "update_state_machine",
    "update_state_machine_alias",
    "configure_state_machine",
    "state_machine_tags",
    "tag_state_machine",
    "untag_state_machine",
    "RoutingEntry",
    "StateMachineAlias",
    "StateMachineAliasList",
    "StateMachineDescription",
    "StateMachineList",
    "StateMachineListItem",
    "StateMachineVersion",
    "StateMachineVersionList",
    "InvalidArn",
    "InvalidName",
    "RegistryConflict",
    "ResourceNotFound",
    "StateMachineAlreadyExists",
    "StateMachineNotFound",
    "activity",
    "activity_context",
    "ActivityCancelled",
    "ActivityContext",
    "DeadLetter",
    "DefinitionError",
    "DefinitionIssue",
    "ExecutionAlreadyExists",
    "ExecutionDescription",
    "ExecutionHandle",
    "ExecutionNotFound",
    "ExecutionResult",
    "ExecutionStatus",
    "HistoryEvent",
    "InvalidExecutionState",
    "InvalidInputError",
    "MapRunChild",
    "MapRunDescription",
    "Orchestrator",
    "OrchestratorError",
    "StatesError",
    "StepInfo",
    "TaskTokenError",
    "describe_execution",
    "describe_map_run",
    "get_dead_letter",
    "get_execution_definition",
    "get_execution_history",
    "list_dead_letters",
    "list_executions",
    "list_map_run_children",
    "list_map_runs",
    "redrive_execution",
    "send_task_failure",
    "send_task_heartbeat",
    "send_task_success",
    "start_workflow",
    "stop_execution",
    "validate_definition",
]
# Schedules (orchestrator/client/schedules.py).
__all__ += [
    "ScheduleAlreadyExists",
    "ScheduleDescription",
    "ScheduleFiring",
    "ScheduleNotFound",
    "create_schedule",
    "delete_schedule",
    "describe_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
