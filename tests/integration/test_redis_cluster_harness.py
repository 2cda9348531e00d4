"""The Redis Cluster the cluster tests and benchmark run on (tests/redis_servers.py).

Three real ``redis-server`` processes in cluster mode, formed with redis-py alone (no
``redis-cli``): each master owns a third of the slots, every node sees the same map, and
redis-py's ``RedisCluster`` reads and writes keys on all three. The ``INFO errorstats``
check the end-to-end test relies on is shown to see a CROSSSLOT error when one happens.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import MovedError

from tests.redis_servers import CLUSTER_SLOTS, ClusterGroup, slot_ranges


def _keys_on_every_master(group: ClusterGroup, client: RedisCluster, each: int) -> dict:
    """``each`` keys per master: {port: [key, ...]} (owners from the slots as formed)."""
    by_port: dict[int, list[str]] = {m.port: [] for m in group.masters}
    tag = uuid.uuid4().hex[:8]
    n = 0
    while min(len(keys) for keys in by_port.values()) < each:
        key = f"harness:{tag}:{n}"
        n += 1
        owner = group.slot_owner(client.keyslot(key))
        if len(by_port[owner.port]) < each:
            by_port[owner.port].append(key)
    return by_port


def test_three_masters_share_the_slots_and_agree_on_them(redis_cluster: ClusterGroup) -> None:
    assert len(redis_cluster.masters) == 3
    assert redis_cluster.url() == (
        "redis+cluster://" + ",".join(f"127.0.0.1:{m.port}" for m in redis_cluster.masters) + "/"
    )
    expected = sorted(
        (first, last, master.port)
        for master, (first, last) in zip(redis_cluster.masters, slot_ranges(3), strict=True)
    )
    assert sum(last - first + 1 for first, last, _ in expected) == CLUSTER_SLOTS
    for master in redis_cluster.masters:
        with master.client() as client:
            info = client.execute_command("CLUSTER INFO")
            text = info if isinstance(info, str) else "\n".join(f"{k}:{v}" for k, v in info.items())
            assert "cluster_state:ok" in text
            assert "cluster_known_nodes:3" in text
            slots = client.execute_command("CLUSTER SLOTS")
            assert sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in slots) == expected


def test_redis_py_cluster_client_writes_and_reads_keys_on_all_three_masters(
    redis_cluster: ClusterGroup,
) -> None:
    client = redis_cluster.client()
    try:
        # redis-py discovered the three masters from the startup nodes.
        assert sorted(n.port for n in client.get_primaries()) == sorted(
            m.port for m in redis_cluster.masters
        )
        by_port = _keys_on_every_master(redis_cluster, client, each=5)
        for keys in by_port.values():
            for key in keys:
                assert client.set(key, f"value-of-{key}")
        for port, keys in by_port.items():
            assert client.get_node_from_key(keys[0]).port == port
            for key in keys:
                assert client.get(key) == f"value-of-{key}"
            # The key is on that very master, and another refuses it (MOVED).
            owner = next(m for m in redis_cluster.masters if m.port == port)
            other = next(m for m in redis_cluster.masters if m.port != port)
            with owner.client() as direct:
                assert direct.get(keys[0]) == f"value-of-{keys[0]}"
            with other.client() as direct, pytest.raises(MovedError) as moved:
                direct.get(keys[0])
            assert moved.value.node_addr == ("127.0.0.1", port)
        # Multi-key commands within one hash tag go through (one slot).
        hash_tag = f"{{harness-{uuid.uuid4().hex[:6]}}}"
        tagged = [f"{hash_tag}:{i}" for i in range(3)]
        assert client.mset({key: "t" for key in tagged})
        assert client.mget(tagged) == ["t", "t", "t"]
    finally:
        client.close()


def test_error_stats_see_a_crossslot_error(redis_cluster: ClusterGroup) -> None:
    """The check of tests/e2e/test_cluster.py is not vacuous: a multi-key command over two
    slots, sent to a master owning both, is counted under ``errorstat_CROSSSLOT``."""
    master = redis_cluster.masters[0]
    assert all("errorstat_CROSSSLOT" not in stats for stats in redis_cluster.error_stats().values())
    first, last = slot_ranges(3)[0]
    client = redis_cluster.client()
    try:
        keys: list[str] = []
        n = 0
        while len(keys) < 2:
            key = f"harness-cross:{n}"
            n += 1
            slot = client.keyslot(key)
            if first <= slot <= last and all(client.keyslot(k) != slot for k in keys):
                keys.append(key)
    finally:
        client.close()
    # redis-py drops the CROSSSLOT prefix from the message it raises.
    with master.client() as direct:
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            direct.mset({keys[0]: "a", keys[1]: "b"})
    stats = redis_cluster.error_stats()
    assert stats[master.port].get("errorstat_CROSSSLOT") == 1, stats
