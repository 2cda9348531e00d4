"""Activities with global limits (issue 13 item 4), for the integration and e2e tests.

Each returns when it ran (epoch seconds, and the process), so that a test sees from the
execution's output alone how many ran at once and how fast they started, whichever
processes ran them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from orchestrator import activity

#: At most 2 at once across the cluster.
LIMITED = "limits-pair"
#: At most 10 starts a second across the cluster.
RATED = "limits-ten-per-second"
#: The same body without a limit (the benchmark's reference).
UNLIMITED = "limits-none"


#: Spans run in this process, by the request's ``tag`` (the in-process worker's tests).
RECORDED: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()


def _span(request: Any) -> dict[str, Any]:
    start = time.time()
    seconds = float(request.get("sleep", 0)) if isinstance(request, dict) else 0.0
    if seconds:
        time.sleep(seconds)
    # ppid: the worker's main process, when a prefork pool process ran it.
    span = {"start": start, "end": time.time(), "pid": os.getpid(), "ppid": os.getppid()}
    if isinstance(request, dict) and "tag" in request:
        with _lock:
            RECORDED.setdefault(str(request["tag"]), []).append(span)
    return span


@activity(LIMITED, max_concurrency=2)
def limited(request: Any) -> dict[str, Any]:
    return _span(request)


@activity(RATED, rate_limit="10/s")
def rated(request: Any) -> dict[str, Any]:
    return _span(request)


@activity(UNLIMITED)
def unlimited(request: Any) -> dict[str, Any]:
    return _span(request)


def max_overlap(spans: list[dict[str, Any]]) -> int:
    """The most spans running at one instant."""
    events = sorted(
        [(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    return most
