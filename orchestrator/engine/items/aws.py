"""boto3, optional: every boto3 client the engine uses, and what happens without it.

The S3 client of ``ItemReader``/``ResultWriter`` and the clients of the AWS service
integrations (:mod:`orchestrator.engine.integrations.aws_sdk`,
:mod:`~orchestrator.engine.integrations.aws_optimized`) all come from :func:`client`.

boto3 is the extra ``orchestrator[aws]``: most workflows never touch AWS, and boto3 with
botocore is a large install. Importing this module never needs boto3; asking for a client
without it raises :class:`MissingOptionalDependency`, a ``DefinitionError`` that names the
extra, and :func:`requires_aws` lets validation report the same thing as an issue.

A client uses boto3's standard configuration and nothing else: the credentials chain
(environment, shared files, instance roles...), the endpoint from
``AWS_ENDPOINT_URL_<SERVICE>`` (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_SQS``...: the service's id upper-cased, spaces as underscores) or
``AWS_ENDPOINT_URL`` (boto3 >= 1.28 reads them itself), so a local stand-in or an
S3-compatible store works, and the configured region (``us-east-1`` when none is).
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

#: Environment prefixes that change which client :func:`client` builds (the endpoints,
#: region, profile, credentials and config files); the cache is keyed on them so a process
#: that changes its endpoint (a test, a re-configured worker) gets a new client.
_CLIENT_ENV_PREFIXES = ("AWS_",)

_clients: dict[tuple[Any, ...], Any] = {}
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


def client(service: str, path: str = "$", feature: str | None = None) -> Any:
    """A boto3 client of ``service`` (boto3's name: ``s3``, ``dynamodb``, ``events``...)
    with the standard configuration, one per process, service and environment.

    boto3 clients are thread-safe and slow to build (tens of ms), so one is shared.
    Without boto3 it raises :class:`MissingOptionalDependency` (``feature`` says what
    needed it; at ``path`` of the definition).
    """
    ensure_aws(path, feature or f"the AWS service {service!r}")
    env_key = (service, *sorted(item for item in os.environ.items() if _shapes_client(item[0])))
    with _clients_lock:
        made = _clients.get(env_key)
        if made is None:
            import boto3  # optional dependency: imported only when AWS is used

            session = boto3.session.Session()
            made = session.client(service, region_name=session.region_name or DEFAULT_REGION)
            _clients[env_key] = made
        return made


def _shapes_client(name: str) -> bool:
    return name.startswith(_CLIENT_ENV_PREFIXES)


def s3_client(path: str = "$") -> Any:
    """The S3 client (:func:`client`) of ``ItemReader``/``ResultWriter``."""
    return client("s3", path, "an S3 ItemReader or ResultWriter")


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
