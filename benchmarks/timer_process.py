"""The benchmarks' "beat": runs the orchestrator's timer loop in its own process.

Production runs ``orchestrator.engine.timers.tick()`` from Celery beat; this process runs the
same function every ``tick_interval_seconds`` through ``TimerLoop`` until it is
terminated. Settings (REDIS_URL, key prefix...) come from the environment.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import importlib

    from orchestrator.config import get_settings
    from orchestrator.engine.timers import TimerLoop

    # A timer that fires can enter a Task state, whose Resource must resolve to a
    # registered activity: import the activity modules, as celery beat does (``imports``).
    for module in get_settings().task_modules:
        importlib.import_module(module)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Celery's current app is per thread: in TimerLoop's thread, signatures built by name
    # (orchestrator.engine.compiler) would otherwise go to Celery's unconfigured default app.
    from orchestrator.engine.celery_app import app

    app.set_default()
    loop = TimerLoop().start()
    print("timer loop running", flush=True)
    stop.wait()
    loop.stop()


if __name__ == "__main__":
    main()
