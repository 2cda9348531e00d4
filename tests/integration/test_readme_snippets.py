"""Every ```python block of README.md runs as written, so the README and the code cannot
drift apart.

Each block runs in a fresh interpreter from the project folder, with the test run's
environment (embedded Redis, or ``REDIS_URL``/``BROKER_URL``): whatever a block needs it
sets up itself (``local_orchestrator()``). A block that is only a fragment for
illustration is marked by ``<!-- snippet: not-run -->`` on the line right above it; the
marker is counted, so exemptions stay visible.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOT_RUN = "<!-- snippet: not-run -->"
#: A block that runs a workflow with a 1 s retry backoff takes a few seconds.
SNIPPET_TIMEOUT_S = 120

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, code, runs)`` of every ```python block of ``text``."""
    blocks = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), before.strip() != NOT_RUN))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_python_blocks() -> None:
    runnable = [block for block in BLOCKS if block[2]]
    assert len(runnable) >= 3, "the Python API, the callback and the activity examples"
    # Exemptions stay rare: a fragment must not be the usual way to show the API.
    assert len(BLOCKS) - len(runnable) <= 1


def test_the_block_finder_sees_markers() -> None:
    text = f"x\n{NOT_RUN}\n```python\nfragment\n```\n\n```python\nprint(1)\n```\n"
    assert python_blocks(text) == [(3, "fragment\n", False), (7, "print(1)\n", True)]


@pytest.mark.parametrize(
    "line, code",
    [pytest.param(line, code, id=f"README.md:{line}") for line, code, runs in BLOCKS if runs],
)
def test_readme_block_runs_as_written(line: int, code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"README.md:{line} failed:\n{proc.stderr[-4000:]}"
