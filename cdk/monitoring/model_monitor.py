"""SageMaker Model Monitor's built-in data-quality schedule: optional, off by default.

AWS no longer opens Model Monitor to new customers; accounts that still have it can run
it beside our own monitors. Its baseline is the ``statistics.json``/``constraints.json``
pair ``mlcore drift`` writes in Model Monitor's format, so both judge the same baseline.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.monitoring.settings import ModelMonitorSettings
from cdk.network import StageNetwork
from cdk.serving.endpoint import ModelEndpoint


class DataQualityMonitorSchedule(Construct):
    """A Model Monitor data-quality job definition and its hourly schedule for one endpoint.

    :param endpoint: the monitored endpoint (it must capture data).
    :param settings: the analyzer image, the baseline files and the schedule.
    :param encryption_key: encrypts the job's volume and outputs.
    :param reports_bucket: receives Model Monitor's reports under ``reports_prefix``.
    :param reports_prefix: default ``model-monitor/<endpoint name>``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        endpoint: ModelEndpoint,
        settings: ModelMonitorSettings,
        encryption_key: kms.IKey,
        reports_bucket: s3.IBucket,
        reports_prefix: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        if not endpoint.settings.captures_data:
            raise ValueError(
                f"endpoint {endpoint.endpoint_name} captures no data (serverless); Model Monitor needs capture"
            )
        prefix = reports_prefix or f"model-monitor/{endpoint.endpoint_name}"
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs Model Monitor's data-quality jobs for {endpoint.endpoint_name}",
        )
        endpoint.capture_bucket.grant_read(
            self.role, f"{endpoint.capture_prefix}/{endpoint.endpoint_name}/*"
        )
        reports_bucket.grant_read_write(self.role, f"{prefix}/*")
        encryption_key.grant_encrypt_decrypt(self.role)
        for uri in (settings.baseline_statistics_s3_uri, settings.baseline_constraints_s3_uri):
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="s3", region="", account="", resource=bucket, resource_name=key
                        )
                    ],
                )
            )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:GetAuthorizationToken",
                ],
                resources=["*"],
            )
        )
        # In a stage with a network, the job runs in its subnets (cdk.network).
        network = StageNetwork.of(self)
        if network is not None:
            network.grant_network_interfaces(self.role)
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "The analyzer image lives in an AWS-owned account per region (ECR pull "
                        "needs '*' for GetAuthorizationToken); object wildcards are this endpoint's "
                        "prefixes; KMS data-key actions are on the one key."
                    ),
                )
            ],
            apply_to_children=True,
        )
        self.job_definition = sagemaker.CfnDataQualityJobDefinition(
            self,
            "JobDefinition",
            job_definition_name=f"{endpoint.endpoint_name}-data-quality",
            role_arn=self.role.role_arn,
            data_quality_app_specification=sagemaker.CfnDataQualityJobDefinition.DataQualityAppSpecificationProperty(
                image_uri=settings.analyzer_image_uri
            ),
            data_quality_baseline_config=sagemaker.CfnDataQualityJobDefinition.DataQualityBaselineConfigProperty(
                constraints_resource=sagemaker.CfnDataQualityJobDefinition.ConstraintsResourceProperty(
                    s3_uri=settings.baseline_constraints_s3_uri
                ),
                statistics_resource=sagemaker.CfnDataQualityJobDefinition.StatisticsResourceProperty(
                    s3_uri=settings.baseline_statistics_s3_uri
                ),
            ),
            data_quality_job_input=sagemaker.CfnDataQualityJobDefinition.DataQualityJobInputProperty(
                endpoint_input=sagemaker.CfnDataQualityJobDefinition.EndpointInputProperty(
                    endpoint_name=endpoint.endpoint_name,
                    local_path="/opt/ml/processing/input/endpoint",
                )
            ),
            data_quality_job_output_config=sagemaker.CfnDataQualityJobDefinition.MonitoringOutputConfigProperty(
                kms_key_id=encryption_key.key_arn,
                monitoring_outputs=[
                    sagemaker.CfnDataQualityJobDefinition.MonitoringOutputProperty(
                        s3_output=sagemaker.CfnDataQualityJobDefinition.S3OutputProperty(
                            local_path="/opt/ml/processing/output",
                            s3_uri=reports_bucket.s3_url_for_object(prefix),
                            s3_upload_mode="EndOfJob",
                        )
                    )
                ],
            ),
            job_resources=sagemaker.CfnDataQualityJobDefinition.MonitoringResourcesProperty(
                cluster_config=sagemaker.CfnDataQualityJobDefinition.ClusterConfigProperty(
                    instance_count=1,
                    instance_type="ml.m5.large",
                    volume_size_in_gb=20,
                    volume_kms_key_id=encryption_key.key_arn,
                )
            ),
            network_config=sagemaker.CfnDataQualityJobDefinition.NetworkConfigProperty(
                enable_network_isolation=True,
                enable_inter_container_traffic_encryption=True if network is not None else None,
                vpc_config=sagemaker.CfnDataQualityJobDefinition.VpcConfigProperty(
                    security_group_ids=network.job_security_group_ids,
                    subnets=network.subnet_ids,
                )
                if network is not None
                else None,
            ),
        )
        self.schedule = sagemaker.CfnMonitoringSchedule(
            self,
            "Schedule",
            monitoring_schedule_name=f"{endpoint.endpoint_name}-data-quality",
            monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                monitoring_job_definition_name=f"{endpoint.endpoint_name}-data-quality",
                monitoring_type="DataQuality",
                schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(
                    schedule_expression=settings.schedule
                ),
            ),
        )
        self.schedule.node.add_dependency(self.job_definition)
