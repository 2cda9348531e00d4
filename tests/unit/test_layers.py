"""The package's layers (docs/architecture.md): what each may import."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import orchestrator.language

LANGUAGE_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(orchestrator.language.__path__, "orchestrator.language.")
)


def test_the_language_imports_without_celery_or_redis() -> None:
    # A fresh interpreter: this test process has long imported both.
    code = (
        "import importlib, sys\n"
        f"for name in {LANGUAGE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in ('celery', 'kombu', 'redis') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_language_layer_has_the_interpreter() -> None:
    assert "orchestrator.language.interpreter" in LANGUAGE_MODULES
    assert "orchestrator.language.definition.validate" in LANGUAGE_MODULES
