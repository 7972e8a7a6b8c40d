"""The approval recorder of an environment where a person approves each release.

Approving a promoted copy in the environment's model registry emits "SageMaker Model Package
State Change"; an EventBridge rule of the environment's own account starts this function,
which checks the copy's model archive against the hash the copy recorded and tags that
object version as approved (:mod:`pipelines.deploy.approval`). The endpoint there may read
only tagged archives. The function is deployed by the CI/CD pipeline into the environment's
account, and nothing in the model-build account may invoke or change it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.serving.endpoint import MODEL_DATA_KEY_PATTERNS
from cdk.serving.functions import ControlPlaneFunction


class ApprovalRecorder(Construct):
    """Tags the model archive of every package approved in one group.

    :param model_package_group_name: the environment's group (where approvers approve).
    :param artifact_bucket: holds the archives (the endpoint reads them from there).
    :param log_key: encrypts the function's logs. Default: AWS-owned keys.
    :param removal_policy: of its log group. Default: destroyed with the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_package_group_name: str,
        artifact_bucket: s3.IBucket,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.function = ControlPlaneFunction(
            self,
            "Function",
            handler="deploy.approval.record_handler",
            description=(
                f"Marks the model archive of each package approved in {model_package_group_name} "
                "as approved for serving"
            ),
            environment={
                "MODEL_PACKAGE_GROUP": model_package_group_name,
                "ARTIFACT_BUCKET": artifact_bucket.bucket_name,
            },
            encryption_key=log_key,
            removal_policy=removal_policy,
            # It reads the archive once to check its hash.
            timeout=Duration.minutes(15),
            memory_size=512,
        )
        role = self.function.role
        group = model_package_group_name.lower()
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[
                    stack.format_arn(
                        service="sagemaker", resource="model-package", resource_name=f"{group}/*"
                    )
                ],
            )
        )
        archives = [artifact_bucket.arn_for_objects(p) for p in MODEL_DATA_KEY_PATTERNS]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:GetObjectTagging",
                    "s3:GetObjectVersionTagging",
                    "s3:PutObjectTagging",
                    "s3:PutObjectVersionTagging",
                ],
                resources=archives,
            )
        )
        if artifact_bucket.encryption_key is not None:
            artifact_bucket.encryption_key.grant_decrypt(role)
        self.rule = events.Rule(
            self,
            "OnApproval",
            description=f"Records each approval of a package in {model_package_group_name}",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [model_package_group_name],
                    "ModelApprovalStatus": ["Approved"],
                },
            ),
            targets=[events_targets.LambdaFunction(self.function.function)],
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Versions of this environment's one package group (describe); objects "
                        f"under {', '.join(MODEL_DATA_KEY_PATTERNS)} (read and tag); the "
                        "function's own log streams; CDK's KMS grant on the bucket's key."
                    ),
                )
            ],
            apply_to_children=True,
        )
