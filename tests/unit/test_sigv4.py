"""SigV4 checks of the Step Functions API (orchestrator/ui/sigv4.py), pure: requests
signed by botocore itself, as every SDK signs them, checked with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.ui import sigv4
from orchestrator.ui.sigv4 import SignatureError, check_request, parse_authorization, request_url

KEYS = {"AKIDLOCAL": "local/Secret+Key0", "SECOND": "another:secret"}
URL = "http://localhost:8080/"
BODY = b'{"maxResults": 10}'
SIGNED_AT = datetime(2026, 12, 3, 20, 0, 0, tzinfo=UTC)


def sign(
    *,
    key: str = "AKIDLOCAL",
    secret: str | None = None,
    body: bytes = BODY,
    url: str = URL,
    service: str = "states",
    region: str = "eu-west-1",
    at: datetime = SIGNED_AT,
    headers: dict[str, str] | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """A request signed by botocore at ``at``: its URL, headers (Host included, as the
    HTTP client adds it) and body."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
            "Content-Type": "application/x-amz-json-1.0",
            **(headers or {}),
        },
    )
    credentials = Credentials(key, KEYS.get(key, "whatever") if secret is None else secret)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    pairs = [(name, value) for name, value in prepared.headers.items()]
    host = url.split("/")[2]
    return url, [("Host", host), *pairs], body


def check(url: str, headers: list[tuple[str, str]], body: bytes, now: datetime = SIGNED_AT) -> str:
    return check_request("POST", url, headers, body, KEYS, now)


def refusal(
    url: str, headers: list[tuple[str, str]], body: bytes, now: datetime = SIGNED_AT
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        check(url, headers, body, now)
    return caught.value


def replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k.lower() == name.lower() else v) for k, v in headers]


def without(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def authorization(headers: list[tuple[str, str]]) -> str:
    return next(v for k, v in headers if k.lower() == "authorization")


def test_a_request_signed_with_a_configured_key_passes() -> None:
    assert check(*sign()) == "AKIDLOCAL"
    assert check(*sign(key="SECOND")) == "SECOND"


def test_any_region_path_and_query_botocore_signs_pass() -> None:
    url = "http://127.0.0.1:9999/some%20path/x?b=2&a=1&a=0"
    assert check(*sign(url=url, region="ap-southeast-2")) == "AKIDLOCAL"


def test_a_latin_1_signed_header_value_passes() -> None:
    assert check(*sign(headers={"X-Note": "caf\u00e9  au   lait "})) == "AKIDLOCAL"


def test_an_empty_body_passes() -> None:
    assert check(*sign(body=b"")) == "AKIDLOCAL"


def test_headers_the_client_did_not_sign_may_change() -> None:
    url, headers, body = sign()
    headers = [*replace(headers, "Content-Length", "18"), ("User-Agent", "proxy/1"), ("X-Y", "z")]
    assert check(url, headers, body) == "AKIDLOCAL"


def test_header_names_are_case_insensitive() -> None:
    url, headers, body = sign()
    assert check(url, [(k.upper(), v) for k, v in headers], body) == "AKIDLOCAL"


def test_a_request_without_authorization_is_missing_its_token() -> None:
    url, headers, body = sign()
    error = refusal(url, without(headers, "Authorization"), body)
    assert (error.code, error.status) == ("MissingAuthenticationTokenException", 403)
    assert error.message == "Missing Authentication Token"


def test_an_unknown_access_key_is_unrecognized() -> None:
    error = refusal(*sign(key="NOTCONFIGURED"))
    assert (error.code, error.status) == ("UnrecognizedClientException", 400)
    assert error.message == "The security token included in the request is invalid."


def test_a_wrong_secret_is_an_invalid_signature() -> None:
    error = refusal(*sign(secret="not the secret"))
    assert (error.code, error.status) == ("InvalidSignatureException", 400)
    assert error.message.startswith("The request signature we calculated does not match")


def test_a_changed_body_is_an_invalid_signature() -> None:
    url, headers, _ = sign()
    assert refusal(url, headers, b'{"maxResults": 11}').code == "InvalidSignatureException"
    assert refusal(url, headers, BODY + b" ").code == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Amz-Target", "AWSStepFunctions.DeleteStateMachine"),
        ("Host", "localhost:8081"),
        ("Content-Type", "application/json"),
    ],
)
def test_a_changed_signed_header_is_an_invalid_signature(name: str, value: str) -> None:
    url, headers, body = sign()
    assert refusal(url, replace(headers, name, value), body).code == "InvalidSignatureException"


def test_a_changed_method_path_or_query_is_an_invalid_signature() -> None:
    url, headers, body = sign()
    for other in ("http://localhost:8080/x", "http://localhost:8080/?a=1"):
        assert refusal(other, headers, body).code == "InvalidSignatureException"
    with pytest.raises(SignatureError, match="InvalidSignatureException"):
        check_request("PUT", url, headers, body, KEYS, SIGNED_AT)


def test_a_second_value_of_a_signed_header_is_an_invalid_signature() -> None:
    url, headers, body = sign()
    headers = [*headers, ("X-Amz-Target", "AWSStepFunctions.DeleteStateMachine")]
    assert refusal(url, headers, body).code == "InvalidSignatureException"


def test_a_signed_header_missing_from_the_request_is_refused() -> None:
    url, headers, body = sign()
    error = refusal(url, without(headers, "Content-Type"), body)
    assert error.code == "InvalidSignatureException"
    assert "content-type" in error.message


def test_the_date_may_be_five_minutes_off_either_way() -> None:
    request = sign()
    assert check(*request, now=SIGNED_AT + timedelta(minutes=5)) == "AKIDLOCAL"
    assert check(*request, now=SIGNED_AT - timedelta(minutes=5)) == "AKIDLOCAL"


def test_an_older_signature_has_expired() -> None:
    error = refusal(*sign(), now=SIGNED_AT + timedelta(minutes=5, seconds=1))
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "Signature expired: 20261203T200000Z is now earlier than 20261203T200001Z "
        "(20261203T200501Z - 5 min.)"
    )


def test_a_signature_from_the_future_is_not_yet_current() -> None:
    error = refusal(*sign(), now=SIGNED_AT - timedelta(minutes=5, seconds=1))
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith("Signature not yet current: 20261203T200000Z")


def test_the_clock_may_be_in_any_time_zone() -> None:
    tokyo = SIGNED_AT.astimezone(datetime.now().astimezone().tzinfo)
    assert check(*sign(), now=tokyo) == "AKIDLOCAL"


def test_a_changed_date_is_an_invalid_signature() -> None:
    url, headers, body = sign()
    headers = replace(headers, "X-Amz-Date", "20261203T200001Z")
    assert refusal(url, headers, body, SIGNED_AT).code == "InvalidSignatureException"


def test_a_date_other_than_the_credentials_is_refused() -> None:
    url, headers, body = sign()
    headers = replace(headers, "X-Amz-Date", "20261204T000000Z")
    error = refusal(url, headers, body, datetime(2026, 12, 4, tzinfo=UTC))
    assert error.code == "InvalidSignatureException"
    assert "Date in Credential scope does not match" in error.message


@pytest.mark.parametrize("value", [None, "yesterday", "2026-12-03T20:00:00Z", "20261303T200000Z"])
def test_a_missing_or_malformed_date_is_incomplete(value: str | None) -> None:
    url, headers, body = sign()
    headers = (
        without(headers, "X-Amz-Date") if value is None else replace(headers, "X-Amz-Date", value)
    )
    assert refusal(url, headers, body).code == "IncompleteSignatureException"


def test_another_service_s_signature_is_refused() -> None:
    error = refusal(*sign(service="dynamodb"))
    assert error.code == "InvalidSignatureException"
    assert "states" in error.message


def test_a_payload_hash_header_must_be_the_body_s() -> None:
    good = sign(headers={"X-Amz-Content-SHA256": sigv4.hashlib.sha256(BODY).hexdigest()})
    assert check(*good) == "AKIDLOCAL"
    url, headers, _ = sign(body=b"", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert refusal(url, headers, b'{"any": "body"}').code == "InvalidSignatureException"


def test_two_authorization_headers_are_refused() -> None:
    url, headers, body = sign()
    error = refusal(url, [*headers, ("Authorization", authorization(headers))], body)
    assert error.code == "IncompleteSignatureException"


def test_host_must_be_signed() -> None:
    url, headers, body = sign()
    value = authorization(headers).replace("host;", "")
    error = refusal(url, replace(headers, "Authorization", value), body)
    assert error.code == "InvalidSignatureException"
    assert "Host" in error.message


GARBAGE = [
    "",
    " ",
    "Bearer abc",
    "AWS4-HMAC-SHA256",
    "AWS4-HMAC-SHA256 ",
    "AWS4-ECDSA-P256-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request",
    "AWS AKIDLOCAL:signature",
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request",
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL, SignedHeaders=host, Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/2026/eu-west-1/states/aws4_request, "
    "SignedHeaders=host, Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=host, Signature=xyz",
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=Host;X-Amz-Date, Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=host, Signature=" + "a" * 64 + ", Signature=" + "b" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=host, Signature=" + "a" * 64 + ", Extra=1",
    "AWS4-HMAC-SHA256 Credential=AKID LOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=host, Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20261203/eu-west-1/states/aws4_request, "
    "SignedHeaders=" + ";".join(f"h{i}" for i in range(100)) + ", Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 " + "x" * 10_000,
    "AWS4-HMAC-SHA256 Credential=\x00/\udcff/\u00e9/states/aws4_request, SignedHeaders=host, "
    "Signature=" + "a" * 64,
]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_authorization_is_refused_as_incomplete(value: str) -> None:
    url, headers, body = sign()
    error = refusal(url, replace(headers, "Authorization", value), body)
    assert (error.code, error.status) == ("IncompleteSignatureException", 400)


def test_a_well_formed_header_parses() -> None:
    auth = parse_authorization(authorization(sign()[1]))
    assert (auth.access_key_id, auth.date, auth.region, auth.service) == (
        "AKIDLOCAL",
        "20261203",
        "eu-west-1",
        "states",
    )
    assert auth.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-target")


@given(st.text(max_size=400))
def test_any_authorization_value_is_a_refusal_never_a_crash(value: str) -> None:
    url, headers, body = SIGNED
    with pytest.raises(SignatureError):
        check(url, replace(headers, "Authorization", value), body)


@given(st.integers(min_value=0, max_value=400), st.characters(codec="latin-1"))
def test_a_changed_character_of_a_signature_is_refused(position: int, char: str) -> None:
    url, headers, body = SIGNED
    value = authorization(headers)
    position %= len(value)
    changed = value[:position] + char + value[position + 1 :]
    if changed == value:
        return
    with pytest.raises(SignatureError):
        check(url, replace(headers, "Authorization", changed), body)


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(codec="latin-1"), min_size=1, max_size=30),
            st.text(alphabet=st.characters(codec="latin-1"), max_size=60),
        ),
        max_size=8,
    ),
    st.binary(max_size=200),
    st.text(max_size=60),
)
def test_any_headers_body_and_path_are_a_refusal_never_a_crash(
    extra: list[tuple[str, str]], body: bytes, path: str
) -> None:
    url, headers, _ = SIGNED
    with pytest.raises(SignatureError):
        check(f"http://localhost:8080/{path}", [*extra, *headers], body + b"!")


SIGNED = sign()


@given(
    st.text(alphabet=st.characters(codec=None), max_size=40),
    st.text(alphabet=st.characters(codec=None), max_size=40),
)
def test_unencodable_text_is_a_refusal_never_a_crash(value: str, path: str) -> None:
    url, headers, body = SIGNED
    headers = [*replace(headers, "X-Amz-Target", value + "\ud800"), ("X-Extra", value)]
    with pytest.raises(SignatureError):
        check(f"http://localhost:8080/{path}\udcff", headers, body)


def test_request_url_is_what_the_client_addressed() -> None:
    scope = {
        "headers": [(b"host", b"localhost:8080"), (b"x-amz-target", b"A.B")],
        "raw_path": b"/a%20b",
        "path": "/a b",
        "query_string": b"x=1&y=%2F",
    }
    assert request_url(scope) == "http://localhost:8080/a%20b?x=1&y=%2F"
    assert request_url({"headers": [], "path": "/"}) == "http:///"
    with_query = {**scope, "raw_path": b"/a%20b?x=1&y=%2F"}
    assert request_url(with_query) == "http://localhost:8080/a%20b?x=1&y=%2F"


@pytest.mark.parametrize("char", ["\r", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\xa0"])
def test_whitespace_other_than_a_space_between_the_parts_is_refused(char: str) -> None:
    # Found by the property test above: str.strip() took any whitespace as a separator.
    url, headers, body = SIGNED
    value = authorization(headers)
    at = value.index(", ") + 1
    with pytest.raises(SignatureError):
        check(url, replace(headers, "Authorization", value[:at] + char + value[at + 1 :]), body)
