"""One environment's serving stack: the endpoint, its monitors, the retrain loop and the dashboard.

The stack only wires constructs together. It reads the model package to serve, and the
sha256 of its model file, from the environment's two pointer parameters in SSM through
CloudFormation parameters of type ``AWS::SSM::Parameter::Value<String>``, so every
deployment of the stack (by the CI/CD pipeline or by the release flow) serves the package
the release flow last wrote there. While the pointer says ``none`` (no approved model yet)
the endpoint and its scaling are not created; everything else is.

The parameters must exist before this stack is first deployed: create them with
:class:`cdk.serving.approved_model.ApprovedModelParameter` in a stack this one depends on
(the environment's ReleaseState stack). The release flow updates this stack through the
:class:`cdk.serving.release_access.ServingChangeRole` it holds, which can change only the
serving resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnCondition, CfnParameter, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field

from cdk.monitoring.dashboard import MonitoringDashboard
from cdk.monitoring.model_monitor import DataQualityMonitorSchedule
from cdk.monitoring.monitors import ModelMonitors
from cdk.monitoring.retrain import RemoteRetrainBus, RetrainLoop, RetrainReceiver
from cdk.monitoring.settings import MonitorSettings
from cdk.serving.approved_model import NO_MODEL, ApprovedModelParameter
from cdk.serving.endpoint import ModelEndpoint
from cdk.serving.release import ReleaseFlow, ReleaseTarget
from cdk.serving.release_access import ServingChangeRole
from cdk.serving.settings import EndpointSettings
from mlcore.settings import MlopsSettings


class ServingProps(BaseModel):
    """What differs per environment. ``monitoring=None`` leaves the monitors out (e.g. a serverless dev)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str = Field(pattern=r"^[a-z][a-z0-9]{1,11}$")
    endpoint: EndpointSettings
    monitoring: MonitorSettings | None = None
    settings_file: str = "mlops.yaml"
    # Keep the state table, logs and topic when the stack is deleted (always for production).
    retain: bool = False
    # A person approves each release here: the endpoint serves only approved model archives.
    release_approval: bool = False
    metric_namespace: str = "MLOps"

    @classmethod
    def from_mlops(
        cls,
        settings: MlopsSettings,
        *,
        environment: str,
        endpoint: dict[str, Any] | None = None,
        monitoring: dict[str, Any] | None = None,
        with_monitors: bool = True,
        **props: Any,
    ) -> ServingProps:
        """Props whose capture rate, thresholds, cooldown and alert emails come from ``mlops.yaml``.

        ``endpoint`` and ``monitoring`` override single fields; the endpoint is named
        ``<project>-<environment>`` unless ``endpoint`` names it.
        """
        endpoint_fields = {
            "endpoint_name": f"{settings.project}-{environment}",
            "capture_sampling_percentage": settings.monitoring.capture_sampling_percentage,
            "serving": settings.serving,
            **(endpoint or {}),
        }
        monitor_settings = (
            MonitorSettings.from_mlops(settings, **(monitoring or {})) if with_monitors else None
        )
        return cls(
            environment=environment,
            endpoint=EndpointSettings(**endpoint_fields),
            monitoring=monitor_settings,
            **props,
        )


def retrain_cooldown(monitoring: MonitorSettings) -> Duration:
    return Duration.minutes(round(monitoring.retrain_cooldown_hours * 60))


class RetrainReceiverProps(BaseModel):
    """Retrain requests this (model-build) environment accepts from other accounts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bus_name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,256}$")
    sender_accounts: tuple[str, ...] = Field(min_length=1)
    cooldown_hours: float = Field(ge=0)


class ServingStack(Stack):
    """Endpoint (blue/green, auto-rollback, capture, autoscaling), monitors, retrain loop, dashboard.

    :param props: this environment's settings.
    :param encryption_key: the data key: endpoint volumes, captured data, reports.
    :param artifact_bucket: holds model artifacts; receives captured data, reports and ground truth.
    :param image_uri: the mlcore image the monitor jobs run.
    :param image_repository: its ECR repository (the serving container's too).
    :param model_package_group_name: the registry group the served packages belong to.
    :param model_build_pipeline_name: the pipeline the retrain loop starts (in this account,
        unless ``retrain_forward_to`` is given). Default: no retrain loop; the monitors'
        alarms only notify.
    :param retrain_forward_to: the model-build account's retrain bus, when the pipeline is
        in another account or region: granted requests are forwarded there. Default: the
        pipeline is started here.
    :param retrain_receiver: accept retrain requests for ``model_build_pipeline_name`` from
        other accounts on this bus. Default: none are accepted.
    :param approved_model: the SSM parameter naming the package to serve (in an earlier stack).
    :param approved_model_sha256: the SSM parameter holding that package's model sha256.
    :param change_role_name: the name of the role CloudFormation uses for release updates.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        props: ServingProps,
        encryption_key: kms.IKey,
        artifact_bucket: s3.IBucket,
        image_uri: str,
        image_repository: ecr.IRepository,
        model_package_group_name: str,
        approved_model: ApprovedModelParameter,
        approved_model_sha256: ApprovedModelParameter,
        change_role_name: str,
        model_build_pipeline_name: str | None = None,
        retrain_forward_to: RemoteRetrainBus | None = None,
        retrain_receiver: RetrainReceiverProps | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        # CloudFormation reads the parameter before it creates anything in this stack.
        self.add_stack_dependency(Stack.of(approved_model))
        self.props = props
        self.approved_model = approved_model
        removal = RemovalPolicy.RETAIN if props.retain else RemovalPolicy.DESTROY

        self.ops_key = kms.Key(
            self,
            "OpsKey",
            description="Encrypts the serving stack's alerts topic, state table and logs",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            # Alarms and EventBridge publish to the encrypted topic with their own principals.
            self.ops_key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[iam.ServicePrincipal(service)],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                )
            )
        self.ops_key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": self.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )

        self.alerts = sns.Topic(
            self,
            "Alerts",
            display_name=f"{props.endpoint.endpoint_name} alerts",
            master_key=self.ops_key,
            enforce_ssl=True,
        )
        emails = props.monitoring.alert_emails if props.monitoring else ()
        for email in emails:
            self.alerts.add_subscription(subscriptions.EmailSubscription(email))

        self.model_package_parameter = CfnParameter(
            self,
            "ModelPackageArn",
            type="AWS::SSM::Parameter::Value<String>",
            default=approved_model.parameter_name,
            description="SSM parameter holding the model package ARN to serve (written by the release flow)",
        )
        self.model_sha256_parameter = CfnParameter(
            self,
            "ModelSha256",
            type="AWS::SSM::Parameter::Value<String>",
            default=approved_model_sha256.parameter_name,
            description="SSM parameter holding the sha256 of the served package's model file",
        )
        self.has_model = CfnCondition(
            self,
            "HasApprovedModel",
            expression=Fn.condition_not(
                Fn.condition_equals(self.model_package_parameter.value_as_string, NO_MODEL)
            ),
        )
        self.endpoint = ModelEndpoint(
            self,
            "Endpoint",
            settings=props.endpoint,
            model_package_arn=self.model_package_parameter.value_as_string,
            model_sha256=self.model_sha256_parameter.value_as_string,
            encryption_key=encryption_key,
            capture_bucket=artifact_bucket,
            model_bucket=artifact_bucket,
            image_repository=image_repository,
            condition=self.has_model,
            approved_models_only=props.release_approval,
        )
        for alarm in (self.endpoint.alarm_5xx, self.endpoint.alarm_latency):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alerts))

        # A plain table: TableV2 cannot render its encryption in a region-agnostic stack.
        self.state_table = dynamodb.Table(
            self,
            "State",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.ops_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal,
        )

        self.monitors: ModelMonitors | None = None
        self.retrain: RetrainLoop | None = None
        self.model_monitor: DataQualityMonitorSchedule | None = None
        if props.monitoring is not None:
            self.monitors = ModelMonitors(
                self,
                "Monitors",
                endpoint=self.endpoint,
                approved_model=approved_model,
                model_package_group_name=model_package_group_name,
                image_uri=image_uri,
                image_repository=image_repository,
                encryption_key=encryption_key,
                model_bucket=artifact_bucket,
                reports_bucket=artifact_bucket,
                settings_file=Path(props.settings_file),
                settings=props.monitoring,
                state_table=self.state_table,
                notifications=self.alerts,
                namespace=props.metric_namespace,
                log_key=self.ops_key,
                removal_policy=removal,
            )
            if model_build_pipeline_name is not None:
                self.retrain = RetrainLoop(
                    self,
                    "Retrain",
                    pipeline_name=model_build_pipeline_name,
                    alarms=self.monitors.alarms,
                    state_table=self.state_table,
                    cooldown=retrain_cooldown(props.monitoring),
                    forward_to=retrain_forward_to,
                    log_key=self.ops_key,
                    removal_policy=removal,
                )
                if self.retrain.forward_rule is not None:
                    cloudwatch.Alarm(
                        self,
                        "RetrainForwardFailed",
                        alarm_name=f"{props.endpoint.endpoint_name}-retrain-forward-failed",
                        alarm_description=(
                            "A granted retrain request could not be delivered to the model-build "
                            "account's retrain bus: drift here started no retrain. Check that "
                            "account's RetrainReceiver (bus policy) and the forwarding rule."
                        ),
                        metric=self.retrain.metric_forward_failures(),
                        threshold=1,
                        evaluation_periods=1,
                        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    ).add_alarm_action(cloudwatch_actions.SnsAction(self.alerts))
            if props.monitoring.model_monitor is not None:
                self.model_monitor = DataQualityMonitorSchedule(
                    self,
                    "ModelMonitor",
                    endpoint=self.endpoint,
                    settings=props.monitoring.model_monitor,
                    encryption_key=encryption_key,
                    reports_bucket=artifact_bucket,
                )
                self.model_monitor.schedule.cfn_options.condition = self.has_model
        self.retrain_receiver: RetrainReceiver | None = None
        if retrain_receiver is not None:
            if model_build_pipeline_name is None:
                raise ValueError(
                    "retrain_receiver needs model_build_pipeline_name: the pipeline that the "
                    "forwarded requests start"
                )
            self.retrain_receiver = RetrainReceiver(
                self,
                "RetrainReceiver",
                pipeline_name=model_build_pipeline_name,
                bus_name=retrain_receiver.bus_name,
                sender_accounts=retrain_receiver.sender_accounts,
                state_table=self.state_table,
                # The same cooldown as this environment's own alarms, and the same table
                # item: one retrain per cooldown, whichever account asked.
                cooldown=Duration.hours(retrain_receiver.cooldown_hours),
                key=self.ops_key,
                start_rule=self.retrain is None or self.retrain.start is None,
                log_key=self.ops_key,
                removal_policy=removal,
            )
        self.dashboard = MonitoringDashboard(
            self, "Dashboard", endpoint=self.endpoint, monitors=self.monitors
        )
        self.change_role = ServingChangeRole(
            self,
            "ReleaseChangeRole",
            role_name=change_role_name,
            endpoint=self.endpoint,
            pointer=(approved_model, approved_model_sha256),
            encryption_key_arn=encryption_key.key_arn,
            extra_pass_roles=[self.model_monitor.role] if self.model_monitor else [],
        )

        self.model_package_group_name = model_package_group_name
        self.release: ReleaseFlow | None = None

    def add_release_flow(
        self,
        targets: Sequence[ReleaseTarget],
        *,
        function_role_names: tuple[str, str],
        approval_timeout: Duration | None = None,
    ) -> ReleaseFlow:
        """Put the release flow in this stack (the model-build environment's): packages
        approved in its group go to ``targets`` in order, this environment first."""
        if self.release is not None:
            raise ValueError(f"{self.stack_name} already holds a release flow")
        removal = RemovalPolicy.RETAIN if self.props.retain else RemovalPolicy.DESTROY
        self.release = ReleaseFlow(
            self,
            "Release",
            model_package_group_name=self.model_package_group_name,
            targets=targets,
            notifications=self.alerts,
            function_role_names=function_role_names,
            approval_timeout=approval_timeout,
            encryption_key=self.ops_key,
            removal_policy=removal,
        )
        return self.release
