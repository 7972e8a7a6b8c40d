"""Model build: the SageMaker Pipeline that runs mlcore, its roles, and the model package group.

The pipeline definition comes from ``pipelines.sagemaker.definition`` (SageMaker Python SDK v3)
and is deployed as ``AWS::SageMaker::Pipeline`` so that ``cdk diff`` shows every change to it.
The SDK cannot take CDK tokens inside S3 URIs, so the definition is built with CloudFormation
``${...}`` placeholders and deployed through ``Fn::Sub``.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import ArnFormat, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.container_image import MlcoreImage
from cdk.network import StageNetwork
from cdk.settings_artifact import SettingsArtifact
from cdk.tracking import TrackingServer
from pipelines.sagemaker.definition import ModelBuildOptions, PipelineTargets, pipeline_definition

_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
PIPELINE_METRIC_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"
# The CheckInputs function's asset: the one boto3-only module it runs, nothing else.
_CHECK_ASSET_EXCLUDE = ["*", "!sagemaker", "!sagemaker/__init__.py", "!sagemaker/preflight.py"]


def model_package_group(
    scope: Construct, name: str, *, description: str, retain: bool
) -> sagemaker.CfnModelPackageGroup:
    """The registry group, always as ``<scope>/ModelPackageGroup`` (its logical ID is pinned)."""
    group = sagemaker.CfnModelPackageGroup(
        scope,
        "ModelPackageGroup",
        model_package_group_name=name,
        model_package_group_description=description,
    )
    group.apply_removal_policy(RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY)
    return group


def model_package_group_arn(stack: Stack, name: str) -> str:
    # Formatted from the name rather than read with GetAtt: policies that name the group need
    # not wait for it, and the ARN is known to tests before deployment.
    return stack.format_arn(service="sagemaker", resource="model-package-group", resource_name=name)


class ModelRegistry(Construct):
    """Only the model package group: an environment that serves promoted models and trains
    none (``train: false``). The release flow registers each promoted copy in it.

    :param model_package_group_name: the group's name.
    :param retain: keep the group when the stack is deleted. Default: deleted.
    """

    def __init__(
        self, scope: Construct, id_: str, *, model_package_group_name: str, retain: bool = False
    ) -> None:
        super().__init__(scope, id_)
        if not _NAME.match(model_package_group_name):
            raise ValueError(
                "model_package_group_name must be 1-63 lowercase letters, digits or hyphens; "
                f"got {model_package_group_name!r}"
            )
        self.model_package_group_name = model_package_group_name
        self.model_package_group = model_package_group(
            self,
            model_package_group_name,
            description=(
                "Models promoted from the model-build environment (verified copies); this "
                "environment trains none."
            ),
            retain=retain,
        )
        self.model_package_group_arn = model_package_group_arn(
            Stack.of(self), model_package_group_name
        )


class ModelBuild(Construct):
    """A SageMaker model-build pipeline (prep -> train -> evaluate -> gate -> register).

    :param pipeline_name: name of the SageMaker pipeline (lowercase letters, digits, hyphens).
    :param model_package_group_name: name of the model package group models are registered in.
    :param settings_artifact: the settings file every job reads (target, training, gate
        thresholds); the definition is built from its parse.
    :param data_bucket: where training data lands; the jobs read ``data_prefix`` from it.
    :param artifact_bucket: where prep outputs, models and evaluation reports are written.
    :param key: the KMS key of both buckets; it also encrypts job volumes and outputs.
    :param image: the mlcore image. Default: built from ``pipelines/container/Dockerfile``.
    :param options: instance types, spot training, time limits and the source revision.
        Default: ``ModelBuildOptions()`` (ml.m5.large, on-demand, one hour).
    :param data_prefix: the key prefix of the training data in ``data_bucket``.
        Default: ``training-data``.
    :param retain: keep the model package group when the stack is deleted. Default: deleted.
    :param tracking_server: an MLflow tracking server the jobs log to (``MLFLOW_TRACKING_URI``).
        Default: none; mlcore then tracks nothing on AWS.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_name: str,
        model_package_group_name: str,
        settings_artifact: SettingsArtifact,
        data_bucket: s3.IBucket,
        artifact_bucket: s3.IBucket,
        key: kms.IKey,
        image: MlcoreImage | None = None,
        options: ModelBuildOptions | None = None,
        data_prefix: str = "training-data",
        retain: bool = False,
        tracking_server: TrackingServer | None = None,
    ) -> None:
        super().__init__(scope, id_)
        settings = settings_artifact.source.settings
        problems = [
            f"{label} must be 1-63 lowercase letters, digits or hyphens (no leading hyphen); got {value!r}"
            for label, value in (
                ("pipeline_name", pipeline_name),
                ("model_package_group_name", model_package_group_name),
            )
            if not _NAME.match(value)
        ]
        if data_prefix.startswith("/") or data_prefix.endswith("/"):
            problems.append(f"data_prefix must not start or end with '/'; got {data_prefix!r}")
        if problems:
            raise ValueError("invalid ModelBuild props: " + "; ".join(problems))

        self.image = image or MlcoreImage(self, "Image")
        self.pipeline_name = pipeline_name
        self.model_package_group_name = model_package_group_name
        stack = Stack.of(self)

        self.model_package_group = model_package_group(
            self,
            model_package_group_name,
            description=(
                f"Models trained by the {pipeline_name} pipeline; each package carries its git "
                "commit, data fingerprint, hyperparameters and metrics in its metadata."
            ),
            retain=retain,
        )
        self.model_package_group_arn = model_package_group_arn(stack, model_package_group_name)
        self.pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name
        )

        network = StageNetwork.of(self)
        self.job_role = self._job_role(data_bucket, artifact_bucket, key)
        if network is not None:
            # The pipeline starts jobs that SageMaker checks this policy for.
            self.job_vpc_access = network.grant_network_interfaces(self.job_role)
        settings_artifact.grant_read(self.job_role)
        if tracking_server is not None:
            tracking_server.grant_log(self.job_role)
        self.check_function = self._check_inputs_function(data_bucket, data_prefix)
        self.pipeline_role = self._pipeline_role(artifact_bucket, key)

        targets = PipelineTargets(
            role_arn="arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRoleName}",
            image_uri="${ImageUri}",
            artifact_bucket="${ArtifactBucket}",
            model_package_group_name="${ModelPackageGroupName}",
            default_input_data_url=f"s3://${{DataBucket}}/{data_prefix}/",
            region="${AWS::Region}",
            kms_key_id="${KmsKeyArn}",
            settings_s3_uri=f"s3://${{SettingsBucket}}/{settings_artifact.asset.s3_object_key}",
            check_function_arn="${CheckInputsFunctionArn}",
            tracking_uri="${TrackingUri}" if tracking_server is not None else None,
            subnet_ids=tuple(f"${{Subnet{i}}}" for i in range(len(network.subnet_ids)))
            if network is not None
            else (),
            security_group_ids=tuple(
                f"${{SecurityGroup{i}}}" for i in range(len(network.job_security_group_ids))
            )
            if network is not None
            else (),
        )
        body = pipeline_definition(
            pipeline_name,
            settings=settings,
            targets=targets,
            options=options,
            settings_digest=settings_artifact.source.sha256,
        )
        variables = {
            "JobRoleName": self.job_role.role_name,
            "ImageUri": self.image.image_uri,
            "ArtifactBucket": artifact_bucket.bucket_name,
            "DataBucket": data_bucket.bucket_name,
            "ModelPackageGroupName": model_package_group_name,
            "KmsKeyArn": key.key_arn,
            "SettingsBucket": settings_artifact.asset.s3_bucket_name,
            "CheckInputsFunctionArn": self.check_function.function_arn,
        }
        if tracking_server is not None:
            variables["TrackingUri"] = tracking_server.tracking_uri
        if network is not None:
            variables.update({f"Subnet{i}": s for i, s in enumerate(network.subnet_ids)})
            variables.update(
                {f"SecurityGroup{i}": g for i, g in enumerate(network.job_security_group_ids)}
            )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=(
                "check inputs, mlcore prep, train, evaluate with the quality gate (champion "
                "included), model registration"
            ),
            role_arn=self.pipeline_role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": Fn.sub(body, variables)},
        )
        # CloudFormation must not create the pipeline before its role can act and the group exists.
        self.pipeline.node.add_dependency(self.pipeline_role.node.find_child("DefaultPolicy"))
        self.pipeline.add_resource_dependency(self.model_package_group)

    def _job_role(
        self, data_bucket: s3.IBucket, artifact_bucket: s3.IBucket, key: kms.IKey
    ) -> iam.Role:
        """The role the processing and training jobs run as."""
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the model-build processing and training jobs (mlcore prep, train, evaluate)",
        )
        data_bucket.grant_read(role)
        artifact_bucket.grant_read_write(role)
        key.grant_encrypt_decrypt(role)
        # Encrypted job volumes: SageMaker creates grants on the key for the instances.
        # DescribeKey supports no kms:GrantIsForAWSResource key (AWS KMS condition keys
        # reference): under that condition it would be silently denied, so it stands alone.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[key.key_arn])
        )
        self.image.repository.grant_pull(role)
        role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    Stack.of(self).format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Objects under the data and artifact buckets are per-run keys, the job log "
                        "streams are named by SageMaker at run time, ecr:GetAuthorizationToken and "
                        "cloudwatch:PutMetricData have no resource-level permissions (the latter is "
                        "limited to SageMaker namespaces by condition), and KMS re-encrypt/data-key "
                        "actions are granted by the CDK's grant_encrypt_decrypt on this one key."
                    ),
                    applies_to=[
                        "Action::s3:Abort*",
                        "Action::s3:DeleteObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:GetObject*",
                        "Action::s3:List*",
                        "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*",
                        "Resource::*",
                        {"regex": "/^Resource::<.*(Data|Artifacts).*\\.Arn>/\\*$/"},
                        {"regex": "/^Resource::arn:<AWS::Partition>:logs:.*/aws/sagemaker/\\*$/"},
                    ],
                )
            ],
            apply_to_children=True,
        )
        return role

    def _check_inputs_function(self, data_bucket: s3.IBucket, data_prefix: str) -> lambda_.Function:
        """The CheckInputs step's function: lists the data prefix, finds the champion."""
        stack = Stack.of(self)
        network = StageNetwork.of(self)
        log_group = logs.LogGroup(self, "CheckInputsLogs", retention=logs.RetentionDays.ONE_MONTH)
        role = iam.Role(
            self,
            "CheckInputsRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Checks the inputs of the {self.pipeline_name} pipeline",
        )
        log_group.grant_write(role)
        # Listing only (no object reads), and only under the training-data prefix.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{data_prefix}/*", f"{data_prefix}/"]}},
            )
        )
        # ListModelPackages has no resource type (Service Authorization Reference): "*".
        role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="model-package",
                        resource_name=f"{self.model_package_group_name}/*",
                    )
                ],
            )
        )
        placement, vpc_access = (
            network.function_placement(role) if network is not None else (None, None)
        )
        function = lambda_.Function(
            self,
            "CheckInputs",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="sagemaker.preflight.handler",
            code=lambda_.Code.from_asset(str(PIPELINES_DIR), exclude=_CHECK_ASSET_EXCLUDE),
            description=f"CheckInputs step of {self.pipeline_name}: training data and champion",
            timeout=Duration.minutes(2),
            memory_size=256,
            role=role,
            log_group=log_group,
            vpc=placement.vpc if placement else None,
            vpc_subnets=placement.vpc_subnets if placement else None,
            security_groups=placement.security_groups if placement else None,
        )
        if vpc_access is not None:
            function.node.add_dependency(vpc_access)
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "sagemaker:ListModelPackages has no resource type, so it takes '*'; "
                        "DescribeModelPackage is limited to versions of this pipeline's package "
                        "group, whose numbers are assigned at registration."
                    ),
                    applies_to=[
                        "Resource::*",
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:model-package/.*/\\*$/"
                        },
                    ],
                )
            ],
            apply_to_children=True,
        )
        return function

    def _pipeline_role(self, artifact_bucket: s3.IBucket, key: kms.IKey) -> iam.Role:
        """The role SageMaker Pipelines uses to start the jobs and register the model."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "PipelineRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the {self.pipeline_name} SageMaker pipeline",
        )
        job_arns = [
            stack.format_arn(service="sagemaker", resource=kind, resource_name="*")
            for kind in ("processing-job", "training-job")
        ]
        network = StageNetwork.of(self)
        create = ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob"]
        manage = [
            "sagemaker:DescribeProcessingJob",
            "sagemaker:StopProcessingJob",
            "sagemaker:DescribeTrainingJob",
            "sagemaker:StopTrainingJob",
            "sagemaker:AddTags",
        ]
        if network is None:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=sorted([*create, *manage]),
                    resources=job_arns,
                )
            )
        else:
            role.add_to_policy(iam.PolicyStatement(actions=manage, resources=job_arns))
            # A stage with a network: the jobs start only in its subnets and security groups,
            # isolated (the service authorization reference's keys for these actions).
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=create,
                    resources=job_arns,
                    conditions=network.job_conditions(isolated=True),
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:AddTags",
                ],
                resources=[
                    self.model_package_group_arn,
                    stack.format_arn(
                        service="sagemaker",
                        resource="model-package",
                        resource_name=f"{self.model_package_group_name}/*",
                    ),
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self.check_function.grant_invoke(role)
        # The pipeline reads gate.json and lineage.json (property files) from the bucket.
        artifact_bucket.grant_read(role)
        key.grant_decrypt(role)
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "SageMaker Pipelines names each processing and training job and each model "
                        "package version at run time, so the job and package ARNs end in a wildcard "
                        "(still limited to this account, region and package group); the pipeline "
                        "reads property files under per-run artifact keys; the ':*' on the "
                        "CheckInputs function is its own versions and aliases."
                    ),
                    applies_to=[
                        "Action::s3:GetBucket*",
                        "Action::s3:GetObject*",
                        "Action::s3:List*",
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:(processing-job|training-job)/\\*$/"
                        },
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:model-package/.*/\\*$/"
                        },
                        {"regex": "/^Resource::<.*Artifacts.*\\.Arn>/\\*$/"},
                        # Versions and aliases of the pipeline's own CheckInputs function.
                        {"regex": "/^Resource::<.*CheckInputs.*\\.Arn>:\\*$/"},
                    ],
                )
            ],
            apply_to_children=True,
        )
        return role

    def grant_start_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions of this pipeline."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:StartPipelineExecution"],
            resource_arns=[self.pipeline_arn],
        )

    def grant_run(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions, watch their steps and stop them (what a CI job that waits needs)."""
        self.grant_start_execution(grantee)
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "sagemaker:DescribePipelineExecution",
                "sagemaker:ListPipelineExecutionSteps",
                "sagemaker:StopPipelineExecution",
            ],
            resource_arns=[f"{self.pipeline_arn}/execution/*"],
        )

    def metric_execution_failed(self, period: Duration | None = None) -> cloudwatch.Metric:
        """Failed executions of this pipeline (SageMaker's ExecutionFailed metric)."""
        return self._pipeline_metric("ExecutionFailed", period)

    def metric_execution_succeeded(self, period: Duration | None = None) -> cloudwatch.Metric:
        """Succeeded executions of this pipeline (SageMaker's ExecutionSucceeded metric)."""
        return self._pipeline_metric("ExecutionSucceeded", period)

    def _pipeline_metric(self, name: str, period: Duration | None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=PIPELINE_METRIC_NAMESPACE,
            metric_name=name,
            dimensions_map={"PipelineName": self.pipeline_name},
            statistic="Sum",
            period=period or Duration.minutes(5),
        )
