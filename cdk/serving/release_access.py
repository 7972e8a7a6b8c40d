"""What the release flow may do in one environment, and nothing more.

Two roles per environment:

- the **deploy role** (:class:`ReleaseAccess`, in the environment's ReleaseState stack):
  trusted only by the release functions in the model-build account (by role ARN); the flow
  assumes it for every call it makes in this environment. It may read the environment's
  descriptor, write its pointer, read what the endpoint serves, invoke the endpoint, register
  promoted copies in this environment's package group, write them under ``promoted/`` in its
  artifact bucket, read model archives and evaluation reports, look up images in its own
  repository, and update the serving stack *only* while passing the serving change role
  (condition on ``cloudformation:RoleArn``). It may pass no other role. Where a person
  approves each release (``release_approval``), it may register copies only as
  PendingManualApproval and may never change a package's status nor mark a model archive
  approved (:mod:`pipelines.deploy.approval`): approving is for the people holding the
  environment's approver policy.
- the **serving change role** (:class:`ServingChangeRole`, in the serving stack): the role
  CloudFormation uses for those updates. It may create, update and delete the SageMaker
  models and endpoint configs this stack generates, update this one endpoint, pass this
  endpoint's execution role, manage its scaling target, and read the pointer. A template
  sent with this role can change nothing else; without it (the stack's last role, the CDK's
  admin execution role) the deploy role may not update the stack at all.

CloudFormation reuses a stack's previous service role when none is passed, even for callers
that may not pass it ("AWS CloudFormation service role", CloudFormation User Guide), which
is why the condition is on the role that must be passed rather than on iam:PassRole alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.serving.approved_model import ApprovedModelParameter
from cdk.serving.endpoint import MODEL_DATA_KEY_PATTERNS, SCALING_SERVICE_LINKED_ROLE, ModelEndpoint
from cdk.tagging import TAG_KEYS
from pipelines.deploy.approval import APPROVAL_TAG
from pipelines.deploy.promote import PROMOTED_PREFIX


def deploy_role_name(project: str, stage: str) -> str:
    return f"{project}-{stage}-release-deploy"


def change_role_name(project: str, stage: str) -> str:
    return f"{project}-{stage}-release-cfn"


def release_function_role_names(project: str, build_stage: str) -> tuple[str, str]:
    """The roles of the release functions (deploy and smoke test) in the model-build account."""
    return (f"{project}-{build_stage}-release-fn", f"{project}-{build_stage}-smoke-fn")


def descriptor_parameter_name(project: str, stage: str) -> str:
    return f"/mlops/{project}/{stage}/release-target"


def model_package_parameter_name(project: str, stage: str) -> str:
    return f"/mlops/{project}/{stage}/model-package-arn"


def model_sha256_parameter_name(project: str, stage: str) -> str:
    return f"/mlops/{project}/{stage}/model-sha256"


def role_arn(stack: Stack, name: str, account: str) -> str:
    return stack.format_arn(
        service="iam", region="", account=account, resource="role", resource_name=name
    )


class ReleaseAccess(Construct):
    """The environment's deploy role and its descriptor parameter.

    :param environment: the stage name.
    :param project: prefixes the role and parameter names.
    :param release_account: the account whose release functions may assume the role.
    :param release_function_roles: the names of those functions' roles.
    :param pointer: the package-ARN and model-sha256 parameters of the serving stack.
    :param serving_stack_name: the serving stack the role may update.
    :param endpoint_name: the endpoint it may inspect and smoke test (in a batch-only
        environment: the name its batch resources are named after).
    :param model_package_group_name: the group promoted copies are registered in.
    :param artifact_bucket: receives promoted copies; holds this environment's own models.
    :param image_repository: the repository the environment's mlcore image is in.
    :param reads_trained_models: this environment trains, so the role reads its pipeline's
        model archives and evaluation reports (to promote them). Default: only promoted ones.
    :param release_approval: a person approves each release in this environment's registry:
        the role registers copies as PendingManualApproval only and can approve nothing, and
        an approver policy (:attr:`approver_policy`) is created for the people who do.
        Default: copies are registered Approved.
    :param online_endpoint: the environment has an endpoint. Default: true; false for a
        batch-only environment, whose release is checked on its batch model.
    :param batch_model_prefix: what the environment's batch model names start with
        (``<name>-batch-v``). Default: it has no batch path.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        environment: str,
        project: str,
        release_account: str,
        release_function_roles: Sequence[str],
        pointer: Sequence[ApprovedModelParameter],
        serving_stack_name: str,
        endpoint_name: str,
        model_package_group_name: str,
        artifact_bucket: s3.IBucket,
        image_repository: ecr.IRepository,
        reads_trained_models: bool = False,
        release_approval: bool = False,
        online_endpoint: bool = True,
        batch_model_prefix: str = "",
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        if not online_endpoint and not batch_model_prefix:
            raise ValueError(
                f"{environment}: an environment without an endpoint needs batch_model_prefix "
                "(its batch path is what a release serves)"
            )
        self.change_role_arn = role_arn(
            stack, change_role_name(project, environment), stack.account
        )
        trusted = [role_arn(stack, name, release_account) for name in release_function_roles]
        self.role = iam.Role(
            self,
            "DeployRole",
            role_name=deploy_role_name(project, environment),
            description=f"Assumed by the release flow for every action it takes in {environment}",
            # Trust the account, narrowed to the release functions' roles: a role ARN as the
            # principal would make IAM reject the policy while those roles do not exist yet.
            assumed_by=iam.AccountPrincipal(release_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": trusted}}
            ),
        )
        self.descriptor = ssm.StringParameter(
            self,
            "Descriptor",
            parameter_name=descriptor_parameter_name(project, environment),
            description=f"What the release flow needs to know about {environment} (JSON)",
            string_value=stack.to_json_string(
                {
                    "environment": environment,
                    "stack_name": serving_stack_name,
                    "model_package_parameter": pointer[0].parameter_name,
                    "model_sha256_parameter": pointer[1].parameter_name,
                    "endpoint_name": endpoint_name,
                    "model_package_group": model_package_group_name,
                    "artifact_bucket": artifact_bucket.bucket_name,
                    "image_repository": image_repository.repository_name,
                    "cloudformation_role_arn": self.change_role_arn,
                    "release_approval": release_approval,
                    "online_endpoint": online_endpoint,
                    "batch_model_prefix": batch_model_prefix,
                }
            ),
        )
        self.descriptor.grant_read(self.role)
        for parameter in pointer:
            parameter.grant_read_write(self.role)

        serving_stack_arn = stack.format_arn(
            service="cloudformation", resource="stack", resource_name=f"{serving_stack_name}/*"
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks"], resources=[serving_stack_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:UpdateStack"],
                resources=[serving_stack_arn],
                # cloudformation:RoleArn is ARN-typed (Service Authorization Reference).
                conditions={"ArnEquals": {"cloudformation:RoleArn": self.change_role_arn}},
            )
        )
        # UpdateStack resolves the template's SSM-typed parameters (the pointer and CDK's
        # bootstrap version) with the caller's credentials.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameters"],
                resources=[
                    *(p.parameter_arn for p in pointer),
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name="cdk-bootstrap/*/version",
                    ),
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.change_role_arn],
                conditions={
                    "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                },
            )
        )

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        endpoint_arn = sagemaker_arn("endpoint", endpoint_name.lower())
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
                resources=[endpoint_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                resources=[sagemaker_arn("endpoint-config", "*"), sagemaker_arn("model", "*")],
            )
        )
        group = model_package_group_name.lower()
        packages = [
            sagemaker_arn("model-package-group", group),
            sagemaker_arn("model-package", f"{group}/*"),
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=packages)
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModelPackage"],
                resources=packages,
                # Where people approve releases, a copy starts out waiting for them.
                conditions={
                    "StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
                }
                if release_approval
                else None,
            )
        )
        # ListModelPackages (finding an earlier copy) and ListModels (the batch model a
        # batch-only environment serves) take no resource-level permission.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:ListModelPackages",
                    *([] if online_endpoint else ["sagemaker:ListModels"]),
                ],
                resources=["*"],
            )
        )
        artifact_bucket.grant_read_write(self.role, f"{PROMOTED_PREFIX}/*")
        trained_patterns = ("model-build/*/model/*", "model-build/*/evaluation/*")
        if reads_trained_models:
            for pattern in trained_patterns:
                artifact_bucket.grant_read(self.role, pattern)
        self.approver_policy: iam.ManagedPolicy | None = None
        if release_approval:
            self._deny_approving(artifact_bucket, packages)
            self.approver_policy = self._approver_policy(
                project, environment, packages, artifact_bucket
            )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:DescribeImages", "ecr:DescribeRepositories"],
                resources=[image_repository.repository_arn],
            )
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Wildcards: the serving stack's id suffix (one stack by name); the "
                        "endpoint configs and models CloudFormation names at run time (describe "
                        "only); versions of this environment's one package group; "
                        "ListModelPackages (and ListModels), which have no resource-level "
                        "permission; objects "
                        f"under {PROMOTED_PREFIX}/* (read and write"
                        + (
                            f") and {' and '.join(trained_patterns)} (read"
                            if reads_trained_models
                            else ""
                        )
                        + "), the bucket listed by CDK's grants; and CDK's KMS grant "
                        "(GenerateDataKey*/ReEncrypt*) on the bucket's one key."
                    ),
                )
            ],
            apply_to_children=True,
        )

    def _deny_approving(self, bucket: s3.IBucket, packages: Sequence[str]) -> None:
        """What would approve a release here is denied outright, whatever else is granted."""
        archives = [bucket.arn_for_objects(pattern) for pattern in MODEL_DATA_KEY_PATTERNS]
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["sagemaker:UpdateModelPackage"],
                resources=list(packages),
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=[
                    "s3:PutObjectTagging",
                    "s3:PutObjectVersionTagging",
                    "s3:DeleteObjectTagging",
                    "s3:DeleteObjectVersionTagging",
                ],
                resources=archives,
            )
        )
        # Nor may it write an archive that already carries the approval tag.
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["s3:PutObject"],
                resources=archives,
                conditions={
                    "ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": [APPROVAL_TAG]}
                },
            )
        )

    def _approver_policy(
        self, project: str, environment: str, packages: Sequence[str], bucket: s3.IBucket
    ) -> iam.ManagedPolicy:
        """What approvers need: read the copies and their evaluation, set their status."""
        policy = iam.ManagedPolicy(
            self,
            "ApproverPolicy",
            managed_policy_name=f"{project}-{environment}-release-approver",
            description=(
                f"Attach to the people who approve model releases to {environment}: they may "
                "approve or reject the promoted copies in its model registry"
            ),
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:DescribeModelPackage",
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:UpdateModelPackage",
                    ],
                    resources=list(packages),
                ),
                iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]),
            ],
        )
        policy.add_statements(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{PROMOTED_PREFIX}/*/evaluation/*")],
            )
        )
        if bucket.encryption_key is not None:
            policy.add_statements(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"], resources=[bucket.encryption_key.key_arn]
                )
            )
        NagSuppressions.add_resource_suppressions(
            policy,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Versions of this environment's one package group; ListModelPackages "
                        "has no resource-level permission; evaluation reports under "
                        f"{PROMOTED_PREFIX}/*/evaluation/* (read)."
                    ),
                )
            ],
        )
        return policy


class ServingChangeRole(Construct):
    """The role CloudFormation uses when the release flow updates the serving stack.

    :param role_name: its name (the deploy role names it in its condition).
    :param endpoint: the stack's endpoint: its models, configs, scaling target and role.
        None in a batch-only environment.
    :param pointer: the parameters CloudFormation resolves for the stack.
    :param encryption_key_arn: the key of the endpoint's volumes and captured data.
    :param extra_pass_roles: other roles the stack's conditional resources run as (e.g. the
        Model Monitor schedule's). Default: none.
    :param batch_model_role: the batch model's execution role (cdk.batch), passed when a
        release replaces that model. Default: the environment has no batch path.
    :param tag_keys: the tag keys the role may set on what it creates. Default: the app's
        (:data:`cdk.tagging.TAG_KEYS`).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        role_name: str,
        endpoint: ModelEndpoint | None,
        pointer: Sequence[ApprovedModelParameter],
        encryption_key_arn: str,
        extra_pass_roles: Sequence[iam.IRole] = (),
        batch_model_role: iam.IRole | None = None,
        tag_keys: Sequence[str] = TAG_KEYS,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        if endpoint is None and batch_model_role is None:
            raise ValueError(
                "ServingChangeRole needs an endpoint or a batch model role: a release changes "
                "nothing else"
            )

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        served = (
            f"the {endpoint.endpoint_name} endpoint's serving resources"
            if endpoint is not None
            else "the batch model"
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description=(
                f"CloudFormation's role for release updates of {stack.stack_name}: changes "
                f"{served} only"
            ),
        )
        pass_roles = [
            *([endpoint.role] if endpoint is not None else []),
            *extra_pass_roles,
            *([batch_model_role] if batch_model_role is not None else []),
        ]
        statements = [
            # Every release replaces the models (CloudFormation names the endpoint's; the
            # batch model is named after the package version) and deletes the old ones.
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:ListTags",
                ],
                resources=[sagemaker_arn("model", "*")],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[r.role_arn for r in pass_roles],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                actions=["ssm:GetParameters", "ssm:GetParameter"],
                resources=[
                    *(p.parameter_arn for p in pointer),
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name="cdk-bootstrap/*/version",
                    ),
                ],
            ),
        ]
        tagged = [sagemaker_arn("model", "*")]
        if endpoint is not None:
            endpoint_arn = sagemaker_arn("endpoint", endpoint.endpoint_name.lower())
            tagged += [sagemaker_arn("endpoint-config", "*"), endpoint_arn]
            statements += [
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:ListTags",
                    ],
                    resources=[sagemaker_arn("endpoint-config", "*")],
                ),
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:ListTags",
                    ],
                    resources=[endpoint_arn, sagemaker_arn("endpoint-config", "*")],
                ),
                # The endpoint config names the key for volumes and capture; SageMaker creates
                # grants on it for the instances.
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[encryption_key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                # DescribeKey has no kms:GrantIsForAWSResource key (a condition on it would deny).
                iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[encryption_key_arn]),
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[a.alarm_arn for a in (endpoint.alarm_5xx, endpoint.alarm_latency)],
                ),
            ]
        # The stack's tags on what it creates and updates, and no other keys.
        statements.append(
            iam.PolicyStatement(
                actions=["sagemaker:AddTags", "sagemaker:DeleteTags"],
                resources=tagged,
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": list(tag_keys)}},
            )
        )
        if endpoint is not None and endpoint.scaling_target is not None:
            statements += [
                # Application Auto Scaling has no resource ARN for a target before it exists;
                # the condition keeps the role to SageMaker variants' instance counts.
                iam.PolicyStatement(
                    actions=[
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:PutScalingPolicy",
                        "application-autoscaling:DeleteScalingPolicy",
                        "application-autoscaling:PutScheduledAction",
                        "application-autoscaling:DeleteScheduledAction",
                    ],
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            "application-autoscaling:service-namespace": "sagemaker",
                            "application-autoscaling:scalable-dimension": (
                                "sagemaker:variant:DesiredInstanceCount"
                            ),
                        }
                    },
                ),
                # The stack's tags on the target (and reading them back); only those keys.
                iam.PolicyStatement(
                    actions=[
                        "application-autoscaling:TagResource",
                        "application-autoscaling:UntagResource",
                        "application-autoscaling:ListTagsForResource",
                    ],
                    resources=[
                        stack.format_arn(
                            service="application-autoscaling",
                            resource="scalable-target",
                            resource_name="*",
                        )
                    ],
                    conditions={"ForAllValues:StringEquals": {"aws:TagKeys": list(tag_keys)}},
                ),
                # Read-only calls without resource types; GetMetricData is the scaling
                # policy handler's check of its metric.
                iam.PolicyStatement(
                    actions=[
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:DescribeScalingPolicies",
                        "application-autoscaling:DescribeScheduledActions",
                        "cloudwatch:GetMetricData",
                    ],
                    resources=["*"],
                ),
                # Target tracking creates and deletes its own alarms on the variant's metric.
                iam.PolicyStatement(
                    actions=[
                        "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:DeleteAlarms",
                    ],
                    resources=[
                        stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=(
                                f"TargetTracking-endpoint/{endpoint.endpoint_name}/variant/*"
                            ),
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[
                        stack.format_arn(
                            service="iam",
                            region="",
                            resource="role",
                            resource_name=f"aws-service-role/{SCALING_SERVICE_LINKED_ROLE}",
                        )
                    ],
                    conditions={
                        "StringEquals": {
                            "iam:AWSServiceName": SCALING_SERVICE_LINKED_ROLE.split("/")[0]
                        }
                    },
                ),
            ]
        if extra_pass_roles and endpoint is not None:
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateMonitoringSchedule",
                        "sagemaker:UpdateMonitoringSchedule",
                        "sagemaker:DescribeMonitoringSchedule",
                        "sagemaker:DeleteMonitoringSchedule",
                        "sagemaker:AddTags",
                    ],
                    resources=[
                        sagemaker_arn("monitoring-schedule", f"{endpoint.endpoint_name.lower()}*")
                    ],
                )
            )
        for statement in statements:
            self.role.add_to_policy(statement)
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "CloudFormation names the SageMaker models and endpoint configs it "
                        "replaces at run time, so the role may create, describe, tag and delete "
                        "any model and endpoint config in this account and region (it may pass "
                        "only this stack's endpoint and batch roles to them); the CDK bootstrap "
                        "version "
                        "parameter's qualifier; Application Auto Scaling target actions have no "
                        "resource ARN before the target exists (limited to SageMaker variant "
                        "instance counts by condition) and its Describe actions none at all; "
                        "target-tracking alarms of this endpoint's variant; monitoring "
                        "schedules named after this endpoint."
                    ),
                )
            ],
            apply_to_children=True,
        )
