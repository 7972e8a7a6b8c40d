"""The SageMaker model-build pipeline definition, built offline with SDK v3."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from mlcore.settings import load_settings, resolve_settings_path
from pipelines.sagemaker.definition import (
    APPROVAL_STATUS,
    ModelBuildOptions,
    PipelineTargets,
    metric_json_path,
    pipeline_definition,
    threshold_parameter_name,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TARGETS = PipelineTargets(
    role_arn="arn:aws:iam::123456789012:role/jobs",
    image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlcore:1",
    artifact_bucket="artifacts-bucket",
    model_package_group_name="churn-dev-models",
    default_input_data_url="s3://data-bucket/training-data/",
    region="eu-west-1",
    kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/abc",
)


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        steps[step["Name"]] = step
        pending.extend(
            step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
        )
    return steps


@pytest.fixture(scope="module")
def settings() -> Any:
    return load_settings(resolve_settings_path())


@pytest.fixture(scope="module")
def definition(settings: Any) -> dict[str, Any]:
    """Built with no AWS credentials reachable at all, as at `cdk synth` on a laptop or in CI."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        return json.loads(
            pipeline_definition("churn-dev-model-build", settings=settings, targets=TARGETS)
        )


@pytest.fixture(scope="module")
def variant(settings: Any) -> dict[str, Any]:
    """Spot training on, and a ceiling metric in the gate."""
    gate = settings.gate.model_copy(update={"max_metrics": {"log_loss": 0.5}})
    return json.loads(
        pipeline_definition(
            "p",
            settings=settings.model_copy(update={"gate": gate}),
            targets=TARGETS,
            options=ModelBuildOptions(
                use_spot_training=True, max_runtime_seconds=1800, max_spot_wait_seconds=3600
            ),
        )
    )


def test_prep_runs_mlcore_prep_on_the_data_parameter(definition: dict[str, Any]) -> None:
    prep = _steps(definition)["Prep"]["Arguments"]
    assert prep["AppSpecification"]["ContainerEntrypoint"] == ["mlcore", "prep"]
    (data,) = prep["ProcessingInputs"]
    assert data["S3Input"]["S3Uri"] == {"Get": "Parameters.InputDataUrl"}
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["InputDataUrl"]["DefaultValue"] == "s3://data-bucket/training-data/"


def test_training_uses_the_image_train_contract_with_lineage_hyperparameters(
    definition: dict[str, Any], settings: Any
) -> None:
    train = _steps(definition)["Train"]["Arguments"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == TARGETS.image_uri
    assert "ContainerEntrypoint" not in train["AlgorithmSpecification"]
    hyperparameters = train["HyperParameters"]
    assert hyperparameters["target"] == settings.dataset.target
    assert hyperparameters["git_commit"] == {"Get": "Parameters.GitCommit"}
    assert all(isinstance(v, str) for k, v in hyperparameters.items() if k != "git_commit")
    assert {c["ChannelName"] for c in train["InputDataConfig"]} == {"train", "validation", "spec"}


def test_training_instance_type_is_a_parameter(definition: dict[str, Any]) -> None:
    train = _steps(definition)["Train"]["Arguments"]
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}


def test_spot_training_is_off_by_default_and_on_by_option(
    definition: dict[str, Any], variant: dict[str, Any]
) -> None:
    assert "EnableManagedSpotTraining" not in _steps(definition)["Train"]["Arguments"]
    arguments = _steps(variant)["Train"]["Arguments"]
    assert arguments["EnableManagedSpotTraining"] is True
    assert arguments["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 3600,
    }


def test_spot_wait_shorter_than_runtime_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_spot_wait_seconds"):
        ModelBuildOptions(
            use_spot_training=True, max_runtime_seconds=3600, max_spot_wait_seconds=60
        )


def test_evaluation_reads_the_trained_model_and_test_split(definition: dict[str, Any]) -> None:
    evaluate = _steps(definition)["Evaluate"]
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]
    }
    assert inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert evaluate["PropertyFiles"] == [
        {
            "PropertyFileName": "Evaluation",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ]


def test_gate_compares_evaluation_json_with_threshold_parameters(
    settings: Any, definition: dict[str, Any]
) -> None:
    gate = _steps(definition)["QualityGate"]["Arguments"]
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    expected = {
        (metric_json_path(m), threshold_parameter_name("min", m)) for m in settings.gate.min_metrics
    }
    seen = {
        (c["LeftValue"]["Std:JsonGet"]["Path"], c["RightValue"]["Get"].removeprefix("Parameters."))
        for c in gate["Conditions"]
        if c["Type"] == "GreaterThanOrEqualTo"
    }
    assert seen == expected
    assert parameters["MinAuc"] == settings.gate.min_metrics["auc"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["GateFailed"]


def test_ceiling_metrics_become_less_than_conditions(variant: dict[str, Any]) -> None:
    gate = _steps(variant)["QualityGate"]["Arguments"]
    assert {
        "Type": "LessThanOrEqualTo",
        "LeftValue": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
                "Path": "binary_classification_metrics.log_loss.value",
            }
        },
        "RightValue": {"Get": "Parameters.MaxLogLoss"},
    } in gate["Conditions"]


def test_a_gate_without_thresholds_is_rejected(settings: Any) -> None:
    empty = settings.model_copy(
        update={"gate": settings.gate.model_copy(update={"min_metrics": {}, "max_metrics": {}})}
    )
    with pytest.raises(ValueError, match="needs at least one threshold"):
        pipeline_definition("p", settings=empty, targets=TARGETS)


def test_unknown_gate_metric_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"use one of \[.*'auc'.*\]"):
        metric_json_path("aucc")


def test_registers_pending_approval_with_lineage_metadata(
    settings: Any, definition: dict[str, Any]
) -> None:
    register = _steps(definition)["RegisterModel"]["Arguments"]
    assert register["ModelApprovalStatus"] == APPROVAL_STATUS == "PendingManualApproval"
    assert register["ModelPackageGroupName"] == "churn-dev-models"
    metadata = register["CustomerMetadataProperties"]
    assert metadata["git_commit"] == {"Get": "Parameters.GitCommit"}
    assert metadata["data_fingerprint"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.Prep.PropertyFiles.Lineage"
    }
    assert metadata["hp_learning_rate"] == "0.08"
    assert "Std:Join" in metadata["metric_auc"]
    assert len(metadata) <= 50  # SageMaker's limit on metadata entries


def test_registered_container_serves_with_the_same_image_in_the_target_region(
    definition: dict[str, Any],
) -> None:
    (container,) = _steps(definition)["RegisterModel"]["Arguments"]["InferenceSpecification"][
        "Containers"
    ]
    assert container["Image"] == TARGETS.image_uri
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"] == {"SAGEMAKER_REGION": "eu-west-1"}


def test_jobs_encrypt_with_the_given_key(definition: dict[str, Any]) -> None:
    steps = _steps(definition)
    for name in ("Prep", "Evaluate"):
        arguments = steps[name]["Arguments"]
        assert (
            arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            == TARGETS.kms_key_id
        )
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == TARGETS.kms_key_id
    assert steps["Train"]["Arguments"]["ResourceConfig"]["VolumeKmsKeyId"] == TARGETS.kms_key_id


def test_outputs_are_kept_per_execution(definition: dict[str, Any]) -> None:
    (output,) = _steps(definition)["Prep"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert {"Get": "Execution.PipelineExecutionId"} in output["S3Output"]["S3Uri"]["Std:Join"][
        "Values"
    ]


def test_definition_is_deterministic(settings: Any, definition: dict[str, Any]) -> None:
    # cdk diff must show no change to the pipeline unless its inputs change.
    again = pipeline_definition("churn-dev-model-build", settings=settings, targets=TARGETS)
    assert json.loads(again) == definition
