"""Every Azure ML entity of one environment, built offline from the two settings files.

The commands build only what they send (``train`` the pipeline job, ``rollout`` a
deployment and the monitors); ``apply --dry-run`` builds everything through
:func:`build_definitions`, so what is dumped is what the commands would send.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.ai.ml.entities import (
    AmlCompute,
    BatchEndpoint,
    CommandComponent,
    Data,
    Environment,
    JobSchedule,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    ModelBatchDeployment,
    MonitorSchedule,
    PipelineJob,
    Registry,
    Workspace,
)
from azure.mgmt.eventgrid.models import EventSubscription, SystemTopic

from mlcore.settings import MlopsSettings
from mlops_azure import assets, batch, drift_job, endpoint, monitoring, performance, retrain
from mlops_azure.components import build_components, source_fingerprint
from mlops_azure.config import REPO_ROOT, SETTINGS_FILE, SOURCE_DIR, AzureEnvironment
from mlops_azure.rollout import DeploymentSpec
from mlops_azure.schedules import schedule_names
from mlops_azure.training_pipeline import build_training_pipeline, reference_name

# The entry script that wraps mlcore's scoring with Azure's data collector.
SCORING_SCRIPT_SOURCE = REPO_ROOT / "azure" / "scoring" / "score.py"
SCORING_SCRIPT = "score.py"
PACKAGE_DIR = REPO_ROOT / "azure" / "mlops_azure"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def asset_ref(entity: Data | Environment) -> str:
    return f"azureml:{entity.name}:{entity.version}"


def stage_job_code(dest: Path, *, source_dir: Path = SOURCE_DIR) -> Path:
    """Copy mlcore and the in-job scripts (``mlops_azure.jobs``) into ``dest``: a job's code snapshot."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir / "mlcore", dest / "mlcore", ignore=_IGNORE)
    shutil.copytree(PACKAGE_DIR / "jobs", dest / "mlops_azure" / "jobs", ignore=_IGNORE)
    shutil.copy2(PACKAGE_DIR / "__init__.py", dest / "mlops_azure" / "__init__.py")
    return dest


def stage_serving_code(dest: Path, *, source_dir: Path = SOURCE_DIR) -> Path:
    """The job code plus the entry script: the code snapshot of a deployment."""
    stage_job_code(dest, source_dir=source_dir)
    shutil.copy2(SCORING_SCRIPT_SOURCE, dest / SCORING_SCRIPT)
    return dest


def runtime_environment(
    env: AzureEnvironment, settings: MlopsSettings, *, serving: bool = False
) -> Environment:
    """mlcore at the lock's versions, with the extras the settings need (xgboost, lightgbm: the
    model cannot be trained or unpickled without them)."""
    requirements = assets.locked_requirements(
        assets.environment_extras(settings, serving=serving), serving=serving
    )
    return assets.build_environment(env, settings, requirements, serving=serving)


def training_job(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    environment: Environment,
    code_dir: Path,
    data_version: str,
    run_key: str,
    champion_model: str | None = None,
    git_commit: str | None = None,
    settings_file: Path = SETTINGS_FILE,
) -> PipelineJob:
    """The training pipeline over the data snapshot ``data_version`` and the given settings file."""
    return build_training_pipeline(
        env,
        settings,
        build_components(settings, environment, code=stage_job_code(code_dir)),
        training_data=asset_ref(assets.build_training_data(env, settings, data_version)),
        settings_data=asset_ref(assets.build_settings_data(settings, settings_file)),
        run_key=run_key,
        champion_model=champion_model,
        git_commit=git_commit,
    )


@dataclass(frozen=True)
class ServingBuild:
    """Colour -> deployment of one spec, with the code staged once."""

    spec: DeploymentSpec
    build: Callable[[str], ManagedOnlineDeployment]


def deployment_builder(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: str,
    model_sha256: str | None,
    environment: Environment,
    code_dir: Path,
) -> ServingBuild:
    """Stage the serving code in ``code_dir``; the spec names it by its content hash."""
    staged = stage_serving_code(code_dir)
    spec = DeploymentSpec(
        model=model,
        environment=asset_ref(environment),
        code=f"sha256:{source_fingerprint(staged)}",
        model_sha256=model_sha256,
    )
    return ServingBuild(spec, spec_builder(env, settings, spec, code=staged))


def spec_builder(
    env: AzureEnvironment, settings: MlopsSettings, spec: DeploymentSpec, *, code: Path | str
) -> Callable[[str], ManagedOnlineDeployment]:
    """Colour -> the deployment of ``spec``; ``code`` is a staged folder or a registered code asset."""

    def build(colour: str) -> ManagedOnlineDeployment:
        return endpoint.build_deployment(
            env,
            settings,
            name=colour,
            model=spec.model,
            environment=spec.environment,
            code_dir=code,
            scoring_script=SCORING_SCRIPT,
            model_sha256=spec.model_sha256,
        )

    return build


def reference_ref(env: AzureEnvironment, settings: MlopsSettings, version: str) -> str:
    """The registry data asset of a model's prediction reference (as :func:`publish` shares it)."""
    return f"azureml://registries/{env.registry.name}/data/{reference_name(settings)}/versions/{version}"


@dataclass(frozen=True)
class Definitions:
    workspace: Workspace
    registry: Registry
    compute: AmlCompute
    environment: Environment
    serving_environment: Environment
    training_data: Data
    settings_data: Data
    components: dict[str, CommandComponent]
    training_pipeline: PipelineJob
    endpoint: ManagedOnlineEndpoint
    deployment: ManagedOnlineDeployment
    monitors: list[MonitorSchedule]
    performance: list[JobSchedule]
    spark_drift: list[JobSchedule]
    system_topic: SystemTopic
    retrain_subscription: EventSubscription
    # Scheduled batch scoring, when the environment has a batch section.
    batch: BatchDefinitions | None = None

    def entities(self) -> dict[str, Any]:
        """File stem -> azure-ai-ml entity, in the order they are applied."""
        return {
            "workspace": self.workspace,
            "registry": self.registry,
            "compute": self.compute,
            "environment-training": self.environment,
            "environment-serving": self.serving_environment,
            "data-training": self.training_data,
            "data-settings": self.settings_data,
            **{f"component-{step}": component for step, component in self.components.items()},
            "pipeline-training": self.training_pipeline,
            "endpoint": self.endpoint,
            f"deployment-{self.deployment.name}": self.deployment,
            **_numbered("monitor", self.monitors),
            **_numbered("schedule-performance", self.performance),
            **_numbered("schedule-spark-drift", self.spark_drift),
            **(self.batch.entities() if self.batch else {}),
        }

    def event_grid(self) -> dict[str, Any]:
        """File stem -> azure-mgmt-eventgrid model: the retrain wiring."""
        return {
            "eventgrid-system-topic": self.system_topic,
            "eventgrid-retrain-subscription": self.retrain_subscription,
        }


@dataclass(frozen=True)
class BatchDefinitions:
    """The batch endpoint, its model deployment and the scheduled run (:mod:`mlops_azure.batch`)."""

    environment: Environment
    endpoint: BatchEndpoint
    deployment: ModelBatchDeployment
    schedules: list[JobSchedule]

    def entities(self) -> dict[str, Any]:
        return {
            "environment-batch": self.environment,
            "batch-endpoint": self.endpoint,
            "batch-deployment": self.deployment,
            **_numbered("schedule-batch", self.schedules),
        }


def build_batch_definitions(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: str,
    model_sha256: str | None,
    job_environment: Environment,
    settings_data: str,
    code_dir: Path,
) -> BatchDefinitions | None:
    """What ``batch-deploy`` sends for ``model``; None without a batch section."""
    if env.batch is None:
        return None
    code = batch.stage_batch_code(code_dir)
    environment = batch.batch_environment(env, settings)
    return BatchDefinitions(
        environment=environment,
        endpoint=batch.build_batch_endpoint(env, settings),
        deployment=batch.build_batch_deployment(
            env,
            settings,
            model=model,
            model_sha256=model_sha256,
            environment=job_environment,
            code_dir=code,
        ),
        schedules=batch.build_batch_schedules(
            env,
            settings,
            model=model,
            settings_data=settings_data,
            environment=environment,
            code_dir=code,
        ),
    )


def _numbered(stem: str, schedules: list[Any]) -> dict[str, Any]:
    """``stem``, ``stem-2``, ... for the schedules of one family (one per Azure trigger)."""
    return {
        name: schedule
        for name, schedule in zip(schedule_names(stem, len(schedules)), schedules, strict=True)
    }


def build_definitions(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    work_dir: Path,
    model: str,
    reference_version: str,
    data_version: str,
    run_key: str,
    model_sha256: str | None = None,
    deployment_name: str = endpoint.DEPLOYMENT_COLOURS[0],
    champion_model: str | None = None,
    git_commit: str | None = None,
    settings_file: Path = SETTINGS_FILE,
) -> Definitions:
    """Build every entity; ``work_dir`` receives the staged job and serving code.

    ``model`` is the registered model the deployment serves, ``reference_version`` the
    version of its prediction reference, ``data_version`` the training data snapshot.
    """
    work_dir = work_dir.resolve()
    environment = runtime_environment(env, settings)
    serving_environment = runtime_environment(env, settings, serving=True)
    settings_data = assets.build_settings_data(settings, settings_file)
    job_code = stage_job_code(work_dir / "job-code")
    serving = deployment_builder(
        env,
        settings,
        model=model,
        model_sha256=model_sha256,
        environment=serving_environment,
        code_dir=work_dir / "serving-code",
    )
    return Definitions(
        workspace=assets.build_workspace(env, settings),
        registry=assets.build_registry(env, settings),
        compute=assets.build_compute(env),
        environment=environment,
        serving_environment=serving_environment,
        training_data=assets.build_training_data(env, settings, data_version),
        settings_data=settings_data,
        components=build_components(settings, environment, code=job_code).all(),
        training_pipeline=training_job(
            env,
            settings,
            environment=environment,
            code_dir=work_dir / "job-code",
            data_version=data_version,
            run_key=run_key,
            champion_model=champion_model,
            git_commit=git_commit,
            settings_file=settings_file,
        ),
        endpoint=endpoint.build_endpoint(env, settings),
        deployment=serving.build(deployment_name),
        monitors=monitoring.build_monitor_schedules(
            env,
            settings,
            deployment_name=deployment_name,
            reference_data=reference_ref(env, settings, reference_version),
        ),
        performance=performance.build_performance_schedule(
            env,
            settings,
            deployment_name=deployment_name,
            model=model,
            settings_data=asset_ref(settings_data),
            environment=environment,
            code_dir=job_code,
        ),
        spark_drift=drift_job.build_drift_schedules(
            env,
            settings,
            deployment_name=deployment_name,
            reference_data=reference_ref(env, settings, reference_version),
            settings_data=asset_ref(settings_data),
            code_dir=drift_job.stage_spark_code(work_dir / "spark-code"),
        ),
        system_topic=retrain.build_system_topic(env),
        retrain_subscription=retrain.build_retrain_subscription(env, settings),
        batch=build_batch_definitions(
            env,
            settings,
            model=model,
            model_sha256=model_sha256,
            job_environment=environment,
            settings_data=asset_ref(settings_data),
            code_dir=work_dir / "batch-code",
        ),
    )
