"""Redis unreachable — refused, a stopped (SIGSTOP) server, a listener that never answers:
the public API raises ``StoreUnavailable`` within a bounded time, the CLI says so in one
line and exits 3, and the timer loops log an outage once when it starts and once when it
ends.

These tests use clients (``Orchestrator``) of Redis servers of their own, never the
session's, bound to the test's thread and to the timer thread it starts: the process's
settings, which the session's worker and timer loop use, are left alone.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    ExecutionStatus,
    Orchestrator,
    config,
    describe_execution,
    get_dead_letter,
    get_execution_definition,
    get_execution_history,
    list_dead_letters,
    list_executions,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
    start_workflow,
    stop_execution,
)
from orchestrator.engine import timers
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.errors import OrchestratorError, StoreUnavailable
from orchestrator.language.tokens import new_token
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Short, so that a hung server is given up on quickly (3 attempts of this, plus backoff).
TIMEOUT_S = 0.4
#: What "bounded" means here: far above 3 x TIMEOUT_S, far below "forever".
BOUND_S = 15.0
#: A well-formed token (of an execution that does not exist): answering it needs Redis.
TOKEN = new_token("nope")
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


@contextmanager
def store_at(url: str) -> Iterator[Orchestrator]:
    """A client of ``url`` (a fresh key prefix), bound in this context: the public API
    called here uses it."""
    client = Orchestrator(
        url,
        settings=config.get_settings(),
        redis_timeout_seconds=TIMEOUT_S,
        key_prefix=f"unavailable-{uuid.uuid4().hex[:8]}",
    )
    try:
        with client.bound():
            yield client
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentListener:
    """A TCP port that accepts connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.accepted:
            connection.close()


@contextmanager
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def stopped(redis: EmbeddedRedis) -> Iterator[None]:
    """The server SIGSTOPped: connections are accepted, nothing is answered."""
    assert redis.pid is not None
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.pid, signal.SIGCONT)


def raises_unavailable(call: Callable[[], Any]) -> StoreUnavailable:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        call()
    assert time.monotonic() - started < BOUND_S
    assert isinstance(caught.value, OrchestratorError)
    return caught.value


READS: list[tuple[str, Callable[[], Any]]] = [
    ("describe_execution", lambda: describe_execution("nope")),
    ("get_execution_history", lambda: get_execution_history("nope")),
    ("get_execution_definition", lambda: get_execution_definition("nope")),
    ("list_executions", lambda: list_executions()),
    ("list_dead_letters", lambda: list_dead_letters()),
    ("get_dead_letter", lambda: get_dead_letter("nope")),
]
WRITES: list[tuple[str, Callable[[], Any]]] = [
    ("start_workflow", lambda: start_workflow(PASS, {"a": 1})),
    ("send_task_success", lambda: send_task_success(TOKEN, {})),
    ("send_task_failure", lambda: send_task_failure(TOKEN, "E", "c")),
    ("send_task_heartbeat", lambda: send_task_heartbeat(TOKEN)),
    ("stop_execution", lambda: stop_execution("nope")),
]


def test_refused_connection_is_store_unavailable_with_a_masked_url() -> None:
    port = free_port()
    with store_at(f"redis://:s3cret@127.0.0.1:{port}/0"):
        for name, call in READS + WRITES:
            error = raises_unavailable(call)
            assert error.url == f"redis://:***@127.0.0.1:{port}/0", name
            assert str(error).startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 unreachable")
            assert "s3cret" not in str(error), name
            assert error.maybe_applied is ((name, call) in WRITES), name


def test_a_listener_that_never_answers_gives_up_in_bounded_time() -> None:
    with silent_listener() as listener, store_at(f"redis://127.0.0.1:{listener.port}/0"):
        raises_unavailable(lambda: describe_execution("nope"))
        # Three attempts, each a connection that waits once for its handshake's reply
        # (redis-py's health-check PING, retried within each attempt, made it 12 waits).
        assert len(listener.accepted) == 3
        error = raises_unavailable(lambda: start_workflow(PASS, {"a": 1}, name="hung-start"))
        assert error.maybe_applied
        assert "starting it again with the same name is safe" in str(error)


def test_a_named_start_cut_short_by_a_stopped_redis_is_safe_to_retry() -> None:
    name = f"stopped-{uuid.uuid4().hex[:8]}"
    with EmbeddedRedis() as redis, store_at(redis.url):
        with stopped(redis):
            raises_unavailable(lambda: describe_execution(name))
            error = raises_unavailable(lambda: start_workflow(PASS, {"k": 1}, name=name))
            assert error.maybe_applied and name in str(error)
        # Whether or not the first start was applied, the same name and input is safe.
        handle = start_workflow(PASS, {"k": 1}, name=name)
        assert handle.result(timeout=BOUND_S).status is ExecutionStatus.SUCCEEDED
        assert len(list_executions()) == 1


def _records(caplog: pytest.LogCaptureFixture, thread: int | None) -> list[logging.LogRecord]:
    return [r for r in caplog.records if thread is None or r.thread == thread]


def test_timer_loop_logs_an_outage_once_and_its_end(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed_ticks: list[float] = []
    original = timers.run_tick

    def counted(*args: Any, **kwargs: Any) -> timers.TickOutcome:
        try:
            return original(*args, **kwargs)
        except Exception:
            if threading.current_thread().name == "outage-test-timers":
                failed_ticks.append(time.monotonic())
            raise

    # The loop calls run_tick (which says whether to tick again at once), not tick.
    monkeypatch.setattr(timers, "run_tick", counted)
    caplog.set_level(logging.INFO, logger="orchestrator.engine.timers")
    with EmbeddedRedis() as redis, store_at(redis.url):
        url = redis.url
        loop = timers.TimerLoop(interval=0.02)
        # The loop's thread runs in this context: it ticks with the client bound here.
        loop._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(loop._run,),
            name="outage-test-timers",
            daemon=True,
        )
        loop._thread.start()
        try:
            with stopped(redis):
                wait_until(lambda: len(failed_ticks) >= 2, timeout=60, message="ticks failing")
            wait_until(
                lambda: any("reachable again" in r.getMessage() for r in caplog.records),
                timeout=BOUND_S,
                message="the end of the outage logged",
            )
        finally:
            loop.stop()
        ident = loop._thread.ident
    mine = _records(caplog, ident)
    down = [r for r in mine if "unreachable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in mine]
    assert down[0].getMessage().startswith(f"Redis at {url} unreachable: ")
    assert down[0].getMessage().endswith("; retrying")
    assert not [r for r in mine if r.exc_info], "no traceback per tick"
    (back,) = [r for r in mine if "reachable again" in r.getMessage()]
    assert back.getMessage().startswith("Redis reachable again after ")


def test_beat_logs_an_outage_once_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    from orchestrator.engine.beat import OrchestratorScheduler
    from orchestrator.engine.celery_app import app

    caplog.set_level(logging.INFO, logger="orchestrator.engine.beat")
    sched = OrchestratorScheduler(app=app, lazy=True)
    port = free_port()
    with store_at(f"redis://:pw@127.0.0.1:{port}/0"):
        for _ in range(20):
            sched.tick()
    with EmbeddedRedis() as redis, store_at(redis.url):
        sched.tick()
    mine = _records(caplog, threading.get_ident())
    messages = [r.getMessage() for r in mine]
    assert [m for m in messages if "unreachable" in m] == [
        m for m in messages if m.startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 ")
    ]
    assert len([m for m in messages if "unreachable" in m]) == 1, messages
    assert len([m for m in messages if "reachable again" in m]) == 1, messages
    assert not [r for r in mine if r.exc_info], "no traceback per tick"


# ------------------------------------------------------------------------------ the CLI


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "REDIS_URL")}
    env.update(REDIS_URL=url, ORCHESTRATOR_REDIS_TIMEOUT_SECONDS=str(TIMEOUT_S))
    return env


@pytest.mark.parametrize(
    "args", [("list",), ("describe", "x"), ("dlq", "list"), ("task", "success", TOKEN)]
)
def test_cli_says_store_unavailable_in_one_line_and_exits_3(args: tuple[str, ...]) -> None:
    port = free_port()
    proc = cli(*args, env=cli_env(f"redis://:s3cret@127.0.0.1:{port}/0"))
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: Redis at redis://:***@127.0.0.1:{port}/0 unreachable")
    assert "s3cret" not in proc.stderr + proc.stdout


def test_cli_gives_up_on_a_redis_that_never_answers() -> None:
    with silent_listener() as listener:
        started = time.monotonic()
        proc = cli("describe", "x", env=cli_env(f"redis://127.0.0.1:{listener.port}/0"))
    assert time.monotonic() - started < 60
    assert proc.returncode == 3, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
