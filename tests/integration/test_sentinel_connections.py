"""Every connection the store and the broker open goes to the master the sentinels name.

Real ``redis-server`` processes (a master, a replica, two sentinels). The store's client,
its script lane's own connections (the hot path's commits) and the Celery app's broker
connection all write to the master, before and after ``SENTINEL FAILOVER``; none is
built from a plain host and port (which would be redis-py's default, localhost:6379).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from orchestrator import config
from orchestrator.engine.celery_app import celery_config
from orchestrator.engine.store import OUTAGE_ERRORS, RedisStore, Write, redis_client
from orchestrator.testing import process_settings
from tests.helpers import wait_until
from tests.redis_servers import SentinelGroup, Server, failover, redis_servers, sentinel_group


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with redis_servers(tmp_path / "redis") as servers:
        yield sentinel_group(servers)


def _holds(server: Server, key: str) -> bool:
    with server.client() as client:
        return bool(client.exists(key))


def _role(server: Server) -> str:
    with server.client() as client:
        return str(client.role()[0])


def _commit(store: RedisStore, key: str) -> bool:
    try:
        return store.commit(Write().op("hset", key, "f", "v"))
    except OUTAGE_ERRORS:
        return False  # the failover's moment: the next attempt asks the sentinels again


def test_the_store_and_the_broker_write_to_the_master_before_and_after_a_failover(
    group: SentinelGroup,
) -> None:
    prefix = f"orch-sconn-{uuid.uuid4().hex[:8]}"
    settings = config.settings_from_env(
        redis_url=group.url(), broker_url=None, key_prefix=prefix, queue=f"{prefix}-q"
    )
    with process_settings(settings):
        store = RedisStore(redis_client(settings.redis_url or ""), prefix, settings.partitions)
        publisher = Celery("sentinel-test", set_as_current=False)
        publisher.conf.update(celery_config(settings))
        try:
            # The lane's connection (commit) and the client's pool (exists) are the master's.
            assert store.commit(Write().op("hset", f"{prefix}:before", "f", "v"))
            assert _holds(group.master, f"{prefix}:before")
            assert store.lane._connection().port == group.master.port
            with publisher.connection_for_write() as connection:
                connection.default_channel.client.rpush(f"{prefix}:broker-before", "m")
            assert _holds(group.master, f"{prefix}:broker-before")

            failover(group)
            wait_until(lambda: group.master_port() == group.replica.port, 60)
            wait_until(
                lambda: _role(group.master) == "slave",
                30,
                message="the old master to be demoted",
            )

            # The same store object, no restart: its next commits reach the new master.
            wait_until(lambda: _commit(store, f"{prefix}:after"), 30)
            assert _holds(group.replica, f"{prefix}:after")
            assert store.lane._connection().port == group.replica.port
            assert store.client.exists(f"{prefix}:before")  # replicated before the failover
            with publisher.connection_for_write() as connection:
                connection.default_channel.client.rpush(f"{prefix}:broker-after", "m")
            assert _holds(group.replica, f"{prefix}:broker-after")
        finally:
            store.close()
            publisher.close()
