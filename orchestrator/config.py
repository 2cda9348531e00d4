"""Settings, read from the environment (pydantic-settings), with named defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated
from urllib.parse import quote, unquote

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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
#: An access key id of ``ORCHESTRATOR_API_KEYS`` (AWS's are 16-128 of [A-Z0-9]; a local one
#: may be any such word). No "/", "," or space: they delimit a signature's fields.
ACCESS_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
_SECRET_PATTERN = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,256}")  # printable ASCII but space and ","
#: How long a commit waits for ``min_replicas_ack`` replicas to acknowledge it (Redis
#: ``WAIT``), in seconds, before the call is reported as not safely stored.
DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S = 1.0

#: URL schemes of a Redis reached through Sentinel (``redis+sentinel://``).
SENTINEL_SCHEMES = ("redis+sentinel",)
#: URL schemes of a Redis Cluster, which kombu cannot use as Celery's broker.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://[user:password@]host1:26379,host2:26380/MASTER/DB`` URL
    names: the sentinels to ask, the master's name, and the master's credentials and
    database (the sentinels themselves are asked without credentials)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class _MultiHostUrl:
    """A URL naming several servers: ``scheme://[user:password@]h1:p1,h2:p2/path``."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    path: str
    username: str | None
    password: str | None


def _multi_host_url(
    url: str, schemes: tuple[str, ...], default_port: int, what: str, form: str
) -> _MultiHostUrl | None:
    """``url`` split, if its scheme is one of ``schemes`` (else None); the query and the
    fragment dropped, the credentials and the path unquoted.

    Raises:
        ValueError: an address that is not host:port (``what`` names it in the message,
            with the ``form``); the message never quotes the password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        return None
    form = form.format(scheme=scheme.lower())
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    addresses = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{what} is not host:port; the form is {form}")
        addresses.append((host, int(port)))
    return _MultiHostUrl(scheme.lower(), tuple(addresses), path, username, password)


SENTINEL_FORM = "{scheme}://[user:password@]host1:26379,host2:26380/MASTER_NAME/DB"
CLUSTER_FORM = "{scheme}://[user:password@]host1:7000[,host2:7001...]/"


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The :class:`SentinelTarget` of a ``redis+sentinel://`` URL; None for another scheme.

    Raises:
        ValueError: the URL names no sentinel, no master, or a bad port or database (the
            message never quotes the password).
    """
    parsed = _multi_host_url(url, SENTINEL_SCHEMES, 26379, "a sentinel address", SENTINEL_FORM)
    if parsed is None:
        return None
    form = SENTINEL_FORM.format(scheme=parsed.scheme)
    names = [unquote(p) for p in parsed.path.split("/") if p]
    if not names or len(names) > 2:
        raise ValueError(f"no master name; the form is {form}")
    db = names[1] if len(names) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"the database is not a number; the form is {form}")
    return SentinelTarget(parsed.hosts, names[0], int(db), parsed.username, parsed.password)


@dataclass(frozen=True)
class ClusterTarget:
    """What a ``redis+cluster://[user:password@]host1:7000[,host2:7001...]/`` URL names:
    the seed nodes (any reachable one gives the cluster's layout), the credentials every
    node is reached with, and whether over TLS (``rediss+cluster://``)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_cluster_url(url: str) -> ClusterTarget | None:
    """The :class:`ClusterTarget` of a ``redis+cluster://`` URL; None for another scheme.

    Raises:
        ValueError: the URL names no node, a bad port, or a database other than 0 (a
            cluster has only database 0); the message never quotes the password.
    """
    parsed = _multi_host_url(url, CLUSTER_SCHEMES, 6379, "a cluster node's address", CLUSTER_FORM)
    if parsed is None:
        return None
    if parsed.path.strip("/") not in ("", "0"):
        form = CLUSTER_FORM.format(scheme=parsed.scheme)
        raise ValueError(f"a Redis Cluster has database 0 only; the form is {form}")
    tls = parsed.scheme.startswith("rediss")
    return ClusterTarget(parsed.hosts, parsed.username, parsed.password, tls)


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
    partitions: int = Field(default=1, ge=1, le=256)
    """How many partitions the executions and the indexes (timers, leases, outbox,
    listings, dead letters, counters) are split into, each in one hash slot: a Redis
    Cluster spreads them over its masters. Fixed for a deployment's life (recorded in
    Redis at the first write; a process configured otherwise refuses to write)."""
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
    api_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    """Access key id -> secret of the Step Functions API (``ORCHESTRATOR_API_KEYS``:
    ``ACCESS_KEY_ID:SECRET[,...]``). With any, every API request must carry an AWS
    Signature Version 4 by one of them (:mod:`orchestrator.ui.sigv4`); without, the API
    is open. Secrets print as ``**********``."""
    json_logs: bool = False
    """Log as one JSON object per line (with execution_id and state) instead of text."""
    redis_tls_ca_file: str | None = None
    """CA bundle (PEM) that a ``rediss://`` store's and broker's certificate must chain to
    (default: the system's CAs)."""
    redis_tls_cert_file: str | None = None
    """Client certificate (PEM) presented to a ``rediss://`` store and broker that ask for
    one (Redis ``tls-auth-clients``)."""
    redis_tls_key_file: str | None = None
    """The client certificate's private key (PEM)."""
    min_replicas_ack: int = Field(default=0, ge=0)
    """Replicas that must acknowledge each commit (Redis ``WAIT`` after it) before the
    call returns; fewer within ``min_replicas_ack_timeout_seconds`` raise
    ``StoreUnavailable`` (the write stays on the master). 0: no wait, Redis' asynchronous
    replication (docs/running-at-scale.md says what a failover can then lose)."""
    min_replicas_ack_timeout_seconds: float = Field(
        default=DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S, gt=0
    )
    """How long a commit waits for ``min_replicas_ack`` acknowledgements."""

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value:
            # A malformed Sentinel or Cluster URL fails here, not at the first call.
            parse_sentinel_url(value)
            parse_cluster_url(value)
        return value

    @model_validator(mode="after")
    def _cluster_needs_a_broker(self) -> Settings:
        scheme = (self.redis_url or "").partition("://")[0].lower()
        if scheme in CLUSTER_SCHEMES and not self.broker_url:
            # kombu has no Redis Cluster transport: it would read the URL as a plain
            # redis:// one and publish to whatever Redis answers on localhost:6379.
            raise ValueError(
                f"REDIS_URL is a Redis Cluster ({scheme}://) and BROKER_URL is not set: "
                "Celery's broker cannot be a Redis Cluster (kombu would fall back to "
                "localhost:6379); set BROKER_URL, e.g. to RabbitMQ "
                "(amqp://user:password@rabbitmq:5672//, with quorum queues)"
            )
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_api_keys(value)
        return value

    @property
    def effective_broker_url(self) -> str | None:
        """The broker URL Celery uses: ``broker_url``, else ``redis_url`` (a
        ``redis+sentinel://`` one in kombu's form: ``sentinel://host:port;sentinel://...``,
        whose master :attr:`broker_master_name` names)."""
        if self.broker_url or not self.redis_url:
            return self.broker_url or self.redis_url
        target = parse_sentinel_url(self.redis_url)
        if target is None:
            return self.redis_url
        auth = ""
        if target.username or target.password is not None:
            auth = quote(target.username or "", safe="")
            if target.password is not None:
                auth += ":" + quote(target.password, safe="")
            auth += "@"
        return ";".join(
            f"sentinel://{auth}{_host(host)}:{port}/{target.db}" for host, port in target.sentinels
        )

    @property
    def broker_master_name(self) -> str | None:
        """The Sentinel master the broker follows (``BROKER_URL`` unset, ``REDIS_URL`` a
        ``redis+sentinel://`` one), else None."""
        if self.broker_url or not self.redis_url:
            return None
        target = parse_sentinel_url(self.redis_url)
        return target.master if target else None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_api_keys(text: str) -> dict[str, str]:
    """``ACCESS_KEY_ID:SECRET[,ACCESS_KEY_ID:SECRET...]`` as a dict (empty text: none).

    Raises:
        ValueError: an entry is malformed or repeats an access key id; the message names
            the entry by its position (and a well-formed key id), never a secret.
    """
    keys: dict[str, str] = {}
    for position, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, colon, secret = entry.partition(":")
        if not colon:
            raise ValueError(
                f"entry {position} has no ':' between the access key id and the secret "
                "(the form is ACCESS_KEY_ID:SECRET[,ACCESS_KEY_ID:SECRET...])"
            )
        if not ACCESS_KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError(
                f"entry {position}: the access key id must be 1-128 letters, digits or "
                "_+=.@- characters"
            )
        if not _SECRET_PATTERN.fullmatch(secret):
            raise ValueError(
                f"entry {position} ({key_id}): the secret must be 1-256 printable ASCII "
                "characters, without spaces or commas"
            )
        if key_id in keys:
            raise ValueError(f"entry {position}: access key id {key_id} is given twice")
        keys[key_id] = secret
    return keys


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
        raise ConfigurationError(validation_problems(exc)) from None


def validation_problems(exc: ValidationError) -> str:
    """What is wrong with some settings, one clause a setting, naming each and its form
    but never quoting a value (pydantic's own message quotes them: a URL's password)."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc else ""
        where = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
        message = error.get("msg", "invalid")
        if not field:  # a check of several settings together says which ones itself
            problems.append(message.removeprefix("Value error, "))
            continue
        problems.append(f"{_describe(field)}{where}: {message}")
    return "; ".join(problems)


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
