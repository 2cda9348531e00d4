"""Wait states and durable timers: real Redis timers fired by the timer loop / tick()."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

import tests.control_activities  # noqa: F401 - registers the ctl_* activities before the worker starts
from orchestrator import describe_execution, get_execution_history, start_workflow, stop_execution
from orchestrator.engine.store import get_store
from orchestrator.engine.timers import DELEGATE_MIN, FiringPool, fire_timer, fire_timers, tick
from tests.helpers import count_events, event_types, machine, run_workflow, wait_until

pytestmark = pytest.mark.usefixtures("orchestrator")

#: How late a fired wait may be here. Lateness itself is measured by the benchmarks; these
#: tests check that the timer, not something else, moves the execution on (the next thing
#: that could is a 60 s dispatch timeout), and that the due time is exact
#: (test_wait_timer_is_due_exactly): a loaded CI machine may fire a tick seconds late.
SLACK = 10.0


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_then_pass(**wait_fields) -> dict:
    return machine(
        {
            "W": {"Type": "Wait", "Next": "Done", **wait_fields},
            "Done": {"Type": "Pass", "End": True},
        }
    )


def _waited(history) -> float:
    entered = next(e.timestamp for e in history if e.type == "WaitStateEntered")
    exited = next(e.timestamp for e in history if e.type == "WaitStateExited")
    return (exited - entered).total_seconds()


def test_wait_seconds():
    handle, result = run_workflow(wait_then_pass(Seconds=1), {"a": 1}, timeout=15)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"a": 1}
    history = handle.history()
    assert count_events(history, "WaitStateEntered", "W") == 1
    assert count_events(history, "WaitStateExited", "W") == 1
    assert 1.0 - 0.05 <= _waited(history) < 1.0 + SLACK


def test_wait_seconds_path():
    handle, result = run_workflow(wait_then_pass(SecondsPath="$.delay"), {"delay": 2}, timeout=15)
    assert result.status == "SUCCEEDED", result
    assert 2.0 - 0.05 <= _waited(handle.history()) < 2.0 + SLACK


def test_wait_timestamp():
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    handle, result = run_workflow(wait_then_pass(Timestamp=iso(due)), timeout=15)
    assert result.status == "SUCCEEDED", result
    exited = next(e.timestamp for e in handle.history() if e.type == "WaitStateExited")
    assert due - timedelta(milliseconds=50) <= exited < due + timedelta(seconds=SLACK)


def test_wait_timestamp_path():
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    handle, result = run_workflow(
        wait_then_pass(TimestampPath="$.at"), {"at": iso(due)}, timeout=15
    )
    assert result.status == "SUCCEEDED", result
    exited = next(e.timestamp for e in handle.history() if e.type == "WaitStateExited")
    assert due - timedelta(milliseconds=50) <= exited < due + timedelta(seconds=SLACK)


def test_wait_history_order():
    handle, result = run_workflow(wait_then_pass(Seconds=1), timeout=15)
    assert result.status == "SUCCEEDED", result
    types = event_types(handle.history())
    assert types.index("WaitStateEntered") < types.index("WaitStateExited")
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"


def _timers_of(execution_id: str) -> list[str]:
    store = get_store()
    timers = store.keys.timers(store.keys.partition_of(execution_id))
    return [m for m in store.client.zrange(timers, 0, -1) if json.loads(m)[1] == execution_id]


def test_stopped_execution_wait_timer_changes_nothing():
    handle = start_workflow(wait_then_pass(Seconds=2))
    wait_until(lambda: count_events(handle.history(), "WaitStateEntered") == 1, 10)
    stop_execution(handle.execution_id, "Stopped", "by test")
    assert handle.describe().status == "ABORTED"
    before = handle.history()
    # The wait comes due; the timer loop (and our own tick) must only drop the stale timer.
    wait_until(lambda: not _timers_of(handle.execution_id) or tick(now=time.time() + 5) < 0, 10)
    wait_until(lambda: not _timers_of(handle.execution_id), 10, message="stale timer removed")
    after = handle.history()
    assert [e.model_dump() for e in after] == [e.model_dump() for e in before]
    assert describe_execution(handle.execution_id).status == "ABORTED"
    assert count_events(after, "WaitStateExited") == 0


@pytest.mark.parametrize("fields", [{"Seconds": 600}, {"SecondsPath": "$.s"}])
def test_wait_timer_is_due_exactly(fields):
    handle = start_workflow(wait_then_pass(**fields), {"s": 600})
    wait_until(lambda: _timers_of(handle.execution_id), 10)
    store = get_store()
    (member,) = _timers_of(handle.execution_id)
    due = store.client.zscore(
        store.keys.timers(store.keys.partition_of(handle.execution_id)), member
    )
    entered = next(e for e in handle.history() if e.type == "WaitStateEntered").timestamp
    assert due == pytest.approx(entered.timestamp() + 600, abs=0.002)
    stop_execution(handle.execution_id)


def _start_long_waits(n: int) -> list[str]:
    ids = []
    for _ in range(n):
        handle = start_workflow(wait_then_pass(Seconds=3600))
        ids.append(handle.execution_id)
    for eid in ids:
        wait_until(lambda eid=eid: _timers_of(eid), 10)
    return ids


def _assert_each_exited_once(ids: list[str]) -> None:
    for eid in ids:
        wait_until(lambda eid=eid: describe_execution(eid).status != "RUNNING", 15)
        assert describe_execution(eid).status == "SUCCEEDED"
        history = get_execution_history(eid)
        assert count_events(history, "WaitStateExited") == 1, eid
        assert count_events(history, "ExecutionSucceeded") == 1, eid


def test_two_racing_ticks_fire_each_timer_once():
    ids = _start_long_waits(20)
    future = time.time() + 7200
    fired: list[int] = []

    def racer(owner: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        fired.append(tick(now=future, owner=owner))

    deadline = time.monotonic() + 20
    while any(_timers_of(eid) for eid in ids):
        assert time.monotonic() < deadline, "timers never fired"
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=racer, args=(f"racer-{i}", barrier)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    print(f"\nracing ticks handled: {fired}")
    _assert_each_exited_once(ids)


def test_a_burst_of_timers_fires_on_several_processes():
    # 150 Waits due at once, each followed by a Task: the pool splits them between this
    # process and two spawned ones, which commit and publish to the same Redis and broker.
    ids = []
    for _ in range(150):
        definition = machine(
            {
                "W": {"Type": "Wait", "Seconds": 3600, "Next": "T"},
                "T": {"Type": "Task", "Resource": "echo", "End": True},
            }
        )
        ids.append(start_workflow(definition, {"n": 1}).execution_id)
    for eid in ids:
        wait_until(lambda eid=eid: _timers_of(eid), 10)
    store = get_store()
    members = [m for eid in ids for m in _timers_of(eid)]
    pool = FiringPool(processes=3)
    try:
        pool.fire(store, members, time.time() + 7200)
    finally:
        pool.close()
    assert not any(_timers_of(eid) for eid in ids)
    _assert_each_exited_once(ids)


def test_a_burst_hands_its_task_messages_to_the_workers():
    # Enough Waits followed by a Task in one batch that beat hands the Tasks' messages to
    # orchestrator.dispatch tasks; every Task still runs exactly once.
    definition = machine(
        {
            "W": {"Type": "Wait", "Seconds": 3600, "Next": "T"},
            "T": {"Type": "Task", "Resource": "echo", "End": True},
        }
    )
    ids = [start_workflow(definition, {"n": i}).execution_id for i in range(DELEGATE_MIN + 10)]
    for eid in ids:
        wait_until(lambda eid=eid: _timers_of(eid), 10)
    fire_timers(get_store(), [m for eid in ids for m in _timers_of(eid)], time.time() + 7200)
    _assert_each_exited_once(ids)
    for eid in ids:
        assert count_events(get_execution_history(eid), "TaskSucceeded") == 1, eid


def test_a_small_batch_fires_in_the_callers_process():
    pool = FiringPool(processes=4)
    ids = _start_long_waits(3)
    pool.fire(get_store(), [m for eid in ids for m in _timers_of(eid)], time.time() + 7200)
    assert pool._pool is None  # never started: 3 timers are not worth another process
    _assert_each_exited_once(ids)


def test_racing_fire_timer_without_the_lock_fires_once():
    # Bypass the tick lock: both threads fire every due timer themselves; only the guarded
    # transitions stand between them and a double firing.
    ids = _start_long_waits(20)
    store = get_store()
    members = [m for eid in ids for m in _timers_of(eid)]
    assert len(members) == 20
    future = time.time() + 7200
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def racer() -> None:
        barrier.wait()
        for member in members:
            try:
                fire_timer(store, member, future)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    _assert_each_exited_once(ids)


def test_execution_timeout_seconds():
    definition = machine({"W": {"Type": "Wait", "Seconds": 30, "End": True}}, TimeoutSeconds=1)
    handle, result = run_workflow(definition, timeout=15)
    assert result.status == "TIMED_OUT", result
    history = handle.history()
    assert count_events(history, "ExecutionTimedOut") == 1
    assert count_events(history, "WaitStateExited") == 0
    assert event_types(history)[-1] == "ExecutionTimedOut"


def test_firing_processes_exit_when_beat_is_killed():
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import time\n"
        "from orchestrator.engine.timers import FiringPool\n"
        "pool = FiringPool(processes=2).start()\n"
        "print(pool._pool._pool[0].pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    beat = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert beat.stdout is not None
    helper = int(beat.stdout.readline())
    beat.send_signal(signal.SIGKILL)
    beat.wait()

    def gone() -> bool:
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait_until(gone, 15)
    finally:
        if not gone():
            os.kill(helper, signal.SIGKILL)
