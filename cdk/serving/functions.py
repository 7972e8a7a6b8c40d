"""Lambda functions that run the control-plane code in ``pipelines/`` (boto3 only, no mlcore).

One asset holds ``pipelines/batch``, ``pipelines/deploy`` and ``pipelines/monitoring``; a
handler is named ``deploy.release.handler``, ``monitoring.jobs.handler`` or
``batch.transform.handler``, which is why those packages use
relative imports only. Each function gets its own role with no managed policy (only
writing to its own log group, plus what the caller grants) and a log group with a
retention period.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.network import StageNetwork

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
# The asset root is pipelines/; everything but the boto3 packages stays out of it.
_ASSET_EXCLUDE = [
    "*",
    "!batch",
    "!batch/**",
    "!deploy",
    "!deploy/**",
    "!monitoring",
    "!monitoring/**",
    "**/__pycache__",
]
RUNTIME = lambda_.Runtime.PYTHON_3_14


def control_plane_code() -> lambda_.Code:
    """The control-plane packages of ``pipelines/`` as one Lambda asset."""
    return lambda_.Code.from_asset(str(PIPELINES_DIR), exclude=_ASSET_EXCLUDE)


class ControlPlaneFunction(Construct):
    """A Python Lambda function running one handler of the control-plane code.

    :param handler: ``<package>.<module>.<function>`` under ``pipelines/``.
    :param description: what the function does, shown in the console.
    :param environment: its environment variables.
    :param timeout: default one minute.
    :param log_retention: default one month.
    :param removal_policy: of the log group. Default: destroyed with the stack.
    :param encryption_key: encrypts the log group and the environment variables. Default:
        AWS-owned keys.
    :param role_name: a fixed name for the function's role (so that roles in other accounts
        can trust it by ARN). Default: CloudFormation names it.
    :param memory_size: in MiB. Default: 256.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        handler: str,
        description: str,
        environment: dict[str, str] | None = None,
        timeout: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        encryption_key: kms.IKey | None = None,
        role_name: str | None = None,
        memory_size: int = 256,
    ) -> None:
        super().__init__(scope, id_)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            removal_policy=removal_policy,
            encryption_key=encryption_key,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
            role_name=role_name,
        )
        self.log_group.grant_write(self.role)
        # In a stage with a network, in its private subnets (cdk.network).
        network = StageNetwork.of(self)
        placement, vpc_access = (
            network.function_placement(self.role) if network is not None else (None, None)
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            handler=handler,
            code=control_plane_code(),
            description=description,
            environment={
                **(environment or {}),
                # The VPC's STS endpoint serves the regional name only (boto3's default for
                # STS has changed over time: say it).
                **({"AWS_STS_REGIONAL_ENDPOINTS": "regional"} if network is not None else {}),
            },
            environment_encryption=encryption_key,
            timeout=timeout or Duration.minutes(1),
            memory_size=memory_size,
            role=self.role,
            log_group=self.log_group,
            vpc=placement.vpc if placement else None,
            vpc_subnets=placement.vpc_subnets if placement else None,
            security_groups=placement.security_groups if placement else None,
        )
        if vpc_access is not None:
            self.function.node.add_dependency(vpc_access)
