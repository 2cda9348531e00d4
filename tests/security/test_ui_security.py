"""The execution view against hostile clients: who may read and write, body sizes,
redirects, Host headers, and secrets (the UI token, task tokens) kept out of every answer
and log line.

The authentication matrix enumerates ``app.routes``: a route added later is covered
without touching this file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

import tests.ui.ui_activities  # noqa: F401 - registers the ui-* activities before the worker starts
from orchestrator import start_workflow
from orchestrator.engine.store import get_store
from orchestrator.testing import LocalOrchestrator
from orchestrator.ui import create_app, security
from tests.helpers import wait_until
from tests.ui.workflows import ORDER_APPROVAL, order_input

REPO = Path(__file__).resolve().parents[2]
TOKEN = "ui-token-7f3c9a1e5b2d4c6e8a0b"
BASE = "http://localhost"
#: An execution id that is well formed but names nothing: actions on it change nothing.
NOBODY = "no-such-execution"

# -- the routes ---------------------------------------------------------------------------


def _routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the app, path parameters filled in."""
    app = create_app(token=TOKEN, public_read=False)
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("GET", f"{route.path}/ui.css"))
            continue
        assert isinstance(route, APIRoute | Route), route
        path = re.sub(r"\{[^}]+\}", NOBODY, route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, path))
    assert len(found) >= 15, found  # the enumeration itself works
    return sorted(set(found))


ROUTES = _routes()
CONFIGS = ("token", "no-token", "public-read")
CREDENTIALS = ("none", "wrong-bearer", "wrong-cookie", "right-bearer", "right-cookie")


def _app(config: str) -> Any:
    if config == "token":
        return create_app(token=TOKEN, public_read=False)
    if config == "public-read":
        return create_app(token=TOKEN, public_read=True)
    return create_app(token="", public_read=False)


@pytest.fixture(scope="module")
def _module_clients(orchestrator: LocalOrchestrator) -> Iterator[dict[str, TestClient]]:
    made = {
        config: TestClient(_app(config), base_url=BASE, raise_server_exceptions=False)
        for config in CONFIGS
    }
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


@pytest.fixture
def clients(_module_clients: dict[str, TestClient]) -> dict[str, TestClient]:
    """One client per configuration, without the cookies an earlier test signed in with."""
    for client in _module_clients.values():
        client.cookies.clear()
    return _module_clients


def _headers(credential: str) -> dict[str, str]:
    return {
        "none": {},
        "wrong-bearer": {"Authorization": "Bearer not-the-token"},
        "wrong-cookie": {"Cookie": f"{security.COOKIE}={security.session_value('nope')}"},
        "right-bearer": {"Authorization": f"Bearer {TOKEN}"},
        "right-cookie": {"Cookie": f"{security.COOKIE}={security.session_value(TOKEN)}"},
    }[credential]


def _send(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    if method == "GET":
        return client.get(path, headers=headers, follow_redirects=False)
    if path.startswith("/api/"):
        # A valid shape that names nothing: an authorised call fails after the check.
        return client.request(method, path, json={}, headers=headers, follow_redirects=False)
    return client.request(
        method, path, data={"step_key": "Nothing"}, headers=headers, follow_redirects=False
    )


def _refused(response: Any) -> bool:
    """Whether the UI refused the request for want of the token."""
    if response.status_code == 401:
        return True
    location = response.headers.get("location", "")
    return response.status_code in (302, 303, 307) and location.startswith("/login")


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("method, path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_authentication_matrix(clients, config, credential, method, path):
    response = _send(clients[config], method, path, _headers(credential))
    assert response.status_code < 500, response.text
    write = method != "GET"
    right = credential.startswith("right")
    if path == "/login" and write:
        # The sign-in form itself: 401 is its answer to a missing or wrong token field.
        assert response.status_code == (401 if config != "no-token" else 303)
        return
    if config == "no-token" or security.is_open_path(path):
        expected_refused = False
    elif config == "public-read" and not write:
        expected_refused = False
    else:
        expected_refused = not right
    assert _refused(response) == expected_refused, (response.status_code, response.text[:300])
    if expected_refused:
        if path.startswith("/api/") or path in ("/openapi.json", "/metrics"):
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        elif not write:
            assert response.headers["location"].startswith("/login?next=")


def test_matrix_covers_every_kind_of_route():
    paths = {p for _, p in ROUTES}
    assert {"/", "/healthz", "/openapi.json", "/metrics", "/dead-letters", "/login"} <= paths
    assert any(m == "POST" and p.startswith("/api/task-tokens") for m, p in ROUTES)
    assert any(p.startswith("/static/") for p in paths)
    assert len(ROUTES) * len(CONFIGS) * len(CREDENTIALS) >= 15 * 15


def test_healthz_stays_open(clients):
    for client in clients.values():
        assert client.get("/healthz").json() == {"status": "ok"}


def test_form_token_field_authorises_a_page_action_only(clients, orchestrator):
    client = clients["token"]
    # The field works for a page's form...
    refused = client.post(f"/executions/{NOBODY}/stop", data={"token": "wrong"})
    assert refused.status_code == 401
    allowed = client.post(f"/executions/{NOBODY}/stop", data={"token": TOKEN})
    assert allowed.status_code == 404  # authorised; the execution does not exist
    # ...never for the JSON API, whose token goes in a header.
    api = client.post(f"/api/executions/{NOBODY}/stop", data={"token": TOKEN})
    assert api.status_code == 401


# -- request bodies -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(orchestrator: LocalOrchestrator) -> Iterator[TestClient]:
    """A token-protected UI with a 10 kB body limit."""
    app = create_app(token=TOKEN, public_read=False, max_body_bytes=10_000)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_default_body_limit_follows_the_input_limit(orchestrator):
    limit = create_app(token=TOKEN).state.body_limit
    max_input = orchestrator.settings.max_input_bytes
    assert 2 * max_input < limit <= 2 * max_input + 2 * 1024 * 1024


def test_the_token_is_checked_before_the_body(small):
    big = b'{"definition": "order_fulfillment", "input": "' + b"x" * 50_000 + b'"}'
    refused = small.post(
        "/api/executions", content=big, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    too_large = small.post(
        "/api/executions", content=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "too_large"


def test_streamed_bodies_are_counted(small):
    def chunks() -> Iterator[bytes]:
        yield b'{"definition": "order_fulfillment", "input": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = small.post(
        "/api/executions", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"


def test_forms_over_the_limit_are_413_pages(small):
    response = small.post(
        "/executions", data={"workflow": "order_fulfillment", "input": "x" * 20_000}, headers=AUTH
    )
    assert response.status_code == 413 and "<html" in response.text.lower()
    login = small.post("/login", data={"token": TOKEN, "next": "/" + "x" * 20_000})
    assert login.status_code == 413


def test_bad_content_length_is_400(small):
    response = small.post(
        "/api/executions", content=b"{}", headers={**AUTH, "Content-Length": "-5"}
    )
    assert response.status_code == 400


# -- redirects ----------------------------------------------------------------------------

EVIL_TARGETS = [
    "//evil.example/",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "/%5Cevil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "///evil.example",
    " //evil.example",
]


def _local(location: str) -> bool:
    parts = urlsplit(location)
    return (
        not parts.scheme
        and not parts.netloc
        and location.startswith("/")
        and not location.startswith("//")
        and "\\" not in location
        and not re.search(r"[\x00-\x20]", location)
        and "%2f%2f" not in location.lower()[:8]
    )


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_sign_in_never_sends_elsewhere(clients, target):
    response = clients["token"].post(
        "/login", data={"token": TOKEN, "next": target}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/?done=signed-in")
    page = clients["token"].get("/login", params={"next": target})
    assert page.status_code == 200
    assert 'name="next" value="/"' in page.text


def _raw_get(client: TestClient, raw_path: str) -> Any:
    """GET with exactly this path on the wire (httpx would read ``//host`` as a host)."""
    import httpx

    url = httpx.URL(BASE + "/").copy_with(raw_path=raw_path.encode())
    return client.get(url, follow_redirects=False)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_no_request_path_redirects_elsewhere(clients, config, target):
    path = re.sub(r"[\x00-\x20]", lambda m: f"%{ord(m.group()):02X}", target)
    path = path if path.startswith("/") else "/" + path
    for url in (path, f"{path}?token=x", f"{path}/", f"/executions?next={path}"):
        response = _raw_get(clients[config], url)
        assert response.status_code < 500, (url, response.status_code)
        if 300 <= response.status_code < 400:
            assert _local(response.headers["location"]), (url, response.headers["location"])


def test_trailing_slashes_are_not_redirected(clients):
    for path in ("/api/executions/", "/dead-letters/", "//evil.example//"):
        response = _raw_get(clients["no-token"], path)
        assert response.status_code == 404, path


def test_a_redirect_built_elsewhere_is_made_local():
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse

    async def bounce(request: Any) -> RedirectResponse:
        return RedirectResponse(request.query_params["to"], 303)

    inner = Starlette(routes=[Route("/bounce", bounce)])
    client = TestClient(security.LocalRedirectMiddleware(inner), base_url=BASE)
    for target in EVIL_TARGETS:
        response = client.get("/bounce", params={"to": target}, follow_redirects=False)
        assert response.headers["location"] == "/", target
    kept = client.get("/bounce", params={"to": "/executions/x?state=A"}, follow_redirects=False)
    assert kept.headers["location"] == "/executions/x?state=A"


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_is_local_path_refuses_evil_forms(target):
    assert not security.is_local_path(target)
    assert security.safe_next(target) == "/"


# -- Host header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("localhost", True),
        ("localhost:8080", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("LOCALHOST", True),
        ("evil.example", False),
        ("evil.example:8080", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
        ("[::1", False),
    ],
)
def test_host_header_is_checked(clients, host, allowed):
    for config in CONFIGS:
        response = clients[config].get("/healthz", headers={"Host": host})
        assert (response.status_code == 200) == allowed, (config, host, response.status_code)
        if not allowed:
            assert response.status_code == 400
        write = clients[config].post(
            f"/api/executions/{NOBODY}/stop", headers={"Host": host, **AUTH}
        )
        assert (write.status_code == 400) == (not allowed), (config, host)


def test_allowed_hosts_are_configurable(orchestrator, monkeypatch):
    monkeypatch.setenv(security.ALLOWED_HOSTS_ENV, "ui.example.com, *.corp.example")
    hosts = security.allowed_hosts("10.1.2.3")
    assert {"localhost", "127.0.0.1", "[::1]", "10.1.2.3", "ui.example.com"} <= set(hosts)
    app = create_app(token=TOKEN)
    with TestClient(app, base_url="http://ui.example.com", raise_server_exceptions=False) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "a.corp.example"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert security.allowed_hosts("0.0.0.0", "") == ["localhost", "127.0.0.1", "[::1]"]
    assert "[fd00::1]" in security.allowed_hosts("fd00::1", "")


# -- task tokens never leave the server ----------------------------------------------------


def _waiting_approval() -> tuple[str, str]:
    """An execution waiting at ManagerApproval, and its raw task token."""
    handle = start_workflow(ORDER_APPROVAL, order_input())
    store = get_store()

    def token() -> str | None:
        record = store.client.hget(store.keys.steps(handle.execution_id), "ManagerApproval")
        status = store.client.hget(
            store.keys.steps(handle.execution_id), store.keys.status_field("ManagerApproval")
        )
        if record is None or not (status or "").startswith("WAITING"):
            return None
        return json.loads(record).get("token")

    return handle.execution_id, wait_until(token, 20, message="ManagerApproval waits")


def _every_answer(client: TestClient, execution_id: str) -> dict[str, str]:
    """Every GET route's answer about ``execution_id``, and the state pages."""
    urls = [p.replace(NOBODY, execution_id) for m, p in ROUTES if m == "GET"]
    urls += [
        f"/executions/{execution_id}?state=ManagerApproval",
        f"/executions/{execution_id}?state=ManagerApproval&fragment=details",
        f"/executions/{execution_id}?state=ValidateOrder",
        f"/api/executions/{execution_id}/history?after=0",
        "/?status=RUNNING",
        "/api/executions?status=RUNNING",
    ]
    answers = {}
    for url in urls:
        response = client.get(url, headers=AUTH, follow_redirects=False)
        assert response.status_code < 500, (url, response.text[:300])
        answers[url] = response.text + json.dumps(dict(response.headers))
    assert any("ManagerApproval" in text for text in answers.values())
    return answers


def test_no_answer_holds_a_task_token(clients):
    client = clients["token"]
    execution_id, token = _waiting_approval()
    for url, text in _every_answer(client, execution_id).items():
        assert token not in text, url
    # The page offers approval by execution and step, never by token.
    page = client.get(f"/executions/{execution_id}", headers=AUTH).text
    assert 'name="step_key" value="ManagerApproval"' in page
    waiting = client.get(f"/api/executions/{execution_id}", headers=AUTH).json()
    assert [w["step_key"] for w in waiting["waiting_tasks"]] == ["ManagerApproval"]
    # Approving by step key: the server looks the token up itself.
    approved = client.post(
        f"/executions/{execution_id}/tasks/approve",
        data={"step_key": "ManagerApproval", "output": '{"approved": true}'},
        headers=AUTH,
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    wait_until(
        lambda: (
            client.get(f"/api/executions/{execution_id}", headers=AUTH).json()["status"]
            == "SUCCEEDED"
        ),
        20,
    )
    # Spent, the token answers nothing (the engine redacts it from the history).
    spent = client.post("/api/task-tokens/success", json={"token": token}, headers=AUTH)
    assert spent.status_code == 409 and token not in spent.text


def test_tokens_in_workflow_data_are_masked(clients):
    """A token copied into an execution's data ($$.Task.Token in Parameters) is masked in
    every answer while it can still be used."""
    client = clients["public-read"]
    execution_id, token = _waiting_approval()
    answers = _every_answer(client, execution_id)
    for url, text in answers.items():
        assert token not in text, url


def test_api_answers_a_task_by_step_key(clients):
    client = clients["token"]
    execution_id, token = _waiting_approval()
    body = {"execution_id": execution_id, "step_key": "ManagerApproval", "error": "Rejected"}
    refused = client.post("/api/task-tokens/failure", json=body)
    assert refused.status_code == 401
    answered = client.post("/api/task-tokens/failure", json=body, headers=AUTH)
    assert answered.status_code == 200 and token not in answered.text
    again = client.post("/api/task-tokens/failure", json=body, headers=AUTH)
    assert again.status_code == 409 and token not in again.text


# -- errors are answers, never tracebacks ---------------------------------------------------

BAD_REQUESTS = [
    ("POST", "/api/executions", {"content": b"{not json"}),
    ("POST", "/api/executions", {"content": b"[" * 100_000 + b"]" * 100_000}),
    ("POST", "/api/executions", {"json": {"definition": "{" * 5000}}),
    ("POST", "/api/executions", {"json": {"definition": {"StartAt": 1}}}),
    ("POST", "/api/executions", {"json": {"definition": "order_fulfillment", "name": "a b"}}),
    ("POST", "/api/executions", {"json": {"definition": "../../etc/passwd"}}),
    (
        "POST",
        "/api/executions",
        {"content": b'{"definition": "order_fulfillment", "input": 1e400}'},
    ),
    ("POST", "/api/task-tokens/success", {"json": {"token": "x" * 5000}}),
    ("POST", "/api/task-tokens/success", {"json": {"execution_id": "../x", "step_key": "A"}}),
    ("POST", "/api/executions/a%00b/stop", {"json": {}}),
    ("GET", "/api/executions?limit=-1", {}),
    ("GET", "/api/executions/" + "x" * 5000, {}),
    ("GET", "/api/executions/%ff%fe/history", {}),
    ("POST", "/executions", {"data": {"definition": "[" * 50_000, "input": "{}"}}),
    ("POST", "/executions", {"data": {"workflow": "order_fulfillment", "input": "[" * 50_000}}),
    (
        "POST",
        "/executions",
        {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    ),
    ("GET", "/?limit=abc", {}),
    ("GET", "/executions/%00", {}),
]


@pytest.mark.parametrize("method, url, kwargs", BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
def test_bad_input_is_a_4xx_answer(clients, method, url, kwargs):
    headers = {**AUTH, **kwargs.pop("headers", {})} if "headers" in kwargs else dict(AUTH)
    response = clients["token"].request(method, url, headers=headers, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text and 'File "' not in response.text
    if url.startswith("/api/"):
        assert response.json()["error"]["code"]
    else:
        assert "<html" in response.text.lower()


def test_an_orchestrator_error_is_a_400(orchestrator, monkeypatch):
    from orchestrator.errors import OrchestratorError
    from orchestrator.ui import app as ui_app

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OrchestratorError("something about the request")

    monkeypatch.setattr(ui_app, "stop_execution", broken)
    with TestClient(create_app(token=""), base_url=BASE, raise_server_exceptions=False) as client:
        response = client.post(f"/api/executions/{NOBODY}/stop")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "something about the request"
        page = client.post(f"/executions/{NOBODY}/stop")
        assert page.status_code == 400 and "something about the request" in page.text


# -- the real server: its log, its memory, where it listens ------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(orchestrator: LocalOrchestrator, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``orchestrator ui`` in its own process, with the UI token; its output in a file."""
    port = _free_port()
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    settings = orchestrator.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")},
        "REDIS_URL": settings.redis_url or "",
        "ORCHESTRATOR_KEY_PREFIX": settings.key_prefix,
        "ORCHESTRATOR_QUEUE": settings.queue,
        "ORCHESTRATOR_UI_TOKEN": TOKEN,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "ui", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_until(up, 30, interval=0.1, message="orchestrator ui listens")
        yield {"base": base, "port": port, "process": process, "log": log}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _http(port: int, head: str, body: bytes = b"") -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data else 0
    return status, data.decode("latin-1")


def test_the_ui_log_never_holds_the_ui_token(served):
    port = served["port"]
    host = f"Host: 127.0.0.1:{port}\r\n"
    requests = [
        f"GET /?token={TOKEN} HTTP/1.1\r\n{host}Connection: close\r\n\r\n",
        f"GET /executions/x?a=1&token={TOKEN} HTTP/1.1\r\n{host}Connection: close\r\n\r\n",
        f"GET /login?next=%2F%3Ftoken%3D{TOKEN} HTTP/1.1\r\n{host}Connection: close\r\n\r\n",
        f"GET /api/executions HTTP/1.1\r\n{host}Authorization: Bearer {TOKEN}\r\n"
        "Connection: close\r\n\r\n",
        f"GET /api/executions?token={TOKEN} HTTP/1.1\r\n{host}Connection: close\r\n\r\n",
    ]
    statuses = [_http(port, r)[0] for r in requests]
    assert statuses == [303, 303, 200, 200, 401], statuses
    form = f"token={TOKEN}&next=%2F".encode()
    status, answer = _http(
        port,
        f"POST /login HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n",
        form,
    )
    assert status == 303 and TOKEN not in answer  # the cookie is derived from the token
    text = wait_until(
        lambda: (t := served["log"].read_text()).count('"GET /') >= 5 and t, 10, message="log"
    )
    assert "[redacted]" in text
    assert TOKEN not in text


def test_a_huge_body_costs_no_memory(served):
    """200 MB announced (and tens of MB sent) without the token: 401 at once; with it,
    413 at once, or after the limit when the body is chunked. The process stays small."""
    port, pid = served["port"], served["process"].pid
    host = f"Host: 127.0.0.1:{port}\r\n"
    before = _rss_bytes(pid)
    peak = before

    def send_big(headers: str, chunked: bool) -> int:
        nonlocal peak
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST /api/executions HTTP/1.1\r\n{host}{headers}\r\n".encode())
            piece = b"x" * (1 << 20)
            if chunked:
                piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
            data = b""
            try:
                for _ in range(40):
                    sock.sendall(piece)
                    peak = max(peak, _rss_bytes(pid))
                    sock.setblocking(False)
                    try:
                        data += sock.recv(65536)
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                    if data:
                        break
            except (OSError, TimeoutError):
                pass  # the server answered and stopped reading (or closed)
            sock.settimeout(10)
            try:
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        peak = max(peak, _rss_bytes(pid))
        assert data, "no answer"
        return int(data.split(b" ", 2)[1])

    big = "Content-Type: application/json\r\nContent-Length: 200000000\r\n"
    assert send_big(big, chunked=False) == 401
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    assert send_big(big + auth, chunked=False) == 413
    chunked = f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{auth}"
    assert send_big(chunked, chunked=True) == 413
    assert served["process"].poll() is None
    assert peak - before < 64 * 1024 * 1024, (before, peak)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_ui_refuses_an_open_interface_without_a_token(orchestrator, host):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")},
        "REDIS_URL": orchestrator.settings.redis_url or "redis://127.0.0.1:1/0",
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ui", "--host", host, "--port", "1"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ORCHESTRATOR_UI_TOKEN" in result.stderr and "--insecure-no-token" in result.stderr


def test_open_bind_rules():
    assert security.refuse_open_bind("0.0.0.0", None) is not None
    assert security.refuse_open_bind("0.0.0.0", TOKEN) is None
    assert security.refuse_open_bind("0.0.0.0", None, insecure_no_token=True) is None
    for local in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert security.refuse_open_bind(local, None) is None, local


def test_redact():
    assert security.redact(f"GET /?a=1&token={TOKEN}&b=2", [TOKEN]) == (
        "GET /?a=1&token=[redacted]&b=2"
    )
    assert TOKEN not in security.redact(f"/login?next=%2F%3Ftoken%3D{TOKEN}")
    assert security.redact(f"Bearer {TOKEN}", [TOKEN]) == "Bearer [redacted]"


@pytest.mark.parametrize(
    "query",
    [
        "?to%6Ben={}",
        "?TO%6BEN={}",
        "?to%256Ben={}",
        "?token[]={}",
        "?token%5B%5D={}",
        "?a=1&token[0]={}&b=2",
        "?access_token[x][y]={}",
        "?next=%2F%3Fto%256Ben%3D{}",
        "?token%3D{}",
    ],
)
def test_redact_token_names_however_written(query: str) -> None:
    line = f'127.0.0.1:5 - "GET /executions{query.format(TOKEN)} HTTP/1.1" 200'
    redacted = security.redact(line)
    assert TOKEN not in redacted, redacted
    assert "[redacted]" in redacted


def test_redact_keeps_other_parameters() -> None:
    line = "GET /executions?tokens=a&my_token=b&status=FAILED&tok=c"
    assert security.redact(line) == line
    assert security.redact("GET /?token[]=a&b=2") == "GET /?token[]=[redacted]&b=2"
