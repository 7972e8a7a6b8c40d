"""Turn the monitors' reports into CloudWatch metrics, and publish them.

The reports are mlcore's: ``drift_report.json`` from ``mlcore drift`` and
``quality_report.json`` from ``mlcore quality``. The metric names here are the ones the
CDK monitoring construct alarms on and charts, so both import them from this module.

Every datum carries the ``EndpointName`` dimension; per-feature drift adds ``Feature``,
per-segment quality adds ``SliceColumn`` and ``SliceValue``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# Dataset level: 1 when the share of drifted features reaches drift.dataset_drift_share.
DATASET_DRIFT = "DatasetDrift"
SHARE_DRIFTED_FEATURES = "ShareDriftedFeatures"
DRIFTED_FEATURES = "DriftedFeatures"
PREDICTION_DRIFT = "PredictionDrift"
# Per feature (dimension Feature): 1 when drifted, and the primary test's statistic.
FEATURE_DRIFTED = "FeatureDrifted"
FEATURE_DRIFT_STATISTIC = "FeatureDriftStatistic"
CURRENT_ROWS = "MonitoredRows"
# Quality: one metric per model metric, prefixed, plus the breach flag and labelled rows.
QUALITY_PREFIX = "Live_"
QUALITY_BELOW_THRESHOLD = "QualityBelowThreshold"
LABELLED_ROWS = "LabelledRows"
MONITOR_JOB_FAILED = "MonitorJobFailed"
# Hours since the monitor last completed a run (dimension Monitor): the heartbeat.
HOURS_SINCE_MONITOR_RUN = "HoursSinceMonitorRun"
# Graded drift (the drift report's "grade"): 0 none, 1 moderate, 2 major; absent when the
# window held too little data, which DriftInsufficientData (1) says instead.
DRIFT_GRADE = "DriftGrade"
FEATURE_DRIFT_GRADE = "FeatureDriftGrade"
DRIFT_INSUFFICIENT_DATA = "DriftInsufficientData"
# mlcore.drift.grading.GRADE_LEVELS as floats. This Lambda's asset carries no mlcore
# (cdk/serving/functions.py), so the map is repeated here; a test holds the two equal.
GRADE_VALUES = {"none": 0.0, "moderate": 1.0, "major": 2.0}
INSUFFICIENT_DATA = "insufficient_data"
# PutMetricData takes at most 1000 data per call.
_BATCH = 1000


class CloudWatchClient(Protocol):
    def put_metric_data(self, **kwargs: Any) -> Any: ...


def quality_metric_name(metric: str) -> str:
    """The CloudWatch name of a live model metric, e.g. ``Live_auc``."""
    return f"{QUALITY_PREFIX}{metric}"


def drift_metric_data(
    report: Mapping[str, Any], *, endpoint_name: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """CloudWatch data for one ``drift_report.json`` document."""
    _require(report, ("dataset_drift", "share_drifted", "features", "current_rows"), "drift report")
    endpoint = [{"Name": "EndpointName", "Value": endpoint_name}]
    data = [
        _datum(DATASET_DRIFT, 1.0 if report["dataset_drift"] else 0.0, endpoint, timestamp),
        _datum(SHARE_DRIFTED_FEATURES, report["share_drifted"], endpoint, timestamp),
        _datum(
            DRIFTED_FEATURES,
            sum(1 for f in report["features"] if f["drifted"]),
            endpoint,
            timestamp,
            unit="Count",
        ),
        _datum(CURRENT_ROWS, report["current_rows"], endpoint, timestamp, unit="Count"),
    ]
    if report.get("prediction_drift") is not None:
        data.append(
            _datum(
                PREDICTION_DRIFT, 1.0 if report["prediction_drift"] else 0.0, endpoint, timestamp
            )
        )
    data.extend(_grade_data(report, DRIFT_GRADE, endpoint, timestamp, dataset=True))
    for feature in report["features"]:
        dims = [*endpoint, {"Name": "Feature", "Value": str(feature["name"])}]
        data.append(_datum(FEATURE_DRIFTED, 1.0 if feature["drifted"] else 0.0, dims, timestamp))
        data.extend(_grade_data(feature, FEATURE_DRIFT_GRADE, dims, timestamp, dataset=False))
        if feature.get("statistic") is not None:
            data.append(_datum(FEATURE_DRIFT_STATISTIC, feature["statistic"], dims, timestamp))
    return [d for d in data if d is not None]


def _grade_data(
    verdict: Mapping[str, Any],
    name: str,
    dimensions: list[dict[str, str]],
    timestamp: datetime,
    *,
    dataset: bool,
) -> list[dict[str, Any] | None]:
    """The graded verdict (none/moderate/major) as 0/1/2; insufficient data as its own flag.

    ``insufficient_data`` never counts as drift, so it publishes no grade at all (an alarm
    on the grade sees no breaching value); the dataset's flag says the window was too thin.
    """
    grade = verdict.get("grade")
    if grade is None:
        if dataset:
            logger.warning(
                "the drift report has no 'grade' (written by an mlcore older than graded "
                "verdicts): publishing DatasetDrift only, no DriftGrade"
            )
        return []
    if grade == INSUFFICIENT_DATA:
        return [_datum(DRIFT_INSUFFICIENT_DATA, 1.0, dimensions, timestamp)] if dataset else []
    if grade not in GRADE_VALUES:
        raise ValueError(
            f"unknown drift grade {grade!r}; expected one of {[*GRADE_VALUES, INSUFFICIENT_DATA]}"
        )
    data = [_datum(name, GRADE_VALUES[grade], dimensions, timestamp)]
    if dataset:
        data.append(_datum(DRIFT_INSUFFICIENT_DATA, 0.0, dimensions, timestamp))
    return data


def quality_metric_data(
    report: Mapping[str, Any], *, endpoint_name: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """CloudWatch data for one ``quality_report.json`` document (overall and per slice)."""
    _require(report, ("metrics", "slices", "below_threshold", "rows"), "quality report")
    endpoint = [{"Name": "EndpointName", "Value": endpoint_name}]
    data = [
        _datum(
            QUALITY_BELOW_THRESHOLD, 1.0 if report["below_threshold"] else 0.0, endpoint, timestamp
        ),
        _datum(LABELLED_ROWS, report["rows"], endpoint, timestamp, unit="Count"),
    ]
    data.extend(
        _datum(quality_metric_name(name), value, endpoint, timestamp)
        for name, value in report["metrics"].items()
    )
    for column, values in report["slices"].items():
        for value, metrics in values.items():
            dims = [
                *endpoint,
                {"Name": "SliceColumn", "Value": str(column)},
                {"Name": "SliceValue", "Value": str(value)},
            ]
            data.extend(
                _datum(
                    LABELLED_ROWS if name == "rows" else quality_metric_name(name),
                    number,
                    dims,
                    timestamp,
                )
                for name, number in metrics.items()
            )
    return [d for d in data if d is not None]


def heartbeat_metric_data(
    *, endpoint_name: str, monitor: str, hours: float, timestamp: datetime
) -> list[dict[str, Any]]:
    dims = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "Monitor", "Value": monitor}]
    datum = _datum(HOURS_SINCE_MONITOR_RUN, hours, dims, timestamp)
    return [datum] if datum is not None else []


def job_failed_metric_data(
    *, endpoint_name: str, monitor: str, timestamp: datetime
) -> list[dict[str, Any]]:
    dims = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "Monitor", "Value": monitor}]
    datum = _datum(MONITOR_JOB_FAILED, 1.0, dims, timestamp, unit="Count")
    return [datum] if datum is not None else []


def put_metrics(
    cloudwatch: CloudWatchClient, *, namespace: str, data: Sequence[Mapping[str, Any]]
) -> int:
    """Publish ``data`` in batches PutMetricData accepts; return how many were sent."""
    for start in range(0, len(data), _BATCH):
        cloudwatch.put_metric_data(
            Namespace=namespace, MetricData=list(data[start : start + _BATCH])
        )
    logger.info("published %d metric data to %s", len(data), namespace)
    return len(data)


def _datum(
    name: str,
    value: Any,
    dimensions: list[dict[str, str]],
    timestamp: datetime,
    *,
    unit: str = "None",
) -> dict[str, Any] | None:
    # NaN (e.g. AUC on one-class traffic) and missing numbers are not measurements: skip them.
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": timestamp,
        "Value": number,
        "Unit": unit,
    }


def _require(report: Mapping[str, Any], keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in report]
    if missing:
        raise ValueError(
            f"the {what} lacks {missing}; it has {sorted(report)}. Was it written by this "
            "version of mlcore?"
        )
