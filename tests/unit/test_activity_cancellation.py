"""The pure parts of activity contexts and cancellation: when a running step counts as
cancelled, what heartbeat() does, and what the lease keeper does past the grace period
(no Redis, no worker: the store and the termination are stand-ins)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator import ActivityCancelled, activity_context
from orchestrator.engine import context as context_module
from orchestrator.engine import leases as leases_module
from orchestrator.engine.context import ActivityContext, running
from orchestrator.engine.leases import LeaseKeeper, _Watch, cancel_reason
from orchestrator.language.definition import parse_definition
from orchestrator.language.interpreter import ExecutionInfo, Interpreter, StepRecord
from tests.helpers import wait_until

NOW = 1_700_000_000.0


class FakeStore:
    def __init__(self, claims: list[tuple[str | None, list[str | None]]] | None = None) -> None:
        self.pushed: list[tuple[str, float]] = []
        self.claims = claims or []
        self.asked: list[Any] = []

    def push_back_timer(self, member: str, due: float) -> bool:
        self.pushed.append((member, due))
        return True

    def running_claims(self, steps: list[Any]) -> list[tuple[str | None, list[str | None]]]:
        self.asked.append(steps)
        return self.claims


@pytest.mark.parametrize(
    "execution, statuses, expected",
    [
        ("RUNNING", ["RUNNING:tok"], None),
        ("RUNNING", ["RUNNING:tok", "RUNNING"], None),
        ("RUNNING", ["FAILED"], "no longer this attempt's (FAILED"),
        ("RUNNING", ["RETRYING"], "no longer this attempt's (RETRYING"),
        ("RUNNING", ["RUNNING:other"], "no longer this attempt's (RUNNING"),
        ("RUNNING", [None], "no longer this attempt's (gone"),
        ("RUNNING", ["RUNNING:tok", "FAILED"], "'Fan' it runs in ended (FAILED)"),
        ("ABORTED", ["RUNNING:tok"], "its execution is ABORTED"),
        ("TIMED_OUT", ["RUNNING:tok", "RUNNING"], "its execution is TIMED_OUT"),
        (None, ["RUNNING:tok"], "its execution is gone"),
    ],
)
def test_cancel_reason(
    execution: str | None, statuses: list[str | None], expected: str | None
) -> None:
    containers = ["Fan"] if len(statuses) == 2 else []
    reason = cancel_reason("tok", containers, execution, statuses)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_heartbeat_pushes_the_heartbeat_timer_at_most_once_per_throttle(monkeypatch) -> None:
    store = FakeStore()
    clock = [100.0]
    monkeypatch.setattr(context_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(context_module.time, "time", lambda: NOW)
    ctx = ActivityContext("exec", "Fan[0]/T", 2, None, 8, store)  # type: ignore[arg-type]
    assert (ctx.state, ctx.attempt, ctx.task_token) == ("T", 2, None)
    ctx.heartbeat()
    assert store.pushed == []  # the worker pushed it when the attempt started
    clock[0] += 1.0
    ctx.heartbeat({"done": 3})
    assert store.pushed == [('["heartbeat","exec","Fan[0]/T",2]', NOW + 8)]
    ctx.heartbeat()
    assert len(store.pushed) == 1
    assert ctx.heartbeat_details is None


def test_heartbeat_without_heartbeat_seconds_calls_no_redis() -> None:
    store = FakeStore()
    ctx = ActivityContext("exec", "T", 0, "token", None, store)  # type: ignore[arg-type]
    for _ in range(10):
        ctx.heartbeat()
    assert store.pushed == []


def test_a_cancelled_context_raises_from_heartbeat_and_stays_cancelled() -> None:
    ctx = ActivityContext("exec", "T", 0)
    assert not ctx.cancelled and not ctx.wait_cancelled(0)
    ctx.cancel("its execution is ABORTED")
    ctx.cancel("a later reason is ignored")
    assert ctx.cancelled and ctx.wait_cancelled(0)
    with pytest.raises(ActivityCancelled, match="exec/T cancelled: its execution is ABORTED"):
        ctx.heartbeat()


def test_activity_context_is_the_running_one_only() -> None:
    outer, inner = ActivityContext("a", "S", 0), ActivityContext("b", "S", 0)
    with running(outer):
        with running(inner):
            assert activity_context() is inner
        assert activity_context() is outer
    with pytest.raises(RuntimeError):
        activity_context()


def _settings(grace: float) -> SimpleNamespace:
    return SimpleNamespace(cancel_grace_seconds=grace, lease_seconds=15.0)


def test_the_keeper_cancels_and_past_the_grace_asks_for_termination(monkeypatch) -> None:
    ctx = ActivityContext("exec", "Fan[0]/T", 0)
    watch = _Watch(ctx, "tok", "task-id", "worker@host", ["Fan"])
    store = FakeStore([("RUNNING", ["RUNNING:tok", "FAILED"])])
    calls: list[Any] = []
    monkeypatch.setattr(leases_module, "get_store", lambda: store)
    monkeypatch.setattr(leases_module, "get_settings", lambda: _settings(0.0))
    monkeypatch.setattr(leases_module, "_pool_process", True)
    monkeypatch.setattr(leases_module, "_revoke", lambda *args: calls.append(("revoke", args)))
    monkeypatch.setattr(leases_module, "_kill_self", lambda: calls.append(("kill",)))
    keeper = LeaseKeeper()
    keeper._watch({"m": watch})
    assert store.asked == [[("exec", "Fan[0]/T", ["Fan"])]]
    assert ctx.cancelled and "'Fan' it runs in ended" in (ctx.cancel_reason or "")
    assert calls == [("revoke", ("task-id", "worker@host"))]
    keeper._watch({"m": watch})  # not asked again; not yet SELF_KILL_AFTER_S later
    assert len(store.asked) == 1 and len(calls) == 1
    keeper._overdue(watch, (watch.revoked_at or 0) + leases_module.SELF_KILL_AFTER_S)
    assert calls[-1] == ("kill",)


def test_a_thread_is_never_killed_only_warned_about(monkeypatch, caplog) -> None:
    ctx = ActivityContext("exec", "T", 0)
    watch = _Watch(ctx, "tok", "task-id", "worker@host")
    store = FakeStore([("ABORTED", ["RUNNING:tok"])])
    monkeypatch.setattr(leases_module, "get_store", lambda: store)
    monkeypatch.setattr(leases_module, "get_settings", lambda: _settings(0.0))
    monkeypatch.setattr(leases_module, "_pool_process", False)
    monkeypatch.setattr(leases_module, "_revoke", lambda *args: pytest.fail("revoked"))
    monkeypatch.setattr(leases_module, "_kill_self", lambda: pytest.fail("killed"))
    keeper = LeaseKeeper()
    with caplog.at_level(logging.WARNING, logger="orchestrator.engine.leases"):
        keeper._watch({"m": watch})
        keeper._watch({"m": watch})
    assert ctx.cancelled
    warnings = [r for r in caplog.records if "cannot kill it" in r.getMessage()]
    assert len(warnings) == 1


def test_within_the_grace_nothing_is_terminated(monkeypatch) -> None:
    ctx = ActivityContext("exec", "T", 0)
    watch = _Watch(ctx, "tok", "task-id", "worker@host")
    monkeypatch.setattr(leases_module, "get_store", lambda: FakeStore([("ABORTED", ["x"])]))
    monkeypatch.setattr(leases_module, "get_settings", lambda: _settings(60.0))
    monkeypatch.setattr(leases_module, "_pool_process", True)
    monkeypatch.setattr(leases_module, "_revoke", lambda *args: pytest.fail("revoked"))
    LeaseKeeper()._watch({"m": watch})
    assert ctx.cancelled and watch.revoked_at is None


def test_an_ordinary_task_with_heartbeat_seconds_arms_its_heartbeat_timer() -> None:
    definition = parse_definition(
        {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "w", "HeartbeatSeconds": 3, "End": True}},
        }
    )
    info = ExecutionInfo("exec-1", "exec-1", "wf", NOW, {})
    tr = Interpreter(definition, info, lambda state: state.resource).start(NOW)
    assert (NOW + 3, ["heartbeat", "T", 0]) in tr.timers
    record = tr.records["T"]
    assert isinstance(record, StepRecord) and record.heartbeat == 3
    assert StepRecord.loads(record.dumps()).heartbeat == 3


@pytest.mark.parametrize(
    "worker_pid, killable",
    [(None, False), ("self", False), ("other", True)],
    ids=["no worker", "solo (the worker's own process)", "prefork pool process"],
)
def test_only_a_prefork_pool_process_counts_as_killable(
    monkeypatch, worker_pid: str | None, killable: bool
) -> None:
    import os

    pid = {None: None, "self": os.getpid(), "other": os.getpid() + 1}[worker_pid]
    monkeypatch.setattr(leases_module, "_worker_pid", pid)
    monkeypatch.setattr(leases_module, "_pool_process", False)
    leases_module._in_pool_process()
    assert leases_module._pool_process is killable


def test_a_failing_round_does_not_end_the_lease_keeper(monkeypatch, caplog) -> None:
    # Settings that stop parsing (an environment changed under a running worker) made
    # the keeper's thread die, and the steps it held went unrenewed.
    renewed: list[list[str]] = []
    failures = iter([True, True, True])

    def settings() -> SimpleNamespace:
        if next(failures, False):
            raise ValueError("ORCHESTRATOR_RESOURCE_ALIASES must be a JSON object")
        return SimpleNamespace(cancel_grace_seconds=5.0, lease_seconds=0.03)

    store = SimpleNamespace(renew_leases=lambda members, until: renewed.append(members))
    monkeypatch.setattr(leases_module, "get_settings", settings)
    monkeypatch.setattr(leases_module, "get_store", lambda: store)
    monkeypatch.setattr(leases_module, "WATCH_INTERVAL_S", 0.01)
    keeper = LeaseKeeper()
    with caplog.at_level(logging.WARNING, logger=leases_module.logger.name):
        with keeper.holding("exec", "S"):
            wait_until(lambda: renewed, 10, message="a renewal after the failing rounds")
    assert keeper._thread is not None and keeper._thread.is_alive()
    # A lasting failure is logged once, not every round (by this keeper's thread: the
    # patched settings fail another keeper's rounds too, if the process runs one).
    own = [r.getMessage() for r in caplog.records if r.thread == keeper._thread.ident]
    assert own.count("step lease keeper: a round failed") == 1
