"""The orchestrator's one exception tree.

Two families live here:

* ``OrchestratorError`` and its subclasses are raised to *callers* of the public API
  (bad definitions, unknown executions, conflicting names, bad input).
* ``StatesError`` and its subclasses are *workflow* errors: they carry a Step Functions
  error name (``States.Runtime``, ``States.NoChoiceMatched``...) and a cause, and are
  routed through a state's ``Retry``/``Catch`` rules instead of reaching the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


class OrchestratorError(Exception):
    """Base class of every error the orchestrator raises to its callers."""


@dataclass(frozen=True)
class DefinitionIssue:
    """One problem found in a state machine definition."""

    path: str
    """JSON path of the offending field, e.g. ``$.States.Charge.Next``."""
    message: str
    """What is wrong, e.g. ``no state named 'Chrage'``."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DefinitionError(OrchestratorError):
    """A state machine definition is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[DefinitionIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        count = len(self.issues)
        super().__init__(f"invalid state machine definition ({count} issue(s)):\n{lines}")


class MissingOptionalDependency(DefinitionError):
    """A definition uses a feature whose optional dependency is not installed
    (``ItemReader``/``ResultWriter`` on S3 need boto3: ``pip install 'orchestrator[aws]'``)."""

    def __init__(self, path: str, feature: str, package: str, extra: str) -> None:
        self.path = path
        self.package = package
        self.extra = extra
        message = (
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'orchestrator[{extra}]'"
        )
        super().__init__([DefinitionIssue(path, message)])


class InvalidInputError(OrchestratorError, ValueError):
    """Execution input (or an execution name) is unusable; nothing was started."""


class ExecutionAlreadyExists(OrchestratorError):
    """An execution with this name exists and was started with different input."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"execution {execution_id!r} already exists with a different input")


class ExecutionNotFound(OrchestratorError, LookupError):
    """No execution with this id is known (it never existed or its retention expired)."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"no execution {execution_id!r}")


class InvalidExecutionState(OrchestratorError):
    """The operation does not apply to the execution in its current status."""

    def __init__(self, execution_id: str, status: str, operation: str) -> None:
        self.execution_id = execution_id
        self.status = status
        self.operation = operation
        super().__init__(f"cannot {operation} execution {execution_id!r}: it is {status}")


class TaskTokenError(OrchestratorError, LookupError):
    """A task token is unknown, already used, or its task is no longer waiting."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid task token: {reason}")


class ActivityNotFound(OrchestratorError, LookupError):
    """A Task ``Resource`` names no registered activity."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"no registered activity for resource {resource!r}")


class InvalidName(InvalidInputError):
    """A state machine's or alias's name Step Functions would refuse (``InvalidName``)."""


class InvalidArn(InvalidInputError):
    """Not a state machine, version or alias ARN (``InvalidArn``)."""


class StateMachineNotFound(OrchestratorError, LookupError):
    """No such state machine is registered (``StateMachineDoesNotExist``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no state machine {name!r}")


class StateMachineAlreadyExists(OrchestratorError):
    """A state machine with this name exists with another definition, type or
    description (``StateMachineAlreadyExists``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"state machine {name!r} already exists with another definition")


class ResourceNotFound(OrchestratorError, LookupError):
    """No such state machine version or alias (``ResourceNotFound``)."""


class RegistryConflict(OrchestratorError):
    """The change conflicts with the registry's state, e.g. deleting a version an alias
    routes to, or creating an alias that exists with another routing
    (``ConflictException``)."""


class ConfigurationError(OrchestratorError, RuntimeError):
    """The orchestrator is not set up for the call (``REDIS_URL`` unset, a malformed
    setting, no ``redis-server``); the message says how to fix it."""


#: Query parameters of a Redis URL that carry a secret (redis-py reads ``?password=``).
_SECRET_PARAMETERS = ("password", "sentinel_password")


def mask_url(url: str) -> str:
    """``url`` with its passwords replaced by ``***`` (``redis://:***@host:6379/0``).

    Also masks each part of kombu's ``sentinel://...;sentinel://...`` form, a
    ``redis+sentinel://`` URL's several hosts (which ``urlsplit`` cannot parse a port of)
    and a ``?password=`` parameter.
    """
    from urllib.parse import urlsplit, urlunsplit

    if ";" in url:
        return ";".join(mask_url(part) for part in url.split(";"))
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = parts.query
    if query:
        query = "&".join(
            f"{name}=***" if name.lower() in _SECRET_PARAMETERS else pair
            for pair in query.split("&")
            for name in [pair.partition("=")[0]]
        )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class StoreUnavailable(OrchestratorError):
    """The orchestrator's Redis could not be reached (refused, reset, or no answer in time).

    ``maybe_applied`` says whether the call may have taken effect before the connection
    failed (a write was sent but its reply never came): a read never did; a start with a
    ``name`` may have, and is safe to retry with the same name (the name is an
    idempotency key).
    """

    def __init__(
        self, url: str, reason: str, *, maybe_applied: bool = False, hint: str = ""
    ) -> None:
        self.url = mask_url(url)
        self.reason = reason
        self.maybe_applied = maybe_applied
        self.hint = hint
        message = f"Redis at {self.url} unreachable: {reason}"
        if hint:
            message += f"; {hint}"
        elif maybe_applied:
            message += "; the call may have taken effect before the connection failed"
        super().__init__(message)


class CommitRefused(OrchestratorError):
    """Redis refused a transition before writing any of it: a key it writes holds a value
    of another type, or a history whose ids are out of order (corrupted or foreign data
    under the orchestrator's prefix). Nothing was written; ``reason`` says which key."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ActivityCancelled(Exception):
    """Raised by ``activity_context().heartbeat()`` once the running activity is cancelled:
    its Task timed out (``TimeoutSeconds``, ``HeartbeatSeconds``), its execution was
    stopped or ended, or the Parallel/Map it runs in failed. Nothing the activity returns
    afterwards is recorded; it should clean up and return (or let this propagate) within
    ``ORCHESTRATOR_CANCEL_GRACE_SECONDS``, after which a prefork pool process running it
    is terminated and replaced. Deliberately not an :class:`OrchestratorError`: an
    activity that catches ``Exception`` to report failures still sees it."""


class StatesError(Exception):
    """A workflow error with a Step Functions error name, handled by Retry/Catch."""

    #: Error name used when an instance is raised without an explicit one.
    default_error = "States.TaskFailed"

    def __init__(self, cause: str = "", *, error: str | None = None) -> None:
        self.error: str = error or self.default_error
        self.cause: str = cause
        super().__init__(f"{self.error}: {cause}" if cause else self.error)


class StatesRuntimeError(StatesError):
    """``States.Runtime``: a path matched nothing, a value had the wrong type, ..."""

    default_error = "States.Runtime"


class NoChoiceMatched(StatesError):
    """``States.NoChoiceMatched``: no Choice rule matched and there is no Default."""

    default_error = "States.NoChoiceMatched"


class IntrinsicFailure(StatesError):
    """``States.IntrinsicFailure``: an intrinsic function was called wrongly."""

    default_error = "States.IntrinsicFailure"


class QueryEvaluationError(StatesError):
    """``States.QueryEvaluationError``: a JSONata expression failed to evaluate."""

    default_error = "States.QueryEvaluationError"


class ResultPathMatchFailure(StatesError):
    """``States.ResultPathMatchFailure``: ResultPath cannot be applied to the input."""

    default_error = "States.ResultPathMatchFailure"


class EvaluationLimitExceeded(StatesError):
    """An expression (JSONata, JSONPath, intrinsic) ran past an evaluation limit.

    The cause names the limit (time, recursion depth, size of a value built); the error is
    ``States.QueryEvaluationError`` for JSONata and ``States.Runtime`` otherwise.
    """

    default_error = "States.Runtime"


class ItemReaderFailed(StatesError):
    """``States.ItemReaderFailed``: a Distributed Map's ``ItemReader`` could not read its
    items (no such bucket or object, access denied, malformed JSON/CSV, a size limit)."""

    default_error = "States.ItemReaderFailed"


class ResultWriterFailed(StatesError):
    """``States.ResultWriterFailed``: a Distributed Map's ``ResultWriter`` could not write
    its results or manifest to S3."""

    default_error = "States.ResultWriterFailed"
