"""``arn:aws:states:::apigateway:invoke``: a call to an API Gateway endpoint.

Parameters (or JSONata Arguments), as Step Functions documents them:

* ``ApiEndpoint`` (required): the API's host (``abc123.execute-api.us-east-1.amazonaws.com``;
  a URL with its scheme, ``http://127.0.0.1:8080``, is taken as it is: a local stand-in);
* ``Method`` (required): GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS;
* ``Stage`` and ``Path``: the URL is ``https://<ApiEndpoint>/<Stage>/<Path>``;
* ``Headers`` and ``QueryParameters``: objects of name -> list of values;
* ``RequestBody``: an object is sent as JSON, a string as it is;
* ``AuthType``: ``NO_AUTH`` (the default), or ``IAM_ROLE`` / ``RESOURCE_POLICY``: the
  request is signed (SigV4, service ``execute-api``) by botocore with boto3's credentials,
  in the endpoint's region (else boto3's).

The result is Step Functions': ``{"Headers", "ResponseBody", "StatusCode",
"StatusText"}`` (the body parsed when the answer is JSON). A non-2xx answer fails the
attempt with ``ApiGateway.<status code>`` (``ApiGateway.403``), no answer at all with
``ApiGateway.<exception>`` (``ApiGateway.ConnectTimeout``), the cause the result or the
exception's message as text; a body over the payload limit ``States.DataLimitExceeded``.
httpx is the client, and the answer is read as the HTTP Task reads it
(:mod:`orchestrator.engine.integrations.http`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from orchestrator.config import get_settings
from orchestrator.engine.integrations import fields_problem, integration
from orchestrator.engine.integrations.http import METHODS, USER_AGENT, Answer
from orchestrator.engine.integrations.http import _read_within as read_within
from orchestrator.engine.integrations.http import _result as http_result
from orchestrator.engine.items import aws
from orchestrator.errors import StatesError, StatesRuntimeError

NAME = "apigateway:invoke"
AUTH_TYPES = ("NO_AUTH", "IAM_ROLE", "RESOURCE_POLICY")
_FIELDS = {
    "ApiEndpoint",
    "Method",
    "Stage",
    "Path",
    "Headers",
    "QueryParameters",
    "RequestBody",
    "AuthType",
    "AllowNullValues",
}
_REGION = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


def check_parameters(params: Mapping[str, Any] | None) -> str | None:
    """Definition-time check of static Parameters (fields given with ``.$`` pass)."""
    if params is None:
        return None
    problem = fields_problem(NAME, params, _FIELDS, ("ApiEndpoint", "Method"))
    if problem:
        return problem
    method, auth = params.get("Method"), params.get("AuthType")
    if isinstance(method, str) and not method.startswith("{%") and method.upper() not in METHODS:
        return f"{NAME} Method {method!r}: use one of {', '.join(METHODS)}"
    if isinstance(auth, str) and not auth.startswith("{%") and auth not in AUTH_TYPES:
        return f"{NAME} AuthType {auth!r}: use one of {', '.join(AUTH_TYPES)}"
    return None


def url_of(params: Mapping[str, Any]) -> str:
    """``https://<ApiEndpoint>/<Stage>/<Path>?<QueryParameters>``."""
    endpoint = str(params["ApiEndpoint"]).rstrip("/")
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    parts = [endpoint]
    for field in ("Stage", "Path"):
        value = params.get(field)
        if value:
            parts.append(quote(str(value).strip("/"), safe="/-_.~%"))
    url = "/".join(parts)
    query = [
        (str(name), _text(value))
        for name, values in _object(params, "QueryParameters").items()
        for value in (values if isinstance(values, list) else [values])
    ]
    return f"{url}?{urlencode(query)}" if query else url


@integration(NAME, check=check_parameters)
def invoke(params: Any) -> dict[str, Any]:
    """One attempt: the request, then Step Functions' result or its error."""
    if not isinstance(params, dict):
        raise StatesRuntimeError(f"{NAME} needs an object of Parameters")
    problem = check_parameters(params)
    if problem is None and not isinstance(params.get("ApiEndpoint"), str):
        problem = f"{NAME} ApiEndpoint must be a text"
    if problem is None and not isinstance(params.get("Method"), str):
        problem = f"{NAME} Method must be a text"
    if problem is not None:
        raise StatesRuntimeError(problem)
    method = str(params["Method"]).upper()
    url = url_of(params)
    headers: dict[str, str] = {"User-Agent": USER_AGENT}
    for name, values in _object(params, "Headers").items():
        listed = values if isinstance(values, list) else [values]
        headers[str(name)] = ",".join(_text(v) for v in listed)
    content: bytes | None = None
    if "RequestBody" in params:
        body = params["RequestBody"]
        if isinstance(body, str):
            content = body.encode()
        else:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
    if params.get("AuthType", "NO_AUTH") in ("IAM_ROLE", "RESOURCE_POLICY"):
        headers = _signed(method, url, headers, content)
    settings = get_settings()
    try:
        with (
            httpx.Client(timeout=settings.http_timeout_seconds) as client,
            client.stream(method, url, headers=headers, content=content) as response,
        ):
            # Read within the payload limit, as the HTTP Task reads.
            answer = Answer(
                response.status_code,
                response.reason_phrase,
                response.headers,
                read_within(response, settings.max_input_bytes, method, url),
                response.charset_encoding or "utf-8",
            )
    except httpx.HTTPError as exc:
        raise StatesError(
            f"{method} {url.split('?', 1)[0]}: {exc}", error=f"ApiGateway.{type(exc).__name__}"
        ) from None
    result = http_result(answer, method)
    if not 200 <= answer.status_code < 300:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
        raise StatesError(text, error=f"ApiGateway.{answer.status_code}")
    return result


def _signed(
    method: str, url: str, headers: dict[str, str], content: bytes | None
) -> dict[str, str]:
    """The headers with a SigV4 signature (``execute-api``) by boto3's credentials."""
    aws.ensure_aws("$", f"{NAME} with AuthType IAM_ROLE")
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise StatesError(f"{NAME}: no AWS credentials to sign with", error="ApiGateway.403")
    found = _REGION.search(url)
    region = found.group(1) if found else (session.region_name or aws.DEFAULT_REGION)
    request = AWSRequest(method=method, url=url, data=content or b"", headers=dict(headers))
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def _object(params: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = params.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StatesRuntimeError(f"{NAME} {field} must be an object")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, separators=(",", ":"))
