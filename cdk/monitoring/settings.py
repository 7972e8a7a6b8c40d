"""Typed settings of the monitors, built from ``mlops.yaml`` so AWS, Azure and the local run agree.

The thresholds that decide drift (``drift.*``) are read by ``mlcore drift`` inside the
job from the same file; what the infrastructure needs (schedule, the live-quality floor,
the retrain cooldown, who gets alerts) is copied here by :meth:`MonitorSettings.from_mlops`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlcore.evaluate import LOWER_IS_BETTER
from mlcore.settings import MlopsSettings

_SCHEDULE = re.compile(r"^(rate|cron)\(.+\)$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelMonitorSettings(_Frozen):
    """SageMaker Model Monitor's built-in data-quality schedule, for accounts that still have it.

    AWS no longer opens Model Monitor to new customers; our own monitors run either way.
    ``analyzer_image_uri`` is the region's ``sagemaker-model-monitor-analyzer`` image (see
    "Amazon SageMaker Model Monitor prebuilt container" in the SageMaker documentation).
    The baseline files are the ``statistics.json``/``constraints.json`` that
    ``mlcore drift`` writes in Model Monitor's format.
    """

    analyzer_image_uri: str = Field(
        pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/.+$"
    )
    baseline_statistics_s3_uri: str = Field(pattern=r"^s3://.+")
    baseline_constraints_s3_uri: str = Field(pattern=r"^s3://.+")
    schedule: str = "cron(0 * ? * * *)"


class MonitorSettings(_Frozen):
    """When the monitors run, on what, and the floors their alarms use."""

    drift_schedule: str = "cron(0 * * * ? *)"
    quality_schedule: str = "cron(0 6 * * ? *)"
    quality_enabled: bool = True
    # The alarms look at this many hours of monitor results (cover the schedule's interval).
    drift_alarm_period_hours: int = Field(1, ge=1, le=24)
    quality_alarm_period_hours: int = Field(24, ge=1, le=24)
    instance_type: str = Field("ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    lookback_hours: int = Field(24, ge=1, le=24 * 14)
    label_delay_hours: int = Field(0, ge=0, le=24 * 90)
    max_runtime_minutes: int = Field(60, ge=5, le=24 * 60)
    primary_metric: str = "auc"
    min_live_metric: float = Field(0.65, ge=0, le=1)
    retrain_cooldown_hours: float = Field(24, ge=0)
    alert_emails: tuple[str, ...] = ()
    model_monitor: ModelMonitorSettings | None = None
    timezone: Literal["UTC"] = "UTC"

    @field_validator("drift_schedule", "quality_schedule")
    @classmethod
    def _is_schedule_expression(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError(
                f"must be an EventBridge Scheduler expression like cron(0 * * * ? *) or rate(1 hour); got {value!r}"
            )
        return value

    @field_validator("primary_metric")
    @classmethod
    def _floor_fits_metric(cls, value: str) -> str:
        if value in LOWER_IS_BETTER:
            raise ValueError(
                f"{value!r} is lower-is-better, but min_live_metric is a floor; use auc, "
                "accuracy, f1, precision, recall or r2"
            )
        return value

    @classmethod
    def from_mlops(cls, settings: MlopsSettings, **overrides: Any) -> MonitorSettings:
        """The monitors' settings from ``mlops.yaml`` (monitoring.* and gate.primary_metric)."""
        monitoring = settings.monitoring
        base: dict[str, Any] = {
            "drift_schedule": monitoring.schedule,
            "primary_metric": settings.gate.primary_metric,
            "min_live_metric": monitoring.min_live_metric,
            "retrain_cooldown_hours": monitoring.retrain_cooldown_hours,
            "alert_emails": tuple(monitoring.alert_emails),
        }
        return cls(**{**base, **overrides})
