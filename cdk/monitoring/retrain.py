"""The closed loop: a drift or quality alarm starts the model-build pipeline, with a cooldown.

Two EventBridge rules:

1. the alarm rule: "CloudWatch Alarm State Change" of the given alarms into ALARM invokes
   the retrain gate (:mod:`pipelines.monitoring.retrain`), which grants at most one
   request per cooldown (EventBridge has no cooldown of its own) and puts a
   ``mlops.retrain`` / "Retrain Requested" event on the bus;
2. the retrain rule: that event starts the model-build SageMaker pipeline. EventBridge
   can target a SageMaker pipeline directly, but aws_events_targets has no class for
   it (aws-cdk issue 14887), so the rule is written at the CloudFormation level with
   its own role, allowed to start that one pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.serving.functions import ControlPlaneFunction
from pipelines.monitoring.retrain import EVENT_DETAIL_TYPE, EVENT_SOURCE


class RetrainLoop(Construct):
    """Alarm -> cooldown gate -> StartPipelineExecution of the model-build pipeline.

    :param pipeline_name: the model-build SageMaker pipeline.
    :param alarms: the alarms that request a retrain (drift, quality).
    :param state_table: holds the time of the last granted retrain.
    :param cooldown: the least time between two retrains started by alarms.
    :param pipeline_parameters: parameters of the started execution. Default: the
        pipeline's own defaults.
    :param log_key: encrypts the gate's logs. Default: AWS-owned keys.
    :param removal_policy: of the gate's log group. Default: destroyed with the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_name: str,
        alarms: Sequence[cloudwatch.IAlarm],
        state_table: dynamodb.ITable,
        cooldown: Duration,
        pipeline_parameters: Mapping[str, str] | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        if not alarms:
            raise ValueError("RetrainLoop needs at least one alarm to react to (drift or quality)")
        stack = Stack.of(self)
        self.pipeline_name = pipeline_name
        self.pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name.lower()
        )
        bus_arn = stack.format_arn(service="events", resource="event-bus", resource_name="default")

        self.gate = ControlPlaneFunction(
            self,
            "Gate",
            handler="monitoring.retrain.handler",
            description=f"Requests a retrain of {pipeline_name} at most once per cooldown",
            encryption_key=log_key,
            removal_policy=removal_policy,
            environment={
                "PIPELINE_NAME": pipeline_name,
                "STATE_TABLE": state_table.table_name,
                "COOLDOWN_HOURS": str(cooldown.to_hours()),
            },
        )
        state_table.grant_read_write_data(self.gate.role)
        self.gate.role.add_to_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus_arn])
        )
        self.alarm_rule = events.Rule(
            self,
            "OnAlarm",
            description=f"Asks for a retrain of {pipeline_name} when a drift or quality alarm fires",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                detail={
                    "alarmName": [alarm.alarm_name for alarm in alarms],
                    "state": {"value": ["ALARM"]},
                },
            ),
            targets=[events_targets.LambdaFunction(self.gate.function, retry_attempts=2)],
        )

        self.start_role = iam.Role(
            self,
            "StartPipelineRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"Lets EventBridge start {pipeline_name}",
        )
        self.start_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:StartPipelineExecution"], resources=[self.pipeline_arn]
            )
        )
        parameters = [
            events.CfnRule.SageMakerPipelineParameterProperty(name=key, value=value)
            for key, value in (pipeline_parameters or {}).items()
        ]
        self.retrain_rule = events.CfnRule(
            self,
            "RetrainRule",
            description=f"Starts {pipeline_name} when a retrain is granted",
            event_pattern={
                "source": [EVENT_SOURCE],
                "detail-type": [EVENT_DETAIL_TYPE],
                "detail": {"pipeline_name": [pipeline_name]},
            },
            state="ENABLED",
            targets=[
                events.CfnRule.TargetProperty(
                    id="ModelBuildPipeline",
                    arn=self.pipeline_arn,
                    role_arn=self.start_role.role_arn,
                    sage_maker_pipeline_parameters=events.CfnRule.SageMakerPipelineParametersProperty(
                        pipeline_parameter_list=parameters
                    )
                    if parameters
                    else None,
                    retry_policy=events.CfnRule.RetryPolicyProperty(
                        maximum_retry_attempts=3, maximum_event_age_in_seconds=3600
                    ),
                )
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.gate,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Log streams of the gate's own log group and KMS data-key actions on its key.",
                )
            ],
            apply_to_children=True,
        )
