"""The synthesised stacks created in moto's CloudFormation (for the resource types moto supports).

moto skips, with a warning, the types it does not implement (SageMaker Pipeline and
ModelPackageGroup, bucket policies); everything else is created. The CI/CD stack is not
created here: its CodePipeline refers to its CodeBuild projects with Fn::GetAtt, and moto
cannot resolve attributes of resources it skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

pytestmark = [
    pytest.mark.xdist_group("cdk_synth"),
    pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto:UserWarning"),
]

REGION = "us-east-1"
SKIPPED_BY_MOTO = {
    "AWS::S3::BucketPolicy",
    "AWS::SageMaker::Pipeline",
    "AWS::SageMaker::ModelPackageGroup",
}


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        # What `cdk bootstrap` leaves in an account: the version the templates check for.
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String"
        )
        yield


def _template(synth: Any, stack: Any) -> tuple[str, dict[str, Any]]:
    path = next(Path(synth.outdir).rglob(stack.artifact_id + ".template.json"))
    return stack.stack_name, json.loads(path.read_text())


def _create(name: str, template: dict[str, Any]) -> dict[str, Any]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"]
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    resources = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {"stack": stack, "resources": {r["LogicalResourceId"]: r for r in resources}}


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_environment_stack_creates_in_moto(aws: None, synth: Any, stage: str) -> None:
    name, template = _template(synth, synth.stage_stack(stage))
    created = _create(name, template)
    assert created["stack"]["StackStatus"] == "CREATE_COMPLETE"
    expected = {k for k, v in template["Resources"].items() if v["Type"] not in SKIPPED_BY_MOTO}
    complete = {
        k for k, r in created["resources"].items() if r["ResourceStatus"] == "CREATE_COMPLETE"
    }
    assert expected <= complete


def test_dev_outputs_name_the_pipeline_and_package_group(aws: None, synth: Any) -> None:
    name, template = _template(synth, synth.stage_stack("dev"))
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in _create(name, template)["stack"]["Outputs"]
    }
    assert outputs["ModelBuildPipelineName"] == "churn-dev-model-build"
    assert outputs["ModelPackageGroupName"] == "churn-dev-models"


def test_deployed_definition_resolves_and_upserts_into_sagemaker(aws: None, synth: Any) -> None:
    # What CloudFormation does with the Fn::Sub, done here with the resources moto created,
    # then handed to SageMaker's CreatePipeline as the AWS::SageMaker::Pipeline resource would.
    name, template = _template(synth, synth.stage_stack("dev"))
    created = _create(name, template)
    physical = {k: r["PhysicalResourceId"] for k, r in created["resources"].items()}
    (pipeline,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline"
    ]
    body, variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    key_id = physical[variables["KmsKeyArn"]["Fn::GetAtt"][0]]
    values = {
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "AWS::Region": REGION,
        "JobRoleName": physical[variables["JobRoleName"]["Ref"]],
        "ArtifactBucket": physical[variables["ArtifactBucket"]["Ref"]],
        "DataBucket": physical[variables["DataBucket"]["Ref"]],
        "ModelPackageGroupName": variables["ModelPackageGroupName"],
        # Built rather than read back: moto's DescribeKey trips over the CloudFormation-made key policy.
        "KmsKeyArn": f"arn:aws:kms:{REGION}:123456789012:key/{key_id}",
        "ImageUri": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/cdk-container-assets:mlcore",
    }
    resolved = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: values[m.group(1)], body)
    definition = json.loads(resolved)
    iam = boto3.client("iam", region_name=REGION)
    pipeline_role = iam.get_role(
        RoleName=physical[pipeline["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
    )["Role"]
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_pipeline(
        PipelineName=pipeline["Properties"]["PipelineName"],
        PipelineDefinition=resolved,
        RoleArn=pipeline_role["Arn"],
    )
    started = sagemaker.start_pipeline_execution(PipelineName="churn-dev-model-build")
    assert started["PipelineExecutionArn"].startswith("arn:aws:sagemaker:")
    prep = definition["Steps"][0]["Arguments"]
    assert prep["RoleArn"] == iam.get_role(RoleName=values["JobRoleName"])["Role"]["Arn"]
