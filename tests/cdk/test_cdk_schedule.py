"""The period of an EventBridge schedule, which the monitor windows and alarms follow."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cdk.monitoring.schedule import schedule_period


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(7 days)", timedelta(days=7)),
        ("rate(15 minutes)", timedelta(minutes=15)),
        ("cron(0 * * * ? *)", timedelta(hours=1)),
        ("cron(0 */6 * * ? *)", timedelta(hours=6)),
        ("cron(0 6 * * ? *)", timedelta(days=1)),
        # Weekdays only: the weekend gap is the one "no run in two periods" must allow.
        ("cron(0 9 ? * MON-FRI *)", timedelta(days=3)),
        ("cron(30 2 ? * SUN *)", timedelta(days=7)),
        ("cron(0 0 1 * ? *)", timedelta(days=31)),
    ],
)
def test_the_period_is_the_longest_gap_between_firings(expression: str, period: timedelta) -> None:
    assert schedule_period(expression, start=date(2026, 3, 2)) == period


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("every hour", "not an EventBridge schedule expression"),
        ("cron(0 * * * *)", "6 fields"),
        ("cron(0 0 L * ? *)", "L, W and #"),
        ("cron(0 0 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 25 * * ? *)", "outside 0-23"),
        ("cron(0 0 1 1 ? 2020)", "fewer than twice"),
    ],
)
def test_an_unusable_expression_says_why(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule_period(expression, start=date(2026, 3, 2))
