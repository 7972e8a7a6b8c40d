"""Environments in other accounts than the CI/CD pipeline (built without the whole app)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template

from cdk.config import StageConfig
from cdk.model_build_stack import ModelBuildStack
from mlcore.settings import load_settings, resolve_settings_path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _stack(config: StageConfig) -> Stack:
    return ModelBuildStack(
        App(),
        "ModelBuild",
        stage_name="prod",
        stage_config=config,
        settings=load_settings(resolve_settings_path()),
        settings_file=resolve_settings_path(),
        data_prefix="training-data",
        source_revision="abc1234",
        ci_account="111111111111",
        env=Environment(account="333333333333", region="eu-west-1"),
    )


def test_ci_account_lets_the_toolchain_start_training_in_another_account() -> None:
    template = Template.from_stack(_stack(StageConfig(train_after_deploy=True)))
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "churn-prod-ci-train",
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": {
                                "Fn::Join": [
                                    "",
                                    ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:root"],
                                ]
                            }
                        },
                    }
                ]
            },
        },
    )


def test_an_environment_without_training_after_deploy_has_no_ci_role() -> None:
    template = Template.from_stack(_stack(StageConfig(train_after_deploy=False)))
    names = [
        r["Properties"].get("RoleName") for r in template.find_resources("AWS::IAM::Role").values()
    ]
    assert "churn-prod-ci-train" not in names
