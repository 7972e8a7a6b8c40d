"""The synthesised stacks created in moto's CloudFormation (for the resource types moto supports).

moto skips, with a warning, the types it does not implement (SageMaker Pipeline and
ModelPackageGroup, bucket policies, security group egress rules); everything else is created. The CI/CD stack is not
created here: its CodePipeline refers to its CodeBuild projects with Fn::GetAtt, and moto
cannot resolve attributes of resources it skipped.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
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
    "AWS::SageMaker::MlflowTrackingServer",
    # moto 5.2 implements SecurityGroupIngress but not SecurityGroupEgress (a stage network's
    # egress rules; checked on the template in tests/cdk/test_cdk_network.py).
    "AWS::EC2::SecurityGroupEgress",
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


ASSETS_BUCKET = f"cdk-hnb659fds-assets-123456789012-{REGION}"


def _upload_function_code(synth: Any, template: dict[str, Any]) -> None:
    """What `cdk deploy` publishes first: each Lambda's code asset, zipped, to the bootstrap bucket."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ASSETS_BUCKET)
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        key = resource["Properties"]["Code"]["S3Key"]
        (folder,) = Path(synth.outdir).rglob("asset." + key.removesuffix(".zip"))
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in folder.rglob("*"):
                if path.is_file():
                    zipped.write(path, path.relative_to(folder))
        s3.put_object(Bucket=ASSETS_BUCKET, Key=key, Body=archive.getvalue())


def _for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """Work around two moto 5.2 gaps, leaving the template otherwise as synthesised.

    - moto reads an AWS::KMS::Key's Tags in the KMS API's TagKey/TagValue shape and fails
      (KeyError 'TagKey') on CloudFormation's Key/Value; the tags are checked on the template.
    - moto validates every output's Fn::GetAtt against its own resource classes, so an output
      of a type it skips (the MLflow tracking server's ARN) fails the whole stack.
    """
    copy = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::KMS::Key":
            resource["Properties"].pop("Tags", None)
    skipped = {k for k, v in copy["Resources"].items() if v["Type"] in SKIPPED_BY_MOTO}
    copy["Outputs"] = {
        k: v
        for k, v in copy.get("Outputs", {}).items()
        if not set(re.findall(r'"Fn::GetAtt": \["([^"]+)"', json.dumps(v))) & skipped
    }
    return copy


def _create(name: str, template: dict[str, Any]) -> dict[str, Any]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(_for_moto(template)),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    resources = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {"stack": stack, "resources": {r["LogicalResourceId"]: r for r in resources}}


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_environment_stack_creates_in_moto(aws: None, synth: Any, stage: str) -> None:
    name, template = _template(synth, synth.stage_stack(stage))
    _upload_function_code(synth, template)
    created = _create(name, template)
    assert created["stack"]["StackStatus"] == "CREATE_COMPLETE"
    expected = {k for k, v in template["Resources"].items() if v["Type"] not in SKIPPED_BY_MOTO}
    complete = {
        k for k, r in created["resources"].items() if r["ResourceStatus"] == "CREATE_COMPLETE"
    }
    assert expected <= complete


def test_dev_outputs_name_the_pipeline_and_package_group(aws: None, synth: Any) -> None:
    name, template = _template(synth, synth.stage_stack("dev"))
    _upload_function_code(synth, template)
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in _create(name, template)["stack"]["Outputs"]
    }
    assert outputs["ModelBuildPipelineName"] == "acme-dev-model-build"
    assert outputs["ModelPackageGroupName"] == "acme-dev-models"


def test_deployed_definition_resolves_and_upserts_into_sagemaker(aws: None, synth: Any) -> None:
    # What CloudFormation does with the Fn::Sub, done here with the resources moto created,
    # then handed to SageMaker's CreatePipeline as the AWS::SageMaker::Pipeline resource would.
    name, template = _template(synth, synth.stage_stack("dev"))
    _upload_function_code(synth, template)
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
        "SettingsBucket": f"cdk-hnb659fds-assets-123456789012-{REGION}",
        "CheckInputsFunctionArn": f"arn:aws:lambda:{REGION}:123456789012:function:"
        + physical[variables["CheckInputsFunctionArn"]["Fn::GetAtt"][0]],
        # moto has no MLflow tracking servers: the ARN CloudFormation would return.
        "TrackingUri": f"arn:aws:sagemaker:{REGION}:123456789012:mlflow-tracking-server/acme-dev-mlflow",
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
    started = sagemaker.start_pipeline_execution(PipelineName="acme-dev-model-build")
    assert started["PipelineExecutionArn"].startswith("arn:aws:sagemaker:")
    prep = definition["Steps"][1]["Arguments"]["IfSteps"][0]["Arguments"]
    assert prep["RoleArn"] == iam.get_role(RoleName=values["JobRoleName"])["Role"]["Arn"]
    lambda_arn = definition["Steps"][0]["FunctionArn"]
    function = boto3.client("lambda", region_name=REGION).get_function(FunctionName=lambda_arn)
    assert function["Configuration"]["Handler"] == "sagemaker.preflight.handler"
