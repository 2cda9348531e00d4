"""Global activity limits: ``@activity(..., max_concurrency=N, rate_limit="10/s")``.

Both hold across the cluster, whichever process publishes the steps (a client that
imports no activity code, a worker, beat): the workers that import a limited activity
advertise its limits in Redis (``{p}:activity-limits``), and :func:`admit`, called by
:func:`~orchestrator.engine.publisher.publish` (the one place activity messages are
built), decides in Redis which steps go out now. A step held back is not published: it
occupies no worker slot and nobody polls for it.

``max_concurrency``: permits counted in Redis (``{p}:permits:{activity:<a>}``, see
:mod:`orchestrator.engine.keys`; permits.lua). A step takes one before its message is
published, or joins the activity's waiting set (ordered by arrival, out of the outbox).
When a permitted step ends, its worker gives the permit back after the step's commit,
and the same atomic write hands it to the first waiting step (with a grant record);
the next call puts that step in its outbox and the worker then publishes it (if the
worker dies first, the reconciler does, within the lease; if it died before the
outbox write, the timer process puts the step there when its grant record comes due).
The activity's keys are one Redis Cluster slot, the steps' outboxes others: each call
touches one (keys.py, "The global activity limits"). A permit whose step is neither
running (its lease) nor dispatched (the outbox) is taken back by the timer process once
the permit's own lease lapsed (a worker killed after the commit and before the release,
a step whose execution was stopped while it waited): a killed worker's step keeps its
permit while the reconciler dispatches it again, and its permit comes back when the
step ends or is dropped.

``rate_limit``: a token bucket per activity in Redis (``{p}:rate:{activity:<a>}``) of
capacity 1 (no burst: steps are spaced ``1/rate`` apart). A step over the rate reserves
its token ahead (the bucket goes negative) and waits as a ``limit`` timer in
``{P}:timers`` due at its turn, fired by the timer process, which publishes it. Not
Celery's per-worker ``rate_limit``, and no countdown or ETA in a worker's memory.

A Celery chain of straight Task states (a run, :mod:`orchestrator.language.runs`) stops
before a limited activity, so each limited step is admitted by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from orchestrator.config import get_settings
from orchestrator.engine.records import lease_member, timer_member
from orchestrator.engine.store import RedisStore

logger = logging.getLogger("orchestrator.engine.limits")

#: The kind of a rate-limited step's timer (``{P}:timers`` member ``["limit", id, key, 0]``).
LIMIT_TIMER = "limit"
LIMIT_TIMER_PREFIX = f'["{LIMIT_TIMER}",'

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIOD = {"s": 1.0, "m": 60.0, "h": 3600.0}

#: A token bucket's capacity: 1, so that steps over the rate are spaced evenly.
BUCKET_CAPACITY = 1.0


def parse_rate(text: str) -> float:
    """``"10/s"``, ``"30/m"``, ``"100/h"`` (``sec``/``min``/``hour`` too) as tokens per
    second; raises ValueError otherwise."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"rate limit {text!r}: use N/s, N/m or N/h (e.g. '10/s')")
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"rate limit {text!r}: the count must be positive")
    return count / _PERIOD[match.group(2)[0]]


def bucket_take(
    tokens: float | None, ts: float | None, now: float, rate: float, capacity: float
) -> tuple[float, float, float]:
    """Take one token from a bucket holding ``tokens`` at time ``ts`` (None: a full new
    bucket), refilled at ``rate`` per second up to ``capacity``; returns the new tokens,
    their time, and how long the taker waits for its token (0: now). The bucket goes
    negative while steps wait: each waiting step reserved the token it will get.
    permits.lua's ``rate`` op does the same arithmetic."""
    tokens = capacity if tokens is None else tokens
    ts = now if ts is None else ts
    if now > ts:
        tokens = min(capacity, tokens + (now - ts) * rate)
        ts = now
    tokens -= 1
    wait = -tokens / rate if tokens < 0 else 0.0
    return tokens, ts, wait


@dataclass(frozen=True)
class Limits:
    """An activity's global limits."""

    max_concurrency: int | None = None
    rate_limit: str | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and (
            not isinstance(self.max_concurrency, int)
            or isinstance(self.max_concurrency, bool)
            or self.max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency {self.max_concurrency!r}: use an integer >= 1")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)

    @property
    def rate(self) -> float | None:
        """Tokens per second, or None."""
        return None if self.rate_limit is None else parse_rate(self.rate_limit)

    def __bool__(self) -> bool:
        return self.max_concurrency is not None or self.rate_limit is not None

    def to_json(self) -> str:
        """As advertised in ``{p}:activity-limits``."""
        return json.dumps({"max_concurrency": self.max_concurrency, "rate_limit": self.rate_limit})

    @classmethod
    def from_json(cls, text: str) -> Limits:
        """From ``{p}:activity-limits``."""
        data = json.loads(text)
        return cls(data.get("max_concurrency"), data.get("rate_limit"))


_registered: dict[str, Limits | None] = {}
"""The activities registered in this process, each with its limits (None: unlimited)."""

#: How long a process trusts its copy of the advertised limits (s), as it does the queues.
ADVERTISED_CACHE_S = 5.0
_advertised_cache: tuple[float, dict[str, Limits], str] = (0.0, {}, "")


def register(name: str, limits: Limits) -> None:
    """Record an activity registered here (``@activity``) with its limits."""
    _registered[name] = limits or None


def unregister(name: str) -> None:
    """Forget an activity registered here (tests)."""
    _registered.pop(name, None)


def local_limits() -> dict[str, Limits | None]:
    """What this process advertises: each of its activities' limits (None: unlimited)."""
    return dict(_registered)


def _advertised(store: RedisStore) -> dict[str, Limits]:
    global _advertised_cache
    at, limits, owner = _advertised_cache
    now = time.monotonic()
    identity = f"{id(store)}:{store.keys.prefix}"
    if owner == identity and now - at < ADVERTISED_CACHE_S:
        return limits
    fresh: dict[str, Limits] = {}
    for name, text in store.activity_limits().items():
        try:
            fresh[name] = Limits.from_json(text)
        except (ValueError, TypeError):
            logger.warning("ignoring malformed limits of activity %s: %r", name, text)
    _advertised_cache = (now, fresh, identity)
    return fresh


def forget_advertised() -> None:
    """Read the advertised limits afresh next time (tests)."""
    global _advertised_cache
    _advertised_cache = (0.0, {}, "")


def limits_for(name: str, store: RedisStore) -> Limits | None:
    """The limits of activity ``name``: its registration here if it has one, else what
    the workers running it advertised; None if unlimited."""
    if name in _registered:
        return _registered[name]
    return _advertised(store).get(name)


def limited_activities(store: RedisStore) -> dict[str, Limits]:
    """Every limited activity known here or advertised."""
    local = {name: limits for name, limits in _registered.items() if limits}
    return {**_advertised(store), **local}


# -- admission --------------------------------------------------------------------------

#: Set while the timer process publishes rate-limited steps whose turn came.
_rate_taken: ContextVar[bool] = ContextVar("orchestrator_rate_taken", default=False)


#: Set while a process publishes a waiting step it was handed a permit for.
_permit_held: ContextVar[bool] = ContextVar("orchestrator_permit_held", default=False)


@contextlib.contextmanager
def permit_held() -> Iterator[None]:
    """The steps published in this context hold their permit already (handed one)."""
    token = _permit_held.set(True)
    try:
        yield
    finally:
        _permit_held.reset(token)


@contextlib.contextmanager
def rate_taken() -> Iterator[None]:
    """The steps published in this context took their rate token already."""
    token = _rate_taken.set(True)
    try:
        yield
    finally:
        _rate_taken.reset(token)


def cut_runs(runs: list[Any], store: RedisStore) -> list[Any]:
    """``(run, params)`` pairs whose runs stop before any limited activity but their
    first step, which is admitted alone."""
    cut = []
    for run, params in runs:
        for index in range(1, len(run)):
            if limits_for(run[index].activity, store):
                run = run[:index]
                break
        cut.append((run, params))
    return cut


def admit(execution_id: str, runs: list[Any], store: RedisStore) -> list[Any]:
    """Of ``(run, params)`` pairs, those whose first steps may be published now.

    A step of an activity with ``max_concurrency`` takes a permit or waits for one; then
    one with a ``rate_limit`` takes a token, or waits for its turn as a timer. Waiting
    steps are left out (their entries in Redis bring them back). Other waiting steps
    this call hands free permits to (only when waiting steps outlived free permits: a
    limit raised) are left in the outbox, which publishes them.
    """
    if not runs:
        return runs
    runs = cut_runs(runs, store)
    settings = get_settings()
    now = time.time()
    expiry = now + settings.lease_seconds
    admitted: list[Any] = []
    for run, params in runs:
        step = run[0]
        limits = limits_for(step.activity, store)
        if not limits:
            admitted.append((run, params))
            continue
        member = lease_member(execution_id, step.step_key)
        if limits.max_concurrency is not None and not _permit_held.get():
            (held,), _ = store.acquire_permits(
                step.activity, limits.max_concurrency, [member], expiry, now
            )
            if not held:
                continue
        rate = limits.rate
        if rate is not None and not _rate_taken.get():
            timer = timer_member(LIMIT_TIMER, execution_id, step.step_key, 0)
            wait = store.take_rate_token(
                step.activity, rate, BUCKET_CAPACITY, now, member, timer, settings.lease_seconds
            )
            if wait > 0:
                continue
        admitted.append((run, params))
    return admitted


def release(
    store: RedisStore, activity: str, execution_id: str, step_key: str, place: bool = True
) -> list[str]:
    """A step of ``activity`` ended (or can never run): give its permit back, unless the
    step was dispatched again meanwhile (a loop back to its state, a retried attempt:
    it keeps it); the waiting steps it went to (in the outbox, to publish; not
    ``place``: the caller puts them there, as it publishes them)."""
    limits = limits_for(activity, store)
    if limits is None or limits.max_concurrency is None:
        return []
    now = time.time()
    return store.release_permits(
        activity,
        limits.max_concurrency,
        [lease_member(execution_id, step_key)],
        now + get_settings().lease_seconds,
        now,
        place,
    )


def recover_permits(store: RedisStore, now: float, place: bool = True) -> list[str]:
    """Take back lapsed permits of every limited activity (the timer process, every
    tick); the waiting steps they went to (as :func:`release`'s)."""
    granted: list[str] = []
    expiry = now + get_settings().lease_seconds
    for activity, limits in limited_activities(store).items():
        if limits.max_concurrency is not None:
            granted += store.recover_permits(activity, limits.max_concurrency, expiry, now, place)
    return granted
