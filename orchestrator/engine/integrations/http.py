"""The HTTP Task: ``arn:aws:states:::http:invoke``, as Step Functions documents it.

Parameters (or JSONata Arguments):

* ``ApiEndpoint`` (required): the URL; ``QueryParameters`` (an object) are added to it.
* ``Method`` (required): GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS.
* ``Headers``: an object of header name -> value.
* ``RequestBody``: a string is sent as it is; any other JSON value as JSON
  (``Content-Type: application/json`` unless ``Headers`` says otherwise) or, with
  ``Transform: {"RequestBodyEncoding": "URL_ENCODED"}``, an object as a form
  (``application/x-www-form-urlencoded``), arrays as ``RequestEncodingOptions.ArrayFormat``
  says: ``INDICES`` (the default: ``a[0]=x&a[1]=y``), ``BRACKETS`` (``a[]=x&a[]=y``),
  ``REPEAT`` (``a=x&a=y``) or ``COMMAS`` (``a=x,y``); nested objects as ``o[k]=v``.
* ``Authentication.ConnectionArn``: a connection of ``ORCHESTRATOR_CONNECTIONS_FILE``
  (:mod:`orchestrator.engine.integrations.connections`). Optional here; AWS requires it.

The result is AWS's: ``{"StatusCode", "StatusText", "Headers", "ResponseBody"}``, the
headers as lists of values by lower-case name, the body parsed when the answer is JSON and
a string otherwise. Errors:

* a non-2xx answer: ``States.Http.StatusCode.<code>`` (``States.Http.StatusCode.503``),
  the cause the JSON of that result;
* a timeout (``ORCHESTRATOR_HTTP_TIMEOUT_SECONDS``, 60 s as on AWS) or a connection
  error (refused, reset, DNS): ``States.Http.Socket``;
* a connection that cannot be used: ``States.Http.Connection``;
* a request body, or a response body, over the payload limit
  (``ORCHESTRATOR_MAX_INPUT_BYTES``, 256 KiB as on AWS): ``States.DataLimitExceeded``.
  The response is streamed and given up on at the limit (or at once, when its
  ``Content-Length`` says more): a worker never holds more of it than the limit;
* Parameters of the wrong shape: ``States.Runtime``.

All are ordinary task errors: Retry and Catch match them by name (or ``States.ALL``), so a
Retry on ``States.Http.Socket`` and ``States.Http.StatusCode.503`` retries the transient
ones. httpx is the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from orchestrator.config import get_settings
from orchestrator.engine.integrations import connections as conn
from orchestrator.engine.integrations import fields_problem, integration
from orchestrator.errors import StatesError, StatesRuntimeError

logger = logging.getLogger("orchestrator.engine.integrations.http")

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
ENCODINGS = ("NONE", "URL_ENCODED")
ARRAY_FORMATS = ("INDICES", "BRACKETS", "REPEAT", "COMMAS")
#: A timeout or a connection error.
SOCKET_ERROR = "States.Http.Socket"
#: A request or response body over the payload limit.
DATA_LIMIT_ERROR = "States.DataLimitExceeded"
USER_AGENT = "orchestrator|HttpInvoke"
QueryValue = str | int | float | bool | None
_FIELDS = {
    "ApiEndpoint",
    "Method",
    "Headers",
    "QueryParameters",
    "RequestBody",
    "Transform",
    "Authentication",
}


def check_parameters(params: Mapping[str, Any] | None) -> str | None:
    """Definition-time check of static Parameters (fields given with ``.$`` pass)."""
    if params is None:
        return None
    problem = fields_problem("http:invoke", params, _FIELDS, ("ApiEndpoint", "Method"))
    if problem:
        return problem
    method = params.get("Method")
    if isinstance(method, str) and not method.startswith("{%") and method.upper() not in METHODS:
        return f"http:invoke Method {method!r}: use one of {', '.join(METHODS)}"
    transform = params.get("Transform")
    if isinstance(transform, dict):
        return _transform_problem(transform)
    return None


def _transform_problem(transform: Mapping[str, Any]) -> str | None:
    encoding = transform.get("RequestBodyEncoding", "NONE")
    if isinstance(encoding, str) and not encoding.startswith("{%") and encoding not in ENCODINGS:
        return f"Transform.RequestBodyEncoding {encoding!r}: use {' or '.join(ENCODINGS)}"
    options = transform.get("RequestEncodingOptions") or {}
    array = options.get("ArrayFormat", "INDICES") if isinstance(options, dict) else None
    if isinstance(array, str) and not array.startswith("{%") and array not in ARRAY_FORMATS:
        return (
            f"Transform.RequestEncodingOptions.ArrayFormat {array!r}: "
            f"use one of {', '.join(ARRAY_FORMATS)}"
        )
    return None


@integration("http:invoke", check=check_parameters)
def invoke(params: Any) -> dict[str, Any]:
    """One HTTP Task attempt: send the request, return AWS's result or raise its error."""
    if not isinstance(params, dict):
        raise StatesRuntimeError("http:invoke needs an object of Parameters")
    problem = check_parameters(params)
    url, method = params.get("ApiEndpoint"), params.get("Method")
    if problem is None and not isinstance(url, str):
        problem = "http:invoke ApiEndpoint must be a string"
    if problem is None and not isinstance(method, str):
        problem = "http:invoke Method must be a string"
    if problem is not None:
        raise StatesRuntimeError(problem)
    assert isinstance(url, str) and isinstance(method, str)
    method = method.upper()
    headers = {"User-Agent": USER_AGENT}
    for name, value in _object(params, "Headers").items():
        headers[str(name)] = value if isinstance(value, str) else _scalar(value)
    query: list[tuple[str, str | int | float | bool | None]] = list(
        _pairs(_object(params, "QueryParameters"), "REPEAT")
    )
    content = _body(params, headers)
    limit = get_settings().max_input_bytes
    if content is not None and len(content) > limit:
        raise StatesError(
            f"http:invoke: the request body of {len(content)} bytes is over the payload "
            f"limit of {limit} bytes",
            error=DATA_LIMIT_ERROR,
        )
    connection = None
    authentication = params.get("Authentication")
    if authentication is not None:
        arn = authentication.get("ConnectionArn") if isinstance(authentication, dict) else None
        if not isinstance(arn, str):
            raise StatesRuntimeError("http:invoke Authentication needs a ConnectionArn string")
        connection = conn.get_connection(arn)
    response = _send(method, url, headers, query, content, connection)
    if connection is not None and connection.kind == "oauth" and response.status_code == 401:
        # The cached token may have been revoked: one more try with a fresh one.
        conn.forget_token(connection)
        response = _send(method, url, headers, query, content, connection, fresh=True)
    result = _result(response, method)
    if not 200 <= response.status_code < 300:
        raise StatesError(
            json.dumps(result, separators=(",", ":"), ensure_ascii=False),
            error=f"States.Http.StatusCode.{response.status_code}",
        )
    return result


@dataclass(frozen=True)
class Answer:
    """A response read whole, its body within the payload limit."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    body: bytes
    encoding: str


def _send(
    method: str,
    url: str,
    headers: dict[str, str],
    query: list[tuple[str, QueryValue]],
    content: bytes | None,
    connection: conn.Connection | None,
    *,
    fresh: bool = False,
) -> Answer:
    wire = dict(headers)  # credentials go on the wire only, never into headers shown
    if connection is not None:
        conn.authorize(connection, wire, fresh=fresh)
    settings = get_settings()
    timeout, limit = settings.http_timeout_seconds, settings.max_input_bytes
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream(
                method, url, params=query or None, headers=wire, content=content
            ) as response,
        ):
            return Answer(
                response.status_code,
                response.reason_phrase,
                response.headers,
                _read_within(response, limit, method, url),
                response.charset_encoding or "utf-8",
            )
    except httpx.TimeoutException:
        raise StatesError(
            f"{method} {_where(url)}: no answer within {timeout:g} s", error=SOCKET_ERROR
        ) from None
    except httpx.TransportError as exc:
        raise StatesError(
            f"{method} {_where(url)}: {type(exc).__name__}: {exc}", error=SOCKET_ERROR
        ) from None
    except httpx.InvalidURL as exc:
        raise StatesRuntimeError(f"http:invoke ApiEndpoint {url!r}: {exc}") from None


def _read_within(response: httpx.Response, limit: int, method: str, url: str) -> bytes:
    """The body, read a chunk at a time (decoded as its Content-Encoding says); over
    ``limit`` bytes, ``States.DataLimitExceeded`` without reading further."""

    def over(size: str) -> StatesError:
        return StatesError(
            f"{method} {_where(url)}: the response body of {size} bytes is over the payload "
            f"limit of {limit} bytes (ORCHESTRATOR_MAX_INPUT_BYTES); not read further",
            error=DATA_LIMIT_ERROR,
        )

    declared = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > limit and not encoded:
        raise over(declared)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise over(f"more than {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def _where(url: str) -> str:
    """The URL without its query (which may carry a caller's key)."""
    return url.split("?", 1)[0]


def _object(params: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = params.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StatesRuntimeError(f"http:invoke {field} must be an object")
    return value


def _body(params: Mapping[str, Any], headers: dict[str, str]) -> bytes | None:
    if "RequestBody" not in params:
        return None
    body = params["RequestBody"]
    transform = params.get("Transform") or {}
    if not isinstance(transform, dict):
        raise StatesRuntimeError("http:invoke Transform must be an object")
    problem = _transform_problem(transform)
    if problem is not None:
        raise StatesRuntimeError(problem)
    if transform.get("RequestBodyEncoding", "NONE") == "URL_ENCODED":
        if not isinstance(body, dict):
            raise StatesRuntimeError("a URL_ENCODED RequestBody must be an object")
        options = transform.get("RequestEncodingOptions") or {}
        array_format = options.get("ArrayFormat", "INDICES")
        _default(headers, "Content-Type", "application/x-www-form-urlencoded")
        return urlencode(list(_pairs(body, array_format))).encode()
    if isinstance(body, str):
        return body.encode()
    _default(headers, "Content-Type", "application/json")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _default(headers: dict[str, str], name: str, value: str) -> None:
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pairs(value: Mapping[str, Any], array_format: str) -> Iterator[tuple[str, str]]:
    """An object flattened to form pairs, arrays as ``array_format`` says."""
    for key, item in value.items():
        yield from _flatten(str(key), item, array_format)


def _flatten(key: str, value: Any, array_format: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for sub, item in value.items():
            yield from _flatten(f"{key}[{sub}]", item, array_format)
    elif isinstance(value, list):
        if array_format == "COMMAS" and all(not isinstance(i, dict | list) for i in value):
            yield key, ",".join(_scalar(i) for i in value)
            return
        for index, item in enumerate(value):
            if array_format == "BRACKETS":
                name = f"{key}[]"
            elif array_format == "REPEAT" or array_format == "COMMAS":
                name = key
            else:
                name = f"{key}[{index}]"
            yield from _flatten(name, item, array_format)
    else:
        yield key, _scalar(value)


def _result(response: Answer | httpx.Response, method: str) -> dict[str, Any]:
    """AWS's result of an answer (an ``httpx.Response`` read whole is taken too)."""
    if isinstance(response, httpx.Response):
        response = Answer(
            response.status_code,
            response.reason_phrase,
            response.headers,
            response.content,
            response.charset_encoding or "utf-8",
        )
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    body: Any = ""
    if method != "HEAD":
        try:
            body = response.body.decode(response.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            body = response.body.decode("utf-8", errors="replace")
    content_type = response.headers.get("content-type", "")
    if body and "json" in content_type.lower():
        try:
            body = json.loads(response.body)
        except ValueError:
            pass  # not JSON after all: the text
    return {
        "Headers": headers,
        "ResponseBody": body,
        "StatusCode": response.status_code,
        "StatusText": response.reason_phrase,
    }
