"""The browser tests install nothing: without Chromium they fail, pointing at ./run setup."""

from __future__ import annotations

import pytest

from tests.ui.browser import find_chromium


def test_missing_chromium_fails_loudly_and_installs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, no apt-get
    monkeypatch.delenv("ORCHESTRATOR_CHROMIUM", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"run `\./run setup`"):
        find_chromium()


def test_configured_chromium_is_used(monkeypatch, tmp_path):
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ORCHESTRATOR_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
    monkeypatch.setenv("ORCHESTRATOR_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(pytest.fail.Exception, match="not an executable"):
        find_chromium()
