"""No message content can stop a worker: poison messages against a real worker process.

Each case publishes one hostile message straight to the worker's queue with kombu (as an
attacker with broker access would), then runs a normal execution on the same worker: it
must succeed, the worker process must still be alive, and the message must be in the
dead-letter queue with a bounded excerpt of its body, logged once. Celery alone stops the
worker on several of these (``CRITICAL Unrecoverable error``) and puts the message back,
so every restarted worker would die on it again.

The worker is a ``celery worker --pool prefork`` subprocess on its own queue and key
prefix; the broker is Redis (embedded, or ``REDIS_URL``) and RabbitMQ (``BROKER_URL`` when
it is AMQP, else amqp://guest:guest@127.0.0.1:5672// when it answers — CI's second run).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from orchestrator import config, list_dead_letters, start_workflow
from orchestrator.engine.celery_app import app, reconfigure
from orchestrator.engine.store import reset_stores
from tests.helpers import celery_worker_command, machine, process_environment, task, wait_until

REPO = Path(__file__).resolve().parents[2]
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672//"
#: The workers' message size limit in this test (the default is 16 MiB).
MAX_MESSAGE_BYTES = 1024 * 1024


def _amqp_url() -> str | None:
    broker = os.environ.get("BROKER_URL", "")
    if broker.startswith("amqp"):
        return broker
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return DEFAULT_AMQP
    except OSError:
        return None


BROKERS = ["redis"] + (["rabbitmq"] if _amqp_url() else [])


@dataclass
class Worker:
    settings: config.Settings
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None


@pytest.fixture(params=BROKERS)
def worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Worker]:
    with process_environment(
        "poison",
        ["tests.activities"],
        broker=_amqp_url() if request.param == "rabbitmq" else "redis",
        extra_env={"ORCHESTRATOR_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)},
    ) as own:
        settings = own.settings
        previous = config._override
        config.configure(settings)
        reset_stores()
        reconfigure(settings)
        app.amqp._producer_pool = None  # see tests/e2e/test_worker_kill.py
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                celery_worker_command(settings.queue, f"poison-{own.run}@%h"),
                env=own.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        state = Worker(settings, process, log)
        try:
            wait_until(lambda: "ready." in state.text() or not state.alive(), 90, message="ready")
            assert state.alive(), state.text()[-4000:]
            yield state
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=20)
            reset_stores()
            config.configure(previous)
            reconfigure(config.get_settings())
            app.amqp._producer_pool = None


GOOD_BODY = [[{"ok": 1}], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]

#: (case, body (bytes are sent as they are), content type, extra headers, task name)
CASES: list[tuple[str, Any, str, dict[str, Any], str | None]] = [
    ("null", b"null", "application/json", {}, "echo"),
    ("empty-object", b"{}", "application/json", {}, "echo"),
    ("number", b"42", "application/json", {}, "echo"),
    ("string", b'"str"', "application/json", {}, "echo"),
    ("pair", b"[1,2]", "application/json", {}, "echo"),
    ("empty-args-kwargs", b"[[],{}]", "application/json", {}, "echo"),
    ("three-numbers", b"[1,2,3]", "application/json", {}, "echo"),
    ("timelimit-string", GOOD_BODY, "application/json", {"timelimit": "x"}, "echo"),
    ("stamped-headers-int", GOOD_BODY, "application/json", {"stamped_headers": 5}, "echo"),
    ("eta-garbage", GOOD_BODY, "application/json", {"eta": "tomorrow"}, "echo"),
    ("retries-string", GOOD_BODY, "application/json", {"retries": "many"}, "echo"),
    ("header-shadows-method", GOOD_BODY, "application/json", {"get": "x"}, "echo"),
    ("garbage-bytes", b"\xff\xfe\x00\x81garbage", "application/json", {}, "echo"),
    ("wrong-content-type", GOOD_BODY, "application/x-yaml", {}, "echo"),
    ("pickle", b"\x80\x04K\x01.", "application/x-python-serialize", {}, "echo"),
    ("huge-body", b'["' + b"A" * (2 * MAX_MESSAGE_BYTES) + b'"]', "application/json", {}, "echo"),
    ("missing-task-header", GOOD_BODY, "application/json", {}, None),
    ("unknown-task", GOOD_BODY, "application/json", {}, "no-such-task"),
    ("bad-chain", [[{}], {}, {"chain": [5]}], "application/json", {}, "echo"),
    ("unknown-embed", [[{}], {}, {"__class__": 1}], "application/json", {}, "echo"),
    ("activity-int-execution-id", [[{}, 5, "S"], {}, {}], "application/json", {}, "echo"),
    ("activity-unknown-kwarg", [[], {"bogus": 1}, {}], "application/json", {}, "echo"),
    ("activity-four-args", [[{}, "e", "S", 4], {}, {}], "application/json", {}, "echo"),
    ("dispatch-bad-batch", [[["x"]], {}, {}], "application/json", {}, "orchestrator.dispatch"),
    ("dispatch-no-args", [[], {}, {}], "application/json", {}, "orchestrator.dispatch"),
    ("dead-letter-bad-args", [[1, 2], {}, {}], "application/json", {}, "orchestrator.dead_letter"),
]


def _publish(worker: Worker, case: str, body: Any, content_type: str, headers: dict, name):
    message_id = f"poison-{case}-{uuid.uuid4().hex[:8]}"
    all_headers: dict[str, Any] = {"lang": "py", "id": message_id, **headers}
    if name is not None:
        all_headers["task"] = name
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    queue = worker.settings.queue
    broker = worker.settings.effective_broker_url
    with Connection(broker) as connection:
        producer = Producer(
            connection.channel(), exchange=Exchange(queue, "direct"), routing_key=queue
        )
        producer.publish(
            body,
            content_type=content_type,
            content_encoding="utf-8" if content_type == "application/json" else "binary",
            headers=all_headers,
        )
    return message_id


def _letter(message_id: str) -> Any:
    for letter in list_dead_letters(limit=1000):
        if message_id in (letter.cause or ""):
            return letter
    return None


def test_no_message_stops_a_worker(worker: Worker) -> None:
    definition = machine({"Echo": task("echo")})
    outcomes: dict[str, str] = {}
    for case, body, content_type, headers, name in CASES:
        message_id = _publish(worker, case, body, content_type, headers, name)
        handle = start_workflow(definition, {"case": case})
        try:
            result = handle.result(60)
        except TimeoutError:
            pytest.fail(f"{case}: the next execution did not end\n{worker.text()[-6000:]}")
        assert result.status == "SUCCEEDED", (case, result)
        assert worker.alive(), (case, worker.text()[-6000:])
        letter = wait_until(lambda mid=message_id: _letter(mid), 15, message=f"{case} letter")
        # A bounded excerpt of the body, never all of it.
        assert len(json.dumps(letter.input)) <= 2048 + 64, (case, len(json.dumps(letter.input)))
        outcomes[case] = letter.error
    log = worker.text()
    assert "Unrecoverable error" not in log, log[-6000:]
    assert "Pool callback raised exception" not in log, log[-6000:]
    refused = [line for line in log.splitlines() if "refused a message" in line]
    assert len(refused) == len(CASES), refused  # each logged once
    assert outcomes["huge-body"] == "MessageTooLarge"
    assert outcomes["unknown-task"] == "UnknownTask"
    assert outcomes["pickle"] == "ContentDisallowed"
    assert outcomes["activity-int-execution-id"] == "InvalidArguments"
    assert set(outcomes.values()) <= {
        "MalformedMessage",
        "MessageTooLarge",
        "UnknownTask",
        "ContentDisallowed",
        "DecodeError",
        "InvalidArguments",
    }, outcomes
    print(f"\n[poison] {worker.settings.effective_broker_url.split(':')[0]}: {outcomes}")
