"""Scheduled batch scoring on Azure ML: a batch endpoint, its model deployment, and the schedule.

Configured by the optional ``batch:`` section of ``azure/environments/<env>.yaml``
(:class:`~mlops_azure.config.BatchConfig`):

* :func:`build_batch_endpoint`: a ``BatchEndpoint`` (Microsoft Entra tokens only);
* :func:`build_batch_deployment`: a ``ModelBatchDeployment`` of a registry model, whose
  scoring script (``azure/scoring/batch_score.py``) is ``mlcore batch``'s own code
  (:mod:`mlcore.serve.azure_batch_scoring`), with ``MLCORE_MODEL_SHA256`` set from the
  registry model's tag, as the online deployment has it. The deployment's output action
  is ``summary_only``: the script writes predictions, the data-capture layout and rejects
  itself, as ``mlcore batch`` lays them out;
* :func:`build_batch_schedules`: a ``JobSchedule`` per Azure trigger of the schedule
  (``batch.schedule``, else ``monitoring.schedule``), each submitting a one-step pipeline
  job (:mod:`mlops_azure.schedules` says why a command job cannot be scheduled as it is).
  The step, :mod:`mlops_azure.jobs.batch_run`, invokes the endpoint's default deployment
  on the drop folder, waits for it, runs mlcore's drift job on the run's capture (a major
  grade tags the run as a breached signal, which the retrain subscription acts on) and
  writes the manifest ``_SUCCESS`` last. It runs as the compute cluster's managed
  identity, which needs the right to invoke the endpoint and to write the output folder
  (README, "Batch scoring on Azure").

Promotion (:func:`deploy_batch`, ``python -m mlops_azure batch-deploy``) deploys a registry
``name:version`` exactly as the online rollout does: a new deployment per model version,
made the endpoint's default only once it exists, then the schedule pointed at it; the
previous version's deployment stays, so going back is one more ``batch-deploy``.
"""

from __future__ import annotations

import re
from pathlib import Path

from azure.ai.ml import Input, MLClient, Output, command
from azure.ai.ml.constants import BatchDeploymentOutputAction
from azure.ai.ml.entities import (
    BatchEndpoint,
    BatchRetrySettings,
    CodeConfiguration,
    Data,
    Environment,
    JobSchedule,
    ManagedIdentityConfiguration,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    PipelineJob,
    ResourceConfiguration,
)
from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console

from mlcore.errors import ConfigError
from mlcore.schedule import Schedule
from mlcore.serve.azure_batch_scoring import (
    CHUNK_ROWS_ENV,
    ID_COLUMNS_ENV,
    MAX_REJECT_SHARE_ENV,
    SAMPLING_ENV,
)
from mlcore.settings import MlopsSettings
from mlops_azure import assets
from mlops_azure.config import REPO_ROOT, AzureEnvironment, BatchConfig
from mlops_azure.endpoint import MODEL_SHA256_ENV, MODEL_TAG, model_label
from mlops_azure.progress import wait_for
from mlops_azure.promote import RegistryModel
from mlops_azure.schedules import (
    TRIGGER_TIME_BINDING,
    TRIGGER_TIME_INPUT,
    job_schedules,
    scheduled_pipeline,
    stale_names,
)

BATCH_SCORING_SOURCE = REPO_ROOT / "azure" / "scoring" / "batch_score.py"
BATCH_SCORING_SCRIPT = "batch_score.py"
# Batch deployment names: letters, digits and dashes, at most 32 characters.
_DEPLOYMENT_NAME = re.compile(r"[^a-z0-9-]+")


def batch_config(env: AzureEnvironment) -> BatchConfig:
    if env.batch is None:
        raise ConfigError(
            f"environment {env.name!r} has no batch section: add `batch:` with endpoint_name, "
            f"input_path and output_path to azure/environments/{env.name}.yaml"
        )
    return env.batch


def batch_schedule(env: AzureEnvironment, settings: MlopsSettings) -> Schedule:
    """``batch.schedule``, else the monitors' schedule."""
    expression = batch_config(env).schedule
    return Schedule.parse(expression) if expression else settings.monitoring.schedule


def batch_environment(env: AzureEnvironment, settings: MlopsSettings) -> Environment:
    """mlcore's runtime plus azure-ai-ml (lock/azure-batch.txt): what the scheduled run needs to
    invoke the endpoint and grade its output."""
    requirements = assets.locked_requirements(
        assets.environment_extras(settings, serving=False), serving=False, batch=True
    )
    return assets.build_environment(env, settings, requirements, batch=True)


def stage_batch_code(dest: Path) -> Path:
    """The deployment's code: mlcore, the in-job scripts and the batch entry script."""
    from mlops_azure.definitions import stage_job_code

    stage_job_code(dest)
    (dest / BATCH_SCORING_SCRIPT).write_bytes(BATCH_SCORING_SOURCE.read_bytes())
    return dest


def build_batch_endpoint(env: AzureEnvironment, settings: MlopsSettings) -> BatchEndpoint:
    config = batch_config(env)
    return BatchEndpoint(
        name=config.endpoint_name,
        description=f"{settings.project} batch scoring ({env.name})",
        auth_mode="aad_token",
        tags={"environment": env.name, "project": settings.project},
    )


def deployment_name(model: str) -> str:
    """The batch deployment of a registry model version: ``v<version>`` (one per version)."""
    version = model_label(model).rsplit(":", 1)[-1].lower()
    return ("v" + _DEPLOYMENT_NAME.sub("-", version))[:32].rstrip("-")


def build_batch_deployment(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: str,
    model_sha256: str | None,
    environment: Environment | str,
    code_dir: Path | str,
) -> ModelBatchDeployment:
    """The model deployment of ``model`` (a registry or ``azureml:`` reference)."""
    config = batch_config(env)
    if not model.startswith("azureml:"):
        raise ValueError(f"model must be a registered model reference, got {model!r}")
    if model_sha256 is not None and not model_sha256.startswith("sha256:"):
        raise ValueError(f"model_sha256 must look like 'sha256:<hex>', got {model_sha256!r}")
    variables = {
        CHUNK_ROWS_ENV: str(config.chunk_rows),
        MAX_REJECT_SHARE_ENV: str(config.max_reject_share),
        SAMPLING_ENV: str(settings.monitoring.capture_sampling_percentage),
    }
    if settings.dataset.id_columns:
        variables[ID_COLUMNS_ENV] = ",".join(settings.dataset.id_columns)
    if model_sha256:
        variables[MODEL_SHA256_ENV] = model_sha256
    return ModelBatchDeployment(
        name=deployment_name(model),
        endpoint_name=config.endpoint_name,
        description=f"{settings.project} {model_label(model)}",
        model=model,
        environment=(environment if isinstance(environment, str) else assets_ref(environment)),
        code_configuration=CodeConfiguration(
            code=str(code_dir), scoring_script=BATCH_SCORING_SCRIPT
        ),
        compute=config.compute or env.compute.name,
        # The node count as resources, not settings.instance_count: the SDK dumps that as both,
        # and its own loader (load_model_batch_deployment) then refuses the file ("Can't set
        # instance_count when resources is provided"). The REST body is the same.
        resources=ResourceConfiguration(instance_count=config.instance_count),
        settings=ModelBatchDeploymentSettings(
            mini_batch_size=config.mini_batch_size,
            max_concurrency_per_instance=config.max_concurrency_per_instance,
            # The script writes every output itself, in mlcore batch's layout.
            output_action=BatchDeploymentOutputAction.SUMMARY_ONLY,
            retry_settings=BatchRetrySettings(
                max_retries=config.max_retries, timeout=config.timeout_seconds
            ),
            # One failed file fails the job: the scheduled run then writes no _SUCCESS.
            error_threshold=0,
            logging_level="info",
            environment_variables=variables,
        ),
        tags={MODEL_TAG: model_label(model), "environment": env.name},
    )


def assets_ref(environment: Environment) -> str:
    return f"azureml:{environment.name}:{environment.version}"


def build_batch_schedules(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: str,
    settings_data: str,
    environment: Environment,
    code_dir: Path,
) -> list[JobSchedule]:
    """The scheduled run: invoke the endpoint on the drop, then mlcore's drift job on it."""
    config = batch_config(env)
    display_name = f"{settings.project} batch scoring ({env.name})"
    step = command(
        display_name=display_name,
        description="invoke the batch endpoint on the drop, then mlcore drift on its capture",
        command=(
            "python -m mlops_azure.jobs.batch_run "
            f"--endpoint {config.endpoint_name} "
            f"--input-uri {assets.datastore_uri(env, config.input_path)} "
            f"--output-uri {assets.datastore_uri(env, config.output_path)} "
            "--runs ${{outputs.runs}} --model-dir ${{inputs.model}} "
            "--settings ${{inputs.settings}} "
            f"--trigger-time ${{{{inputs.{TRIGGER_TIME_INPUT}}}}} "
            f"--timeout-seconds {config.timeout_seconds * 4}"
        ),
        inputs={
            "model": Input(type="custom_model", path=model),
            "settings": Input(type="uri_file", path=settings_data),
            TRIGGER_TIME_INPUT: TRIGGER_TIME_BINDING,
        },
        # The runs folder itself, mounted read-write: the step writes each run's drift report
        # and manifest beside what the batch job wrote there.
        outputs={
            "runs": Output(
                type="uri_folder",
                path=assets.datastore_uri(env, config.output_path),
                mode="rw_mount",
            )
        },
        environment=assets_ref(environment),
        compute=env.compute.name,
        code=str(code_dir),
        identity=ManagedIdentityConfiguration(),
        tags={"environment": env.name, "signal": "batch_drift"},
    )
    job: PipelineJob = scheduled_pipeline(
        "batch",
        step,
        display_name=display_name,
        experiment_name=f"{settings.project}-batch-{env.name}",
        tags={"environment": env.name, "signal": "batch_drift"},
    )
    return job_schedules(
        batch_schedule_name(env, settings),
        batch_schedule(env, settings),
        job,
        display_name=display_name,
        tags={"environment": env.name, MODEL_TAG: model_label(model)},
    )


def batch_schedule_name(env: AzureEnvironment, settings: MlopsSettings) -> str:
    return f"{settings.project}-{env.name}-batch"


def check_schedules(schedules: list[JobSchedule]) -> None:
    """Convert each schedule as the SDK will, offline; ConfigError naming what it refuses."""
    from mlops_azure.monitor_plan import _check

    problems = []
    for schedule in schedules:
        try:
            _check(schedule)
        except Exception as exc:
            problems.append(f"{schedule.name}: {type(exc).__name__}: {exc}")
    if problems:
        raise ConfigError(
            "azure-ai-ml refuses the batch schedules, so nothing was changed:\n  - "
            + "\n  - ".join(problems)
        )


def deploy_batch(
    client: MLClient,
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    model: RegistryModel,
    settings_data: Data,
    work_dir: Path,
    console: Console,
) -> str:
    """Deploy ``model`` to the batch endpoint, make it the default, point the schedule at it.

    Everything the SDK could refuse (the schedules) is checked before anything changes;
    the default moves only once the new deployment exists. Returns the deployment's name.
    """
    environment = batch_environment(env, settings)
    job_environment = assets.build_environment(
        env,
        settings,
        assets.locked_requirements(
            assets.environment_extras(settings, serving=False), serving=False
        ),
    )
    code = stage_batch_code(work_dir / "batch-code")
    settings_ref = f"azureml:{settings_data.name}:{settings_data.version}"
    schedules = build_batch_schedules(
        env,
        settings,
        model=model.reference,
        settings_data=settings_ref,
        environment=environment,
        code_dir=code,
    )
    # Built again for the check: the SDK's conversion may fill in its defaults.
    check_schedules(
        build_batch_schedules(
            env,
            settings,
            model=model.reference,
            settings_data=settings_ref,
            environment=environment,
            code_dir=code,
        )
    )
    deployment = build_batch_deployment(
        env,
        settings,
        model=model.reference,
        model_sha256=model.model_sha256,
        environment=job_environment,
        code_dir=code,
    )
    client.data.create_or_update(settings_data)
    client.environments.create_or_update(job_environment)
    client.environments.create_or_update(environment)
    endpoint = build_batch_endpoint(env, settings)
    try:
        existing = client.batch_endpoints.get(endpoint.name)
        endpoint.defaults = existing.defaults
    except ResourceNotFoundError:
        pass
    wait_for(
        client.batch_endpoints.begin_create_or_update(endpoint),
        f"batch endpoint {endpoint.name}",
        console=console,
    )
    wait_for(
        client.batch_deployments.begin_create_or_update(deployment),
        f"batch deployment {deployment.name} ({model.label})",
        console=console,
    )
    endpoint = client.batch_endpoints.get(endpoint.name)
    endpoint.defaults = {"deployment_name": deployment.name}
    wait_for(
        client.batch_endpoints.begin_create_or_update(endpoint),
        f"batch endpoint {endpoint.name} -> {deployment.name}",
        console=console,
    )
    for schedule in schedules:
        wait_for(
            client.schedules.begin_create_or_update(schedule),
            f"Scheduled job {schedule.name}",
            console=console,
        )
    base = batch_schedule_name(env, settings)
    existing_names = [schedule.name for schedule in client.schedules.list()]
    for name in stale_names(base, [s.name for s in schedules], existing_names):
        wait_for(client.schedules.begin_disable(name), f"{name} off", console=console)
    console.print(f"[green]Batch endpoint {endpoint.name} scores with {model.label}[/green]")
    return deployment_name(model.reference)
