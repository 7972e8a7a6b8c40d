"""How often an EventBridge schedule fires: the period the monitor windows and alarms follow.

``rate(value unit)`` has its period written in it. For ``cron(minutes hours day-of-month
month day-of-week year)`` (EventBridge's six fields, UTC; day-of-week 1-7 is SUN-SAT) the
period is the longest gap between two consecutive firings over the next two years, so an
irregular schedule (weekdays only, say) gets the gap that matters for "no run in two
periods". ``L``, ``W`` and ``#`` are not supported: use a rate or plain fields for monitors.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
# Years the search covers: long enough for every pattern a monitor would use to repeat.
_HORIZON_YEARS = 2


def schedule_period(expression: str, *, start: date | None = None) -> timedelta:
    """The (longest) time between two firings of ``expression``.

    >>> schedule_period("rate(7 days)")
    datetime.timedelta(days=7)
    >>> schedule_period("cron(0 6 * * ? *)")
    datetime.timedelta(days=1)
    """
    rate = _RATE.match(expression.strip())
    if rate:
        value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if value < 1:
            raise ValueError(f"{expression!r}: a rate must be at least 1 {unit}")
        return timedelta(seconds=value * _UNITS[unit])
    cron = _CRON.match(expression.strip())
    if not cron:
        raise ValueError(
            f"{expression!r} is not an EventBridge schedule expression: use rate(1 hour) or "
            "cron(minutes hours day-of-month month day-of-week year)"
        )
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(f"{expression!r}: an EventBridge cron has 6 fields, got {len(fields)}")
    if any(c in f for f in fields for c in "LW#"):
        raise ValueError(
            f"{expression!r}: L, W and # are not supported for monitor schedules; use a rate or "
            "plain cron fields"
        )
    minutes = _values(fields[0], 0, 59, {}, expression)
    hours = _values(fields[1], 0, 23, {}, expression)
    dom, months = fields[2], _values(fields[3], 1, 12, _MONTHS, expression)
    dow = fields[4]
    if (dom == "?") == (dow == "?"):
        raise ValueError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    days_of_month = None if dom == "?" else _values(dom, 1, 31, {}, expression)
    days_of_week = None if dow == "?" else _values(dow, 1, 7, _DAYS, expression)
    first = start or datetime.now(UTC).date()
    years = _values(fields[5], 1970, 2199, {}, expression)
    times_of_day = sorted(timedelta(hours=h, minutes=m) for h in hours for m in minutes)
    firings: list[datetime] = []
    day = first
    while day < first + timedelta(days=366 * _HORIZON_YEARS):
        if (
            day.year in years
            and day.month in months
            and (days_of_month is None or day.day in days_of_month)
            # Python's isoweekday is 1 (Monday) to 7 (Sunday); EventBridge's 1 is Sunday.
            and (days_of_week is None or day.isoweekday() % 7 + 1 in days_of_week)
        ):
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            firings.extend(midnight + t for t in times_of_day)
        day += timedelta(days=1)
    if len(firings) < 2:
        raise ValueError(f"{expression!r} fires fewer than twice in {_HORIZON_YEARS} years")
    return max(b - a for a, b in itertools.pairwise(firings))


def _values(field: str, low: int, high: int, names: dict[str, int], expression: str) -> set[int]:
    if field in ("*", "?"):
        return set(range(low, high + 1))
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
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
    return values


def _number(text: str, names: dict[str, int], expression: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{expression!r}: {text!r} is not a number or a known name")
    return int(text)
