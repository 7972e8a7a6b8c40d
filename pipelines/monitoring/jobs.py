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
  the baseline saved in the served model's artifact, or, with ``drift.reference.mode``
  ``previous_window`` or ``same_period_last_year``, against the captured data of the
  window of the same length just before, or ``seasonal_offset_days`` earlier (given to the
  job as a second manifest, ``reference``; see :func:`reference_window`). The engine is
  ``monitoring.engine``: the streaming engine in the one mlcore image, or a SageMaker
  PySpark processing job (:mod:`pipelines.monitoring.spark`) on ``spark_instance_count``
  instances; ``auto`` picks Spark when the window's capture exceeds
  ``spark_min_capture_mb`` MiB (summed from the S3 listing);
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
_MIB = 1024 * 1024
ReferenceMode = Literal["training", "same_period_last_year", "previous_window"]
REFERENCE_MODES: tuple[ReferenceMode, ...] = (
    "training",
    "same_period_last_year",
    "previous_window",
)
Engine = Literal["exact", "streaming", "spark"]
ENGINE_SETTINGS = ("streaming", "spark", "auto")
# Stands in for a reference window that holds no capture: SageMaker cannot give a job an
# input with no objects, and mlcore grades an empty reference "insufficient_data".
EMPTY_REFERENCE_FILE = "no-capture-in-reference-window.jsonl"


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
    # drift.reference in mlops.yaml (the same file as the settings artifact, read at synth).
    reference_mode: ReferenceMode = "training"
    seasonal_offset_days: int = 364
    # monitoring.engine and spark_min_capture_mb in mlops.yaml; the cluster from cdk.json.
    drift_engine: Literal["streaming", "spark", "auto"] = "streaming"
    spark_min_capture_mb: float = 2048
    spark_image_uri: str | None = None
    spark_instance_count: int = 2
    spark_instance_type: str = "ml.m5.xlarge"
    # A stage with a network: the jobs run in these subnets and security groups (none: no VPC).
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reference_mode not in REFERENCE_MODES:
            raise ValueError(
                f"REFERENCE_MODE must be one of {REFERENCE_MODES} (drift.reference.mode), got "
                f"{self.reference_mode!r}"
            )
        if self.drift_engine not in ENGINE_SETTINGS:
            raise ValueError(
                f"DRIFT_ENGINE must be one of {ENGINE_SETTINGS} (monitoring.engine), got "
                f"{self.drift_engine!r}"
            )
        if self.drift_engine != "streaming" and not self.spark_image_uri:
            raise ValueError(
                f"monitoring.engine {self.drift_engine!r} runs Spark jobs: the starter needs "
                "SPARK_IMAGE_URI (set by the monitoring construct when the engine is spark or auto)"
            )

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
        optional_text = {
            "instance_type": "INSTANCE_TYPE",
            "variant_name": "VARIANT_NAME",
            "reference_mode": "REFERENCE_MODE",
            "drift_engine": "DRIFT_ENGINE",
            "spark_image_uri": "SPARK_IMAGE_URI",
            "spark_instance_type": "SPARK_INSTANCE_TYPE",
        }
        values.update({attr: env[name] for attr, name in optional_text.items() if env.get(name)})
        values["ground_truth_s3_uri"] = env.get("GROUND_TRUTH_S3_URI") or None
        optional_ints = {
            "drift_period_minutes": "DRIFT_PERIOD_MINUTES",
            "quality_period_minutes": "QUALITY_PERIOD_MINUTES",
            "max_window_hours": "MAX_WINDOW_HOURS",
            "volume_size_gb": "VOLUME_SIZE_GB",
            "label_delay_hours": "LABEL_DELAY_HOURS",
            "max_runtime_seconds": "MAX_RUNTIME_SECONDS",
            "seasonal_offset_days": "SEASONAL_OFFSET_DAYS",
            "spark_instance_count": "SPARK_INSTANCE_COUNT",
        }
        values.update(
            {attr: int(env[name]) for attr, name in optional_ints.items() if env.get(name)}
        )
        if env.get("SPARK_MIN_CAPTURE_MB"):
            values["spark_min_capture_mb"] = float(env["SPARK_MIN_CAPTURE_MB"])
        for attr, name in (
            ("subnet_ids", "SUBNET_IDS"),
            ("security_group_ids", "SECURITY_GROUP_IDS"),
        ):
            values[attr] = tuple(part for part in env.get(name, "").split(",") if part)
        if bool(values["subnet_ids"]) != bool(values["security_group_ids"]):
            raise ValueError(
                "the monitor job starter needs both SUBNET_IDS and SECURITY_GROUP_IDS (a stage "
                "with a network) or neither; the function's environment was changed by hand?"
            )
        return cls(**values)

    def period(self, monitor: Monitor) -> timedelta:
        minutes = self.drift_period_minutes if monitor == "drift" else self.quality_period_minutes
        return timedelta(minutes=minutes)


@dataclass(frozen=True)
class ReferencePlan:
    """The reference a drift window is compared with: the training baseline, or captured data."""

    mode: ReferenceMode
    window_start: datetime | None = None
    window_end: datetime | None = None  # exclusive, as the current window's
    captured_files: int = 0
    manifest_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "captured_files": self.captured_files,
            "manifest": self.manifest_uri,
        }


def reference_window(
    mode: ReferenceMode, start: datetime, end: datetime, *, seasonal_offset_days: int
) -> tuple[datetime, datetime]:
    """``[start, end)`` of the captured data a window ``[start, end)`` is compared with.

    The same rule as ``mlcore.drift.windows.reference_window``, over whole hours:
    ``previous_window`` is the window of the same length ending where this one starts;
    ``same_period_last_year`` is this window ``seasonal_offset_days`` earlier.
    """
    if mode == "previous_window":
        return start - (end - start), start
    if mode == "same_period_last_year":
        offset = timedelta(days=seasonal_offset_days)
        return start - offset, end - offset
    raise ValueError(f"the {mode!r} reference is the training baseline: it has no window")


def choose_engine(config: MonitorJobConfig, captured_bytes: int) -> tuple[Engine, str]:
    """The drift engine for a window holding ``captured_bytes`` of capture, and why."""
    if config.drift_engine == "auto":
        threshold = config.spark_min_capture_mb * _MIB
        if captured_bytes > threshold:
            return "spark", (
                f"monitoring.engine auto: {captured_bytes / _MIB:.1f} MiB captured, more than "
                f"spark_min_capture_mb ({config.spark_min_capture_mb:g})"
            )
        return "streaming", (
            f"monitoring.engine auto: {captured_bytes / _MIB:.1f} MiB captured, not more than "
            f"spark_min_capture_mb ({config.spark_min_capture_mb:g})"
        )
    return config.drift_engine, f"monitoring.engine {config.drift_engine}"


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
    # The drift engine the job runs, and why (the setting, or the rule that overrode it).
    engine: Engine | None = None
    engine_reason: str | None = None
    captured_bytes: int = 0
    # What the drift window was compared with (drift.reference.mode) and the capture it held.
    reference: ReferencePlan | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uncovered_since": self.uncovered_since.isoformat() if self.uncovered_since else None,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "captured_bytes": self.captured_bytes,
            "reference": self.reference.to_dict() if self.reference else None,
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
    scheduled_time: str | None = event.get("scheduled_time")
    scheduled = parse_time(scheduled_time) if scheduled_time else datetime.now(UTC)
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
    listed = list_hourly_sizes(s3, capture_root, capture_start, window_end)
    captured = [uri for uri, _ in listed]
    if not captured:
        return skip("no captured data in the window")
    labels: list[str] = []
    if monitor == "quality":
        labels = list_hourly_objects(s3, str(config.ground_truth_s3_uri), window_start, window_end)
        if not labels:
            return skip("no ground truth arrived in the window", len(captured))

    run_uri = f"{config.reports_s3_uri.rstrip('/')}/{monitor}/{window_end:%Y/%m/%d/%H}"
    settings_file = _basename(config.settings_s3_uri)
    model_input = _s3_input("model", _model_data_url(sagemaker, model_package_arn))
    settings_input = _s3_input("settings", config.settings_s3_uri)
    captured_bytes = sum(size for _, size in listed)
    engine: Engine | None = None
    engine_reason: str | None = None
    reference: ReferencePlan | None = None
    if monitor == "quality":
        inputs = [
            _manifest_input(s3, "capture", captured, f"{run_uri}/manifests/capture.json", config),
            model_input,
            settings_input,
            _manifest_input(s3, "labels", labels, f"{run_uri}/manifests/labels.json", config),
        ]
        command = monitor_command("quality", settings_file=settings_file)
    else:
        engine, engine_reason = choose_engine(config, captured_bytes)
        reference, reference_input = _reference_input(
            s3, config, capture_root, window_start, window_end, run_uri
        )
        if reference.mode != "training" and reference.captured_files == 0:
            # No reference row: no statistic is computed, and mlcore's exact engine grades the
            # window insufficient_data after counting its rows. The streaming engine refuses
            # an empty reference ("a baseline needs data to describe"), so the window is not
            # given to it. With a reference mode, every engine reads the current window into
            # memory (mlcore.drift.cli reads it to place the window), so this costs the same.
            engine_reason = (
                f"{engine_reason}; the {reference.mode} reference window holds no capture, so "
                "the exact engine grades the window (insufficient data)"
            )
            engine = "exact"
        inputs = [model_input, settings_input]
        if engine != "spark":
            # Spark reads the capture from S3 itself (every node its share of the files).
            inputs.insert(
                0,
                _manifest_input(
                    s3, "capture", captured, f"{run_uri}/manifests/capture.json", config
                ),
            )
        if reference_input is not None:
            inputs.append(reference_input)
        command = drift_command(
            engine,
            settings_file=settings_file,
            reference=reference,
            window_start=window_start,
            window_end=window_end,
            current_uri=spark_current_uri(captured) if engine == "spark" else None,
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
        engine=engine,
        engine_reason=engine_reason,
        captured_bytes=captured_bytes,
        reference=reference,
    )
    bucket, key = split_s3_uri(f"{run_uri}/window.json")
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps({**run.to_dict(), "max_window_hours": config.max_window_hours}).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=config.kms_key_arn,
    )
    request = processing_job_request(
        config,
        job_name=job_name,
        command=command,
        inputs=inputs,
        report_uri=f"{run_uri}/report",
        spark=engine == "spark",
        environment={
            "MLOPS_MONITOR": monitor,
            "MLOPS_ENDPOINT": config.endpoint_name,
            "MLOPS_MODEL_PACKAGE": model_package_arn,
            "MLOPS_WINDOW_START": window_start.isoformat(),
            "MLOPS_WINDOW_END": window_end.isoformat(),
            **({"MLOPS_DRIFT_ENGINE": engine} if engine else {}),
            **({"MLOPS_REFERENCE_MODE": reference.mode} if reference else {}),
        },
        tags={**config.tags, "mlops:monitor": monitor},
    )
    try:
        sagemaker.create_processing_job(**request)
    except sagemaker.exceptions.ResourceInUse:
        run = replace(run, status="already-started")
    _write_watermark(dynamodb, config.state_table, watermark_key, window_end)
    return run


def processing_job_request(
    config: MonitorJobConfig,
    *,
    job_name: str,
    command: list[str],
    inputs: list[dict[str, Any]],
    report_uri: str,
    spark: bool,
    environment: dict[str, str],
    tags: dict[str, str],
) -> dict[str, Any]:
    """The CreateProcessingJob request of one monitor run (the mlcore image, or Spark's)."""
    if spark:
        image, count, instance_type = (
            str(config.spark_image_uri),
            config.spark_instance_count,
            config.spark_instance_type,
        )
        # Spark reads the window's capture from S3 through EMRFS on every node, which
        # network isolation forbids; what crosses between the nodes is encrypted.
        network: dict[str, Any] = {
            "EnableNetworkIsolation": False,
            "EnableInterContainerTrafficEncryption": True,
        }
    else:
        image, count, instance_type = config.image_uri, 1, config.instance_type
        # The job reads and writes through SageMaker's S3 channels only.
        network = {"EnableNetworkIsolation": True}
    if config.subnet_ids:
        # A stage with a network: the job's instances are in its private subnets; Spark's
        # reads of S3 go through the VPC's S3 endpoint.
        network = {
            **network,
            "EnableInterContainerTrafficEncryption": True,
            "VpcConfig": {
                "Subnets": list(config.subnet_ids),
                "SecurityGroupIds": list(config.security_group_ids),
            },
        }
    return {
        "ProcessingJobName": job_name,
        "RoleArn": config.role_arn,
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": command},
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": report_uri,
                        "LocalPath": OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": config.kms_key_arn,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": config.volume_size_gb,
                "VolumeKmsKeyId": config.kms_key_arn,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_runtime_seconds},
        "NetworkConfig": network,
        "Environment": environment,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def _reference_input(
    s3: Any,
    config: MonitorJobConfig,
    capture_root: str,
    window_start: datetime,
    window_end: datetime,
    run_uri: str,
) -> tuple[ReferencePlan, dict[str, Any] | None]:
    """The reference of ``drift.reference.mode`` and, for a windowed one, its job input."""
    if config.reference_mode == "training":
        return ReferencePlan("training"), None
    start, end = reference_window(
        config.reference_mode,
        window_start,
        window_end,
        seasonal_offset_days=config.seasonal_offset_days,
    )
    files = list_hourly_objects(s3, capture_root, start, end)
    manifest_uri = f"{run_uri}/manifests/reference.json"
    if not files:
        # An empty capture file: the job reads zero reference rows and says so in its grade.
        bucket, key = split_s3_uri(f"{run_uri}/reference/{EMPTY_REFERENCE_FILE}")
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=b"",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=config.kms_key_arn,
        )
        logger.warning(
            "drift monitor: the %s reference window %s..%s holds no capture",
            config.reference_mode,
            start,
            end,
        )
        listing = [f"s3://{bucket}/{key}"]
    else:
        listing = files
    plan = ReferencePlan(config.reference_mode, start, end, len(files), manifest_uri)
    return plan, _manifest_input(s3, "reference", listing, manifest_uri, config)


def drift_command(
    engine: Engine,
    *,
    settings_file: str,
    reference: ReferencePlan | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    current_uri: str | None = None,
) -> list[str]:
    """The drift job's ContainerEntrypoint for ``engine`` and reference.

    ``exact`` and ``streaming`` run the mlcore CLI in the mlcore image over the capture
    manifest's files; ``spark`` runs ``smspark-submit`` with the Spark app baked into the
    Spark monitor image (:mod:`pipelines.monitoring.spark`), reading ``current_uri``.
    """
    settings = f"{INPUT_ROOT}/settings/{settings_file}"
    if engine == "spark":
        if reference is not None and reference.mode != "training":
            # mlcore's settings refuse this pair; a hand-edited function environment may not.
            raise ValueError(
                f"the Spark drift engine compares with the training baseline only, not the "
                f"{reference.mode} reference: set drift.reference.mode training or "
                "monitoring.engine streaming, and deploy again"
            )
        if current_uri is None:
            raise ValueError("the Spark drift job reads the window from S3: give current_uri")
        from .spark import SPARK_APP, SPARK_SUBMIT

        head = [SPARK_SUBMIT, SPARK_APP]
        current = current_uri
    else:
        head = ["mlcore", "drift"]
        current = f"{INPUT_ROOT}/capture"
    command = [
        *head,
        "--baseline", f"{INPUT_ROOT}/model",
        "--current", current,
        "--output", OUTPUT_DIR,
        "--settings", settings,
    ]  # fmt: skip
    if engine == "streaming":
        command.append("--streaming")
    if reference is not None:
        command += ["--reference-mode", reference.mode]
        if reference.mode != "training":
            if window_start is None or window_end is None:
                raise ValueError(f"the {reference.mode} reference needs the current window")
            command += [
                "--reference", f"{INPUT_ROOT}/reference",
                # The current window as the starter cut it (not the span of its rows), so the
                # reference window mlcore selects is the one whose capture the job received.
                "--window-start", window_start.isoformat(),
                "--window-end", window_end.isoformat(),
            ]  # fmt: skip
    return command


def spark_current_uri(uris: list[str]) -> str:
    """One URI for Spark's reader naming exactly the hour folders of ``uris``.

    One folder is its own prefix; several are a Hadoop glob alternation
    (``s3://bucket/root/{2026/03/02/07,2026/03/02/08}/``), which Spark's file sources
    expand when they list the input.
    """
    folders = sorted({uri.rsplit("/", 1)[0] for uri in uris})
    if len(folders) == 1:
        return f"{folders[0]}/"
    common = folders[0]
    while not all(f.startswith(common + "/") for f in folders):
        common = common.rsplit("/", 1)[0]
    tails = ",".join(f[len(common) + 1 :] for f in folders)
    return f"{common}/{{{tails}}}/"


def monitor_command(monitor: Monitor, *, settings_file: str) -> list[str]:
    """The job's ContainerEntrypoint in the one mlcore image: drift (streaming, against the
    training baseline; :func:`drift_command` for the other engines and references) or quality."""
    settings = f"{INPUT_ROOT}/settings/{settings_file}"
    if monitor == "drift":
        return drift_command(
            "streaming", settings_file=settings_file, reference=ReferencePlan("training")
        )
    return [
        "mlcore", "quality",
        "--current", f"{INPUT_ROOT}/capture",
        "--labels", f"{INPUT_ROOT}/labels",
        "--baseline", f"{INPUT_ROOT}/model",
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
    return [uri for uri, _ in list_hourly_sizes(s3, root_uri, start, end)]


def list_hourly_sizes(
    s3: Any, root_uri: str, start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """Like :func:`list_hourly_objects`, with each object's size in bytes."""
    bucket, root = split_s3_uri(root_uri)
    paginator = s3.get_paginator("list_objects_v2")
    found: list[tuple[str, int]] = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        prefix = f"{root.rstrip('/')}/{hour:%Y/%m/%d/%H}/".lstrip("/")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend(
                (f"s3://{bucket}/{item['Key']}", int(item.get("Size", 0)))
                for item in page.get("Contents", [])
            )
        hour += _HOUR
    return found


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
