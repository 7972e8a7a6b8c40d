"""The model monitor: data drift, prediction drift and data quality, with e-mail alerts.

Thresholds come from ``mlops.yaml`` (:class:`mlcore.settings.DriftSettings`), the same
numbers the AWS monitors and the local run use, through ONE table per data type
(:data:`NUMERICAL_METRICS`, :data:`CATEGORICAL_METRICS`) from mlcore's method to the
Azure ML metric that computes it. A method Azure cannot compute on realistic data is
mapped explicitly with its reason, and a method Azure does not offer is refused: never
a silent substitute. The README's "Monitor mapping" lists the same table and the mlcore
thresholds Azure has no counterpart for.

All three signals compare production data with the model's prediction reference: the
validation split beside the model's own predictions (:mod:`mlops_azure.jobs.reference`),
registered by the training run of that model. The model-performance signal is a
scheduled job (:mod:`mlops_azure.performance`), because Azure's built-in one has no AUC,
F1 or R2 and judges accuracy, precision and recall as ceilings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from azure.ai.ml import Input
from azure.ai.ml.constants import MonitorDatasetContext
from azure.ai.ml.entities import (
    AlertNotification,
    BaselineDataRange,
    CategoricalDriftMetrics,
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
    ProductionData,
    ReferenceData,
    ServerlessSparkCompute,
)

from mlcore.errors import ConfigError
from mlcore.schedule import AzureTrigger
from mlcore.settings import DriftSettings, MlopsSettings
from mlops_azure.config import AzureEnvironment
from mlops_azure.endpoint import MODEL_INPUTS, MODEL_OUTPUTS, collected_data_uri
from mlops_azure.jobs.reference import output_columns
from mlops_azure.schedules import azure_triggers, schedule_names, sdk_trigger

# Names of the signals in the MonitorSchedule (and in Azure's breach tags).
DATA_DRIFT, PREDICTION_DRIFT, DATA_QUALITY = "data_drift", "prediction_drift", "data_quality"

if TYPE_CHECKING:
    from azure.ai.ml.entities import (
        CustomMonitoringSignal,
        FeatureAttributionDriftSignal,
        GenerationSafetyQualitySignal,
        GenerationTokenStatisticsSignal,
    )

    # What MonitorDefinition's monitoring_signals takes (its annotation, azure-ai-ml 1.35).
    Signals = dict[
        str,
        DataDriftSignal
        | DataQualitySignal
        | PredictionDriftSignal
        | FeatureAttributionDriftSignal
        | CustomMonitoringSignal
        | GenerationSafetyQualitySignal
        | GenerationTokenStatisticsSignal,
    ]


@dataclass(frozen=True)
class AzureMetric:
    """The Azure ML metric that stands for one mlcore method, and where its threshold comes from."""

    field: str  # keyword of NumericalDriftMetrics / CategoricalDriftMetrics
    # "p_value_threshold" for a test, else the drift.bands entry whose MAJOR band Azure
    # breaches at. Azure has one threshold per metric, and a breached signal both alerts and
    # starts retraining (mlops_azure.retrain); the retrain trigger acts on major (contract 5),
    # so a moderate band here would retrain on moderate drift.
    threshold_setting: str
    reason: str = ""  # why a method maps to a different statistic

    def threshold(self, drift: DriftSettings) -> float:
        if self.threshold_setting == "p_value_threshold":
            return drift.p_value_threshold
        return drift.band(self.threshold_setting).major


@dataclass(frozen=True)
class Refused:
    """An mlcore method with no Azure ML metric; building the monitor fails with this reason."""

    reason: str


# Azure's two-sample KS raises "Cannot calculate two-sample Kolmogorov-Smirnov test on
# dataset with more than 10000 entries" unless BOTH sides have fewer than 10,000 rows
# (azureml-assets, model_monitoring/components/src/data_drift_compute_metrics/
# numerical_data_drift_metrics.py, _ks2sample_pandas_impl). Its normalised Wasserstein
# distance (the same file, _normalized_wasserstein: W1 divided by the reference's standard
# deviation) is mlcore's `wasserstein` statistic exactly, compares CDFs as KS does, and
# has no row limit.
KS_REASON = (
    "Azure ML computes two-sample KS only when both datasets have fewer than 10,000 rows; "
    "ks is monitored on Azure as normalized Wasserstein distance (mlcore's wasserstein "
    "statistic, also CDF-based, no row limit) at drift.bands.wasserstein.major"
)
NUMERICAL_METRICS: dict[str, AzureMetric | Refused] = {
    "ks": AzureMetric("normalized_wasserstein_distance", "wasserstein", KS_REASON),
    "psi": AzureMetric("population_stability_index", "psi"),
    "wasserstein": AzureMetric("normalized_wasserstein_distance", "wasserstein"),
    "jensenshannon": AzureMetric("jensen_shannon_distance", "jensenshannon"),
    "kl": Refused("Azure ML monitoring has no Kullback-Leibler divergence"),
}
CATEGORICAL_METRICS: dict[str, AzureMetric | Refused] = {
    "chi2": AzureMetric("pearsons_chi_squared_test", "p_value_threshold"),
    "psi": AzureMetric("population_stability_index", "psi"),
    "jensenshannon": AzureMetric("jensen_shannon_distance", "jensenshannon"),
    "kl": Refused("Azure ML monitoring has no Kullback-Leibler divergence"),
}


def _metric(table: dict[str, AzureMetric | Refused], kind: str, method: str) -> AzureMetric:
    entry = table.get(method)
    supported = sorted(m for m, e in table.items() if isinstance(e, AzureMetric))
    if entry is None:
        raise ConfigError(
            f"drift.{kind}_method {method!r} is not in the Azure mapping; use one of {supported}"
        )
    if isinstance(entry, Refused):
        raise ConfigError(
            f"drift.{kind}_method {method!r} has no Azure ML monitoring metric ({entry.reason}); "
            f"use one of {supported} in mlops.yaml for a workspace that is monitored on Azure"
        )
    return entry


def numerical_drift_metrics(drift: DriftSettings) -> NumericalDriftMetrics:
    metric = _metric(NUMERICAL_METRICS, "numeric", drift.numeric_method)
    threshold = metric.threshold(drift)
    match metric.field:
        case "jensen_shannon_distance":
            return NumericalDriftMetrics(jensen_shannon_distance=threshold)
        case "normalized_wasserstein_distance":
            return NumericalDriftMetrics(normalized_wasserstein_distance=threshold)
        case "population_stability_index":
            return NumericalDriftMetrics(population_stability_index=threshold)
    raise ValueError(f"NumericalDriftMetrics has no threshold field {metric.field!r}")


def categorical_drift_metrics(drift: DriftSettings) -> CategoricalDriftMetrics:
    metric = _metric(CATEGORICAL_METRICS, "categorical", drift.categorical_method)
    threshold = metric.threshold(drift)
    match metric.field:
        case "jensen_shannon_distance":
            return CategoricalDriftMetrics(jensen_shannon_distance=threshold)
        case "population_stability_index":
            return CategoricalDriftMetrics(population_stability_index=threshold)
        case "pearsons_chi_squared_test":
            return CategoricalDriftMetrics(pearsons_chi_squared_test=threshold)
    raise ValueError(f"CategoricalDriftMetrics has no threshold field {metric.field!r}")


@dataclass(frozen=True)
class ReferenceWindow:
    """Where a signal's reference comes from under ``drift.reference.mode``."""

    mode: str
    window: str  # ISO 8601 duration: the production window of the run
    offset: str | None  # None: the model's validation rows (mode training)

    @property
    def tags(self) -> dict[str, str]:
        tags = {"drift_reference_mode": self.mode, "production_window": self.window}
        if self.offset is not None:
            tags["drift_reference_window"] = self.window
            tags["drift_reference_offset"] = self.offset
        return tags


def reference_window(settings: MlopsSettings, trigger: AzureTrigger) -> ReferenceWindow:
    """``drift.reference`` as Azure's monitor expresses it, or a ConfigError naming why not.

    ``training`` is the model's validation rows with its predictions (a fixed MLTable).
    ``previous_window`` is the collected traffic of the window just before (Azure's
    trailing reference: lookback size = the production window, offset = one window);
    ``same_period_last_year`` the same window ``seasonal_offset_days`` earlier.
    """
    reference = settings.drift.reference
    if reference.mode == "training":
        return ReferenceWindow("training", trigger.window_iso, None)
    if reference.mode == "previous_window":
        return ReferenceWindow("previous_window", trigger.window_iso, trigger.window_iso)
    if timedelta(days=reference.seasonal_offset_days) < trigger.window:
        raise ConfigError(
            f"drift.reference.seasonal_offset_days {reference.seasonal_offset_days} is shorter "
            f"than the Azure monitor's window of {trigger.window} (monitoring.schedule "
            f"{settings.monitoring.schedule}): the reference would overlap the data it is "
            "compared with; use a longer offset, or a more frequent schedule"
        )
    return ReferenceWindow(
        "same_period_last_year", trigger.window_iso, f"P{reference.seasonal_offset_days}D"
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


def monitored_features(settings: MlopsSettings) -> list[str] | Literal["all_features"]:
    """The declared features when mlops.yaml lists both kinds; otherwise every column Azure sees.

    With inferred feature types the list is only known after training, so Azure ML
    compares all columns the reference and production data share: the features (the
    reference's prediction columns are not in model_inputs, whose inference_id is not
    in the reference).
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


def prediction_drift_metrics(task: str, drift: DriftSettings) -> PredictionDriftMetricThreshold:
    """A class label is categorical and its score numeric; a regression output is numeric."""
    if task == "classification":
        return PredictionDriftMetricThreshold(
            categorical=categorical_drift_metrics(drift), numerical=numerical_drift_metrics(drift)
        )
    return PredictionDriftMetricThreshold(numerical=numerical_drift_metrics(drift))


def build_monitor_schedules(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    reference_data: str,
) -> list[MonitorSchedule]:
    """Monitor ``deployment_name`` against ``reference_data``, the live model's prediction
    reference (an MLTable ``azureml:name:version``): one MonitorSchedule per Azure trigger of
    ``monitoring.schedule`` (:mod:`mlops_azure.schedules`).

    Each run reads the traffic the deployment's data collector recorded since the firing
    before it: the production window is given explicitly (the SDK's default is seven days
    for any cron, which judged an hourly monitor's every hour 168 times).
    """
    triggers = azure_triggers(settings.monitoring.schedule)
    names = schedule_names(monitor_schedule_name(env, settings), len(triggers))
    return [
        _monitor_schedule(
            env,
            settings,
            name=name,
            trigger=trigger,
            deployment_name=deployment_name,
            reference_data=reference_data,
        )
        for name, trigger in zip(names, triggers, strict=True)
    ]


def monitor_schedule_name(env: AzureEnvironment, settings: MlopsSettings) -> str:
    return f"{settings.project}-{env.name}-monitor"


def _monitor_schedule(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    name: str,
    trigger: AzureTrigger,
    deployment_name: str,
    reference_data: str,
) -> MonitorSchedule:
    task = ml_task(env, settings)
    drift = settings.drift
    prediction_column, _ = output_columns(settings.dataset.target)
    window = reference_window(settings, trigger)
    # Learn: target_column is the model's output column. ReferenceData(
    # target_column_name=...) raises TypeError in azure-ai-ml 1.35.
    columns = {"target_column": prediction_column}

    def production(collection: str) -> ProductionData:
        # What the deployment collected since the firing before this run, exactly.
        return ProductionData(
            input_data=Input(
                type="uri_folder", path=collected_data_uri(env, deployment_name, collection)
            ),
            data_context=MonitorDatasetContext(collection),
            data_window=BaselineDataRange(
                lookback_window_size=window.window, lookback_window_offset="P0D"
            ),
        )

    if window.offset is None:
        reference = ReferenceData(
            input_data=Input(type="mltable", path=reference_data),
            data_context=MonitorDatasetContext.VALIDATION,
            data_column_names=columns,
        )
        outputs_reference = reference
    else:
        # The deployment's own collected traffic, a window back (azure-ai-ml builds its
        # default rolling reference the same way: operations/_schedule_operations.py).
        def collected(collection: str) -> ReferenceData:
            return ReferenceData(
                input_data=Input(
                    type="uri_folder",
                    path=collected_data_uri(env, deployment_name, collection),
                ),
                data_context=MonitorDatasetContext(collection),
                data_window=BaselineDataRange(
                    lookback_window_size=window.window, lookback_window_offset=window.offset
                ),
                data_column_names=columns,
            )

        reference, outputs_reference = collected(MODEL_INPUTS), collected(MODEL_OUTPUTS)
    # Azure's data quality joiner sets each feature's null_value_rate threshold to the
    # reference's rate plus the configured value (azureml-assets, model_monitoring
    # data_quality_metrics_joiner/run.py): a rise over the reference, which is what mlcore's
    # drift.bands.missing_rate bounds. The major band, as for every breach (contract 5).
    missing_rate = drift.bands.missing_rate.major
    features = monitored_features(settings)
    signals: Signals = {
        DATA_DRIFT: DataDriftSignal(
            production_data=production(MODEL_INPUTS),
            reference_data=reference,
            features=features,
            metric_thresholds=DataDriftMetricThreshold(
                numerical=numerical_drift_metrics(drift),
                categorical=categorical_drift_metrics(drift),
            ),
            alert_enabled=True,
        ),
        PREDICTION_DRIFT: PredictionDriftSignal(
            production_data=production(MODEL_OUTPUTS),
            reference_data=outputs_reference,
            metric_thresholds=prediction_drift_metrics(task, drift),
            alert_enabled=True,
        ),
        DATA_QUALITY: DataQualitySignal(
            production_data=production(MODEL_INPUTS),
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
        name=name,
        display_name=f"{settings.project} model monitor ({env.name})",
        description=(
            f"data drift, prediction drift and data quality of each {window.window} of traffic "
            "against "
            + (
                "the model's validation rows"
                if window.offset is None
                else f"collected traffic {window.offset} earlier ({window.mode})"
            )
        ),
        trigger=sdk_trigger(trigger),
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
        tags={
            "environment": env.name,
            "mlops_schedule": str(settings.monitoring.schedule),
            **window.tags,
        },
    )
