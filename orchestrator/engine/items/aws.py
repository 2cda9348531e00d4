"""boto3, optional: the S3 client of ``ItemReader``/``ResultWriter`` and what happens without it.

boto3 is the extra ``orchestrator[aws]``: most workflows never touch S3, and boto3 with
botocore is a large install. Importing this module never needs boto3; asking for a client
without it raises :class:`MissingOptionalDependency`, a ``DefinitionError`` that names the
extra, and :func:`requires_aws` lets validation report the same thing as an issue.

The client uses boto3's standard configuration and nothing else: the credentials chain
(environment, shared files, instance roles...), ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` for any S3-compatible store, and the configured region (``us-east-1``
when none is).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

from orchestrator.errors import DefinitionIssue, MissingOptionalDependency

#: The extra that installs boto3.
AWS_EXTRA = "aws"

#: Region used when neither the environment nor the shared config names one; S3 needs one
#: to sign requests, and a bucket in another region answers with a redirect boto3 follows.
DEFAULT_REGION = "us-east-1"

#: Environment that changes which client :func:`s3_client` builds; the cache is keyed on it
#: so a process that changes its endpoint (a test, a re-configured worker) gets a new one.
_CLIENT_ENV = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
)

_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()


def aws_available() -> bool:
    """Whether boto3 can be imported."""
    try:
        return importlib.util.find_spec("boto3") is not None
    except (ImportError, ValueError):  # a broken install, or boto3 blocked in sys.modules
        return False


def requires_aws(
    path: str, feature: str = "an S3 ItemReader or ResultWriter"
) -> list[DefinitionIssue]:
    """The definition issue (at ``path``) of using ``feature`` without boto3, or none."""
    if aws_available():
        return []
    return list(MissingOptionalDependency(path, feature, "boto3", AWS_EXTRA).issues)


def ensure_aws(path: str, feature: str = "an S3 ItemReader or ResultWriter") -> None:
    """Raise :class:`MissingOptionalDependency` when boto3 is not installed."""
    if not aws_available():
        raise MissingOptionalDependency(path, feature, "boto3", AWS_EXTRA)


def s3_client(path: str = "$") -> Any:
    """A boto3 S3 client with the standard configuration, one per process and environment.

    boto3 clients are thread-safe and slow to build (tens of ms), so one is shared.
    """
    ensure_aws(path)
    env_key = tuple(os.environ.get(name) for name in _CLIENT_ENV)
    with _clients_lock:
        client = _clients.get(env_key)
        if client is None:
            import boto3  # optional dependency: imported only when S3 is used

            session = boto3.session.Session()
            client = session.client("s3", region_name=session.region_name or DEFAULT_REGION)
            _clients[env_key] = client
        return client


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``...), else the class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from botocore (a service error, a connection or credentials
    failure) rather than from this package."""
    return type(exc).__module__.startswith(("botocore", "boto3", "s3transfer"))
