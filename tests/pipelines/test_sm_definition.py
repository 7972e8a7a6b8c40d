"""The SageMaker model-build pipeline definition, built offline with SDK v3 (fixture settings)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sm_fixtures import TARGETS, all_steps

from mlcore.evaluate import CLASSIFICATION_METRICS
from mlcore.settings import MlopsSettings
from pipelines.sagemaker import contract
from pipelines.sagemaker.definition import (
    APPROVAL_STATUS,
    CHECK_OUTPUTS,
    ModelBuildOptions,
    gate_metric_names,
    pipeline_definition,
)


@pytest.fixture(scope="module")
def variant(fixture_settings: MlopsSettings) -> dict[str, Any]:
    """Spot training on, a tracking server set."""
    return json.loads(
        pipeline_definition(
            "p",
            settings=fixture_settings,
            targets=dataclasses.replace(
                TARGETS,
                tracking_uri="arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/t",
            ),
            options=ModelBuildOptions(
                use_spot_training=True, max_runtime_seconds=1800, max_spot_wait_seconds=3600
            ),
        )
    )


def _args(step: dict[str, Any]) -> list[str]:
    app = step["Arguments"]["AppSpecification"]
    return [*app["ContainerEntrypoint"], *app["ContainerArguments"]]


def test_the_run_checks_its_inputs_before_any_job(definition: dict[str, Any]) -> None:
    check, has_data = definition["Steps"]
    assert (check["Name"], check["Type"]) == ("CheckInputs", "Lambda")
    assert check["FunctionArn"] == TARGETS.check_function_arn
    assert check["Arguments"] == {
        "input_data_url": {"Get": "Parameters.InputDataUrl"},
        "model_package_group_name": TARGETS.model_package_group_name,
    }
    assert [o["OutputName"] for o in check["OutputParameters"]] == list(CHECK_OUTPUTS)
    assert has_data["Name"] == "HasTrainingData"


def test_no_training_data_ends_the_run_without_a_job_or_a_failure(
    definition: dict[str, Any],
) -> None:
    # Finding 4: a first deploy has an empty bucket; the run must succeed, not fail TrainDev.
    has_data = definition["Steps"][1]["Arguments"]
    (condition,) = has_data["Conditions"]
    assert condition == {
        "Type": "Equals",
        "LeftValue": {"Get": "Steps.CheckInputs.OutputParameters['has_data']"},
        "RightValue": "true",
    }
    assert has_data["ElseSteps"] == []
    assert [s["Name"] for s in has_data["IfSteps"]] == ["Prep", "Train", "HasChampion"]


def test_prep_reads_the_whole_data_prefix_and_the_settings_artifact(
    steps: dict[str, Any],
) -> None:
    prep = steps["Prep"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in prep["ProcessingInputs"]}
    assert inputs["data"]["S3Uri"] == {"Get": "Parameters.InputDataUrl"}
    assert inputs["data"]["S3DataType"] == "S3Prefix"  # every drop under the prefix
    assert inputs["settings"]["S3Uri"] == TARGETS.settings_s3_uri
    assert _args(steps["Prep"])[-2:] == [
        "--settings",
        "/opt/ml/processing/input/settings/0f1e2d.yaml",
    ]


def test_training_runs_mlcore_train_with_the_settings_artifact(steps: dict[str, Any]) -> None:
    train = steps["Train"]["Arguments"]
    spec = train["AlgorithmSpecification"]
    assert spec["TrainingImage"] == TARGETS.image_uri
    assert spec["ContainerEntrypoint"] == [
        "mlcore",
        "train",
        "--settings",
        "/opt/ml/input/data/settings/0f1e2d.yaml",
    ]
    channels = {c["ChannelName"]: c for c in train["InputDataConfig"]}
    assert set(channels) == set(contract.TRAINING_CHANNELS)
    assert channels["settings"]["DataSource"]["S3DataSource"]["S3Uri"] == TARGETS.settings_s3_uri
    hyperparameters = train["HyperParameters"]
    assert hyperparameters["target"] == "diagnosis"
    assert hyperparameters["git_commit"] == {"Get": "Parameters.GitCommit"}


def test_training_instance_type_is_a_parameter(steps: dict[str, Any]) -> None:
    train = steps["Train"]["Arguments"]
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}


def test_spot_training_is_off_by_default_and_on_by_option(
    steps: dict[str, Any], variant: dict[str, Any]
) -> None:
    assert "EnableManagedSpotTraining" not in steps["Train"]["Arguments"]
    arguments = all_steps(variant)["Train"]["Arguments"]
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


def test_a_champion_is_passed_to_mlcore_evaluate_which_decides_the_gate(
    steps: dict[str, Any],
) -> None:
    # Finding 3: the same rules as Azure and the demo: mlcore's gate, champion included.
    has_champion = steps["HasChampion"]["Arguments"]
    assert has_champion["Conditions"][0]["LeftValue"] == {
        "Get": "Steps.CheckInputs.OutputParameters['has_champion']"
    }
    assert [s["Name"] for s in has_champion["IfSteps"]] == [
        "EvaluateVsChampion",
        "PassedGateVsChampion",
    ]
    assert [s["Name"] for s in has_champion["ElseSteps"]] == ["Evaluate", "PassedGate"]
    versus = steps["EvaluateVsChampion"]
    assert _args(versus)[:2] == ["mlcore", "evaluate"]
    champion_dir = _args(versus)[_args(versus).index("--champion-dir") + 1]
    (champion,) = [
        i for i in versus["Arguments"]["ProcessingInputs"] if i["InputName"] == "champion"
    ]
    assert champion["S3Input"]["LocalPath"] == champion_dir
    assert champion["S3Input"]["S3Uri"] == {
        "Get": "Steps.CheckInputs.OutputParameters['champion_model_url']"
    }


def test_without_a_champion_evaluate_gates_on_thresholds_alone(steps: dict[str, Any]) -> None:
    alone = _args(steps["Evaluate"])
    assert "--champion-dir" not in alone
    assert "champion" not in {
        i["InputName"] for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]
    }


def test_thresholds_cannot_be_lowered_per_execution(definition: dict[str, Any]) -> None:
    # Finding 3: MinAuc=0 at start time used to weaken the gate without a trace.
    names = {p["Name"] for p in definition["Parameters"]}
    assert names == {"InputDataUrl", "ProcessingInstanceType", "TrainingInstanceType", "GitCommit"}


def test_gate_metric_names_come_from_mlcore(fixture_settings: MlopsSettings) -> None:
    assert set(gate_metric_names(fixture_settings)) <= set(CLASSIFICATION_METRICS)
    gate = fixture_settings.gate.model_copy(update={"min_metrics": {"mse": 1.0}})
    with pytest.raises(ValueError, match=r"\['mse'\] .* not ones mlcore evaluate reports"):
        gate_metric_names(fixture_settings.model_copy(update={"gate": gate}))


def test_a_regression_metric_is_refused_for_a_classification_task(
    fixture_settings: MlopsSettings,
) -> None:
    gate = fixture_settings.gate.model_copy(update={"min_metrics": {"r2": 0.5}})
    with pytest.raises(ValueError, match="for classification"):
        gate_metric_names(fixture_settings.model_copy(update={"gate": gate}))


def test_a_gate_without_thresholds_is_rejected(fixture_settings: MlopsSettings) -> None:
    empty = fixture_settings.gate.model_copy(update={"min_metrics": {}, "max_metrics": {}})
    with pytest.raises(ValueError, match="needs at least one threshold"):
        pipeline_definition(
            "p", settings=fixture_settings.model_copy(update={"gate": empty}), targets=TARGETS
        )


@pytest.mark.parametrize("register", ["RegisterModel", "RegisterVsChampion"])
def test_registered_metadata_records_the_gate_that_was_applied(
    steps: dict[str, Any], register: str
) -> None:
    metadata = steps[register]["Arguments"]["CustomerMetadataProperties"]
    assert metadata["gate_min_auc"] == "0.8" and metadata["gate_min_accuracy"] == "0.7"
    assert metadata["gate_champion_tolerance"] == "0.01"
    assert metadata["gate_champion_confidence"] == "0.95"
    assert metadata["gate_settings_sha256"] == "sha256:fixture"
    champion = metadata["gate_champion_package_arn"]
    if register == "RegisterModel":
        assert champion == "none"
    else:
        assert champion == {"Get": "Steps.CheckInputs.OutputParameters['champion_package_arn']"}
    assert len(metadata) <= 50  # SageMaker's limit on metadata entries


def test_registers_pending_approval_with_lineage_metadata(steps: dict[str, Any]) -> None:
    register = steps["RegisterModel"]["Arguments"]
    assert register["ModelApprovalStatus"] == APPROVAL_STATUS == "PendingManualApproval"
    assert register["ModelPackageGroupName"] == "acme-dev-models"
    metadata = register["CustomerMetadataProperties"]
    assert metadata["git_commit"] == {"Get": "Parameters.GitCommit"}
    assert metadata["data_fingerprint"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.Prep.PropertyFiles.Lineage"
    }
    assert metadata["hp_C"] == "1.0"
    assert metadata["metric_auc"]["Std:Join"]["Values"][0]["Std:JsonGet"] == {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Gate"},
        "Path": "challenger.auc",
    }


def test_registered_container_serves_with_the_same_image_in_the_target_region(
    steps: dict[str, Any],
) -> None:
    (container,) = steps["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["Image"] == TARGETS.image_uri
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"] == {"SAGEMAKER_REGION": "eu-west-1"}


def test_jobs_encrypt_with_the_given_key(steps: dict[str, Any]) -> None:
    for name in ("Prep", "Evaluate", "EvaluateVsChampion"):
        arguments = steps[name]["Arguments"]
        assert (
            arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            == TARGETS.kms_key_id
        )
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == TARGETS.kms_key_id
    assert steps["Train"]["Arguments"]["ResourceConfig"]["VolumeKmsKeyId"] == TARGETS.kms_key_id


def test_outputs_are_kept_per_execution(steps: dict[str, Any]) -> None:
    (output,) = steps["Prep"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert {"Get": "Execution.PipelineExecutionId"} in output["S3Output"]["S3Uri"]["Std:Join"][
        "Values"
    ]


def test_the_pipeline_asks_for_no_sagemaker_experiment(definition: dict[str, Any]) -> None:
    # Finding 10: the SDK's default PipelineExperimentConfig needs Experiments permissions
    # the pipeline role does not have; runs are tracked in MLflow instead.
    assert definition.get("PipelineExperimentConfig") is None


def test_a_tracking_server_reaches_every_job_as_mlflow_tracking_uri(
    variant: dict[str, Any], steps: dict[str, Any]
) -> None:
    uri = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/t"
    found = all_steps(variant)
    for name in ("Prep", "Evaluate", "EvaluateVsChampion", "Train"):
        assert found[name]["Arguments"]["Environment"] == {"MLFLOW_TRACKING_URI": uri}, name
        assert "MLFLOW_TRACKING_URI" not in steps[name]["Arguments"].get("Environment", {})


def test_definition_is_deterministic(
    fixture_settings: MlopsSettings, definition: dict[str, Any]
) -> None:
    # cdk diff must show no change to the pipeline unless its inputs change.
    again = pipeline_definition(
        "acme-dev-model-build",
        settings=fixture_settings,
        targets=TARGETS,
        settings_digest="sha256:fixture",
    )
    assert json.loads(again) == definition


def test_the_sdk_still_rejects_an_invalid_config_after_the_schema_check_is_cached() -> None:
    # definition.py checks the SDK's config schema once instead of on every lookup; configs
    # themselves must still be validated each time, as jsonschema.validate would.
    import jsonschema
    from sagemaker.core.config.config_manager import SageMakerConfig

    import pipelines.sagemaker.definition  # noqa: F401  (installs the cached validator)

    valid = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {}}}}
    SageMakerConfig.validate_sagemaker_config(valid)
    invalid = {
        "SchemaVersion": "1.0",
        "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        SageMakerConfig.validate_sagemaker_config(invalid)
