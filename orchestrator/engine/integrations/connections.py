"""Connections: the credentials HTTP Tasks authenticate with (``ORCHESTRATOR_CONNECTIONS_FILE``).

What an EventBridge connection is on AWS: a definition names it in
``Authentication.ConnectionArn``, and the secret stays out of the definition. Here the
connections live in a YAML or JSON file, a mapping of connection name (or full ARN) to
one authorization::

    Stripe:                        # matches arn:aws:events:...:connection/Stripe/<uuid>
      api_key: {name: Authorization, value_env: STRIPE_KEY}
    partner:
      basic: {username: svc-orders, password_env: PARTNER_PASSWORD}
    crm:
      oauth:
        token_url: https://auth.example.com/oauth2/token
        client_id: orders
        client_secret_env: CRM_CLIENT_SECRET
        scope: orders.write        # optional

Every value may be given literally (``value``, ``password``, ``client_secret``...) or as
the name of an environment variable to read it from (the same key with ``_env``), which
keeps secrets out of the file. A ConnectionArn matches an entry by the full ARN first,
then by the connection's name (``connection/NAME/...``), then by the ARN's last part.

OAuth uses the client-credentials grant: the token is fetched from ``token_url`` (client
id and secret as HTTP Basic, as EventBridge sends them) and cached until shortly before it
expires (``expires_in``; one hour when the answer has none); a 401 from the API drops it.

Secrets are put on the wire only: they are never in a Task's parameters or result, the
history, the logs or the UI (the definition holds the ConnectionArn, the history the
Parameters as the definition gave them).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from orchestrator.config import get_settings
from orchestrator.errors import StatesError

#: The error of a connection that is missing, malformed or cannot get its token.
CONNECTION_ERROR = "States.Http.Connection"
#: A cached OAuth token is renewed this long before it expires (s).
TOKEN_MARGIN_S = 30.0
#: Lifetime assumed for a token whose answer gives none (s).
DEFAULT_TOKEN_LIFETIME_S = 3600.0


class ConnectionProblem(StatesError):
    """A connection that cannot be used (``States.Http.Connection``)."""

    default_error = CONNECTION_ERROR


@dataclass(frozen=True)
class Connection:
    """One connection of the file: its kind and its settings (secrets resolved)."""

    name: str
    kind: str
    """``api_key``, ``basic`` or ``oauth``."""
    settings: dict[str, str] = field(repr=False)


_KINDS = {
    "api_key": ("name", "value"),
    "basic": ("username", "password"),
    "oauth": ("token_url", "client_id", "client_secret"),
}
_OPTIONAL = {"oauth": ("scope",)}

_cache_lock = threading.Lock()
_file_cache: tuple[str, float, dict[str, Any]] | None = None
_tokens: dict[str, tuple[str, float]] = {}


def _load(path: str) -> dict[str, Any]:
    global _file_cache
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise ConnectionProblem(f"connections file {path!r}: {exc.strerror}") from None
    with _cache_lock:
        if _file_cache is not None and _file_cache[:2] == (path, mtime):
            return _file_cache[2]
    try:
        text = Path(path).read_text()
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConnectionProblem(f"connections file {path!r} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConnectionProblem(f"connections file {path!r}: expected a mapping of connections")
    with _cache_lock:
        _file_cache = (path, mtime, data)
    return data


def connection_key(arn: str) -> list[str]:
    """The keys a ConnectionArn is looked up by: the ARN, its name, its last part."""
    keys = [arn]
    _, found, rest = arn.partition(":connection/")
    if found:
        keys.append(rest.split("/")[0])
    keys.append(arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    return list(dict.fromkeys(k for k in keys if k))


def get_connection(arn: str) -> Connection:
    """The connection a ConnectionArn names; raises ``States.Http.Connection``."""
    path = get_settings().connections_file
    if not path:
        raise ConnectionProblem(
            f"no connection {arn!r}: set ORCHESTRATOR_CONNECTIONS_FILE to a file defining it"
        )
    data = _load(path)
    entry, name = None, arn
    for key in connection_key(arn):
        if key in data:
            entry, name = data[key], key
            break
    if entry is None:
        raise ConnectionProblem(f"no connection {arn!r} in the connections file {path!r}")
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in _KINDS:
        raise ConnectionProblem(
            f"connection {name!r}: expected one of {', '.join(_KINDS)} (see the README)"
        )
    kind, spec = next(iter(entry.items()))
    if not isinstance(spec, dict):
        raise ConnectionProblem(f"connection {name!r}: {kind} needs a mapping of settings")
    settings: dict[str, str] = {}
    for key in (*_KINDS[kind], *_OPTIONAL.get(kind, ())):
        value = _value(name, spec, key, required=key in _KINDS[kind])
        if value is not None:
            settings[key] = value
    return Connection(name, kind, settings)


def _value(name: str, spec: dict[str, Any], key: str, *, required: bool) -> str | None:
    if key in spec:
        return str(spec[key])
    variable = spec.get(f"{key}_env")
    if variable is not None:
        value = os.environ.get(str(variable))
        if value is None:
            # The variable's name only: never a value.
            raise ConnectionProblem(
                f"connection {name!r}: environment variable {variable!r} ({key}) is not set"
            )
        return value
    if required:
        raise ConnectionProblem(f"connection {name!r}: {key} (or {key}_env) is missing")
    return None


def authorize(connection: Connection, headers: dict[str, str], *, fresh: bool = False) -> None:
    """Add the connection's credentials to a request's ``headers``."""
    s = connection.settings
    if connection.kind == "api_key":
        headers[s["name"]] = s["value"]
    elif connection.kind == "basic":
        raw = f"{s['username']}:{s['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    else:
        headers["Authorization"] = "Bearer " + _token(connection, fresh=fresh)


def forget_token(connection: Connection) -> None:
    """Drop a cached OAuth token (the API refused it)."""
    with _cache_lock:
        _tokens.pop(_token_key(connection), None)


def _token_key(connection: Connection) -> str:
    s = connection.settings
    return json.dumps([connection.name, s["token_url"], s["client_id"], s.get("scope")])


def _token(connection: Connection, *, fresh: bool) -> str:
    key = _token_key(connection)
    now = time.time()
    with _cache_lock:
        cached = _tokens.get(key)
    if cached is not None and cached[1] > now and not fresh:
        return cached[0]
    s = connection.settings
    data = {"grant_type": "client_credentials"}
    if s.get("scope"):
        data["scope"] = s["scope"]
    try:
        response = httpx.post(
            s["token_url"],
            data=data,
            auth=(s["client_id"], s["client_secret"]),
            headers={"Accept": "application/json"},
            timeout=get_settings().http_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise ConnectionProblem(
            f"connection {connection.name!r}: token endpoint unreachable ({type(exc).__name__})"
        ) from None
    if not response.is_success:
        raise ConnectionProblem(
            f"connection {connection.name!r}: the token endpoint answered "
            f"{response.status_code} {response.reason_phrase}"
        )
    try:
        answer = response.json()
        token = str(answer["access_token"])
        lifetime = float(answer.get("expires_in") or DEFAULT_TOKEN_LIFETIME_S)
    except (ValueError, KeyError, TypeError):
        raise ConnectionProblem(
            f"connection {connection.name!r}: the token endpoint's answer has no access_token"
        ) from None
    with _cache_lock:
        _tokens[key] = (token, now + max(0.0, lifetime - TOKEN_MARGIN_S))
    return token
