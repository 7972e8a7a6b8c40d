"""What CDK's AwsCustomResource provider (a singleton per stack) brings to cdk-nag, explained."""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions


def suppress_custom_resource_provider(stack: Stack) -> None:
    # The provider function is a CDK singleton: its role and runtime are CDK's, not ours.
    provider = stack.node.try_find_child("AWS679f53fac002430cb0da5b7982bd2287")
    if provider is None:
        return
    NagSuppressions.add_resource_suppressions(
        provider,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM4",
                reason="CDK's AwsCustomResource provider uses AWSLambdaBasicExecutionRole for its logs.",
                applies_to=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-L1",
                reason="The AwsCustomResource provider's Node.js runtime is chosen by aws-cdk-lib.",
            ),
        ],
        apply_to_children=True,
    )
