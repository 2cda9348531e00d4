"""AWS Signature Version 4 checks for the Step Functions API (``ORCHESTRATOR_API_KEYS``).

Every AWS SDK, the AWS CLI and Terraform sign their requests with SigV4; with API keys
configured, the API answers only requests signed with one of them, as AWS does. The check
is pure (:func:`check_request` takes the request's parts, the keys and the time): it
parses the ``Authorization`` header, then has botocore, the library the signers use,
rebuild the canonical request and the signature from the headers the client signed, and
compares the two in constant time. Canonicalisation is not written here a second time:
a difference between two implementations would refuse good requests or pass bad ones.

Refusals carry AWS's codes (:class:`SignatureError`): ``MissingAuthenticationTokenException``
(no signature), ``IncompleteSignatureException`` (a malformed one),
``UnrecognizedClientException`` (an access key id that is not configured) and
``InvalidSignatureException`` (a wrong signature, a changed body, or a date outside the
five minutes AWS allows either way). What is not supported: signatures in the query
string (presigned URLs, which the Step Functions SDKs do not use), chunked/streaming
payload signing, SigV4a, and temporary credentials (a session token is signed over like
any header, never checked against anything).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final

from starlette.requests import Request

from orchestrator.errors import ConfigurationError

#: The only algorithm accepted (SigV4a's ``AWS4-ECDSA-P256-SHA256`` is not).
ALGORITHM: Final = "AWS4-HMAC-SHA256"
#: The signing name of Step Functions (botocore's ``signingName``/``endpointPrefix``).
SERVICE: Final = "states"
#: How far a request's ``X-Amz-Date`` may be from the server's clock, either way (AWS's).
MAX_SKEW: Final = timedelta(minutes=5)
#: Longest ``Authorization`` header parsed; a real one is a few hundred characters.
MAX_AUTHORIZATION_LENGTH: Final = 8192
#: Headers a client may sign; beyond this, a request is refused rather than processed.
MAX_SIGNED_HEADERS: Final = 64

# AWS's own words, so that what an SDK user searches for leads to the right answer.
MISSING_TOKEN: Final = "MissingAuthenticationTokenException"
INCOMPLETE: Final = "IncompleteSignatureException"
UNRECOGNIZED: Final = "UnrecognizedClientException"
INVALID: Final = "InvalidSignatureException"
_MISMATCH_MESSAGE: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)

#: ``X-Amz-Date``'s form (botocore's ``TIMESTAMP_FORMAT``).
TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
# An access key id as a Credential may carry one: no "/", "," or space, which delimit the
# header's fields (orchestrator.config checks the configured ones' form).
_ACCESS_KEY_ID: Final = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
_HEADER_NAME: Final = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SIGNATURE: Final = re.compile(r"[0-9a-f]{64}")
_DATE: Final = re.compile(r"[0-9]{8}")
_SCOPE_PART: Final = re.compile(r"[a-z0-9-]{1,64}")


class SignatureError(Exception):
    """A request the API refuses: AWS's error ``code``, its ``message``, the HTTP ``status``.

    The statuses are AWS's for its JSON services: 403 for a request without any
    signature (the AWS common errors' ``MissingAuthenticationToken``), 400 for the
    rest (DynamoDB's error list, the same protocol, puts every authentication error
    under 400).
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    """The credential scope's date, ``YYYYMMDD``."""
    region: str
    service: str
    signed_headers: tuple[str, ...]
    """Lower-case names, in the order the client listed them (SigV4 sorts them)."""
    signature: str


def parse_authorization(value: str) -> Authorization:
    """The fields of a SigV4 ``Authorization`` header value.

    Raises:
        SignatureError: ``IncompleteSignatureException`` for anything but a well-formed
            ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``.
    """
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise SignatureError(INCOMPLETE, "The Authorization header is too long.")
    # Only spaces separate the parts (as SDKs write them): one header is signed one way,
    # so any other character in it, whitespace included, is a different header.
    algorithm, _, rest = value.strip(" ").partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(
            INCOMPLETE,
            f"Unsupported Authorization scheme: only {ALGORITHM} (AWS Signature Version 4) "
            "is accepted.",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, field_value = part.strip(" ").partition("=")
        if not equals or name not in ("Credential", "SignedHeaders", "Signature"):
            raise SignatureError(
                INCOMPLETE,
                "Authorization header requires 'Credential', 'SignedHeaders' and "
                "'Signature' parameters, and nothing else.",
            )
        if name in fields:
            raise SignatureError(INCOMPLETE, f"Authorization header repeats '{name}'.")
        fields[name] = field_value.strip(" ")
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise SignatureError(INCOMPLETE, f"Authorization header requires '{missing[0]}' parameter.")
    scope = fields["Credential"].split("/")
    if (
        len(scope) != 5
        or not _ACCESS_KEY_ID.fullmatch(scope[0])
        or not _DATE.fullmatch(scope[1])
        or not _SCOPE_PART.fullmatch(scope[2])
        or not _SCOPE_PART.fullmatch(scope[3])
        or scope[4] != "aws4_request"
    ):
        raise SignatureError(
            INCOMPLETE,
            "Credential must have the form <access key id>/<YYYYMMDD>/<region>/<service>"
            "/aws4_request.",
        )
    names = fields["SignedHeaders"].split(";")
    if len(names) > MAX_SIGNED_HEADERS or not all(_HEADER_NAME.fullmatch(n) for n in names):
        raise SignatureError(
            INCOMPLETE, "SignedHeaders must be a ';'-separated list of lower-case header names."
        )
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        raise SignatureError(INCOMPLETE, "Signature must be 64 lower-case hexadecimal digits.")
    return Authorization(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(names),
        signature=fields["Signature"],
    )


def require_botocore() -> None:
    """Fail at start-up, not at the first request, when botocore is missing.

    Raises:
        ConfigurationError: botocore (the ``aws`` extra) is not installed.
    """
    try:
        import botocore.auth  # noqa: F401 - only its presence is checked
    except ImportError:
        raise ConfigurationError(
            "ORCHESTRATOR_API_KEYS needs botocore to check request signatures, which is not "
            "installed: pip install 'orchestrator[aws]'"
        ) from None


@cache
def _verifier_class() -> Any:
    """botocore's signer, told which headers the client signed (botocore is imported on
    first use: it is an optional dependency, needed only with API keys)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import HTTPHeaders

    class Verifier(SigV4Auth):
        # botocore's ``headers_to_sign`` picks every header but a few it never signs; a
        # server must use exactly the client's list instead (a proxy may add headers).
        def __init__(self, credentials: Any, region: str, signed: tuple[str, ...]) -> None:
            super().__init__(credentials, SERVICE, region)
            self.signed = signed

        def headers_to_sign(self, request: Any) -> Any:
            chosen = HTTPHeaders()
            for name in self.signed:
                for value in request.headers.get_all(name) or ():
                    chosen[name] = value  # an HTTPHeaders keeps every value set under a name
            return chosen

    return Verifier


def _header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(name.lower(), value) for name, value in items]
    for name, value in pairs:
        try:
            # What HTTP carries (a server decodes headers as latin-1): anything else did
            # not come off the wire, and botocore's canonicalisation would choke on it.
            name.encode("latin-1")
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise SignatureError(INCOMPLETE, "A header is not latin-1 text.") from None
    return pairs


def check_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    keys: Mapping[str, str],
    now: datetime,
) -> str:
    """Check a request's SigV4 signature; return the access key id that signed it.

    Args:
        method: the HTTP method.
        url: the URL as the client addressed it: any scheme, the Host header's host, the
            path as sent (still percent-encoded) and the query string.
        headers: every header as received, repeated names included.
        body: the body as received (its bytes are what the client hashed).
        keys: access key id -> secret.
        now: the server's time (aware), to hold ``X-Amz-Date`` against.

    Raises:
        SignatureError: the request is unsigned, malformed, signed with an unknown key,
            signed wrongly, or dated more than :data:`MAX_SKEW` away from ``now``.
    """
    pairs = _header_pairs(headers)
    authorizations = [value for name, value in pairs if name == "authorization"]
    if not authorizations:
        raise SignatureError(MISSING_TOKEN, "Missing Authentication Token", 403)
    if len(authorizations) > 1:
        raise SignatureError(INCOMPLETE, "The request has more than one Authorization header.")
    auth = parse_authorization(authorizations[0])
    secret = keys.get(auth.access_key_id)
    if secret is None:
        raise SignatureError(UNRECOGNIZED, "The security token included in the request is invalid.")
    if auth.service != SERVICE:
        raise SignatureError(
            INVALID, f"Credential should be scoped to correct service: '{SERVICE}'."
        )
    if "host" not in auth.signed_headers:
        raise SignatureError(INVALID, "'Host' must be a 'SignedHeader' in the AWS Authorization.")
    dates = [value for name, value in pairs if name == "x-amz-date"]
    if len(dates) != 1:
        raise SignatureError(
            INCOMPLETE, "Authorization header requires existence of one 'X-Amz-Date' header."
        )
    try:
        signed_at = datetime.strptime(dates[0], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(
            INCOMPLETE, "X-Amz-Date must be an ISO 8601 basic time: YYYYMMDD'T'HHMMSS'Z'."
        ) from None
    if dates[0][:8] != auth.date:
        raise SignatureError(
            INVALID,
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{dates[0][:8]}', from '{dates[0]}'.",
        )
    now = now.astimezone(UTC)
    stamp = now.strftime(TIMESTAMP_FORMAT)
    if signed_at < now - MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(TIMESTAMP_FORMAT)
        raise SignatureError(
            INVALID,
            f"Signature expired: {dates[0]} is now earlier than {earliest} ({stamp} - 5 min.)",
        )
    if signed_at > now + MAX_SKEW:
        latest = (now + MAX_SKEW).strftime(TIMESTAMP_FORMAT)
        raise SignatureError(
            INVALID,
            f"Signature not yet current: {dates[0]} is still later than {latest} "
            f"({stamp} + 5 min.)",
        )
    present = {name for name, _ in pairs}
    absent = [name for name in auth.signed_headers if name not in present]
    if absent:
        raise SignatureError(INVALID, f"A signed header is missing from the request: {absent[0]}.")
    declared = [value for name, value in pairs if name == "x-amz-content-sha256"]
    # botocore signs this header's value in place of the body's hash when it is present:
    # it must then be the body's hash, or a signed request would carry any body.
    if declared and declared != [hashlib.sha256(body).hexdigest()]:
        raise SignatureError(
            INVALID, "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    expected = _signature(method, url, pairs, body, auth, secret, dates[0])
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(INVALID, _MISMATCH_MESSAGE)
    return auth.access_key_id


def _signature(
    method: str,
    url: str,
    pairs: list[tuple[str, str]],
    body: bytes,
    auth: Authorization,
    secret: str,
    timestamp: str,
) -> str:
    """The signature botocore computes for this request with ``secret``."""
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body)
    request.headers = HTTPHeaders()
    for name, value in pairs:
        request.headers[name] = value
    request.context["timestamp"] = timestamp
    verifier = _verifier_class()(
        Credentials(auth.access_key_id, secret), auth.region, auth.signed_headers
    )
    try:
        canonical = verifier.canonical_request(request)
        return str(verifier.signature(verifier.string_to_sign(request, canonical), request))
    except (ValueError, UnicodeError):
        # A URL or header botocore cannot canonicalise (or encode) was not signed by an SDK.
        raise SignatureError(INVALID, _MISMATCH_MESSAGE) from None


def request_url(scope: Mapping[str, Any]) -> str:
    """The URL a client signed, from an ASGI request's scope: the ``Host`` header (what
    the client addressed, port included), the path as sent and the query string."""
    host = ""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"host":
            host = value.decode("latin-1")
            break
    path = scope.get("raw_path") or scope.get("path", "/").encode()
    # ASGI lets a server leave the query string in raw_path; it is signed apart.
    path = path.split(b"?", 1)[0]
    url = f"http://{host}{path.decode('latin-1')}"
    query = scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def authenticate(
    request: Request, body: bytes, keys: Mapping[str, str], now: datetime | None = None
) -> str | None:
    """Check a Step Functions API request against ``keys``: the access key id that signed
    it, or None when no keys are configured (the API is open).

    ``body`` must be the bytes as received, before any parsing.

    Raises:
        SignatureError: keys are configured and the request is not signed by one of them.
    """
    if not keys:
        return None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    return check_request(
        request.method,
        request_url(request.scope),
        headers,
        body,
        keys,
        now if now is not None else datetime.now(UTC),
    )
