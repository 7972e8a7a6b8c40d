"""The closed loop: a drift or quality alarm starts the model-build pipeline, with a cooldown.

In the account that trains, two EventBridge rules:

1. the alarm rule: "CloudWatch Alarm State Change" of the given alarms into ALARM invokes
   the retrain gate (:mod:`pipelines.monitoring.retrain`), which grants at most one
   request per cooldown (EventBridge has no cooldown of its own) and puts a
   ``mlops.retrain`` / "Retrain Requested" event on the bus;
2. the retrain rule: that event starts the model-build SageMaker pipeline. EventBridge
   can target a SageMaker pipeline directly, but aws_events_targets has no class for
   it (aws-cdk issue 14887), so the rule is written at the CloudFormation level with
   its own role, allowed to start that one pipeline.

An environment whose model-build pipeline is in another account (staging and prod with
``train: false``) keeps the alarm rule and its gate, and instead of 2. forwards the granted
event to the model-build account's retrain bus (:class:`RetrainReceiver`), which passes it
through that account's own checks and cooldown before its retrain rule starts the pipeline.

Rules followed (Amazon EventBridge User Guide, "Sending and receiving events between AWS
accounts"; botocore's events service model, PutTargets and PutPermission): the sender's rule
targets the other account's bus by ARN, with a role allowed ``events:PutEvents`` on that bus
and no Input transformation (not available for another account's bus); the receiving bus's
resource policy names the sending accounts; an event keeps the sending account in its
``account`` field, which the receiver's rule matches on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


def retrain_bus_name(prefix: str) -> str:
    """The model-build environment's bus for retrain requests from other accounts."""
    return f"{prefix}-retrain-requests"


@dataclass(frozen=True)
class RemoteRetrainBus:
    """Where an environment without its own pipeline forwards granted retrain requests."""

    account: str
    region: str
    bus_name: str

    def arn(self, partition: str) -> str:
        return f"arn:{partition}:events:{self.region}:{self.account}:event-bus/{self.bus_name}"


def retrain_request_pattern(pipeline_name: str, **extra: object) -> dict[str, object]:
    """The event pattern of a granted retrain request for ``pipeline_name``."""
    return {
        "source": [EVENT_SOURCE],
        "detail-type": [EVENT_DETAIL_TYPE],
        **extra,
        "detail": {"pipeline_name": [pipeline_name]},
    }


class StartPipelineRule(Construct):
    """The retrain rule: a granted request on this account's default bus starts the pipeline.

    :param pipeline_name: the model-build SageMaker pipeline (in this account and region).
    :param pipeline_parameters: parameters of the started execution. Default: the
        pipeline's own defaults.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_name: str,
        pipeline_parameters: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.pipeline_arn = Stack.of(self).format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name.lower()
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"Lets EventBridge start {pipeline_name}",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:StartPipelineExecution"], resources=[self.pipeline_arn]
            )
        )
        parameters = [
            events.CfnRule.SageMakerPipelineParameterProperty(name=key, value=value)
            for key, value in (pipeline_parameters or {}).items()
        ]
        self.rule = events.CfnRule(
            self,
            "Rule",
            description=f"Starts {pipeline_name} when a retrain is granted",
            event_pattern=retrain_request_pattern(pipeline_name),
            state="ENABLED",
            targets=[
                events.CfnRule.TargetProperty(
                    id="ModelBuildPipeline",
                    arn=self.pipeline_arn,
                    role_arn=self.role.role_arn,
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


class RetrainGate(Construct):
    """The cooldown gate: a Lambda function that puts a granted request on the default bus.

    :param handler: ``monitoring.retrain.handler`` (alarm state changes) or
        ``monitoring.retrain.receive_handler`` (requests forwarded from other accounts).
    :param environment: more environment variables for the handler.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_name: str,
        state_table: dynamodb.ITable,
        cooldown: Duration,
        handler: str,
        description: str,
        environment: Mapping[str, str] | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        bus_arn = Stack.of(self).format_arn(
            service="events", resource="event-bus", resource_name="default"
        )
        self.function = ControlPlaneFunction(
            self,
            "Function",
            handler=handler,
            description=description,
            encryption_key=log_key,
            removal_policy=removal_policy,
            environment={
                "PIPELINE_NAME": pipeline_name,
                "STATE_TABLE": state_table.table_name,
                "COOLDOWN_HOURS": str(cooldown.to_hours()),
                **(environment or {}),
            },
        )
        state_table.grant_read_write_data(self.function.role)
        self.function.role.add_to_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus_arn])
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Log streams of the gate's own log group and KMS data-key actions on its key.",
                )
            ],
            apply_to_children=True,
        )


class RetrainLoop(Construct):
    """Alarm -> cooldown gate -> the model-build pipeline (here, or in another account).

    :param pipeline_name: the model-build SageMaker pipeline.
    :param alarms: the alarms that request a retrain (drift, quality).
    :param state_table: holds the time of the last granted retrain.
    :param cooldown: the least time between two retrains started by alarms.
    :param forward_to: the model-build account's retrain bus. Default: the pipeline is in
        this account and region, and this loop's own retrain rule starts it.
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
        forward_to: RemoteRetrainBus | None = None,
        pipeline_parameters: Mapping[str, str] | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        if not alarms:
            raise ValueError("RetrainLoop needs at least one alarm to react to (drift or quality)")
        if forward_to is not None and pipeline_parameters:
            raise ValueError(
                "pipeline_parameters cannot be forwarded to another account's pipeline: set "
                "them on the model-build account's RetrainReceiver"
            )
        stack = Stack.of(self)
        self.pipeline_name = pipeline_name
        gate = RetrainGate(
            self,
            "Gate",
            pipeline_name=pipeline_name,
            state_table=state_table,
            cooldown=cooldown,
            handler="monitoring.retrain.handler",
            description=f"Requests a retrain of {pipeline_name} at most once per cooldown",
            log_key=log_key,
            removal_policy=removal_policy,
        )
        self.gate = gate.function
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

        self.start: StartPipelineRule | None = None
        self.forward_rule: events.Rule | None = None
        if forward_to is None:
            self.start = StartPipelineRule(
                self,
                "Start",
                pipeline_name=pipeline_name,
                pipeline_parameters=pipeline_parameters,
            )
            return
        self.forward_bus = events.EventBus.from_event_bus_arn(
            self, "ModelBuildBus", forward_to.arn(stack.partition)
        )
        self.forward_role = iam.Role(
            self,
            "ForwardRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=(
                f"Lets EventBridge forward retrain requests for {pipeline_name} to the "
                f"model-build account's bus {forward_to.bus_name}"
            ),
        )
        self.forward_rule = events.Rule(
            self,
            "Forward",
            description=(
                f"Forwards granted retrain requests for {pipeline_name} to account "
                f"{forward_to.account}, which checks them and starts the pipeline"
            ),
            # Only requests this account's gate put (an event arriving from elsewhere keeps
            # its own account, and is not forwarded again: EventBridge forwards one hop).
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[EVENT_DETAIL_TYPE],
                account=[stack.account],
                detail={"pipeline_name": [pipeline_name]},
            ),
            # The target's own role may only PutEvents on that one bus (CDK adds the grant).
            targets=[events_targets.EventBus(self.forward_bus, role=self.forward_role)],
        )

    def metric_forward_failures(self) -> cloudwatch.Metric:
        """EventBridge's ``FailedInvocations`` of the forwarding rule: requests that never
        reached the model-build account (refused by its bus policy, or the bus is missing)."""
        if self.forward_rule is None:
            raise ValueError("this retrain loop starts its pipeline itself; it forwards nothing")
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": self.forward_rule.rule_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )


class RetrainReceiver(Construct):
    """The model-build account's side: retrain requests forwarded from other accounts.

    A dedicated bus (encrypted with ``key``) whose resource policy lets exactly
    ``sender_accounts`` put retrain requests on it; a rule matching those requests from
    those accounts invokes the receiving gate, which checks each request again, applies
    this account's cooldown and puts the local request the retrain rule acts on. Forwarded
    events land only on this bus, never on the default bus, so no rule but the gate sees them.

    :param bus_name: the bus's name (senders know it before this stack is deployed).
    :param sender_accounts: the accounts whose monitors may request a retrain.
    :param start_rule: create the retrain rule that starts the pipeline. Set false when this
        stack's own RetrainLoop already has one (a second would start two runs per request).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_name: str,
        bus_name: str,
        sender_accounts: Sequence[str],
        state_table: dynamodb.ITable,
        cooldown: Duration,
        key: kms.IKey,
        start_rule: bool = True,
        pipeline_parameters: Mapping[str, str] | None = None,
        log_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        senders = sorted(set(sender_accounts))
        if not senders:
            raise ValueError("RetrainReceiver needs the accounts it receives requests from")
        self.sender_accounts = senders
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=bus_name,
            description=f"Retrain requests for {pipeline_name} from other accounts",
            kms_key=key,
        )
        for number, account in enumerate(senders):
            # EventBridge User Guide, "Example policy: Send events to a custom bus in a
            # different account": the account's principal, narrowed to one source and type.
            self.bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"RetrainRequestsFromSender{number}",
                    actions=["events:PutEvents"],
                    principals=[iam.AccountPrincipal(account)],
                    resources=[self.bus.event_bus_arn],
                    conditions={
                        "ForAllValues:StringEquals": {"events:source": [EVENT_SOURCE]},
                        "StringEquals": {"events:detail-type": EVENT_DETAIL_TYPE},
                    },
                )
            )
        gate = RetrainGate(
            self,
            "Gate",
            pipeline_name=pipeline_name,
            state_table=state_table,
            cooldown=cooldown,
            handler="monitoring.retrain.receive_handler",
            description=(
                f"Checks retrain requests from other accounts and grants at most one retrain "
                f"of {pipeline_name} per cooldown"
            ),
            environment={"ALLOWED_ACCOUNTS": ",".join(senders)},
            log_key=log_key,
            removal_policy=removal_policy,
        )
        self.gate = gate.function
        self.rule = events.Rule(
            self,
            "OnRequest",
            event_bus=self.bus,
            description=f"Retrain requests for {pipeline_name} from the serving accounts",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[EVENT_DETAIL_TYPE],
                account=senders,
                detail={"pipeline_name": [pipeline_name]},
            ),
            targets=[events_targets.LambdaFunction(self.gate.function, retry_attempts=2)],
        )
        self.start: StartPipelineRule | None = None
        if start_rule:
            self.start = StartPipelineRule(
                self,
                "Start",
                pipeline_name=pipeline_name,
                pipeline_parameters=pipeline_parameters,
            )
