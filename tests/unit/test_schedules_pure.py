"""Schedules, pure (orchestrator/language/schedules.py): expressions, fire times in time
zones across daylight saving changes, overlap decisions and catch-up."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.language.schedules import (
    SKIP_COUNT_LIMIT,
    At,
    Cron,
    Decision,
    Overlap,
    Rate,
    ScheduleError,
    Spec,
    catch_up,
    decide,
    execution_name,
    parse_expression,
)

UTC = dt.UTC


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = "UTC") -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp())


def local(spec: Spec, times: list[int]) -> list[str]:
    return [dt.datetime.fromtimestamp(t, spec.tz).isoformat() for t in times]


# -- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("rate(30 seconds)", 30),
        ("rate(1 second)", 1),
    ],
)
def test_rates(text: str, seconds: int) -> None:
    assert parse_expression(text) == Rate(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "rate(0 minutes)",
        "rate(5 minute)",
        "rate(1 minutes)",
        "rate(5 weeks)",
        "rate(-1 hours)",
        "cron(0 2 * * * *)",  # day-of-month and day-of-week both given
        "cron(0 2 ? * ? *)",  # both '?'
        "cron(0 2 * * ?)",  # five fields
        "cron(60 2 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 2 32 * ? *)",
        "cron(0 2 ? 13 MON *)",
        "cron(0 2 ? * 8 *)",
        "cron(0 2 ? * MON#6 *)",
        "cron(0 2 * * ? 1969)",
        "cron(0 5-2 * * ? *)",
        "cron(0/0 2 * * ? *)",
        "at(2026-13-01T10:00:00)",
        "at(2026-12-01 10:00:00)",
        "every 5 minutes",
        "",
    ],
)
def test_invalid_expressions(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_expression(text)


def test_cron_fields() -> None:
    cron = parse_expression("cron(0/15 8-10,14 ? JAN-MAR MON-FRI 2026-2027)")
    assert isinstance(cron, Cron)
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == (8, 9, 10, 14)
    assert cron.months == frozenset({1, 2, 3})
    assert cron.day_of_week is not None and cron.day_of_week.days == frozenset(range(2, 7))
    assert cron.years == frozenset({2026, 2027})
    assert parse_expression("at(2026-12-01T10:00:00)") == At(dt.datetime(2026, 12, 1, 10))


# -- fire times ------------------------------------------------------------------------


def test_a_rate_fires_one_period_after_its_anchor() -> None:
    spec = Spec.build("rate(5 minutes)", "UTC", created=1_000)
    assert spec.times(0, 3) == [1_300, 1_600, 1_900]
    assert spec.next_after(1_000) == 1_300
    assert spec.next_after(1_299) == 1_300
    assert spec.next_after(1_300) == 1_600
    started = Spec.build("rate(10 seconds)", "UTC", created=1_000, start=5_000)
    assert started.times(1_000, 2) == [5_010, 5_020]


def test_start_and_end_bound_the_fire_times() -> None:
    spec = Spec.build(
        "cron(0 12 * * ? *)",
        "UTC",
        created=0,
        start=epoch(2026, 1, 10),
        end=epoch(2026, 1, 12, 12),
    )
    times = spec.times(epoch(2026, 1, 1), 10)
    assert times == [epoch(2026, 1, 10, 12), epoch(2026, 1, 11, 12), epoch(2026, 1, 12, 12)]
    with pytest.raises(ScheduleError):
        Spec.build("rate(1 minute)", "UTC", 0, start=100, end=50)


def test_cron_in_a_time_zone() -> None:
    spec = Spec.build("cron(0 2 * * ? *)", "Europe/Paris", created=0)
    assert spec.next_after(epoch(2026, 1, 15)) == epoch(2026, 1, 15, 1)  # 02:00 CET
    assert spec.next_after(epoch(2026, 7, 14, 12)) == epoch(2026, 7, 15, 0)  # 02:00 CEST


def test_spring_forward_skips_the_missing_local_time() -> None:
    # New York: 2026-03-08 02:00 -> 03:00; 02:30 does not exist that day.
    spec = Spec.build("cron(30 2 * * ? *)", "America/New_York", created=0)
    times = spec.times(epoch(2026, 3, 6), 4)
    assert local(spec, times) == [
        "2026-03-06T02:30:00-05:00",
        "2026-03-07T02:30:00-05:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    hourly = Spec.build("cron(0 * * * ? *)", "America/New_York", created=0)
    day = local(hourly, hourly.times(epoch(2026, 3, 8, 0, tz="America/New_York") - 1, 24))
    assert len(day) == 24 and not any("T02:" in t for t in day)
    assert day[23] == "2026-03-09T00:00:00-04:00"


def test_fall_back_fires_the_repeated_local_time_once() -> None:
    # New York: 2026-11-01 02:00 -> 01:00; 01:30 exists twice, fires at the first.
    spec = Spec.build("cron(30 1 * * ? *)", "America/New_York", created=0)
    times = spec.times(epoch(2026, 10, 31), 3)
    assert local(spec, times) == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    hourly = Spec.build("cron(0 * * * ? *)", "America/New_York", created=0)
    day = hourly.times(epoch(2026, 11, 1, 0, tz="America/New_York") - 1, 24)
    # 25 hours that day, one of them repeated: 24 firings, 01:00 once, 1 h apart but one.
    assert sum(1 for t in local(hourly, day) if "T01:" in t) == 1
    gaps = [b - a for a, b in zip(day, day[1:], strict=False)]
    assert gaps.count(7200) == 1 and gaps.count(3600) == 22


def test_rates_ignore_daylight_saving() -> None:
    spec = Spec.build("rate(1 hour)", "America/New_York", created=epoch(2026, 11, 1, 4))
    times = spec.times(0, 4)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [3600, 3600, 3600]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 10 L * ? *)", ["2026-02-28", "2026-03-31", "2026-04-30"]),
        ("cron(0 10 15W * ? *)", ["2026-02-16", "2026-03-16", "2026-04-15"]),
        ("cron(0 10 1W * ? *)", ["2026-02-02", "2026-03-02", "2026-04-01"]),
        ("cron(0 10 LW * ? *)", ["2026-02-27", "2026-03-31", "2026-04-30"]),
        ("cron(0 10 ? * 6L *)", ["2026-02-27", "2026-03-27", "2026-04-24"]),
        ("cron(0 10 ? * 2#1 *)", ["2026-02-02", "2026-03-02", "2026-04-06"]),
        ("cron(0 10 ? * MON#3 *)", ["2026-02-16", "2026-03-16", "2026-04-20"]),
        ("cron(0 10 ? * L *)", ["2026-02-07", "2026-02-14", "2026-02-21"]),
        ("cron(0 10 29 2 ? *)", ["2028-02-29", "2032-02-29", "2036-02-29"]),
    ],
)
def test_day_wildcards(expression: str, expected: list[str]) -> None:
    spec = Spec.build(expression, "UTC", created=0)
    times = spec.times(epoch(2026, 2, 1), 3)
    assert [dt.datetime.fromtimestamp(t, UTC).date().isoformat() for t in times] == expected


def test_at_fires_once_in_its_time_zone() -> None:
    spec = Spec.build("at(2026-12-01T10:00:00)", "Asia/Tokyo", created=0)
    assert spec.times(0, 5) == [epoch(2026, 12, 1, 1)]
    assert spec.next_after(epoch(2026, 12, 1, 1)) is None


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError, match="time zone"):
        Spec.build("rate(1 minute)", "Mars/Olympus", created=0)


@settings(max_examples=150, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    tz=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Australia/Sydney"]),
    after=st.integers(epoch(2020, 1, 1), epoch(2035, 1, 1)),
)
def test_daily_cron_fire_times_show_their_local_time(
    minute: int, hour: int, tz: str, after: int
) -> None:
    spec = Spec.build(f"cron({minute} {hour} * * ? *)", tz, created=0)
    times = spec.times(after, 3)
    assert times[0] > after and times == sorted(set(times))
    for t in times:
        shown = dt.datetime.fromtimestamp(t, ZoneInfo(tz))
        assert (shown.hour, shown.minute) == (hour, minute)
    # Consecutive days, or a day more where the local time did not exist.
    for a, b in zip(times, times[1:], strict=False):
        assert 23 * 3600 <= b - a <= 49 * 3600
    # Nothing was skipped in between: the first is the earliest after `after`.
    assert spec.next_after(times[0] - 1) == times[0]


@settings(max_examples=150, deadline=None)
@given(
    period=st.integers(1, 100_000),
    created=st.integers(0, 10**9),
    after=st.integers(0, 2 * 10**9),
)
def test_rate_fire_times(period: int, created: int, after: int) -> None:
    spec = Spec.build(f"rate({period} {'second' if period == 1 else 'seconds'})", "UTC", created)
    t = spec.next_after(after)
    assert t is not None and t > after and t > created
    assert (t - created) % period == 0
    assert t - period <= max(after, created)


# -- overlap and catch-up --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "running", "buffered", "decision"),
    [
        (Overlap.SKIP, False, False, Decision.START),
        (Overlap.SKIP, True, False, Decision.SKIP),
        (Overlap.BUFFER_ONE, True, False, Decision.BUFFER),
        (Overlap.BUFFER_ONE, True, True, Decision.SKIP),
        (Overlap.BUFFER_ONE, False, True, Decision.START),
        (Overlap.ALLOW_ALL, True, True, Decision.START),
        (Overlap.CANCEL_OTHER, True, False, Decision.CANCEL_AND_START),
        (Overlap.CANCEL_OTHER, False, False, Decision.START),
    ],
)
def test_overlap_decisions(
    overlap: Overlap, running: bool, buffered: bool, decision: Decision
) -> None:
    assert decide(overlap, running, buffered) is decision


def test_catch_up_fires_within_the_window_and_counts_the_rest() -> None:
    spec = Spec.build("rate(1 minute)", "UTC", created=0)
    # Due since 60; beat comes back at 3,600 with a 5-minute window.
    plan = catch_up(spec, 60, 3_600, 300, limit=100)
    assert plan.fire == [3_300, 3_360, 3_420, 3_480, 3_540, 3_600]
    assert plan.skipped == 54 and (plan.skipped_first, plan.skipped_last) == (60, 3_240)
    assert plan.next == 3_660
    # The limit leaves the rest due.
    plan = catch_up(spec, 60, 3_600, 300, limit=2)
    assert plan.fire == [3_300, 3_360] and plan.next == 3_420
    # Nothing due yet.
    assert catch_up(spec, 3_660, 3_600, 300, 100).fire == []


@settings(max_examples=100, deadline=None)
@given(
    period=st.integers(1, 600),
    down=st.integers(0, 20_000),
    window=st.integers(0, 5_000),
)
def test_catch_up_accounts_for_every_missed_firing(period: int, down: int, window: int) -> None:
    unit = "second" if period == 1 else "seconds"
    spec = Spec.build(f"rate({period} {unit})", "UTC", created=0)
    due = period
    now = period + down
    plan = catch_up(spec, due, now, window, limit=10**6)
    expected = spec.times(0, now // period + 1)
    expected = [t for t in expected if t <= now]
    assert plan.skipped + len(plan.fire) == len(expected)
    assert all(now - t <= window for t in plan.fire)
    assert plan.next == spec.next_after(now)


def test_execution_names_hold_the_schedule_and_the_time() -> None:
    assert execution_name("nightly", epoch(2026, 12, 1, 2)) == "nightly-20261201T020000Z"
    assert execution_name("n", 0, manual=True) == "n-19700101T000000Z-manual"


def test_a_beat_that_imported_no_client_module_finds_the_launcher() -> None:
    # `celery beat -S orchestrator.engine.beat:OrchestratorScheduler` imports the engine
    # only: the launcher is looked up by name (DEFAULT_LAUNCHER) at the first firing.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from orchestrator.engine import beat, schedules\n"
        "assert 'orchestrator.client.schedules' not in sys.modules\n"
        "launcher = schedules.launcher()\n"
        "from orchestrator.client.schedules import LAUNCHER\n"
        "assert launcher is LAUNCHER\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_long_outage_of_a_minutely_cron_is_counted_quickly() -> None:
    spec = Spec.build("cron(* * * * ? *)", "Europe/Paris", created=0)
    due = epoch(2026, 1, 1, 0, 1)
    now = due + 30 * 86400  # a month down: 43,200 firings missed
    began = time.monotonic()
    plan = catch_up(spec, due, now, 120, limit=20)
    assert time.monotonic() - began < 2.0
    assert plan.skipped == SKIP_COUNT_LIMIT and plan.skipped_first == due
    assert plan.fire == [now - 120, now - 60, now] and plan.next == now + 60
    # Without the cap, the count is exact.
    small = catch_up(spec, due, due + 3600, 0, limit=20)
    assert small.skipped == 60 and small.fire == [due + 3600]


def test_a_rate_longer_than_a_century_is_refused() -> None:
    # Its fire times would be no dates (datetime overflows): a clear error instead.
    with pytest.raises(ScheduleError, match="at most 100 years"):
        parse_expression("rate(99999999999999999999 minutes)")
    assert parse_expression("rate(36500 days)") == Rate(36500 * 86400)
