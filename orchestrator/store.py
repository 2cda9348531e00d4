"""The Redis state store: the source of truth for executions, steps, history and timers.

Writes go through :meth:`RedisStore.commit`, which applies a :class:`Write` (guards and
operations) in one Lua call. Reads are plain Redis commands. The key schema is in
:mod:`orchestrator.keys`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from orchestrator.config import Settings, get_settings
from orchestrator.keys import Keys

_LUA_DIR = Path(__file__).parent


def dumps(value: Any) -> str:
    """Compact JSON, the one serialization of values stored or sent."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def redis_client(url: str) -> redis.Redis:
    """A redis-py client for ``url``; also accepts kombu's ``redis+socket://`` form."""
    parsed = urlparse(url)
    if parsed.scheme in ("redis+socket", "socket", "unix"):
        return redis.Redis(
            unix_socket_path=parsed.path, decode_responses=True, health_check_interval=30
        )
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


@dataclass
class Write:
    """One atomic transition: guards to re-check, then operations to apply.

    Keys are interned so that guards and operations refer to them by index (the Lua
    script receives them as KEYS, as Redis requires).
    """

    keys: list[str] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    ops: list[list[Any]] = field(default_factory=list)

    def _k(self, key: str) -> int:
        try:
            return self.keys.index(key) + 1
        except ValueError:
            self.keys.append(key)
            return len(self.keys)

    def guard_field(self, key: str, name: str, expected: str | None) -> Write:
        """Require ``HGET key name`` to equal ``expected`` (``None``: to be absent)."""
        self.guards.append(["h", self._k(key), name, expected if expected is not None else False])
        return self

    def guard_member(self, key: str, member: str) -> Write:
        """Require ``member`` to be in the sorted set ``key``."""
        self.guards.append(["z", self._k(key), member])
        return self

    def guard_exists(self, key: str, exists: bool) -> Write:
        """Require ``key`` to exist (or not)."""
        self.guards.append(["x", self._k(key), 1 if exists else 0])
        return self

    def op(self, name: str, key: str, *args: Any) -> Write:
        """Append an operation (``hset``, ``rpush``, ``zadd``...) on ``key``."""
        self.ops.append([name, self._k(key), *args])
        return self

    def join(
        self, steps_key: str, container: str, leases_key: str, due: float, member: str
    ) -> Write:
        """Count an ended branch of ``container`` (see commit.lua's ``join``)."""
        self.ops.append(
            ["join", self._k(steps_key), container, self._k(leases_key), repr(due), member]
        )
        return self


@dataclass
class CommitResult:
    """What :meth:`RedisStore.apply` did."""

    ok: bool
    failed_guard: int = -1
    """Index (in ``Write.guards``) of the guard that failed."""
    joined: list[str] = field(default_factory=list)
    """Containers whose last branch ended in this write (now JOINING)."""


class RedisStore:
    """Access to the orchestrator's Redis state, under the configured key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self._commit = client.register_script((_LUA_DIR / "commit.lua").read_text())
        self._claim = client.register_script((_LUA_DIR / "claim.lua").read_text())
        self._window = client.register_script((_LUA_DIR / "window.lua").read_text())

    # -- writes -----------------------------------------------------------------------

    def commit(self, write: Write) -> bool:
        """Apply ``write`` atomically; False (and nothing written) if a guard failed."""
        return self.apply(write).ok

    def apply(self, write: Write) -> CommitResult:
        """Apply ``write`` atomically and say what happened."""
        if not write.ops:
            return CommitResult(True)
        return self._result(self._commit(keys=write.keys, args=[self._payload(write)]))

    def apply_many(self, writes: list[Write]) -> list[CommitResult]:
        """Apply several independent writes in one round trip (each atomic on its own)."""
        pipe = self.client.pipeline(transaction=False)
        for write in writes:
            self._commit(keys=write.keys, args=[self._payload(write)], client=pipe)
        return [self._result(raw) for raw in pipe.execute()]

    @staticmethod
    def _payload(write: Write) -> str:
        return dumps({"g": write.guards, "o": write.ops})

    @staticmethod
    def _result(raw: list[Any]) -> CommitResult:
        if not raw[0]:
            return CommitResult(False, failed_guard=int(raw[1]) - 1)
        return CommitResult(True, joined=[str(k) for k in raw[2:]])

    def claim_step(
        self, execution_id: str, step_key: str, token: str, lease_until: float, event: str
    ) -> tuple[bool, list[str | None]]:
        """Claim a SCHEDULED step; returns (claimed, claim details or skip reason)."""
        member = lease_member(execution_id, step_key)
        result = self._claim(
            keys=[
                self.keys.execution(execution_id),
                self.keys.steps(execution_id),
                self.keys.leases,
                self.keys.history(execution_id),
            ],
            args=[step_key, token, repr(lease_until), member, event],
        )
        return result[0] == "ok", list(result[1:])

    # -- reads ------------------------------------------------------------------------

    def map_window(self, execution_id: str, container: str) -> list[str | None]:
        """A Map's ``[next index, item count, next item's input]`` (window.lua)."""
        return list(self._window(keys=[self.keys.steps(execution_id)], args=[container]))

    def execution(self, execution_id: str) -> dict[str, str]:
        """The execution record ({} if unknown)."""
        return self.client.hgetall(self.keys.execution(execution_id))

    def history(self, execution_id: str) -> list[dict[str, Any]]:
        """Every history event of an execution, oldest first, with its id."""
        raw = self.client.lrange(self.keys.history(execution_id), 0, -1)
        events = []
        for index, item in enumerate(raw):
            event = json.loads(item)
            event["id"] = index + 1
            events.append(event)
        return events

    def steps(self, execution_id: str) -> dict[str, str]:
        """The raw step hash of an execution."""
        return self.client.hgetall(self.keys.steps(execution_id))


def lease_member(execution_id: str, step_key: str) -> str:
    """The member naming a step in the leases set."""
    return dumps([execution_id, step_key])


_lock = threading.Lock()
_stores: dict[tuple[str, str], RedisStore] = {}


def get_store(settings: Settings | None = None) -> RedisStore:
    """The store for the settings in force (one client per URL and prefix, shared)."""
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError(
            "REDIS_URL is not set: set it, or run inside orchestrator.testing.local_orchestrator()"
        )
    cache_key = (settings.redis_url, settings.key_prefix)
    with _lock:
        store = _stores.get(cache_key)
        if store is None:
            store = RedisStore(redis_client(settings.redis_url), settings.key_prefix)
            _stores[cache_key] = store
        return store


def reset_stores() -> None:
    """Forget cached clients (after the settings changed, or a fork)."""
    with _lock:
        for store in _stores.values():
            store.client.close()
        _stores.clear()
