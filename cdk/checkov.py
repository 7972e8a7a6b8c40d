"""Every checkov finding the app accepts, with the reason, in one place.

checkov (a CloudFormation policy scanner) reads a ``checkov: skip`` entry in a resource's
metadata as an accepted finding. :class:`CheckovJustifications` is an aspect that writes those
entries, only onto resources that match a rule below; each rule says which resources and why.
Anything else checkov reports is to be fixed, not added here without a reason that holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jsii
from aws_cdk import CfnResource, IAspect
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import IConstruct

#: The id suffix of a Lambda function role's VPC access policy (cdk.network).
FUNCTION_VPC_ACCESS = "FunctionVpcAccess"


@dataclass(frozen=True)
class Accepted:
    """A checkov check that resources matching ``applies`` may fail, and why."""

    check_id: str
    resource_type: str
    applies: Callable[[CfnResource], bool]
    reason: str


def _everywhere(resource: CfnResource) -> bool:
    return True


def _path_has(part: str) -> Callable[[CfnResource], bool]:
    return lambda resource: part in resource.node.path


ACCEPTED: tuple[Accepted, ...] = (
    Accepted(
        "CKV_AWS_117",
        "AWS::Lambda::Function",
        # CDK's own providers (CustomResourceProvider) are plain CfnResources.
        lambda r: not isinstance(r, lambda_.CfnFunction) or r.vpc_config is None,
        "Outside a VPC only in a stage without a network (stages.<name>.network puts every "
        "function of the stage in its private subnets), and CDK's custom-resource providers, "
        "which run only while CloudFormation deploys, hold no data and must reach "
        "CloudFormation's presigned response URL.",
    ),
    Accepted(
        "CKV_AWS_115",
        "AWS::Lambda::Function",
        _everywhere,
        "Reserved concurrency makes deploys fail in accounts whose Lambda quota is 10 (new "
        "accounts: Lambda keeps 10 unreserved); each function's callers bound its concurrency "
        "(one release execution, one schedule, one rule).",
    ),
    Accepted(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        _everywhere,
        "The release functions are invoked synchronously by Step Functions, whose catches "
        "restore and report every failure; the others run on a schedule or an event and every "
        "error reaches the alerts topic through the stage's FailureAlarms, so a queue of "
        "failed events would hold nothing to act on.",
    ),
    Accepted(
        "CKV_AWS_173",
        "AWS::Lambda::Function",
        lambda r: isinstance(r, lambda_.CfnFunction) and r.kms_key_arn is None,
        "Its environment holds resource names only (a package group, a bucket), no secrets.",
    ),
    Accepted(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        lambda r: isinstance(r, logs.CfnLogGroup) and r.kms_key_id is None,
        "Log groups of stacks without a key of their own hold ARNs and status lines only; "
        "the data they refer to is encrypted with the environment's key.",
    ),
    Accepted(
        "CKV_AWS_18",
        "AWS::S3::Bucket",
        _path_has("AccessLogs"),
        "This bucket receives the server access logs of the others; logging its own access "
        "would log into itself (a known recursion).",
    ),
    Accepted(
        "CKV_AWS_111",
        "AWS::IAM::Policy",
        _path_has("/Pipeline/Assets/"),
        "CDK Pipelines' asset publishing roles (aws-cdk-lib): scoped to the bootstrap roles "
        "they assume and the pipeline's own artifact bucket and key.",
    ),
    Accepted(
        "CKV_AWS_111",
        "AWS::IAM::Policy",
        # The L1 policy's parent is the iam.Policy that cdk.network names.
        lambda r: r.node.scope is not None and r.node.scope.node.id.endswith(FUNCTION_VPC_ACCESS),
        "Lambda attaches a function to its subnets with the execution role: the actions of "
        "AWSLambdaVPCAccessExecutionRole (AWS's managed policy grants them on '*'), granted "
        "inline; the function's security group, not this policy, decides where it can connect.",
    ),
    Accepted(
        "CKV_AWS_370",
        "AWS::SageMaker::Model",
        lambda r: isinstance(r, sagemaker.CfnModel) and not r.enable_network_isolation,
        "A serverless endpoint's model: SageMaker serverless inference does not support "
        "network isolation.",
    ),
)


@jsii.implements(IAspect)
class CheckovJustifications:
    """Writes the accepted findings of :data:`ACCEPTED` into matching resources' metadata."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource):
            return
        skips = [
            {"id": rule.check_id, "comment": rule.reason}
            for rule in ACCEPTED
            if rule.resource_type == node.cfn_resource_type and rule.applies(node)
        ]
        if skips:
            node.add_metadata("checkov", {"skip": skips})
