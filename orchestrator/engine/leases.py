"""Leases of the steps running in this process, renewed from one thread.

A running step holds a lease in Redis; a worker that dies stops renewing it, and the
reconciler (:mod:`orchestrator.engine.timers`) dispatches the step again when it lapses.
"""

from __future__ import annotations

import logging
import threading
import time

from orchestrator.config import get_settings
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import OutageLog, get_store

logger = logging.getLogger("orchestrator.engine.leases")

# -- leases -----------------------------------------------------------------------------


class LeaseKeeper:
    """Renews the leases of the steps running in this process, from one thread.

    A step whose lease is not renewed (its worker died) is dispatched again by the
    reconciler in the timer loop, within ``lease_seconds``.
    """

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._outage = OutageLog(logger)

    def holding(self, execution_id: str, step_key: str) -> _Held:
        """Context manager: keep this step's lease alive while the body runs."""
        return _Held(self, lease_member(execution_id, step_key))

    def _add(self, member: str) -> None:
        import os

        with self._lock:
            self._held[member] = self._held.get(member, 0) + 1
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="orchestrator-leases", daemon=True
                )
                self._thread.start()

    def _remove(self, member: str) -> None:
        with self._lock:
            count = self._held.get(member, 0) - 1
            if count <= 0:
                self._held.pop(member, None)
            else:
                self._held[member] = count

    def _run(self) -> None:
        while True:
            interval = get_settings().lease_seconds / 3
            time.sleep(interval)
            with self._lock:
                members = list(self._held)
            if not members:
                continue
            try:
                store = get_store()
                until = time.time() + get_settings().lease_seconds
                # XX: renew only leases that still exist (a finished step's is gone).
                store.renew_leases(members, until)
            except Exception as exc:  # noqa: BLE001 - keep renewing after a Redis hiccup
                if not self._outage.failed(exc):  # an outage: one line when it starts
                    logger.warning("could not renew step leases", exc_info=True)
            else:
                self._outage.ok()


class _Held:
    def __init__(self, keeper: LeaseKeeper, member: str) -> None:
        self.keeper = keeper
        self.member = member

    def __enter__(self) -> None:
        self.keeper._add(self.member)

    def __exit__(self, *_: object) -> None:
        self.keeper._remove(self.member)


leases = LeaseKeeper()
