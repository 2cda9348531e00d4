"""Activities of the queue-routing tests: one on a queue of its own, one on the default.

The own queue's name comes from ``TEST_GPU_QUEUE`` (default ``gpu``), so that runs sharing
a broker do not share it. Each returns the process id it ran in.
"""

from __future__ import annotations

import os
from typing import Any

from orchestrator import activity

GPU_QUEUE = os.environ.get("TEST_GPU_QUEUE", "gpu")


@activity("queue-render", queue=GPU_QUEUE)
def render(request: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "queue": GPU_QUEUE}


@activity("queue-where")
def where(request: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}
