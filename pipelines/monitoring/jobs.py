"""Start one run of a monitor: a SageMaker Processing job over the captured data since the last run.

EventBridge Scheduler invokes :func:`handler` on the monitor's schedule with
``{"monitor": "drift" | "quality", "scheduled_time": "<aws.scheduler.scheduled-time>"}``.
Nothing runs between runs: the job's instance exists only while it works.

A run covers whole hours, the folders SageMaker data capture writes
(``<capture prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``), from the end of the last
run (the watermark, a DynamoDB item per monitor) up to the hour of the scheduled time:
whatever the schedule, nothing captured is left out. The first run covers one schedule
period. A gap longer than ``max_window_hours`` (two weeks by default: the monitor was off,
or failed for that long) is cut to its most recent ``max_window_hours``; the run then says
so in its result, its log and ``window.json`` beside its report. The capture files of the
window are listed into a manifest, so the job reads exactly them.

- drift: ``mlcore drift --baseline <model> --current <capture> --output ...`` against
  the baseline saved in the served model's artifact;
- quality: ``mlcore quality`` joins the ground truth that arrived during the window with
  the predictions captured up to ``label_delay_hours`` earlier.

The job writes its reports to ``<reports>/<monitor>/<window end>/``; when it ends, the
publisher (:mod:`pipelines.monitoring.publish`) turns them into CloudWatch metrics and
records the completion. An hourly heartbeat invocation (``{"heartbeat": true}``) publishes
``HoursSinceMonitorRun`` per monitor, which alarms when no run completed in two periods.
Starting the same window twice is harmless: the job name is the window's, and SageMaker
refuses a second job of that name.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

Monitor = Literal["drift", "quality"]
MONITORS: tuple[Monitor, ...] = ("drift", "quality")
NO_MODEL = "none"
INPUT_ROOT = "/opt/ml/processing/input"
OUTPUT_DIR = "/opt/ml/processing/output"
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class MonitorJobConfig:
    """Where a monitor reads and writes, and how its job runs. Built from the Lambda's environment."""

    endpoint_name: str
    capture_s3_uri: str
    reports_s3_uri: str
    model_package_parameter: str
    settings_s3_uri: str
    image_uri: str
    role_arn: str
    state_table: str
    kms_key_arn: str
    instance_type: str = "ml.m5.large"
    variant_name: str = "AllTraffic"
    ground_truth_s3_uri: str | None = None
    # One schedule period of each monitor: the first window, and the heartbeat's unit.
    drift_period_minutes: int = 60
    quality_period_minutes: int = 24 * 60
    max_window_hours: int = 24 * 14
    label_delay_hours: int = 0
    max_runtime_seconds: int = 3600
    volume_size_gb: int = 30
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> MonitorJobConfig:
        env = dict(os.environ if environ is None else environ)
        required = {
            "endpoint_name": "ENDPOINT_NAME",
            "capture_s3_uri": "CAPTURE_S3_URI",
            "reports_s3_uri": "REPORTS_S3_URI",
            "model_package_parameter": "MODEL_PACKAGE_PARAMETER",
            "settings_s3_uri": "SETTINGS_S3_URI",
            "image_uri": "IMAGE_URI",
            "role_arn": "ROLE_ARN",
            "state_table": "STATE_TABLE",
            "kms_key_arn": "KMS_KEY_ARN",
        }
        missing = [name for name in required.values() if not env.get(name)]
        if missing:
            raise ValueError(f"the monitor job starter needs environment variables {missing}")
        values: dict[str, Any] = {attr: env[name] for attr, name in required.items()}
        optional_text = {"instance_type": "INSTANCE_TYPE", "variant_name": "VARIANT_NAME"}
        values.update({attr: env[name] for attr, name in optional_text.items() if env.get(name)})
        values["ground_truth_s3_uri"] = env.get("GROUND_TRUTH_S3_URI") or None
        optional_ints = {
            "drift_period_minutes": "DRIFT_PERIOD_MINUTES",
            "quality_period_minutes": "QUALITY_PERIOD_MINUTES",
            "max_window_hours": "MAX_WINDOW_HOURS",
            "volume_size_gb": "VOLUME_SIZE_GB",
            "label_delay_hours": "LABEL_DELAY_HOURS",
            "max_runtime_seconds": "MAX_RUNTIME_SECONDS",
        }
        values.update(
            {attr: int(env[name]) for attr, name in optional_ints.items() if env.get(name)}
        )
        return cls(**values)

    def period(self, monitor: Monitor) -> timedelta:
        minutes = self.drift_period_minutes if monitor == "drift" else self.quality_period_minutes
        return timedelta(minutes=minutes)


@dataclass(frozen=True)
class MonitorRun:
    """What one invocation did: started a job, or skipped the window and why."""

    monitor: Monitor
    status: Literal["started", "already-started", "skipped"]
    window_start: datetime
    window_end: datetime
    job_name: str | None = None
    reason: str | None = None
    captured_files: int = 0
    # Set when the gap since the last run exceeded max_window_hours: where it really began.
    uncovered_since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uncovered_since": self.uncovered_since.isoformat() if self.uncovered_since else None,
            "monitor": self.monitor,
            "status": self.status,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "job_name": self.job_name,
            "reason": self.reason,
            "captured_files": self.captured_files,
        }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler target)."""
    import boto3

    config = MonitorJobConfig.from_environment()
    if event.get("heartbeat"):
        return heartbeat(
            config,
            now=datetime.now(UTC),
            dynamodb=boto3.client("dynamodb"),
            cloudwatch=boto3.client("cloudwatch"),
            namespace=os.environ.get("METRIC_NAMESPACE", "MLOps"),
            monitors=tuple(parse_monitor(m) for m in event.get("monitors", MONITORS)),
        )
    monitor = parse_monitor(event.get("monitor"))
    scheduled = (
        parse_time(event.get("scheduled_time"))
        if event.get("scheduled_time")
        else datetime.now(UTC)
    )
    run = start_monitor_run(
        config,
        monitor=monitor,
        scheduled_time=scheduled,
        s3=boto3.client("s3"),
        sagemaker=boto3.client("sagemaker"),
        ssm=boto3.client("ssm"),
        dynamodb=boto3.client("dynamodb"),
    )
    logger.info("monitor run: %s", run.to_dict())
    return run.to_dict()


def parse_monitor(value: Any) -> Monitor:
    if value not in MONITORS:
        raise ValueError(f"event.monitor must be one of {MONITORS}, got {value!r}")
    return value  # type: ignore[no-any-return]


def parse_time(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"scheduled_time {value!r} is not an ISO 8601 time") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def start_monitor_run(
    config: MonitorJobConfig,
    *,
    monitor: Monitor,
    scheduled_time: datetime,
    s3: Any,
    sagemaker: Any,
    ssm: Any,
    dynamodb: Any,
) -> MonitorRun:
    """Start ``monitor``'s job for the hours since its last run, or say why not."""
    window_end = scheduled_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    watermark_key = f"watermark#{config.endpoint_name}#{monitor}"
    last_end = _read_watermark(dynamodb, config.state_table, watermark_key)
    window_start = last_end if last_end else window_end - config.period(monitor)
    earliest = window_end - timedelta(hours=config.max_window_hours)
    uncovered_since = None
    if window_start < earliest:
        uncovered_since, window_start = window_start, earliest
        logger.warning(
            "%s monitor: %s to %s is longer than max_window_hours (%d); analysing only %s to %s",
            monitor,
            uncovered_since,
            window_end,
            config.max_window_hours,
            window_start,
            window_end,
        )
    if window_start >= window_end:
        return MonitorRun(
            monitor, "skipped", window_start, window_end, reason="window already covered"
        )

    def skip(reason: str, files: int = 0) -> MonitorRun:
        # An empty window stays analysed: the next run starts after it rather than re-reading it.
        _write_watermark(dynamodb, config.state_table, watermark_key, window_end)
        # Nothing to analyse is a completed run for the heartbeat: the monitor is alive.
        record_completion(dynamodb, config.state_table, config.endpoint_name, monitor, window_end)
        logger.info("%s monitor skipped %s..%s: %s", monitor, window_start, window_end, reason)
        return MonitorRun(
            monitor,
            "skipped",
            window_start,
            window_end,
            reason=reason,
            captured_files=files,
            uncovered_since=uncovered_since,
        )

    model_package_arn = ssm.get_parameter(Name=config.model_package_parameter)["Parameter"]["Value"]
    if model_package_arn == NO_MODEL:
        return skip("no model has been approved for this endpoint yet")

    capture_start = window_start
    if monitor == "quality":
        if not config.ground_truth_s3_uri:
            raise ValueError("the quality monitor needs GROUND_TRUTH_S3_URI")
        capture_start = window_start - timedelta(hours=config.label_delay_hours)
    capture_root = (
        f"{config.capture_s3_uri.rstrip('/')}/{config.endpoint_name}/{config.variant_name}"
    )
    captured = list_hourly_objects(s3, capture_root, capture_start, window_end)
    if not captured:
        return skip("no captured data in the window")
    labels: list[str] = []
    if monitor == "quality":
        labels = list_hourly_objects(s3, str(config.ground_truth_s3_uri), window_start, window_end)
        if not labels:
            return skip("no ground truth arrived in the window", len(captured))

    run_uri = f"{config.reports_s3_uri.rstrip('/')}/{monitor}/{window_end:%Y/%m/%d/%H}"
    inputs = [
        _manifest_input(s3, "capture", captured, f"{run_uri}/manifests/capture.json", config),
        _s3_input("model", _model_data_url(sagemaker, model_package_arn)),
        _s3_input("settings", config.settings_s3_uri),
    ]
    if monitor == "quality":
        inputs.append(
            _manifest_input(s3, "labels", labels, f"{run_uri}/manifests/labels.json", config)
        )
    job_name = job_name_for(config.endpoint_name, monitor, window_end)
    run = MonitorRun(
        monitor,
        "started",
        window_start,
        window_end,
        job_name=job_name,
        captured_files=len(captured),
        uncovered_since=uncovered_since,
    )
    bucket, key = split_s3_uri(f"{run_uri}/window.json")
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps({**run.to_dict(), "max_window_hours": config.max_window_hours}).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=config.kms_key_arn,
    )
    try:
        sagemaker.create_processing_job(
            ProcessingJobName=job_name,
            RoleArn=config.role_arn,
            AppSpecification={
                "ImageUri": config.image_uri,
                "ContainerEntrypoint": monitor_command(
                    monitor, settings_file=_basename(config.settings_s3_uri)
                ),
            },
            ProcessingInputs=inputs,
            ProcessingOutputConfig={
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {
                            "S3Uri": f"{run_uri}/report",
                            "LocalPath": OUTPUT_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": config.kms_key_arn,
            },
            ProcessingResources={
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": config.instance_type,
                    "VolumeSizeInGB": config.volume_size_gb,
                    "VolumeKmsKeyId": config.kms_key_arn,
                }
            },
            StoppingCondition={"MaxRuntimeInSeconds": config.max_runtime_seconds},
            # The job reads and writes through SageMaker's S3 channels only.
            NetworkConfig={"EnableNetworkIsolation": True},
            Environment={
                "MLOPS_MONITOR": monitor,
                "MLOPS_ENDPOINT": config.endpoint_name,
                "MLOPS_MODEL_PACKAGE": model_package_arn,
                "MLOPS_WINDOW_START": window_start.isoformat(),
                "MLOPS_WINDOW_END": window_end.isoformat(),
            },
            Tags=[
                {"Key": k, "Value": v} for k, v in {**config.tags, "mlops:monitor": monitor}.items()
            ],
        )
    except sagemaker.exceptions.ResourceInUse:
        run = replace(run, status="already-started")
    _write_watermark(dynamodb, config.state_table, watermark_key, window_end)
    return run


def monitor_command(monitor: Monitor, *, settings_file: str) -> list[str]:
    """The job's ContainerEntrypoint: the mlcore CLI in the one mlcore image."""
    settings = f"{INPUT_ROOT}/settings/{settings_file}"
    if monitor == "drift":
        return [
            "mlcore", "drift",
            "--baseline", f"{INPUT_ROOT}/model",
            "--current", f"{INPUT_ROOT}/capture",
            "--output", OUTPUT_DIR,
            "--settings", settings,
        ]  # fmt: skip
    return [
        "mlcore", "quality",
        "--capture", f"{INPUT_ROOT}/capture",
        "--labels", f"{INPUT_ROOT}/labels",
        "--model-dir", f"{INPUT_ROOT}/model",
        "--output", OUTPUT_DIR,
        "--settings", settings,
    ]  # fmt: skip


def job_name_for(endpoint_name: str, monitor: Monitor, window_end: datetime) -> str:
    """``<endpoint>-<monitor>-<yyyymmddhh>``, within SageMaker's 63 characters."""
    return f"{job_name_prefix(endpoint_name, monitor)}{window_end:%Y%m%d%H}"


def job_name_prefix(endpoint_name: str, monitor: Monitor) -> str:
    """What every job name of ``monitor`` starts with (the job-end rule matches on it)."""
    suffix = f"-{monitor}-"
    stamp = len("yyyymmddhh")
    return f"{endpoint_name[: 63 - len(suffix) - stamp].rstrip('-')}{suffix}"


def completion_key(endpoint_name: str, monitor: str) -> str:
    return f"completed#{endpoint_name}#{monitor}"


def record_completion(
    dynamodb: Any, table: str, endpoint_name: str, monitor: str, when: datetime
) -> None:
    """Note that a run of ``monitor`` completed (the heartbeat reads it)."""
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": completion_key(endpoint_name, monitor)},
            "at": {"S": when.astimezone(UTC).isoformat()},
            "kind": {"S": "completed"},
        },
    )


def heartbeat(
    config: MonitorJobConfig,
    *,
    now: datetime,
    dynamodb: Any,
    cloudwatch: Any,
    namespace: str,
    monitors: tuple[Monitor, ...] = MONITORS,
) -> dict[str, Any]:
    """Publish ``HoursSinceMonitorRun`` for each monitor; its alarm fires past two periods.

    Before a monitor's first completed run the clock starts at the first heartbeat (recorded
    as such), so a fresh deployment is not reported as dead.
    """
    from .metrics import heartbeat_metric_data, put_metrics

    ages: dict[str, float] = {}
    data = []
    for monitor in monitors:
        key = completion_key(config.endpoint_name, monitor)
        item = dynamodb.get_item(
            TableName=config.state_table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            dynamodb.put_item(
                TableName=config.state_table,
                Item={
                    "pk": {"S": key},
                    "at": {"S": now.isoformat()},
                    "kind": {"S": "clock-started"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            last = now
        else:
            last = parse_time(item["at"]["S"])
        ages[monitor] = max((now - last).total_seconds() / 3600, 0.0)
        data.extend(
            heartbeat_metric_data(
                endpoint_name=config.endpoint_name,
                monitor=monitor,
                hours=ages[monitor],
                timestamp=now,
            )
        )
    put_metrics(cloudwatch, namespace=namespace, data=data)
    return {"heartbeat": True, "hours_since_run": ages}


def list_hourly_objects(s3: Any, root_uri: str, start: datetime, end: datetime) -> list[str]:
    """S3 URIs of the objects in the hour folders ``root/yyyy/mm/dd/hh/`` from ``start`` to ``end``."""
    bucket, root = split_s3_uri(root_uri)
    paginator = s3.get_paginator("list_objects_v2")
    uris: list[str] = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        prefix = f"{root.rstrip('/')}/{hour:%Y/%m/%d/%H}/".lstrip("/")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            uris.extend(f"s3://{bucket}/{item['Key']}" for item in page.get("Contents", []))
        hour += _HOUR
    return uris


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"expected an s3://bucket/key URI, got {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _basename(uri: str) -> str:
    return split_s3_uri(uri)[1].rsplit("/", 1)[-1]


def _manifest_input(
    s3: Any, name: str, uris: list[str], manifest_uri: str, config: MonitorJobConfig
) -> dict[str, Any]:
    """A ProcessingInput reading exactly ``uris`` through a SageMaker manifest file."""
    buckets = {split_s3_uri(u)[0] for u in uris}
    if len(buckets) != 1:
        raise ValueError(f"a manifest's objects must share one bucket, got {sorted(buckets)}")
    bucket = buckets.pop()
    # Keys relative to the bucket root: the job sees the same yyyy/mm/dd/hh layout locally.
    manifest = [{"prefix": f"s3://{bucket}/"}, *(split_s3_uri(u)[1] for u in uris)]
    manifest_bucket, manifest_key = split_s3_uri(manifest_uri)
    s3.put_object(
        Bucket=manifest_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=config.kms_key_arn,
    )
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": manifest_uri,
            "LocalPath": f"{INPUT_ROOT}/{name}",
            "S3DataType": "ManifestFile",
            "S3InputMode": "File",
        },
    }


def _s3_input(name: str, uri: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{INPUT_ROOT}/{name}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
        },
    }


def _model_data_url(sagemaker: Any, model_package_arn: str) -> str:
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    urls = [c["ModelDataUrl"] for c in containers if c.get("ModelDataUrl")]
    if not urls:
        raise ValueError(
            f"model package {model_package_arn} names no ModelDataUrl; the monitors read the "
            "drift baseline from the model artifact"
        )
    return str(urls[0])


def _read_watermark(dynamodb: Any, table: str, key: str) -> datetime | None:
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get(
        "Item"
    )
    return parse_time(item["window_end"]["S"]) if item else None


def _write_watermark(dynamodb: Any, table: str, key: str, window_end: datetime) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={"pk": {"S": key}, "window_end": {"S": window_end.isoformat()}},
    )
