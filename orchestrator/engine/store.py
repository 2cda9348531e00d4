"""The Redis state store: the source of truth for executions, steps, history and timers.

Writes go through :meth:`RedisStore.commit`, which applies a :class:`Write` (guards and
operations) in one Lua call. Reads are plain Redis commands. The key schema is in
:mod:`orchestrator.engine.keys`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlparse

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel

try:  # a dependency (redis[hiredis]); without it, redis-py's own packer
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover
    _pack_command = None  # type: ignore[assignment]

from orchestrator.config import Settings, get_settings, parse_cluster_url, parse_sentinel_url
from orchestrator.engine import history as history_codec
from orchestrator.engine.keys import Keys
from orchestrator.engine.records import (
    lease_member,
    parse_lease_member,
    parse_timer_member,
    status_field,
    step_statuses,
)
from orchestrator.errors import CommitRefused, ConfigurationError, StoreUnavailable, mask_url

_LUA_DIR = Path(__file__).parent / "lua"

logger = logging.getLogger("orchestrator.engine.store")


#: Attempts of a command whose connection failed or timed out (redis-py's default is 4):
#: a restarted server is reached again, a hung one gives up after a few timeouts.
COMMAND_ATTEMPTS = 3

#: Errors that mean the store could not be reached, not that a command was wrong: on a
#: Redis Cluster also a cluster that is down (a master lost and not yet replaced: its
#: slots uncovered) or a slot in the middle of moving, after redis-py's own retries.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)


class ReplicasBehind(redis.ConnectionError):
    """A commit that fewer than ``min_replicas_ack`` replicas acknowledged in time.

    It is applied on the master, but a failover now could lose it: as with a connection
    that broke after the commit was sent, the caller treats it as maybe applied (a start
    raises ``StoreUnavailable(maybe_applied=True)``; a worker's transition is run again
    from its step, which the lease gives back).
    """

    def __init__(self, acknowledged: int, wanted: int, timeout: float) -> None:
        self.acknowledged = acknowledged
        self.wanted = wanted
        super().__init__(
            f"commit acknowledged by {acknowledged} of the {wanted} replicas "
            f"ORCHESTRATOR_MIN_REPLICAS_ACK asks for within {timeout:g} s"
        )


def redis_client(
    url: str, timeout: float | None = None, settings: Settings | None = None
) -> redis.Redis:
    """A redis-py client for ``url``: every connection of the orchestrator's store (the
    client's pool and the :class:`ScriptLane`'s) is built from what this returns.

    Accepts ``redis://``, ``rediss://`` (TLS: the ``redis_tls_*`` settings name the CA
    bundle and a client certificate), ``redis+sentinel://`` (each connection asks the
    sentinels for the current master, so after a failover the next one reaches the new
    master) and kombu's ``redis+socket://``. Connecting and every reply are bounded by
    ``timeout`` seconds (default: the ``redis_timeout_seconds`` setting), so a hung
    server raises instead of hanging. ``settings``: whose TLS files to use (default:
    those in force).

    ``redis+cluster://`` (``rediss+cluster://`` over TLS) gives a
    :class:`redis.cluster.RedisCluster` seeded by the URL's nodes: it answers the same
    commands, each sent to the master of its key's slot (every call the store makes
    touches one slot: ``engine/keys.py``), and follows ``MOVED`` redirections and
    failovers by reading the cluster's layout again.
    """
    settings = settings or get_settings()
    timeout = timeout or settings.redis_timeout_seconds
    options: dict[str, Any] = {
        "decode_responses": True,
        # No PING before a command on a connection idle for a while: every call is tried
        # COMMAND_ATTEMPTS times, reconnecting after a connection error, which is what
        # the check would buy; and redis-py retries the check's PING under the same
        # policy, so a hung server cost 4 timeouts per attempt (12 per call, not 3).
        "health_check_interval": 0,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), COMMAND_ATTEMPTS - 1),
    }
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    cluster = parse_cluster_url(url)
    if cluster is not None:
        if cluster.tls:
            options.update(tls_options(settings), ssl=True)
        try:
            client: RedisCluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
                username=cluster.username,
                password=cluster.password,
                **options,
            )
        except RedisClusterException as exc:
            # It reads the layout at once: no node answering is an outage, as a refused
            # connection to one Redis is (the CLI's "unreachable", a worker's retry).
            raise redis.ConnectionError(f"Redis Cluster {mask_url(url)}: {exc}") from None
        return cast(redis.Redis, client)
    if scheme in ("redis+socket", "socket", "unix"):
        return redis.Redis(unix_socket_path=parsed.path, **options)
    target = parse_sentinel_url(url)
    if target is not None:
        # The sentinels are asked without credentials (the URL's are the master's), with
        # the same timeouts, so a dead sentinel is passed over rather than waited on.
        sentinel = Sentinel(
            list(target.sentinels),
            sentinel_kwargs={"socket_connect_timeout": timeout, "socket_timeout": timeout},
        )
        return sentinel.master_for(
            target.master,
            redis_class=redis.Redis,
            db=target.db,
            username=target.username,
            password=target.password,
            **options,
        )
    if scheme == "rediss":
        options.update(tls_options(settings))
    return redis.Redis.from_url(url, **options)


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options from the ``redis_tls_*`` settings (for a ``rediss://`` URL;
    options in the URL's query, ``?ssl_ca_certs=...``, take precedence)."""
    files = {
        "ssl_ca_certs": settings.redis_tls_ca_file,
        "ssl_certfile": settings.redis_tls_cert_file,
        "ssl_keyfile": settings.redis_tls_key_file,
    }
    return {name: path for name, path in files.items() if path}


def is_cluster(client: redis.Redis) -> bool:
    """Whether ``client`` is a Redis Cluster's (each key's commands go to its slot's node)."""
    return isinstance(client, RedisCluster)


def connection_options(client: redis.Redis) -> dict[str, Any]:
    """The options ``client`` builds its connections with (timeouts, credentials...)."""
    if isinstance(client, RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    return dict(client.connection_pool.connection_kwargs)


def close_client(client: redis.Redis) -> None:
    """Close ``client``'s connections, and those a Sentinel client keeps to the sentinels."""
    client.close()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel_client in getattr(manager, "sentinels", ()):
        sentinel_client.close()


def unavailable(
    exc: BaseException, *, maybe_applied: bool = False, hint: str = ""
) -> StoreUnavailable:
    """The :class:`StoreUnavailable` for an outage error raised by a Redis call."""
    url = get_settings().redis_url or "(REDIS_URL not set)"
    reason = str(exc) or type(exc).__name__
    return StoreUnavailable(url, reason, maybe_applied=maybe_applied, hint=hint)


P = ParamSpec("P")
R = TypeVar("R")


def store_call(*, mutates: bool) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator of public API functions: Redis outages raise :class:`StoreUnavailable`.

    ``mutates``: the function writes, so a call cut short may have taken effect
    (``maybe_applied``). A function that knows better raises its own
    ``StoreUnavailable``, which passes through.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except OUTAGE_ERRORS as exc:
                raise unavailable(exc, maybe_applied=mutates) from exc

        return wrapper

    return decorate


class OutageLog:
    """Logs a Redis outage once when it starts and once when it ends, not once per try.

    Loops that call Redis on a schedule (the timer tick, the lease keeper) report each
    attempt here: :meth:`failed` with the exception (True if it was an outage, now
    logged; False for anything else, which the caller logs itself), :meth:`ok` after a
    call that worked.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.down_since: float | None = None

    def failed(self, exc: BaseException) -> bool:
        """Record a failed call; whether it was an outage (then logged at most once)."""
        if not isinstance(exc, OUTAGE_ERRORS):
            return False
        if self.down_since is None:
            self.down_since = time.monotonic()
            url = mask_url(get_settings().redis_url or "(REDIS_URL not set)")
            self.logger.error("Redis at %s unreachable: %s; retrying", url, exc)
        return True

    def ok(self) -> None:
        """Record a call that worked (logs the end of an outage)."""
        if self.down_since is not None:
            elapsed = time.monotonic() - self.down_since
            self.down_since = None
            self.logger.warning("Redis reachable again after %.1f s", elapsed)


class Write:
    """One atomic transition: guards to re-check, then operations to apply.

    Keys are interned so that guards and operations refer to them by index (the Lua
    script receives them as KEYS, as Redis requires); :meth:`args` is commit.lua's ARGV.
    """

    __slots__ = ("keys", "guards", "ops", "_index")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.guards: list[list[Any]] = []
        self.ops: list[list[Any]] = []
        self._index: dict[str, int] = {}

    def _k(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index

    def guard_field(self, key: str, name: str, expected: str | None) -> Write:
        """Require ``HGET key name`` to equal ``expected`` (``None``: to be absent)."""
        if expected is None:
            self.guards.append(["h-", self._k(key), name])
        else:
            self.guards.append(["h", self._k(key), name, expected])
        return self

    def guard_member(self, key: str, member: str) -> Write:
        """Require ``member`` to be in the sorted set ``key``."""
        self.guards.append(["z", self._k(key), member])
        return self

    def guard_exists(self, key: str, exists: bool) -> Write:
        """Require ``key`` to exist (or not)."""
        self.guards.append(["x", self._k(key), 1 if exists else 0])
        return self

    def guard_length(self, key: str, most: int) -> Write:
        """Require the history ``key`` to hold at most ``most`` events (its quota)."""
        self.guards.append(["n", self._k(key), most])
        return self

    def op(self, name: str, key: str, *args: Any) -> Write:
        """Append an operation (``hset``, ``zadd``..., or ``history``: append events to
        a history stream, see commit.lua) on ``key``."""
        self.ops.append([name, self._k(key), len(args), *args])
        return self

    def join(
        self,
        steps_key: str,
        container: str,
        leases_key: str,
        due: float,
        member: str,
        ended: int = 1,
    ) -> Write:
        """Count ``ended`` more ended branches of ``container`` (commit.lua's ``join``)."""
        self.ops.append(
            [
                "join",
                self._k(steps_key),
                5,
                container,
                self._k(leases_key),
                repr(due),
                member,
                ended,
            ]
        )
        return self

    def notify(self, record_key: str, timers_key: str, due: float) -> Write:
        """Add the timer member in record ``record_key``'s ``notify`` field, if any, to
        ``timers_key`` (commit.lua's ``notify``: a Distributed Map child's end)."""
        self.ops.append(["notify", self._k(record_key), 2, self._k(timers_key), repr(due)])
        return self

    def args(self) -> list[Any]:
        """commit.lua's ARGV: the guard count, the guards, then the operations."""
        flat: list[Any] = [len(self.guards)]
        for entry in self.guards:
            flat += entry
        for entry in self.ops:
            flat += entry
        return flat


@dataclass
class CommitResult:
    """What :meth:`RedisStore.apply` did."""

    ok: bool
    failed_guard: int = -1
    """Index (in ``Write.guards``) of the guard that failed."""
    joined: list[str] = field(default_factory=list)
    """Containers whose last branch ended in this write (now JOINING)."""


def _wrong_type(exc: redis.ResponseError) -> bool:
    """Whether a command failed on a key of another type (a history still a LIST)."""
    return str(exc).startswith("WRONGTYPE")


def _history_events(
    entries: list[tuple[str, dict[str, str]]], start: str | None
) -> list[dict[str, Any]]:
    """History stream entries (``0-<n>``, see :mod:`.history`) as event dicts with id n;
    ``start``: the execution record's, the base of the entries' relative timestamps.

    A history whose record is gone (the execution forgotten, or expiring between the two
    reads) reads as empty when its entries need that base."""
    base = history_codec.base_ms(start)
    events = []
    for entry_id, fields in entries:
        event = history_codec.decode(fields, int(entry_id.partition("-")[2]), base)
        if event is None:
            return []
        events.append(event)
    return events


#: Replies of a Redis Cluster node that mean the call went to the wrong node or came at a
#: bad moment (a failover, a slot moving): nothing ran; it is sent again once the
#: client has read the cluster's layout again.
CLUSTER_REDIRECTS: tuple[type[BaseException], ...] = (
    MovedError,
    AskError,
    TryAgainError,
    ClusterDownError,
)


class ScriptLane:
    """Runs the Lua scripts of the hot path (claim, commit, window) on connections of its own.

    Every workflow step makes two of these calls; through redis-py's client (pool
    checkout, retry wrapper, observability hooks) each costs about three times the CPU of
    sending the command and reading the reply. So the lane keeps one plain connection
    per thread (Celery's thread pool, the timer loop, the API) and per process (a
    prefork child must not share its parent's socket), built from the client's own
    connection settings (URL, TLS, password, database, decoding). On a Redis Cluster it
    keeps one per thread and node, and sends each call to the master of its first key's
    slot (every call's keys share that slot: ``engine/keys.py``).
    """

    #: Attempts of a call whose connection broke (redis-py's default retry makes 3 too).
    ATTEMPTS = 3
    #: Attempts on a cluster, where a failover answers ``CLUSTERDOWN`` or ``MOVED`` (or
    #: refuses connections) for about its node timeout: tried again after 0.1, 0.2,
    #: 0.4, then every 0.5 s, 12.7 s in all; at most half a second after the cluster
    #: is whole again.
    CLUSTER_ATTEMPTS = 28
    #: Loads of a script a server lacks, per call (a restarted node, a promoted replica:
    #: Redis does not copy loaded scripts to replicas), counted apart from the failures.
    LOADS = 3

    def __init__(self, client: redis.Redis) -> None:
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._pool = None if self._cluster is not None else client.connection_pool
        self._local = threading.local()
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _new_connection(self, pool: Any) -> Any:
        connection = pool.connection_class(**pool.connection_kwargs)
        with self._lock:
            self._open.add(connection)
        return connection

    def _connection(self, key: str = "") -> Any:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = None
            local.nodes = {}
            local.pid = os.getpid()
        if self._cluster is None:
            if local.connection is None:
                local.connection = self._new_connection(self._pool)
            connection = local.connection
        else:
            node = self._cluster.nodes_manager.get_node_from_slot(key_slot(key.encode()))
            pool = node.redis_connection.connection_pool
            held = local.nodes.get(node.name)
            if held is None or held[0] is not pool:
                # A node's pool is new after the layout was read again (a failover):
                # its settings may differ, so the connection is built anew.
                if held is not None:
                    held[1].disconnect()
                held = local.nodes[node.name] = (pool, self._new_connection(pool))
            connection = held[1]
        if getattr(connection, "_sock", None) is None:
            # Connect through connect(), as redis-py's pool does: a Sentinel connection
            # asks the sentinels for the master there. send_packed_command() would
            # connect to the connection's own host and port instead (redis-py 8), which
            # for a Sentinel pool are the defaults: whatever answers on localhost:6379.
            connection.connect()
        return connection

    @staticmethod
    def _pack(connection: Any, commands: list[tuple[Any, ...]]) -> Any:
        """The commands in Redis's protocol, as ``send_packed_command`` takes them.

        Through hiredis's packer at once when the connection encodes text as UTF-8 (the
        lane's arguments are text and numbers): redis-py's packer first passes every
        argument through its encoder, one Python call each, about as much CPU again as
        the rest of the call for a commit's fifty arguments. hiredis formats a number as
        ``repr`` does, as redis-py's encoder does."""
        encoder = connection.encoder
        if _pack_command is not None and (encoder.encoding, encoder.encoding_errors) == (
            "utf-8",
            "strict",
        ):
            try:
                return [b"".join([_pack_command(command) for command in commands])]
            except TypeError:
                pass  # an argument of another type: redis-py's packer says which
        return connection.pack_commands(commands)

    def _drop(self) -> None:
        """Disconnect this thread's connections (the next call connects again)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            return
        if local.connection is not None:
            local.connection.disconnect()
        for _, connection in local.nodes.values():
            connection.disconnect()

    def _failed(self, exc: BaseException, attempt: int) -> None:
        """After a call's attempt failed with a connection error or a cluster's
        redirection: raise ``exc`` if it was the last attempt, else make ready for the
        next (disconnect; on a cluster, read its layout again after a pause)."""
        cluster = self._cluster
        if not isinstance(exc, ResponseError):
            self._drop()
        if attempt >= (self.ATTEMPTS if cluster is None else self.CLUSTER_ATTEMPTS):
            raise exc
        if cluster is not None:
            if not isinstance(exc, MovedError):
                time.sleep(min(0.1 * 2 ** (attempt - 1), 0.5))
            try:
                cluster.nodes_manager.initialize()
            except (redis.RedisError, OSError):
                pass  # no node answers yet: the next attempt fails likewise, or works

    @staticmethod
    def _load(connection: Any, script: Any) -> None:
        """``SCRIPT LOAD`` ``script`` on ``connection``'s server: the one that lacked it
        (through the client, a cluster would load it on every master, and fail while
        one is down)."""
        connection.send_command("SCRIPT", "LOAD", script.script)
        connection.read_response()

    def _retried(self, exc: BaseException) -> bool:
        """Whether an attempt that raised ``exc`` is one to try again."""
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return True
        return self._cluster is not None and isinstance(exc, CLUSTER_REDIRECTS)

    def run(
        self,
        script: Any,
        keys: list[str],
        args: list[Any],
        acks: int = 0,
        ack_timeout: float = 0.0,
    ) -> Any:
        """``EVALSHA`` a ``register_script`` script, loading it if the server lacks it.

        ``acks``: then ``WAIT`` (in the same round trip) until that many replicas have
        the write, for at most ``ack_timeout`` seconds; fewer raise :class:`ReplicasBehind`.
        """
        commands: list[tuple[Any, ...]] = [("EVALSHA", script.sha, len(keys), *keys, *args)]
        if acks:
            commands.append(("WAIT", acks, max(1, round(ack_timeout * 1000))))
        packed: Any = None
        failures = loads = 0
        while True:
            try:
                connection = self._connection(keys[0] if keys else "")
                packed = packed or self._pack(connection, commands)
                connection.send_packed_command(packed)
                try:
                    result = connection.read_response()
                finally:
                    # WAIT's reply is read whatever EVALSHA's was: the connection stays
                    # in step (a broken one is dropped below anyway).
                    acknowledged = connection.read_response() if acks else 0
            except NoScriptError:
                # A restarted, flushed or newly promoted server: load it there, then the
                # next attempt runs it.
                loads += 1
                if loads > self.LOADS:
                    raise
                self._load(connection, script)
                continue
            except redis.RedisError as exc:
                if not self._retried(exc):
                    raise
                failures += 1
                self._failed(exc, failures)
                continue
            if acknowledged < acks:
                # Not retried: the write is on the master, a second run would find its
                # guards failed and say it was not applied.
                raise ReplicasBehind(int(acknowledged), acks, ack_timeout)
            return result

    def run_many(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``EVALSHA`` a script that only reads (or whose second run changes nothing) once
        per ``(keys, args)``, pipelined (one round trip; on a cluster, one per node), so
        that each call touches one execution's keys; a batch is sent again after a broken
        connection or a server that lacked the script."""
        if self._cluster is None:
            return self._run_batch(script, calls, "")
        nodes = self._cluster.nodes_manager
        by_node: dict[str, list[int]] = {}
        for i, (keys, _) in enumerate(calls):
            node = nodes.get_node_from_slot(key_slot(keys[0].encode()))
            by_node.setdefault(node.name, []).append(i)
        results: list[Any] = [None] * len(calls)
        for indexes in by_node.values():
            batch = [calls[i] for i in indexes]
            replies = self._run_batch(script, batch, batch[0][0][0])
            for i, result in zip(indexes, replies, strict=True):
                results[i] = result
        return results

    def _run_batch(
        self, script: Any, calls: list[tuple[list[str], list[Any]]], key: str
    ) -> list[Any]:
        """:meth:`run_many`'s calls on the connection of ``key``'s node."""
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
        packed: Any = None
        failures = loads = 0
        while True:
            try:
                connection = self._connection(key)
                packed = packed or self._pack(connection, commands)
                connection.send_packed_command(packed)
                results: list[Any] = []
                missing = False
                error: redis.ResponseError | None = None
                # Every reply is read, errors included, so the connection stays in step.
                for _ in calls:
                    try:
                        results.append(connection.read_response())
                    except NoScriptError:
                        missing = True
                    except redis.ResponseError as exc:
                        error = error or exc
                if error is not None:
                    raise error
                if not missing:
                    return results
                loads += 1
                if loads > self.LOADS:
                    raise NoScriptError(f"script {script.sha} could not be loaded")
                self._load(connection, script)
            except NoScriptError:
                raise
            except redis.RedisError as exc:
                if not self._retried(exc):
                    raise
                failures += 1
                self._failed(exc, failures)

    def close(self) -> None:
        """Close every connection the lane opened in this process."""
        with self._lock:
            connections = list(self._open)
            self._open = weakref.WeakSet()
        for connection in connections:
            connection.disconnect()
        self._local = threading.local()


#: Fields one command reads of a branch hash (a join of a large Map reads in several).
BRANCH_READ = 1000

#: Schedules one call of ``RedisStore.migrate_schedules`` moves at most (one round trip).
MIGRATE_SCHEDULES_PAGE = 100


class NoReplicas(redis.ConnectionError):
    """The master refused a commit (nothing written) because fewer replicas than its
    ``min-replicas-to-write`` are in reach: an outage of the store, as callers see it
    (a start raises ``StoreUnavailable``; a worker's step comes back through its lease)."""


def _refused(exc: ResponseError) -> Exception:
    """commit.lua's refusal (nothing written) as :class:`CommitRefused`, a master short of
    replicas as :class:`NoReplicas`; any other error as it came."""
    text = str(exc)
    if "NOREPLICAS" in text:
        return NoReplicas(f"the master refuses writes: {text} (its min-replicas-to-write)")
    _, found, reason = text.partition("commit refused, nothing written: ")
    return CommitRefused(f"commit refused, nothing written: {reason}") if found else exc


class RedisStore:
    """Access to the orchestrator's Redis state, under the configured key prefix."""

    def __init__(self, client: redis.Redis, prefix: str, partitions: int = 1) -> None:
        self.client = client
        self.keys = Keys(prefix, partitions)
        self._partitions_checked = False
        self.lane = ScriptLane(client)
        self._commit = client.register_script((_LUA_DIR / "commit.lua").read_text())
        self._claim = client.register_script((_LUA_DIR / "claim.lua").read_text())
        self._window = client.register_script((_LUA_DIR / "window.lua").read_text())
        self._timers = client.register_script((_LUA_DIR / "timers.lua").read_text())
        self._trim = client.register_script((_LUA_DIR / "trim_dead_letters.lua").read_text())
        self._forget = client.register_script((_LUA_DIR / "forget_execution.lua").read_text())
        self._limits = client.register_script((_LUA_DIR / "permits.lua").read_text())
        self._schedules = client.register_script((_LUA_DIR / "schedules.lua").read_text())
        self._migrate_schedule = client.register_script(
            (_LUA_DIR / "migrate_schedule.lua").read_text()
        )
        #: No schedule is left under the keys of earlier versions (looked once per store).
        self._schedules_migrated = False

    @property
    def partitions(self) -> int:
        """How many partitions the executions are split into (``ORCHESTRATOR_PARTITIONS``):
        what a listing's cursor holds a position for each of."""
        return self.keys.partitions

    def close(self) -> None:
        """Close the store's connections."""
        self.lane.close()
        close_client(self.client)

    def check_partitions(self) -> None:
        """Record this deployment's partition count, or check it against the recorded
        one, before this store's first write (once per store).

        Raises:
            ConfigurationError: another count was recorded (a process configured
                otherwise would write executions where this one never looks).
        """
        if self._partitions_checked:
            return
        key, mine = self.keys.partition_count, str(self.keys.partitions)
        recorded = self.client.get(key)
        if recorded is None:
            try:
                recorded = mine if self.client.set(key, mine, nx=True) else self.client.get(key)
            except ResponseError:
                # Not writable now (out of memory, a read-only replica): the write that
                # follows meets the same refusal and reports it; checked next time.
                return
        if recorded is not None and recorded != mine:
            raise ConfigurationError(
                f"ORCHESTRATOR_PARTITIONS is {mine}, but this Redis (prefix "
                f"{self.keys.prefix!r}) was set up with {recorded}: the partition count is "
                "fixed for a deployment's life (a new prefix starts another)"
            )
        self._partitions_checked = True

    # -- writes -----------------------------------------------------------------------

    def commit(self, write: Write) -> bool:
        """Apply ``write`` atomically; False (and nothing written) if a guard failed."""
        return self.apply(write).ok

    def apply(self, write: Write) -> CommitResult:
        """Apply ``write`` atomically and say what happened."""
        if not write.ops:
            return CommitResult(True)
        if not self._partitions_checked:
            self.check_partitions()
        settings = get_settings()
        try:
            raw = self.lane.run(
                self._commit,
                write.keys,
                write.args(),
                settings.min_replicas_ack,
                settings.min_replicas_ack_timeout_seconds,
            )
        except ResponseError as exc:
            raise _refused(exc) from exc
        return self._result(raw)

    def apply_many(self, writes: list[Write]) -> list[CommitResult]:
        """Apply several independent writes in one round trip (each atomic on its own)."""
        if not self._partitions_checked:
            self.check_partitions()
        settings = get_settings()
        acks = settings.min_replicas_ack
        timeout = settings.min_replicas_ack_timeout_seconds
        if acks and is_cluster(self.client):
            # WAIT counts the writes of its own connection, and a cluster's pipeline
            # spreads the writes over the nodes: each is acknowledged on its own.
            return [self.apply(write) for write in writes]
        wait = ("WAIT", acks, max(1, round(timeout * 1000))) if acks else None
        try:
            replies = self._pipelined_scripts(
                [(self._commit, write.keys, write.args()) for write in writes], then=wait
            )
        except ResponseError as exc:
            raise _refused(exc) from exc
        if acks:
            acknowledged = int(replies.pop())
            if acknowledged < acks:
                raise ReplicasBehind(acknowledged, acks, timeout)
        return [self._result(raw) for raw in replies]

    def _pipelined_scripts(
        self, calls: list[tuple[Any, list[str], list[Any]]], then: tuple[Any, ...] | None = None
    ) -> list[Any]:
        """``EVALSHA`` each ``(script, keys, args)`` in one pipeline (on a cluster, one
        per node), then the command ``then`` (its reply last); raises the first error.

        A server that lacked a script (restarted, failed over) is sent it, and the calls
        it refused, only those (they did not run), are sent again: so a batch of commits
        never runs one twice."""
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        tail: Any = None
        for attempt in range(1, ScriptLane.ATTEMPTS + 1):
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            if then is not None:
                pipe.execute_command(*then)
            replies = pipe.execute(raise_on_error=False)
            if then is not None:
                tail = replies.pop()
                then = None  # sent once: it followed the writes of the first batch
            missing = []
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(i)
                else:
                    results[i] = reply
            if not missing:
                break
            if attempt == ScriptLane.ATTEMPTS:
                raise NoScriptError(f"scripts were not loaded after {attempt} attempts")
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                script.registered_client.script_load(script.script)
            todo = missing
        for reply in results:
            if isinstance(reply, Exception):
                raise reply
        if isinstance(tail, Exception):
            raise tail
        return results if tail is None else [*results, tail]

    @staticmethod
    def _result(raw: list[Any]) -> CommitResult:
        if not raw[0]:
            return CommitResult(False, failed_guard=int(raw[1]) - 1)
        return CommitResult(True, joined=[str(k) for k in raw[2:]])

    def claim_step(
        self,
        execution_id: str,
        step_key: str,
        token: str,
        lease_until: float,
        event: str,
        container: str = "",
        published: list[str] | tuple[str, ...] = (),
        published_until: float = 0.0,
    ) -> tuple[bool, list[str | None]]:
        """Claim a SCHEDULED step; returns (claimed, claim details or skip reason).

        ``container`` is the Parallel or Map the step runs in, whose window (``|next``,
        ``|t``) the details end with. ``published``: outbox members whose messages this
        process sent, marked published (due at ``published_until``) in the same call.
        """
        member = lease_member(execution_id, step_key)
        if not self._partitions_checked:
            self.check_partitions()
        result = self.lane.run(
            self._claim,
            [
                self.keys.execution(execution_id),
                self.keys.steps(execution_id),
                self.keys.leases(self.keys.partition_of(execution_id)),
                self.keys.history(execution_id),
                self.keys.outbox(self.keys.partition_of(execution_id)),
            ],
            [step_key, token, repr(lease_until), member, event, container]
            + ([repr(published_until), *published] if published else []),
        )
        return result[0] == "ok", list(result[1:])

    # -- reads ------------------------------------------------------------------------

    def map_window(
        self, execution_id: str, container: str, chunk: int, starting: int | None = None
    ) -> list[str | None]:
        """A Map's ``[next index, item count, refill count, the input chunks of the items
        an ending iteration starts (or of the next ``starting`` items)...]``
        (window.lua)."""
        keys = [self.keys.steps(execution_id), self.keys.branches(execution_id, container)]
        args: list[Any] = [container, chunk]
        if starting is not None:
            args.append(starting)
        return list(self.lane.run(self._window, keys, args))

    def branch_fields(
        self, execution_id: str, container: str, fields: list[str]
    ) -> list[str | None]:
        """Fields of a container's branch hash, in one round trip of bounded commands
        (a join reads every result of a Map: ``BRANCH_READ`` fields per command)."""
        if not fields:
            return []
        key = self.keys.branches(execution_id, container)
        if len(fields) <= BRANCH_READ:
            return list(self.client.hmget(key, fields))
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(fields), BRANCH_READ):
            pipe.hmget(key, fields[start : start + BRANCH_READ])
        return [value for values in pipe.execute() for value in values]

    def branch_marks(self, execution_id: str) -> list[tuple[str, str, str]]:
        """``(container, field, [state, input] text)`` of every failure mark in the
        execution's branch hashes (for a redrive), read in bounded pages."""
        marks = []
        for container in sorted(self.client.smembers(self.keys.branch_hashes(execution_id))):
            key = self.keys.branches(execution_id, container)
            for name, text in self.client.hscan_iter(key, match="x*", count=BRANCH_READ):
                marks.append((container, name, text))
        return marks

    def timer_reads(
        self, steps: list[tuple[str, str]], records: list[bool] | None = None
    ) -> list[list[Any]]:
        """What firing a batch of due timers needs, in one call (timers.lua): for each
        ``(execution id, step key)``, ``[name, workflow, start, def_hash, execution
        status, step status, step record, priority, history length]``. ``records``: per step,
        whether its record is read (None: every one's); one not read is None."""
        if not steps:
            return []
        wanted = records if records is not None else [True] * len(steps)
        calls = [
            (
                [
                    self.keys.execution(execution_id),
                    self.keys.steps(execution_id),
                    self.keys.history(execution_id),
                ],
                [self.keys.status_field(step_key), step_key, "1" if record else "0"],
            )
            for (execution_id, step_key), record in zip(steps, wanted, strict=True)
        ]
        return [list(read) for read in self.lane.run_many(self._timers, calls)]

    def execution(self, execution_id: str) -> dict[str, str]:
        """The execution record ({} if unknown)."""
        return self.client.hgetall(self.keys.execution(execution_id))

    def history(
        self, execution_id: str, after: int = 0, count: int | None = None
    ) -> list[dict[str, Any]]:
        """The history events of an execution with an id above ``after`` (at most
        ``count``), oldest first, each with its id."""
        key = self.keys.history(execution_id)
        # The record's start, in the same round trip: the entries' timestamps count from it.
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.execution(execution_id), "start")
        pipe.xrange(key, f"0-{after + 1}", "+", count)
        start, entries = pipe.execute(raise_on_error=False)
        if isinstance(start, Exception):
            raise start
        if isinstance(entries, redis.ResponseError) and _wrong_type(entries):
            return self._list_history(key, after, count, start)
        if isinstance(entries, Exception):
            raise entries
        return _history_events(entries, start)

    def wait_history(
        self, execution_id: str, after: int, block_s: float, count: int | None = None
    ) -> list[dict[str, Any]]:
        """Like :meth:`history`, but waits up to ``block_s`` seconds (``XREAD BLOCK``) for
        an event above ``after`` when there is none yet; [] if none came.

        The wait is capped below the connection's reply timeout, so a quiet history
        returns [] rather than raising a timeout.
        """
        key = self.keys.history(execution_id)
        block_ms = self._block_ms(block_s)
        # The record's start first, in the same round trip (see history).
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.execution(execution_id), "start")
        pipe.xread({key: f"0-{after}"}, count=count, block=block_ms)
        start, reply = pipe.execute(raise_on_error=False)
        if isinstance(start, Exception):
            raise start
        if isinstance(reply, redis.ResponseError) and _wrong_type(reply):
            # A history written before histories were streams cannot be waited on: it
            # is read again after a short pause (such executions predate the upgrade).
            events = self._list_history(key, after, count, start)
            if not events:
                time.sleep(min(block_s, 0.1))
            return events
        if isinstance(reply, Exception):
            raise reply
        if not reply:
            return []
        return _history_events(reply[0][1], start)

    def wait_newest_event(
        self, execution_id: str, after: int, block_s: float, count: int
    ) -> tuple[int, str | None]:
        """Like :meth:`wait_history`, for a caller waiting for the execution's end: the id
        and type of the last of up to ``count`` events above ``after`` (the end event is
        the last one its commit appends), decoding none of the others; ``(after, None)``
        if none came within ``block_s`` seconds."""
        key = self.keys.history(execution_id)
        try:
            reply = self.client.xread(
                {key: f"0-{after}"}, count=count, block=self._block_ms(block_s)
            )
        except redis.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            events = self.wait_history(execution_id, after, block_s, count)  # a LIST
            return (events[-1]["id"], events[-1].get("type")) if events else (after, None)
        if not reply:
            return after, None
        entry_id, fields = reply[0][1][-1]
        return int(entry_id.partition("-")[2]), history_codec.event_type(fields)

    def _block_ms(self, block_s: float) -> int:
        """An ``XREAD BLOCK`` of ``block_s`` seconds in milliseconds, capped below the
        connection's reply timeout (a quiet history returns nothing, never a timeout)."""
        socket_timeout = connection_options(self.client).get("socket_timeout")
        if socket_timeout:
            block_s = min(block_s, socket_timeout / 2)
        return max(1, int(block_s * 1000))

    def history_cursor(self, execution_id: str) -> tuple[int, str | None]:
        """``(history length, execution status)`` in one round trip, the length read
        first: an execution RUNNING then appends its end event past that length."""
        key = self.keys.history(execution_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(key)
        pipe.hget(self.keys.execution(execution_id), "status")
        length, status = pipe.execute(raise_on_error=False)
        if isinstance(status, Exception):
            raise status
        if isinstance(length, redis.ResponseError) and _wrong_type(length):
            length = self.client.llen(key)  # written before histories were streams
        elif isinstance(length, Exception):
            raise length
        return int(length), status

    def _list_history(
        self, key: str, after: int, count: int | None, start: str | None
    ) -> list[dict[str, Any]]:
        """History events above ``after`` from a LIST, how histories were stored before
        they became streams (executions started before the upgrade): JSON objects, and
        the compact form after them (the scripts append either form's text as it is)."""
        stop = -1 if count is None else after + count - 1
        base = history_codec.base_ms(start)
        events = []
        for index, item in enumerate(self.client.lrange(key, after, stop), after + 1):
            event = history_codec.decode_text(item, base)
            if event is None:
                return []
            event["id"] = index
            events.append(event)
        return events

    def steps(self, execution_id: str) -> dict[str, str]:
        """The raw step hash of an execution (decode it with :mod:`.records`)."""
        return self.client.hgetall(self.keys.steps(execution_id))

    # -- executions -------------------------------------------------------------------

    def ping(self) -> bool:
        """Whether the server answers (raises an outage error if it does not)."""
        return bool(self.client.ping())

    def execution_exists(self, execution_id: str) -> bool:
        """Whether the execution's record exists (not expired)."""
        return bool(self.client.exists(self.keys.execution(execution_id)))

    def execution_status(self, execution_id: str) -> str | None:
        """The execution's status (``RUNNING``, ``SUCCEEDED``...; None if unknown)."""
        return self.client.hget(self.keys.execution(execution_id), "status")

    def execution_statuses(self, execution_ids: list[str]) -> list[str | None]:
        """The statuses of several executions, in one round trip."""
        if not execution_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for execution_id in execution_ids:
            pipe.hget(self.keys.execution(execution_id), "status")
        return list(pipe.execute())

    def execution_records(
        self, execution_ids: list[str], fields: tuple[str, ...]
    ) -> list[dict[str, str | None]]:
        """``fields`` of several execution records, in one round trip."""
        if not execution_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for execution_id in execution_ids:
            pipe.hmget(self.keys.execution(execution_id), list(fields))
        return [dict(zip(fields, values, strict=True)) for values in pipe.execute()]

    def execution_summaries(
        self, execution_ids: list[str]
    ) -> list[tuple[dict[str, str], dict[str, str]] | None]:
        """``(record, raw step hash)`` of several executions, in one round trip (None
        for one whose record expired): what describing each of them takes."""
        if not execution_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for execution_id in execution_ids:
            pipe.hgetall(self.keys.execution(execution_id))
            pipe.hgetall(self.keys.steps(execution_id))
        replies = pipe.execute()
        return [
            (record, steps) if record else None
            for record, steps in zip(replies[::2], replies[1::2], strict=True)
        ]

    def execution_meta(self, execution_id: str) -> tuple[str, str, str, str, str | None] | None:
        """``(name, workflow, start, def_hash, priority)`` of an execution (None if
        unknown; priority None for one started before priorities were recorded)."""
        name, workflow, start, def_hash, priority = self.client.hmget(
            self.keys.execution(execution_id),
            ["name", "workflow", "start", "def_hash", "priority"],
        )
        if name is None:
            return None
        # Written together when the execution starts, so present together.
        return name, workflow or "", start or "0", def_hash or "", priority

    def execution_input_text(self, execution_id: str) -> str | None:
        """The execution's input, JSON text."""
        return self.client.hget(self.keys.execution(execution_id), "input")

    def execution_input_hash(self, execution_id: str) -> str | None:
        """The hash of the input the execution started with (idempotent starts)."""
        return self.client.hget(self.keys.execution(execution_id), "input_hash")

    def execution_def_hash(self, execution_id: str) -> str | None:
        """The content hash of the execution's definition."""
        return self.client.hget(self.keys.execution(execution_id), "def_hash")

    def execution_redrives(self, execution_id: str) -> int:
        """How many times the execution was redriven."""
        return int(self.client.hget(self.keys.execution(execution_id), "redrives") or 0)

    def definition_text(self, execution_id: str, def_hash: str) -> str | None:
        """The definition (canonical ASL JSON, by content hash) an execution runs, from
        its partition's copy (None if expired)."""
        p = self.keys.partition_of(execution_id)
        return self.client.get(self.keys.definition(p, def_hash))

    def _newest_first(self, indexes: list[str], start: int, count: int) -> list[str]:
        """Members newest (highest score) first, from position ``start`` of the merge of
        ``indexes`` (one per partition; ties in member order, as ZREVRANGE has them)."""
        if len(indexes) == 1:
            return list(self.client.zrevrange(indexes[0], start, start + count - 1))
        # Each partition's first start + count hold the merged page: the cost of a page
        # grows with its position times the partitions (a cursor of positions per
        # partition would not; the listings' cursors are single positions today).
        pipe = self.client.pipeline(transaction=False)
        for index in indexes:
            pipe.zrevrange(index, 0, start + count - 1, withscores=True)
        merged = heapq.merge(
            *pipe.execute(), key=lambda entry: (float(entry[1]), entry[0]), reverse=True
        )
        return [member for member, _ in itertools.islice(merged, start, start + count)]

    def list_execution_page(
        self,
        positions: tuple[int, ...],
        count: int,
        *,
        status: str | None = None,
        workflow: str | None = None,
    ) -> list[tuple[int, str]]:
        """``(partition, execution id)`` newest first: the next ``count`` of the merge of
        the listing indexes of ``status`` and ``workflow`` (None: any; see
        ``Keys.executions_index``), each partition's from its position in ``positions``.
        One round trip of a page per partition, wherever the page is."""
        keys = self.keys
        if keys.partitions == 1:
            index = keys.executions_index(0, status, workflow)
            start = positions[0]
            return [(0, m) for m in self.client.zrevrange(index, start, start + count - 1)]
        pipe = self.client.pipeline(transaction=False)
        for p in keys.all_partitions():
            start = positions[p]
            index = keys.executions_index(p, status, workflow)
            pipe.zrevrange(index, start, start + count - 1, withscores=True)
        merged = heapq.merge(
            *(
                [(float(score), member, p) for member, score in entries]
                for p, entries in enumerate(pipe.execute())
            ),
            reverse=True,
        )
        return [(p, member) for _, member, p in itertools.islice(merged, count)]

    def execution_index_size(
        self, *, status: str | None = None, workflow: str | None = None
    ) -> int:
        """How many executions that listing index holds (expired ones included)."""
        pipe = self.client.pipeline(transaction=False)
        for p in self.keys.all_partitions():
            pipe.zcard(self.keys.executions_index(p, status, workflow))
        return sum(int(n) for n in pipe.execute())

    def forget_executions(self, *execution_ids: str, workflow: str | None = None) -> list[bool]:
        """Drop ids whose records expired from the listing indexes (those of ``workflow``
        too, when given: an expired record no longer says its workflow), each unless its
        record exists again (the name started anew); whether each was dropped. One script
        call per id, pipelined."""
        if not execution_ids:
            return []
        keys = self.keys
        calls = []
        for execution_id in execution_ids:
            indexes = keys.listing_indexes(keys.partition_of(execution_id), workflow)
            calls.append((self._forget, [keys.execution(execution_id), *indexes], [execution_id]))
        return [bool(dropped) for dropped in self._pipelined_scripts(calls)]

    def history_length(self, execution_id: str) -> int:
        """How many history events the execution has (the next event's id minus one)."""
        key = self.keys.history(execution_id)
        try:
            return int(self.client.xlen(key))
        except redis.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            return int(self.client.llen(key))  # written before histories were streams

    # -- steps ------------------------------------------------------------------------

    def step_field(self, execution_id: str, field: str) -> str | None:
        """One field of the execution's step hash (a record, a status, a counter)."""
        return self.client.hget(self.keys.steps(execution_id), field)

    def step_fields(self, execution_id: str, fields: list[str]) -> list[str | None]:
        """Several fields of the execution's step hash, in one round trip."""
        if not fields:
            return []
        return list(self.client.hmget(self.keys.steps(execution_id), fields))

    def step_state(self, execution_id: str, step_key: str) -> tuple[str | None, str | None]:
        """A step's stored status (``RUNNING:<claim>`` included) and its record text."""
        status, record = self.client.hmget(
            self.keys.steps(execution_id), [status_field(step_key), step_key]
        )
        return status, record

    def running_claims(
        self, steps: list[tuple[str, str, list[str]]]
    ) -> list[tuple[str | None, list[str | None]]]:
        """For each ``(execution id, step key, its containers)``: the execution's status
        and the stored statuses of the step and its containers, in that order (a worker
        checks that the steps it runs are still its own: one pipelined round trip, two
        reads per step)."""
        pipe = self.client.pipeline(transaction=False)
        for execution_id, step_key, containers in steps:
            pipe.hget(self.keys.execution(execution_id), "status")
            fields = [status_field(step_key), *(status_field(c) for c in containers)]
            pipe.hmget(self.keys.steps(execution_id), fields)
        replies = pipe.execute() if steps else []
        return [(replies[i], list(replies[i + 1])) for i in range(0, len(replies), 2)]

    def step_statuses(self, execution_id: str) -> dict[str, str]:
        """Step key -> status (without claim token) of the execution's active steps."""
        return step_statuses(self.steps(execution_id))

    def task_token_target(self, execution_id: str, token: str) -> tuple[str, int] | None:
        """``(step key, attempt)`` a live task token answers (None if spent or unknown)."""
        raw = self.client.hget(self.keys.task_tokens(execution_id), token)
        if raw is None:
            return None
        step_key, attempt = json.loads(raw)
        return str(step_key), int(attempt)

    # -- leases and timers ------------------------------------------------------------

    def _lease_partitions(self, members: list[str]) -> dict[int, list[str]]:
        """Lease (and outbox) members by the partition of the execution each names."""
        if self.keys.partitions == 1:
            return {0: members} if members else {}
        parts: dict[int, list[str]] = {}
        for member in members:
            parts.setdefault(self.lease_partition(member), []).append(member)
        return parts

    def lease_partition(self, member: str) -> int:
        """The partition of a lease (or outbox) member: its execution's."""
        if self.keys.partitions == 1:
            return 0
        return self.keys.partition_of(parse_lease_member(member)[0])

    def _timer_partition(self, member: str) -> int:
        return self.keys.partition_of(parse_timer_member(member)[1])

    def _due(
        self, key_of: Callable[[int], str], now: float, count: int
    ) -> list[tuple[int, str, float]]:
        """Up to ``count`` members due by ``now`` in the sorted sets ``key_of(p)`` of every
        partition, earliest first: (partition, member, due time). One round trip."""
        pipe = self.client.pipeline(transaction=False)
        for p in self.keys.all_partitions():
            pipe.zrangebyscore(key_of(p), "-inf", now, 0, count, withscores=True)
        found = [
            (p, member, float(score))
            for p, entries in enumerate(pipe.execute())
            for member, score in entries
        ]
        if self.keys.partitions > 1:
            found.sort(key=lambda entry: entry[2])
        return found[:count]

    def renew_leases(self, members: list[str], until: float) -> None:
        """Push back the leases that still exist (a finished step's is gone) to ``until``."""
        parts = self._lease_partitions(members)
        if len(parts) == 1:
            ((p, chunk),) = parts.items()
            self.client.zadd(self.keys.leases(p), dict.fromkeys(chunk, until), xx=True)
        elif parts:
            pipe = self.client.pipeline(transaction=False)
            for p, chunk in parts.items():
                pipe.zadd(self.keys.leases(p), dict.fromkeys(chunk, until), xx=True)
            pipe.execute()

    def due_leases(self, now: float, count: int) -> list[str]:
        """Up to ``count`` lease members that lapsed by ``now``."""
        return [member for _, member, _ in self._due(self.keys.leases, now, count)]

    def defer_lease(self, member: str, until: float) -> None:
        """Look at a lease again at ``until`` (recovering it failed)."""
        p = self.lease_partition(member)
        self.client.zadd(self.keys.leases(p), {member: until})

    def drop_lease(self, member: str) -> None:
        """Forget a lease whose step moved on."""
        p = self.lease_partition(member)
        self.client.zrem(self.keys.leases(p), member)

    def reschedule_step(
        self, execution_id: str, step_key: str, status: str, lease_until: float
    ) -> bool:
        """Mark a step whose worker (or message) was lost SCHEDULED again, in the outbox
        until ``lease_until`` (its running lease gone), if its execution still runs and
        its status is still ``status``; whether it was."""
        steps_key, field = self.keys.steps(execution_id), status_field(step_key)
        member = lease_member(execution_id, step_key)
        p = self.keys.partition_of(execution_id)
        write = Write()
        write.guard_field(self.keys.execution(execution_id), "status", "RUNNING")
        write.guard_field(steps_key, field, status)
        write.op("hset", steps_key, field, "SCHEDULED")
        write.op("zrem", self.keys.leases(p), member)
        write.op("zadd", self.keys.outbox(p), repr(lease_until), member)
        return self.commit(write)

    #: Outbox members one ZADD marks at most (a pipeline sends several: one round trip).
    MARK_CHUNK = 500

    def mark_published(self, members: list[str], until: float) -> None:
        """Mark outbox members published: due again at ``until`` (a broker that lost the
        message), not at the lease. XX: a step claimed meanwhile stays out of the outbox.
        Plain ZADDs on each partition's outbox, whatever executions the members name."""
        parts = self._lease_partitions(members)
        if len(parts) == 1 and len(members) <= self.MARK_CHUNK:
            ((p, chunk),) = parts.items()
            self.client.zadd(self.keys.outbox(p), dict.fromkeys(chunk, until), xx=True)
            return
        if not parts:
            return
        pipe = self.client.pipeline(transaction=False)
        for p, part in parts.items():
            for start in range(0, len(part), self.MARK_CHUNK):
                chunk = part[start : start + self.MARK_CHUNK]
                pipe.zadd(self.keys.outbox(p), dict.fromkeys(chunk, until), xx=True)
        pipe.execute()

    def due_outbox(self, now: float, count: int) -> list[str]:
        """Up to ``count`` outbox members due by ``now`` (never published, or lost)."""
        return [member for _, member, _ in self._due(self.keys.outbox, now, count)]

    def defer_outbox(self, member: str, until: float) -> None:
        """Look at an outbox entry again at ``until`` (sending it again failed)."""
        p = self.lease_partition(member)
        self.client.zadd(self.keys.outbox(p), {member: until})

    def drop_outbox(self, member: str) -> None:
        """Forget an outbox entry whose step moved on (claimed, stopped, cancelled)."""
        p = self.lease_partition(member)
        self.client.zrem(self.keys.outbox(p), member)

    def due_timers(self, now: float, count: int) -> list[str]:
        """Up to ``count`` timer members due by ``now``."""
        return [member for member, _ in self.due_timer_entries(now, count)]

    def due_timer_entries(self, now: float, count: int) -> list[tuple[str, float]]:
        """Up to ``count`` timers due by ``now``: (member, due time), earliest first.

        A timer is fired from its execution's partition (the firing commit guards it
        there). One found in another partition's set is moved to its own first: a
        child's end adds its parent's timer to the child's partition (commit.lua's
        ``notify``, in the child's slot)."""
        found = self._due(self.keys.timers, now, count)
        if self.keys.partitions > 1:
            moves = [(p, m, due) for p, m, due in found if self._timer_partition(m) != p]
            if moves:
                # Added home, then taken out of the foreign set, in two round trips (the
                # sets are in two slots, and a cluster's pipeline orders nothing across
                # nodes): a beat that dies between leaves the timer in both, found in
                # both next time and moved again, never lost; a timer fired from home
                # that is then moved again finds its step moved on (firing is guarded).
                pipe = self.client.pipeline(transaction=False)
                for _, member, due in moves:
                    pipe.zadd(self.keys.timers(self._timer_partition(member)), {member: due})
                pipe.execute()
                pipe = self.client.pipeline(transaction=False)
                for p, member, _ in moves:
                    pipe.zrem(self.keys.timers(p), member)
                pipe.execute()
            # A timer left in two sets (above) is fired once.
            unique: dict[str, tuple[int, str, float]] = {}
            for entry in found:
                unique.setdefault(entry[1], entry)
            found = list(unique.values())
        return [(member, due) for _, member, due in found]

    def defer_timer(self, member: str, until: float) -> None:
        """Fire a timer again at ``until`` (firing it failed)."""
        self.client.zadd(self.keys.timers(self._timer_partition(member)), {member: until})

    def drop_timers(self, *members: str) -> None:
        """Forget timers that no longer apply."""
        parts: dict[int, list[str]] = {}
        for member in members:
            parts.setdefault(self._timer_partition(member), []).append(member)
        for p, part in parts.items():
            self.client.zrem(self.keys.timers(p), *part)

    def push_back_timer(self, member: str, due: float) -> bool:
        """Move a pending timer to ``due``; False if it is not pending (fired or gone)."""
        key = self.keys.timers(self._timer_partition(member))
        if self.client.zadd(key, {member: due}, xx=True, ch=True):
            return True
        return self.client.zscore(key, member) is not None

    def acquire_tick_lock(self, owner: str, ttl_ms: int) -> bool:
        """Take the timer loop's lock for ``owner`` (True too if ``owner`` holds it)."""
        if self.client.set(self.keys.tick_lock, owner, nx=True, px=ttl_ms):
            return True
        return self.client.get(self.keys.tick_lock) == owner

    def extend_tick_lock(self, ttl_ms: int) -> None:
        """Keep the timer loop's lock ``ttl_ms`` longer."""
        self.client.pexpire(self.keys.tick_lock, ttl_ms)

    def release_tick_lock(self, owner: str) -> None:
        """Release the timer loop's lock if ``owner`` still holds it."""
        if self.client.get(self.keys.tick_lock) == owner:
            self.client.delete(self.keys.tick_lock)

    # -- global activity limits (orchestrator/engine/limits.py, permits.lua) ----------

    def activity_limits(self) -> dict[str, str]:
        """The advertised limits of each limited activity: name -> JSON."""
        return dict(self.client.hgetall(self.keys.activity_limits))

    def advertise_limits(self, limits: dict[str, str | None]) -> None:
        """Record these activities' limits (JSON), or drop them (None)."""
        kept = {name: text for name, text in limits.items() if text is not None}
        dropped = [name for name, text in limits.items() if text is None]
        pipe = self.client.pipeline(transaction=False)
        if kept:
            pipe.hset(self.keys.activity_limits, mapping=kept)  # type: ignore[arg-type]
        if dropped:
            pipe.hdel(self.keys.activity_limits, *dropped)
        pipe.execute()

    #: Due permits, and due grant records, a recovery looks at per activity and tick.
    RECOVER_BATCH = 500

    def _limit_op(
        self, op: str, activity: str, limit: int, expiry: float, now: float, args: list[str]
    ) -> tuple[list[bool], list[str]]:
        """permits.lua on ``activity``'s keys alone (one slot): the acquire results and
        the members it granted a permit (each with a grant record, in no outbox yet)."""
        keys = self.keys
        raw = self.lane.run(
            self._limits,
            [
                keys.activity_permits(activity),
                keys.activity_waiting(activity),
                keys.activity_granted(activity),
            ],
            [op, limit, repr(expiry), repr(now), *args],
        )
        return [bool(r) for r in raw[0]], [str(m) for m in raw[1]]

    def _outbox_moves(self, drop: list[str], add: list[str], due: float, nx: bool = False) -> None:
        """Take ``drop`` out of their partitions' outboxes and put ``add`` in, due at
        ``due`` (``nx``: an entry there keeps its time): one pipelined round trip, one
        command per partition and kind (each on one slot)."""
        if not drop and not add:
            return
        pipe = self.client.pipeline(transaction=False)
        for p, part in self._lease_partitions(drop).items():
            pipe.zrem(self.keys.outbox(p), *part)
        for p, part in self._lease_partitions(add).items():
            pipe.zadd(self.keys.outbox(p), dict.fromkeys(part, due), nx=nx)
        pipe.execute()

    def _permit_scores(self, activity: str, members: list[str]) -> list[float | None]:
        """Each member's permit score (None: it holds none), one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.zscore(self.keys.activity_permits(activity), member)
        return list(pipe.execute())

    def steps_live(self, members: list[str]) -> list[bool]:
        """Whether each step (lease member) is running or dispatched: in its partition's
        leases or outbox. One pipelined round trip (each ZSCORE on one slot)."""
        if not members:
            return []
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            p = self.lease_partition(member)
            pipe.zscore(self.keys.leases(p), member)
            pipe.zscore(self.keys.outbox(p), member)
        found = pipe.execute()
        return [
            found[2 * i] is not None or found[2 * i + 1] is not None for i in range(len(members))
        ]

    def acquire_permits(
        self, activity: str, limit: int, members: list[str], expiry: float, now: float
    ) -> tuple[list[bool], list[str]]:
        """For each step (lease member) of ``activity``: whether it holds one of its
        ``limit`` permits (else it waits, out of the outbox); and the other waiting steps
        this call handed a free permit to (in the outbox, to publish).

        Two calls: the activity's (the decision), then the steps' partitions' (a waiting
        step out of its outbox, a granted one in). A release granting a step of ours
        between them has its outbox entry dropped by our second call: its grant record
        brings it back (:meth:`recover_permits`)."""
        held, granted = self._limit_op("acquire", activity, limit, expiry, now, members)
        waiting = [member for member, ok in zip(members, held, strict=True) if not ok]
        self._outbox_moves(waiting, granted, expiry)
        return held, granted

    @staticmethod
    def _release_args(
        members: list[str], scores: list[float | None], live: list[bool]
    ) -> list[str]:
        """permits.lua's (member, score read, live) triples; no score: it held none."""
        args: list[str] = []
        for member, score, alive in zip(members, scores, live, strict=True):
            args += [member, "" if score is None else repr(score), "1" if alive else "0"]
        return args

    def release_permits(
        self,
        activity: str,
        limit: int,
        members: list[str],
        expiry: float,
        now: float,
        place: bool = True,
    ) -> list[str]:
        """Give these steps' permits back (but a step dispatched again, in the leases or
        the outbox, keeps its own); the waiting steps handed one (in the outbox; not
        ``place``: left to the caller, who publishes them, their grant records covering
        a crash before it does).

        The permits' scores are read before the steps' liveness, and a permit goes back
        only if its score is still the one read: a stale "not running" cannot drop a
        permit an acquire renewed since (a new expiry)."""
        scores = self._permit_scores(activity, members)
        held = [m for m, score in zip(members, scores, strict=True) if score is not None]
        alive = dict(zip(held, self.steps_live(held), strict=True))
        live = [alive.get(m, False) for m in members]
        args = self._release_args(members, scores, live)
        _, granted = self._limit_op("release", activity, limit, expiry, now, args)
        if place:
            self._outbox_moves([], granted, expiry)
        return granted

    def recover_permits(
        self, activity: str, limit: int, expiry: float, now: float, place: bool = True
    ) -> list[str]:
        """Take back the permits due by ``now`` whose steps are neither running (a lease)
        nor dispatched (the outbox), push back the others; the waiting steps handed one
        (``place``: as :meth:`release_permits`).

        Grant records due by ``now`` whose steps are in neither (their caller died
        before the outbox ZADD, or an acquire's ZREM raced the grant) are put back in
        their outbox first (NX, due now: the reconciler publishes them, or drops one
        that finished), so their permits are kept. So is, before its permit goes, every
        other step whose permit is taken back: one still SCHEDULED lost its outbox entry
        in a way the grant records did not see (an acquire's ZREM stalled past its
        grant's record), and the reconciler publishes it, to take a permit anew; one
        that finished (the common case, rare itself: its worker died before the
        release) is dropped there. At most :attr:`RECOVER_BATCH` of each per call;
        nothing but one round trip when nothing is due."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        batch = self.RECOVER_BATCH
        pipe.zrangebyscore(keys.activity_permits(activity), "-inf", now, 0, batch, True)
        pipe.zrangebyscore(keys.activity_granted(activity), "-inf", now, 0, batch, True)
        pipe.zcard(keys.activity_permits(activity))
        pipe.exists(keys.activity_waiting(activity))
        due_permits, due_grants, in_use, waiting = pipe.execute()
        if not due_permits and not due_grants and (not waiting or in_use >= limit):
            return []
        members = list(dict.fromkeys([m for m, _ in due_permits] + [m for m, _ in due_grants]))
        alive = dict(zip(members, self.steps_live(members), strict=True))
        lost = [m for m, _ in due_grants if not alive[m]]
        gone = [m for m, _ in due_permits if not alive[m]]
        self._outbox_moves([], list(dict.fromkeys(lost + gone)), now, nx=True)
        alive.update(dict.fromkeys(lost, True))
        args = [str(len(due_permits))]
        args += self._release_args(
            [m for m, _ in due_permits],
            [score for _, score in due_permits],
            [alive[m] for m, _ in due_permits],
        )
        for member, score in due_grants:
            args += [member, repr(score)]
        _, granted = self._limit_op("recover", activity, limit, expiry, now, args)
        if place:
            self._outbox_moves([], granted, expiry)
        return granted

    def waiting_step(
        self, execution_id: str, step_key: str, outbox_due: float | None = None
    ) -> tuple[str | None, str | None, str | None, tuple[str, str, str, str, str | None] | None]:
        """What publishing a step that waited for a limit reads, in one round trip: the
        step's status and record, its execution's status and :meth:`execution_meta`.

        ``outbox_due``: first put the step in its outbox, due then (a step handed a
        permit by a call that left that to its publisher: one round trip less)."""
        pipe = self.client.pipeline(transaction=False)
        if outbox_due is not None:
            p = self.keys.partition_of(execution_id)
            pipe.zadd(self.keys.outbox(p), {lease_member(execution_id, step_key): outbox_due})
        pipe.hmget(self.keys.steps(execution_id), [status_field(step_key), step_key])
        pipe.hmget(
            self.keys.execution(execution_id),
            ["status", "name", "workflow", "start", "def_hash", "priority"],
        )
        (status, record), (execution_status, name, workflow, start, def_hash, priority) = (
            pipe.execute()[-2:]
        )
        meta = None
        if name is not None:
            meta = (name, workflow or "", start or "0", def_hash or "", priority)
        return status, record, execution_status, meta

    def permits_in_use(self, activities: list[str]) -> list[int]:
        """The number of permits each activity's steps hold (ZCARD), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for activity in activities:
            pipe.zcard(self.keys.activity_permits(activity))
        return [int(n) for n in pipe.execute()]

    def take_rate_token(
        self,
        activity: str,
        rate: float,
        capacity: float,
        now: float,
        member: str,
        timer: str,
        lease_seconds: float,
    ) -> float:
        """Take a token of ``activity``'s bucket for a step: the seconds it must wait
        (0: publish now; else its ``timer`` is set that much later, and its outbox entry
        moved past it, in a MULTI on its partition after the bucket's call).

        A crash between the two calls costs one token: the step stays in its outbox,
        due at the lease, and the reconciler publishes it then, to take another."""
        raw = self.lane.run(
            self._limits,
            [self.keys.activity_rate(activity)],
            ["rate", repr(rate), repr(capacity), repr(now)],
        )
        wait = float(raw)
        if wait > 0:
            p = self.lease_partition(member)
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.keys.timers(p), {timer: now + wait})
            pipe.zadd(self.keys.outbox(p), {member: now + wait + lease_seconds}, xx=True)
            pipe.execute()
        return wait

    # -- schedules (orchestrator/engine/schedules.py, schedules.lua) -------------------

    def _schedule_keys(self, name: str) -> list[str]:
        keys = self.keys
        return [
            keys.schedule(name),
            keys.schedule_log(name),
            keys.schedules_due,
            keys.schedule_names,
        ]

    def create_schedule(
        self, name: str, fields: dict[str, str], created: float, look_at: float | None
    ) -> bool:
        """Create schedule ``name`` (version 1); False if it exists (nothing written)."""
        pairs = [item for field, value in fields.items() for item in (field, value)]
        at = "" if look_at is None else repr(look_at)
        args = ["create", name, repr(created), at, *pairs]
        return bool(self.lane.run(self._schedules, self._schedule_keys(name), args))

    def update_schedule(
        self,
        name: str,
        version: str,
        fields: dict[str, str],
        look_at: float | None,
        events: list[str],
        keep: int,
    ) -> bool:
        """Set ``fields`` ("" deletes one), when the timer process looks at the schedule
        next (None: not at all) and append ``events`` to its log (the newest ``keep``
        kept), if its version is still ``version``; False (nothing written) otherwise."""
        pairs = [item for field, value in fields.items() for item in (field, value)]
        at = "" if look_at is None else repr(look_at)
        args = ["update", name, version, at, keep, len(fields), *pairs, *events]
        return bool(self.lane.run(self._schedules, self._schedule_keys(name), args))

    def delete_schedule(self, name: str) -> bool:
        """Delete schedule ``name`` and its log; False if there was none."""
        return bool(self.lane.run(self._schedules, self._schedule_keys(name), ["delete", name]))

    def schedule(self, name: str) -> dict[str, str]:
        """Schedule ``name``'s hash ({} if none)."""
        return dict(self.client.hgetall(self.keys.schedule(name)))

    def schedule_records(self, names: list[str]) -> list[dict[str, str]]:
        """The hashes of these schedules, in one round trip ({} for one that is gone)."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.schedule(name))
        return [dict(raw) for raw in pipe.execute()]

    def schedule_log(self, name: str, count: int) -> list[str]:
        """Schedule ``name``'s ``count`` latest log entries, newest first."""
        return list(self.client.lrange(self.keys.schedule_log(name), 0, count - 1))

    def schedule_names(self, offset: int = 0, count: int = 1000) -> list[str]:
        """Schedule names by creation time."""
        return list(self.client.zrange(self.keys.schedule_names, offset, offset + count - 1))

    def due_schedules(self, now: float, limit: int) -> list[str]:
        """The names of the schedules to look at by ``now``, the most overdue first."""
        return list(self.client.zrangebyscore(self.keys.schedules_due, "-inf", now, 0, limit))

    def schedule_look_at(self, name: str) -> float | None:
        """When the timer process looks at schedule ``name`` next (None: never)."""
        return self.client.zscore(self.keys.schedules_due, name)

    def migrate_schedules(self, count: int = MIGRATE_SCHEDULES_PAGE) -> int:
        """Move up to ``count`` schedules from the keys earlier versions wrote (no hash
        tag: four slots per call) to their keys now (one slot); return how many were
        handled, 0 once none is left. Idempotent: what another process moved meanwhile
        is skipped; a schedule created under the new keys since keeps them (the old one
        of its name is dropped, and logged). Where nothing is left this costs one read
        of one key, so it is safe on a cluster, where old keys never were."""
        keys = self.keys
        names = list(self.client.zrange(keys.legacy_schedule_names, 0, count - 1))
        if not names:
            return 0
        calls: list[tuple[list[str], list[Any]]] = [
            (
                [
                    keys.legacy_schedule(name),
                    keys.legacy_schedule_log(name),
                    keys.legacy_schedules_due,
                    keys.legacy_schedule_names,
                    *self._schedule_keys(name),
                ],
                [name],
            )
            for name in names
        ]
        outcomes = self.lane.run_many(self._migrate_schedule, calls)
        for name, outcome in zip(names, outcomes, strict=True):
            if outcome == 2:
                logger.warning(
                    "schedule %s existed under both the old and the new keys: the new one "
                    "is kept, the old one dropped",
                    name,
                )
        if moved := outcomes.count(1):
            logger.info("moved %d schedules to their hash-tagged keys", moved)
        return len(names)

    def ensure_schedules_migrated(self) -> None:
        """Move every schedule left under the old keys (:meth:`migrate_schedules`, a page
        at a time), once per store: after that, one read per process, never again."""
        if self._schedules_migrated:
            return
        while self.migrate_schedules():
            pass
        self._schedules_migrated = True

    # -- activities, dead letters, housekeeping ---------------------------------------

    def advertised_activities(self) -> dict[str, str]:
        """Activity names that workers advertised, each with its queue ("" for the
        default queue, and for a name advertised without one)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(self.keys.activities)
        pipe.hgetall(self.keys.activity_queues)
        names, queues = pipe.execute()
        return {name: queues.get(name, "") for name in names}

    def advertise_activities(self, queues: dict[str, str]) -> None:
        """Record the activities this process's workers run, with their queues ("" for
        the default one). The queues are written first: whoever sees a name sees its
        queue. The last worker to advertise an activity sets its queue."""
        if queues:
            mapping: dict[str | bytes, bytes | float | int | str] = {
                name: queue for name, queue in queues.items()
            }
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.keys.activity_queues, mapping=mapping)
            pipe.sadd(self.keys.activities, *queues)
            pipe.execute()

    def advertised_bindings(self) -> dict[str, str]:
        """Task Resources bound to activities by the workers importing them (Resource key
        -> activity name)."""
        return self.client.hgetall(self.keys.resource_bindings)

    def advertise_bindings(self, bindings: dict[str, str]) -> None:
        """Record the Resources this process's activities are bound to (the last worker to
        advertise a Resource sets its activity)."""
        if bindings:
            mapping: dict[str | bytes, bytes | float | int | str] = {
                key: name for key, name in bindings.items()
            }
            self.client.hset(self.keys.resource_bindings, mapping=mapping)

    def register_worker(self, node: str, queues: list[str], until: float) -> None:
        """Record that worker ``node`` consumes ``queues`` until ``until`` (epoch s) at
        least; entries of workers that stopped refreshing a while ago are pruned."""
        entries = self.client.hgetall(self.keys.workers)
        dead = [
            name
            for name, text in entries.items()
            if name != node and _worker_until(text) < until - WORKER_PRUNE_AFTER_S
        ]
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.workers, node, json.dumps({"queues": sorted(queues), "until": until}))
        if dead:
            pipe.hdel(self.keys.workers, *dead)
        pipe.execute()

    def drop_worker(self, node: str) -> None:
        """Forget worker ``node`` (it stopped)."""
        self.client.hdel(self.keys.workers, node)

    def live_workers(self, now: float) -> dict[str, list[str]]:
        """Node name -> consumed queues of the workers whose entry is still fresh."""
        live = {}
        for node, text in self.client.hgetall(self.keys.workers).items():
            try:
                entry = json.loads(text)
                if float(entry["until"]) > now:
                    live[node] = [str(queue) for queue in entry["queues"]]
            except (ValueError, KeyError, TypeError):
                continue
        return live

    def metrics_reads(self) -> tuple[dict[str, str], int, int]:
        """What the cluster-wide metrics read (orchestrator/engine/metrics.py), in one
        round trip: the execution counters (``<kind>|<workflow>`` -> count: a field per
        workflow and kind), the number of pending timers and of dead letters (ZCARD)."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        for p in keys.all_partitions():
            pipe.hgetall(keys.execution_counters(p))
            pipe.zcard(keys.timers(p))
            pipe.zcard(keys.dead_letters(p))
        raw = pipe.execute()
        counters: dict[str, str] = {}
        for part in raw[0::3]:
            for name, value in part.items():
                counters[name] = str(int(counters.get(name, 0)) + int(value))
        return counters, sum(int(n) for n in raw[1::3]), sum(int(n) for n in raw[2::3])

    def dead_letter_ids(self, limit: int, start: int = 0) -> list[str]:
        """Up to ``limit`` dead-letter ids, newest first, from position ``start``."""
        indexes = [self.keys.dead_letters(p) for p in self.keys.all_partitions()]
        return self._newest_first(indexes, start, limit)

    def dead_letter_texts(self, letter_ids: list[str]) -> list[str | None]:
        """The JSON of several dead letters (None for an expired one)."""
        if not letter_ids:
            return []
        # GETs, not one MGET: letters are in different slots (in a Redis Cluster).
        pipe = self.client.pipeline(transaction=False)
        for letter_id in letter_ids:
            pipe.get(self.keys.dead_letter(letter_id))
        return list(pipe.execute())

    def dead_letter_text(self, letter_id: str) -> str | None:
        """The JSON of one dead letter (None if unknown)."""
        return self.client.get(self.keys.dead_letter(letter_id))

    def forget_dead_letters(self, *letter_ids: str) -> None:
        """Drop ids whose letters expired from the dead-letter index."""
        parts: dict[int, list[str]] = {}
        for letter_id in letter_ids:
            parts.setdefault(self.keys.partition_of(letter_id), []).append(letter_id)
        for p, part in parts.items():
            self.client.zrem(self.keys.dead_letters(p), *part)

    def add_dead_letter(self, letter_id: str, letter_text: str, now: float, ttl: int) -> None:
        """Record a dead letter (expiring after ``ttl`` seconds) and index it by time."""
        pipe = self.client.pipeline()
        pipe.set(self.keys.dead_letter(letter_id), letter_text, ex=ttl)
        pipe.zadd(self.keys.dead_letters(self.keys.partition_of(letter_id)), {letter_id: now})
        pipe.execute()

    def trim_dead_letters(self, most: int) -> int:
        """Keep at most ``most`` dead letters (the oldest go, over all partitions); how
        many were dropped.

        One round trip when nothing is over the limit; else two more: the oldest of each
        partition, then a script call per letter to drop, each touching its partition's
        index and that letter only (and dropping it only while it is still among the
        oldest beyond its partition's share of the limit).
        """
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        for p in keys.all_partitions():
            pipe.zcard(keys.dead_letters(p))
        sizes = [int(n) for n in pipe.execute()]
        over = sum(sizes) - max(most, 0)
        if over <= 0:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for p in keys.all_partitions():
            pipe.zrange(keys.dead_letters(p), 0, over - 1, withscores=True)
        oldest = heapq.merge(
            *(
                [(float(score), p, letter_id) for letter_id, score in entries]
                for p, entries in enumerate(pipe.execute())
            )
        )
        dropping: dict[int, list[str]] = {}
        for _, p, letter_id in itertools.islice(oldest, over):
            dropping.setdefault(p, []).append(letter_id)
        calls = [
            (self._trim, [keys.dead_letters(p), keys.dead_letter(letter_id)], [keep, letter_id])
            for p, letter_ids in dropping.items()
            for keep in [sizes[p] - len(letter_ids)]
            for letter_id in letter_ids
        ]
        return sum(int(dropped or 0) for dropped in self._pipelined_scripts(calls))

    # -- Distributed Map: Map Runs (orchestrator/engine/maprun.py) ----------------------

    def map_run(self, execution_id: str, container: str) -> dict[str, str]:
        """The Map Run record of ``container`` ({} if none): a bounded set of fields."""
        return dict(self.client.hgetall(self.keys.map_run(execution_id, container)))

    def map_run_containers(self, execution_id: str) -> list[str]:
        """The step keys of the execution's Distributed Maps that have a Map Run."""
        suffix = "|mr"
        members = self.client.smembers(self.keys.branch_hashes(execution_id))
        return sorted(m[: -len(suffix)] for m in members if m.endswith(suffix))

    def map_run_marks(
        self, execution_id: str, container: str, indexes: list[int]
    ) -> list[str | None]:
        """The stored status marks of children ``indexes`` (a page) of a Map Run."""
        if not indexes:
            return []
        key = self.keys.map_run_children(execution_id, container)
        return list(self.client.hmget(key, [str(i) for i in indexes]))

    def map_run_scan(
        self, execution_id: str, container: str, cursor: int, count: int
    ) -> tuple[int, dict[str, str]]:
        """A page of a Map Run's child marks (HSCAN): ``(next cursor, {index: mark})``."""
        key = self.keys.map_run_children(execution_id, container)
        next_cursor, page = self.client.hscan(key, cursor, count=count)
        return int(next_cursor), dict(page)

    # -- the state-machine registry (orchestrator/engine/registry.py) ------------------

    def machine_record(self, name: str) -> dict[str, str]:
        """A registered state machine's record ({} if none)."""
        return dict(self.client.hgetall(self.keys.machine(name)))

    def machine_fields(self, name: str, fields: list[str]) -> list[str | None]:
        """``fields`` of a registered state machine's record (None each if none)."""
        return list(self.client.hmget(self.keys.machine(name), fields))

    def machine_reads(self, name: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """``(record, versions, aliases)`` of a state machine, in one round trip (three
        {} if it is not registered): what a registry write is computed from."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.machine(name))
        pipe.hgetall(self.keys.machine_versions(name))
        pipe.hgetall(self.keys.machine_aliases(name))
        record, versions, aliases = pipe.execute()
        return dict(record), dict(versions), dict(aliases)

    def machine_version_text(self, name: str, version: int) -> str | None:
        """One published version's JSON (None if there is none)."""
        return self.client.hget(self.keys.machine_versions(name), str(version))

    def machine_alias_text(self, name: str, alias: str) -> str | None:
        """One alias's JSON (None if there is none)."""
        return self.client.hget(self.keys.machine_aliases(name), alias)

    def index_machine(self, name: str, registered: bool) -> None:
        """List the state machine ``name`` in ``{p}:machines`` (or not, if it is no longer
        ``registered``): after the write that changed it, in a call of its own."""
        if registered:
            self.client.zadd(self.keys.machines, {name: 0})
        else:
            self.client.zrem(self.keys.machines, name)

    def machine_names(self, after: str | None, count: int) -> list[str]:
        """Registered names in order, the first ``count`` after ``after`` (None: from the
        first)."""
        start = "-" if after is None else "(" + after
        return list(self.client.zrangebylex(self.keys.machines, start, "+", 0, count))

    def machine_records(self, names: list[str], fields: list[str]) -> list[list[str | None]]:
        """``fields`` of several state machines' records, in one round trip."""
        if not names:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self.keys.machine(name), fields)
        return [list(values) for values in pipe.execute()]

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix`` (tests and tools; never the live prefix)."""
        batch: list[str] = []
        for key in self.client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch.clear()
        if batch:
            self.client.delete(*batch)


_lock = threading.Lock()
_stores: dict[tuple[str, str, int], RedisStore] = {}


#: A store bound to the current thread or task by :func:`using_store` (an explicit
#: ``orchestrator.client.Orchestrator`` binds its own for the duration of each call).
_bound: ContextVar[RedisStore | None] = ContextVar("orchestrator_store", default=None)


def get_store(settings: Settings | None = None) -> RedisStore:
    """The store for ``settings``; without them, the store bound in this context by
    :func:`using_store`, else the one for the settings in force (one client per URL and
    prefix, shared)."""
    if settings is None:
        bound = _bound.get()
        if bound is not None:
            return bound
    settings = settings or get_settings()
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set: set it, or run inside orchestrator.testing.local_orchestrator()"
        )
    cache_key = (settings.redis_url, settings.key_prefix, settings.partitions)
    with _lock:
        store = _stores.get(cache_key)
        if store is None:
            store = RedisStore(
                redis_client(settings.redis_url, settings.redis_timeout_seconds, settings),
                settings.key_prefix,
                settings.partitions,
            )
            _stores[cache_key] = store
        return store


@contextlib.contextmanager
def using_store(store: RedisStore) -> Iterator[RedisStore]:
    """Make ``store`` the one :func:`get_store` returns in this context only (this thread
    or asyncio task); :func:`reset_stores` leaves it alone: its owner closes it."""
    token = _bound.set(store)
    try:
        yield store
    finally:
        _bound.reset(token)


def reset_stores() -> None:
    """Forget cached clients (after the settings changed, or a fork)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


#: A worker entry this long past its ``until`` is pruned by the next worker's refresh.
WORKER_PRUNE_AFTER_S = 3600.0


def _worker_until(text: str) -> float:
    """The ``until`` of a worker entry (0 for one that does not parse)."""
    try:
        return float(json.loads(text)["until"])
    except (ValueError, KeyError, TypeError):
        return 0.0
