"""A local S3 (or all of AWS moto stands in for) for the tests: moto's server mode on a
free loopback port.

No test touches AWS: the server runs in this process, credentials are dummies, and the
shared AWS config/credentials files are hidden while it runs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_s3() -> Iterator[str]:
    """Start moto's S3 server; yield its URL with the environment pointing boto3 at it."""
    with _moto_server("AWS_ENDPOINT_URL_S3") as url:
        yield url


@contextmanager
def local_aws() -> Iterator[str]:
    """Start moto's server (every service it stands in for: DynamoDB, SQS, SNS,
    EventBridge, S3, Secrets Manager...); yield its URL with ``AWS_ENDPOINT_URL`` pointing
    every boto3 client at it."""
    with _moto_server("AWS_ENDPOINT_URL") as url:
        yield url


@contextmanager
def _moto_server(endpoint_variable: str) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", "/dev/null")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        env.setenv(endpoint_variable, url)
        try:
            yield url
        finally:
            server.stop()
