"""The managed online endpoint and its blue/green deployments, with the data collector on."""

from __future__ import annotations

from pathlib import Path

from azure.ai.ml.entities import (
    CodeConfiguration,
    DataCollector,
    DeploymentCollection,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    OnlineRequestSettings,
    ProbeSettings,
)

from mlcore.settings import MlopsSettings
from mlops_azure.config import AzureEnvironment

DEPLOYMENT_COLOURS = ("blue", "green")
# Tags the rollout reads back from Azure: which model a deployment serves, and which
# model the endpoint served before the last completed rollout (for rollback).
MODEL_TAG = "model"
LIVE_MODEL_TAG = "live_model"
PREVIOUS_MODEL_TAG = "previous_model"
# Collections the monitors read: the features the model saw and what it answered.
MODEL_INPUTS = "model_inputs"
MODEL_OUTPUTS = "model_outputs"


def build_endpoint(env: AzureEnvironment, settings: MlopsSettings) -> ManagedOnlineEndpoint:
    """The endpoint alone; traffic is given to deployments by the rollout."""
    return ManagedOnlineEndpoint(
        name=env.endpoint.name,
        description=f"{settings.project} model, blue/green deployments ({env.name})",
        auth_mode=env.endpoint.auth_mode,
        public_network_access=env.endpoint.public_network_access,
        tags={"environment": env.name, "project": settings.project},
    )


def other_colour(colour: str | None) -> str:
    """The deployment name a new model goes to: whichever colour is not live."""
    if colour is None:
        return DEPLOYMENT_COLOURS[0]
    if colour not in DEPLOYMENT_COLOURS:
        raise ValueError(
            f"deployment {colour!r} is not one of {DEPLOYMENT_COLOURS}: this endpoint was not "
            "deployed by mlops_azure; move its traffic to a blue or green deployment first"
        )
    return DEPLOYMENT_COLOURS[1 - DEPLOYMENT_COLOURS.index(colour)]


def build_deployment(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    name: str,
    model: str,
    environment: Environment,
    code_dir: Path,
    scoring_script: str,
) -> ManagedOnlineDeployment:
    """One colour of the endpoint, serving ``model`` (``azureml:name:version``).

    The data collector records model inputs and outputs at the sampling rate from
    mlops.yaml (or the environment's override), which is what the monitors read.
    """
    if name not in DEPLOYMENT_COLOURS:
        raise ValueError(f"deployment name must be one of {DEPLOYMENT_COLOURS}, got {name!r}")
    if not model.startswith("azureml:"):
        raise ValueError(
            f"model must be a registered model reference 'azureml:name:version', got {model!r}"
        )
    if not (code_dir / scoring_script).is_file():
        raise FileNotFoundError(f"scoring script {scoring_script} not found under {code_dir}")
    percentage = (
        env.endpoint.capture_sampling_percentage or settings.monitoring.capture_sampling_percentage
    )
    collector = DataCollector(
        collections={
            MODEL_INPUTS: DeploymentCollection(enabled="true"),
            MODEL_OUTPUTS: DeploymentCollection(enabled="true"),
        },
        sampling_rate=percentage / 100,
    )
    probe = ProbeSettings(
        initial_delay=30, period=10, timeout=5, failure_threshold=6, success_threshold=1
    )
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=env.endpoint.name,
        description=f"{settings.project} {model.removeprefix('azureml:')}",
        model=model,
        environment=f"azureml:{environment.name}:{environment.version}",
        code_configuration=CodeConfiguration(code=str(code_dir), scoring_script=scoring_script),
        instance_type=env.endpoint.instance_type,
        instance_count=env.endpoint.instance_count,
        request_settings=OnlineRequestSettings(
            request_timeout_ms=5000, max_concurrent_requests_per_instance=1
        ),
        liveness_probe=probe,
        readiness_probe=probe,
        data_collector=collector,
        app_insights_enabled=True,
        tags={MODEL_TAG: model.removeprefix("azureml:"), "environment": env.name},
    )
