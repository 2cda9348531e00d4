#!/usr/bin/env python
"""The Python work of one Task hop, counted: a deterministic figure beside run.py's timings.

    python benchmarks/hop_profile.py [--executions 20] [--top 25] [--dump FILE]

Starts an embedded Redis and an in-process Celery worker (solo pool, a thread of this
process), runs ``--executions`` linear20 workflows of the ``noop`` activity one after the
other, and profiles (cProfile) each task from ``task_prerun`` to ``task_postrun``: the
claim, the activity, the transition, the commit and the hand-over to the chain. Prints
the Python function calls per hop and the functions with the most time of their own.

Timings on a shared machine move by 10-20 % from one run to the next; the number of
calls per hop does not (it moves only with the code), so it shows what a change to the
hot path costs or saves where an A/B of run.py's ratios cannot resolve it. The profiled
time is not a timing figure: it holds the profiler's own cost, the waits for Redis, and
the GIL lost to this process's other threads (the waiting caller's among them).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: States per workflow (as run.py's latency figure).
HOPS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", help="write the cProfile data here (pstats format)")
    options = parser.parse_args()

    from orchestrator.engine.embedded import EmbeddedRedis

    redis = EmbeddedRedis().start()
    queue = f"hop-{uuid.uuid4().hex[:6]}"
    # Before the orchestrator is imported: its settings and Celery app read these.
    os.environ.update(
        REDIS_URL=redis.url,
        BROKER_URL=redis.url,
        ORCHESTRATOR_KEY_PREFIX=f"hop{uuid.uuid4().hex[:6]}",
        ORCHESTRATOR_QUEUE=queue,
    )
    try:
        calls, seconds, stats = _profile(queue, options.executions)
    finally:
        redis.stop()
    hops = options.executions * HOPS
    print(f"{hops} hops: {calls / hops:.0f} Python calls per hop")
    print(f"(profiled time per hop {seconds / hops * 1000:.3f} ms: not a timing figure)\n")
    if options.dump:
        stats.dump_stats(options.dump)
    stats.sort_stats("tottime").print_stats(options.top)


def _profile(queue: str, executions: int) -> tuple[int, float, pstats.Stats]:
    from celery import signals
    from celery.contrib.testing.worker import start_worker

    import benchmarks.bench_tasks  # noqa: F401 - registers the noop activity
    from benchmarks.run import linear
    from orchestrator import start_workflow
    from orchestrator.engine.celery_app import app

    profiler = cProfile.Profile()
    measuring = False

    def on(**_: Any) -> None:
        if measuring:
            profiler.enable()

    def off(**_: Any) -> None:
        profiler.disable()

    signals.task_prerun.connect(on, weak=False)
    signals.task_postrun.connect(off, weak=False)
    definition = linear(HOPS, "hop_profile")
    with start_worker(app, pool="solo", queues=[queue], perform_ping_check=False):
        for _ in range(3):  # caches, connections and imports of the first runs
            start_workflow(definition, {"n": 0}).result(timeout=60)
        measuring = True
        for _ in range(executions):
            result = start_workflow(definition, {"n": 0}).result(timeout=60)
            if result.status != "SUCCEEDED":
                raise SystemExit(f"a profiled execution ended {result.status}: {result.cause}")
    stats = pstats.Stats(profiler)
    return stats.total_calls, stats.total_tt, stats  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
