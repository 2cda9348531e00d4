"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.engine.store import get_store
from tests.redis_monitor import Monitor


@pytest.fixture
def monitor(orchestrator) -> Iterator[Monitor]:
    store = get_store()
    watching = Monitor(orchestrator.settings.redis_url, store)
    try:
        yield watching
    finally:
        if watching._thread.is_alive():
            watching.stop()
