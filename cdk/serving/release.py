"""The release flow: an approved model package goes to staging, is smoke tested, waits for a
person, then goes to prod.

Approving a package in the model registry emits "SageMaker Model Package State Change";
an EventBridge rule starts this Step Functions state machine with that event. For each
target in order it:

1. waits for a manual approval first, if the target asks for one: an SNS message carries
   the two commands (``aws stepfunctions send-task-success`` / ``send-task-failure``) with
   the task token; no answer within ``approval_timeout`` counts as a rejection;
2. deploys (:mod:`pipelines.deploy.release`): writes the package ARN to the target's SSM
   parameter and updates its serving stack, which updates the endpoint blue/green with
   auto-rollback;
3. polls the stack until the update ends; a failed update (SageMaker's alarm-driven
   rollback included) stops the release;
4. smoke tests the endpoint (:mod:`pipelines.deploy.smoke`); a failure rolls the target
   back to the package it served before and stops the release.

Every stop (rejection, timeout, failed deploy, failed smoke test) and the final success
is announced on the notification topic. Targets live in this stack's account and region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from cdk.serving.functions import ControlPlaneFunction


@dataclass(frozen=True)
class ReleaseTarget:
    """One environment the release deploys to, in order.

    :param environment: a short name (``staging``, ``prod``), used in state names.
    :param stack_name: the serving stack that owns the endpoint.
    :param parameter_name: the SSM parameter that stack reads the model package from.
    :param endpoint_name: the endpoint to smoke test.
    :param approval_before: a person approves before this target is deployed.
    """

    environment: str
    stack_name: str
    parameter_name: str
    endpoint_name: str
    approval_before: bool = False

    def payload(self) -> dict[str, str]:
        return {
            "environment": self.environment,
            "stack_name": self.stack_name,
            "parameter_name": self.parameter_name,
            "endpoint_name": self.endpoint_name,
        }


class ReleaseFlow(Construct):
    """Approval event -> staged deployment with smoke tests and a manual approval.

    :param model_package_group_name: the registry group whose approvals start a release.
    :param targets: the environments, in promotion order (at least one).
    :param notifications: receives approval requests and the outcome of every release.
    :param approval_timeout: how long an approval waits. Default: 7 days.
    :param poll_interval: how often a deployment's progress is checked. Default: 1 minute.
    :param encryption_key: encrypts the flow's logs. Default: AWS-owned keys.
    :param removal_policy: of the flow's log groups. Default: destroyed with the stack.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model_package_group_name: str,
        targets: Sequence[ReleaseTarget],
        notifications: sns.ITopic,
        approval_timeout: Duration | None = None,
        poll_interval: Duration | None = None,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        problems = []
        if not targets:
            problems.append("targets must name at least one environment")
        names = [t.environment for t in targets]
        if len(set(names)) != len(names):
            problems.append(f"target environments must be unique, got {names}")
        if problems:
            raise ValueError("invalid ReleaseFlow: " + "; ".join(problems))
        approval_timeout = approval_timeout or Duration.days(7)
        poll_interval = poll_interval or Duration.minutes(1)
        self.notifications = notifications
        stack = Stack.of(self)

        self.deploy_function = ControlPlaneFunction(
            self,
            "Deploy",
            handler="deploy.release.handler",
            description="Points an environment at an approved model package and updates its serving stack",
            encryption_key=encryption_key,
            removal_policy=removal_policy,
        )
        self.smoke_function = ControlPlaneFunction(
            self,
            "SmokeTest",
            handler="deploy.smoke.handler",
            description="Invokes a freshly deployed endpoint with a sample payload and checks the answer",
            encryption_key=encryption_key,
            removal_policy=removal_policy,
        )
        deploy_role = self.deploy_function.role
        deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=t.parameter_name.lstrip("/"),
                    )
                    for t in targets
                ],
            )
        )
        deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                resources=[
                    stack.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"{t.stack_name}/*",
                    )
                    for t in targets
                ],
            )
        )
        deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="model-package",
                        resource_name=f"{model_package_group_name.lower()}/*",
                    )
                ],
            )
        )
        # UpdateStack reuses the role the stack was deployed with (the CDK bootstrap's
        # CloudFormation execution role), which the caller must be allowed to pass.
        deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[
                    stack.format_arn(
                        service="iam",
                        region="",
                        resource="role",
                        resource_name="cdk-*-cfn-exec-role-*",
                    )
                ],
                conditions={
                    "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                },
            )
        )
        self.smoke_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="endpoint",
                        resource_name=t.endpoint_name.lower(),
                    )
                    for t in targets
                ],
            )
        )

        self._approval_timeout = approval_timeout
        self._poll_interval = poll_interval
        start = sfn.Pass(
            self,
            "ReadApprovalEvent",
            parameters={"model_package_arn.$": "$.detail.ModelPackageArn"},
        )
        chain: sfn.IChainable = start
        tail: sfn.INextable = start
        for target in targets:
            first, last = self._target_steps(target)
            tail.next(first)
            tail = last
        tail.next(
            self._notify(
                "NotifyReleased",
                "Released {} to " + ", ".join(t.environment for t in targets) + ".",
            ).next(sfn.Succeed(self, "Released"))
        )

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.SIX_MONTHS,
            removal_policy=removal_policy,
            encryption_key=encryption_key,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Approved model package -> staged deployment, smoke tests, manual approval",
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            timeout=Duration.days(30),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        self.rule = events.Rule(
            self,
            "OnApproval",
            description=f"Starts a release when a package of {model_package_group_name} is approved",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [model_package_group_name],
                    "ModelApprovalStatus": ["Approved"],
                },
            ),
            targets=[events_targets.SfnStateMachine(self.state_machine)],
        )
        for construct in (self.deploy_function, self.smoke_function, self.state_machine):
            NagSuppressions.add_resource_suppressions(
                construct,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason=(
                            "Wildcards: stack ARNs end in a stack id unknown at synth; model "
                            "packages are versions of the one group; the CDK bootstrap's "
                            "execution role name has a qualifier; X-Ray, Lambda-version and "
                            "log-delivery actions have no narrower resource."
                        ),
                    )
                ],
                apply_to_children=True,
            )

    def _target_steps(self, target: ReleaseTarget) -> tuple[sfn.State, sfn.INextable]:
        env = target.environment.capitalize()
        result = f"$.{target.environment}"
        fail = sfn.Fail(self, f"{env}Stopped", cause=f"release stopped at {target.environment}")
        deploy = tasks.LambdaInvoke(
            self,
            f"Deploy{env}",
            lambda_function=self.deploy_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "deploy",
                    "target": target.payload(),
                    "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                }
            ),
            result_selector={
                "previous.$": "$.Payload.previous_model_package_arn",
                "updating.$": "$.Payload.updating",
            },
            result_path=result,
        )
        deploy.add_catch(
            self._notify(
                f"Notify{env}DeployFailed",
                f"Deploying {{}} to {target.environment} failed to start.",
            ).next(fail),
            result_path="$.error",
        )
        status = tasks.LambdaInvoke(
            self,
            f"Check{env}",
            lambda_function=self.deploy_function.function,
            payload=sfn.TaskInput.from_object({"action": "status", "target": target.payload()}),
            result_selector={"state.$": "$.Payload.state", "detail.$": "$.Payload.detail"},
            result_path=f"{result}_status",
        )
        wait = sfn.Wait(self, f"Wait{env}", time=sfn.WaitTime.duration(self._poll_interval))
        smoke = tasks.LambdaInvoke(
            self,
            f"SmokeTest{env}",
            lambda_function=self.smoke_function.function,
            payload=sfn.TaskInput.from_object({"target": target.payload()}),
            result_path=sfn.JsonPath.DISCARD,
        )
        rollback = tasks.LambdaInvoke(
            self,
            f"RollBack{env}",
            lambda_function=self.deploy_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "rollback",
                    "target": target.payload(),
                    "model_package_arn": sfn.JsonPath.string_at(f"{result}.previous"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        smoke_failed = self._notify(
            f"Notify{env}SmokeFailed",
            f"The smoke test of {{}} in {target.environment} failed; it was rolled back where a previous model existed.",
        ).next(fail)
        rollback.add_catch(smoke_failed, result_path="$.rollback_error")
        rollback.next(smoke_failed)
        smoke.add_catch(
            sfn.Choice(self, f"{env}HadPreviousModel")
            .when(sfn.Condition.string_equals(f"{result}.previous", "none"), smoke_failed)
            .otherwise(rollback),
            result_path="$.error",
        )
        update_failed = self._notify(
            f"Notify{env}UpdateFailed",
            f"Updating {target.environment} to {{}} failed and was rolled back (alarms or stack errors).",
        ).next(fail)
        wait.next(status)
        status.next(
            sfn.Choice(self, f"{env}Updated")
            .when(sfn.Condition.string_equals(f"{result}_status.state", "in_progress"), wait)
            .when(sfn.Condition.string_equals(f"{result}_status.state", "failed"), update_failed)
            .otherwise(smoke)
        )
        deploy.next(
            sfn.Choice(self, f"{env}Changing")
            .when(sfn.Condition.boolean_equals(f"{result}.updating", True), wait)
            .otherwise(smoke)
        )
        if not target.approval_before:
            return deploy, smoke
        approval = tasks.SnsPublish(
            self,
            f"Approve{env}",
            topic=self.notifications,
            subject=f"Approve release to {target.environment}",
            message=sfn.TaskInput.from_object(
                {
                    "request": f"Approve the release to {target.environment}",
                    "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                    "approve": "aws stepfunctions send-task-success --task-output true --task-token <task_token>",
                    "reject": "aws stepfunctions send-task-failure --error Rejected --task-token <task_token>",
                    "task_token": sfn.JsonPath.task_token,
                }
            ),
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            task_timeout=sfn.Timeout.duration(self._approval_timeout),
            result_path=sfn.JsonPath.DISCARD,
        )
        approval.add_catch(
            self._notify(
                f"Notify{env}Rejected",
                f"The release of {{}} to {target.environment} was rejected or not approved in time.",
            ).next(fail),
            result_path="$.error",
        )
        approval.next(deploy)
        return approval, smoke

    def _notify(self, id_: str, template: str) -> tasks.SnsPublish:
        """An SNS message; ``{}`` in ``template`` becomes the model package ARN."""
        return tasks.SnsPublish(
            self,
            id_,
            topic=self.notifications,
            subject="Model release",
            message=sfn.TaskInput.from_text(
                sfn.JsonPath.format(template, sfn.JsonPath.string_at("$.model_package_arn"))
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
