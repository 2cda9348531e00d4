"""Tasks the benchmarks run: the no-op activity and raw Celery baselines.

Both sides are registered on the same Celery app (``orchestrator.engine.celery_app:app``), so
they share the broker, serializer, acks_late, prefetch and event settings, and run in
the same worker processes: the only difference measured is the orchestrator's own work.

Raw Celery has no result backend here (as the orchestrator), so the end of a raw chain or
group is marked by its last task writing ``status`` into a Redis hash — the same kind of
write (one HSET) that marks a workflow's end in its execution record.
"""

from __future__ import annotations

from typing import Any

import redis

from orchestrator import activity
from orchestrator.config import get_settings
from orchestrator.engine.celery_app import app
from orchestrator.engine.store import redis_client


@activity("noop")
def noop(value: Any) -> Any:
    """The no-op activity: returns its input."""
    return value


_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    # One client per process (prefork children must not share the parent's socket).
    import os

    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis_client(get_settings().redis_url or ""))
    return _client[1]


@app.task(name="bench.raw_noop")
def raw_noop(value: Any = None) -> Any:
    """Raw Celery no-op: returns its input (the next task of a chain receives it)."""
    return value


@app.task(name="bench.raw_last")
def raw_last(value: Any, done_key: str) -> Any:
    """Last task of a raw chain: a no-op that marks the chain done."""
    _redis().hset(done_key, "status", "SUCCEEDED")
    return value


@app.task(name="bench.raw_join")
def raw_join(value: Any, counter_key: str, total: int, done_key: str) -> Any:
    """A member of a raw group joined by a counter: the last one to finish marks it done."""
    client = _redis()
    if client.incr(counter_key) >= total:
        client.hset(done_key, "status", "SUCCEEDED")
    return value


#: The limited no-ops of the ``limits`` figures (issue 13 item 4): the same body as
#: ``noop``, one with a limit that never binds (the cost of taking and giving back a
#: permit), one as tight as the benchmark's worker pool (steps wait in Redis and are
#: handed permits), and one with a rate far above what a worker reaches (a token each).
LIMITS_POOL = 2


@activity("noop_permit", max_concurrency=10_000)
def noop_permit(value: Any) -> Any:
    """A no-op holding one of 10,000 permits."""
    return value


@activity("noop_pool", max_concurrency=LIMITS_POOL)
def noop_pool(value: Any) -> Any:
    """A no-op at most LIMITS_POOL of which run at once."""
    return value


@activity("noop_rate", rate_limit="100000/s")
def noop_rate(value: Any) -> Any:
    """A no-op taking a token of a bucket that never runs dry at a worker's pace."""
    return value
