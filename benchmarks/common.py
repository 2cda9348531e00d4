"""Pieces the benchmark scripts share."""

from __future__ import annotations

import sys
from pathlib import Path


def celery_worker_command(queue: str, concurrency: int, node: str) -> list[str]:
    """The ``celery worker`` both sides of a benchmark run on: prefork, ``concurrency``
    processes, quiet, no gossip or mingle (nothing but the work is measured)."""
    return [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "orchestrator.engine.celery_app",
        "worker",
        "-Q",
        queue,
        "--pool",
        "prefork",
        "-c",
        str(concurrency),
        "-l",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "-n",
        node,
    ]
