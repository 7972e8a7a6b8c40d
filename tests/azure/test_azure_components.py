"""The four command components and the training pipeline: valid, and calling mlcore's real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from azure.ai.ml.entities import CommandComponent, PipelineJob
from mlops_azure.components import build_components
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions
from mlops_azure.training_pipeline import (
    REFERENCE_OUTPUT,
    REGISTERED_OUTPUT,
    build_training_pipeline,
)

from mlcore.cli import build_parser
from mlcore.settings import MlopsSettings

_PLACEHOLDER = re.compile(r"\$\{\{(inputs|outputs)\.(\w+)\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]")


def render(component: CommandComponent, *, omit_optional: bool = False) -> list[str]:
    """The command line the component runs, with made-up paths for its inputs and outputs."""
    command = component.command
    command = _OPTIONAL.sub("" if omit_optional else r"\1", command)
    return shlex.split(_PLACEHOLDER.sub(lambda m: f"/mnt/{m.group(1)}/{m.group(2)}", command))


@pytest.mark.parametrize("step", ["prep", "train", "evaluate", "reference", "register"])
def test_component_validates_offline(definitions: Definitions, step: str) -> None:
    component = definitions.components[step]
    assert component._validate().passed, component._validate()
    assert (
        component.environment
        == f"azureml:{definitions.environment.name}:{definitions.environment.version}"
    )
    code = definitions.components["prep"].code
    assert component.code == code  # one staged snapshot: mlcore and the in-job scripts


@pytest.mark.parametrize("step", ["prep", "train", "evaluate"])
@pytest.mark.parametrize("omit_optional", [False, True])
def test_component_command_is_accepted_by_the_mlcore_cli(
    definitions: Definitions, step: str, omit_optional: bool
) -> None:
    argv = render(definitions.components[step], omit_optional=omit_optional)
    assert argv[:3] == ["python", "-m", "mlcore"]
    args = build_parser().parse_args(argv[3:])
    assert args.command == step
    assert args.settings == "/mnt/inputs/settings"


def test_evaluate_fails_on_a_failed_gate_and_passes_the_champion(definitions: Definitions) -> None:
    args = build_parser().parse_args(render(definitions.components["evaluate"])[3:])
    assert args.fail_on_gate is True
    assert args.champion_dir == "/mnt/inputs/champion_model"
    assert args.data == "/mnt/inputs/prepared/test"
    without = build_parser().parse_args(
        render(definitions.components["evaluate"], omit_optional=True)[3:]
    )
    assert without.champion_dir is None and without.fail_on_gate is True


def test_train_reads_the_prep_contract(definitions: Definitions) -> None:
    args = build_parser().parse_args(render(definitions.components["train"])[3:])
    assert (args.data, args.validation, args.spec) == (
        "/mnt/inputs/prepared/train",
        "/mnt/inputs/prepared/validation",
        "/mnt/inputs/prepared/spec.json",
    )
    assert args.model_dir == "/mnt/outputs/model"


def test_register_copies_the_model_and_its_evaluation_only(definitions: Definitions) -> None:
    register = definitions.components["register"]
    assert set(register.inputs) == {"model", "evaluation", "reference"}
    assert "mlcore" not in register.command  # no ML logic: a copy of what the gate approved
    assert register.outputs["registered_model"].type == "custom_model"
    assert register.outputs["registered_reference"].type == "mltable"


def test_reference_step_runs_the_reference_job_on_the_validation_split(
    definitions: Definitions,
) -> None:
    argv = render(definitions.components["reference"])
    assert argv[:3] == ["python", "-m", "mlops_azure.jobs.reference"]
    assert argv[argv.index("--data") + 1] == "/mnt/inputs/prepared/validation"


def test_component_version_follows_the_source(
    settings: MlopsSettings, definitions: Definitions, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mlcore").mkdir()
    (tmp_path / "mlcore" / "__init__.py").write_text("x = 1\n")
    one = build_components(settings, definitions.environment, code=tmp_path).prep.version
    (tmp_path / "mlcore" / "__init__.py").write_text("x = 2\n")
    two = build_components(settings, definitions.environment, code=tmp_path).prep.version
    assert one != two


def test_pipeline_validates_and_wires_the_steps(definitions: Definitions) -> None:
    job = definitions.training_pipeline
    assert job._validate().passed, job._validate()
    document = job._to_dict()
    jobs = document["jobs"]
    assert list(jobs) == ["prep", "train", "evaluate", "reference", "register"]
    assert jobs["evaluate"]["inputs"]["model"]["path"] == "${{parent.jobs.train.outputs.model}}"
    # register consumes evaluate's output: it cannot start before the gate has passed.
    assert (
        jobs["register"]["inputs"]["evaluation"]["path"]
        == "${{parent.jobs.evaluate.outputs.evaluation}}"
    )
    assert jobs["register"]["inputs"]["model"]["path"] == "${{parent.jobs.train.outputs.model}}"
    assert (
        jobs["register"]["outputs"][REGISTERED_OUTPUT]
        == "${{parent.outputs." + REGISTERED_OUTPUT + "}}"
    )


def test_only_the_register_output_is_registered_and_failure_stops_the_pipeline(
    definitions: Definitions,
) -> None:
    job = definitions.training_pipeline
    assert job.settings.continue_on_step_failure is False
    assert job.settings.default_compute == "cpu-cluster"
    assert job.outputs[REGISTERED_OUTPUT].name == "acme-risk-model"
    assert job.outputs[REFERENCE_OUTPUT].name == "acme-risk-prediction-reference"
    # Both at the run's own version: the model names its reference exactly.
    assert job.outputs[REGISTERED_OUTPUT].version == job.outputs[REFERENCE_OUTPUT].version
    assert job.outputs[REGISTERED_OUTPUT].version == job.tags["run_key"]
    assert list(job.outputs) == [REGISTERED_OUTPUT, REFERENCE_OUTPUT]


def test_pipeline_with_a_champion_and_commit(
    dev_env: AzureEnvironment, settings: MlopsSettings, definitions: Definitions
) -> None:
    code = definitions.components["prep"].code
    components = build_components(settings, definitions.environment, code=Path(code))
    job: PipelineJob = build_training_pipeline(
        dev_env,
        settings,
        components,
        training_data="azureml:acme-risk-training-data:snapshot-1",
        settings_data="azureml:acme-risk-settings:abc",
        run_key="20250102030405",
        champion_model="azureml:acme-risk-model:4",
        git_commit="0123abc",
    )
    assert job._validate().passed
    document = job._to_dict()
    assert document["inputs"]["champion"]["path"] == "azureml:acme-risk-model:4"
    assert (
        document["jobs"]["evaluate"]["inputs"]["champion_model"]["path"]
        == "${{parent.inputs.champion}}"
    )
    assert document["jobs"]["train"]["inputs"]["git_commit"] == "0123abc"
    assert job.tags["git_commit"] == "0123abc"
