"""A Redis MONITOR for tests: the commands, script calls and transactions the engine sends.

``monitor`` (a fixture in tests/integration/conftest.py) watches the session's Redis while
a test runs; :func:`grouped_calls` groups what it saw into the units Redis ran atomically.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field

from redis.crc import key_slot

from orchestrator.engine.store import RedisStore, redis_client

LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$")
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
TAG = re.compile(r"\{([^{}]*)\}")


@dataclass
class Call:
    """One unit the server ran atomically: a command, a script call or a transaction."""

    commands: list[list[str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.commands[0][0].upper()


def named_keys(call: Call, prefix: str) -> set[str]:
    """The keys under ``prefix`` a call names (the tests' own ``<prefix>:test:`` aside)."""
    own = f"{prefix}:"
    return {
        arg
        for args in call.commands
        for arg in args[1:]
        if arg.startswith(own) and not arg.startswith(f"{own}test:")
    }


def slots(keys: set[str]) -> set[int]:
    """The Redis Cluster hash slots of ``keys``."""
    return {key_slot(key.encode()) for key in keys}


def grouped_calls(lines: list[str]) -> list[Call]:
    """Group MONITOR lines: a script call with the ``lua`` lines that follow it, and a
    MULTI with the commands up to its EXEC (Redis logs those together, at EXEC)."""
    calls: list[Call] = []
    in_multi = False
    for line in lines:
        match = LINE.match(line)
        assert match, line
        client, rest = match.groups()
        args = [a.replace('\\"', '"').replace("\\\\", "\\") for a in ARG.findall(rest)]
        if not args:
            continue
        if client == "lua":
            scripts = ("EVALSHA", "EVAL", "FCALL")
            assert calls and any(c[0].upper() in scripts for c in calls[-1].commands), line
            calls[-1].commands.append(args)
        elif in_multi:
            calls[-1].commands.append(args)
            in_multi = args[0].upper() not in ("EXEC", "DISCARD")
        else:
            calls.append(Call([args]))
            in_multi = args[0].upper() == "MULTI"
    return calls


class Monitor:
    """The lines of a MONITOR on its own connection, until :meth:`stop`."""

    def __init__(self, url: str, store: RedisStore) -> None:
        self.client = redis_client(url, timeout=60)
        self.store = store
        self.lines: list[str] = []
        self.sentinel = f"{store.keys.prefix}:test:monitor-stop-{uuid.uuid4().hex}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while True:
                line = monitor.connection.read_response()
                line = line.decode() if isinstance(line, bytes) else line
                if self.sentinel in line:
                    return
                self.lines.append(line)

    def stop(self) -> list[str]:
        self.store.client.get(self.sentinel)
        self._thread.join(30)
        assert not self._thread.is_alive(), "MONITOR did not stop"
        self.client.close()
        return self.lines
