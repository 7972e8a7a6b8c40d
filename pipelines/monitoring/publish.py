"""Publish a finished monitor job's report as CloudWatch metrics.

An EventBridge rule on "SageMaker Processing Job State Change" invokes :func:`handler`
when a monitor job (named by :func:`pipelines.monitoring.jobs.job_name_for`) ends.
A completed job's ``drift_report.json`` or ``quality_report.json`` becomes metrics
(:mod:`pipelines.monitoring.metrics`); a failed or stopped job becomes
``MonitorJobFailed``, which has its own alarm, so a broken monitor is not mistaken
for a healthy model.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from .jobs import OUTPUT_DIR, record_completion, split_s3_uri
from .metrics import drift_metric_data, job_failed_metric_data, put_metrics, quality_metric_data

logger = logging.getLogger(__name__)

REPORT_FILES = {"drift": "drift_report.json", "quality": "quality_report.json"}
_FAILED = {"Failed", "Stopped"}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (EventBridge target)."""
    import boto3

    namespace = os.environ.get("METRIC_NAMESPACE")
    if not namespace:
        raise ValueError("the metric publisher needs the METRIC_NAMESPACE environment variable")
    job_name = event.get("detail", {}).get("ProcessingJobName")
    if not job_name:
        raise ValueError(f"expected a Processing Job State Change event, got keys {sorted(event)}")
    return publish_job_metrics(
        job_name,
        namespace=namespace,
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        cloudwatch=boto3.client("cloudwatch"),
        dynamodb=boto3.client("dynamodb"),
        state_table=os.environ.get("STATE_TABLE"),
    )


def publish_job_metrics(
    job_name: str,
    *,
    namespace: str,
    sagemaker: Any,
    s3: Any,
    cloudwatch: Any,
    dynamodb: Any = None,
    state_table: str | None = None,
) -> dict[str, Any]:
    """Read the job's report (or its failure) and publish the metrics; return a summary.

    With ``state_table``, a completed job is recorded for the heartbeat, once its metrics are
    out: a run whose report cannot be published does not count as completed.
    """
    job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
    environment = job.get("Environment", {})
    monitor, endpoint = environment.get("MLOPS_MONITOR"), environment.get("MLOPS_ENDPOINT")
    if monitor not in REPORT_FILES or not endpoint:
        raise ValueError(
            f"processing job {job_name} is not a monitor job (no MLOPS_MONITOR/MLOPS_ENDPOINT "
            "in its environment); check the rule's job-name filter"
        )
    status = job["ProcessingJobStatus"]
    timestamp = job.get("ProcessingEndTime") or datetime.now(UTC)
    if status in _FAILED:
        logger.error(
            "%s monitor job %s %s: %s", monitor, job_name, status, job.get("FailureReason")
        )
        data = job_failed_metric_data(endpoint_name=endpoint, monitor=monitor, timestamp=timestamp)
        put_metrics(cloudwatch, namespace=namespace, data=data)
        return {"job": job_name, "status": status, "published": len(data)}
    if status != "Completed":
        return {"job": job_name, "status": status, "published": 0}
    report = _read_report(s3, job, REPORT_FILES[monitor])
    make = drift_metric_data if monitor == "drift" else quality_metric_data
    data = make(report, endpoint_name=endpoint, timestamp=timestamp)
    put_metrics(cloudwatch, namespace=namespace, data=data)
    if state_table:
        record_completion(dynamodb, state_table, endpoint, monitor, timestamp)
    return {"job": job_name, "status": status, "published": len(data)}


def _read_report(s3: Any, job: dict[str, Any], file_name: str) -> dict[str, Any]:
    outputs = [
        o["S3Output"]
        for o in job.get("ProcessingOutputConfig", {}).get("Outputs", [])
        if o.get("S3Output", {}).get("LocalPath") == OUTPUT_DIR
    ]
    if not outputs:
        raise ValueError(f"job {job['ProcessingJobName']} has no output at {OUTPUT_DIR}")
    bucket, prefix = split_s3_uri(outputs[0]["S3Uri"])
    key = f"{prefix.rstrip('/')}/{file_name}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise ValueError(f"the monitor job wrote no s3://{bucket}/{key}") from exc
    document: dict[str, Any] = json.loads(body)
    return document
