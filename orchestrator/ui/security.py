"""The UI's write protection: an optional shared token, and a same-origin check.

When ``ORCHESTRATOR_UI_TOKEN`` is set, every state-changing request must carry it: as the
``token`` form field, an ``Authorization: Bearer`` header, or the cookie a ``?token=``
(or the sign-in form) leaves. Reading stays open. Browser POSTs from another origin are
refused whatever the token, so a page elsewhere cannot drive a local UI.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE = "orchestrator_ui_token"
TOKEN_ENV = "ORCHESTRATOR_UI_TOKEN"


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def presented(request: Request, form_token: str | None = None) -> list[str]:
    """Every token the request carries (header, form field, cookie)."""
    found = [bearer(request), form_token, request.cookies.get(COOKIE)]
    return [t for t in found if t]


def authorized(request: Request, expected: str | None, form_token: str | None = None) -> bool:
    """Whether the request may change state."""
    if not expected:
        return True
    return any(same_token(t, expected) for t in presented(request, form_token))


def signed_in(request: Request, expected: str | None) -> bool:
    """Whether the browser holds the token cookie (or no token is needed)."""
    if not expected:
        return True
    return same_token(request.cookies.get(COOKIE), expected)


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


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
