"""Schedules fired by the timer process: one execution per firing however many beats fire
it, the overlap policies, catch-up after beat was down, and the API around them.

Most tests drive the firing with an injected clock set days ahead (the schedule starts
then), so the session's own timer loop, which reads the real clock, never finds them due:
what fires, fires when the test says. The first test lets the real timer loop fire.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

import orchestrator as api
from orchestrator.client.schedules import LAUNCHER, ScheduleAlreadyExists, ScheduleNotFound
from orchestrator.engine import schedules as engine
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.errors import InvalidInputError
from orchestrator.language.schedules import execution_name
from tests.helpers import machine, old_schedule_keys, schedule_to_old_layout

pytestmark = pytest.mark.usefixtures("orchestrator")

PASS = machine({"P": {"Type": "Pass", "End": True}})


def waiting(seconds: int) -> dict[str, Any]:
    return machine({"W": {"Type": "Wait", "Seconds": seconds, "End": True}})


def until(condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def name(tag: str) -> Any:
    schedule = f"s-{tag}"
    yield schedule
    try:
        api.delete_schedule(schedule)
    except ScheduleNotFound:
        pass


def ahead(days: int = 30) -> int:
    """A start time the real clock will not reach during the test."""
    return (int(time.time()) // 60 + days * 1440) * 60


def fire(name: str, now: float) -> None:
    """One look at the schedule at ``now`` (what a beat's tick does), retried until one
    is recorded."""
    until(lambda: engine.fire_schedule(get_store(), name, now, LAUNCHER), timeout=10)


def test_the_timer_loop_fires_a_rate_schedule(name: str) -> None:
    created = api.create_schedule(name, PASS, "rate(1 second)", input={"k": 1})
    assert created.enabled and created.next_fire_times[0].timestamp() >= time.time() - 1
    desc = until(lambda: (d := api.describe_schedule(name)) and len(d.executions) >= 2 and d)
    for execution in desc.executions:
        result = api.ExecutionHandle(execution).result(10)
        assert result.status == "SUCCEEDED" and result.output == {"k": 1}
        assert execution.startswith(f"{name}-") and execution.endswith("Z")
    started = [f for f in desc.firings if f.type == "STARTED"]
    for f in started:
        assert f.scheduled is not None
        assert f.execution == execution_name(name, int(f.scheduled.timestamp()))
    paused = api.pause_schedule(name)
    assert not paused.enabled and paused.next_fire_times == []
    count = len(api.describe_schedule(name).executions)
    time.sleep(1.5)  # paused: the loop must not fire it (nothing to poll for)
    assert len(api.describe_schedule(name).executions) == count
    assert api.resume_schedule(name).enabled
    until(lambda: len(api.describe_schedule(name).executions) > count)
    assert name in [d.name for d in api.list_schedules()]
    api.delete_schedule(name)
    with pytest.raises(ScheduleNotFound):
        api.describe_schedule(name)


def test_two_beats_fire_each_time_exactly_once(name: str) -> None:
    start = ahead()
    api.create_schedule(name, PASS, "rate(10 seconds)", start=start, overlap="ALLOW_ALL")
    store = get_store()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def beat() -> None:
        # Both beats look at every simulated second, at the same moments.
        try:
            for now in range(start, start + 61):
                barrier.wait(10)
                engine.fire_schedule(store, name, now, LAUNCHER)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    desc = api.describe_schedule(name, log_count=100)
    started = [f for f in desc.firings if f.type == "STARTED"]
    scheduled = Counter(int(f.scheduled.timestamp()) for f in started)  # type: ignore[union-attr]
    assert sorted(scheduled) == [start + 10 * k for k in range(1, 7)]
    assert set(scheduled.values()) == {1}
    executions = {f.execution for f in started if f.execution}
    assert len(executions) == 6
    for execution in executions:
        assert api.ExecutionHandle(execution).result(10).status == "SUCCEEDED"
    assert desc.next_fire_times[0].timestamp() == start + 70


def test_two_timer_ticks_fire_a_schedule_once(name: str) -> None:
    # Through the timer process's own entry point (fire_due, as run_tick calls it).
    start = ahead()
    api.create_schedule(name, PASS, "rate(1 minute)", start=start, overlap="ALLOW_ALL")
    store = get_store()
    now = start + 60
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.fire_due(store, now)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    desc = api.describe_schedule(name)
    assert [f.type for f in desc.firings] == ["STARTED"]
    assert desc.executions == [execution_name(name, start + 60)]


def test_overlap_skip(name: str) -> None:
    start = ahead()
    api.create_schedule(name, waiting(2), "rate(1 minute)", start=start, overlap="SKIP")
    fire(name, start + 60)
    fire(name, start + 120)
    desc = api.describe_schedule(name)
    assert [f.type for f in desc.firings] == ["SKIPPED", "STARTED"]
    assert desc.firings[0].details["running"] == desc.executions[0]
    api.ExecutionHandle(desc.executions[0]).result(15)
    fire(name, start + 180)
    assert len(api.describe_schedule(name).executions) == 2


def test_overlap_buffer_one(name: str) -> None:
    start = ahead()
    api.create_schedule(name, waiting(2), "rate(1 minute)", start=start, overlap="BUFFER_ONE")
    fire(name, start + 60)
    fire(name, start + 120)  # buffered
    fire(name, start + 180)  # the buffer is full: skipped
    desc = api.describe_schedule(name)
    assert [f.type for f in desc.firings] == ["SKIPPED", "BUFFERED", "STARTED"]
    assert desc.buffered is not None and desc.buffered.timestamp() == start + 120
    first = desc.executions[0]
    # Looked at again while the first runs: still waiting.
    fire(name, start + 181)
    assert api.describe_schedule(name).buffered is not None
    api.ExecutionHandle(first).result(15)
    fire(name, start + 182)
    desc = api.describe_schedule(name)
    assert desc.buffered is None
    assert desc.executions[0] == execution_name(name, start + 120)
    assert api.ExecutionHandle(desc.executions[0]).result(15).status == "SUCCEEDED"


def test_overlap_allow_all(name: str) -> None:
    start = ahead()
    api.create_schedule(name, waiting(2), "rate(1 minute)", start=start, overlap="ALLOW_ALL")
    fire(name, start + 60)
    fire(name, start + 120)
    desc = api.describe_schedule(name)
    assert [f.type for f in desc.firings] == ["STARTED", "STARTED"]
    statuses = [api.describe_execution(e).status.value for e in desc.executions]
    assert statuses == ["RUNNING", "RUNNING"]


def test_overlap_cancel_other(name: str) -> None:
    start = ahead()
    api.create_schedule(name, waiting(30), "rate(1 minute)", start=start, overlap="CANCEL_OTHER")
    fire(name, start + 60)
    fire(name, start + 120)
    desc = api.describe_schedule(name)
    assert [f.type for f in desc.firings] == ["STARTED", "CANCELLED", "STARTED"]
    newer, older = desc.executions
    assert api.describe_execution(older).status.value == "ABORTED"
    assert api.describe_execution(newer).status.value == "RUNNING"
    api.stop_execution(newer)


def test_catch_up_after_beat_was_down(name: str) -> None:
    start = ahead()
    api.create_schedule(
        name, PASS, "rate(1 minute)", start=start, overlap="ALLOW_ALL", catchup_window=300
    )
    # Beat was down for an hour: it comes back at start + 3,600.
    fire(name, start + 3_600)
    desc = api.describe_schedule(name, log_count=100)
    started = sorted(int(f.scheduled.timestamp()) for f in desc.firings if f.type == "STARTED")  # type: ignore[union-attr]
    assert started == [start + 3_300 + 60 * k for k in range(6)]
    (missed,) = desc.skipped
    assert missed.type == "MISSED" and missed.details["count"] == 54
    assert missed.scheduled is not None and missed.scheduled.timestamp() == start + 60
    assert missed.details["last"] == start + 3_240
    assert desc.next_fire_times[0].timestamp() == start + 3_660


def test_a_cron_schedule_in_a_time_zone_and_at(name: str) -> None:
    desc = api.create_schedule(
        name, PASS, "cron(30 1 * * ? *)", timezone="America/New_York", enabled=False
    )
    assert desc.next_fire_times == []  # paused
    resumed = api.resume_schedule(name)
    assert len(resumed.next_fire_times) == 5
    for when in resumed.next_fire_times:
        local = when.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        assert (local.hour, local.minute) == (1, 30)
    api.delete_schedule(name)
    once = api.create_schedule(name, PASS, "at(2099-12-01T10:00:00)", timezone="Asia/Tokyo")
    assert [t.isoformat() for t in once.next_fire_times] == ["2099-12-01T01:00:00+00:00"]


def test_trigger_now(name: str) -> None:
    api.create_schedule(name, PASS, "rate(1 day)", input={"n": 2}, enabled=False)
    desc = api.trigger_schedule(name)
    (execution,) = desc.executions
    assert execution.startswith(name) and execution.endswith("-manual")
    assert api.ExecutionHandle(execution).result(10).output == {"n": 2}
    assert not api.describe_schedule(name).enabled


def test_a_firing_that_cannot_start_is_recorded(name: str) -> None:
    start = ahead()
    api.create_schedule(name, "no_such_workflow_xyz", "rate(1 minute)", start=start)
    fire(name, start + 60)
    (failed,) = api.describe_schedule(name).firings
    assert failed.type == "FAILED" and "no_such_workflow_xyz" in failed.details["error"]


def test_invalid_schedules(name: str) -> None:
    for kwargs in (
        {"expression": "rate(5 weeks)"},
        {"expression": "cron(0 2 * * * *)"},
        {"timezone": "Mars/Olympus"},
        {"overlap": "QUEUE"},
        {"catchup_window": -1},
        {"target": {"StartAt": "X", "States": {}}},
    ):
        arguments: dict[str, Any] = {"target": PASS, "expression": "rate(1 minute)", **kwargs}
        with pytest.raises((InvalidInputError, api.DefinitionError)):
            api.create_schedule(name, **arguments)
    with pytest.raises(InvalidInputError):
        api.create_schedule("bad name", PASS, "rate(1 minute)")
    api.create_schedule(name, PASS, "rate(1 minute)")
    with pytest.raises(ScheduleAlreadyExists):
        api.create_schedule(name, PASS, "rate(1 minute)")
    with pytest.raises(ScheduleNotFound):
        api.pause_schedule("no-such-schedule")


def test_the_client_class_has_the_schedule_functions(name: str, orchestrator: Any) -> None:
    with api.Orchestrator(settings=orchestrator.settings) as client:
        desc = client.create_schedule(name, PASS, "rate(1 hour)", enabled=False)
        assert desc.name == name
        assert client.describe_schedule(name).overlap == "SKIP"
        assert name in [d.name for d in client.list_schedules()]
        assert client.resume_schedule(name).enabled
        assert not client.pause_schedule(name).enabled
        (execution,) = client.trigger_schedule(name).executions
        assert client.describe_execution(execution).execution_id == execution
        client.delete_schedule(name)


def test_targets_a_state_machine_alias_resolved_at_each_firing(name: str) -> None:
    # The registry's targets: an alias ARN routes each firing to the version it names then.
    machine_name = f"m-{name}"

    def returning(value: str) -> dict[str, Any]:
        return machine({"P": {"Type": "Pass", "Result": value, "End": True}})

    api.create_state_machine(machine_name, returning("v1"))
    api.publish_state_machine_version(machine_name)
    api.update_state_machine(machine_name, returning("v2"))
    api.publish_state_machine_version(machine_name)
    alias = api.create_state_machine_alias(machine_name, "prod", [(1, 100)])
    try:
        start = ahead()
        api.create_schedule(name, alias.state_machine_alias_arn, "rate(1 minute)", start=start)
        fire(name, start + 60)
        api.update_state_machine_alias(alias.state_machine_alias_arn, routing=[(2, 100)])
        fire(name, start + 120)
        second, first = api.describe_schedule(name).executions
        assert api.ExecutionHandle(first).result(10).output == "v1"
        assert api.ExecutionHandle(second).result(10).output == "v2"
        described = api.describe_execution(second)
        assert (described.state_machine_version_arn or "").endswith(f"{machine_name}:2")
        # A registered name: its latest revision.
        api.delete_schedule(name)
        api.create_schedule(name, machine_name, "rate(1 day)", enabled=False)
        (latest,) = api.trigger_schedule(name).executions
        assert api.ExecutionHandle(latest).result(10).output == "v2"
    finally:
        api.delete_state_machine_alias(alias.state_machine_alias_arn)
        api.delete_state_machine(machine_name)


def _fresh_store() -> RedisStore:
    """A store as a process that just started has one: it has not looked for old keys."""
    store = get_store()
    return RedisStore(store.client, store.keys.prefix, store.keys.partitions)


def test_schedules_of_earlier_versions_move_to_their_keys_at_beats_first_tick(
    name: str,
) -> None:
    store = get_store()
    store.ensure_schedules_migrated()  # the session's own look is over
    start = ahead()
    api.create_schedule(name, PASS, "rate(1 minute)", start=start, input={"k": 2})
    fire(name, start + 60)
    before = api.describe_schedule(name)
    created = store.client.zscore(store.keys.schedule_names, name)
    schedule_to_old_layout(store, name)
    with pytest.raises(ScheduleNotFound):
        api.describe_schedule(name)  # this process looked already: the old keys are unread

    beat = _fresh_store()
    try:
        # Beat's first tick moves it, then fires what is due.
        engine.fire_due(beat, start + 120, LAUNCHER)
        assert not any(store.client.exists(key) for key in old_schedule_keys(store, name))
        after = api.describe_schedule(name, log_count=100)
        assert after.executions == [execution_name(name, start + 120), *before.executions]
        assert after.firings[1:] == before.firings
        assert (after.created, after.target) == (before.created, before.target)
        assert after.input == before.input == {"k": 2}
        assert store.client.zscore(store.keys.schedule_names, name) == created
        assert after.next_fire_times[0].timestamp() == start + 180
        for execution in after.executions:
            assert api.ExecutionHandle(execution).result(10).status == "SUCCEEDED"
        # Again: nothing left to move, nothing changed.
        record = store.schedule(name)
        assert beat.migrate_schedules() == 0
        again = _fresh_store()
        try:
            again.ensure_schedules_migrated()
            assert again.migrate_schedules() == 0
        finally:
            again.lane.close()
        assert store.schedule(name) == record
    finally:
        beat.lane.close()


def test_the_move_goes_a_page_at_a_time_and_keeps_a_schedule_created_since(
    name: str,
) -> None:
    store = get_store()
    store.ensure_schedules_migrated()
    start = ahead()
    names = [f"{name}-{n}" for n in range(3)]
    try:
        for n, each in enumerate(names):
            api.create_schedule(each, PASS, "rate(1 minute)", start=start, input={"n": n})
            schedule_to_old_layout(store, each)
        # A schedule of the same name created under the new keys since the upgrade wins.
        api.create_schedule(names[2], PASS, "rate(1 hour)", start=start, input={"n": "new"})
        client = _fresh_store()
        try:
            assert client.migrate_schedules(2) == 2
            assert client.migrate_schedules(2) == 1
            assert client.migrate_schedules(2) == 0
        finally:
            client.lane.close()
        for n, each in enumerate(names[:2]):
            moved = api.describe_schedule(each)
            assert moved.input == {"n": n} and moved.expression == "rate(1 minute)"
            assert store.schedule_look_at(each) == start + 60
        kept = api.describe_schedule(names[2])
        assert kept.input == {"n": "new"} and kept.expression == "rate(1 hour)"
        for each in names:
            assert not any(store.client.exists(key) for key in old_schedule_keys(store, each))
        assert [d.name for d in api.list_schedules() if d.name in names] == names
    finally:
        for each in names:
            try:
                api.delete_schedule(each)
            except ScheduleNotFound:
                pass
