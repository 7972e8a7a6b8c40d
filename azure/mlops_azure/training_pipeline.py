"""The training pipeline: prep -> train -> evaluate (the gate) -> register.

The gate really gates: the evaluate step runs ``mlcore evaluate --fail-on-gate``,
which exits non-zero when the challenger misses a threshold or is worse than the
champion. Azure ML then fails that step, and because the pipeline does not continue
on step failure and register consumes evaluate's output, register never runs and
nothing is registered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.ai.ml import Input, dsl
from azure.ai.ml.entities import PipelineJob

from mlcore.settings import MlopsSettings
from mlops_azure.components import TrainingComponents
from mlops_azure.config import AzureEnvironment

REGISTERED_OUTPUT = "registered_model"
REFERENCE_OUTPUT = "registered_reference"
# Tag on the pipeline job: the version its registered reference data asset gets.
RUN_KEY_TAG = "run_key"


def model_name(settings: MlopsSettings) -> str:
    return f"{settings.project}-model"


def new_run_key(now: datetime | None = None) -> str:
    """A version for one training run: the UTC time as digits, so it is integer-shaped
    and newer runs sort higher."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def reference_name(settings: MlopsSettings) -> str:
    """The data asset of each model's prediction-drift reference (validation rows with predictions)."""
    return f"{settings.project}-prediction-reference"


def build_training_pipeline(
    env: AzureEnvironment,
    settings: MlopsSettings,
    components: TrainingComponents,
    *,
    training_data: str,
    settings_data: str,
    run_key: str,
    champion_model: str | None = None,
    git_commit: str | None = None,
) -> PipelineJob:
    """A pipeline job ready to submit.

    ``run_key`` (all digits, :func:`new_run_key`) is the version both registered outputs
    get: the model and its prediction reference, so each names the other exactly and
    the Train stage knows ``name:version`` without searching.

    ``training_data`` and ``settings_data`` are data asset references
    (``azureml:name:version``); ``champion_model`` is the registered model the
    challenger must beat (``azureml:name:version``), or None for the first model.
    A local settings path is not used here: the SDK dumps a pipeline's local input
    paths with an ``azureml:`` prefix, which no loader reads back as a file.
    """

    # The overloads of dsl.pipeline require func, whose default is None at run time.
    @dsl.pipeline(  # type: ignore[call-overload]
        name=f"{settings.project}-training",
        display_name=f"{settings.project} training ({env.name})",
        description="prep -> train -> evaluate with the quality gate -> register",
    )
    # No annotations: the dsl reads parameter types from the Input objects passed below.
    def training(raw_data, settings_yaml, champion=None):  # type: ignore[no-untyped-def]
        prep = components.prep(raw_data=raw_data, settings=settings_yaml)
        train = components.train(
            prepared=prep.outputs.prepared, settings=settings_yaml, git_commit=git_commit
        )
        evaluate = components.evaluate(
            model=train.outputs.model,
            prepared=prep.outputs.prepared,
            settings=settings_yaml,
            champion_model=champion,
        )
        reference = components.reference(model=train.outputs.model, prepared=prep.outputs.prepared)
        register = components.register(
            model=train.outputs.model,
            evaluation=evaluate.outputs.evaluation,
            reference=reference.outputs.reference,
        )
        return {
            REGISTERED_OUTPUT: register.outputs.registered_model,
            REFERENCE_OUTPUT: register.outputs.registered_reference,
        }

    job: PipelineJob = training(
        raw_data=Input(type="uri_folder", path=training_data),
        settings_yaml=Input(type="uri_file", path=settings_data),
        champion=Input(type="custom_model", path=champion_model) if champion_model else None,
    )
    # Naming the pipeline output registers it as a model when, and only when, register ran.
    # A dsl-built job's outputs are PipelineOutput objects, which the SDK annotates as
    # str | Output: neither has the name and version they take.
    outputs: dict[str, Any] = job.outputs
    outputs[REGISTERED_OUTPUT].name = model_name(settings)
    outputs[REGISTERED_OUTPUT].version = run_key
    outputs[REFERENCE_OUTPUT].name = reference_name(settings)
    outputs[REFERENCE_OUTPUT].version = run_key
    job_settings = job.settings  # the getter creates the settings when the job has none
    assert job_settings is not None
    job_settings.default_compute = env.compute.name
    job_settings.continue_on_step_failure = False
    job.experiment_name = env.experiment_name
    job.tags = {
        "environment": env.name,
        RUN_KEY_TAG: run_key,
        **({"git_commit": git_commit} if git_commit else {}),
    }
    return job
