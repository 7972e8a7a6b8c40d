"""The model-build construct: the SageMaker pipeline resource, its roles and the model registry."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

pytestmark = pytest.mark.xdist_group("cdk_synth")


def _pipeline(template: Template) -> dict[str, Any]:
    (resource,) = template.find_resources("AWS::SageMaker::Pipeline").values()
    return resource


def _definition(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    body, variables = _pipeline(template)["Properties"]["PipelineDefinition"][
        "PipelineDefinitionBody"
    ]["Fn::Sub"]
    return json.loads(body), variables


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


def _role_named(template: Template, fragment: str) -> tuple[str, dict[str, Any]]:
    (match,) = [
        (k, v) for k, v in template.find_resources("AWS::IAM::Role").items() if fragment in k
    ]
    return match


def _statements_of(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_pipeline_is_deployed_with_a_per_environment_name(templates: dict[str, Template]) -> None:
    templates["dev"].has_resource_properties(
        "AWS::SageMaker::Pipeline", {"PipelineName": "acme-dev-model-build"}
    )


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_a_stage_that_does_not_train_deploys_no_idle_pipeline(
    templates: dict[str, Template], stage: str
) -> None:
    # Issue 9: "whether staging and prod also train becomes a per-stage setting (default
    # off)"; a stage with train: false serves promoted copies, so nothing there may run.
    template = templates[stage]
    template.resource_count_is("AWS::SageMaker::Pipeline", 0)
    # No CheckInputs step: the only function is CDK's deploy-time custom-resource provider of a
    # networked stage that looks its prefix lists up (none here: the synth gives them).
    functions = template.find_resources("AWS::Lambda::Function")
    assert all(name.startswith("AWS679f53fac002430cb0da5b7982bd2287") for name in functions), (
        sorted(functions)
    )
    template.resource_count_is("AWS::Events::Rule", 0)
    roles = template.find_resources("AWS::IAM::Role")
    assert not [r for r in roles.values() if "sagemaker.amazonaws.com" in json.dumps(r)]
    outputs = template.to_json()["Outputs"]
    assert "ModelBuildPipelineName" not in outputs and "DataBucketName" not in outputs
    # The registry group stays: the release flow registers the promoted copies in it.
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": f"acme-{stage}-models"}
    )


def test_definition_checks_inputs_then_preps_trains_evaluates_registers(
    templates: dict[str, Template],
) -> None:
    definition, _ = _definition(templates["dev"])
    assert [s["Name"] for s in definition["Steps"]] == ["CheckInputs", "HasTrainingData"]
    assert {"Prep", "Train", "Evaluate", "EvaluateVsChampion", "RegisterModel"} <= set(
        _steps(definition)
    )


def test_definition_placeholders_are_all_substituted_by_cloudformation(
    templates: dict[str, Template],
) -> None:
    body, variables = _pipeline(templates["dev"])["Properties"]["PipelineDefinition"][
        "PipelineDefinitionBody"
    ]["Fn::Sub"]
    used = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", body))
    pseudo = {name for name in used if name.startswith("AWS::")}
    assert used - pseudo == set(variables)
    assert pseudo <= {"AWS::Partition", "AWS::AccountId", "AWS::Region"}


def test_jobs_run_the_mlcore_image_asset(templates: dict[str, Template]) -> None:
    _, variables = _definition(templates["dev"])
    image = json.dumps(variables["ImageUri"])
    assert "container-assets" in image and ".dkr.ecr." in image


def test_jobs_encrypt_volumes_and_outputs_with_the_stage_key(
    templates: dict[str, Template],
) -> None:
    definition, variables = _definition(templates["dev"])
    steps = _steps(definition)
    assert (
        steps["Prep"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
        == "${KmsKeyArn}"
    )
    assert steps["Train"]["Arguments"]["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    assert variables["KmsKeyArn"] == {"Fn::GetAtt": ["ArtifactStoreKey28E2B6CF", "Arn"]}


def test_registered_gate_thresholds_are_those_of_the_settings_file(
    synth: Any, templates: dict[str, Template]
) -> None:
    definition, _ = _definition(templates["dev"])
    metadata = _steps(definition)["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    gate = synth.mlops.settings.gate
    for metric, value in gate.min_metrics.items():
        assert metadata[f"gate_min_{metric}"] == str(value)
    assert metadata["gate_settings_sha256"].startswith("sha256:")


def test_the_check_step_runs_the_stack_s_check_inputs_function(
    templates: dict[str, Template],
) -> None:
    definition, variables = _definition(templates["dev"])
    assert definition["Steps"][0]["FunctionArn"] == "${CheckInputsFunctionArn}"
    (function_id,) = templates["dev"].find_resources("AWS::Lambda::Function")
    assert variables["CheckInputsFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_check_inputs_may_only_list_the_training_data_prefix(
    templates: dict[str, Template],
) -> None:
    role_id, _ = _role_named(templates["dev"], "CheckInputsRole")
    (listing,) = [
        s for s in _statements_of(templates["dev"], role_id) if "s3:ListBucket" in _actions(s)
    ]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["training-data/*", "training-data/"]}
    }
    assert not [
        s
        for s in _statements_of(templates["dev"], role_id)
        if any(a.startswith("s3:Get") for a in _actions(s))
    ]


def test_spot_training_follows_the_stage_config(templates: dict[str, Template]) -> None:
    # cdk.json sets use_spot_training in dev (the off case: tests/pipelines/test_sm_definition).
    dev = _steps(_definition(templates["dev"])[0])["Train"]["Arguments"]
    assert dev["EnableManagedSpotTraining"] is True
    assert (
        dev["StoppingCondition"]["MaxWaitTimeInSeconds"]
        >= dev["StoppingCondition"]["MaxRuntimeInSeconds"]
    )


def test_model_package_group_is_created_per_environment(templates: dict[str, Template]) -> None:
    templates["staging"].has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": "acme-staging-models"}
    )


def test_pipeline_is_created_after_its_role_policy_and_package_group(
    templates: dict[str, Template],
) -> None:
    depends_on = _pipeline(templates["dev"])["DependsOn"]
    assert any("PipelineRoleDefaultPolicy" in d for d in depends_on)
    assert any("ModelPackageGroup" in d for d in depends_on)


def test_no_role_uses_an_aws_managed_policy(templates: dict[str, Template]) -> None:
    for name, template in templates.items():
        if name == "toolchain":
            continue
        for role in template.find_resources("AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"], name


def test_job_and_pipeline_roles_trust_only_sagemaker(templates: dict[str, Template]) -> None:
    for fragment in ("ModelBuildJobRole", "ModelBuildPipelineRole"):
        _, role = _role_named(templates["dev"], fragment)
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_pipeline_role_passes_only_the_job_role_to_sagemaker(
    templates: dict[str, Template],
) -> None:
    job_role_id, _ = _role_named(templates["dev"], "ModelBuildJobRole")
    pipeline_role_id, _ = _role_named(templates["dev"], "ModelBuildPipelineRole")
    (passrole,) = [
        s
        for s in _statements_of(templates["dev"], pipeline_role_id)
        if "iam:PassRole" in _actions(s)
    ]
    assert passrole["Resource"] == {"Fn::GetAtt": [job_role_id, "Arn"]}
    assert passrole["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_pipeline_role_registers_only_into_its_own_package_group(
    templates: dict[str, Template],
) -> None:
    pipeline_role_id, _ = _role_named(templates["dev"], "ModelBuildPipelineRole")
    (register,) = [
        s
        for s in _statements_of(templates["dev"], pipeline_role_id)
        if "sagemaker:CreateModelPackage" in _actions(s)
    ]
    assert "acme-dev-models/*" in json.dumps(register["Resource"])


def test_job_role_cannot_write_the_data_bucket(templates: dict[str, Template]) -> None:
    job_role_id, _ = _role_named(templates["dev"], "ModelBuildJobRole")
    on_data = [
        s
        for s in _statements_of(templates["dev"], job_role_id)
        if "ArtifactStoreData" in json.dumps(s["Resource"])
    ]
    assert any("s3:GetObject*" in _actions(s) for s in on_data)
    for statement in on_data:
        assert not any(a.startswith(("s3:Put", "s3:Delete")) for a in _actions(statement))
