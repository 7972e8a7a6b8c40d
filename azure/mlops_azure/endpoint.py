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
from mlops_azure.jobs.reference import output_columns

DEPLOYMENT_COLOURS = ("blue", "green")
# Tag on each deployment: the model it serves (name:version), for people reading the portal.
MODEL_TAG = "model"
# Collections the monitors read: the features the model saw and what it answered.
MODEL_INPUTS = "model_inputs"
MODEL_OUTPUTS = "model_outputs"
# Serving verifies model.joblib against this digest before unpickling (contract 1).
MODEL_SHA256_ENV = "MLCORE_MODEL_SHA256"
# One id per scored row, in both collections and in the response: the ground-truth join key.
INFERENCE_ID_COLUMN = "inference_id"

__all__ = ["output_columns"]


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
    environment: Environment | str,
    code_dir: Path | str,
    scoring_script: str,
    model_sha256: str | None = None,
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
    # A local folder must hold the script; a registered code asset (a rollback) is Azure's.
    local_code = not str(code_dir).startswith(("azureml:", "/subscriptions/"))
    if local_code and not (Path(code_dir) / scoring_script).is_file():
        raise FileNotFoundError(f"scoring script {scoring_script} not found under {code_dir}")
    if model_sha256 is not None and not model_sha256.startswith("sha256:"):
        raise ValueError(f"model_sha256 must look like 'sha256:<hex>', got {model_sha256!r}")
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
        description=f"{settings.project} {model_label(model)}",
        model=model,
        environment=(
            environment
            if isinstance(environment, str)
            else f"azureml:{environment.name}:{environment.version}"
        ),
        code_configuration=CodeConfiguration(code=str(code_dir), scoring_script=scoring_script),
        environment_variables={MODEL_SHA256_ENV: model_sha256} if model_sha256 else None,
        instance_type=env.endpoint.instance_type,
        instance_count=env.endpoint.instance_count,
        # Azure's scoring timeout is mlops.yaml's (serving.scoring_timeout_seconds), as the
        # SageMaker container's is; Azure's own default would be 5 s whatever the file says.
        request_settings=OnlineRequestSettings(
            request_timeout_ms=round(settings.serving.scoring_timeout_seconds * 1000),
            max_concurrent_requests_per_instance=1,
        ),
        liveness_probe=probe,
        readiness_probe=probe,
        data_collector=collector,
        app_insights_enabled=True,
        tags={MODEL_TAG: model_label(model), "environment": env.name},
    )


def model_label(model: str) -> str:
    """``name:version`` of a workspace (``azureml:n:v``) or registry model reference."""
    if model.startswith("azureml://registries/"):
        parts = model.split("/")
        # azureml://registries/<r>/models/<name>/versions/<version>
        return f"{parts[5]}:{parts[7]}"
    return model.removeprefix("azureml:")


def collected_data_uri(env: AzureEnvironment, deployment: str, collection: str) -> str:
    """Where the data collector writes a deployment's collection in the workspace blob store
    (Learn, how-to-collect-production-data: modelDataCollector/<endpoint>/<deployment>/<collection>)."""
    return (
        "azureml://datastores/workspaceblobstore/paths/modelDataCollector/"
        f"{env.endpoint.name}/{deployment}/{collection}/"
    )
