"""Public data models returned by the API (pydantic)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ExecutionStatus(str, Enum):
    """Status of an execution, as Step Functions names them."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"

    @property
    def finished(self) -> bool:
        """True once the execution has ended."""
        return self is not ExecutionStatus.RUNNING


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExecutionResult(_Model):
    """How an execution ended."""

    execution_id: str
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


class StepInfo(_Model):
    """A step of an execution that has not finished: running, waiting, retrying, or
    failed (finished steps live on in the history)."""

    key: str
    """The state name, prefixed by its Parallel branch or Map iteration path."""
    state: str
    status: str
    attempts: int
    """Attempts made so far (1 for a first attempt)."""
    activity: str | None = None
    """The activity a Task step runs (its queue is where the step waits while
    SCHEDULED)."""


class ChildExecution(_Model):
    """A child workflow an execution started (a ``states:startExecution`` Task)."""

    execution_id: str
    state: str
    """The step key of the Task that started it."""
    mode: str
    """``start`` (not waited for), ``sync``, ``sync2``, ``token`` (``.waitForTaskToken``)
    or ``sdk`` (``aws-sdk:sfn:startExecution``)."""


class ExecutionDescription(_Model):
    """Everything known about an execution, except its history."""

    execution_id: str
    name: str
    workflow: str
    status: ExecutionStatus
    execution_arn: str = ""
    """``arn:aws:states:REGION:ACCOUNT:execution:WORKFLOW:NAME`` (``$$.Execution.Id``):
    every call that takes an execution id takes it too."""
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_time: datetime
    stop_time: datetime | None = None
    redrive_count: int = 0
    steps: list[StepInfo] = Field(default_factory=list)
    parent_execution_id: str | None = None
    """A Distributed Map's child: the execution whose Map Run started it; a child
    workflow: the execution whose ``startExecution`` Task started it."""
    parent_state: str | None = None
    """A child workflow: the step key of its parent's Task that started it."""
    children: list[ChildExecution] = Field(default_factory=list)
    """The child workflows this execution started (``startExecution`` Tasks)."""
    map_run_arn: str | None = None
    """A Distributed Map's child: its Map Run."""
    map_index: int | None = None
    """A Distributed Map's child: its index in the Map Run (an item, or a batch)."""
    priority: int | None = None
    """0 (least urgent) to 9 (most urgent): every task message of the execution carries
    it (None: started before priorities were recorded, run at the configured default)."""
    execution_type: str = "STANDARD"
    """``EXPRESS`` for a Distributed Map's EXPRESS child: its history holds only its own
    start and end (no state events), and it times out after 5 minutes."""
    state_machine_arn: str | None = None
    """The ARN of the state machine (the workflow) it runs."""
    revision_id: str | None = None
    """The revision of the definition it runs (its content hash)."""
    state_machine_version_arn: str | None = None
    """Started through a version (or an alias): the version it runs."""
    state_machine_alias_arn: str | None = None
    """Started through an alias: that alias."""

    def result(self) -> ExecutionResult:
        """The execution's result view."""
        return ExecutionResult(
            execution_id=self.execution_id,
            status=self.status,
            output=self.output,
            error=self.error,
            cause=self.cause,
        )


class HistoryEvent(_Model):
    """One event of an execution's history, named as Step Functions names it."""

    id: int
    type: str
    timestamp: datetime
    state: str | None = None
    key: str | None = None
    """The step key inside a Parallel branch or Map iteration (``Map[3]/Charge``)."""
    details: dict[str, Any] = Field(default_factory=dict)


class DeadLetter(_Model):
    """An execution that failed with an error nothing caught, or a message no one could
    process."""

    id: str
    execution_id: str | None = None
    state: str | None = None
    error: str | None = None
    cause: str | None = None
    input: Any = None
    timestamp: datetime


def to_datetime(epoch: float | str) -> datetime:
    """An epoch timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(float(epoch), tz=UTC)


class MapRunCounts(_Model):
    """A Map Run's children by status (Step Functions' ``executionCounts``)."""

    running: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    aborted: int = 0
    total: int = 0
    """Children started so far."""


class MapRunDescription(_Model):
    """A Distributed Map's Map Run (DescribeMapRun)."""

    map_run_arn: str
    execution_id: str
    """The parent execution."""
    state_key: str
    """The Map state's step key in the parent (``Outer[2]/Fan`` inside an inline Map)."""
    label: str
    status: str
    """RUNNING, SUCCEEDED, FAILED or ABORTED."""
    start_time: datetime
    stop_time: datetime | None = None
    max_concurrency: int
    execution_type: str = "STANDARD"
    counts: MapRunCounts
    redrive_count: int = 0
    error: str | None = None
    cause: str | None = None


class MapRunChild(_Model):
    """One child execution of a Map Run."""

    index: int
    execution_id: str
    status: ExecutionStatus | None = None
    """None: not started yet (or its record expired)."""


class StateMachineDescription(_Model):
    """A registered state machine, or one of its versions (DescribeStateMachine)."""

    state_machine_arn: str
    """The machine's ARN; a version's ARN when describing a version (as AWS)."""
    name: str
    status: str = "ACTIVE"
    definition: str
    """The ASL definition, JSON text."""
    type: str
    description: str | None = None
    creation_date: datetime
    update_date: datetime | None = None
    revision_id: str
    """The definition's content hash: the same definition is the same revision."""
    version: int | None = None
    """Describing a version: its number."""
    state_machine_version_arn: str | None = None
    """A create or update that published a version: its ARN."""
    role_arn: str | None = None
    """The IAM role ARN it was created (or last updated) with through the Step Functions
    API (kept, never assumed: the orchestrator runs everything as its workers)."""
    logging_configuration: dict[str, Any] | None = None
    """The Step Functions API's ``loggingConfiguration`` it was given (kept, not used)."""
    tracing_configuration: dict[str, Any] | None = None
    """The Step Functions API's ``tracingConfiguration`` it was given (kept, not used)."""


class StateMachineListItem(_Model):
    """One entry of :func:`list_state_machines` (ListStateMachines' ``stateMachines``)."""

    state_machine_arn: str
    name: str
    type: str
    creation_date: datetime


class StateMachineList(_Model):
    """A page of state machines; ``next_token`` fetches the next (None: the last)."""

    state_machines: list[StateMachineListItem]
    next_token: str | None = None


class StateMachineVersion(_Model):
    """A published version (PublishStateMachineVersion, ListStateMachineVersions)."""

    state_machine_version_arn: str
    version: int
    creation_date: datetime
    revision_id: str
    description: str | None = None


class StateMachineVersionList(_Model):
    """A page of versions, newest first."""

    state_machine_versions: list[StateMachineVersion]
    next_token: str | None = None


class RoutingEntry(_Model):
    """One version an alias routes to, with its weight (percent)."""

    state_machine_version_arn: str
    version: int
    weight: int


class StateMachineAlias(_Model):
    """An alias (DescribeStateMachineAlias)."""

    state_machine_alias_arn: str
    name: str
    description: str | None = None
    routing_configuration: list[RoutingEntry]
    creation_date: datetime
    update_date: datetime


class StateMachineAliasList(_Model):
    """A page of aliases, by name (ListStateMachineAliases)."""

    state_machine_aliases: list[StateMachineAlias]
    next_token: str | None = None
