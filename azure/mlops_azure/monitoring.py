"""The model monitor: data drift, prediction drift and data quality, with e-mail alerts.

Thresholds come from ``mlops.yaml`` (:class:`mlcore.settings.DriftSettings`), the
same numbers the AWS monitors and the local run use. Azure ML alerts when a metric crosses
its threshold, so distances get the moderate band (alerts act on moderate, contract 5). Azure ML computes its own
statistics; this module maps each mlcore method to the Azure metric of the same
name and refuses a method Azure does not offer rather than substituting another.
"""

from __future__ import annotations

import re

from azure.ai.ml import Input
from azure.ai.ml.entities import (
    AlertNotification,
    CategoricalDriftMetrics,
    CronTrigger,
    DataDriftMetricThreshold,
    DataDriftSignal,
    DataQualityMetricsCategorical,
    DataQualityMetricsNumerical,
    DataQualityMetricThreshold,
    DataQualitySignal,
    MonitorDefinition,
    MonitoringTarget,
    MonitorSchedule,
    NumericalDriftMetrics,
    PredictionDriftMetricThreshold,
    PredictionDriftSignal,
    RecurrenceTrigger,
    ReferenceData,
    ServerlessSparkCompute,
)

from mlcore.errors import ConfigError
from mlcore.settings import DriftSettings, MlopsSettings
from mlops_azure.config import AzureEnvironment

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def numerical_drift_metrics(drift: DriftSettings) -> NumericalDriftMetrics:
    method = drift.numeric_method
    if method == "ks":
        return NumericalDriftMetrics(two_sample_kolmogorov_smirnov_test=drift.p_value_threshold)
    if method == "psi":
        return NumericalDriftMetrics(population_stability_index=drift.bands.psi.moderate)
    if method == "wasserstein":
        return NumericalDriftMetrics(
            normalized_wasserstein_distance=drift.bands.wasserstein.moderate
        )
    if method == "jensenshannon":
        return NumericalDriftMetrics(jensen_shannon_distance=drift.bands.jensenshannon.moderate)
    raise ConfigError(
        f"drift.numeric_method {method!r} has no Azure ML monitoring metric; use ks, psi, "
        "wasserstein or jensenshannon in mlops.yaml for a workspace that is monitored on Azure"
    )


def categorical_drift_metrics(drift: DriftSettings) -> CategoricalDriftMetrics:
    method = drift.categorical_method
    if method == "chi2":
        return CategoricalDriftMetrics(pearsons_chi_squared_test=drift.p_value_threshold)
    if method == "psi":
        return CategoricalDriftMetrics(population_stability_index=drift.bands.psi.moderate)
    if method == "jensenshannon":
        return CategoricalDriftMetrics(jensen_shannon_distance=drift.bands.jensenshannon.moderate)
    raise ConfigError(
        f"drift.categorical_method {method!r} has no Azure ML monitoring metric; use chi2, psi "
        "or jensenshannon in mlops.yaml for a workspace that is monitored on Azure"
    )


def schedule_trigger(expression: str) -> CronTrigger | RecurrenceTrigger:
    """Translate the EventBridge schedule in mlops.yaml into an Azure ML trigger (UTC).

    ``cron(min hour day month weekday year)`` becomes the five-field cron Azure uses
    (``?`` is read as ``*``; the year must be ``*``); ``rate(N hours)`` a recurrence.
    """
    rate = _RATE.match(expression.strip())
    if rate:
        unit = rate.group(2).rstrip("s")
        return RecurrenceTrigger(frequency=unit, interval=int(rate.group(1)))
    cron = _CRON.match(expression.strip())
    if cron:
        fields = cron.group(1).split()
        if len(fields) == 6 and fields[5] in ("*", "?"):
            minute, hour, day, month, weekday = (f.replace("?", "*") for f in fields[:5])
            return CronTrigger(expression=f"{minute} {hour} {day} {month} {weekday}")
    raise ConfigError(
        f"monitoring.schedule {expression!r} cannot run on Azure ML: use 'rate(N hours|days)' or "
        "'cron(minute hour day month weekday *)' in mlops.yaml"
    )


def ml_task(env: AzureEnvironment, settings: MlopsSettings) -> str:
    """The model's task, from mlops.yaml or, when that leaves it to inference, the Azure settings."""
    declared, fallback = settings.dataset.task, env.monitoring.ml_task
    if declared and fallback and declared != fallback:
        raise ConfigError(
            f"mlops.yaml says dataset.task {declared!r} but azure/environments/{env.name}.yaml "
            f"says monitoring.ml_task {fallback!r}; remove one"
        )
    task = declared or fallback
    if task is None:
        raise ConfigError(
            "Azure ML monitoring needs the model's task: set dataset.task in mlops.yaml "
            f"(or monitoring.ml_task in azure/environments/{env.name}.yaml)"
        )
    return task


def monitored_features(settings: MlopsSettings) -> list[str] | str:
    """The declared features when mlops.yaml lists both kinds; otherwise every column Azure sees.

    With inferred feature types the list is only known after training, so Azure ML
    compares all columns the reference and production data share (the collector
    records only the model's features; the target is named as such).
    """
    numeric, categorical = settings.dataset.numeric, settings.dataset.categorical
    if numeric is not None and categorical is not None:
        return [*numeric, *categorical]
    return "all_features"


def alert_emails(env: AzureEnvironment, settings: MlopsSettings) -> list[str]:
    emails = list(dict.fromkeys([*settings.monitoring.alert_emails, *env.monitoring.alert_emails]))
    if not emails:
        raise ConfigError(
            "the monitor needs someone to alert: set monitoring.alert_emails in mlops.yaml or "
            f"in azure/environments/{env.name}.yaml"
        )
    return emails


def build_monitor_schedule(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    reference_data: str,
) -> MonitorSchedule:
    """Monitor ``deployment_name`` against ``reference_data`` (an MLTable ``azureml:name:version``).

    Production data is what the deployment's data collector recorded; Azure ML
    finds it from the monitoring target.
    """
    task = ml_task(env, settings)
    drift = settings.drift
    reference = ReferenceData(
        input_data=Input(type="mltable", path=reference_data),
        data_context="training",
        # ReferenceData(target_column_name=...) raises TypeError in azure-ai-ml 1.35.
        data_column_names={"target_column": settings.dataset.target},
    )
    prediction_metrics = (
        PredictionDriftMetricThreshold(categorical=categorical_drift_metrics(drift))
        if task == "classification"
        else PredictionDriftMetricThreshold(numerical=numerical_drift_metrics(drift))
    )
    # Azure's null_value_rate is an absolute rate, not a rise: the major band of the rise.
    missing_rate = drift.bands.missing_rate.major
    features = monitored_features(settings)
    signals = {
        "data_drift": DataDriftSignal(
            reference_data=reference,
            features=features,
            metric_thresholds=DataDriftMetricThreshold(
                numerical=numerical_drift_metrics(drift),
                categorical=categorical_drift_metrics(drift),
            ),
            alert_enabled=True,
        ),
        "prediction_drift": PredictionDriftSignal(
            reference_data=reference, metric_thresholds=prediction_metrics, alert_enabled=True
        ),
        "data_quality": DataQualitySignal(
            reference_data=reference,
            features=features,
            metric_thresholds=DataQualityMetricThreshold(
                numerical=DataQualityMetricsNumerical(null_value_rate=missing_rate),
                categorical=DataQualityMetricsCategorical(null_value_rate=missing_rate),
            ),
            alert_enabled=True,
        ),
    }
    return MonitorSchedule(
        name=f"{settings.project}-{env.name}-monitor",
        display_name=f"{settings.project} model monitor ({env.name})",
        description="data drift, prediction drift and data quality against the training data",
        trigger=schedule_trigger(settings.monitoring.schedule),
        create_monitor=MonitorDefinition(
            compute=ServerlessSparkCompute(
                runtime_version=env.monitoring.spark_runtime_version,
                instance_type=env.monitoring.spark_instance_type,
            ),
            monitoring_target=MonitoringTarget(
                ml_task=task,
                endpoint_deployment_id=f"azureml:{env.endpoint.name}:{deployment_name}",
            ),
            monitoring_signals=signals,
            alert_notification=AlertNotification(emails=alert_emails(env, settings)),
        ),
        tags={"environment": env.name},
    )
