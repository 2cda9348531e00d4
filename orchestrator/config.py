"""Settings, read from the environment (pydantic-settings), with named defaults."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from orchestrator.errors import ConfigurationError

#: Largest execution input (and task result) accepted, in bytes: Step Functions' limit.
DEFAULT_MAX_INPUT_BYTES = 256 * 1024
#: Largest task message a worker accepts, in bytes; a larger one is dead-lettered unrun.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Dead letters kept; beyond it the oldest are dropped (each write trims one or two).
DEFAULT_MAX_DEAD_LETTERS = 10_000
#: History events one execution may write (Step Functions' quota); past it, it fails.
DEFAULT_MAX_HISTORY_EVENTS = 25_000
#: Total size of the variables of one scope (Step Functions' quota for an execution).
DEFAULT_MAX_VARIABLES_BYTES = 10 * 1024 * 1024
#: How long finished executions (record, history, steps) are kept, in seconds (30 days).
DEFAULT_RETENTION_S = 30 * 24 * 3600
#: A running step's lease; the worker renews it every third of this, and a lapsed lease
#: makes the reconciler dispatch the step again (a worker died mid-step).
DEFAULT_LEASE_S = 15.0
#: A step whose message was published (the outbox marked it) and that no worker has
#: claimed after this long is published again, and again after each further timeout of
#: the same length (engine/timers.py ``recover_step``): only for a broker that lost the
#: message, so as long as the Redis broker's visibility timeout, and a message waiting in
#: a long queue is not sent twice. One committed but never published (its publisher
#: died) is sent again after ``lease_seconds``.
DEFAULT_DISPATCH_TIMEOUT_S = 3600.0
#: How often the timer loop (beat, or the in-process one) looks for due timers, in seconds.
DEFAULT_TICK_INTERVAL_S = 0.25
#: Processes beat fires large batches of due timers with (0: one per CPU, at most 4).
DEFAULT_TIMER_PROCESSES = 0
#: How long a Redis call may wait for a connection or a reply before the store is called
#: unavailable, in seconds (the orchestrator's store makes no blocking calls).
DEFAULT_REDIS_TIMEOUT_S = 5.0
#: Inline states (Pass, Choice...) one transition evaluates in a row; the rest of a longer
#: run is handed over to a new transition (a ``continue`` step whose timer is due at once).
#: Bounds the work and the commit of one transition, not the run: a loop without a Task or
#: Wait goes on until the history quota (``DEFAULT_MAX_HISTORY_EVENTS``) ends it.
DEFAULT_MAX_INLINE_STATES = 1000
#: Time one expression evaluation (JSONata, JSONPath, intrinsic function) may take, in seconds.
DEFAULT_EVALUATION_TIMEOUT_S = 5.0
#: Nesting of JSONata function calls an evaluation may reach (recursion); below the ~760
#: levels at which the interpreter itself runs out of Python stack.
DEFAULT_EVALUATION_MAX_DEPTH = 500
#: Growth of the process's resident memory one evaluation may cause, in MiB (0: unbounded).
DEFAULT_EVALUATION_MAX_MEMORY_MB = 256
#: How long a cancelled activity (its Task timed out, its execution stopped, its Parallel
#: or Map failed) may take to return before its prefork pool process is terminated, in s.
DEFAULT_CANCEL_GRACE_S = 5.0
#: Priorities run from 0 (least urgent) to this (most urgent), as in Temporal and Step
#: Functions-minded schedulers: a higher number goes first, on every broker
#: (:func:`orchestrator.engine.celery_app.broker_priority` maps it to the broker's scale).
MAX_PRIORITY = 9
#: The priority of an execution started without one (``start_workflow(priority=...)``).
DEFAULT_PRIORITY = 4
#: Region and account in the ARNs the engine forms (``$$.Execution.Id``,
#: ``$$.StateMachine.Id``, Map Run and child execution ARNs): AWS's documentation examples.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"


class Settings(BaseSettings):
    """Orchestrator configuration; every field can be set by environment variable."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "ORCHESTRATOR_REDIS_URL")
    )
    """The state store, and the broker unless ``broker_url`` is set. None: embedded Redis."""
    broker_url: str | None = Field(
        default=None, validation_alias=AliasChoices("BROKER_URL", "ORCHESTRATOR_BROKER_URL")
    )
    """Celery broker URL (e.g. ``amqp://guest:guest@localhost:5672//``); default: redis_url."""
    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Modules that register activities, imported by workers (comma-separated in the env).
    None by default: a worker runs only the activities it is told to (the demo's are
    ``orchestrator.examples.order_activities``)."""
    celery_config: str | None = None
    """Module of Celery overrides (e.g. ``myproject.celeryconfig``): its lower-case names
    are applied on top of the orchestrator's Celery configuration, except the settings
    its guarantees rest on (:func:`orchestrator.engine.celery_app.celery_config`)."""
    key_prefix: str = "orch"
    """Prefix of every Redis key the orchestrator writes."""
    queue: str = "orchestrator"
    """Celery queue the activity and orchestration tasks go to."""
    default_priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=MAX_PRIORITY)
    """Priority (0 least urgent ... 9 most urgent) of executions started without one;
    every task message of an execution carries its priority."""
    retention_seconds: int = DEFAULT_RETENTION_S
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    """Quota of an execution's input, a task's result, and every state's input, output,
    Assign and Map/Parallel result (over it: ``States.DataLimitExceeded``)."""
    max_history_events: int = Field(default=DEFAULT_MAX_HISTORY_EVENTS, gt=0)
    """History events an execution may write; past them it fails with ``States.Runtime``."""
    max_variables_bytes: int = Field(default=DEFAULT_MAX_VARIABLES_BYTES, gt=0)
    """Quota of the variables of one scope (the top level, one branch or iteration)."""
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    """Largest task message a worker accepts; a larger one is dead-lettered, never run."""
    max_dead_letters: int = Field(default=DEFAULT_MAX_DEAD_LETTERS, gt=0)
    """Dead letters kept (the oldest go first); each keeps at most 2 KiB of a message."""
    lease_seconds: float = DEFAULT_LEASE_S
    dispatch_timeout_seconds: float = DEFAULT_DISPATCH_TIMEOUT_S
    cancel_grace_seconds: float = Field(default=DEFAULT_CANCEL_GRACE_S, ge=0)
    """How long a cancelled activity may go on (``activity_context().cancelled`` is true,
    ``heartbeat()`` raises ``ActivityCancelled``) before the prefork pool process running
    it is terminated and replaced (:mod:`orchestrator.engine.leases`)."""
    tick_interval_seconds: float = DEFAULT_TICK_INTERVAL_S
    timer_processes: int = Field(default=DEFAULT_TIMER_PROCESSES, ge=0)
    """Processes beat fires a burst of due timers with (0: one per CPU, at most 4; 1: only
    beat's own). Firing is CPU-bound Python, so a burst of thousands of timers due at
    once fires on several cores instead of one."""
    max_inline_states: int = Field(default=DEFAULT_MAX_INLINE_STATES, gt=0)
    """Inline states one transition evaluates in a row before it hands the rest of the run
    over to a transition of its own, fired by the timer loop (beat) at once; the history
    quota (``max_history_events``) is what ends a run that never stops."""
    evaluation_timeout_seconds: float = Field(default=DEFAULT_EVALUATION_TIMEOUT_S, gt=0)
    """Time one expression evaluation may take; past it the state fails
    (:mod:`orchestrator.language.budget`)."""
    evaluation_max_depth: int = Field(default=DEFAULT_EVALUATION_MAX_DEPTH, gt=0)
    """Nesting of JSONata function calls an evaluation may reach before the state fails."""
    evaluation_max_memory_mb: int = Field(default=DEFAULT_EVALUATION_MAX_MEMORY_MB, ge=0)
    """Growth of the process's resident memory (MiB) while one evaluation runs; past it the
    state fails (:mod:`orchestrator.language.budget`; Linux only, 0: unbounded)."""
    redis_timeout_seconds: float = Field(default=DEFAULT_REDIS_TIMEOUT_S, gt=0)
    """Connect and reply timeout of the store's Redis calls: a hung Redis (a stopped
    server, a firewall dropping packets) becomes ``StoreUnavailable`` within a few of
    these instead of a hang."""
    workflows_dir: str = "workflows"
    """Where ``start_workflow("name")`` looks for ``name.asl.json`` / ``.yaml`` (relative:
    to the working directory), before the packaged examples (``orchestrator/examples``)."""
    resource_aliases: dict[str, str] = Field(default_factory=dict)
    """Resource string -> activity name, for resources that are neither names nor ARNs
    (an integration ARN matches in any region and account: ``arn:aws:states:::sns:publish``
    also binds ``arn:aws:states:eu-west-1:123456789012:sns:publish``)."""
    connections_file: str | None = None
    """YAML or JSON file of the connections HTTP Tasks authenticate with
    (``Authentication.ConnectionArn``; :mod:`orchestrator.engine.integrations.connections`)."""
    http_timeout_seconds: float = Field(default=60.0, gt=0)
    """Timeout of one HTTP Task request (AWS's is a fixed 60 s); past it the attempt
    fails with ``States.Http.Socket``."""
    region: str = Field(default=DEFAULT_REGION, pattern=r"^[a-z0-9-]{1,50}$")
    """The region in the ARNs the engine forms (``$$.Execution.Id``, ``$$.StateMachine.Id``,
    Map Runs); an ARN a definition or a caller names may hold any region."""
    account_id: str = Field(default=DEFAULT_ACCOUNT_ID, pattern=r"^[0-9]{12}$")
    """The account (12 digits) in the ARNs the engine forms."""
    json_logs: bool = False
    """Log as one JSON object per line (with execution_id and state) instead of text."""

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def effective_broker_url(self) -> str | None:
        """The broker URL Celery uses: ``broker_url``, else ``redis_url``."""
        return self.broker_url or self.redis_url


@lru_cache(maxsize=1)
def _env_settings() -> Settings:
    return settings_from_env()


#: The documented form of settings that are JSON in the environment.
_JSON_FORMS = {
    "resource_aliases": (
        "ORCHESTRATOR_RESOURCE_ALIASES must be a JSON object of resource string -> activity "
        """name, e.g. '{"my-resource": "validate-order"}'"""
    ),
}


def settings_from_env(**values: object) -> Settings:
    """``Settings`` from the environment (and ``values``).

    Raises:
        ConfigurationError: a variable is malformed; one line naming it and its form.
    """
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except SettingsError as exc:
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        detail = f"{exc.__cause__}" if exc.__cause__ else str(exc)
        raise ConfigurationError(f"{_describe(field)}: {detail}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            field = loc[0] if loc else ""
            where = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
            problems.append(f"{_describe(field)}{where}: {error.get('msg', 'invalid')}")
        raise ConfigurationError("; ".join(problems)) from None


def _describe(field: str) -> str:
    if field in _JSON_FORMS:
        return _JSON_FORMS[field]
    if field in ("redis_url", "broker_url"):
        return f"{field.upper()} is malformed"
    return f"ORCHESTRATOR_{field.upper()} is malformed" if field else "a setting is malformed"


_override: Settings | None = None

#: Settings bound to the current thread or task by :func:`using_settings` (an explicit
#: ``orchestrator.client.Orchestrator`` binds its own for the duration of each call).
_bound: ContextVar[Settings | None] = ContextVar("orchestrator_settings", default=None)


def get_settings() -> Settings:
    """Return the settings in force: those bound by :func:`using_settings` in this context,
    else an override set by ``configure()``, else the environment's."""
    bound = _bound.get()
    if bound is not None:
        return bound
    return _override if _override is not None else _env_settings()


@contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` the ones in force in this context only (this thread or asyncio
    task, and what it calls), leaving the process-wide settings alone."""
    token = _bound.set(settings)
    try:
        yield settings
    finally:
        _bound.reset(token)


def configure(settings: Settings | None) -> None:
    """Replace the settings in force (``None`` goes back to the environment's)."""
    global _override
    _override = settings
    _env_settings.cache_clear()
