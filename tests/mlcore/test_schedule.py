"""The monitor schedule, parsed once: its period, its windows, its EventBridge and Azure forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mlcore.schedule import Schedule
from mlcore.settings import load_settings


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
    assert Schedule.parse(expression).longest_gap(start=date(2026, 3, 2)) == period


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("every hour", "not an EventBridge Scheduler expression"),
        ("cron(0 * * * *)", "6 fields"),
        ("cron(0 0 L * ? *)", "L, W and #"),
        ("cron(0 0 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 25 * * ? *)", "outside 0-23"),
        ("cron(0 0 1 1 ? 2020)", "fewer than twice"),
        ("rate(0 hours)", "at least 1 hour"),
    ],
)
def test_an_unusable_expression_says_why(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(expression)


def test_eventbridge_gets_the_singular_unit_for_one() -> None:
    # EventBridge refuses "rate(1 hours)"; the settings accept either and send the valid one.
    assert Schedule.parse("rate(1 hours)").eventbridge == "rate(1 hour)"
    assert Schedule.parse("rate(6 hour)").eventbridge == "rate(6 hours)"


def test_mlops_yaml_holds_the_parsed_schedule_and_writes_it_back(tmp_path: object) -> None:
    settings = load_settings(overrides={"monitoring": {"schedule": "cron(0 */6 * * ? *)"}})
    assert settings.monitoring.schedule.period == timedelta(hours=6)
    dumped = settings.model_dump(mode="json")["monitoring"]["schedule"]
    assert dumped == "cron(0 */6 * * ? *)"
    with pytest.raises(Exception, match="6 fields"):
        load_settings(overrides={"monitoring": {"schedule": "cron(0 * * * *)"}})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(30 minutes)", "whole hours"),
        ("cron(0,30 * * * ? *)", "one minute of the hour"),
        ("cron(0 6 1 * ? *)", "ignores day-of-month and month"),
        ("cron(0 6 ? 1-6 MON *)", "ignores day-of-month and month"),
        ("cron(0 6 ? * MON 2026-2030)", "no year"),
    ],
)
def test_what_azure_cannot_run_with_whole_hour_windows_is_refused(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(expression).azure_triggers()


def test_a_weekdays_schedule_becomes_one_azure_trigger_per_gap() -> None:
    triggers = Schedule.parse("cron(0 9,17 ? * MON-FRI *)").azure_triggers()
    assert [(t.cron, t.window_iso) for t in triggers] == [
        ("0 9 * * 1", "PT64H"),  # Monday 09:00 judges everything since Friday 17:00
        ("0 9 * * 2,3,4,5", "PT16H"),
        ("0 17 * * 1,2,3,4,5", "PT8H"),
    ]


def test_the_window_of_a_late_trigger_is_that_of_its_firing() -> None:
    weekdays = Schedule.parse("cron(0 6 ? * MON-FRI *)")
    monday = datetime(2026, 3, 2, 6, 0, 7, tzinfo=UTC)  # Azure's trigger time, seconds late
    assert weekdays.window_before(monday) == (
        monday - timedelta(days=3, seconds=7),
        monday.replace(second=0),
    )
