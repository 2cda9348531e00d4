"""The Procfile runs the whole system: ``honcho start`` brings up worker, beat and Flower
(and the UI, once the ``ui`` command exists) against a real Redis, the order-fulfillment
workflow started through the Python API succeeds, and Flower's HTTP API, behind basic
auth, lists the execution's activity tasks with the execution id in their arguments.

Two broker set-ups:

* ``embedded-redis``: an embedded redis-server is the state store and the broker;
* ``redis+rabbitmq``: the machine's Redis (127.0.0.1:6379) is the state store and its
  RabbitMQ (127.0.0.1:5672) the broker. Skipped when they do not answer, except in CI
  (``CI`` set), where that is a failure.

Everything this test writes is private to it: a unique key prefix and queue, deleted at
the end (a shared Redis is never flushed).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from orchestrator import Orchestrator, config
from orchestrator.engine.embedded import EmbeddedRedis
from orchestrator.examples import ACTIVITIES_MODULE as DEMO_ACTIVITIES
from orchestrator.examples import INPUTS_DIR

REPO = Path(__file__).resolve().parents[2]
PROCFILE = REPO / "Procfile"
VENV_BIN = Path(sys.executable).parent
MACHINE_REDIS_URL = "redis://127.0.0.1:6379/0"
MACHINE_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
FLOWER_USER, FLOWER_PASSWORD = "user", "pass"
#: The demo workflow's activities, in the order a successful execution runs them.
ACTIVITIES = ("validate-order", "charge-payment", "reserve-inventory", "send-confirmation")
#: Deadlines (seconds): processes up, the execution, Flower seeing its tasks, shutdown.
STARTUP_S = 90
EXECUTION_S = 90
FLOWER_S = 30
SHUTDOWN_S = 20


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def _honcho() -> str:
    found = VENV_BIN / "honcho"
    if found.exists():
        return str(found)
    which = shutil.which("honcho")
    if not which:
        pytest.fail("honcho is not installed (it is a dev dependency: pip install -e '.[dev]')")
    return which


_ui_available: bool | None = None


def ui_command_available() -> bool:
    """Whether ``python -m orchestrator ui`` exists yet (it is being added separately)."""
    global _ui_available
    if _ui_available is None:
        probe = subprocess.run(
            [sys.executable, "-m", "orchestrator", "ui", "--help"],
            cwd=REPO,
            capture_output=True,
            timeout=120,
            check=False,
        )
        _ui_available = probe.returncode == 0
    return _ui_available


@dataclass
class System:
    """A running ``honcho start`` and how to reach what it started."""

    settings: config.Settings
    client: Orchestrator
    """This system's client: the test process itself stays configured for the session."""
    process: subprocess.Popen[bytes]
    log: Path
    processes: list[str]
    flower_url: str
    ui_url: str | None

    def output(self, tail: int = 12000) -> str:
        text = self.log.read_text(errors="replace")
        return text[-tail:]

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"honcho exited early ({self.process.returncode})\n{self.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM honcho's process group (all it started), SIGKILL after a deadline."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=SHUTDOWN_S)
    except subprocess.TimeoutExpired:
        pass
    # Whatever is left of the group (honcho gone, a child still shutting down) is killed.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(timeout=SHUTDOWN_S)


def _services(variant: str) -> tuple[str | None, str | None, EmbeddedRedis | None]:
    """(redis_url, broker_url, embedded server to stop) for a variant."""
    if variant == "embedded-redis":
        embedded = EmbeddedRedis().start()
        return embedded.url, None, embedded
    env_redis = os.environ.get("REDIS_URL", "")
    env_broker = os.environ.get("BROKER_URL", "")
    redis_url = env_redis if env_redis.startswith("redis://") else MACHINE_REDIS_URL
    broker_url = env_broker if env_broker.startswith("amqp://") else MACHINE_BROKER_URL
    missing = [url for url in (redis_url, broker_url) if not _answers(url)]
    if missing:
        shown = ", ".join(f"{urlsplit(u).hostname}:{urlsplit(u).port}" for u in missing)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the RabbitMQ variant, but nothing answers at {shown}")
        pytest.skip(f"Redis/RabbitMQ not reachable at {shown} (and CI is not set)")
    return redis_url, broker_url, None


def _cleanup(client: Orchestrator) -> None:
    """Delete this run's queue from the broker and its keys from Redis (only those)."""
    settings = client.settings
    try:
        with client.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(settings.queue)
    except Exception:  # noqa: BLE001 - best effort: a missing queue is fine
        pass
    try:
        store = client.store
        keys = list(store.client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
        if keys:
            store.client.delete(*keys)
    except Exception:  # noqa: BLE001 - an embedded server may be gone already
        pass


@pytest.fixture(params=["embedded-redis", "redis+rabbitmq"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    redis_url, broker_url, embedded = _services(request.param)
    run = uuid.uuid4().hex[:10]
    values = config.Settings().model_dump()
    values.update(
        redis_url=redis_url,
        broker_url=broker_url,
        key_prefix=f"orch-deploy-{run}",
        queue=f"orchestrator-deploy-{run}",
        task_modules=[DEMO_ACTIVITIES],
        json_logs=True,
    )
    settings = config.Settings.model_validate(values)
    processes = ["worker", "beat", "flower"] + (["ui"] if ui_command_available() else [])
    flower_port = _free_port()
    ui_port = _free_port()

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ORCHESTRATOR_", "FLOWER_", "UI_", "CELERY_"))
        and k not in ("REDIS_URL", "BROKER_URL")
    }
    env.update(
        PATH=os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
        REDIS_URL=redis_url or "",
        ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
        ORCHESTRATOR_PARTITIONS=str(settings.partitions),
        ORCHESTRATOR_QUEUE=settings.queue,
        ORCHESTRATOR_TASK_MODULES=DEMO_ACTIVITIES,
        ORCHESTRATOR_JSON_LOGS="1",
        FLOWER_ADDRESS="127.0.0.1",
        FLOWER_PORT=str(flower_port),
        FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        UI_HOST="127.0.0.1",
        UI_PORT=str(ui_port),
        ORCHESTRATOR_UI_TOKEN=uuid.uuid4().hex,
    )
    if broker_url:
        env["BROKER_URL"] = broker_url
    empty_env_file = tmp_path / "empty.env"  # no developer's .env leaks in
    empty_env_file.write_text("")
    log = tmp_path / "honcho.log"

    client = Orchestrator(settings=settings)
    importlib.import_module(DEMO_ACTIVITIES)  # to validate the definition

    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                _honcho(),
                "start",
                "--no-colour",
                "-f",
                str(PROCFILE),
                "-d",
                str(REPO),
                "-e",
                str(empty_env_file),
                *processes,
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped whole
        )
    state = System(
        settings=settings,
        client=client,
        process=process,
        log=log,
        processes=processes,
        flower_url=f"http://127.0.0.1:{flower_port}",
        ui_url=f"http://127.0.0.1:{ui_port}" if "ui" in processes else None,
    )
    try:
        yield state
    finally:
        _stop(process)
        _cleanup(client)
        client.close()
        if embedded is not None:
            embedded.stop()


def _get(url: str, auth: bool = True, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` (with Flower's basic auth): (status, parsed JSON or text)."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def _status_if(url: str, wanted: Callable[[int], bool]) -> int | None:
    """The status of an unauthenticated GET of ``url`` if ``wanted``, else None."""
    status, _ = _get(url, auth=False)
    return status if wanted(status) else None


def _poll(check: Callable[[], Any], timeout: float, system: System, what: str) -> Any:
    """Call ``check`` until it returns something truthy; fail with the logs after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    last: Any = None
    while True:
        system.assert_running()
        try:
            last = check()
        except (OSError, urllib.error.URLError) as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout} s (last: {last!r})\n{system.output()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _flower_receives_events(system: System) -> bool:
    # Flower's state knows a worker only from the events it received: once one is
    # listed, Flower's event consumer is connected and will see the execution's tasks.
    status, workers = _get(f"{system.flower_url}/api/workers?status=true")
    return status == 200 and isinstance(workers, dict) and any(workers.values())


def _execution_tasks(system: System, execution_id: str) -> list[dict[str, Any]]:
    status, tasks = _get(f"{system.flower_url}/api/tasks?limit=1000")
    assert status == 200, (status, tasks)
    return [t for t in tasks.values() if execution_id in str(t.get("args"))]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_procfile_runs_the_system_and_flower_shows_the_execution(system: System, capsys) -> None:
    started = time.monotonic()
    # Flower answers only with credentials, then lists a worker (events flow).
    status = _poll(
        lambda: _status_if(f"{system.flower_url}/api/tasks", lambda code: code in (200, 401)),
        STARTUP_S,
        system,
        "Flower answering HTTP",
    )
    assert status == 401, "Flower's API must refuse requests without basic auth"
    _poll(lambda: _flower_receives_events(system), STARTUP_S, system, "Flower seeing a worker")
    ready = time.monotonic() - started

    order = json.loads((INPUTS_DIR / "order.json").read_text())
    # "flaky_payment": 1 fails the first charge in each worker process, so the retry
    # (a timer that beat fires) runs; the retry policy allows 3 retries, so with more
    # than 3 pool processes the order could exhaust them: then the input is made clean.
    flaky = order.get("flaky_payment", 0) if (os.cpu_count() or 1) <= 3 else 0
    order["flaky_payment"] = flaky
    order["order_id"] = f"o-deploy-{uuid.uuid4().hex[:8]}"
    run_started = time.monotonic()
    handle = system.client.start_workflow("order_fulfillment", order)
    try:
        result = handle.result(EXECUTION_S)
    except TimeoutError:
        pytest.fail(f"the execution did not end within {EXECUTION_S} s\n{system.output()}")
    took = time.monotonic() - run_started
    assert result.status == "SUCCEEDED", (result, system.output())
    assert result.output["payment"]["status"] == "captured"
    execution_id = handle.execution_id

    def all_activities_listed() -> list[dict[str, Any]] | None:
        tasks = _execution_tasks(system, execution_id)
        names = [t.get("name") for t in tasks]
        wanted_charges = 2 if flaky else 1
        if all(n in names for n in ACTIVITIES) and names.count("charge-payment") >= wanted_charges:
            return tasks
        return None

    tasks = _poll(all_activities_listed, FLOWER_S, system, "Flower listing the activities")
    for name in ACTIVITIES:
        task = next(t for t in tasks if t.get("name") == name)
        assert execution_id in str(task["args"]), task
    # Flower's search (what an operator types in its Tasks page) finds them by id too.
    status, found = _get(f"{system.flower_url}/api/tasks?search={quote(execution_id)}")
    assert status == 200
    assert {t.get("name") for t in found.values()} >= set(ACTIVITIES), found

    # The workers' JSON log lines carry the execution id: one grep follows it.
    correlated = []
    for line in system.log.read_text(errors="replace").splitlines():
        _, sep, message = line.partition("| ")
        if sep and execution_id in message and message.lstrip().startswith("{"):
            try:
                entry = json.loads(message)
            except json.JSONDecodeError:
                continue
            if entry.get("execution_id") == execution_id:
                correlated.append(entry)
    assert correlated, f"no JSON log line with execution_id={execution_id}\n{system.output()}"

    if system.ui_url is not None:
        ui_url = system.ui_url
        code = _poll(
            lambda: _status_if(f"{ui_url}/", lambda code: code < 500),
            STARTUP_S,
            system,
            "the UI answering HTTP",
        )
        assert code < 400, code

    system.assert_running()
    broker = (system.settings.effective_broker_url or "").split(":", 1)[0]
    with capsys.disabled():
        print(
            f"\n[deploy] honcho {'+'.join(system.processes)} on "
            f"{broker} broker: ready in "
            f"{ready:.1f} s, order_fulfillment SUCCEEDED in {took:.1f} s, "
            f"Flower lists {len(tasks)} tasks of {execution_id}"
            + ("" if system.ui_url else " (ui command not available yet: not started)")
        )
