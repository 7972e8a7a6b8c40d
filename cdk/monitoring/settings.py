"""Typed settings of the monitors, built from ``mlops.yaml`` so AWS, Azure and the local run agree.

The thresholds that decide drift (``drift.*``) are read by ``mlcore drift`` inside the
job from the same file; what the infrastructure needs (schedule, the live-quality floor,
the retrain cooldown, who gets alerts) is copied here by :meth:`MonitorSettings.from_mlops`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlcore.evaluate import LOWER_IS_BETTER
from mlcore.schedule import Schedule
from mlcore.settings import MlopsSettings, ReferenceMode, ScheduleExpression


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
    """When the monitors run, on what, and the floors their alarms use.

    The windows and alarms follow the schedules: a run analyses everything captured since the
    previous run's end (at most ``max_window_hours``; a longer gap is cut to its most recent
    ``max_window_hours`` and the run says so), the drift and quality alarms look at one
    schedule period (CloudWatch allows one day at most), and the heartbeat alarm fires when
    no run completed in two periods.
    """

    drift_schedule: ScheduleExpression = Schedule.parse("cron(0 * * * ? *)")
    quality_schedule: ScheduleExpression = Schedule.parse("cron(0 6 * * ? *)")
    quality_enabled: bool = True
    instance_type: str = Field("ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    # The longest window one run analyses (two weeks by default); see the class docstring.
    max_window_hours: int = Field(24 * 14, ge=1, le=24 * 90)
    label_delay_hours: int = Field(0, ge=0, le=24 * 90)
    max_runtime_minutes: int = Field(60, ge=5, le=24 * 60)
    volume_size_gb: int = Field(30, ge=1, le=16384)
    primary_metric: str = "auc"
    min_live_metric: float = Field(0.65, ge=0, le=1)
    retrain_cooldown_hours: float = Field(24, ge=0)
    alert_emails: tuple[str, ...] = ()
    model_monitor: ModelMonitorSettings | None = None
    # What the drift job compares each window with (drift.reference in mlops.yaml): the
    # starter gives the job the captured data of that reference window.
    reference_mode: ReferenceMode = "training"
    seasonal_offset_days: int = Field(364, ge=1, le=3660)
    # Which drift engine runs (monitoring.engine / spark_min_capture_mb in mlops.yaml), and the
    # Spark cluster it runs on when it is Spark (cdk.json: the cloud's own sizes, contract 7).
    engine: Literal["streaming", "spark", "auto"] = "streaming"
    spark_min_capture_mb: float = Field(2048, gt=0)
    spark_instance_count: int = Field(2, ge=1, le=100)
    spark_instance_type: str = Field("ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")

    @field_validator("primary_metric")
    @classmethod
    def _floor_fits_metric(cls, value: str) -> str:
        if value in LOWER_IS_BETTER:
            raise ValueError(
                f"{value!r} is lower-is-better, but min_live_metric is a floor; use auc, "
                "accuracy, f1, precision, recall or r2"
            )
        return value

    @property
    def drift_period(self) -> timedelta:
        return self.drift_schedule.period

    @property
    def quality_period(self) -> timedelta:
        return self.quality_schedule.period

    @classmethod
    def from_mlops(cls, settings: MlopsSettings, **overrides: Any) -> MonitorSettings:
        """The monitors' settings from ``mlops.yaml`` (monitoring.* and gate.primary_metric).

        ``overrides`` are the environment's infrastructure settings (``MonitorConfig``).
        """
        monitoring = settings.monitoring
        base: dict[str, Any] = {
            "drift_schedule": monitoring.schedule,
            "primary_metric": settings.gate.primary_metric,
            "min_live_metric": monitoring.min_live_metric,
            "retrain_cooldown_hours": monitoring.retrain_cooldown_hours,
            "alert_emails": tuple(monitoring.alert_emails),
            "reference_mode": settings.drift.reference.mode,
            "seasonal_offset_days": settings.drift.reference.seasonal_offset_days,
            "engine": monitoring.engine,
            "spark_min_capture_mb": monitoring.spark_min_capture_mb,
        }
        return cls(**{**base, **overrides})


class MonitorConfig(_Frozen):
    """``stages.<name>.monitoring`` in cdk.json: the monitors' infrastructure, per environment.

    What must agree across clouds (the drift schedule, the live-quality floor, the retrain
    cooldown, alert e-mails, the drift thresholds) stays in mlops.yaml; everything else a
    monitor has is set here. Unset keys keep ``MonitorSettings``' defaults.
    """

    quality_schedule: ScheduleExpression | None = None
    quality_enabled: bool | None = None
    instance_type: str | None = None
    max_window_hours: int | None = None
    label_delay_hours: int | None = None
    max_runtime_minutes: int | None = None
    volume_size_gb: int | None = None
    model_monitor: ModelMonitorSettings | None = None
    # The Spark drift job's cluster (monitoring.engine spark or auto in mlops.yaml).
    spark_instance_count: int | None = None
    spark_instance_type: str | None = None

    @model_validator(mode="after")
    def _values_are_valid_monitor_settings(self) -> MonitorConfig:
        MonitorSettings(**self.overrides())  # the same rules, checked when cdk.json is read
        return self

    def overrides(self) -> dict[str, Any]:
        """The keys set, as ``MonitorSettings`` fields."""
        return {k: v for k, v in self if v is not None}
