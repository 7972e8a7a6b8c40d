"""mlcore's drift engine on Azure ML serverless Spark: the job, its code and its schedule.

With ``monitoring.engine: spark`` or ``auto`` in mlops.yaml, the monitors include a
scheduled serverless Spark job (the one step of a pipeline job, :mod:`mlops_azure.schedules`) (:mod:`mlops_azure.jobs.spark_drift` is its entry file)
beside Azure's own MonitorSchedule. It grades the window's collected traffic with mlcore's
rules (the verdicts AWS and the local run give) and tags a major grade as a breached signal,
so the one retrain subscription, with its cooldown, acts on it.

``auto`` is decided when each run starts, inside the job: the window's captured bytes
(file lengths only) above ``monitoring.spark_min_capture_mb`` run mlcore's Spark engine on
the executors, smaller windows its streaming engine on the driver. The compute is the same
serverless Spark session either way: one schedule holds one job type, and Azure ML starts
no other job from inside a run.

Azure's rules this follows (azure-ai-ml 1.35, entities/_job/spark_helpers.py and
spark_resource_configuration.py; the SDK's Spark samples and test configs): inputs and
outputs in ``direct`` mode (abfss:// URIs), of type uri_file, uri_folder or mltable (no
model inputs, hence the baseline inside the prediction reference asset); ``resources`` (serverless) instead of ``compute``; driver and executor cores
and memory always given, and with dynamic allocation 0 < min executors <= max; a file
entry; Python dependencies as the session's conda file in the
``spark.synapse.library.python.env`` conf (as Azure's own monitoring components do,
azureml-assets model_data_collector_preprocessor/spec.yaml); ``py_files`` on the
PYTHONPATH of the driver and every executor, which is where mlcore must be for the
functions Spark ships to executors.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import yaml
from azure.ai.ml import Input, Output, spark
from azure.ai.ml.entities import JobSchedule, ManagedIdentityConfiguration, PipelineJob
from azure.ai.ml.entities._builders import Spark

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings
from mlops_azure import assets
from mlops_azure.config import SOURCE_DIR, AzureEnvironment
from mlops_azure.endpoint import MODEL_INPUTS, MODEL_OUTPUTS, collected_data_uri
from mlops_azure.schedules import (
    TRIGGER_TIME_BINDING,
    TRIGGER_TIME_INPUT,
    azure_triggers,
    job_schedules,
    scheduled_pipeline,
)

PACKAGE_DIR = Path(__file__).resolve().parent
ENTRY_FILE = "spark_drift.py"
PY_FILES = "mlcore-job.zip"
# The runtime whose Python mlcore runs on (3.11) and whose Spark line mlcore[spark] pins (3.5).
SPARK_DRIFT_RUNTIME = "3.5"
PYTHON_ENV_CONF = "spark.synapse.library.python.env"
ENGINES_WITH_SPARK = ("spark", "auto")
# A fixed timestamp for the zip's entries, so the same sources give the same archive.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def uses_spark(settings: MlopsSettings) -> bool:
    return settings.monitoring.engine in ENGINES_WITH_SPARK


def _zip_packages(archive: Path, roots: dict[str, Path]) -> None:
    """``archive`` holding each package folder under its name, byte-identical per content."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for name, root in roots.items():
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                if "__pycache__" in file.parts or file.suffix == ".pyc":
                    continue
                info = zipfile.ZipInfo(f"{name}/{file.relative_to(root).as_posix()}", _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(info, file.read_bytes())


def stage_spark_code(dest: Path, *, source_dir: Path = SOURCE_DIR) -> Path:
    """The job's code folder: the entry file, and mlcore with the in-job scripts as py_files.

    Spark puts ``py_files`` on the PYTHONPATH of the driver and of every executor; the
    partition summaries run mlcore code on the executors, so mlcore travels that way.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(PACKAGE_DIR / "jobs" / ENTRY_FILE, dest / ENTRY_FILE)
    staging = dest.parent / f".{dest.name}-mlops_azure"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "jobs").mkdir(parents=True)
    shutil.copy2(PACKAGE_DIR / "__init__.py", staging / "__init__.py")
    for file in (PACKAGE_DIR / "jobs").glob("*.py"):
        shutil.copy2(file, staging / "jobs" / file.name)
    _zip_packages(dest / PY_FILES, {"mlcore": source_dir / "mlcore", "mlops_azure": staging})
    shutil.rmtree(staging)
    return dest


def python_env(env: AzureEnvironment, settings: MlopsSettings) -> str:
    """The session's conda file: mlcore's runtime from the job lock, the extras the settings need
    (less pyspark, which the runtime brings), and MLflow for the workspace (the breach tag)."""
    extras = assets.environment_extras(settings, serving=False)
    requirements = assets.locked_requirements(extras, serving=False)
    document = {
        "name": f"{settings.project}-spark-drift",
        "channels": ["conda-forge"],
        "dependencies": [{"pip": requirements}],
    }
    return str(yaml.safe_dump(document, sort_keys=False))


def _check_supported(env: AzureEnvironment, settings: MlopsSettings) -> None:
    if env.monitoring.spark_runtime_version != SPARK_DRIFT_RUNTIME:
        raise ConfigError(
            f"monitoring.engine {settings.monitoring.engine!r} runs mlcore on serverless Spark "
            f"runtime {SPARK_DRIFT_RUNTIME} (Python 3.11, which mlcore needs; Spark 3.5, which "
            f"mlcore[spark] pins); azure/environments/{env.name}.yaml has "
            f"monitoring.spark_runtime_version {env.monitoring.spark_runtime_version!r}: set "
            f'"{SPARK_DRIFT_RUNTIME}"'
        )


def build_drift_job(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    reference_data: str,
    settings_data: str,
    code_dir: Path,
) -> Spark:
    """The serverless Spark job over ``deployment_name``'s collected traffic.

    ``reference_data`` is the live model's prediction reference (``azureml:`` or
    registry URI), which holds its drift baseline; ``code_dir`` a staged code folder
    (:func:`stage_spark_code`).
    """
    _check_supported(env, settings)
    azure_triggers(settings.monitoring.schedule)  # refuses what Azure ML cannot schedule
    sizes = env.monitoring.spark_drift
    return spark(
        display_name=f"{settings.project} mlcore drift ({env.name})",
        description="mlcore's graded drift of the window's collected traffic vs the training baseline",
        experiment_name=f"{settings.project}-drift-{env.name}",
        code=str(code_dir),
        entry={"file": ENTRY_FILE},
        py_files=[PY_FILES],
        driver_cores=sizes.driver_cores,
        driver_memory=sizes.driver_memory,
        executor_cores=sizes.executor_cores,
        executor_memory=sizes.executor_memory,
        executor_instances=sizes.min_executors,
        dynamic_allocation_enabled=True,
        dynamic_allocation_min_executors=sizes.min_executors,
        dynamic_allocation_max_executors=sizes.max_executors,
        conf={PYTHON_ENV_CONF: python_env(env, settings)},
        inputs={
            "model_inputs": Input(
                type="uri_folder",
                path=collected_data_uri(env, deployment_name, MODEL_INPUTS),
                mode="direct",
            ),
            "model_outputs": Input(
                type="uri_folder",
                path=collected_data_uri(env, deployment_name, MODEL_OUTPUTS),
                mode="direct",
            ),
            "reference": Input(type="mltable", path=reference_data, mode="direct"),
            "settings": Input(type="uri_file", path=settings_data, mode="direct"),
            # The run's trigger time: the job judges the hours since the firing before it.
            TRIGGER_TIME_INPUT: TRIGGER_TIME_BINDING,
        },
        outputs={
            "prepared": Output(type="uri_folder", mode="direct"),
            "report": Output(type="uri_folder", mode="direct"),
        },
        args=(
            "--model-inputs ${{inputs.model_inputs}} --model-outputs ${{inputs.model_outputs}} "
            "--reference ${{inputs.reference}} --settings ${{inputs.settings}} "
            "--prepared ${{outputs.prepared}} --report ${{outputs.report}} "
            f"--trigger-time ${{{{inputs.{TRIGGER_TIME_INPUT}}}}}"
        ),
        # The workspace's managed identity reads the collected data and writes the reports,
        # whoever created the schedule.
        # spark()'s annotation names the REST client's ManagedIdentity; its docstring and its
        # conversion take this entity, as every other job builder's does.
        identity=ManagedIdentityConfiguration(),  # type: ignore[arg-type]
        resources={
            "instance_type": env.monitoring.spark_instance_type,
            "runtime_version": SPARK_DRIFT_RUNTIME,
        },
        tags={"environment": env.name, "signal": "mlcore_drift"},
    )


def build_drift_pipeline(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    reference_data: str,
    settings_data: str,
    code_dir: Path,
) -> PipelineJob:
    """The Spark drift job as the one step of the pipeline job its schedules submit."""
    display_name = f"{settings.project} mlcore drift ({env.name})"
    step = build_drift_job(
        env,
        settings,
        deployment_name=deployment_name,
        reference_data=reference_data,
        settings_data=settings_data,
        code_dir=code_dir,
    )
    return scheduled_pipeline(
        "drift",
        step,
        display_name=display_name,
        experiment_name=f"{settings.project}-drift-{env.name}",
        tags={"environment": env.name, "signal": "mlcore_drift"},
    )


def build_drift_schedules(
    env: AzureEnvironment,
    settings: MlopsSettings,
    *,
    deployment_name: str,
    reference_data: str,
    settings_data: str,
    code_dir: Path,
) -> list[JobSchedule]:
    """The Spark drift job on the monitor's schedule; none with ``monitoring.engine: streaming``."""
    if not uses_spark(settings):
        return []
    job = build_drift_pipeline(
        env,
        settings,
        deployment_name=deployment_name,
        reference_data=reference_data,
        settings_data=settings_data,
        code_dir=code_dir,
    )
    return job_schedules(
        drift_schedule_name(env, settings),
        settings.monitoring.schedule,
        job,
        display_name=f"{settings.project} mlcore drift ({env.name})",
        tags={"environment": env.name, "engine": settings.monitoring.engine},
    )


def drift_schedule_name(env: AzureEnvironment, settings: MlopsSettings) -> str:
    return f"{settings.project}-{env.name}-spark-drift"
