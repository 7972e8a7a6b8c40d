"""Azure ML's own monitoring rules, encoded as tests over the built MonitorSchedule.

Sources (each rule cites its own):
* the open-source monitoring components, Azure/azureml-assets,
  assets/model_monitoring/components/src (read at commit 4b41f8c);
* Learn, "Monitor performance of models deployed to production"
  (how-to-monitor-model-performance) and "Collect production data"
  (how-to-collect-production-data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_azure import monitoring
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions
from mlops_azure.jobs.reference import azure_outputs, build_reference, output_columns
from mlops_azure.monitoring import CATEGORICAL_METRICS, NUMERICAL_METRICS, AzureMetric, Refused

from mlcore.errors import ConfigError
from mlcore.settings import DriftBands, DriftSettings, MlopsSettings, load_settings

SETTINGS = Path(__file__).parent / "fixtures" / "mlops.yaml"

# azureml-assets .../data_drift_compute_metrics/numerical_data_drift_metrics.py,
# _ks2sample_pandas_impl: DATASET_SIZE = 10000, computed only when both counts are below it.
AZURE_KS_ROW_LIMIT = 10_000
# Metric names Azure accepts per signal and data type (azureml-assets shared_utilities/
# constants.py and the compute_*_metrics dispatchers; the SDK field names are their
# snake_case forms in azure.ai.ml.entities NumericalDriftMetrics / CategoricalDriftMetrics /
# DataQualityMetrics*).
AZURE_DRIFT_NUMERICAL = {
    "jensen_shannon_distance",
    "normalized_wasserstein_distance",
    "population_stability_index",
    "two_sample_kolmogorov_smirnov_test",
}
AZURE_DRIFT_CATEGORICAL = {
    "jensen_shannon_distance",
    "population_stability_index",
    "pearsons_chi_squared_test",
}
AZURE_QUALITY = {"null_value_rate", "data_type_error_rate", "out_of_bounds_rate"}


def _set_fields(metrics: object) -> set[str]:
    return {
        key for key, value in vars(metrics).items() if value is not None and not key.startswith("_")
    }


def _signals(definitions: Definitions) -> dict:  # type: ignore[type-arg]
    return definitions.monitors[0].create_monitor.monitoring_signals


def _monitor(env: AzureEnvironment, **drift: object):  # type: ignore[no-untyped-def]
    settings = load_settings(SETTINGS, overrides={"drift": drift} if drift else None)
    return monitoring.build_monitor_schedules(
        env, settings, deployment_name="blue", reference_data="azureml:r:1"
    )[0]


@pytest.mark.parametrize("method", ["ks", "psi", "wasserstein", "jensenshannon"])
def test_no_numeric_method_maps_to_azures_row_limited_ks(
    dev_env: AzureEnvironment, method: str
) -> None:
    # Rule: Azure's two-sample KS refuses 10,000 rows or more on either side, and the
    # demo's 60,000 training rows alone exceed it. No mapping may produce it.
    signals = _monitor(dev_env, numeric_method=method).create_monitor.monitoring_signals
    for name in ("data_drift", "prediction_drift"):
        numerical = signals[name].metric_thresholds.numerical
        assert numerical.two_sample_kolmogorov_smirnov_test is None, (method, name)


def test_ks_is_mapped_explicitly_with_its_reason() -> None:
    entry = NUMERICAL_METRICS["ks"]
    assert isinstance(entry, AzureMetric)
    assert entry.field == "normalized_wasserstein_distance"
    assert f"{AZURE_KS_ROW_LIMIT:,}" in entry.reason
    # Azure's normalised Wasserstein (W1 / reference std, same file, _normalized_wasserstein)
    # is mlcore's `wasserstein` statistic: ks and wasserstein share one Azure metric.
    assert NUMERICAL_METRICS["wasserstein"] == AzureMetric(entry.field, entry.threshold_setting)


@pytest.mark.parametrize(
    ("table", "allowed"),
    [(NUMERICAL_METRICS, AZURE_DRIFT_NUMERICAL), (CATEGORICAL_METRICS, AZURE_DRIFT_CATEGORICAL)],
)
def test_every_mapping_names_a_metric_azure_computes_for_that_type(
    table: dict[str, AzureMetric | Refused], allowed: set[str]
) -> None:
    for method, entry in table.items():
        if isinstance(entry, AzureMetric):
            assert entry.field in allowed, method
            # A test's p-value threshold, or the graded bands of a distance (drift.bands.<name>).
            assert entry.threshold_setting == "p_value_threshold" or (
                entry.threshold_setting in DriftBands.model_fields
            ), method


def test_every_mlcore_method_is_in_the_table_mapped_or_refused() -> None:
    # One table, no silent gap: each Literal value of DriftSettings has an entry.
    numeric = DriftSettings.model_fields["numeric_method"].annotation.__args__  # type: ignore[union-attr]
    categorical = DriftSettings.model_fields["categorical_method"].annotation.__args__  # type: ignore[union-attr]
    assert set(numeric) == set(NUMERICAL_METRICS)
    assert set(categorical) == set(CATEGORICAL_METRICS)


def test_built_signals_use_only_valid_metric_names_per_type(definitions: Definitions) -> None:
    signals = _signals(definitions)
    for name in ("data_drift", "prediction_drift"):
        thresholds = signals[name].metric_thresholds
        assert _set_fields(thresholds.numerical) <= AZURE_DRIFT_NUMERICAL
        assert _set_fields(thresholds.categorical) <= AZURE_DRIFT_CATEGORICAL
    quality = signals["data_quality"].metric_thresholds
    assert _set_fields(quality.numerical) <= AZURE_QUALITY
    assert _set_fields(quality.categorical) <= AZURE_QUALITY


@pytest.mark.parametrize("method", ["kl"])
def test_a_method_azure_lacks_is_refused_with_the_options(
    dev_env: AzureEnvironment, method: str
) -> None:
    with pytest.raises(
        ConfigError, match=r"no Azure ML monitoring metric.*use one of \['jensenshannon'"
    ):
        _monitor(dev_env, numeric_method=method)
    with pytest.raises(ConfigError, match="categorical_method 'kl'"):
        _monitor(dev_env, categorical_method=method)


def test_prediction_drift_target_column_is_the_models_output_column(
    definitions: Definitions, settings: MlopsSettings
) -> None:
    # Learn (how-to-monitor-model-performance): target_column is the model's output column,
    # and the reference for prediction drift is validation data holding predictions.
    reference = _signals(definitions)["prediction_drift"].reference_data
    assert reference.data_column_names == {"target_column": settings.dataset.target}
    assert reference.data_context == "validation"
    assert "/data/acme-risk-prediction-reference/versions/1" in reference.input_data.path


def test_model_outputs_and_the_reference_share_the_prediction_columns(any_model) -> None:  # type: ignore[no-untyped-def]
    # Rule: prediction drift compares only columns present in both datasets, and raises
    # "Found no common columns between input datasets" otherwise (azureml-assets
    # shared_utilities/df_utils.py, get_common_columns / try_get_common_columns_with_error:
    # same name, case-sensitive, and a compatible type). Both sides are produced by the real
    # code: the scoring script's output frame and the reference job's frame.
    bundle, held_out = any_model
    reference = build_reference(bundle, held_out)
    outputs = azure_outputs(bundle.predict(held_out), bundle.spec.target)
    common = {
        c
        for c in outputs.columns
        if c in reference.columns and outputs[c].dtype.kind == reference[c].dtype.kind
    }
    expected = set(output_columns(bundle.spec.target))
    if bundle.spec.task == "regression":
        expected = {bundle.spec.target}  # a regression model has no score
    assert common == expected
    # Data drift and quality compare model_inputs with the same reference: the features.
    assert set(bundle.spec.features) <= set(reference.columns)
    # The reference holds the model's predictions under the target's name, not the labels.
    predicted = bundle.predict(held_out)["prediction"].reset_index(drop=True)
    assert reference[bundle.spec.target].tolist() == predicted.tolist()


def test_null_value_rate_is_the_rise_over_the_reference_from_the_missing_rate_band(
    definitions: Definitions, settings: MlopsSettings
) -> None:
    # Rule: Azure's data quality joiner (azureml-assets, data_quality_metrics_joiner/run.py)
    # sets each feature's null_value_rate threshold to the reference's rate plus the value
    # configured: a rise over the reference, which is what mlcore's drift.bands.missing_rate
    # grades. So the major band passes unchanged, and the README says it is a rise.
    quality = _signals(definitions)["data_quality"].metric_thresholds
    assert quality.numerical.null_value_rate == settings.drift.bands.missing_rate.major
    assert quality.categorical.null_value_rate == settings.drift.bands.missing_rate.major


def test_the_readme_lists_the_mapping_and_what_azure_lacks() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Monitor mapping") :]
    for method in NUMERICAL_METRICS:
        assert f"`{method}`" in section, method
    for threshold in ("bands.ks", "dataset_drift_share", "bands.missing_rate"):
        assert threshold in section, threshold


def test_regression_monitors_its_numeric_output_only(dev_env: AzureEnvironment) -> None:
    # The gate is replaced, not merged: the fixture's auc floor is no regression metric.
    data = yaml.safe_load(SETTINGS.read_text())
    data["dataset"]["task"] = "regression"
    data["gate"] = {"primary_metric": "r2", "min_metrics": {"r2": 0.0}}
    settings = MlopsSettings.model_validate(data)
    env = dev_env.model_copy(
        update={"monitoring": dev_env.monitoring.model_copy(update={"ml_task": None})}
    )
    monitor = monitoring.build_monitor_schedules(
        env, settings, deployment_name="blue", reference_data="azureml:r:1"
    )[0]
    prediction = monitor.create_monitor.monitoring_signals["prediction_drift"].metric_thresholds
    assert (
        prediction.numerical.normalized_wasserstein_distance
        == settings.drift.bands.wasserstein.major
    )
    assert prediction.categorical is None


def test_monitor_names_come_from_the_project(definitions: Definitions) -> None:
    document = json.dumps(definitions.monitors[0]._to_dict(), default=str)
    assert "acme-risk" in document and "churn" not in document


# --- drift.reference.mode as Azure's reference data ----------------------------------------

COLLECTOR = "azureml://datastores/workspaceblobstore/paths/modelDataCollector/acme-dev/blue"


def _monitor_document(
    env: AzureEnvironment, tmp_path: Path, *, mode: str, schedule: str = "rate(1 days)"
) -> dict:  # type: ignore[type-arg]
    from azure.ai.ml.entities._load_functions import load_schedule
    from mlops_azure.apply import entity_document

    settings = load_settings(
        SETTINGS,
        overrides={
            "drift": {"reference": {"mode": mode}},
            "monitoring": {"schedule": schedule, "engine": "streaming"},
        },
    )
    monitor = monitoring.build_monitor_schedules(
        env, settings, deployment_name="blue", reference_data="azureml:acme-risk-ref:4"
    )[0]
    document = entity_document(monitor)
    # What the dry run writes must load back through the SDK unchanged.
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(document))
    assert json.loads(json.dumps(load_schedule(path)._to_dict(), default=str)) == document
    return document


@pytest.mark.parametrize(
    ("mode", "offset"), [("previous_window", "P1D"), ("same_period_last_year", "P364D")]
)
def test_a_rolling_reference_is_the_collected_traffic_a_window_back(
    dev_env: AzureEnvironment, tmp_path: Path, mode: str, offset: str
) -> None:
    # azure-ai-ml's ReferenceData(data_window=BaselineDataRange(lookback_window_size,
    # lookback_window_offset)) becomes a trailing (rolling) input; its own default rolling
    # reference reads the deployment's collected model_inputs / model_outputs the same way
    # (operations/_schedule_operations.py).
    document = _monitor_document(dev_env, tmp_path, mode=mode)
    signals = document["create_monitor"]["monitoring_signals"]
    for name, collection in (
        ("data_drift", "model_inputs"),
        ("data_quality", "model_inputs"),
        ("prediction_drift", "model_outputs"),
    ):
        reference = signals[name]["reference_data"]
        assert reference["input_data"] == {
            "type": "uri_folder",
            "path": f"{COLLECTOR}/{collection}/",
        }, name
        assert reference["data_context"] == collection
        assert reference["data_window"] == {
            "lookback_window_size": "P1D",
            "lookback_window_offset": offset,
        }
    assert document["tags"]["drift_reference_mode"] == mode
    assert document["tags"]["drift_reference_offset"] == offset


def test_the_training_mode_keeps_the_models_validation_reference(
    dev_env: AzureEnvironment, tmp_path: Path
) -> None:
    document = _monitor_document(dev_env, tmp_path, mode="training")
    for signal in document["create_monitor"]["monitoring_signals"].values():
        reference = signal["reference_data"]
        assert reference["input_data"] == {"type": "mltable", "path": "azureml:acme-risk-ref:4"}
        assert reference["data_context"] == "validation" and "data_window" not in reference
    assert document["tags"]["drift_reference_mode"] == "training"


@pytest.mark.parametrize("schedule", ["rate(6 hours)", "rate(3 days)", "cron(0 * * * ? *)"])
def test_the_reference_window_is_as_long_as_azures_production_window(
    dev_env: AzureEnvironment, schedule: str
) -> None:
    # The production window is the schedule's gap, given explicitly (the SDK's default is
    # seven days for any cron); the rolling reference must be the same length. Compared on
    # the REST body the SDK sends.
    settings = load_settings(
        SETTINGS,
        overrides={
            "drift": {"reference": {"mode": "previous_window"}},
            "monitoring": {"schedule": schedule, "engine": "streaming"},
        },
    )
    monitor = monitoring.build_monitor_schedules(
        dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
    )[0]
    rest = monitor._to_rest_object().properties.action.monitor_definition.signals["data_drift"]
    assert rest.production_data.window_size == rest.reference_data.window_size
    assert rest.reference_data.window_offset == rest.production_data.window_size


def test_a_seasonal_offset_inside_the_window_is_refused(dev_env: AzureEnvironment) -> None:
    settings = load_settings(
        SETTINGS,
        overrides={
            "drift": {"reference": {"mode": "same_period_last_year", "seasonal_offset_days": 7}},
            "monitoring": {"schedule": "rate(14 days)", "engine": "streaming"},
        },
    )
    with pytest.raises(ConfigError, match="shorter than the Azure monitor's window of 14 days"):
        monitoring.build_monitor_schedules(
            dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
        )[0]


@pytest.mark.parametrize(
    ("table", "kind", "build"),
    [
        (NUMERICAL_METRICS, "numeric", monitoring.numerical_drift_metrics),
        (CATEGORICAL_METRICS, "categorical", monitoring.categorical_drift_metrics),
    ],
)
def test_every_mapped_method_sets_its_own_azure_threshold_and_no_other(
    table: dict[str, AzureMetric | Refused], kind: str, build: Any
) -> None:
    for method, entry in table.items():
        if isinstance(entry, Refused):
            continue
        drift = DriftSettings.model_validate({f"{kind}_method": method})
        thresholds = {
            name: value
            for name, value in vars(build(drift)).items()
            if isinstance(value, float) and not name.startswith("_")
        }
        assert thresholds == {entry.field: entry.threshold(drift)}, method
