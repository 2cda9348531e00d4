"""Step Functions-compatible workflow orchestration on Celery and Redis.

The public API: register activities with :func:`activity`, start executions with
:func:`start_workflow`, and look at them with :func:`describe_execution`,
:func:`get_execution_history` and :func:`list_executions`.
"""

from orchestrator.activities import activity
from orchestrator.api import (
    ExecutionHandle,
    describe_execution,
    get_execution_definition,
    get_execution_history,
    list_executions,
    start_workflow,
    validate_definition,
)
from orchestrator.control import (
    get_dead_letter,
    list_dead_letters,
    redrive_execution,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
    stop_execution,
)
from orchestrator.errors import (
    DefinitionError,
    DefinitionIssue,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidInputError,
    OrchestratorError,
    StatesError,
    TaskTokenError,
)
from orchestrator.models import (
    DeadLetter,
    ExecutionDescription,
    ExecutionResult,
    ExecutionStatus,
    HistoryEvent,
    StepInfo,
)

__all__ = [
    "DeadLetter",
    "get_dead_letter",
    "get_execution_definition",
    "list_dead_letters",
    "redrive_execution",
    "send_task_failure",
    "send_task_heartbeat",
    "send_task_success",
    "stop_execution",
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
    "OrchestratorError",
    "StatesError",
    "StepInfo",
    "TaskTokenError",
    "activity",
    "describe_execution",
    "get_execution_history",
    "list_executions",
    "start_workflow",
    "validate_definition",
]
