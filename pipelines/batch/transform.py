"""Start one scheduled batch run: SageMaker Batch Transform over the files that arrived since the last.

EventBridge Scheduler invokes :func:`handler` on the environment's batch schedule with
``{"scheduled_time": "<aws.scheduler.scheduled-time>"}``. A run:

1. reads the environment's model pointer (the SSM parameter the endpoint is deployed from);
   ``none`` (nothing released yet) skips the run;
2. checks that the release created the batch model for that package
   (:func:`batch_model_name`; the serving stack creates it from the same pointer): a
   pointer ahead of its model (a release still updating the stack, or one that failed) is
   an error, so the run is retried and the failure reaches the alarm, never a run on an
   older model than the pointer names;
3. lists the objects under the input prefix last modified before the scheduled time and
   since ``lookback_hours`` before the previous run's end (the watermark, a DynamoDB item;
   the first run takes everything there), leaves out those an earlier run scored (a DynamoDB
   item per scored key and ETag), and writes the rest to a manifest, so the job scores
   exactly those files. The lookback catches an object stamped before the previous run but
   not listed by it: S3 gives an object the time its upload began, so a long upload that
   began before a run and completed after it is older than that run's end;
4. starts the transform job: ``text/csv`` split by line and batched up to
   ``MaxPayloadInMB``; the id columns are cut off before the model sees a row
   (``DataProcessing.InputFilter``) and every input row is written back with the model's
   outputs appended (``JoinSource: Input``), under ``<output>/<run>/scored/``, encrypted
   with the environment's key, on volumes encrypted with it.

Starting the same run twice is harmless: the job name is the run's, and SageMaker refuses a
second job of that name. A run with no new files advances the watermark and starts nothing.
Every run that ends without an error is recorded; an hourly ``{"heartbeat": true}`` invocation
publishes ``HoursSinceBatchRun`` from that record, which alarms after two schedule periods.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

logger = logging.getLogger(__name__)

NO_MODEL = "none"
CSV = "text/csv"
# SageMaker's limit on a transform job's (and a model's) name.
_NAME_LIMIT = 63
_STAMP = "%Y%m%d%H%M%S"
# How often a DynamoDB batch call is repeated for what it left unprocessed (throttling).
_BATCH_ATTEMPTS = 8


@dataclass(frozen=True)
class BatchJobConfig:
    """Where a batch run reads and writes and how its job runs. Built from the Lambda's environment."""

    name_prefix: str
    model_package_parameter: str
    bucket: str
    input_prefix: str
    output_prefix: str
    state_table: str
    kms_key_arn: str
    id_column_count: int = 0
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    max_payload_mb: int = 6
    max_concurrent_transforms: int = 1
    invocation_timeout_seconds: int = 60
    lookback_hours: int = 48
    metric_namespace: str = "MLOps"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        longest = len(job_name_for(self.name_prefix, datetime(2000, 1, 1, tzinfo=UTC)))
        if longest > _NAME_LIMIT:
            raise ValueError(
                f"NAME_PREFIX {self.name_prefix!r} makes job names longer than SageMaker's "
                f"{_NAME_LIMIT} characters; use a shorter project or stage name"
            )
        if self.lookback_hours < 0:
            raise ValueError(f"LOOKBACK_HOURS must be 0 or more, got {self.lookback_hours}")
        if self.id_column_count < 0:
            raise ValueError(f"ID_COLUMN_COUNT must be 0 or more, got {self.id_column_count}")

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> BatchJobConfig:
        env = dict(os.environ if environ is None else environ)
        required = {
            "name_prefix": "NAME_PREFIX",
            "model_package_parameter": "MODEL_PACKAGE_PARAMETER",
            "bucket": "BUCKET",
            "input_prefix": "INPUT_PREFIX",
            "output_prefix": "OUTPUT_PREFIX",
            "state_table": "STATE_TABLE",
            "kms_key_arn": "KMS_KEY_ARN",
        }
        missing = [name for name in required.values() if not env.get(name)]
        if missing:
            raise ValueError(f"the batch job starter needs environment variables {missing}")
        values: dict[str, Any] = {attr: env[name] for attr, name in required.items()}
        for attr, name in (
            ("instance_type", "INSTANCE_TYPE"),
            ("metric_namespace", "METRIC_NAMESPACE"),
        ):
            if env.get(name):
                values[attr] = env[name]
        numbers = {
            "id_column_count": "ID_COLUMN_COUNT",
            "instance_count": "INSTANCE_COUNT",
            "max_payload_mb": "MAX_PAYLOAD_MB",
            "max_concurrent_transforms": "MAX_CONCURRENT_TRANSFORMS",
            "invocation_timeout_seconds": "INVOCATION_TIMEOUT_SECONDS",
            "lookback_hours": "LOOKBACK_HOURS",
        }
        values.update({attr: int(env[name]) for attr, name in numbers.items() if env.get(name)})
        return cls(**values)


@dataclass(frozen=True)
class BatchRun:
    """What one invocation did: started a job, or skipped the run and why."""

    status: Literal["started", "already-started", "skipped"]
    window_start: datetime | None
    window_end: datetime
    job_name: str | None = None
    model_package_arn: str | None = None
    model_name: str | None = None
    files: int = 0
    bytes: int = 0
    reason: str | None = None
    output_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat(),
            "job_name": self.job_name,
            "model_package_arn": self.model_package_arn,
            "model_name": self.model_name,
            "files": self.files,
            "bytes": self.bytes,
            "reason": self.reason,
            "output_uri": self.output_uri,
        }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler target)."""
    import boto3

    config = BatchJobConfig.from_environment()
    if event.get("heartbeat"):
        return heartbeat(
            config,
            now=datetime.now(UTC),
            dynamodb=boto3.client("dynamodb"),
            cloudwatch=boto3.client("cloudwatch"),
        )
    scheduled = (
        parse_time(event["scheduled_time"]) if event.get("scheduled_time") else datetime.now(UTC)
    )
    run = start_batch_run(
        config,
        scheduled_time=scheduled,
        s3=boto3.client("s3"),
        sagemaker=boto3.client("sagemaker"),
        ssm=boto3.client("ssm"),
        dynamodb=boto3.client("dynamodb"),
    )
    logger.info("batch run: %s", run.to_dict())
    return run.to_dict()


def parse_time(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"scheduled_time {value!r} is not an ISO 8601 time") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def batch_model_name(name_prefix: str, model_package_arn: str) -> str:
    """``<prefix>-batch-v<version>``: the SageMaker model the serving stack creates for a
    versioned package (the same rule as its CloudFormation template; a test keeps them equal)."""
    version = model_package_version(model_package_arn)
    return f"{name_prefix}-batch-v{version}"


def model_package_version(model_package_arn: str) -> str:
    """The version of ``arn:...:model-package/<group>/<version>``."""
    parts = model_package_arn.split(":", 5)
    path = parts[5].split("/") if len(parts) == 6 else []
    if len(path) != 3 or path[0] != "model-package" or not path[2].isdigit():
        raise ValueError(
            f"the model pointer holds {model_package_arn!r}, not a versioned model package ARN "
            "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>); the release "
            "flow writes it: release a package again rather than editing the parameter"
        )
    return path[2]


def job_name_prefix(name_prefix: str) -> str:
    """What every batch job name of the environment starts with (the failure rule matches it)."""
    return f"{name_prefix}-batch-"


def job_name_for(name_prefix: str, window_end: datetime) -> str:
    return f"{job_name_prefix(name_prefix)}{window_end.astimezone(UTC):{_STAMP}}"


def start_batch_run(
    config: BatchJobConfig,
    *,
    scheduled_time: datetime,
    s3: Any,
    sagemaker: Any,
    ssm: Any,
    dynamodb: Any,
) -> BatchRun:
    """Start the transform job over the files that arrived since the last run, or say why not.

    A run that ends without an error (a job started, or nothing to do) is recorded for the
    heartbeat; one that raises is not, so the stale alarm sees runs that keep failing.
    """
    run = _start_batch_run(
        config,
        scheduled_time=scheduled_time,
        s3=s3,
        sagemaker=sagemaker,
        ssm=ssm,
        dynamodb=dynamodb,
    )
    dynamodb.put_item(
        TableName=config.state_table,
        Item={
            "pk": {"S": ran_key(config.name_prefix)},
            "at": {"S": datetime.now(UTC).isoformat()},
            "status": {"S": run.status},
        },
    )
    return run


def _start_batch_run(
    config: BatchJobConfig,
    *,
    scheduled_time: datetime,
    s3: Any,
    sagemaker: Any,
    ssm: Any,
    dynamodb: Any,
) -> BatchRun:
    window_end = scheduled_time.astimezone(UTC).replace(microsecond=0)
    watermark_key = f"watermark#{config.name_prefix}#batch"
    window_start = _read_watermark(dynamodb, config.state_table, watermark_key)
    if window_start is not None and window_start >= window_end:
        return BatchRun("skipped", window_start, window_end, reason="window already covered")

    package = ssm.get_parameter(Name=config.model_package_parameter)["Parameter"]["Value"]
    if package == NO_MODEL:
        # The files stay pending: the first run after a release scores them.
        return BatchRun(
            "skipped", window_start, window_end, reason="no model has been released here yet"
        )
    model_name = batch_model_name(config.name_prefix, package)
    _check_model(sagemaker, model_name, package)

    since = window_start - timedelta(hours=config.lookback_hours) if window_start else None
    candidates = list_new_objects(
        s3, config.bucket, config.input_prefix, after=since, before=window_end
    )
    scored = already_scored(dynamodb, config.state_table, config.name_prefix, candidates)
    listed = [(key, size) for key, size, etag in candidates if (key, etag) not in scored]
    if not listed:
        _write_watermark(dynamodb, config.state_table, watermark_key, window_end)
        return BatchRun(
            "skipped",
            window_start,
            window_end,
            model_package_arn=package,
            model_name=model_name,
            reason=f"no new files under s3://{config.bucket}/{config.input_prefix}/",
        )

    job_name = job_name_for(config.name_prefix, window_end)
    run_key = f"{config.output_prefix.rstrip('/')}/{window_end:%Y/%m/%d/%H%M%S}"
    manifest_key = f"{run_key}/manifest/manifest.json"
    output_uri = f"s3://{config.bucket}/{run_key}/scored"
    manifest = [{"prefix": f"s3://{config.bucket}/"}, *(key for key, _ in listed)]
    s3.put_object(
        Bucket=config.bucket,
        Key=manifest_key,
        Body=json.dumps(manifest).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=config.kms_key_arn,
    )
    request = transform_job_request(
        config,
        job_name=job_name,
        model_name=model_name,
        manifest_uri=f"s3://{config.bucket}/{manifest_key}",
        output_uri=output_uri,
        environment={
            "MLOPS_MODEL_PACKAGE": package,
            "MLOPS_WINDOW_START": window_start.isoformat() if window_start else "",
            "MLOPS_WINDOW_END": window_end.isoformat(),
        },
    )
    run = BatchRun(
        "started",
        window_start,
        window_end,
        job_name=job_name,
        model_package_arn=package,
        model_name=model_name,
        files=len(listed),
        bytes=sum(size for _, size in listed),
        output_uri=output_uri,
    )
    try:
        sagemaker.create_transform_job(**request)
    except sagemaker.exceptions.ResourceInUse:
        run = replace(run, status="already-started")
    chosen = {key for key, _ in listed}
    record_scored(
        dynamodb,
        config.state_table,
        config.name_prefix,
        [(key, etag) for key, _, etag in candidates if key in chosen],
        job_name=job_name,
    )
    _write_watermark(dynamodb, config.state_table, watermark_key, window_end)
    return run


HOURS_SINCE_BATCH_RUN = "HoursSinceBatchRun"


def ran_key(name_prefix: str) -> str:
    return f"ran#{name_prefix}#batch"


def heartbeat(
    config: BatchJobConfig, *, now: datetime, dynamodb: Any, cloudwatch: Any
) -> dict[str, Any]:
    """Publish ``HoursSinceBatchRun``; its alarm fires when runs stop or keep failing.

    Before the first run the clock starts at the first heartbeat (recorded as such), so a
    fresh deployment is not reported as stale.
    """
    key = ran_key(config.name_prefix)
    item = dynamodb.get_item(
        TableName=config.state_table, Key={"pk": {"S": key}}, ConsistentRead=True
    ).get("Item")
    if item is None:
        dynamodb.put_item(
            TableName=config.state_table,
            Item={"pk": {"S": key}, "at": {"S": now.isoformat()}, "status": {"S": "clock-started"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        last = now
    else:
        last = parse_time(item["at"]["S"])
    hours = max((now - last).total_seconds() / 3600, 0.0)
    cloudwatch.put_metric_data(
        Namespace=config.metric_namespace,
        MetricData=[
            {
                "MetricName": HOURS_SINCE_BATCH_RUN,
                "Dimensions": [{"Name": "EndpointName", "Value": config.name_prefix}],
                "Timestamp": now,
                "Value": hours,
                "Unit": "None",
            }
        ],
    )
    return {"heartbeat": True, "hours_since_run": hours}


def transform_job_request(
    config: BatchJobConfig,
    *,
    job_name: str,
    model_name: str,
    manifest_uri: str,
    output_uri: str,
    environment: dict[str, str],
) -> dict[str, Any]:
    """The CreateTransformJob request of one run."""
    # JSONPath over a CSV row: "$[2:]" is every column from the third on, "$" the whole row.
    input_filter = f"$[{config.id_column_count}:]" if config.id_column_count else "$"
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": config.max_concurrent_transforms,
        "MaxPayloadInMB": config.max_payload_mb,
        # Rows are batched into requests of up to MaxPayloadInMB: the serving container
        # scores a CSV body of many rows in one call.
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": config.invocation_timeout_seconds,
            "InvocationsMaxRetries": 1,
        },
        "Environment": environment,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest_uri}},
            "ContentType": CSV,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": CSV,
            "AssembleWith": "Line",
            "KmsKeyId": config.kms_key_arn,
        },
        "TransformResources": {
            "InstanceType": config.instance_type,
            "InstanceCount": config.instance_count,
            "VolumeKmsKeyId": config.kms_key_arn,
        },
        "DataProcessing": {
            "InputFilter": input_filter,
            # Each output line is its input row (ids included) with the model's outputs
            # (prediction[,score]) appended.
            "JoinSource": "Input",
            "OutputFilter": "$",
        },
        "Tags": [{"Key": k, "Value": v} for k, v in {**config.tags, "mlops:job": "batch"}.items()],
    }


def list_new_objects(
    s3: Any, bucket: str, prefix: str, *, after: datetime | None, before: datetime
) -> list[tuple[str, int, str]]:
    """(key, size, ETag) of the objects under ``prefix/`` last modified in ``[after, before)``.

    Folder markers and empty objects are left out: they hold no row to score.
    """
    paginator = s3.get_paginator("list_objects_v2")
    found: list[tuple[str, int, str]] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix.rstrip('/')}/"):
        for item in page.get("Contents", []):
            modified = item["LastModified"].astimezone(UTC)
            if item["Key"].endswith("/") or int(item.get("Size", 0)) == 0:
                continue
            if (after is None or modified >= after) and modified < before:
                found.append((item["Key"], int(item["Size"]), str(item.get("ETag", ""))))
    return sorted(found)


def scored_key(name_prefix: str, key: str) -> str:
    return f"scored#{name_prefix}#{key}"


def already_scored(
    dynamodb: Any, table: str, name_prefix: str, candidates: list[tuple[str, int, str]]
) -> set[tuple[str, str]]:
    """(key, ETag) of the candidates an earlier run scored (a changed object is scored again)."""
    found: set[tuple[str, str]] = set()
    keys = sorted({key for key, _, _ in candidates})
    for start in range(0, len(keys), 100):  # BatchGetItem reads up to 100 items
        request: dict[str, Any] = {
            table: {
                "Keys": [
                    {"pk": {"S": scored_key(name_prefix, k)}} for k in keys[start : start + 100]
                ],
                "ConsistentRead": True,
            }
        }
        for attempt in range(_BATCH_ATTEMPTS):
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(table, []):
                key = item["pk"]["S"].removeprefix(scored_key(name_prefix, ""))
                found.add((key, item["etag"]["S"]))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)  # throttled: back off, then read the rest
        else:
            raise RuntimeError(f"DynamoDB left keys of {table} unread after retries; run again")
    return found


def record_scored(
    dynamodb: Any,
    table: str,
    name_prefix: str,
    scored: list[tuple[str, str]],
    *,
    job_name: str,
) -> None:
    """Note that ``job_name`` scores these (key, ETag): later runs leave them out."""
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": scored_key(name_prefix, key)},
                    "etag": {"S": etag},
                    "job": {"S": job_name},
                }
            }
        }
        for key, etag in scored
    ]
    for start in range(0, len(items), 25):  # BatchWriteItem writes up to 25 items
        write: dict[str, Any] = {table: items[start : start + 25]}
        for attempt in range(_BATCH_ATTEMPTS):
            answer = dynamodb.batch_write_item(RequestItems=write)
            write = answer.get("UnprocessedItems") or {}
            if not write:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"DynamoDB left items of {table} unwritten after retries")


def _check_model(sagemaker: Any, model_name: str, package: str) -> None:
    try:
        model = sagemaker.describe_model(ModelName=model_name)
    except sagemaker.exceptions.ClientError as exc:
        if "Could not find model" not in str(exc):
            raise
        raise RuntimeError(
            f"the model pointer names {package}, but its batch model {model_name} does not "
            "exist: the release that set the pointer has not finished updating the serving "
            "stack, or it failed (see the release alarms). The run is retried; files wait."
        ) from exc
    served = [c.get("ModelPackageName") for c in model.get("Containers", [])]
    if model.get("PrimaryContainer"):
        served.append(model["PrimaryContainer"].get("ModelPackageName"))
    if package not in served:
        raise RuntimeError(
            f"batch model {model_name} was created from {served}, not from {package}, which "
            "the pointer names: refusing to score with another package"
        )


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
