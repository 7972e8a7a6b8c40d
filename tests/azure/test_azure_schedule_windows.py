"""One schedule, one window, both clouds: every hour of traffic is judged exactly once.

For the schedules a team would write (hourly, 6-hourly, daily, weekdays only, weekly), eight
days of runs are played out on each monitor:

* AWS: the monitor starter (pipelines/monitoring/jobs.py) at each EventBridge firing, under
  moto, with its watermark in DynamoDB;
* Azure's MonitorSchedule: the triggers and production windows of the REST bodies the SDK
  builds (``_to_rest_object``), fired by croniter, an independent cron evaluator;
* the Azure Spark drift job: the window its entry file derives from the trigger time Azure
  passes, at the same firings.

Finding 4: with a cron, the SDK's default window was seven days (each hour judged 168 times
by an hourly monitor); the Spark job's own parser gave 6-hourly schedules a 1-hour window and
weekdays-only schedules 168 hours.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import isodate
import pytest
from croniter import croniter
from mlops_azure import drift_job, monitoring
from mlops_azure.config import AzureEnvironment
from mlops_azure.jobs import spark_drift
from moto import mock_aws

from mlcore.schedule import Schedule
from mlcore.settings import MlopsSettings, load_settings
from pipelines.monitoring import jobs

SCHEDULES = {
    "hourly": "cron(0 * * * ? *)",
    "6-hourly": "cron(0 */6 * * ? *)",
    "daily": "cron(0 6 * * ? *)",
    "weekdays": "cron(0 6 ? * MON-FRI *)",
    "weekly": "cron(0 6 ? * MON *)",
}
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
END = START + timedelta(days=8)  # two Mondays: the weekly schedule's gap is seen once
Window = tuple[datetime, datetime]


def _judged_once(windows: list[Window]) -> None:
    """Consecutive runs' windows meet exactly: no hour twice, no hour skipped."""
    assert windows, "no run in eight days"
    ordered = sorted(windows)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start == end, f"a window starts at {start}, the one before ended at {end}"
    assert all(start < end for start, end in ordered)


def _settings(settings_file: Any, expression: str) -> MlopsSettings:
    return load_settings(
        settings_file, overrides={"monitoring": {"schedule": expression, "engine": "spark"}}
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        clients = {n: boto3.client(n, region_name="eu-west-1") for n in ("s3", "ssm", "dynamodb")}
        clients["s3"].create_bucket(
            Bucket="capture", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        clients["dynamodb"].create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients["ssm"].put_parameter(Name="/model", Value="arn:model-package/1", Type="String")
        yield clients


@pytest.mark.parametrize("expression", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_on_aws_every_hour_is_judged_once(aws: dict[str, Any], expression: str) -> None:
    schedule = Schedule.parse(expression)
    config = jobs.MonitorJobConfig(
        endpoint_name="acme",
        capture_s3_uri="s3://capture/data-capture",
        reports_s3_uri="s3://capture/reports",
        model_package_parameter="/model",
        settings_s3_uri="s3://capture/mlops.yaml",
        image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        role_arn="arn:aws:iam::123456789012:role/monitor",
        state_table="state",
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/1",
        drift_period_minutes=int(schedule.period.total_seconds() // 60),
    )
    windows = []
    for firing in schedule.firings(START, END):
        run = jobs.start_monitor_run(
            config,
            monitor="drift",
            scheduled_time=firing + timedelta(seconds=5),
            s3=aws["s3"],
            sagemaker=None,
            ssm=aws["ssm"],
            dynamodb=aws["dynamodb"],
        )
        windows.append((run.window_start, run.window_end))
    _judged_once(windows)


def _azure_runs(crons: list[tuple[str, timedelta]]) -> list[Window]:
    """Windows of the runs of each (Azure cron, window) between START and END, by croniter."""
    windows = []
    for cron, size in crons:
        fire = croniter(cron, START - timedelta(seconds=1))
        while (firing := fire.get_next(datetime)) < END:
            windows.append((firing - size, firing))
    return windows


@pytest.mark.parametrize("expression", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_on_the_azure_monitor_schedule_every_hour_is_judged_once(
    dev_env: AzureEnvironment, settings_file: Any, expression: str
) -> None:
    settings = _settings(settings_file, expression)
    crons = []
    for monitor in monitoring.build_monitor_schedules(
        dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
    ):
        body = monitor._to_rest_object().as_dict()["properties"]
        assert body["trigger"]["triggerType"] == "Cron"
        sizes = set()
        for signal in body["action"]["monitorDefinition"]["signals"].values():
            production = signal["productionData"]
            assert isodate.parse_duration(production["windowOffset"]) == timedelta(0)
            sizes.add(isodate.parse_duration(production["windowSize"]))
        (size,) = sizes  # every signal of a run reads the same hours
        crons.append((body["trigger"]["expression"], size))
    _judged_once(_azure_runs(crons))


@pytest.mark.parametrize("expression", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_in_the_azure_spark_job_every_hour_is_judged_once(
    dev_env: AzureEnvironment, settings_file: Any, expression: str, tmp_path: Any
) -> None:
    settings = _settings(settings_file, expression)
    schedules = drift_job.build_drift_schedules(
        dev_env,
        settings,
        deployment_name="blue",
        reference_data="azureml:r:1",
        settings_data="azureml:s:1",
        code_dir=drift_job.stage_spark_code(tmp_path / "code"),
    )
    windows = []
    for schedule in schedules:
        fire = croniter(schedule.trigger.expression, START - timedelta(seconds=1))
        while (firing := fire.get_next(datetime)) < END:
            # Azure's trigger time, a few seconds after the firing.
            window = spark_drift.Window.of_run(settings, firing + timedelta(seconds=4))
            windows.append((window.start, window.end))
    _judged_once(windows)
