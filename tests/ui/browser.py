"""Headless Chromium for the UI's end-to-end tests: Debian's package, driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the tests launch
the system Chromium, installing it with apt-get when they run as root and it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM_PACKAGES = ["chromium", "chromium-driver"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_INSTALL_HINT = "apt-get update && apt-get install -y " + " ".join(CHROMIUM_PACKAGES)


def ensure_chromium() -> str:
    """The path of the chromium executable, installed with apt-get if missing (as root).

    Fails the test with the command to run when it is missing and cannot be installed.
    """
    path = shutil.which("chromium")
    if path:
        return path
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, check=False, capture_output=True)
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *CHROMIUM_PACKAGES],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        path = shutil.which("chromium")
        if path:
            return path
        pytest.fail(
            f"installing Chromium with apt-get failed ({done.returncode}): "
            f"{done.stderr.strip()[-500:]}",
            pytrace=False,
        )
    pytest.fail(
        f"Chromium is not installed and this is not root: run `{_INSTALL_HINT}` first",
        pytrace=False,
    )
    raise AssertionError  # unreachable


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
