"""The UI's protection: a shared token, same-origin writes, and hostile-request limits.

When ``ORCHESTRATOR_UI_TOKEN`` is set, every request but the health check, the sign-in page
and the static files needs it: as an ``Authorization: Bearer`` header, the session cookie
the sign-in form (a POST) leaves, or, for a form's action, its ``token`` field.
``ORCHESTRATOR_UI_PUBLIC_READ=1`` opens the reads (pages and GET /api) again; writes still
need the token. Without a token the UI must only listen on a loopback interface (the
``orchestrator ui`` command refuses anything else).

Whatever the token: browser POSTs from another origin are refused, the Host header must be
one of the allowed hosts (a DNS-rebinding page cannot reach a local UI), bodies are
size-limited before anything parses them, and redirects only go to local paths.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.language.tokens import TOKEN_PATTERN

COOKIE = "orchestrator_ui_session"
TOKEN_ENV = "ORCHESTRATOR_UI_TOKEN"
PUBLIC_READ_ENV = "ORCHESTRATOR_UI_PUBLIC_READ"
ALLOWED_HOSTS_ENV = "ORCHESTRATOR_UI_ALLOWED_HOSTS"
#: Hosts a UI always answers to (with any port).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Paths anyone may reach whatever the configuration (exact, or a folder ending in "/").
OPEN_PATHS = ("/healthz", "/login", "/logout", "/static/")
#: What a request body may hold beyond the execution input (twice: once as text, once
#: escaped in a form or JSON string) — the ASL definition and field names.
MAX_DEFINITION_BYTES = 1_048_576
BODY_OVERHEAD_BYTES = 65_536
_SESSION_CONTEXT = b"orchestrator-ui-session-v1"


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def session_value(token: str) -> str:
    """The sign-in cookie's value for ``token``: derived from it, never the token itself."""
    return hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest()


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def authorized(request: Request, expected: str | None, form_token: str | None = None) -> bool:
    """Whether the request carries the UI token (always true when none is configured)."""
    if not expected:
        return True
    return (
        same_token(bearer(request), expected)
        or same_token(form_token, expected)
        or signed_in(request, expected)
    )


def signed_in(request: Request, expected: str | None) -> bool:
    """Whether the browser holds the sign-in cookie (or no token is needed)."""
    if not expected:
        return True
    return same_token(request.cookies.get(COOKIE), session_value(expected))


def is_open_path(path: str) -> bool:
    """Whether ``path`` is served to anyone (health check, sign-in, static files)."""
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


def public_read_enabled(value: str | None = None) -> bool:
    """Whether ``ORCHESTRATOR_UI_PUBLIC_READ`` (or ``value``) opens the reads."""
    text = os.environ.get(PUBLIC_READ_ENV, "") if value is None else value
    return text.strip().lower() in ("1", "true", "yes", "on")


def cross_origin(request: Request) -> bool:
    """True when a browser sent this request from a page of another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return False  # not a browser form/fetch (curl, scripts): nothing to check
        origin = referer
    if origin == "null":
        return True
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.netloc.lower() != host.lower()


_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def is_local_path(target: str) -> bool:
    """Whether a redirect to ``target`` stays on this site.

    Only a path of this site: one leading ``/`` and never two (``//host``), no backslash
    (``/\\host``: browsers read it as ``//host``), no control character or space (browsers
    drop tabs and newlines), and the same once percent-decoded (``/%2F%2Fhost``).
    """
    for text in (target, unquote(target)):
        if not text.startswith("/") or text.startswith("//") or _UNSAFE_CHARS.search(text):
            return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site)."""
    if not target or len(target) > 2000 or not is_local_path(target):
        return default
    return target


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to listen on) only accepts local connections."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(bound_host: str | None = None, configured: str | None = None) -> list[str]:
    """Host names the UI answers to: the local ones, the bound interface, and
    ``ORCHESTRATOR_UI_ALLOWED_HOSTS`` (comma-separated; ``*.example.com`` patterns;
    ``*`` turns the check off)."""
    text = os.environ.get(ALLOWED_HOSTS_ENV, "") if configured is None else configured
    hosts = list(LOCAL_HOSTS)
    if bound_host and bound_host not in ("0.0.0.0", "::", "[::]", ""):
        hosts.append(f"[{bound_host}]" if ":" in bound_host.strip("[]") else bound_host)
    hosts += [h.strip().lower() for h in text.split(",") if h.strip()]
    return list(dict.fromkeys(h.lower() for h in hosts))


def body_limit(max_input_bytes: int) -> int:
    """Largest request body accepted: twice the input limit, a definition, and overhead."""
    return 2 * max_input_bytes + MAX_DEFINITION_BYTES + BODY_OVERHEAD_BYTES


class BodyTooLarge(HTTPException):
    """A request body over the limit (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes before anything parses them.

    A ``Content-Length`` over the limit is answered at once; a body without one (chunked)
    is counted as it streams, and reading past the limit raises :class:`BodyTooLarge`
    (a 413 through the app's exception handlers).
    """

    def __init__(
        self, app: ASGIApp, limit: int, reject: Callable[[Scope, int, str], Response]
    ) -> None:
        self.app = app
        self.limit = limit
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope["headers"] if k == b"content-length"]
        if lengths:
            try:
                declared = int(lengths[0])
            except ValueError:
                declared = -1
            if declared < 0 or len(set(lengths)) > 1:
                await self.reject(scope, 400, "Invalid Content-Length.")(scope, receive, send)
                return
            if declared > self.limit:
                message = f"The request body is larger than {self.limit} bytes."
                await self.reject(scope, 413, message)(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class LocalRedirectMiddleware:
    """Every redirect the app answers goes to a local path: anything else goes to ``/``.

    A last line behind :func:`safe_next`: whatever route builds a ``Location`` from what a
    client sent (a path, a ``next``), it cannot point to another site.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def checked(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location is not None and not is_local_path(location):
                    headers["location"] = "/"
            await send(message)

        await self.app(scope, receive, checked)


#: What a task token looks like (``secrets.token_urlsafe(32)``), as a whole word.
#: A task token in an answer's bytes: every token has one form (orchestrator.language.tokens), so
#: every one is found, live or spent, whichever execution it belongs to, without Redis.
TASK_TOKEN_SHAPE = re.compile(TOKEN_PATTERN.pattern.encode())
TASK_TOKEN_MASK = "[task token]"


def task_tokens_in(path: str, body: bytes) -> set[str]:
    """The task tokens an answer's ``body`` shows (``path`` is not needed to tell)."""
    if b"tt1." not in body:
        return set()
    return {match.decode() for match in TASK_TOKEN_SHAPE.findall(body)}


class ScrubMiddleware:
    """Replace secrets in the app's HTML and JSON answers with a mask.

    ``find(path, body)`` returns the secrets ``body`` holds. Task tokens live in workflow
    data (``$$.Task.Token`` in Parameters) that pages and the API show; the UI never needs
    to show one.
    """

    def __init__(
        self, app: ASGIApp, find: Callable[[str, bytes], Iterable[str]], mask: str
    ) -> None:
        self.app = app
        self.find = find
        self.mask = mask.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                kind = MutableHeaders(scope=message).get("content-type", "")
                if "json" in kind or "html" in kind:
                    start = message
                    return
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                secrets = self.find(scope["path"], body)
                for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
                    body = body.replace(secret.encode(), self.mask)
                MutableHeaders(scope=start)["content-length"] = str(len(body))
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, buffered)


# A query parameter's start: a separator (plain or percent-encoded: a query inside a
# ``next=`` value), a name, and ``=``. Its value runs to the next ``&``.
_QUERY_PARAM = re.compile(r"(?i)(?:[?&;]|%3F|%26)(?P<name>(?:(?!%3[DF]|%26)[^=&;?\s\"])*)(?:=|%3D)")
_QUERY_VALUE = re.compile(r"[^&\s\"]*")
_TOKEN_NAMES = frozenset({"token", "access_token"})


def _is_token_name(name: str) -> bool:
    """Whether a query parameter name means a token, however it is written: percent-encoded
    (``to%6Ben``, even twice) or with brackets (``token[]``, ``token[0]``), which
    frameworks read as the same parameter."""
    for _ in range(3):
        decoded = unquote(name)
        if decoded == name:
            break
        name = decoded
    return name.split("[", 1)[0].strip().lower() in _TOKEN_NAMES


def _redact_query_tokens(text: str) -> str:
    parts: list[str] = []
    position = 0
    while (match := _QUERY_PARAM.search(text, position)) is not None:
        parts.append(text[position : match.end()])
        position = match.end()
        if _is_token_name(match.group("name")):
            value = _QUERY_VALUE.match(text, position)
            parts.append("[redacted]")
            position = value.end() if value is not None else position
    parts.append(text[position:])
    return "".join(parts)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without token query values and without any of ``secrets``."""
    text = _redact_query_tokens(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class RedactingFilter(logging.Filter):
    """A log filter that keeps the UI token (and any ``token=`` query value) out of logs.

    Installed on uvicorn's loggers: its access log writes each request's path with its
    query string.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a, self.secrets) if isinstance(a, str) else a for a in record.args
            )
        return True


def install_log_redaction(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to uvicorn's loggers (and their handlers)."""
    log_filter = RedactingFilter(secrets)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)
        for handler in logger.handlers:
            handler.addFilter(log_filter)
    return log_filter


def refuse_open_bind(host: str, token: str | None, insecure_no_token: bool = False) -> str | None:
    """Why the UI must not listen on ``host`` without a token (None when it may)."""
    if token or insecure_no_token or is_loopback(host):
        return None
    return (
        f"refusing to serve the UI on {host} without ORCHESTRATOR_UI_TOKEN: anyone who "
        "reaches it could read every execution and stop, redrive or approve them. Set "
        "ORCHESTRATOR_UI_TOKEN, listen on 127.0.0.1, or pass --insecure-no-token to accept it."
    )
