"""A local HTTP server for the HTTP Task's tests: a thread serving on a bound port.

Every request is recorded (method, path, query, headers, body). Routes:

* ``/echo/...``: 200, JSON of what was received (method, path, query pairs, body text);
* ``/status/NNN``: answers NNN with a JSON error body;
* ``/flaky/TAG/N``: 503 the first N times for TAG, then 200;
* ``/slow/TAG``: answers only when :meth:`LocalHttpServer.release` is called for TAG (or
  for all, as the server stops), or after 30 s;
* ``/text``: 200, ``text/plain``;
* ``/big/N``: 200, ``N`` bytes of text with their ``Content-Length``;
* ``/gzip/N``: 200, ``N`` bytes of text gzip-compressed (``Content-Encoding: gzip``);
* ``/endless/TAG``: 200, a chunked body that goes on (64 KiB a chunk, 64 MiB at most)
  until the client stops reading; the bytes written are counted in ``sent[TAG]``;
* ``/token``: an OAuth client-credentials token endpoint (client ``orders``, secret
  ``s3cr3t-client``), each token a new one (``token-1``, ``token-2``...);
* ``/orders...``: a small JSON API for the conformance corpus (``POST /orders`` ->
  201 with an id, ``GET /orders/ID`` -> the order; ``X-Api-Key: orders-k3y`` required),
  ``POST /payments`` (a form; a bearer token from ``/token`` required) -> 402 when the
  amount is over 1000.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

CLIENT_ID = "orders"
CLIENT_SECRET = "s3cr3t-client"
#: The key the ``/orders`` API wants in ``X-Api-Key``.
ORDERS_API_KEY = "orders-k3y"


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class LocalHttpServer:
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    flaky: dict[str, int] = field(default_factory=dict)
    tokens_issued: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def gate(self, tag: str) -> threading.Event:
        with self.lock:
            event = self.gates.setdefault(tag, threading.Event())
            if self.stopping:
                event.set()
            return event

    def release(self, tag: str | None = None) -> None:
        """Let the ``/slow`` requests of ``tag`` (of every tag: None) answer."""
        with self.lock:
            if tag is None:
                self.stopping = True
            for name, event in self.gates.items():
                if tag is None or name == tag:
                    event.set()

    def received(self, path_prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


def _handler(state: LocalHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                parts.path,
                parse_qsl(parts.query, keep_blank_values=True),
                dict(self.headers.items()),
                body,
            )
            with state.lock:
                state.requests.append(request)
            if parts.path.startswith("/endless/"):
                self._endless(parts.path.rsplit("/", 1)[1])
                return
            status, payload, content_type = self._route(request)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-Count", str(len(state.requests)))
            if parts.path.startswith("/gzip/"):
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _endless(self, tag: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"y" * 65536
            try:
                for _ in range(1024):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    with state.lock:
                        state.sent[tag] = state.sent.get(tag, 0) + len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client stopped reading
            self.close_connection = True

        def _route(self, request: Request) -> tuple[int, Any, str]:
            path = request.path
            js = "application/json"
            if path.startswith("/echo"):
                return (
                    200,
                    {
                        "method": request.method,
                        "path": path,
                        "query": request.query,
                        "body": request.body.decode(),
                        "contentType": request.header("Content-Type"),
                    },
                    js,
                )
            if path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                return code, {"message": f"status {code}"}, js
            if path.startswith("/flaky/"):
                _, _, tag, count = path.split("/")
                with state.lock:
                    seen = state.flaky.get(tag, 0)
                    state.flaky[tag] = seen + 1
                if seen < int(count):
                    return 503, {"message": "try again"}, js
                return 200, {"attempts": seen + 1}, js
            if path.startswith("/slow/"):
                state.gate(path.rsplit("/", 1)[1]).wait(30)
                return 200, {"slow": True}, js
            if path == "/text":
                return 200, b"hello, world", "text/plain; charset=utf-8"
            if path.startswith("/big/"):
                return 200, b"x" * int(path.rsplit("/", 1)[1]), "text/plain"
            if path.startswith("/gzip/"):
                data = gzip.compress(b"z" * int(path.rsplit("/", 1)[1]))
                return 200, data, "text/plain"
            if path == "/token":
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                form = dict(parse_qsl(request.body.decode()))
                if request.header("Authorization") != f"Basic {expected}":
                    return 401, {"error": "invalid_client"}, js
                if form.get("grant_type") != "client_credentials":
                    return 400, {"error": "unsupported_grant_type"}, js
                with state.lock:
                    state.tokens_issued += 1
                    token = f"token-{state.tokens_issued}"
                return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, js
            return self._orders(request)

        def _orders(self, request: Request) -> tuple[int, Any, str]:
            js = "application/json"
            path, method = request.path, request.method
            if path.startswith("/orders") and request.header("X-Api-Key") != ORDERS_API_KEY:
                return 401, {"message": "missing or wrong API key"}, js
            bearer = request.header("Authorization") or ""
            if path == "/payments" and not bearer.startswith("Bearer token-"):
                return 401, {"message": "no bearer token"}, js
            if path == "/orders" and method == "POST":
                order = json.loads(request.body or b"{}")
                return 201, {"id": f"ord-{order.get('customer', 'x')}", **order}, js
            if path.startswith("/orders/") and method == "GET":
                order_id = path.rsplit("/", 1)[1]
                if order_id == "missing":
                    return 404, {"message": "no such order"}, js
                return 200, {"id": order_id, "status": "SHIPPED"}, js
            if path == "/payments" and method == "POST":
                form = dict(parse_qsl(request.body.decode()))
                if float(form.get("amount", "0")) > 1000:
                    return 402, {"message": "card declined"}, js
                return 200, {"paid": form.get("amount"), "currency": form.get("currency")}, js
            return 404, {"message": f"no route {method} {path}"}, js

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away (the HTTP Task's size cap and timeouts do that)
        super().handle_error(request, client_address)


@contextmanager
def local_http_server() -> Iterator[LocalHttpServer]:
    """A server on 127.0.0.1 (a free port), served by a thread, shut down at the end."""
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = LocalHttpServer(server)
    server.RequestHandlerClass = _handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="local-http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
