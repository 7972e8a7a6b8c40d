"""An optional SageMaker managed MLflow tracking server per environment (off by default).

The model-build jobs get its ARN as ``MLFLOW_TRACKING_URI`` (the sagemaker-mlflow plugin
accepts a tracking server ARN as the URI) and their role may log to it; mlcore's tracking
honours the variable. Artifacts go to ``s3://<artifact bucket>/<artifact_prefix>/`` under
the environment's KMS key. The registries stay SageMaker's: automatic registration into the
SageMaker Model Registry is off, so MLflow never creates model packages of its own.

Property rules checked against the CloudFormation schema (cfn-lint) and botocore's
CreateMlflowTrackingServer shape: the name is ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}``, the size
one of Small, Medium, Large, and the maintenance window ``Mon|Tue|...:HH:MM``.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
# What a job needs to log runs, metrics, params and models (IAM prefix sagemaker-mlflow).
LOGGING_ACTIONS = (
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:GetExperiment",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:SearchExperiments",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:UpdateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:SearchRuns",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:LogMetric",
    "sagemaker-mlflow:LogParam",
    "sagemaker-mlflow:LogInputs",
    "sagemaker-mlflow:LogModel",
    "sagemaker-mlflow:SetTag",
    "sagemaker-mlflow:ListArtifacts",
)


class TrackingServerConfig(BaseModel):
    """``stages.<name>.mlflow`` in cdk.json: whether the environment gets a tracking server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    size: Literal["Small", "Medium", "Large"] = "Small"
    # null: the service's default version.
    mlflow_version: str | None = Field(None, pattern=r"^\d+(\.\d+)+$", max_length=16)
    weekly_maintenance_window_start: str | None = Field(
        None, pattern=r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01]\d|2[0-3]):([0-5]\d)$"
    )


class TrackingServer(Construct):
    """A managed MLflow tracking server whose artifact store is a prefix of ``artifact_bucket``.

    :param tracking_server_name: the server's name (letters, digits, hyphens).
    :param artifact_bucket: holds the MLflow artifacts under ``artifact_prefix``.
    :param key: the bucket's KMS key.
    :param config: size, MLflow version and maintenance window.
    :param artifact_prefix: default ``mlflow``.
    :param retain: keep the server when the stack is deleted. Default: deleted.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        tracking_server_name: str,
        artifact_bucket: s3.IBucket,
        key: kms.IKey,
        config: TrackingServerConfig | None = None,
        artifact_prefix: str = "mlflow",
        retain: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        config = config or TrackingServerConfig(enabled=True)
        if not _NAME.match(tracking_server_name):
            raise ValueError(
                "tracking_server_name must be letters, digits and single hyphens, at most 256 "
                f"characters (CreateMlflowTrackingServer); got {tracking_server_name!r}"
            )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Lets the {tracking_server_name} MLflow server use its artifact store",
        )
        artifact_bucket.grant_read_write(self.role, f"{artifact_prefix}/*")
        key.grant_encrypt_decrypt(self.role)
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "The server reads and writes run artifacts it names at run time, only "
                        f"under the {artifact_prefix}/ prefix of the artifact bucket; the KMS "
                        "data-key actions are on the environment's one key."
                    ),
                    applies_to=[
                        "Action::s3:Abort*",
                        "Action::s3:DeleteObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:GetObject*",
                        "Action::s3:List*",
                        "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*",
                        {"regex": f"/^Resource::<.*Artifacts.*\\.Arn>/{artifact_prefix}/\\*$/"},
                    ],
                )
            ],
            apply_to_children=True,
        )
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=tracking_server_name,
            artifact_store_uri=artifact_bucket.s3_url_for_object(artifact_prefix),
            role_arn=self.role.role_arn,
            tracking_server_size=config.size,
            mlflow_version=config.mlflow_version,
            weekly_maintenance_window_start=config.weekly_maintenance_window_start,
            automatic_model_registration=False,
        )
        self.server.node.add_dependency(self.role)
        self.server.apply_removal_policy(RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY)
        self.tracking_server_name = tracking_server_name
        self.tracking_server_arn = self.server.attr_tracking_server_arn
        self._arn_pattern = Stack.of(self).format_arn(
            service="sagemaker",
            resource="mlflow-tracking-server",
            resource_name=tracking_server_name,
        )

    @property
    def tracking_uri(self) -> str:
        """What ``MLFLOW_TRACKING_URI`` is set to: the server's ARN."""
        return self.tracking_server_arn

    def grant_log(self, grantee: iam.IGrantable) -> iam.Grant:
        """Log experiments, runs, metrics, params and models to this server."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(LOGGING_ACTIONS), resource_arns=[self._arn_pattern]
        )
