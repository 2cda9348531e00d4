"""TLS and an ACL user for the state store and the broker, and no password anywhere.

A real ``redis-server`` listening only on a TLS port, with a CA, a server and a client
certificate made here (openssl), clients' certificates required, the ``default`` user
disabled and one ACL user (``ACL SETUSER``) with a password. ``REDIS_URL=rediss://orch:
PASSWORD@...`` and the ``ORCHESTRATOR_REDIS_TLS_*`` files, no ``BROKER_URL``: a worker
and beat (separate processes) run an execution through both. Then the password is looked
for everywhere the URL could leak it: the worker's and beat's logs, every CLI command's
output, the UI's pages and API, the Celery events Flower builds its task pages from
(``args``/``kwargs``), and the error messages of a wrong password, an unreachable host
and a malformed URL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator import Orchestrator, config
from orchestrator import cli as cli_module
from orchestrator.errors import ConfigurationError, StoreUnavailable
from orchestrator.testing import process_settings
from tests.helpers import REPO, child_environ, machine, task, wait_until, worker_and_beat
from tests.redis_servers import free_port, redis_servers

#: A password that cannot appear by chance, with characters a URL must percent-encode.
PASSWORD = "pw-" + uuid.uuid4().hex + "/+="
USER = "orch"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client one, signed by it."""
    directory.mkdir()
    files = {name: directory / name for name in ("ca.key", "ca.pem")}
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", str(files["ca.key"]), "-out", str(files["ca.pem"]),
    )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        key, csr, pem = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext_file = directory / f"{name}.ext"
        ext_file.write_text(extension + "\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(files["ca.pem"]),
            "-CAkey", str(files["ca.key"]), "-CAcreateserial", "-days", "2",
            "-extfile", str(ext_file), "-out", str(pem),
        )  # fmt: skip
        files[f"{name}.key"], files[f"{name}.pem"] = key, pem
    return files


@dataclass
class TlsRedis:
    port: int
    certs: dict[str, Path]

    def url(self, password: str = PASSWORD) -> str:
        from urllib.parse import quote

        return f"rediss://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/0"

    def settings(self, **values: Any) -> config.Settings:
        run = uuid.uuid4().hex[:8]
        return config.settings_from_env(
            **{
                "redis_url": self.url(),
                "broker_url": None,
                "key_prefix": f"orch-tls-{run}",
                "queue": f"orchestrator-tls-{run}",
                "task_modules": ["tests.activities"],
                "redis_tls_ca_file": str(self.certs["ca.pem"]),
                "redis_tls_cert_file": str(self.certs["client.pem"]),
                "redis_tls_key_file": str(self.certs["client.key"]),
                **values,
            }
        )


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    root = tmp_path_factory.mktemp("tls")
    certs = _certificates(root / "certs")
    port = free_port()
    tls = {
        "ssl": True,
        "ssl_ca_certs": str(certs["ca.pem"]),
        "ssl_certfile": str(certs["client.pem"]),
        "ssl_keyfile": str(certs["client.key"]),
    }
    with redis_servers(root / "redis") as servers:
        server = servers.start(
            "tls",
            [
                "port 0",  # no plain-text port at all
                f"tls-port {port}",
                f"tls-cert-file {certs['server.pem']}",
                f"tls-key-file {certs['server.key']}",
                f"tls-ca-cert-file {certs['ca.pem']}",
                "tls-auth-clients yes",
            ],
            port=port,
            ping=tls,
        )
        # The port line above is replaced by "port 0"; the test's checks go over TLS.
        with server.client(**tls) as admin:
            admin.acl_setuser(
                USER,
                enabled=True,
                passwords=[f"+{PASSWORD}"],
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
            admin.acl_setuser("default", enabled=False)
        yield TlsRedis(port, certs)


def _definition(tag: str) -> dict[str, Any]:
    return machine(
        {
            "First": task("echo", Parameters={"tag": tag, "n.$": "$.n"}, Next="Pause"),
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Second"},
            "Second": task("add", Parameters={"a.$": "$.n", "b": 1}, End=True),
        }
    )


class Events:
    """Every Celery event on the broker (a Receiver in a thread, as Flower listens)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(dict(event))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("type") == kind]


def _cli(settings: config.Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_environ(
        REDIS_URL=settings.redis_url or "",
        ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
        ORCHESTRATOR_QUEUE=settings.queue,
        ORCHESTRATOR_REDIS_TLS_CA_FILE=settings.redis_tls_ca_file or "",
        ORCHESTRATOR_REDIS_TLS_CERT_FILE=settings.redis_tls_cert_file or "",
        ORCHESTRATOR_REDIS_TLS_KEY_FILE=settings.redis_tls_key_file or "",
    )
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.e2e
def test_tls_and_an_acl_user_for_the_store_and_the_broker_and_no_password_leaks(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    settings = tls_redis.settings()
    env = child_environ(
        REDIS_URL=settings.redis_url or "",
        ORCHESTRATOR_KEY_PREFIX=settings.key_prefix,
        ORCHESTRATOR_QUEUE=settings.queue,
        ORCHESTRATOR_TASK_MODULES="tests.activities",
        ORCHESTRATOR_REDIS_TLS_CA_FILE=str(tls_redis.certs["ca.pem"]),
        ORCHESTRATOR_REDIS_TLS_CERT_FILE=str(tls_redis.certs["client.pem"]),
        ORCHESTRATOR_REDIS_TLS_KEY_FILE=str(tls_redis.certs["client.key"]),
    )
    encoded = (settings.redis_url or "").split(":")[2].split("@")[0]
    secrets = {PASSWORD, encoded}
    seen: dict[str, str] = {}
    tag = uuid.uuid4().hex[:8]
    logs = tmp_path / "logs"
    logs.mkdir()
    events = Events()

    client = Orchestrator(settings=settings)
    try:
        # Flower's view: the events the workers send on the (TLS, ACL) broker.
        connection = client.app.connection_for_read()
        receiver = client.app.events.Receiver(connection, handlers={"*": events.record})
        listener = threading.Thread(
            target=receiver.capture,
            kwargs={"limit": None, "timeout": None, "wakeup": False},
            daemon=True,
        )
        listener.start()
        with worker_and_beat(env, logs, REPO):
            handles = [
                client.start_workflow(_definition(tag), {"n": n}, name=f"tls-{tag}-{n}")
                for n in range(3)
            ]
            for n, handle in enumerate(handles):
                result = handle.result(60)
                assert (result.status, result.output) == ("SUCCEEDED", n + 1), result
            wait_until(
                lambda: len(events.of("task-succeeded")) >= 6,
                30,
                message="the workers' task events",
            )
            # The CLI, against the same store and broker (in process, with the settings
            # in force: a subprocess each took seconds; the store-down one below is one).
            with process_settings(settings):
                for args in (
                    ["list"],
                    ["describe", handles[0].execution_id],
                    ["history", handles[0].execution_id],
                    ["dlq", "list"],
                ):
                    ran = CliRunner().invoke(cli_module.app, args, env={"COLUMNS": "200"})
                    assert ran.exit_code == 0, (args, ran.output, ran.exception)
                    seen[f"cli {' '.join(args)}"] = ran.stdout + ran.stderr
            assert tag in seen["cli list"] or handles[0].execution_id in seen["cli list"]
        receiver.should_stop = True
        listener.join(10)
        connection.release()
    finally:
        client.close()

    for path in sorted(logs.glob("*.log")):
        seen[path.name] = path.read_text(errors="replace")
    assert "ready" in seen["worker.log"]
    seen["celery events"] = json.dumps(events.events, default=str)
    assert any(tag in json.dumps(e, default=str) for e in events.of("task-received"))

    # The UI: its pages and API over the same store.
    with process_settings(settings):
        from orchestrator.ui.app import create_app

        with TestClient(create_app(token=""), base_url="http://localhost") as ui:
            for path in (
                "/",
                "/api/executions",
                f"/executions/{handles[0].execution_id}",
                f"/api/executions/{handles[0].execution_id}",
                "/api/dead-letters",
                "/metrics",
            ):
                answer = ui.get(path)
                seen[f"ui {path}"] = answer.text
            assert handles[0].execution_id in seen["ui /api/executions"]

    # Error messages: a wrong password, a host with nothing on it, a malformed URL; the
    # CLI's for the first two.
    wrong = Orchestrator(settings=settings, redis_url=tls_redis.url("not-" + PASSWORD))
    with pytest.raises(StoreUnavailable, match="invalid username-password") as auth_error:
        wrong.describe_execution(handles[0].execution_id)
    wrong.close()
    seen["wrong password"] = repr(auth_error.value) + str(auth_error.value)
    nowhere = f"rediss://{USER}:{encoded}@127.0.0.1:{free_port()}/0"
    down = Orchestrator(settings=settings, redis_url=nowhere, redis_timeout_seconds=1)
    with pytest.raises(StoreUnavailable) as unavailable:
        down.describe_execution("x")
    down.close()
    seen["store unavailable"] = repr(unavailable.value) + str(unavailable.value)
    with pytest.raises(ConfigurationError) as malformed:
        Orchestrator(settings=settings, redis_url=f"redis+sentinel://{USER}:{encoded}@h:x/m")
    seen["malformed url"] = str(malformed.value)
    unreachable = settings.model_copy(update={"redis_url": nowhere})
    done = _cli(unreachable, "list")
    assert done.returncode == 3, done.stderr
    seen["cli list (store down)"] = done.stdout + done.stderr

    leaks = [where for where, text in seen.items() if any(s in text for s in secrets)]
    assert not leaks, f"the password appears in: {leaks}"
    # ... and the masked URL is what they show instead.
    assert f"{USER}:***@" in seen["store unavailable"]
    assert f"{USER}:***@" in seen["cli list (store down)"]
