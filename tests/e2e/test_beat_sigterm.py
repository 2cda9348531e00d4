"""`orchestrator beat` stops within seconds when SIGTERM reaches its whole process group
(as honcho and systemd send it), leaving no child process behind.

The timer-firing processes (``FiringPool``) die of the signal first; beat used to wait
forever in ``Pool.terminate()`` for a queue lock a dead process held.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.engine.embedded import EmbeddedRedis
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: beat must be gone within this after the SIGTERM (the firing pool's close takes ~3 s).
STOP_BOUND_S = 10.0


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_beat_stops_when_its_process_group_gets_sigterm(tmp_path: Path) -> None:
    with EmbeddedRedis() as redis:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "BROKER_URL", "ORCHESTRATOR_REDIS_URL")
        }
        env.update(
            REDIS_URL=redis.url,
            ORCHESTRATOR_KEY_PREFIX=f"beat-term-{uuid.uuid4().hex[:8]}",
            ORCHESTRATOR_TIMER_PROCESSES="3",  # beat plus two firing processes
        )
        log = tmp_path / "beat.log"
        beat = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "beat", "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # Beat, its two firing processes and multiprocessing's resource tracker.
            wait_until(
                lambda: len(children(beat.pid)) >= 3,
                timeout=60,
                message="beat's firing processes started",
            )
            os.killpg(beat.pid, signal.SIGTERM)
            try:
                beat.wait(timeout=STOP_BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"beat still running {STOP_BOUND_S} s after SIGTERM:\n{log.read_text()}"
                )
            wait_until(
                lambda: not group_alive(beat.pid),
                timeout=STOP_BOUND_S,
                message="a process of beat's group outlived it",
            )
        finally:
            if group_alive(beat.pid):
                os.killpg(beat.pid, signal.SIGKILL)
            beat.wait()
