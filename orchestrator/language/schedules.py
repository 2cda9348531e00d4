"""Schedules, pure: EventBridge Scheduler expressions, fire times, overlap and catch-up.

Nothing here reads a clock or Redis: every function takes the times it needs (epoch
seconds, integers: a schedule fires on whole seconds), so the engine
(orchestrator/engine/schedules.py) and the tests decide what "now" is.

Expressions are EventBridge Scheduler's:

* ``rate(N unit)``: every N ``minutes``/``hours``/``days`` (``minute``/``hour``/``day`` for
  1), plus ``seconds`` (not in EventBridge) for sub-minute jobs. The first firing is one
  period after the schedule's anchor (its ``start``, else its creation).
* ``cron(minutes hours day-of-month month day-of-week year)``: six fields; ``, - * /`` in
  every field, ``?`` (any), ``L`` (last day) and ``W`` (nearest weekday: ``15W``, ``LW``)
  in day-of-month, ``?``, ``L`` (``6L``: the last Friday) and ``#`` (``2#1``: the first
  Monday) in day-of-week (1-7 = SUN-SAT). One of day-of-month and day-of-week is ``?``.
* ``at(yyyy-mm-ddThh:mm:ss)``: once.

cron and at are read in the schedule's time zone (IANA, via zoneinfo). Across daylight
saving changes, as EventBridge Scheduler does: a local time that does not exist (the hour
skipped in spring) does not fire, and one that exists twice (the hour repeated in autumn)
fires once, at its first occurrence.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ScheduleError(ValueError):
    """An unusable expression, time zone or schedule setting."""


class Overlap(str, Enum):
    """What a firing does while the schedule's last execution is still running."""

    SKIP = "SKIP"
    """Do not start it (recorded as skipped)."""
    BUFFER_ONE = "BUFFER_ONE"
    """Start it once the running one ends; one firing waits at most, later ones skip."""
    ALLOW_ALL = "ALLOW_ALL"
    """Start it anyway."""
    CANCEL_OTHER = "CANCEL_OTHER"
    """Stop the running one, then start it."""


class Decision(str, Enum):
    """What one firing does (:func:`decide`)."""

    START = "START"
    SKIP = "SKIP"
    BUFFER = "BUFFER"
    CANCEL_AND_START = "CANCEL_AND_START"


def decide(overlap: Overlap, last_running: bool, buffered: bool) -> Decision:
    """The decision for a firing, against the status of the schedule's last execution
    (``last_running``) and whether a firing already waits in the buffer."""
    if overlap is Overlap.ALLOW_ALL or not last_running:
        return Decision.START
    if overlap is Overlap.SKIP:
        return Decision.SKIP
    if overlap is Overlap.BUFFER_ONE:
        return Decision.SKIP if buffered else Decision.BUFFER
    return Decision.CANCEL_AND_START


# -- expressions -------------------------------------------------------------------------

_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")

_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS = {name.upper(): i for name, i in _MONTHS.items()}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


@dataclass(frozen=True)
class Rate:
    """``rate(...)``: every ``seconds``."""

    seconds: int


@dataclass(frozen=True)
class At:
    """``at(...)``: once, at a local time."""

    when: dt.datetime


@dataclass(frozen=True)
class DayOfMonth:
    """A day-of-month field other than ``?``."""

    days: frozenset[int]
    last: bool = False
    """``L``: the last day of the month."""
    weekday_near: int | None = None
    """``15W``: the weekday nearest the 15th (0 for ``LW``: the last weekday)."""

    def matches(self, day: dt.date) -> bool:
        last_day = calendar.monthrange(day.year, day.month)[1]
        if self.last and day.day == last_day:
            return True
        if self.weekday_near is not None:
            return day.day == _nearest_weekday(day.year, day.month, self.weekday_near)
        return day.day in self.days


@dataclass(frozen=True)
class DayOfWeek:
    """A day-of-week field other than ``?`` (days 1-7 = SUN-SAT)."""

    days: frozenset[int]
    last_of: int | None = None
    """``6L``: the last such day of the month."""
    nth: tuple[int, int] | None = None
    """``2#1``: (day, n), the n-th such day of the month."""

    def matches(self, day: dt.date) -> bool:
        weekday = (day.isoweekday() % 7) + 1  # SUN=1 ... SAT=7
        if self.last_of is not None:
            last_day = calendar.monthrange(day.year, day.month)[1]
            return weekday == self.last_of and day.day + 7 > last_day
        if self.nth is not None:
            return weekday == self.nth[0] and (day.day - 1) // 7 + 1 == self.nth[1]
        return weekday in self.days


@dataclass(frozen=True)
class Cron:
    """``cron(...)``: the six fields, parsed."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_of_month: DayOfMonth | None
    months: frozenset[int]
    day_of_week: DayOfWeek | None
    years: frozenset[int]

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.day_of_month is not None:
            return self.day_of_month.matches(day)
        assert self.day_of_week is not None
        return self.day_of_week.matches(day)


Expression = Rate | At | Cron


def _nearest_weekday(year: int, month: int, target: int) -> int:
    """The day of the month of the weekday nearest ``target`` (0: the last weekday),
    never crossing into another month."""
    last_day = calendar.monthrange(year, month)[1]
    day = last_day if target == 0 else min(target, last_day)
    weekday = dt.date(year, month, day).weekday()  # MON=0 ... SUN=6
    if weekday == 5:  # Saturday: Friday, unless that is in the previous month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday, unless that is in the next month
        return day + 1 if day < last_day else day - 2
    return day


def _value(text: str, low: int, high: int, names: dict[str, int] | None, field: str) -> int:
    upper = text.upper()
    if names and upper in names:
        return names[upper]
    if not text.isdigit():
        raise ScheduleError(f"cron {field}: {text!r} is not a value")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"cron {field}: {value} is outside {low}-{high}")
    return value


def _field(
    text: str, low: int, high: int, field: str, names: dict[str, int] | None = None
) -> frozenset[int]:
    """A field of ``, - * /`` items as the set of values it includes."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"cron {field}: {item!r} needs a positive increment")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, low, high, names, field), _value(b, low, high, names, field)
            if first > last:
                raise ScheduleError(f"cron {field}: the range {base!r} runs backwards")
        else:
            first = _value(base, low, high, names, field)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _day_of_month(text: str) -> DayOfMonth | None:
    if text == "?":
        return None
    if text == "L":
        return DayOfMonth(frozenset(), last=True)
    if text == "LW":
        return DayOfMonth(frozenset(), weekday_near=0)
    if text.endswith("W"):
        return DayOfMonth(frozenset(), weekday_near=_value(text[:-1], 1, 31, None, "day-of-month"))
    return DayOfMonth(_field(text, 1, 31, "day-of-month"))


def _day_of_week(text: str) -> DayOfWeek | None:
    if text == "?":
        return None
    if text == "L":
        return DayOfWeek(frozenset({7}))
    if text.endswith("L"):
        return DayOfWeek(frozenset(), last_of=_value(text[:-1], 1, 7, _DAYS, "day-of-week"))
    if "#" in text:
        day, _, nth = text.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise ScheduleError(f"cron day-of-week: {text!r} needs #1 to #5")
        return DayOfWeek(frozenset(), nth=(_value(day, 1, 7, _DAYS, "day-of-week"), int(nth)))
    return DayOfWeek(_field(text, 1, 7, "day-of-week", _DAYS))


#: The longest period of a rate (100 years, in seconds).
MAX_RATE_SECONDS = 100 * 366 * 86400


def parse_expression(text: str) -> Expression:
    """Parse a schedule expression (see the module's docstring).

    Raises:
        ScheduleError: it is not one, or a value is out of range.
    """
    if not isinstance(text, str):
        raise ScheduleError(f"a schedule expression is text, not {type(text).__name__}")
    text = text.strip()
    if match := _RATE.match(text):
        value, unit = int(match[1]), match[2]
        singular = unit.removesuffix("s")
        if singular not in _RATE_UNITS or value < 1:
            raise ScheduleError(
                f"{text!r}: use rate(N seconds|minutes|hours|days) with N a positive integer"
            )
        if (value == 1) != (unit == singular):
            raise ScheduleError(f"{text!r}: write rate(1 {singular}) and rate(N {singular}s)")
        if value * _RATE_UNITS[singular] > MAX_RATE_SECONDS:
            # Fire times must stay dates (a rate of 10**20 minutes overflows datetime).
            raise ScheduleError(f"{text!r}: a rate's period is at most 100 years")
        return Rate(value * _RATE_UNITS[singular])
    if match := _AT.match(text):
        try:
            return At(dt.datetime.fromisoformat(match[1]))
        except ValueError as exc:
            raise ScheduleError(f"{text!r}: {exc}") from None
    if match := _CRON.match(text):
        fields = match[1].split()
        if len(fields) != 6:
            raise ScheduleError(
                f"{text!r}: cron takes six fields "
                "(minutes hours day-of-month month day-of-week year)"
            )
        dom, dow = _day_of_month(fields[2]), _day_of_week(fields[4])
        if (dom is None) == (dow is None):
            raise ScheduleError(f"{text!r}: one of day-of-month and day-of-week must be '?'")
        return Cron(
            minutes=tuple(sorted(_field(fields[0], 0, 59, "minutes"))),
            hours=tuple(sorted(_field(fields[1], 0, 23, "hours"))),
            day_of_month=dom,
            months=_field(fields[3], 1, 12, "month", _MONTHS),
            day_of_week=dow,
            years=_field(fields[5], 1970, 2199, "year"),
        )
    raise ScheduleError(
        f"{text!r}: use rate(5 minutes), rate(30 seconds), cron(0 2 * * ? *) "
        "or at(2026-12-01T10:00:00)"
    )


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ScheduleError: there is none.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def local_to_epoch(when: dt.datetime, tz: ZoneInfo) -> int | None:
    """The epoch second of the local time ``when`` (naive) in ``tz``: its first occurrence
    if it exists twice, None if it does not exist (skipped by a daylight saving change)."""
    aware = when.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(dt.UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != when:
        return None  # in a gap: the wall clock never shows it
    return int(utc.timestamp())


def _cron_times(cron: Cron, tz: ZoneInfo, after: int) -> Iterator[int]:
    """The fire times of ``cron`` after ``after``, in order."""
    # From the local day before (a fold can put a local time before `after` in UTC order).
    start = dt.datetime.fromtimestamp(after, tz).date() - dt.timedelta(days=1)
    for year in sorted(y for y in cron.years if y >= start.year):
        for month in sorted(m for m in cron.months if (year, m) >= (start.year, start.month)):
            last_day = calendar.monthrange(year, month)[1]
            first_day = start.day if (year, month) == (start.year, start.month) else 1
            for day_number in range(first_day, last_day + 1):
                day = dt.date(year, month, day_number)
                if not cron.day_matches(day):
                    continue
                found = []
                for hour in cron.hours:
                    for minute in cron.minutes:
                        epoch = local_to_epoch(
                            dt.datetime(year, month, day_number, hour, minute), tz
                        )
                        if epoch is not None and epoch > after:
                            found.append(epoch)
                yield from sorted(found)


@dataclass(frozen=True)
class Spec:
    """What decides a schedule's fire times."""

    expression: Expression
    tz: ZoneInfo
    anchor: int
    """Where a rate counts from: ``start``, else the creation time."""
    start: int | None = None
    end: int | None = None

    @classmethod
    def build(
        cls,
        expression: str,
        timezone: str,
        created: int,
        start: int | None = None,
        end: int | None = None,
    ) -> Spec:
        if start is not None and end is not None and end < start:
            raise ScheduleError("the schedule's end is before its start")
        return cls(parse_expression(expression), zone(timezone), start or created, start, end)

    def next_after(self, after: int) -> int | None:
        """The first fire time strictly after ``after`` (within start and end), or None."""
        if self.start is not None and after < self.start - 1:
            after = self.start - 1
        expr = self.expression
        found: int | None
        if isinstance(expr, Rate):
            periods = max(1, (after - self.anchor) // expr.seconds + 1)
            found = self.anchor + periods * expr.seconds
        elif isinstance(expr, At):
            found = local_to_epoch(expr.when, self.tz)
            if found is not None and found <= after:
                found = None
        else:
            found = next(_cron_times(expr, self.tz, after), None)
        if found is not None and self.end is not None and found > self.end:
            return None
        return found

    def iter_after(self, after: int) -> Iterator[int]:
        """The fire times after ``after``, in order (a cron's from one walk of its
        days, not one search per time)."""
        if not isinstance(self.expression, Cron):
            t = self.next_after(after)
            while t is not None:
                yield t
                t = self.next_after(t)
            return
        if self.start is not None and after < self.start - 1:
            after = self.start - 1
        for t in _cron_times(self.expression, self.tz, after):
            if self.end is not None and t > self.end:
                return
            yield t

    def times(self, after: int, limit: int) -> list[int]:
        """The next ``limit`` fire times after ``after``."""
        return list(itertools.islice(self.iter_after(after), limit))


#: How many missed firings a catch-up counts one by one at most (beyond: "at least").
SKIP_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class CatchUp:
    """What is due at one look at a schedule (:func:`catch_up`)."""

    fire: list[int]
    """Scheduled times to fire now, oldest first."""
    skipped: int
    """Firings missed beyond the catch-up window (not fired)."""
    skipped_first: int | None
    skipped_last: int | None
    next: int | None
    """The next scheduled time not handled here (None: the schedule is over)."""


def catch_up(spec: Spec, due: int | None, now: int, window: int, limit: int) -> CatchUp:
    """The firings due by ``now`` from ``due`` (the first unhandled scheduled time).

    Those older than ``now - window`` are skipped and counted (a cron's up to
    :data:`SKIP_COUNT_LIMIT`, beyond which it says "at least"), the rest fire, ``limit``
    at most (the others stay due).
    """
    fire: list[int] = []
    skipped = 0
    first = last = None
    cutoff = now - window
    t = due
    expr = spec.expression
    if isinstance(expr, Rate) and t is not None and t < cutoff:
        # Counted, not walked: a second-rate schedule down for a day missed 86,400.
        skipped = -(-(cutoff - t) // expr.seconds)
        first, last = t, t + (skipped - 1) * expr.seconds
        t = t + skipped * expr.seconds
        if spec.end is not None and t > spec.end:
            t = None
    if t is not None and t < cutoff:
        first = t
        for t_next in itertools.chain([t], spec.iter_after(t)):
            if t_next >= cutoff:
                break
            if skipped >= SKIP_COUNT_LIMIT:
                break  # counted no further: "at least"
            skipped += 1
            last = t_next
        # The first time inside the window (one search, whatever was skipped).
        t = spec.next_after(cutoff - 1)
    while t is not None and t <= now and len(fire) < limit:
        fire.append(t)
        t = spec.next_after(t)
    return CatchUp(fire, skipped, first, last, t)


def execution_name(schedule: str, scheduled: int, manual: bool = False) -> str:
    """The execution a firing starts: the schedule's name and its scheduled time (UTC),
    so one firing names one execution however many beats fire it."""
    stamp = dt.datetime.fromtimestamp(scheduled, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{schedule}-{stamp}" + ("-manual" if manual else "")


#: Schedule names: they are part of execution names (with 24 characters of time).
SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,56}$")
