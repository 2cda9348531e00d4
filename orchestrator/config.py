"""Settings, read from the environment (pydantic-settings), with named defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Largest execution input (and task result) accepted, in bytes: Step Functions' limit.
DEFAULT_MAX_INPUT_BYTES = 256 * 1024
#: How long finished executions (record, history, steps) are kept, in seconds (30 days).
DEFAULT_RETENTION_S = 30 * 24 * 3600
#: A running step's lease; the worker renews it every third of this, and a lapsed lease
#: makes the reconciler dispatch the step again (a worker died mid-step).
DEFAULT_LEASE_S = 15.0
#: A dispatched step that no worker has claimed after this long is dispatched again
#: (its message was lost with a worker that had prefetched it); doubles on each re-dispatch.
DEFAULT_DISPATCH_TIMEOUT_S = 60.0
#: How often the timer loop (beat, or the in-process one) looks for due timers, in seconds.
DEFAULT_TICK_INTERVAL_S = 0.25
#: Processes beat fires large batches of due timers with (0: one per CPU, at most 4).
DEFAULT_TIMER_PROCESSES = 0
#: Inline states (Pass, Choice...) evaluated in one go before handing over to a new task;
#: bounds the work of one transition in a loop that has no Task state.
DEFAULT_MAX_INLINE_STATES = 1000


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
    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["tasks"])
    """Modules that register activities, imported by workers (comma-separated in the env)."""
    key_prefix: str = "orch"
    """Prefix of every Redis key the orchestrator writes."""
    queue: str = "orchestrator"
    """Celery queue the activity and orchestration tasks go to."""
    retention_seconds: int = DEFAULT_RETENTION_S
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    lease_seconds: float = DEFAULT_LEASE_S
    dispatch_timeout_seconds: float = DEFAULT_DISPATCH_TIMEOUT_S
    tick_interval_seconds: float = DEFAULT_TICK_INTERVAL_S
    timer_processes: int = Field(default=DEFAULT_TIMER_PROCESSES, ge=0)
    """Processes beat fires a burst of due timers with (0: one per CPU, at most 4; 1: only
    beat's own). Firing is CPU-bound Python, so a burst of thousands of timers due at
    once fires on several cores instead of one."""
    max_inline_states: int = DEFAULT_MAX_INLINE_STATES
    workflows_dir: str = "config/workflows"
    """Where ``start_workflow("name")`` looks for ``name.asl.json`` / ``.yaml``."""
    resource_aliases: dict[str, str] = Field(default_factory=dict)
    """Resource string -> activity name, for resources that are neither names nor ARNs."""
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
    return Settings()


_override: Settings | None = None


def get_settings() -> Settings:
    """Return the settings in force: an override set by ``configure()``, else the env's."""
    return _override if _override is not None else _env_settings()


def configure(settings: Settings | None) -> None:
    """Replace the settings in force (``None`` goes back to the environment's)."""
    global _override
    _override = settings
    _env_settings.cache_clear()
