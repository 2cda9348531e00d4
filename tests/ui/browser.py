"""Headless Chromium for the UI's end-to-end tests: Debian's package, driven by Playwright.

Playwright's own browser download (``playwright install``) is never used, and the tests
install nothing: ``./run``'s set-up installs Debian's ``chromium`` once when it is missing
(``./run setup``, also run by ``./run test``). Without it the browser tests fail, saying so.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: Debian's Chromium; ``ORCHESTRATOR_CHROMIUM`` names another executable.
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    # Debian's Chromium run as root (CI) has no user namespace sandbox to start.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str:
    """The path of the Chromium executable; fails the test loudly when there is none."""
    configured = os.environ.get("ORCHESTRATOR_CHROMIUM")
    if configured:
        if shutil.which(configured):
            return str(shutil.which(configured))
        pytest.fail(f"ORCHESTRATOR_CHROMIUM={configured!r} is not an executable", pytrace=False)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is not installed, and the browser tests install nothing: run `./run setup` "
        "(as root on Debian/Ubuntu it runs `apt-get install -y chromium`; otherwise install "
        "Chromium yourself, or set ORCHESTRATOR_CHROMIUM to its executable)",
        pytrace=False,
    )
    raise AssertionError  # unreachable: pytest.fail raises


def require_playwright() -> None:
    """Fail clearly when the Playwright package is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(
            "the UI browser tests need Playwright: pip install 'playwright>=1.44' "
            "(never `playwright install`: they use the system Chromium)",
            pytrace=False,
        )
