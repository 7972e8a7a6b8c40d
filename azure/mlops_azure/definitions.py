"""Every Azure ML entity of one environment, built offline from the two settings files.

The commands build only what they send (``train`` the pipeline job, ``rollout`` a
deployment and the monitor); ``apply --dry-run`` builds everything through
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
    CommandComponent,
    Data,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    MonitorSchedule,
    PipelineJob,
)

from mlcore.settings import MlopsSettings
from mlops_azure import assets, endpoint, monitoring
from mlops_azure.components import build_components
from mlops_azure.config import REPO_ROOT, SETTINGS_FILE, SOURCE_DIR, AzureEnvironment
from mlops_azure.training_pipeline import build_training_pipeline

# The entry script that wraps mlcore's scoring with Azure's data collector.
SCORING_SCRIPT_SOURCE = REPO_ROOT / "azure" / "scoring" / "score.py"
SCORING_SCRIPT = "score.py"


def asset_ref(entity: Data | Environment) -> str:
    return f"azureml:{entity.name}:{entity.version}"


def stage_serving_code(dest: Path, *, source_dir: Path = SOURCE_DIR) -> Path:
    """Copy mlcore and the entry script into ``dest``: the code snapshot of a deployment."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        source_dir / "mlcore",
        dest / "mlcore",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copy2(SCORING_SCRIPT_SOURCE, dest / SCORING_SCRIPT)
    return dest


def runtime_environment(
    env: AzureEnvironment, settings: MlopsSettings, *, serving: bool = False
) -> Environment:
    return assets.build_environment(env, settings, assets.runtime_requirements(), serving=serving)


def training_job(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    environment: Environment,
    champion_model: str | None = None,
    git_commit: str | None = None,
    settings_file: Path = SETTINGS_FILE,
) -> PipelineJob:
    """The training pipeline over the environment's data asset and the given settings file."""
    return build_training_pipeline(
        env,
        settings,
        build_components(settings, environment),
        training_data=asset_ref(assets.build_training_data(env, settings)),
        settings_data=asset_ref(assets.build_settings_data(settings, settings_file)),
        champion_model=champion_model,
        git_commit=git_commit,
    )


def deployment_builder(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: str,
    environment: Environment,
    code_dir: Path,
) -> Callable[[str], ManagedOnlineDeployment]:
    """Stage the serving code in ``code_dir`` once; return colour -> deployment of ``model``."""
    staged = stage_serving_code(code_dir)

    def build(colour: str) -> ManagedOnlineDeployment:
        return endpoint.build_deployment(
            env,
            settings,
            name=colour,
            model=model,
            environment=environment,
            code_dir=staged,
            scoring_script=SCORING_SCRIPT,
        )

    return build


def monitor_for(
    env: AzureEnvironment, settings: MlopsSettings, deployment_name: str
) -> MonitorSchedule:
    """The monitor of ``deployment_name``, against the reference data asset."""
    return monitoring.build_monitor_schedule(
        env,
        settings,
        deployment_name=deployment_name,
        reference_data=assets.reference_data_ref(env, settings),
    )


@dataclass(frozen=True)
class Definitions:
    compute: AmlCompute
    environment: Environment
    serving_environment: Environment
    training_data: Data
    reference_data: Data
    settings_data: Data
    components: dict[str, CommandComponent]
    training_pipeline: PipelineJob
    endpoint: ManagedOnlineEndpoint
    deployment: ManagedOnlineDeployment
    monitor: MonitorSchedule

    def entities(self) -> dict[str, Any]:
        """File stem -> entity, in the order they are applied."""
        return {
            "compute": self.compute,
            "environment-training": self.environment,
            "environment-serving": self.serving_environment,
            "data-training": self.training_data,
            "data-reference": self.reference_data,
            "data-settings": self.settings_data,
            **{f"component-{step}": component for step, component in self.components.items()},
            "pipeline-training": self.training_pipeline,
            "endpoint": self.endpoint,
            f"deployment-{self.deployment.name}": self.deployment,
            "monitor": self.monitor,
        }


def build_definitions(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    work_dir: Path,
    model: str,
    deployment_name: str = endpoint.DEPLOYMENT_COLOURS[0],
    champion_model: str | None = None,
    git_commit: str | None = None,
    settings_file: Path = SETTINGS_FILE,
) -> Definitions:
    """Build every entity; ``work_dir`` receives the MLTable file and the deployment's code.

    ``model`` is the registered model the deployment serves (``azureml:name:version``).
    """
    work_dir = work_dir.resolve()
    environment = runtime_environment(env, settings)
    serving_environment = runtime_environment(env, settings, serving=True)
    return Definitions(
        compute=assets.build_compute(env),
        environment=environment,
        serving_environment=serving_environment,
        training_data=assets.build_training_data(env, settings),
        reference_data=assets.build_reference_data(
            env, settings, assets.write_mltable(env, work_dir / "reference-mltable")
        ),
        settings_data=assets.build_settings_data(settings, settings_file),
        components=build_components(settings, environment).all(),
        training_pipeline=training_job(
            env,
            settings,
            environment=environment,
            champion_model=champion_model,
            git_commit=git_commit,
            settings_file=settings_file,
        ),
        endpoint=endpoint.build_endpoint(env, settings),
        deployment=deployment_builder(
            env,
            settings,
            model=model,
            environment=serving_environment,
            code_dir=work_dir / "serving-code",
        )(deployment_name),
        monitor=monitor_for(env, settings, deployment_name),
    )
