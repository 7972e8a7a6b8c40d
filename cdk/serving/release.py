"""The release flow: a package approved in the model-build environment goes, stage by stage,
to every environment after it, each through that environment's deploy role.

Approving a package in the model-build group emits "SageMaker Model Package State Change";
an EventBridge rule starts this Step Functions state machine with that event. For each
target in order (the model-build environment first) it:

1. promotes the package (:mod:`pipelines.deploy.promote`): in the model-build environment it
   is the package itself; elsewhere a verified copy in the target's own group;
2. where the target asks for a person's approval, waits for it: the copy is registered
   there as PendingManualApproval, an SNS message says what to approve and how (in the
   target's own account, where only approvers can change a package's status:
   :mod:`pipelines.deploy.approval`), and the flow polls the decision; a rejection, or no
   decision within ``approval_timeout``, stops the release;
3. deploys it (:mod:`pipelines.deploy.release`): writes the target's pointer and updates its
   serving stack through the serving change role, blue/green with alarm-driven rollback;
4. polls the stack until the update ends;
5. smoke tests the endpoint with the model's own sample request (:mod:`pipelines.deploy.smoke`);
   a failure redeploys what was served before (or removes the endpoint of a first release).

Every way a target can fail (promotion, deploy, stack failure or alarm rollback, smoke test,
rejection, approval expiry, an error while checking) ends in the target's Restore step, which
waits for the serving stack to settle and then puts the pointer back on the package the
endpoint actually serves; the SNS message says what failed, what is served and where the
pointer is. The state machine then fails, which the caller can alarm on
(:meth:`ReleaseFlow.metric_executions_failed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
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
    """One environment the release reaches, in order.

    :param environment: its stage name (``dev``, ``staging``, ``prod``), used in state names.
    :param role_arn: its deploy role, which the release functions assume.
    :param descriptor_parameter: the SSM parameter describing it (read through that role).
    :param region: its region. Default: the region of the release flow.
    :param approval_before: a person approves each release in this target's own registry
        before it is deployed there.
    """

    environment: str
    role_arn: str
    descriptor_parameter: str
    region: str | None = None
    approval_before: bool = False

    def payload(self) -> dict[str, str]:
        ref = {
            "environment": self.environment,
            "role_arn": self.role_arn,
            "descriptor_parameter": self.descriptor_parameter,
        }
        if self.region:
            ref["region"] = self.region
        return ref


class ReleaseFlow(Construct):
    """Approval event -> promotion, deployment and smoke test per environment, with rollback.

    :param model_package_group_name: the model-build group whose approvals start a release.
    :param targets: the environments in promotion order; the first is the model-build
        environment, whose packages the others receive copies of.
    :param notifications: receives approval requests and the outcome of every release.
    :param function_role_names: fixed names of the deploy and smoke-test functions' roles
        (the deploy roles trust them by ARN).
    :param approval_timeout: how long an approval waits. Default: 7 days.
    :param poll_interval: how often a deployment's progress is checked. Default: 1 minute.
    :param approval_poll_interval: how often a pending approval is checked. Default: 15
        minutes (a week of waiting stays far below Step Functions' history limit).
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
        function_role_names: tuple[str, str],
        approval_timeout: Duration | None = None,
        poll_interval: Duration | None = None,
        approval_poll_interval: Duration | None = None,
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
        if targets and targets[0].approval_before:
            problems.append(
                f"the first target ({targets[0].environment}) is the model-build environment, "
                "whose approval in the registry starts the release; it cannot ask again"
            )
        if problems:
            raise ValueError("invalid ReleaseFlow: " + "; ".join(problems))
        self.targets = list(targets)
        self.source = targets[0]
        self.notifications = notifications
        self._approval_timeout = approval_timeout or Duration.days(7)
        self._poll_interval = poll_interval or Duration.minutes(1)
        self._approval_poll_interval = approval_poll_interval or Duration.minutes(15)

        self.deploy_function = ControlPlaneFunction(
            self,
            "Deploy",
            handler="deploy.release.handler",
            description="Promotes, deploys and restores model packages through each environment's deploy role",
            encryption_key=encryption_key,
            removal_policy=removal_policy,
            role_name=function_role_names[0],
            # Promotion streams model archives between accounts.
            timeout=Duration.minutes(15),
            memory_size=512,
        )
        self.smoke_function = ControlPlaneFunction(
            self,
            "SmokeTest",
            handler="deploy.smoke.handler",
            description="Invokes a freshly deployed endpoint with the model's sample request",
            encryption_key=encryption_key,
            removal_policy=removal_policy,
            role_name=function_role_names[1],
            # A serverless endpoint's first request waits for a cold start.
            timeout=Duration.minutes(3),
        )
        deploy_roles = [t.role_arn for t in targets]
        for function in (self.deploy_function, self.smoke_function):
            # Everything the functions do happens through a deploy role.
            function.role.add_to_policy(
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=deploy_roles)
            )

        start = sfn.Pass(
            self,
            "ReadApprovalEvent",
            parameters={"model_package_arn.$": "$.detail.ModelPackageArn"},
        )
        tail: sfn.INextable = start
        for target in targets:
            first, last = self._target_steps(target)
            tail.next(first)
            tail = last
        tail.next(
            self._notify_text(
                "NotifyReleased",
                "Released {} to " + ", ".join(names) + " (each from its own verified copy).",
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
            comment="Approved model package -> promotion, deployment and smoke test per environment",
            definition_body=sfn.DefinitionBody.from_chainable(start),
            timeout=Duration.days(30),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        # SnsPublish grants sns:Publish only; the topic is encrypted, and publishing to it
        # also needs the key (Amazon SNS Developer Guide, "Encryption at rest").
        notifications.grant_publish(self.state_machine)
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
        suppressions = {
            self.deploy_function: (
                "The function writes log streams of its own log group and may assume only the "
                "listed deploy roles; the wildcard is CDK's KMS grant on the log key."
            ),
            self.smoke_function: (
                "The function writes log streams of its own log group and may assume only the "
                "listed deploy roles; the wildcard is CDK's KMS grant on the log key."
            ),
            self.state_machine: (
                "The state machine invokes the two release functions (CDK grants their "
                "versions and aliases, hence ':*'), publishes to the one topic, and writes "
                "X-Ray traces and log deliveries, which have no resource-level permission."
            ),
        }
        for construct, reason in suppressions.items():
            NagSuppressions.add_resource_suppressions(
                construct,
                [NagPackSuppression(id="AwsSolutions-IAM5", reason=reason)],
                apply_to_children=True,
            )

    def metric_executions_failed(self) -> cloudwatch.Metric:
        """Release executions that failed, timed out or were aborted (Step Functions' metric)."""
        return self.state_machine.metric_failed(period=Duration.minutes(5))

    # One environment's states.

    def _target_steps(self, target: ReleaseTarget) -> tuple[sfn.State, sfn.INextable]:
        env = target.environment.capitalize()
        slot = f"$.{target.environment}"
        stopped = self._restore_and_stop(target)

        def catch(task: sfn.TaskStateBase) -> sfn.TaskStateBase:
            task.add_catch(stopped, result_path="$.error")
            return task

        promote = catch(
            self._invoke(
                f"Promote{env}",
                self.deploy_function,
                {
                    "action": "promote",
                    "source": self.source.payload(),
                    "target": target.payload(),
                    "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                },
                result_selector={
                    "package.$": "$.Payload.model_package_arn",
                    "approval_status.$": "$.Payload.approval_status",
                },
                result_path=slot,
            )
        )
        deploy = catch(
            self._invoke(
                f"Deploy{env}",
                self.deploy_function,
                {
                    "action": "deploy",
                    "target": target.payload(),
                    "model_package_arn": sfn.JsonPath.string_at(f"{slot}.package"),
                },
                result_selector={
                    "served_before.$": "$.Payload.served_before",
                    "updating.$": "$.Payload.updating",
                },
                result_path=f"{slot}_deploy",
            )
        )
        smoke = self._invoke(
            f"SmokeTest{env}",
            self.smoke_function,
            {
                "target": target.payload(),
                "model_package_arn": sfn.JsonPath.string_at(f"{slot}.package"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        smoke.add_catch(self._roll_back(target, stopped), result_path="$.error")
        update_failed = sfn.Pass(
            self,
            f"{env}UpdateFailed",
            parameters={
                "Error": "StackUpdateFailed",
                "Cause": sfn.JsonPath.string_at(f"{slot}_status.detail"),
            },
            result_path="$.error",
        ).next(stopped)
        wait = self._wait_until_done(
            f"{env}",
            target,
            slot_status=f"{slot}_status",
            on_failed=update_failed,
            on_done=smoke,
            on_error=stopped,
        )
        deploy.next(
            sfn.Choice(self, f"{env}Changing")
            .when(sfn.Condition.boolean_equals(f"{slot}_deploy.updating", True), wait)
            .otherwise(smoke)
        )
        if target.approval_before:
            promote.next(self._approval(target, stopped, then=deploy))
        else:
            promote.next(deploy)
        return promote, smoke

    def _approval(
        self, target: ReleaseTarget, stopped: sfn.IChainable, *, then: sfn.IChainable
    ) -> sfn.State:
        """Ask for a person's approval of the copy in the target, then wait for the decision.

        A copy approved there before (an earlier release of the same package) goes on at once.
        """
        env = target.environment.capitalize()
        slot = f"$.{target.environment}"
        requested = sfn.Pass(
            self,
            f"Request{env}Approval",
            parameters={"requested_at": sfn.JsonPath.string_at("$$.State.EnteredTime")},
            result_path=f"{slot}_approval",
        )
        ask = tasks.SnsPublish(
            self,
            f"Approve{env}",
            topic=self.notifications,
            subject=f"Approve release to {target.environment}",
            message=sfn.TaskInput.from_object(
                {
                    "request": (
                        f"Approve or reject the release to {target.environment} in its own "
                        f"account's model registry (SageMaker Studio > Models, or the AWS CLI "
                        f"with your credentials there). It expires after "
                        f"{self._approval_timeout.to_hours()} hours."
                    ),
                    "model_package_arn": sfn.JsonPath.string_at(f"{slot}.package"),
                    "source_model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                    "approve": (
                        "aws sagemaker update-model-package --model-package-arn "
                        "<model_package_arn> --model-approval-status Approved "
                        "--approval-description <why>"
                    ),
                    "reject": (
                        "aws sagemaker update-model-package --model-package-arn "
                        "<model_package_arn> --model-approval-status Rejected "
                        "--approval-description <why>"
                    ),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        wait = sfn.Wait(
            self,
            f"WaitFor{env}Approval",
            time=sfn.WaitTime.duration(self._approval_poll_interval),
        )
        check = self._invoke(
            f"Check{env}Approval",
            self.deploy_function,
            {
                "action": "approval",
                "target": target.payload(),
                "model_package_arn": sfn.JsonPath.string_at(f"{slot}.package"),
                "requested_at": sfn.JsonPath.string_at(f"{slot}_approval.requested_at"),
                "now": sfn.JsonPath.string_at("$$.State.EnteredTime"),
                "timeout_seconds": self._approval_timeout.to_seconds(),
            },
            result_selector={"state.$": "$.Payload.state", "detail.$": "$.Payload.detail"},
            result_path=f"{slot}_approval_state",
        )
        check.add_catch(stopped, result_path="$.error")

        def ended(error: str) -> sfn.Pass:
            return sfn.Pass(
                self,
                f"{env}Approval{error}",
                parameters={
                    "Error": error,
                    "Cause": sfn.JsonPath.string_at(f"{slot}_approval_state.detail"),
                },
                result_path="$.error",
            )

        requested.next(ask).next(wait).next(check).next(
            sfn.Choice(self, f"{env}Decided")
            .when(sfn.Condition.string_equals(f"{slot}_approval_state.state", "approved"), then)
            .when(
                sfn.Condition.string_equals(f"{slot}_approval_state.state", "rejected"),
                ended("Rejected").next(stopped),
            )
            .when(
                sfn.Condition.string_equals(f"{slot}_approval_state.state", "expired"),
                ended("ApprovalExpired").next(stopped),
            )
            .otherwise(wait)
        )
        return (
            sfn.Choice(self, f"{env}AlreadyApproved")
            .when(sfn.Condition.string_equals(f"{slot}.approval_status", "Approved"), then)
            .otherwise(requested)
        )

    def _wait_until_done(
        self,
        prefix: str,
        target: ReleaseTarget,
        *,
        slot_status: str,
        on_failed: sfn.IChainable,
        on_done: sfn.IChainable,
        on_error: sfn.IChainable,
    ) -> sfn.Wait:
        """Wait -> status -> (in progress: wait again | failed | done)."""
        wait = sfn.Wait(self, f"Wait{prefix}", time=sfn.WaitTime.duration(self._poll_interval))
        check = self._invoke(
            f"Check{prefix}",
            self.deploy_function,
            {"action": "status", "target": target.payload()},
            result_selector={"state.$": "$.Payload.state", "detail.$": "$.Payload.detail"},
            result_path=slot_status,
        )
        check.add_catch(on_error, result_path="$.error")
        wait.next(check)
        check.next(
            sfn.Choice(self, f"{prefix}Updated")
            .when(sfn.Condition.string_equals(f"{slot_status}.state", "in_progress"), wait)
            .when(sfn.Condition.string_equals(f"{slot_status}.state", "failed"), on_failed)
            .otherwise(on_done)
        )
        return wait

    def _roll_back(self, target: ReleaseTarget, stopped: sfn.IChainable) -> sfn.State:
        """After a failed smoke test: serve what was served before (none: remove the endpoint)."""
        env = target.environment.capitalize()
        slot = f"$.{target.environment}"
        rollback = self._invoke(
            f"RollBack{env}",
            self.deploy_function,
            {
                "action": "deploy",
                "target": target.payload(),
                "model_package_arn": sfn.JsonPath.string_at(f"{slot}_deploy.served_before"),
            },
            result_selector={"updating.$": "$.Payload.updating"},
            result_path=f"{slot}_rollback",
        )
        # The smoke test's error stays in $.error: it is why the release stopped.
        rollback.add_catch(stopped, result_path="$.rollback_error")
        wait = self._wait_until_done(
            f"{env}RollBack",
            target,
            slot_status=f"{slot}_rollback_status",
            on_failed=stopped,
            on_done=stopped,
            on_error=stopped,
        )
        rollback.next(
            sfn.Choice(self, f"{env}RollingBack")
            .when(sfn.Condition.boolean_equals(f"{slot}_rollback.updating", True), wait)
            .otherwise(stopped)
        )
        return rollback

    def _restore_and_stop(self, target: ReleaseTarget) -> sfn.State:
        """Restore (once the stack has settled: pointer on what is served) -> announce -> fail.
        One per target."""
        env = target.environment.capitalize()
        fail = sfn.Fail(self, f"{env}Stopped", cause=f"release stopped at {target.environment}")
        restore = self._invoke(
            f"Restore{env}",
            self.deploy_function,
            {
                "action": "restore",
                "target": target.payload(),
                "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                "error": sfn.JsonPath.object_at("$.error"),
            },
            result_selector={
                "message.$": "$.Payload.message",
                "settled.$": "$.Payload.settled",
            },
            result_path="$.restored",
        )
        restore.add_catch(
            self._notify_text(
                f"Notify{env}RestoreFailed",
                f"The release of {{}} to {target.environment} failed, and so did putting its "
                "pointer back on the served package: check the endpoint and the pointer "
                f"(python -m pipelines.deploy.release restore, for {target.environment}).",
            ).next(fail),
            result_path="$.restore_error",
        )
        announce = tasks.SnsPublish(
            self,
            f"Notify{env}Stopped",
            topic=self.notifications,
            subject=f"Model release stopped at {target.environment}",
            message=sfn.TaskInput.from_json_path_at("$.restored.message"),
            result_path=sfn.JsonPath.DISCARD,
        ).next(fail)
        # The release's own update may still be running (and may yet roll back): the pointer
        # is put back only once the stack has settled.
        settle = sfn.Wait(
            self, f"Wait{env}Settled", time=sfn.WaitTime.duration(self._poll_interval)
        ).next(restore)
        restore.next(
            sfn.Choice(self, f"{env}Settled")
            .when(sfn.Condition.boolean_equals("$.restored.settled", False), settle)
            .otherwise(announce)
        )
        return restore

    def _invoke(
        self,
        id_: str,
        function: ControlPlaneFunction,
        payload: dict[str, object],
        *,
        result_path: str,
        result_selector: dict[str, str] | None = None,
    ) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=function.function,
            payload=sfn.TaskInput.from_object(payload),
            result_selector=result_selector,
            result_path=result_path,
        )

    def _notify_text(self, id_: str, template: str) -> tasks.SnsPublish:
        """An SNS message; ``{}`` in ``template`` becomes the released model package ARN."""
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
