"""The monitor schedule, parsed once: when it fires, the window each run judges, and how
each cloud writes it.

``monitoring.schedule`` in mlops.yaml is an EventBridge expression (UTC):

* ``rate(N minute|minutes|hour|hours|day|days)``;
* ``cron(minutes hours day-of-month month day-of-week year)``, where day-of-week 1-7 is
  SUN-SAT and exactly one of day-of-month and day-of-week is ``?``. ``L``, ``W`` and ``#``
  are not supported.

One rule for every cloud: a run at a firing judges the hours since the previous firing,
``[previous firing, firing)``, so consecutive runs judge every hour of traffic exactly once.
:attr:`Schedule.period` is the longest such gap (the heartbeat's unit and the alarms'
period). :meth:`Schedule.azure_triggers` gives the Azure ML triggers that fire at the same
times, each with the fixed data window its runs read. Azure ML's cron knows minutes, hours
and day-of-week only (it ignores day-of-month and month: Learn, "Schedule machine
learning pipeline jobs"), and a monitor's window is fixed per schedule, so a schedule whose
gaps differ (weekdays only: 24 h from Tuesday to Friday, 72 h on Monday) becomes one
trigger per gap.

>>> Schedule.parse("cron(0 */6 * * ? *)").period
datetime.timedelta(seconds=21600)
>>> [t.cron for t in Schedule.parse("cron(0 6 ? * MON-FRI *)").azure_triggers()]
['0 6 * * 1', '0 6 * * 2,3,4,5']
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
# EventBridge numbers the days of the week 1 (Sunday) to 7 (Saturday).
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
# Years a cron search covers: every pattern a monitor would use repeats within them.
_HORIZON_DAYS = 366 * 2
# Rate schedules fire at whole multiples of their rate from this instant on Azure ML (the
# recurrence's start time): a fixed phase, so re-applying a schedule does not shift it.
RATE_ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)
# More Azure triggers than this means a schedule too irregular to monitor with fixed windows.
_MAX_AZURE_TRIGGERS = 8
_WEEK = timedelta(days=7)
# A Monday: the reference week whose firings stand for every week.
_REFERENCE_MONDAY = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AzureTrigger:
    """One Azure ML trigger and the production window each of its runs reads.

    Either ``cron`` (five fields: minutes hours day month day-of-week, 0 = Sunday) or a
    recurrence of ``interval`` ``frequency`` units starting at :data:`RATE_ANCHOR`.
    """

    window: timedelta
    cron: str | None = None
    frequency: Literal["hour", "day"] | None = None
    interval: int | None = None

    @property
    def window_iso(self) -> str:
        """The window as an ISO 8601 duration (``P3D``, ``PT6H``), as Azure ML's data windows take it."""
        hours = int(self.window.total_seconds() // 3600)
        return f"P{hours // 24}D" if hours % 24 == 0 else f"PT{hours}H"


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: '?'
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # EventBridge numbering; None: '?'
    years: frozenset[int]
    fields: tuple[str, ...]

    def matches(self, day: date) -> bool:
        return (
            day.year in self.years
            and day.month in self.months
            and (self.days_of_month is None or day.day in self.days_of_month)
            # isoweekday is 1 (Monday) to 7 (Sunday); EventBridge's 1 is Sunday.
            and (self.days_of_week is None or day.isoweekday() % 7 + 1 in self.days_of_week)
        )

    def times_of_day(self) -> list[timedelta]:
        return sorted(timedelta(hours=h, minutes=m) for h in self.hours for m in self.minutes)


@dataclass(frozen=True)
class Schedule:
    """A parsed EventBridge schedule expression; build it with :meth:`parse`."""

    expression: str
    rate: timedelta | None = None
    _cron: _Cron | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        """Parse ``rate(...)`` or ``cron(...)``; a ValueError says what is wrong and the fix."""
        text = expression.strip()
        rate = _RATE.match(text)
        if rate:
            value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
            if value < 1:
                raise ValueError(f"{expression!r}: a rate must be at least 1 {unit}")
            # EventBridge wants the singular unit for 1 and the plural for more.
            normal = f"rate({value} {unit}{'' if value == 1 else 's'})"
            return cls(normal, rate=timedelta(seconds=value * _UNIT_SECONDS[unit]))
        cron = _CRON.match(text)
        if not cron:
            raise ValueError(
                f"{expression!r} is not an EventBridge Scheduler expression: use rate(1 hour) or "
                "cron(minutes hours day-of-month month day-of-week year)"
            )
        schedule = cls(text, _cron=_parse_cron(cron.group(1).split(), expression))
        schedule.longest_gap()  # raises when it fires fewer than twice in two years
        return schedule

    def __str__(self) -> str:
        return self.expression

    @property
    def eventbridge(self) -> str:
        """The expression as EventBridge Scheduler takes it."""
        return self.expression

    # -- when it fires -----------------------------------------------------------------

    def _firings(self, start: datetime, count: int | None = None) -> Iterator[datetime]:
        """Firings at or after ``start`` (UTC), in order, within the search horizon."""
        start = start.astimezone(UTC)
        if self.rate is not None:
            steps = -(-(start - RATE_ANCHOR) // self.rate)  # ceiling division
            first = RATE_ANCHOR + steps * self.rate
            yield from itertools.islice((first + i * self.rate for i in itertools.count()), count)
            return
        assert self._cron is not None
        produced = 0
        day = start.date()
        for _ in range(_HORIZON_DAYS):
            if self._cron.matches(day):
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                for offset in self._cron.times_of_day():
                    firing = midnight + offset
                    if firing >= start:
                        yield firing
                        produced += 1
                        if count is not None and produced >= count:
                            return
            day += timedelta(days=1)

    def firings(self, start: datetime, end: datetime) -> list[datetime]:
        """Every firing in ``[start, end)``."""
        return list(itertools.takewhile(lambda t: t < end, self._firings(start)))

    def previous_firing(self, at: datetime) -> datetime:
        """The last firing strictly before ``at``."""
        at = at.astimezone(UTC)
        if self.rate is not None:
            steps = -(-(at - RATE_ANCHOR) // self.rate) - 1
            return RATE_ANCHOR + steps * self.rate
        assert self._cron is not None
        day = at.date()
        for _ in range(_HORIZON_DAYS):
            if self._cron.matches(day):
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                for offset in reversed(self._cron.times_of_day()):
                    if midnight + offset < at:
                        return midnight + offset
            day -= timedelta(days=1)
        raise ValueError(f"{self.expression!r} did not fire in the two years before {at}")

    def window_before(self, trigger_time: datetime) -> tuple[datetime, datetime]:
        """``[start, end)`` the run of the firing at (or just before) ``trigger_time`` judges:
        the whole hours since the firing before it.

        Both ends are floored to the hour (the capture and the collector write hour folders),
        so consecutive runs' windows meet exactly, whatever the firings' minutes.
        """
        firing = self.previous_firing(trigger_time + timedelta(microseconds=1))
        return _floor_hour(self.previous_firing(firing)), _floor_hour(firing)

    @property
    def period(self) -> timedelta:
        """The longest gap between two consecutive firings (over the two years from today)."""
        return self.longest_gap()

    def longest_gap(self, *, start: date | None = None) -> timedelta:
        """The longest gap between consecutive firings over the two years from ``start``."""
        if self.rate is not None:
            return self.rate
        first = start or datetime.now(UTC).date()
        begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
        firings = list(self._firings(begin))
        if len(firings) < 2:
            raise ValueError(f"{self.expression!r} fires fewer than twice in two years")
        return max(b - a for a, b in itertools.pairwise(firings))

    # -- Azure ML ------------------------------------------------------------------------

    def azure_triggers(self) -> tuple[AzureTrigger, ...]:
        """Azure ML triggers firing exactly when this schedule does, each with its window.

        Raises
        ------
        ValueError
            For what Azure ML cannot express with fixed whole-hour windows: minute rates,
            several minutes in the hour, day-of-month, month or year restrictions.
        """
        if self.rate is not None:
            seconds = int(self.rate.total_seconds())
            if seconds % 86400 == 0:
                return (AzureTrigger(self.rate, frequency="day", interval=seconds // 86400),)
            if seconds % 3600 == 0:
                return (AzureTrigger(self.rate, frequency="hour", interval=seconds // 3600),)
            raise ValueError(
                f"monitoring.schedule {self.expression!r} cannot run on Azure ML: a monitor's "
                "window is whole hours (the data collector writes hour folders); use "
                "rate(N hours) or rate(N days)"
            )
        assert self._cron is not None
        cron = self._cron
        minute, _, day_of_month, month, _, year = cron.fields
        problems = []
        if len(cron.minutes) != 1:
            problems.append(
                f"minutes {minute!r}: a monitor's window is whole hours, so it fires at one "
                "minute of the hour"
            )
        if day_of_month not in ("?", "*") or month != "*":
            problems.append(
                "Azure ML's cron ignores day-of-month and month (they run as '*'): use "
                "day-of-week, or rate(N days)"
            )
        if year != "*":
            problems.append(f"year {year!r}: Azure ML's cron has no year; use '*'")
        if problems:
            raise ValueError(
                f"monitoring.schedule {self.expression!r} cannot run on Azure ML: "
                + "; ".join(problems)
            )
        week = self.firings(_REFERENCE_MONDAY, _REFERENCE_MONDAY + _WEEK)
        gaps: dict[timedelta, list[datetime]] = defaultdict(list)
        for previous, firing in zip([week[-1] - _WEEK, *week[:-1]], week, strict=True):
            gaps[firing - previous].append(firing)
        triggers = [
            AzureTrigger(gap, cron=expression)
            for gap, firings in sorted(gaps.items(), reverse=True)
            for expression in _azure_crons(firings)
        ]
        if len(triggers) > _MAX_AZURE_TRIGGERS:
            raise ValueError(
                f"monitoring.schedule {self.expression!r} needs {len(triggers)} Azure ML "
                "schedules to give every run its own window; use a more regular schedule"
            )
        return tuple(triggers)


def _azure_crons(firings: list[datetime]) -> list[str]:
    """Five-field crons (0 = Sunday) firing at exactly these (weekday, hour, minute)s."""
    weekdays_by_time: dict[tuple[int, int], set[int]] = defaultdict(set)
    for firing in firings:
        weekdays_by_time[(firing.minute, firing.hour)].add(firing.isoweekday() % 7)
    hours_by_days: dict[tuple[frozenset[int], int], list[int]] = defaultdict(list)
    for (minute, hour), weekdays in weekdays_by_time.items():
        hours_by_days[(frozenset(weekdays), minute)].append(hour)
    crons = []
    for (days, minute), hours in sorted(
        hours_by_days.items(), key=lambda item: (sorted(item[0][0]), item[0][1])
    ):
        hour_field = "*" if len(hours) == 24 else ",".join(str(h) for h in sorted(hours))
        day_field = "*" if len(days) == 7 else ",".join(str(d) for d in sorted(days))
        crons.append(f"{minute} {hour_field} * * {day_field}")
    return crons


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _parse_cron(fields: list[str], expression: str) -> _Cron:
    if len(fields) != 6:
        raise ValueError(f"{expression!r}: an EventBridge cron has 6 fields, got {len(fields)}")
    if any(c in f for f in fields for c in "LW#"):
        raise ValueError(
            f"{expression!r}: L, W and # are not supported for monitor schedules; use a rate or "
            "plain cron fields"
        )
    dom, dow = fields[2], fields[4]
    if (dom == "?") == (dow == "?"):
        raise ValueError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    return _Cron(
        minutes=_values(fields[0], 0, 59, {}, expression),
        hours=_values(fields[1], 0, 23, {}, expression),
        days_of_month=None if dom == "?" else _values(dom, 1, 31, {}, expression),
        months=_values(fields[3], 1, 12, _MONTHS, expression),
        days_of_week=None if dow == "?" else _values(dow, 1, 7, _DAYS, expression),
        years=_values(fields[5], 1970, 2199, {}, expression),
        fields=tuple(fields),
    )


def _values(
    field: str, low: int, high: int, names: dict[str, int], expression: str
) -> frozenset[int]:
    if field in ("*", "?"):
        return frozenset(range(low, high + 1))
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ValueError(f"{expression!r}: {part!r} has a step that is not a number")
        step = int(step_text) if step_text else 1
        if base in ("*", ""):
            first, last = low, high
        elif "-" in base:
            first, last = (_number(b, names, expression) for b in base.split("-", 1))
        else:
            first = _number(base, names, expression)
            last = high if step_text else first
        if not low <= first <= last <= high or step < 1:
            raise ValueError(f"{expression!r}: {part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(text: str, names: dict[str, int], expression: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{expression!r}: {text!r} is not a number or a known name")
    return int(text)
