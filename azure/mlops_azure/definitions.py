"""Every Azure ML entity of one environment, built offline from the two settings files."""

from __future__ import annotations

import shutil
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


@dataclass(frozen=True)
class Definitions:
    compute: AmlCompute
    environment: Environment
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
            "environment": self.environment,
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
    requirements = assets.runtime_requirements()
    environment = assets.build_environment(env, settings, requirements)
    training_data = assets.build_training_data(env, settings)
    reference_data = assets.build_reference_data(
        env, settings, assets.write_mltable(env, work_dir / "reference-mltable")
    )
    settings_data = assets.build_settings_data(settings, settings_file)
    components = build_components(settings, environment)
    pipeline = build_training_pipeline(
        env,
        settings,
        components,
        training_data=asset_ref(training_data),
        settings_data=asset_ref(settings_data),
        champion_model=champion_model,
        git_commit=git_commit,
    )
    deployment = endpoint.build_deployment(
        env,
        settings,
        name=deployment_name,
        model=model,
        environment=environment,
        code_dir=stage_serving_code(work_dir / "serving-code"),
        scoring_script=SCORING_SCRIPT,
    )
    monitor = monitoring.build_monitor_schedule(
        env, settings, deployment_name=deployment_name, reference_data=asset_ref(reference_data)
    )
    return Definitions(
        compute=assets.build_compute(env),
        environment=environment,
        training_data=training_data,
        reference_data=reference_data,
        settings_data=settings_data,
        components=components.all(),
        training_pipeline=pipeline,
        endpoint=endpoint.build_endpoint(env, settings),
        deployment=deployment,
        monitor=monitor,
    )
