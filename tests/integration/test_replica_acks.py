"""What asynchronous replication can lose at a failover, and ORCHESTRATOR_MIN_REPLICAS_ACK.

A real master and replica (``redis-server`` processes of the test's). The replica is
promoted (``REPLICAOF NO ONE``: a failover's first step) while the old master still takes
writes, as it does until the sentinels reach it; then the old master is made the new
one's replica, which drops whatever only it had. A start acknowledged by the old master
alone is gone; with ``min_replicas_ack=1`` that start is refused instead
(``StoreUnavailable``, ``maybe_applied``), and the caller's retry with the same name
lands on the new master.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Orchestrator
from orchestrator.config import using_settings
from orchestrator.engine.store import ReplicasBehind, Write
from orchestrator.errors import ExecutionNotFound, StoreUnavailable
from tests.helpers import machine, wait_until
from tests.redis_servers import Server, redis_servers

PASS_ONLY = machine({"Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}})


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with redis_servers(tmp_path / "redis") as servers:
        master = servers.start("master")
        replica = servers.start("replica", [f"replicaof 127.0.0.1 {master.port}"])
        wait_until(lambda: _linked(replica), 30, message="the replica to sync")
        yield master, replica


def _linked(replica: Server) -> bool:
    with replica.client() as client:
        return client.info("replication").get("master_link_status") == "up"


def _client(server: Server, acks: int = 0) -> Orchestrator:
    return Orchestrator(
        redis_url=f"redis://127.0.0.1:{server.port}/0",
        broker_url="memory://",
        key_prefix="orch-acks",
        min_replicas_ack=acks,
        min_replicas_ack_timeout_seconds=0.2,
    )


def test_an_unacknowledged_start_is_lost_and_an_acknowledged_one_is_refused(
    pair: tuple[Server, Server],
) -> None:
    master, replica = pair
    acked, plain = _client(master, acks=1), _client(master)
    try:
        # The replica has it: WAIT 1 returns at once.
        acked.start_workflow(PASS_ONLY, {}, name="before").result(10)

        with replica.client() as promoted:
            promoted.replicaof("NO", "ONE")
        wait_until(lambda: _connected_replicas(master) == 0, 10, message="the link to drop")

        with pytest.raises(StoreUnavailable) as refused:
            acked.start_workflow(PASS_ONLY, {}, name="refused")
        assert refused.value.maybe_applied
        assert "acknowledged by 0 of the 1 replicas" in str(refused.value)
        assert "ORCHESTRATOR_MIN_REPLICAS_ACK" in str(refused.value)
        assert plain.start_workflow(PASS_ONLY, {}, name="unacked").result(10).status == (
            "SUCCEEDED"
        )
        # Beat's and the Map runs' batched commits wait the same way.
        with using_settings(acked.settings), pytest.raises(ReplicasBehind):
            acked.store.apply_many([Write().op("hset", "orch-acks:batch", "f", "v")])

        # The server-side bound: a master that has lost its replicas refuses writes.
        with master.client() as old:
            old.config_set("min-replicas-to-write", 1)
        try:
            with pytest.raises(StoreUnavailable) as no_replicas:
                plain.start_workflow(PASS_ONLY, {}, name="no-replicas")
            assert "NOREPLICAS" in str(no_replicas.value)
        finally:
            with master.client() as old:
                old.config_set("min-replicas-to-write", 0)
    finally:
        acked.close()
        plain.close()

    # The sentinels reach the old master: it becomes the new master's replica.
    with master.client() as old:
        old.replicaof("127.0.0.1", replica.port)
    wait_until(lambda: _linked(master), 30, message="the old master to resync")

    new = _client(replica)
    try:
        assert new.describe_execution("before").status == "SUCCEEDED"
        with pytest.raises(ExecutionNotFound):
            new.describe_execution("unacked")  # acknowledged by the old master alone: lost
        with pytest.raises(ExecutionNotFound):
            new.describe_execution("refused")
        with pytest.raises(ExecutionNotFound):
            new.describe_execution("no-replicas")
        # The refused caller retries with the same name (the name is the idempotency key).
        assert new.start_workflow(PASS_ONLY, {}, name="refused").result(10).status == ("SUCCEEDED")
    finally:
        new.close()


def _connected_replicas(server: Server) -> int:
    with server.client() as client:
        return int(client.info("replication").get("connected_slaves", 0))
