"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_servers import broker_server, redis_servers

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbitmq_answers() -> bool:
    """Whether the machine's RabbitMQ takes a connection (guest, vhost /) right now."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError:
        return False
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure: not usable
        return False


@pytest.fixture
def separate_broker(tmp_path: Path) -> Iterator[str]:
    """Celery's broker, separate from the cluster: RabbitMQ when it answers, else a plain
    redis-server started (and stopped) here."""
    if _rabbitmq_answers():
        yield RABBITMQ_URL
        return
    with redis_servers(tmp_path / "broker") as servers:
        yield f"redis://127.0.0.1:{broker_server(servers).port}/0"
