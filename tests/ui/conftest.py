"""Fixtures of the UI tests: the app on the session's real Redis, a live server, Chromium."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import tests.ui.ui_activities  # noqa: F401 - registers the ui-* activities before the worker starts
from orchestrator.testing import LocalOrchestrator
from tests.ui.browser import CHROMIUM_ARGS, find_chromium, require_playwright


@pytest.fixture
def client(orchestrator: LocalOrchestrator) -> Iterator[Any]:
    """A TestClient of the UI (no token), on the session's Redis and worker."""
    from fastapi.testclient import TestClient

    from orchestrator.ui import create_app

    app = create_app(token="")
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on 127.0.0.1; yields its base URL."""
    import uvicorn

    # Bound here and handed to uvicorn: no other test worker can take the port between
    # picking it and listening on it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="ui-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        listener.close()


@pytest.fixture(scope="session")
def live_server(orchestrator: LocalOrchestrator) -> Iterator[str]:
    """The UI (no token, no API keys) served by uvicorn in a thread on 127.0.0.1; yields
    its base URL."""
    from orchestrator.ui import create_app

    with serving(create_app(token="", api_keys={})) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, driven by Playwright."""
    require_playwright()
    executable = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
