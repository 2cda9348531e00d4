"""What a listing costs as executions are retained: a measurement, not a test.

Starts N executions of a one-Pass workflow (each ends as it starts: SUCCEEDED, retained)
on an embedded Redis, then times ``list_executions(status="FAILED")`` (a filter that
matches nothing), ``list_executions(status="SUCCEEDED", limit=100)`` (a full page) and
``list_executions(limit=100)``, median of 20 calls each, at 1,000 and 10,000 retained,
and the mean time of the starts (which write the indexes).

Uses only the public API, so it measures any checkout the same way::

    .venv/bin/python benchmarks/listing_scale.py
    PYTHONPATH=/path/to/older/checkout .venv/bin/python benchmarks/listing_scale.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from orchestrator import list_executions, start_workflow
from orchestrator.testing import local_orchestrator

DEFINITION = {
    "Comment": "listing-bench",
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "End": True}},
}
SIZES = (1_000, 10_000)
CALLS = 20


def median_ms(call: Callable[[], Any]) -> float:
    """The median wall time of ``CALLS`` calls, in milliseconds."""
    call()  # scripts loaded, connections open
    times = []
    for _ in range(CALLS):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    """Print one line per size."""
    with local_orchestrator(task_modules=[], timers=False):
        started = 0
        for size in SIZES:
            # What the indexes cost the writes: a start that is also the execution's end.
            began = time.perf_counter()
            batch = size - started
            while started < size:
                start_workflow(DEFINITION, {"n": started})
                started += 1
            start_ms = (time.perf_counter() - began) * 1000 / batch
            none = median_ms(lambda: list_executions(status="FAILED"))
            page = median_ms(lambda: list_executions(status="SUCCEEDED", limit=100))
            everything = median_ms(lambda: list_executions(limit=100))
            assert len(list_executions(status="SUCCEEDED", limit=100)) == 100
            print(
                f"{size:>6} retained: status matching nothing {none:7.2f} ms, "
                f"a page of 100 by status {page:6.2f} ms, a page of 100 {everything:6.2f} ms; "
                f"a start {start_ms:.3f} ms"
            )


if __name__ == "__main__":
    main()
