"""Endpoint, deployment and monitor: data collection on, thresholds from mlops.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from azure.ai.ml.entities import CronTrigger, RecurrenceTrigger
from mlops_azure import endpoint, monitoring
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import SCORING_SCRIPT, Definitions

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings, load_settings

SETTINGS_FILE = Path(__file__).parent / "fixtures" / "mlops.yaml"


def test_endpoint_starts_without_traffic_and_respects_network_setting(
    definitions: Definitions,
) -> None:
    ep = definitions.endpoint
    assert ep.name == "acme-dev"
    assert not ep.traffic
    assert ep.auth_mode == "key"
    assert ep.public_network_access == "enabled"


def test_deployment_collects_inputs_and_outputs_at_the_configured_rate(
    definitions: Definitions,
) -> None:
    deployment = definitions.deployment
    collections = deployment.data_collector.collections
    assert set(collections) == {"model_inputs", "model_outputs"}
    assert all(c.enabled == "true" for c in collections.values())
    assert deployment.data_collector.sampling_rate == 1.0  # capture_sampling_percentage: 100
    assert (
        deployment.model == "azureml://registries/acme-registry/models/acme-risk-model/versions/1"
    )
    assert deployment.tags[endpoint.MODEL_TAG] == "acme-risk-model:1"


def test_deployment_verifies_the_model_file_against_the_registry_digest(
    definitions: Definitions,
) -> None:
    # Contract 1: serving checks model.joblib against MLCORE_MODEL_SHA256 before unpickling;
    # the value is the registry model's model_sha256 tag.
    assert definitions.deployment.environment_variables == {
        endpoint.MODEL_SHA256_ENV: "sha256:" + "ab" * 32
    }


def test_deployment_serves_mlcore_through_the_collecting_entry_script(
    definitions: Definitions,
) -> None:
    code = Path(definitions.deployment.code_configuration.code)
    assert definitions.deployment.code_configuration.scoring_script == SCORING_SCRIPT
    assert (code / SCORING_SCRIPT).is_file()
    assert (code / "mlcore" / "serve" / "azure_scoring.py").is_file()
    assert (code / "mlops_azure" / "jobs" / "reference.py").is_file()
    assert not list(code.rglob("__pycache__"))


def test_deployment_refuses_unregistered_models_and_unknown_colours(
    dev_env: AzureEnvironment, settings: MlopsSettings, definitions: Definitions
) -> None:
    code = Path(definitions.deployment.code_configuration.code)
    common = {
        "environment": definitions.environment,
        "code_dir": code,
        "scoring_script": SCORING_SCRIPT,
    }
    with pytest.raises(ValueError, match="azureml:name:version"):
        endpoint.build_deployment(dev_env, settings, name="blue", model="./model", **common)
    with pytest.raises(ValueError, match="one of"):
        endpoint.build_deployment(dev_env, settings, name="red", model="azureml:m:1", **common)
    with pytest.raises(ValueError, match="sha256:<hex>"):
        endpoint.build_deployment(
            dev_env, settings, name="blue", model="azureml:m:1", model_sha256="abc", **common
        )


@pytest.mark.parametrize(("live", "new"), [(None, "blue"), ("blue", "green"), ("green", "blue")])
def test_new_model_goes_to_the_idle_colour(live: str | None, new: str) -> None:
    assert endpoint.other_colour(live) == new


def test_foreign_deployment_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not deployed by mlops_azure"):
        endpoint.other_colour("default")


def _signals(definitions: Definitions) -> dict:  # type: ignore[type-arg]
    return definitions.monitors[0].create_monitor.monitoring_signals


def test_monitor_has_the_three_signals_with_alerts(definitions: Definitions) -> None:
    signals = _signals(definitions)
    assert set(signals) == {"data_drift", "prediction_drift", "data_quality"}
    assert all(signal.alert_enabled for signal in signals.values())
    assert definitions.monitors[0].create_monitor.alert_notification.emails == [
        "mlops-dev-alerts@example.com"
    ]
    target = definitions.monitors[0].create_monitor.monitoring_target
    assert target.endpoint_deployment_id == "azureml:acme-dev:blue"
    assert target.ml_task == "classification"


def test_monitor_breaches_at_the_major_drift_bands(
    definitions: Definitions, settings: MlopsSettings
) -> None:
    signals = _signals(definitions)
    drift = signals["data_drift"].metric_thresholds
    # ks is monitored as normalised Wasserstein (monitoring.KS_REASON).
    assert drift.numerical.normalized_wasserstein_distance == settings.drift.bands.wasserstein.major
    assert drift.categorical.pearsons_chi_squared_test == settings.drift.p_value_threshold
    prediction = signals["prediction_drift"].metric_thresholds
    assert prediction.categorical.pearsons_chi_squared_test == settings.drift.p_value_threshold
    assert (
        prediction.numerical.normalized_wasserstein_distance
        == settings.drift.bands.wasserstein.major
    )
    reference = signals["data_drift"].reference_data
    assert reference.data_column_names == {"target_column": "will_leave"}


def test_changing_mlops_yaml_changes_the_monitor(dev_env: AzureEnvironment) -> None:
    settings = load_settings(
        SETTINGS_FILE,
        overrides={
            "drift": {
                "numeric_method": "psi",
                "categorical_method": "jensenshannon",
                "bands": {
                    "psi": {"moderate": 0.25, "major": 0.3},
                    "jensenshannon": {"moderate": 0.07, "major": 0.2},
                    "missing_rate": {"moderate": 0.01, "major": 0.02},
                },
            },
            "monitoring": {"alert_emails": ["owner@example.com"], "schedule": "rate(6 hours)"},
        },
    )
    monitor = monitoring.build_monitor_schedules(
        dev_env, settings, deployment_name="green", reference_data="azureml:r:1"
    )[0]
    signals = monitor.create_monitor.monitoring_signals
    # The major bands: a breached Azure signal starts retraining, which acts on major
    # (contract 5); the moderate values must not be what Azure breaches at.
    assert signals["data_drift"].metric_thresholds.numerical.population_stability_index == 0.3
    assert signals["data_drift"].metric_thresholds.categorical.jensen_shannon_distance == 0.2
    assert signals["data_quality"].metric_thresholds.numerical.null_value_rate == 0.02
    assert monitor.create_monitor.alert_notification.emails == [
        "owner@example.com",
        "mlops-dev-alerts@example.com",
    ]
    assert monitor.name == "acme-risk-dev-monitor"
    assert isinstance(monitor.trigger, RecurrenceTrigger)
    assert (monitor.trigger.frequency, monitor.trigger.interval) == ("hour", 6)


def test_a_regression_task_on_a_classification_monitor_is_refused(
    dev_env: AzureEnvironment,
) -> None:
    # A regression task needs regression gate metrics: the fixture gates on auc, and
    # overrides merge into its min_metrics rather than replace them.
    data = yaml.safe_load(SETTINGS_FILE.read_text())
    data["dataset"]["task"] = "regression"
    data["gate"] = {"primary_metric": "r2", "min_metrics": {"r2": 0.0}}
    settings = MlopsSettings.model_validate(data)
    with pytest.raises(ConfigError, match=r"dataset\.task 'regression'.*ml_task 'classification'"):
        monitoring.build_monitor_schedules(
            dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
        )[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"drift": {"numeric_method": "kl"}}, "numeric_method 'kl' has no Azure ML"),
        ({"drift": {"categorical_method": "kl"}}, "categorical_method 'kl' has no Azure ML"),
        ({"monitoring": {"schedule": "cron(0 12 * * ? 2026-2030)"}}, "cannot run on Azure ML"),
        ({"monitoring": {"schedule": "cron(0 6 1 * ? *)"}}, "ignores day-of-month"),
    ],
)
def test_settings_azure_cannot_honour_are_refused(
    dev_env: AzureEnvironment,
    overrides: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    settings = load_settings(SETTINGS_FILE, overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        monitoring.build_monitor_schedules(
            dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
        )[0]


def test_monitor_needs_someone_to_alert(dev_env: AzureEnvironment, settings: MlopsSettings) -> None:
    env = dev_env.model_copy(
        update={"monitoring": dev_env.monitoring.model_copy(update={"alert_emails": []})}
    )
    with pytest.raises(ConfigError, match="alert_emails"):
        monitoring.build_monitor_schedules(
            env, settings, deployment_name="blue", reference_data="azureml:r:1"
        )[0]


@pytest.mark.parametrize(
    ("expression", "cron", "window"),
    [
        ("cron(0 * * * ? *)", "0 * * * *", "PT1H"),
        ("cron(15 3 ? * MON *)", "15 3 * * 1", "P7D"),
        ("cron(0 */6 * * ? *)", "0 0,6,12,18 * * *", "PT6H"),
    ],
)
def test_eventbridge_cron_becomes_azure_cron_with_its_window(
    dev_env: AzureEnvironment, expression: str, cron: str, window: str
) -> None:
    settings = load_settings(SETTINGS_FILE, overrides={"monitoring": {"schedule": expression}})
    (monitor,) = monitoring.build_monitor_schedules(
        dev_env, settings, deployment_name="blue", reference_data="azureml:r:1"
    )
    assert isinstance(monitor.trigger, CronTrigger)
    assert monitor.trigger.expression == cron
    for signal in monitor.create_monitor.monitoring_signals.values():
        assert signal.production_data.data_window.lookback_window_size == window


def test_declared_features_are_the_monitored_features(dev_env: AzureEnvironment) -> None:
    declared = load_settings(
        SETTINGS_FILE,
        overrides={"dataset": {"numeric": ["age", "tenure"], "categorical": ["area"]}},
    )
    monitor = monitoring.build_monitor_schedules(
        dev_env, declared, deployment_name="blue", reference_data="azureml:r:1"
    )[0]
    signals = monitor.create_monitor.monitoring_signals
    assert signals["data_drift"].features == ["age", "tenure", "area"]
    assert signals["data_quality"].features == ["age", "tenure", "area"]
    half = load_settings(SETTINGS_FILE, overrides={"dataset": {"numeric": ["age"]}})
    assert monitoring.monitored_features(half) == "all_features"


def test_the_deployment_times_scoring_out_as_mlops_yaml_says(
    dev_env: AzureEnvironment, settings: MlopsSettings
) -> None:
    # Issue 20: Azure's own default (5 s) applied whatever serving.scoring_timeout_seconds said.
    slow = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"scoring_timeout_seconds": 42.5})}
    )
    deployment = endpoint.build_deployment(
        dev_env,
        slow,
        name="blue",
        model="azureml:m:1",
        environment="azureml:mlcore:1",
        code_dir=Path(__file__).parent,
        scoring_script=Path(__file__).name,
    )
    assert deployment.request_settings.request_timeout_ms == 42_500
