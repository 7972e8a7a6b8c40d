"""The pipeline steps and the container call mlcore CLI commands and arguments that exist.

The image is never built here (no Docker): instead every command it and the pipeline run is
parsed with mlcore's real argument parser, and the Dockerfile is checked against the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cdk.container_image import BUILD_CONTEXT, DOCKERFILE
from mlcore.cli import build_parser
from mlcore.settings import load_settings, resolve_settings_path
from pipelines.sagemaker import contract
from pipelines.sagemaker.definition import PipelineTargets, pipeline_definition

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE_TEXT = (REPOSITORY_ROOT / DOCKERFILE).read_text()


def _instructions(keyword: str) -> list[str]:
    return [
        line.split(None, 1)[1]
        for line in DOCKERFILE_TEXT.splitlines()
        if line.startswith(keyword + " ")
    ]


def _parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports unknown commands/arguments by exiting
        raise AssertionError(f"mlcore rejects {' '.join(argv)!r} (exit {exc.code})") from exc


@pytest.fixture(scope="module")
def steps() -> dict[str, dict[str, Any]]:
    targets = PipelineTargets(
        role_arn="arn:aws:iam::123456789012:role/jobs",
        image_uri="mlcore:test",
        artifact_bucket="artifacts",
        model_package_group_name="models",
        default_input_data_url="s3://data/training-data/",
        region="us-east-1",
    )
    settings = load_settings(resolve_settings_path())
    definition = json.loads(pipeline_definition("p", settings=settings, targets=targets))
    found: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        pending.extend(
            step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
        )
    return found


@pytest.mark.parametrize("step_name", ["Prep", "Evaluate"])
def test_processing_step_command_parses_with_the_mlcore_cli(
    steps: dict[str, Any], step_name: str
) -> None:
    app = steps[step_name]["Arguments"]["AppSpecification"]
    entrypoint, arguments = app["ContainerEntrypoint"], app["ContainerArguments"]
    assert entrypoint[0] == "mlcore"
    args = _parse([*entrypoint[1:], *arguments])
    assert args.settings == contract.CONTAINER_SETTINGS_PATH


def test_prep_writes_where_the_pipeline_uploads_from(steps: dict[str, Any]) -> None:
    prep = steps["Prep"]["Arguments"]
    app = prep["AppSpecification"]
    args = _parse([*app["ContainerEntrypoint"][1:], *app["ContainerArguments"]])
    (output,) = prep["ProcessingOutputConfig"]["Outputs"]
    assert args.output == output["S3Output"]["LocalPath"]
    (data,) = prep["ProcessingInputs"]
    assert args.data == data["S3Input"]["LocalPath"]


def test_evaluate_reads_the_inputs_the_pipeline_downloads(steps: dict[str, Any]) -> None:
    evaluate = steps["Evaluate"]["Arguments"]
    app = evaluate["AppSpecification"]
    args = _parse([*app["ContainerEntrypoint"][1:], *app["ContainerArguments"]])
    local = {i["InputName"]: i["S3Input"]["LocalPath"] for i in evaluate["ProcessingInputs"]}
    assert (args.model_dir, args.data) == (local["model"], local["test"])
    (output,) = evaluate["ProcessingOutputConfig"]["Outputs"]
    assert args.output == output["S3Output"]["LocalPath"]
    assert (
        not args.fail_on_gate
    )  # the ConditionStep decides; evaluate must finish and write evaluation.json


def test_training_invocation_follows_the_sagemaker_contract() -> None:
    # SageMaker runs `<image> train`; with ENTRYPOINT ["mlcore"] that is `mlcore train`, no paths.
    args = _parse(["train"])
    assert args.data is None and args.model_dir is None


def test_training_channels_are_the_ones_mlcore_reads(steps: dict[str, Any]) -> None:
    channels = {c["ChannelName"] for c in steps["Train"]["Arguments"]["InputDataConfig"]}
    assert channels == set(contract.TRAINING_CHANNELS)


def test_serving_invocation_parses() -> None:
    # SageMaker hosting runs `<image> serve`.
    _parse(["serve"])


def test_dockerfile_entrypoint_is_the_mlcore_console_script() -> None:
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["mlcore"]
    scripts = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlcore"] == "mlcore.cli:main"


def test_dockerfile_copies_only_files_in_the_build_context_that_exist() -> None:
    for copy in _instructions("COPY"):
        *sources, _destination = copy.split()
        for source in sources:
            assert (REPOSITORY_ROOT / source).exists(), source
            assert any(source == c or source.startswith(c + "/") for c in BUILD_CONTEXT), source


def test_settings_land_where_the_steps_and_mlcore_look_for_them() -> None:
    copies = [c.split() for c in _instructions("COPY")]
    assert ["mlops.yaml", contract.CONTAINER_SETTINGS_PATH] in copies
    # `mlcore train` (no --settings) reads ./mlops.yaml: the working directory must hold it.
    (workdir,) = _instructions("WORKDIR")
    assert str(Path(workdir) / "mlops.yaml") == contract.CONTAINER_SETTINGS_PATH


def test_dockerfile_installs_with_the_pinned_requirements_as_constraints() -> None:
    assert re.search(r"pip install [^\n]*-c constraints\.txt \.", DOCKERFILE_TEXT)
    assert "requirements.txt" in DOCKERFILE_TEXT
