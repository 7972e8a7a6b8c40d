"""The monitoring control plane (pipelines/monitoring) against moto: job starts, metric publishing, retrain gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from pipelines.monitoring import jobs, metrics, publish, retrain

REGION = "eu-west-1"
BUCKET = "mlops-artifacts"
ENDPOINT = "churn-staging"
GROUP = "churn-models"
TABLE = "serving-state"
PARAMETER = "/mlops/churn/staging/model-package-arn"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1111"
SCHEDULED = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("s3", "sagemaker", "ssm", "dynamodb", "events", "cloudwatch", "sqs")
        }
        clients["s3"].create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        clients["dynamodb"].create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName=GROUP)
        package = clients["sagemaker"].create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [
                    {"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/models/v1/model.tar.gz"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
        )["ModelPackageArn"]
        clients["ssm"].put_parameter(Name=PARAMETER, Value=package, Type="String")
        clients["package"] = package
        yield clients


def _config(**overrides: Any) -> jobs.MonitorJobConfig:
    values: dict[str, Any] = {
        "endpoint_name": ENDPOINT,
        "capture_s3_uri": f"s3://{BUCKET}/data-capture",
        "reports_s3_uri": f"s3://{BUCKET}/monitoring/{ENDPOINT}",
        "ground_truth_s3_uri": f"s3://{BUCKET}/ground-truth/{ENDPOINT}",
        "model_package_parameter": PARAMETER,
        "settings_s3_uri": "s3://cdk-assets/abc123.yaml",
        "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
        "role_arn": "arn:aws:iam::123456789012:role/monitor-job",
        "state_table": TABLE,
        "kms_key_arn": KEY_ARN,
        # One schedule period: the first window (three hours here).
        "drift_period_minutes": 180,
        "quality_period_minutes": 180,
    }
    values.update(overrides)
    return jobs.MonitorJobConfig(**values)


def _put_capture(s3: Any, hour: datetime, name: str = "part.jsonl") -> str:
    key = f"data-capture/{ENDPOINT}/AllTraffic/{hour:%Y/%m/%d/%H}/{name}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")
    return key


def _run(
    aws: dict[str, Any], monitor: str = "drift", when: datetime = SCHEDULED, **config: Any
) -> jobs.MonitorRun:
    return jobs.start_monitor_run(
        _config(**config),
        monitor=monitor,  # type: ignore[arg-type]
        scheduled_time=when,
        s3=aws["s3"],
        sagemaker=aws["sagemaker"],
        ssm=aws["ssm"],
        dynamodb=aws["dynamodb"],
    )


def test_drift_job_reads_exactly_the_window_through_a_manifest(aws: dict[str, Any]) -> None:
    inside = [_put_capture(aws["s3"], datetime(2026, 3, 2, h, tzinfo=UTC)) for h in (7, 8, 9)]
    _put_capture(aws["s3"], datetime(2026, 3, 2, 6, tzinfo=UTC))  # before the first period
    _put_capture(aws["s3"], datetime(2026, 3, 2, 10, tzinfo=UTC))  # the hour still being written
    run = _run(aws)
    assert run.status == "started" and run.captured_files == 3
    assert run.job_name == "churn-staging-drift-2026030210"
    manifest = json.loads(
        aws["s3"]
        .get_object(
            Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/drift/2026/03/02/10/manifests/capture.json"
        )["Body"]
        .read()
    )
    assert manifest == [{"prefix": f"s3://{BUCKET}/"}, *inside]
    job = aws["sagemaker"].describe_processing_job(ProcessingJobName=run.job_name)
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "mlcore", "drift",
        "--baseline", "/opt/ml/processing/input/model",
        "--current", "/opt/ml/processing/input/capture",
        "--output", "/opt/ml/processing/output",
        "--settings", "/opt/ml/processing/input/settings/abc123.yaml",
        # monitoring.engine streaming and drift.reference.mode training by default.
        "--streaming", "--reference-mode", "training",
    ]  # fmt: skip
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["capture"]["S3DataType"] == "ManifestFile"
    assert inputs["model"]["S3Uri"] == f"s3://{BUCKET}/models/v1/model.tar.gz"
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].endswith(
        "/drift/2026/03/02/10/report"
    )


def test_next_run_starts_where_the_last_one_ended(aws: dict[str, Any]) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    first = _run(aws)
    _put_capture(aws["s3"], datetime(2026, 3, 2, 10, tzinfo=UTC))
    second = _run(aws, when=SCHEDULED + timedelta(hours=1))
    assert second.window_start == first.window_end == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert second.captured_files == 1
    again = _run(aws, when=SCHEDULED + timedelta(hours=1, minutes=20))
    assert again.status == "skipped" and again.reason == "window already covered"


def test_an_empty_window_is_skipped_and_not_reread(aws: dict[str, Any]) -> None:
    run = _run(aws)
    assert run.status == "skipped" and run.reason == "no captured data in the window"
    _put_capture(
        aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC)
    )  # arrives late, for an analysed hour
    later = _run(aws, when=SCHEDULED + timedelta(hours=1))
    assert later.window_start == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert later.status == "skipped"


def test_nothing_runs_before_a_model_is_approved(aws: dict[str, Any]) -> None:
    aws["ssm"].put_parameter(Name=PARAMETER, Value="none", Type="String", Overwrite=True)
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    run = _run(aws)
    assert run.status == "skipped" and "no model has been approved" in str(run.reason)
    assert aws["sagemaker"].list_processing_jobs()["ProcessingJobSummaries"] == []


def test_quality_job_joins_labels_with_earlier_predictions(aws: dict[str, Any]) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 1, 20, tzinfo=UTC))  # predicted the evening before
    aws["s3"].put_object(
        Bucket=BUCKET, Key=f"ground-truth/{ENDPOINT}/2026/03/02/09/labels.jsonl", Body=b"{}\n"
    )
    run = _run(aws, monitor="quality", label_delay_hours=24)
    assert run.status == "started" and run.captured_files == 1
    job = aws["sagemaker"].describe_processing_job(ProcessingJobName=run.job_name)
    entrypoint = job["AppSpecification"]["ContainerEntrypoint"]
    assert entrypoint[:2] == ["mlcore", "quality"]
    assert entrypoint[entrypoint.index("--labels") + 1] == "/opt/ml/processing/input/labels"
    assert {i["InputName"] for i in job["ProcessingInputs"]} == {
        "capture",
        "model",
        "settings",
        "labels",
    }


def test_quality_waits_for_ground_truth(aws: dict[str, Any]) -> None:
    _put_capture(aws["s3"], datetime(2026, 3, 2, 9, tzinfo=UTC))
    run = _run(aws, monitor="quality")
    assert run.status == "skipped" and run.reason == "no ground truth arrived in the window"


def test_starting_a_window_twice_is_harmless() -> None:
    # moto accepts two processing jobs with one name; SageMaker refuses the second with
    # ResourceInUse, which a retried schedule must treat as "already started". Stubbed.
    config = _config()
    s3, sagemaker, ssm, dynamodb = (
        boto3.client(n, region_name=REGION) for n in ("s3", "sagemaker", "ssm", "dynamodb")
    )
    stubs = {
        name: Stubber(client)
        for name, client in (("s3", s3), ("sm", sagemaker), ("ssm", ssm), ("ddb", dynamodb))
    }
    stubs["ddb"].add_response(
        "get_item", {}, {"TableName": TABLE, "Key": ANY, "ConsistentRead": True}
    )
    stubs["ssm"].add_response(
        "get_parameter",
        {"Parameter": {"Name": PARAMETER, "Value": "arn:package/1", "Type": "String"}},
    )
    for hour in range(3):
        contents = (
            [{"Key": f"data-capture/{ENDPOINT}/AllTraffic/x{hour}.jsonl"}] if hour == 2 else []
        )
        stubs["s3"].add_response("list_objects_v2", {"Contents": contents, "IsTruncated": False})
    stubs["s3"].add_response("put_object", {})  # the capture manifest
    stubs["sm"].add_response(
        "describe_model_package",
        {
            "ModelPackageName": "p",
            "ModelPackageArn": "arn:package/1",
            "CreationTime": SCHEDULED,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "InferenceSpecification": {
                "Containers": [{"Image": "img", "ModelDataUrl": "s3://m/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        },
    )
    stubs["s3"].add_response("put_object", {})  # window.json
    stubs["sm"].add_client_error("create_processing_job", "ResourceInUse", "job exists")
    stubs["ddb"].add_response("put_item", {})
    for stub in stubs.values():
        stub.activate()
    run = jobs.start_monitor_run(
        config,
        monitor="drift",
        scheduled_time=SCHEDULED,
        s3=s3,
        sagemaker=sagemaker,
        ssm=ssm,
        dynamodb=dynamodb,
    )
    assert run.status == "already-started"
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_job_names_fit_sagemaker_limits() -> None:
    name = jobs.job_name_for("e" * 63, "quality", SCHEDULED)
    assert len(name) <= 63 and name.endswith("-quality-2026030210")


@pytest.mark.parametrize("length", [5, 40, 44, 46, 48])
@pytest.mark.parametrize("monitor", jobs.MONITORS)
def test_the_job_end_rule_prefix_matches_every_job_name(length: int, monitor: str) -> None:
    # Finding 6: the rule matched name[:40] while names keep up to 46 characters of it.
    endpoint = ("a-" * 30)[:length].rstrip("-") + "x"
    name = jobs.job_name_for(endpoint, monitor, SCHEDULED)  # type: ignore[arg-type]
    assert name.startswith(jobs.job_name_prefix(endpoint, monitor))  # type: ignore[arg-type]


def _set_watermark(aws: dict[str, Any], monitor: str, when: datetime) -> None:
    aws["dynamodb"].put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": f"watermark#{ENDPOINT}#{monitor}"},
            "window_end": {"S": when.isoformat()},
        },
    )


def test_a_weekly_schedule_analyses_everything_since_the_last_run(aws: dict[str, Any]) -> None:
    # Finding 7: with rate(7 days) a 24-hour lookback left 144 hours of traffic unread.
    last = SCHEDULED.replace(minute=0, second=0) - timedelta(days=7)
    _set_watermark(aws, "drift", last)
    keys = [_put_capture(aws["s3"], last + timedelta(hours=h)) for h in (0, 30, 100, 167)]
    run = _run(aws)
    assert (run.window_start, run.status, run.captured_files) == (last, "started", 4)
    assert run.uncovered_since is None
    manifest = json.loads(
        aws["s3"]
        .get_object(
            Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/drift/2026/03/02/10/manifests/capture.json"
        )["Body"]
        .read()
    )
    assert manifest[1:] == keys


def test_a_gap_beyond_the_maximum_window_is_cut_and_the_run_says_so(aws: dict[str, Any]) -> None:
    end = SCHEDULED.replace(minute=0, second=0)
    _set_watermark(aws, "drift", end - timedelta(days=20))
    _put_capture(aws["s3"], end - timedelta(days=19))  # older than the cap: not analysed
    _put_capture(aws["s3"], end - timedelta(hours=5))
    run = _run(aws, max_window_hours=48)
    assert run.window_start == end - timedelta(hours=48)
    assert run.uncovered_since == end - timedelta(days=20)
    assert run.captured_files == 1
    window = json.loads(
        aws["s3"]
        .get_object(Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/drift/2026/03/02/10/window.json")[
            "Body"
        ]
        .read()
    )
    assert window["uncovered_since"] == (end - timedelta(days=20)).isoformat()
    assert window["max_window_hours"] == 48


def _heartbeat(aws: dict[str, Any], now: datetime) -> dict[str, Any]:
    return jobs.heartbeat(
        _config(),
        now=now,
        dynamodb=aws["dynamodb"],
        cloudwatch=aws["cloudwatch"],
        namespace="MLOps",
    )


def test_the_heartbeat_counts_hours_since_each_monitor_last_completed(
    aws: dict[str, Any],
) -> None:
    # Finding 6: a monitor that stopped running must be noticed (two periods, in the alarm).
    first = _heartbeat(aws, SCHEDULED)  # a fresh deployment: the clock starts now
    assert first["hours_since_run"] == {"drift": 0.0, "quality": 0.0}
    _run(aws, when=SCHEDULED + timedelta(hours=1))  # an empty window counts as a completed run
    later = _heartbeat(aws, SCHEDULED + timedelta(hours=5))
    assert later["hours_since_run"]["drift"] == pytest.approx(4 - 5 / 3600, abs=0.01)
    assert later["hours_since_run"]["quality"] == pytest.approx(5.0)
    dims = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "Monitor", "Value": "quality"}]
    result = aws["cloudwatch"].get_metric_statistics(
        Namespace="MLOps",
        MetricName=metrics.HOURS_SINCE_MONITOR_RUN,
        Dimensions=dims,
        StartTime=SCHEDULED + timedelta(hours=4),
        EndTime=SCHEDULED + timedelta(hours=6),
        Period=3600,
        Statistics=["Maximum"],
    )
    assert [p["Maximum"] for p in result["Datapoints"]] == [5.0]


def test_bad_events_and_settings_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        jobs.parse_monitor("bias")
    with pytest.raises(ValueError, match="ISO 8601"):
        jobs.parse_time("yesterday")
    with pytest.raises(ValueError, match="ENDPOINT_NAME"):
        jobs.MonitorJobConfig.from_environment({})


# Publishing: moto does not keep a processing job's Environment, which the publisher reads
# to know which monitor and endpoint a job served, so DescribeProcessingJob is stubbed.


def _stub_job(
    status: str, *, output: str = f"s3://{BUCKET}/monitoring/{ENDPOINT}/drift/r/report"
) -> Any:
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_response(
        "describe_processing_job",
        {
            "ProcessingJobName": "churn-staging-drift-2026030210",
            "ProcessingJobArn": "arn:job",
            "ProcessingJobStatus": status,
            "FailureReason": "AlgorithmError: boom" if status == "Failed" else "",
            "ProcessingEndTime": SCHEDULED,
            "CreationTime": SCHEDULED,
            "Environment": {"MLOPS_MONITOR": "drift", "MLOPS_ENDPOINT": ENDPOINT},
            "AppSpecification": {"ImageUri": "img"},
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 30,
                }
            },
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {
                            "S3Uri": output,
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
        },
    )
    stubber.activate()
    return client


def _metric_values(cloudwatch: Any, name: str, dims: list[dict[str, str]]) -> list[float]:
    result = cloudwatch.get_metric_statistics(
        Namespace="MLOps",
        MetricName=name,
        Dimensions=dims,
        StartTime=SCHEDULED - timedelta(hours=1),
        EndTime=SCHEDULED + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )
    return [point["Maximum"] for point in result["Datapoints"]]


def _drift_report(drifted: bool) -> dict[str, Any]:
    return {
        "dataset_drift": drifted,
        "share_drifted": 0.5 if drifted else 0.0,
        "current_rows": 1200,
        "prediction_drift": drifted,
        "features": [
            {"name": "monthly_charges", "drifted": drifted, "statistic": 0.31},
            {"name": "region", "drifted": False, "statistic": None},
        ],
    }


def test_completed_drift_job_becomes_cloudwatch_metrics(aws: dict[str, Any]) -> None:
    aws["s3"].put_object(
        Bucket=BUCKET,
        Key=f"monitoring/{ENDPOINT}/drift/r/report/drift_report.json",
        Body=json.dumps(_drift_report(True)).encode(),
    )
    summary = publish.publish_job_metrics(
        "churn-staging-drift-2026030210",
        namespace="MLOps",
        sagemaker=_stub_job("Completed"),
        s3=aws["s3"],
        cloudwatch=aws["cloudwatch"],
        dynamodb=aws["dynamodb"],
        state_table=TABLE,
    )
    endpoint = [{"Name": "EndpointName", "Value": ENDPOINT}]
    assert summary["published"] == 8
    completed = aws["dynamodb"].get_item(
        TableName=TABLE, Key={"pk": {"S": jobs.completion_key(ENDPOINT, "drift")}}
    )["Item"]
    assert completed["kind"]["S"] == "completed"  # the heartbeat sees this run
    assert _metric_values(aws["cloudwatch"], metrics.DATASET_DRIFT, endpoint) == [1.0]
    assert _metric_values(
        aws["cloudwatch"],
        metrics.FEATURE_DRIFT_STATISTIC,
        [*endpoint, {"Name": "Feature", "Value": "monthly_charges"}],
    ) == [0.31]


def _graded(grade: str, feature_grades: tuple[str, str]) -> dict[str, Any]:
    report = _drift_report(grade == "major")
    report["grade"] = grade
    for feature, feature_grade in zip(report["features"], feature_grades, strict=True):
        feature["grade"] = feature_grade
    return report


def test_a_graded_drift_report_publishes_its_grade() -> None:
    # Contract 5: alerts act on moderate (DriftGrade >= 1), the retrain on major (DatasetDrift).
    data = metrics.drift_metric_data(
        _graded("moderate", ("moderate", "none")), endpoint_name=ENDPOINT, timestamp=SCHEDULED
    )
    by_name = {(d["MetricName"], len(d["Dimensions"])): d["Value"] for d in data}
    assert by_name[(metrics.DRIFT_GRADE, 1)] == 1.0
    assert by_name[(metrics.DATASET_DRIFT, 1)] == 0.0  # moderate is not dataset drift
    assert by_name[(metrics.DRIFT_INSUFFICIENT_DATA, 1)] == 0.0
    features = [d for d in data if d["MetricName"] == metrics.FEATURE_DRIFT_GRADE]
    assert [d["Value"] for d in features] == [1.0, 0.0]


def test_insufficient_data_publishes_no_grade_so_it_never_counts_as_drift() -> None:
    data = metrics.drift_metric_data(
        _graded("insufficient_data", ("insufficient_data", "none")),
        endpoint_name=ENDPOINT,
        timestamp=SCHEDULED,
    )
    names = [d["MetricName"] for d in data]
    assert metrics.DRIFT_GRADE not in names
    assert [d["Value"] for d in data if d["MetricName"] == metrics.DRIFT_INSUFFICIENT_DATA] == [1.0]
    assert [d["Value"] for d in data if d["MetricName"] == metrics.FEATURE_DRIFT_GRADE] == [0.0]


def test_the_publisher_numbers_grades_as_mlcore_orders_them() -> None:
    # The Lambda's asset has no mlcore, so it keeps its own copy of the map: it must not drift.
    from mlcore.drift.grading import GRADE_LEVELS

    assert {grade: float(level) for grade, level in GRADE_LEVELS.items()} == metrics.GRADE_VALUES


def test_an_unknown_grade_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown drift grade 'severe'"):
        metrics.drift_metric_data(
            _graded("severe", ("none", "none")), endpoint_name=ENDPOINT, timestamp=SCHEDULED
        )


def test_failed_monitor_job_is_reported_as_such(aws: dict[str, Any]) -> None:
    publish.publish_job_metrics(
        "churn-staging-drift-2026030210",
        namespace="MLOps",
        sagemaker=_stub_job("Failed"),
        s3=aws["s3"],
        cloudwatch=aws["cloudwatch"],
    )
    dims = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "Monitor", "Value": "drift"}]
    assert _metric_values(aws["cloudwatch"], metrics.MONITOR_JOB_FAILED, dims) == [1.0]


def test_missing_report_is_an_error_not_silence(aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="wrote no s3://"):
        publish.publish_job_metrics(
            "churn-staging-drift-2026030210",
            namespace="MLOps",
            sagemaker=_stub_job("Completed"),
            s3=aws["s3"],
            cloudwatch=aws["cloudwatch"],
        )


def test_quality_metrics_cover_slices_and_skip_nan() -> None:
    report = {
        "rows": 400,
        "below_threshold": True,
        "metrics": {"auc": 0.6, "log_loss": None},
        "slices": {"region": {"east": {"rows": 250.0, "auc": 0.55}, "north": {"rows": 10.0}}},
    }
    data = metrics.quality_metric_data(report, endpoint_name=ENDPOINT, timestamp=SCHEDULED)
    names = sorted((d["MetricName"], len(d["Dimensions"])) for d in data)
    assert names == [
        ("LabelledRows", 1),
        ("LabelledRows", 3),
        ("LabelledRows", 3),
        ("Live_auc", 1),
        ("Live_auc", 3),
        ("QualityBelowThreshold", 1),
    ]


def test_old_or_foreign_reports_are_rejected() -> None:
    with pytest.raises(ValueError, match="lacks"):
        metrics.drift_metric_data({"drift": True}, endpoint_name=ENDPOINT, timestamp=SCHEDULED)


# Retrain gate (DynamoDB and EventBridge in moto).


def _request(
    aws: dict[str, Any], when: datetime, alarm: str = "churn-staging-data-drift"
) -> retrain.RetrainDecision:
    return retrain.request_retrain(
        pipeline_name="churn-model-build",
        alarm_name=alarm,
        reason="Threshold Crossed",
        cooldown=timedelta(hours=24),
        table=TABLE,
        dynamodb=aws["dynamodb"],
        events=aws["events"],
        now=when,
    )


def test_retrain_is_granted_once_per_cooldown(aws: dict[str, Any]) -> None:
    assert _request(aws, SCHEDULED).granted
    assert not _request(aws, SCHEDULED + timedelta(hours=1)).granted
    assert not _request(
        aws, SCHEDULED + timedelta(hours=23), alarm="churn-staging-model-quality"
    ).granted
    assert _request(aws, SCHEDULED + timedelta(hours=24, minutes=1)).granted


def test_retrain_handler_ignores_alarms_returning_to_ok(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_NAME", "churn-model-build")
    monkeypatch.setenv("STATE_TABLE", TABLE)
    monkeypatch.setenv("COOLDOWN_HOURS", "24")
    event = {"detail": {"alarmName": "churn-staging-data-drift", "state": {"value": "OK"}}}
    assert retrain.handler(event)["granted"] is False
    assert aws["dynamodb"].scan(TableName=TABLE)["Items"] == []
