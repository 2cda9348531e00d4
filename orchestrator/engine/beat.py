"""A Celery beat scheduler that also drives the orchestrator's durable timers.

Retry backoffs, task timeouts and Wait states are stored in Redis and fired by
:func:`orchestrator.engine.timers.tick`, which something must call a few times a second. In
production that something is celery beat running this scheduler::

    celery -A orchestrator.engine.celery_app beat -S orchestrator.engine.beat:OrchestratorScheduler
    # or simply
    orchestrator beat

Beat's own periodic tasks (``beat_schedule``) keep working as usual; this scheduler only
adds the timer tick and caps beat's sleep so timers fire within one tick interval.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import beat

from orchestrator.config import get_settings
from orchestrator.engine import timers
from orchestrator.engine.store import OutageLog

logger = logging.getLogger("orchestrator.engine.beat")

#: Never sleep less than this between ticks, whatever the settings say: a zero or
#: negative interval would make beat's loop spin (it only sleeps for positive values).
MIN_SLEEP_S = 0.01


class OrchestratorScheduler(beat.Scheduler):
    """Beat scheduler that runs the orchestrator's timer tick on every beat tick.

    It derives from the in-memory :class:`celery.beat.Scheduler`, not from the
    shelve-backed ``PersistentScheduler``: the orchestrator's timers live in Redis, so
    there is nothing worth persisting locally and no ``celerybeat-schedule`` file to
    manage (or to lose write access to in a container).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # One owner for the tick lock across ticks: a tick that overruns the lock's
        # expiry is then recognised as ours on the next call instead of locking us out.
        self.tick_owner = uuid.uuid4().hex
        # Bursts of due timers fire on several processes (ORCHESTRATOR_TIMER_PROCESSES),
        # started with the schedule (a lazy scheduler, as in tests, starts none). Set
        # before Celery's __init__, which sets the schedule up unless lazy.
        self.firing_pool = timers.FiringPool()
        self.outage = OutageLog(logger)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run beat's due entries, then fire due orchestrator timers.

        Returns:
            Seconds to sleep before the next tick: beat's own interval, capped at
            ``tick_interval_seconds`` so timers are never late by more than one tick.
        """
        interval = super().tick(*args, **kwargs)
        busy = False
        try:
            busy = timers.run_tick(owner=self.tick_owner, pool=self.firing_pool).busy
        except Exception as exc:  # noqa: BLE001 - a Redis hiccup must not stop beat
            # An outage is logged when it starts and ends, not on every tick.
            if not self.outage.failed(exc):
                logger.exception("orchestrator timer tick failed")
        else:
            self.outage.ok()
        if busy:
            # Timers made due by the tick's own firings wait (a large Map's refills).
            return MIN_SLEEP_S
        cap = get_settings().tick_interval_seconds
        return max(MIN_SLEEP_S, min(interval, cap) if interval else cap)

    def setup_schedule(self) -> None:
        """Set up beat's schedule and start the timer-firing processes."""
        super().setup_schedule()
        self.firing_pool.start()

    def close(self) -> None:
        """Stop the timer-firing processes along with beat."""
        self.firing_pool.close()
        super().close()
