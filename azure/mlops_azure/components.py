"""Command components for prep, train, evaluate and register.

Each component runs the ``mlcore`` command line with inputs and outputs as
arguments (the Azure ML command-job style of the mlcore contract); none holds ML
logic of its own. The ``reference`` step runs :mod:`mlops_azure.jobs.reference`, which
writes mlcore's predictions on the validation split as the MLTable Azure's monitors
read. The code snapshot (:func:`mlops_azure.definitions.stage_job_code`) holds mlcore
and those job scripts, so the steps run the same code CI tested.

The steps log to the workspace's MLflow tracking: Azure ML sets ``MLFLOW_TRACKING_URI``
in every job, and the environment carries ``mlflow-skinny`` and ``azureml-mlflow``
(:data:`mlops_azure.assets.JOB_REQUIREMENTS_FILE`), which mlcore's tracking uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from azure.ai.ml import Input, Output
from azure.ai.ml.entities import CommandComponent, Environment

from mlcore import __version__ as mlcore_version
from mlcore.cli import EXIT_GATE_FAILED as GATE_FAILED_EXIT_CODE
from mlcore.settings import MlopsSettings

__all__ = ["GATE_FAILED_EXIT_CODE", "TrainingComponents", "build_components", "source_fingerprint"]


@dataclass(frozen=True)
class TrainingComponents:
    prep: CommandComponent
    train: CommandComponent
    evaluate: CommandComponent
    reference: CommandComponent
    register: CommandComponent

    def all(self) -> dict[str, CommandComponent]:
        return {
            "prep": self.prep,
            "train": self.train,
            "evaluate": self.evaluate,
            "reference": self.reference,
            "register": self.register,
        }


def source_fingerprint(source_dir: Path) -> str:
    """A short hash of every Python file under ``source_dir``: the code the components run."""
    digest = hashlib.sha256()
    for path in sorted(source_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(source_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


@dataclass(frozen=True)
class _Shared:
    """What every step's component has in common."""

    settings: MlopsSettings
    environment: Environment
    code: Path
    version: str


def _component(
    shared: _Shared,
    step: str,
    *,
    display_name: str,
    description: str,
    inputs: dict[str, Input],
    outputs: dict[str, Output],
    command: str,
) -> CommandComponent:
    environment = shared.environment
    return CommandComponent(
        name=f"{shared.settings.project.replace('-', '_')}_{step}",
        version=shared.version,
        display_name=display_name,
        description=description,
        inputs=inputs,
        outputs=outputs,
        command=command,
        environment=f"azureml:{environment.name}:{environment.version}",
        code=str(shared.code),
        is_deterministic=True,
    )


def build_components(
    settings: MlopsSettings, environment: Environment, *, code: Path
) -> TrainingComponents:
    """The steps of the training pipeline, versioned by mlcore's version and the code's hash.

    ``code`` is the staged code snapshot (:func:`mlops_azure.definitions.stage_job_code`).
    """
    version = f"{mlcore_version}-{source_fingerprint(code)}"
    shared = _Shared(settings=settings, environment=environment, code=code, version=version)
    settings_input = Input(type="uri_file", description="mlops.yaml: gate and drift thresholds")
    prep = _component(
        shared,
        "prep",
        display_name="Prepare data",
        description="Validate the raw data, split it and record its fingerprint (mlcore prep).",
        inputs={"raw_data": Input(type="uri_folder"), "settings": settings_input},
        outputs={"prepared": Output(type="uri_folder")},
        command=(
            "python -m mlcore prep --data ${{inputs.raw_data}} --output ${{outputs.prepared}} "
            "--settings ${{inputs.settings}}"
        ),
    )
    train = _component(
        shared,
        "train",
        display_name="Train model",
        description="Fit the configured model on the train split (mlcore train).",
        inputs={
            "prepared": Input(type="uri_folder"),
            "settings": settings_input,
            "git_commit": Input(type="string", optional=True),
        },
        outputs={"model": Output(type="custom_model")},
        command=(
            "python -m mlcore train --data ${{inputs.prepared}}/train "
            "--validation ${{inputs.prepared}}/validation --spec ${{inputs.prepared}}/spec.json "
            "--model-dir ${{outputs.model}} --settings ${{inputs.settings}} "
            "$[[--git-commit ${{inputs.git_commit}}]]"
        ),
    )
    evaluate = _component(
        shared,
        "evaluate",
        display_name="Evaluate and gate",
        description=(
            "Score the challenger (and the champion, when given) on the test split and apply the "
            f"quality gate; exits {GATE_FAILED_EXIT_CODE} when the gate fails, which stops the "
            "pipeline before registration (mlcore evaluate --fail-on-gate)."
        ),
        inputs={
            "model": Input(type="custom_model"),
            "prepared": Input(type="uri_folder"),
            "settings": settings_input,
            "champion_model": Input(type="custom_model", optional=True),
        },
        outputs={"evaluation": Output(type="uri_folder")},
        command=(
            "python -m mlcore evaluate --model-dir ${{inputs.model}} "
            "--data ${{inputs.prepared}}/test --output ${{outputs.evaluation}} "
            "--settings ${{inputs.settings}} $[[--champion-dir ${{inputs.champion_model}}]] "
            "--fail-on-gate"
        ),
    )
    reference = _component(
        shared,
        "reference",
        display_name="Prediction reference",
        description=(
            "The validation split beside the model's predictions, as the MLTable Azure's "
            "drift and quality monitors compare production data with."
        ),
        inputs={"model": Input(type="custom_model"), "prepared": Input(type="uri_folder")},
        outputs={"reference": Output(type="mltable")},
        command=(
            "python -m mlops_azure.jobs.reference --model-dir ${{inputs.model}} "
            "--data ${{inputs.prepared}}/validation --output ${{outputs.reference}}"
        ),
    )
    register = _component(
        shared,
        "register",
        display_name="Register model",
        description=(
            "Package the model with its evaluation, gate decision and model card, and pass the "
            "prediction reference on; the pipeline registers both outputs. Runs only after the "
            "gate passed."
        ),
        inputs={
            "model": Input(type="custom_model"),
            "evaluation": Input(type="uri_folder"),
            "reference": Input(type="mltable"),
        },
        outputs={
            "registered_model": Output(type="custom_model"),
            "registered_reference": Output(type="mltable"),
        },
        command=(
            "mkdir -p ${{outputs.registered_model}}/evaluation && "
            "cp -R ${{inputs.model}}/. ${{outputs.registered_model}}/ && "
            "cp -R ${{inputs.evaluation}}/. ${{outputs.registered_model}}/evaluation/ && "
            "cp -R ${{inputs.reference}}/. ${{outputs.registered_reference}}/"
        ),
    )
    return TrainingComponents(
        prep=prep, train=train, evaluate=evaluate, reference=reference, register=register
    )
