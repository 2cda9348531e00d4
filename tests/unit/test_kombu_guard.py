"""The guard on kombu's Redis channels (orchestrator/engine/celery_app.py): a channel
whose connection is gone fails as a connection error, which kombu's close ignores, not
as an AttributeError that stops a worker's consumer for good (seen on a Sentinel
failover by SIGKILL)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

import orchestrator.engine.celery_app  # noqa: F401 - installs the guard


def test_a_closed_connection_is_a_connection_error() -> None:
    assert kombu_redis.Channel._connparams.orchestrator_guard  # type: ignore[attr-defined]
    channel = object.__new__(kombu_redis.SentinelChannel)
    channel.connection = SimpleNamespace(client=None)  # what a closed transport leaves
    with pytest.raises(RedisConnectionError):
        channel._connparams()
    # ...which is among the errors kombu ignores while closing a channel.
    assert issubclass(RedisConnectionError, kombu_redis.get_redis_error_classes()[0])
